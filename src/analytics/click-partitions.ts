/**
 * Monthly partitions of `click_events` (migrations/0003_analytics.sql), in UTC months. Raw
 * clicks are kept for a retention period and then dropped a whole month at a time, which
 * costs one catalog change instead of a DELETE scanning and vacuuming millions of rows.
 *
 * Creating and dropping partitions runs in a transaction holding one advisory lock, so any
 * number of workers may call these at once: the second waits, then finds the work done.
 */
import type { Database, Queryable } from '../storage/database.js';

// Arbitrary, but fixed forever: every Shunt instance must agree on it.
const PARTITION_LOCK_ID = 7_412_2026;
const PARENT = 'click_events';
const DEFAULT_PARTITION = 'click_events_default';
const MONTHLY_NAME = /^click_events_p(\d{4})(\d{2})$/;
/** A guard against a mistaken range creating thousands of tables. */
export const MAX_PARTITIONS_PER_CALL = 240;

/** Midnight UTC of the first day of `at`'s month. */
function monthStart(at: number): number {
  const date = new Date(at);
  return Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1);
}

function nextMonth(start: number): number {
  const date = new Date(start);
  return Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1);
}

export function partitionName(monthStartMs: number): string {
  const date = new Date(monthStartMs);
  return `click_events_p${date.getUTCFullYear()}${String(date.getUTCMonth() + 1).padStart(2, '0')}`;
}

function checkedTime(value: Date, name: string): number {
  const time = value.getTime();
  if (Number.isNaN(time)) throw new RangeError(`${name} is not a valid date`);
  return time;
}

async function monthlyPartitions(tx: Queryable): Promise<Map<string, number>> {
  const result = await tx.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = '${PARENT}'::regclass`,
  );
  const months = new Map<string, number>();
  for (const { name } of result.rows) {
    const match = MONTHLY_NAME.exec(name);
    if (match !== null) months.set(name, Date.UTC(Number(match[1]), Number(match[2]) - 1, 1));
  }
  return months;
}

/**
 * Creates the monthly partitions covering `from` to `to` (both months included) that do not
 * exist yet; returns the names it created. Rows the DEFAULT partition caught for a month are
 * moved into that month's new partition: PostgreSQL refuses to attach a partition while the
 * default one holds rows that belong to it.
 */
export async function ensurePartitions(db: Database, from: Date, to: Date): Promise<string[]> {
  const first = monthStart(checkedTime(from, 'from'));
  const last = monthStart(checkedTime(to, 'to'));
  const wanted: number[] = [];
  for (let month = first; month <= last; month = nextMonth(month)) {
    wanted.push(month);
    if (wanted.length > MAX_PARTITIONS_PER_CALL) throw new RangeError(`more than ${MAX_PARTITIONS_PER_CALL} monthly partitions asked for`);
  }
  if (wanted.length === 0) return [];
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK_ID]);
    const existing = await monthlyPartitions(tx);
    const missing = wanted.filter((month) => !existing.has(partitionName(month)));
    if (missing.length === 0) return [];
    // Taken first so that no writer adds a row to the default partition between the move
    // and the attach; writers routed to other partitions do not touch this lock.
    await tx.query(`LOCK TABLE ${DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE`);
    for (const month of missing) {
      const name = partitionName(month);
      const lower = new Date(month).toISOString();
      const upper = new Date(nextMonth(month)).toISOString();
      // Created apart and then attached: ATTACH takes a weaker lock on the parent than
      // CREATE ... PARTITION OF, so writers to other months carry on meanwhile.
      await tx.query(`CREATE TABLE ${name} (LIKE ${PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`);
      await tx.query(
        `WITH moved AS (DELETE FROM ${DEFAULT_PARTITION} WHERE at >= $1 AND at < $2 RETURNING *)
         INSERT INTO ${name} SELECT * FROM moved`,
        [lower, upper],
      );
      // Bounds are literals with an explicit UTC offset, so the session TimeZone cannot shift them.
      await tx.query(`ALTER TABLE ${PARENT} ATTACH PARTITION ${name} FOR VALUES FROM ('${lower}') TO ('${upper}')`);
    }
    return missing.map(partitionName);
  });
}

export interface DroppedPartitions {
  /** Monthly partitions dropped whole. */
  dropped: string[];
  /** Expired rows deleted from the DEFAULT partition. */
  deletedFromDefault: number;
}

/**
 * Drops the monthly partitions that end at or before `olderThan`, and deletes the rows
 * older than it that the default partition holds. Rollups are kept: stats never read raw
 * events. A partition that still holds some rows newer than `olderThan` is kept whole.
 */
export async function dropExpiredPartitions(db: Database, olderThan: Date): Promise<DroppedPartitions> {
  const limit = checkedTime(olderThan, 'olderThan');
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK_ID]);
    const dropped: string[] = [];
    const months = [...(await monthlyPartitions(tx))].sort(([, a], [, b]) => a - b);
    for (const [name, month] of months) {
      if (nextMonth(month) > limit) continue;
      await tx.query(`DROP TABLE ${name}`);
      dropped.push(name);
    }
    const deleted = await tx.query(`DELETE FROM ${DEFAULT_PARTITION} WHERE at < $1`, [new Date(limit).toISOString()]);
    return { dropped, deletedFromDefault: deleted.rowCount ?? 0 };
  });
}
