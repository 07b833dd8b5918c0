import type { Database } from '../storage/database.js';
import type { ClickEvent } from './click-event.js';

const CLICK_COLUMNS = ['link_code', 'clicked_at', 'method', 'referrer', 'user_agent', 'client_ip'] as const;

/** COPY text format: tab-separated, \N for NULL, backslash escapes for the separators. */
function copyField(value: string | null): string {
  if (value === null) return '\\N';
  return value.replace(/[\\\t\n\r]/g, (char) => (char === '\\' ? '\\\\' : char === '\t' ? '\\t' : char === '\n' ? '\\n' : '\\r'));
}

function toCopyLine(event: ClickEvent): string {
  return `${[event.code, event.at.toISOString(), event.method, event.referrer, event.userAgent, event.ip].map(copyField).join('\t')}\n`;
}

export class ClickRepository {
  constructor(private readonly db: Database) {}

  /** One statement for the whole batch: COPY where the store takes it, else arrays unnested server-side. */
  async insertMany(events: readonly ClickEvent[]): Promise<void> {
    if (events.length === 0) return;
    if (this.db.copyText !== undefined) {
      await this.db.copyText('clicks', CLICK_COLUMNS, events.map(toCopyLine).join(''));
      return;
    }
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
