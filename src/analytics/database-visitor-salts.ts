/**
 * Visitor salts in the database (`visitor_salts`), so every worker of a deployment hashes a
 * day's visitors with the same salt. Each worker keeps the salts it has read in memory: one
 * round trip per day and worker, not per click.
 */
import { randomBytes } from 'node:crypto';
import type { Queryable } from '../storage/database.js';
import { isSaltDayUsable, isUtcDay, oldestSaltDay, VISITOR_SALT_BYTES, type VisitorSalts } from './visitor.js';

export interface DatabaseVisitorSaltsOptions {
  /** Milliseconds since the epoch: which days are current. */
  now?: () => number;
}

export class DatabaseVisitorSalts implements VisitorSalts {
  private readonly cache = new Map<string, Promise<Buffer>>();
  private readonly now: () => number;

  constructor(
    private readonly db: Queryable,
    options: DatabaseVisitorSaltsOptions = {},
  ) {
    this.now = options.now ?? Date.now;
  }

  /**
   * Refuses a day outside the usable window rather than create its salt: a salt made anew
   * for an old day would split that day's visitors in two, and outlive its deletion.
   */
  saltFor(day: string): Promise<Buffer> {
    if (!isUtcDay(day)) return Promise.reject(new RangeError(`not a UTC day: ${JSON.stringify(day)}`));
    const now = this.now();
    if (!isSaltDayUsable(day, now)) {
      return Promise.reject(new RangeError(`the visitor salt of ${day} is no longer (or not yet) available`));
    }
    let salt = this.cache.get(day);
    if (salt === undefined) {
      this.forgetOld(now);
      salt = this.load(day, now);
      this.cache.set(day, salt);
      // A failed read is not remembered: the next click of that day tries again.
      salt.catch(() => {
        if (this.cache.get(day) === salt) this.cache.delete(day);
      });
    }
    return salt;
  }

  /** Deletes the salts of days that are over for good; also done whenever a day's salt is first read. */
  async prune(): Promise<number> {
    const now = this.now();
    this.forgetOld(now);
    const result = await this.db.query('DELETE FROM visitor_salts WHERE day < $1', [oldestSaltDay(now)]);
    return result.rowCount ?? 0;
  }

  private async load(day: string, now: number): Promise<Buffer> {
    // Two statements, not one: a row that a concurrent worker commits after this statement
    // began is invisible to the rest of it, but visible to the next statement.
    await this.db.query('INSERT INTO visitor_salts (day, salt) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING', [
      day,
      randomBytes(VISITOR_SALT_BYTES),
    ]);
    const result = await this.db.query<{ salt: Buffer }>('SELECT salt FROM visitor_salts WHERE day = $1', [day]);
    const salt = result.rows[0]?.salt;
    if (!Buffer.isBuffer(salt) || salt.length !== VISITOR_SALT_BYTES) throw new Error(`visitor salt of ${day} is missing`);
    await this.db.query('DELETE FROM visitor_salts WHERE day < $1', [oldestSaltDay(now)]);
    return salt;
  }

  private forgetOld(now: number): void {
    for (const day of this.cache.keys()) {
      if (!isSaltDayUsable(day, now)) this.cache.delete(day);
    }
  }
}
