/**
 * A link's raw click events over a time range, in pages, for a CSV export. Keyset pages
 * on (at, id), which the index click_events_link_at serves in order, rather than a cursor:
 * no transaction or connection is held between pages, so a slow consumer (a client
 * downloading a large file) pins nothing in the database, and the embedded store's single
 * connection stays free for other work between pages.
 */
import type { Queryable } from '../storage/database.js';
import type { DeviceType, EnrichedClick } from './enriched-click.js';

export interface ExportOptions {
  /** Inclusive. */
  from: Date;
  /** Exclusive. */
  to: Date;
  /** Rows per page. */
  pageSize?: number;
}

type ExportRow = {
  id: string;
  at: Date;
  /** `at` with its full (microsecond) precision, for the next page's key. */
  at_key: string;
  link_id: string;
  code: string;
  method: 'GET' | 'HEAD';
  bot: boolean;
  device: DeviceType;
  referrer_host: string | null;
  country: string | null;
  browser: string | null;
  os: string | null;
  visitor: string | null;
  ip: string | null;
  user_agent: string | null;
  referrer: string | null;
};

const COLUMNS = `id, at, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at_key, link_id::text AS link_id, code, method, bot, device,
  referrer_host, country, browser, os, encode(visitor, 'hex') AS visitor, host(ip) AS ip, user_agent, referrer`;

function toClick(row: ExportRow): EnrichedClick {
  return {
    id: row.id,
    linkId: row.link_id,
    code: row.code,
    at: row.at,
    method: row.method,
    referrerHost: row.referrer_host,
    country: row.country,
    browser: row.browser,
    os: row.os,
    device: row.device,
    bot: row.bot,
    visitor: row.visitor,
    ip: row.ip,
    userAgent: row.user_agent,
    referrer: row.referrer,
  };
}

/** Yields pages of a link's (links.id) events in time order (then id order); stops after the last page. */
export async function* exportClicks(db: Queryable, linkId: string, options: ExportOptions): AsyncGenerator<EnrichedClick[]> {
  const pageSize = options.pageSize ?? 1000;
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new RangeError('pageSize must be a positive integer');
  const from = options.from.toISOString();
  const to = options.to.toISOString();
  let after: { at: string; id: string } | null = null;
  for (;;) {
    const result: { rows: ExportRow[] } =
      after === null
        ? await db.query<ExportRow>(
            `SELECT ${COLUMNS} FROM click_events WHERE link_id = $1 AND at >= $2 AND at < $3 ORDER BY at, id LIMIT $4`,
            [linkId, from, to, pageSize],
          )
        : await db.query<ExportRow>(
            `SELECT ${COLUMNS} FROM click_events WHERE link_id = $1 AND (at, id) > ($2::timestamptz, $3::uuid) AND at < $4
             ORDER BY at, id LIMIT $5`,
            [linkId, after.at, after.id, to, pageSize],
          );
    if (result.rows.length > 0) yield result.rows.map(toClick);
    const last = result.rows.at(-1);
    if (last === undefined || result.rows.length < pageSize) return;
    after = { at: last.at_key, id: last.id };
  }
}
