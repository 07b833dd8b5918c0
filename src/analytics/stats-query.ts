/**
 * A link's click statistics over a time range, answered from the rollups alone (never from
 * raw events), so the cost follows the number of buckets and distinct values in the range,
 * not the number of clicks.
 *
 * Resolution, all in UTC:
 * - the series and `totals.clicks` use buckets of the asked interval; the range is widened
 *   to whole buckets (`range` in the answer says which);
 * - breakdowns and `totals.uniques` exist per UTC day, so they cover the whole days the
 *   range touches (`days` in the answer).
 *
 * Unique visitors are the sum of each day's unique visitors: a visitor seen on two days
 * counts twice, because the visitor key's salt changes every day on purpose (a visitor
 * cannot be followed from one day to the next). Clicks without a visitor key (no client IP)
 * count as clicks but not as visitors.
 */
import type { Queryable } from '../storage/database.js';
import { bucketStart, INTERVAL_MS, UNKNOWN_VALUE, type StatsInterval } from './rollup-aggregation.js';

type Dimension = 'referrer' | 'country' | 'browser' | 'os' | 'device';

export type { StatsInterval } from './rollup-aggregation.js';

/** More points than this is refused: a chart cannot show them and the answer would be large. */
export const MAX_SERIES_POINTS = 10_000;
export const MAX_TOP = 100;

export type StatsQueryFailure = 'invalid_range' | 'too_many_points' | 'invalid_top' | 'invalid_interval';

/** A query the caller must change (the API answers 422); nothing is wrong with the store. */
export class StatsQueryError extends Error {
  constructor(
    readonly reason: StatsQueryFailure,
    message: string,
  ) {
    super(message);
    this.name = 'StatsQueryError';
  }
}

export interface LinkStatsOptions {
  /** Inclusive. */
  from: Date;
  /** Exclusive. */
  to: Date;
  interval: StatsInterval;
  bots: 'exclude' | 'include';
  /** Values per breakdown, 1 to MAX_TOP. */
  top: number;
}

export interface RankedValue {
  /** null: unknown (no referrer means a direct visit, no country means an unlocated address). */
  value: string | null;
  clicks: number;
}

export interface LinkStats {
  /** The series' range: `from` rounded down and `to` rounded up to whole buckets (ISO, UTC). */
  range: { from: string; to: string; interval: StatsInterval };
  /** The whole UTC days that breakdowns and uniques cover. */
  days: { from: string; to: string };
  totals: { clicks: number; uniques: number };
  /** Every bucket of the range, zero when there was no click. */
  series: { t: string; clicks: number }[];
  referrers: RankedValue[];
  countries: RankedValue[];
  browsers: RankedValue[];
  os: RankedValue[];
  devices: RankedValue[];
}

/** Fixed SQL fragments chosen by a closed option, never by text from the caller. */
const CLICKS = { exclude: 'human', include: 'human + bot' } as const;
const UNIQUES = { exclude: 'human_visitors', include: 'visitors' } as const;
const SERIES_TABLE: Readonly<Record<StatsInterval, string>> = {
  minute: 'link_clicks_minute',
  hour: 'link_clicks_hour',
  day: 'link_clicks_day',
};

interface Plan {
  from: number;
  to: number;
  step: number;
  points: number;
  dayFrom: number;
  dayTo: number;
}

// Rounding out to whole days must stay printable as ISO text that PostgreSQL reads back.
const MIN_TIME = Date.parse('0001-01-02T00:00:00.000Z');
const MAX_TIME = Date.parse('9999-12-30T00:00:00.000Z');

function isQueryableTime(ms: number): boolean {
  return !Number.isNaN(ms) && ms >= MIN_TIME && ms <= MAX_TIME;
}

