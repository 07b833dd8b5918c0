/**
 * How many raw clicks a link has in a range, at most, from the day rollups alone: one row
 * per day (per shard until compaction), never a scan of the raw events. It covers the whole
 * UTC days the range touches, and rollups outlive raw events under retention, so it is an
 * upper bound: an export it calls small is small.
 */
import type { Queryable } from '../storage/database.js';
import { bucketStart, INTERVAL_MS } from './rollup-aggregation.js';

export async function estimateClicks(db: Queryable, linkId: string, from: Date, to: Date): Promise<number> {
  const day = INTERVAL_MS.day;
  const dayFrom = bucketStart(from.getTime(), 'day');
  const dayTo = Math.ceil(to.getTime() / day) * day;
  const result = await db.query<{ clicks: string }>(
    'SELECT coalesce(sum(human + bot), 0)::text AS clicks FROM link_clicks_day WHERE link_id = $1 AND bucket >= $2 AND bucket < $3',
    [linkId, new Date(dayFrom).toISOString(), new Date(dayTo).toISOString()],
  );
  return Number(result.rows[0]?.clicks ?? 0);
}
