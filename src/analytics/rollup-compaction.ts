/**
 * Folds the counter shards of a day that is over into shard 0. Shards exist so that
 * concurrent writers of a hot link do not queue on one row while its clicks arrive; once
 * the day is over they only multiply the rows a stats query must add up (a year of a hot
 * link: 8 rows per key instead of 1). Sums are unchanged: the rows of the other shards are
 * deleted and added to shard 0 in one statement per table, in one transaction per group of
 * links, so a concurrent reader sees the day either before or after.
 *
 * Late clicks of a compacted day land on their batch's shard again and are folded by the
 * next run; running it again on a compacted day finds nothing to do.
 */
import { transactionRetryingConflicts, type Database, type Queryable } from '../storage/database.js';
import { INTERVAL_MS } from './rollup-aggregation.js';

const DAY_MS = INTERVAL_MS.day;
const MAX_ATTEMPTS = 3;

export interface CompactionResult {
  /** Links whose rows of the day were folded. */
  links: number;
  /** Rows of other shards deleted (and added into shard 0). */
  folded: number;
}

interface Table {
  name: string;
  /** Key columns besides link_id, bucket and shard. */
  keys: readonly string[];
  counters: readonly string[];
}

/**
 * The day table first, as writers write it first (analytics-writer.ts). Its rows are how the
 * next run finds a link to fold, so a batch must not be able to leave other rows on a shard
 * after this run folded that shard's day row: a writer holding a day row makes this wait
 * before anything else is folded, and one that comes after finds the day row gone and writes
 * a new one, which the next run finds.
 */
const TABLES: readonly Table[] = [
  { name: 'link_clicks_day', keys: [], counters: ['human', 'bot', 'visitors', 'human_visitors'] },
  { name: 'link_clicks_minute', keys: [], counters: ['human', 'bot'] },
  { name: 'link_clicks_hour', keys: [], counters: ['human', 'bot'] },
  { name: 'link_breakdown_day', keys: ['dimension', 'value'], counters: ['human', 'bot'] },
  { name: 'link_agents_day', keys: ['browser', 'os', 'device'], counters: ['human', 'bot'] },
];

async function foldTable(tx: Queryable, table: Table, links: readonly string[], from: string, to: string): Promise<number> {
  const key = ['link_id', 'bucket', ...table.keys].join(', ');
  const counters = table.counters.join(', ');
  const sums = table.counters.map((column) => `sum(${column})`).join(', ');
  const add = table.counters.map((column) => `${column} = r.${column} + excluded.${column}`).join(', ');
  const result = await tx.query<{ folded: string }>(
    `WITH moved AS (
       DELETE FROM ${table.name} WHERE link_id = ANY($1::bigint[]) AND bucket >= $2 AND bucket < $3 AND shard <> 0 RETURNING *
     ), folded AS (
       INSERT INTO ${table.name} AS r (${key}, shard, ${counters})
       SELECT ${key}, 0, ${sums} FROM moved GROUP BY ${key} ORDER BY ${key}
       ON CONFLICT (${key}, shard) DO UPDATE SET ${add}
     )
     SELECT count(*)::text AS folded FROM moved`,
    [links, from, to],
  );
  return Number(result.rows[0]?.folded ?? 0);
}

/** Compacts the UTC day that contains `day`; `chunk` links per transaction. */
export async function compactDay(db: Database, day: Date, options: { chunk?: number } = {}): Promise<CompactionResult> {
  const chunk = options.chunk ?? 500;
  const start = Math.floor(day.getTime() / DAY_MS) * DAY_MS;
  if (Number.isNaN(start)) throw new RangeError('day is not a valid date');
  const from = new Date(start).toISOString();
  const to = new Date(start + DAY_MS).toISOString();
  // Every batch that writes any row of a link's day writes its day row on the same shard,
  // so the day rows off shard 0 name every link with something to fold.
  const found = await db.query<{ link_id: string }>(
    'SELECT DISTINCT link_id::text AS link_id, link_id AS ordered FROM link_clicks_day WHERE bucket = $1 AND shard <> 0 ORDER BY ordered',
    [from],
  );
  const links = found.rows.map((row) => row.link_id);
  let folded = 0;
  for (let i = 0; i < links.length; i += chunk) {
    const group = links.slice(i, i + chunk);
    folded += await transactionRetryingConflicts(
      db,
      async (tx) => {
        let rows = 0;
        for (const table of TABLES) rows += await foldTable(tx, table, group, from, to);
        return rows;
      },
      { attempts: MAX_ATTEMPTS },
    );
  }
  return { links: links.length, folded };
}

/**
 * Compacts every day from `from` up to the day before `before` (exclusive): a daily job
 * passes a few days back, so that late clicks are folded too. Today must not be compacted
 * while its clicks still arrive; that would bring back the hot row shards exist to avoid.
 */
export async function compactRollups(db: Database, from: Date, before: Date): Promise<CompactionResult> {
  const total: CompactionResult = { links: 0, folded: 0 };
  const first = Math.floor(from.getTime() / DAY_MS) * DAY_MS;
  const end = Math.floor(before.getTime() / DAY_MS) * DAY_MS;
  if (Number.isNaN(first) || Number.isNaN(end)) throw new RangeError('from and before must be valid dates');
  for (let day = first; day < end; day += DAY_MS) {
    const result = await compactDay(db, new Date(day));
    total.links += result.links;
    total.folded += result.folded;
  }
  return total;
}
