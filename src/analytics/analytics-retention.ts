/**
 * Retention of what grows without bound besides the raw events (dropped by month in
 * click-partitions.ts): minute counters and the per-day visitor sets. Hour and day rollups
 * and breakdowns are small and are kept for the link's lifetime.
 */
import type { Queryable } from '../storage/database.js';
import { VISITOR_SALT_PAST_DAYS } from './visitor.js';

const DAY_MS = 86_400_000;

/**
 * Deletes minute counters older than `olderThan`. A minute series is only answered for
 * ranges of up to MAX_SERIES_POINTS minutes (about a week), so weeks of them are plenty.
 */
export async function pruneMinuteRollups(db: Queryable, olderThan: Date): Promise<number> {
  const result = await db.query('DELETE FROM link_clicks_minute WHERE bucket < $1', [olderThan.toISOString()]);
  return result.rowCount ?? 0;
}

/**
 * The oldest day whose visitor set must be kept at `now`: a day's visitor key can still
 * arrive while its salt exists (VISITOR_SALT_PAST_DAYS), plus two days for a batch enriched
 * just before the salt went and delivered late. Pruning a set any earlier would let a late
 * visitor count twice.
 */
export function oldestKeptVisitorDay(now: number): Date {
  return new Date(Math.floor(now / DAY_MS) * DAY_MS - (VISITOR_SALT_PAST_DAYS + 2) * DAY_MS);
}

/**
 * Deletes visitor sets of days before `olderThan` (default: oldestKeptVisitorDay(now)).
 * Their counts stay in link_clicks_day; only the hashes that decided them go, which also
 * keeps the table as small as a few days of visitors.
 */
export async function pruneVisitorSets(db: Queryable, olderThan: Date = oldestKeptVisitorDay(Date.now())): Promise<number> {
  const result = await db.query('DELETE FROM link_visitors WHERE day < $1', [olderThan.toISOString()]);
  return result.rowCount ?? 0;
}