/** Checks the options and works out the buckets; throws StatsQueryError. */
export function planStats(options: LinkStatsOptions): Plan {
  const { interval, top } = options;
  if (!Object.hasOwn(INTERVAL_MS, interval)) throw new StatsQueryError('invalid_interval', 'interval must be minute, hour or day');
  if (!Number.isInteger(top) || top < 1 || top > MAX_TOP) throw new StatsQueryError('invalid_top', `top must be an integer from 1 to ${MAX_TOP}`);
  const fromMs = options.from.getTime();
  const toMs = options.to.getTime();
  if (!isQueryableTime(fromMs) || !isQueryableTime(toMs)) {
    throw new StatsQueryError('invalid_range', 'from and to must be valid times between the years 1 and 9999');
  }
  if (fromMs >= toMs) throw new StatsQueryError('invalid_range', 'from must be before to');
  const step = INTERVAL_MS[interval];
  const from = bucketStart(fromMs, interval);
  const points = Math.ceil((toMs - from) / step);
  if (points > MAX_SERIES_POINTS) {
    throw new StatsQueryError('too_many_points', `the range holds ${points} ${interval}s; at most ${MAX_SERIES_POINTS} points are answered`);
  }
  const day = INTERVAL_MS.day;
  return { from, to: from + points * step, step, points, dayFrom: bucketStart(fromMs, 'day'), dayTo: Math.ceil(toMs / day) * day };
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** `linkId`: links.id; a link's statistics are its own, whatever code it has had. */
export async function linkStats(db: Queryable, linkId: string, options: LinkStatsOptions): Promise<LinkStats> {
  const plan = planStats(options);
  const clicks = CLICKS[options.bots];
  const [series, uniques, breakdowns] = await Promise.all([
    db.query<{ bucket: Date; clicks: string }>(
      `SELECT bucket, sum(${clicks})::text AS clicks FROM ${SERIES_TABLE[options.interval]}
       WHERE link_id = $1 AND bucket >= $2 AND bucket < $3 GROUP BY bucket`,
      [linkId, iso(plan.from), iso(plan.to)],
    ),
    db.query<{ uniques: string | null }>(
      `SELECT sum(${UNIQUES[options.bots]})::text AS uniques FROM link_clicks_day WHERE link_id = $1 AND bucket >= $2 AND bucket < $3`,
      [linkId, iso(plan.dayFrom), iso(plan.dayTo)],
    ),
    // Browser, OS and device are stored together and summed out here, in one pass over
    // the rows (GROUPING SETS). Ties are ranked by value in byte order, so the same data
    // gives the same answer on any database collation.
    db.query<{ dimension: Dimension; value: string; clicks: string }>(
      `WITH facts AS (
         SELECT dimension, value, sum(${clicks}) AS clicks
         FROM link_breakdown_day WHERE link_id = $1 AND bucket >= $2 AND bucket < $3
         GROUP BY dimension, value
         UNION ALL
         SELECT CASE GROUPING(browser, os, device) WHEN 3 THEN 'browser' WHEN 5 THEN 'os' ELSE 'device' END,
                CASE GROUPING(browser, os, device) WHEN 3 THEN browser WHEN 5 THEN os ELSE device END,
                sum(${clicks})
         FROM link_agents_day WHERE link_id = $1 AND bucket >= $2 AND bucket < $3
         GROUP BY GROUPING SETS ((browser), (os), (device))
       )
       SELECT dimension, value, clicks::text AS clicks FROM (
         SELECT dimension, value, clicks, row_number() OVER (PARTITION BY dimension ORDER BY clicks DESC, value COLLATE "C") AS rank
         FROM facts WHERE clicks > 0
       ) ranked WHERE rank <= $4 ORDER BY dimension, rank`,
      [linkId, iso(plan.dayFrom), iso(plan.dayTo), options.top],
    ),
  ]);

  const counts = new Map(series.rows.map((row) => [row.bucket.getTime(), Number(row.clicks)]));
  const points: { t: string; clicks: number }[] = [];
  let total = 0;
  for (let i = 0; i < plan.points; i += 1) {
    const t = plan.from + i * plan.step;
    const value = counts.get(t) ?? 0;
    total += value;
    points.push({ t: iso(t), clicks: value });
  }
  const ranked: Record<Dimension, RankedValue[]> = { referrer: [], country: [], browser: [], os: [], device: [] };
  for (const row of breakdowns.rows) {
    ranked[row.dimension].push({ value: row.value === UNKNOWN_VALUE ? null : row.value, clicks: Number(row.clicks) });
  }
  return {
    range: { from: iso(plan.from), to: iso(plan.to), interval: options.interval },
    days: { from: iso(plan.dayFrom), to: iso(plan.dayTo) },
    totals: { clicks: total, uniques: Number(uniques.rows[0]?.uniques ?? 0) },
    series: points,
    referrers: ranked.referrer,
    countries: ranked.country,
    browsers: ranked.browser,
    os: ranked.os,
    devices: ranked.device,
  };
}
