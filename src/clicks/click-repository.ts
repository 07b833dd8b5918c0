import type { Database } from '../storage/database.js';
import type { ClickEvent } from './click-event.js';

export class ClickRepository {
  constructor(private readonly db: Database) {}

  /** One statement for the whole batch: arrays unnested server-side. */
  async insertMany(events: readonly ClickEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.db.query(
      `INSERT INTO clicks (link_code, clicked_at, method, referrer, user_agent, client_ip)
       SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::inet[])`,
      [
        events.map((event) => event.code),
        events.map((event) => event.at.toISOString()),
        events.map((event) => event.method),
        events.map((event) => event.referrer),
        events.map((event) => event.userAgent),
        events.map((event) => event.ip),
      ],
    );
  }

  async countFor(code: string): Promise<number> {
    const result = await this.db.query<{ count: number }>(
      'SELECT count(*)::int AS count FROM clicks WHERE link_code = $1',
      [code],
    );
    return result.rows[0]?.count ?? 0;
  }
}
