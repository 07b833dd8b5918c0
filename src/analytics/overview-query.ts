/**
 * Account-wide analytics for the dashboard: clicks per UTC day over all of a key's links
 * (every link for an admin), the most clicked links, and all-time totals of chosen links.
 * Read from the day rollups only, like the per-link stats.
 */
import type { Queryable } from '../storage/database.js';

const DAY_MS = 86_400_000;
export const MAX_OVERVIEW_DAYS = 366;
const CLICKS = { exclude: 'd.human', include: 'd.human + d.bot' } as const;

export interface OverviewOptions {
  from: Date;
  to: Date;
  bots: 'exclude' | 'include';
  top: number;
  /** Only this key's links; null for all (an admin). */
  ownerKeyId: string | null;
}

export interface Overview {
  days: { from: string; to: string };
  totals: { clicks: number; links: number };
  series: { t: string; clicks: number }[];
  topLinks: { code: string; title: string | null; clicks: number }[];
}

/** The whole UTC days that cover [from, to). */
export function overviewDays(from: Date, to: Date): { from: number; to: number; points: number } {
  const start = Math.floor(from.getTime() / DAY_MS) * DAY_MS;
  const end = Math.ceil(to.getTime() / DAY_MS) * DAY_MS;
  return { from: start, to: end, points: Math.round((end - start) / DAY_MS) };
}

export async function accountOverview(db: Queryable, options: OverviewOptions): Promise<Overview> {
  const days = overviewDays(options.from, options.to);
  const clicks = CLICKS[options.bots];
  const owner = options.ownerKeyId === null ? '' : 'AND l.owner_key_id = $3';
  const params: unknown[] = [new Date(days.from).toISOString(), new Date(days.to).toISOString()];
  if (options.ownerKeyId !== null) params.push(options.ownerKeyId);
  const [series, top, links] = await Promise.all([
    db.query<{ bucket: Date; clicks: string }>(
      `SELECT d.bucket, sum(${clicks})::text AS clicks FROM link_clicks_day d JOIN links l ON l.id = d.link_id
       WHERE d.bucket >= $1 AND d.bucket < $2 ${owner} GROUP BY d.bucket`,
      params,
    ),
    db.query<{ code: string; title: string | null; clicks: string }>(
      `SELECT l.code, l.title, sum(${clicks})::text AS clicks FROM link_clicks_day d JOIN links l ON l.id = d.link_id
       WHERE d.bucket >= $1 AND d.bucket < $2 ${owner}
       GROUP BY l.id HAVING sum(${clicks}) > 0 ORDER BY sum(${clicks}) DESC, l.code COLLATE "C" LIMIT ${Math.trunc(options.top)}`,
      params,
    ),
    db.query<{ count: number }>(
      `SELECT count(*)::int AS count FROM links l ${options.ownerKeyId === null ? '' : 'WHERE l.owner_key_id = $1'}`,
      options.ownerKeyId === null ? [] : [options.ownerKeyId],
    ),
  ]);
  const counts = new Map(series.rows.map((row) => [row.bucket.getTime(), Number(row.clicks)]));
  const points: Overview['series'] = [];
  let total = 0;
  for (let i = 0; i < days.points; i += 1) {
    const t = days.from + i * DAY_MS;
    const value = counts.get(t) ?? 0;
    total += value;
    points.push({ t: new Date(t).toISOString(), clicks: value });
  }
  return {
    days: { from: new Date(days.from).toISOString(), to: new Date(days.to).toISOString() },
    totals: { clicks: total, links: links.rows[0]?.count ?? 0 },
    series: points,
    topLinks: top.rows.map((row) => ({ code: row.code, title: row.title, clicks: Number(row.clicks) })),
  };
}

/** All-time clicks of each of `codes` the caller may see (a code it may not see is left out). */
export async function linkTotals(db: Queryable, codes: readonly string[], ownerKeyId: string | null, bots: 'exclude' | 'include'): Promise<{ code: string; clicks: number }[]> {
  if (codes.length === 0) return [];
  const params: unknown[] = [codes];
  if (ownerKeyId !== null) params.push(ownerKeyId);
  const result = await db.query<{ code: string; clicks: string }>(
    `SELECT l.code, coalesce(sum(${CLICKS[bots]}), 0)::text AS clicks
     FROM links l LEFT JOIN link_clicks_day d ON d.link_id = l.id
     WHERE l.code = ANY($1::text[]) ${ownerKeyId === null ? '' : 'AND l.owner_key_id = $2'}
     GROUP BY l.id`,
    params,
  );
  return result.rows.map((row) => ({ code: row.code, clicks: Number(row.clicks) }));
}
