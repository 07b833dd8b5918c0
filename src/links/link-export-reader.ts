/** Every link, a page at a time in id order, with what an export carries: imported and own click totals. */
import type { Queryable } from '../storage/database.js';

export interface ExportedLink {
  id: string;
  code: string;
  url: string;
  title: string | null;
  tags: string[];
  expiresAt: Date | null;
  createdAt: Date;
  /** Visits counted by the system the link was imported from. */
  importedClicks: number;
  /** Shunt's own clicks (bots included), when asked for. */
  clicks: number | null;
}

interface Row {
  id: string;
  code: string;
  url: string;
  title: string | null;
  tags: string[];
  expires_at: Date | null;
  created_at: Date;
  imported: string;
  clicks: string | null;
  [column: string]: unknown;
}

export async function* exportedLinks(
  db: Queryable,
  options: { since: Date | null; withClicks: boolean; pageSize: number },
): AsyncGenerator<ExportedLink> {
  // Own clicks come from the daily rollups: the totals the stats API answers from.
  const clicks = options.withClicks
    ? '(SELECT coalesce(sum(d.human + d.bot), 0)::text FROM link_clicks_day d WHERE d.link_id = l.id)'
    : 'NULL';
  let after = '0';
  for (;;) {
    const result = await db.query<Row>(
      `SELECT l.id::text AS id, l.code, l.url, l.title, l.tags, l.expires_at, l.created_at,
         coalesce(i.imported_clicks, 0)::text AS imported, ${clicks} AS clicks
       FROM links l LEFT JOIN link_imports i ON i.link_id = l.id
       WHERE l.id > $1::bigint AND ($2::timestamptz IS NULL OR l.created_at >= $2::timestamptz)
       ORDER BY l.id LIMIT $3`,
      [after, options.since?.toISOString() ?? null, options.pageSize],
    );
    for (const row of result.rows) {
      yield {
        id: row.id,
        code: row.code,
        url: row.url,
        title: row.title,
        tags: row.tags,
        expiresAt: row.expires_at,
        createdAt: row.created_at,
        importedClicks: Number(row.imported),
        clicks: row.clicks === null ? null : Number(row.clicks),
      };
    }
    const last = result.rows[result.rows.length - 1];
    if (last === undefined || result.rows.length < options.pageSize) return;
    after = last.id;
  }
}
