/**
 * Moves the analytics stored before they were keyed by link (migrations/0005) to the link
 * that owned them, in small transactions, so that no table is locked for longer than one
 * batch. Run by the workers' maintenance until it reports done; any number of workers may
 * run it at once (each batch takes rows another batch cannot take again), and an
 * interrupted run carries on where it stopped.
 *
 * Which link a row of a code belongs to: the link that has the code now, if it already
 * existed at the row's time (its bucket's end, for rollups). Rows of a code whose link was
 * deleted before the upgrade belong to no link: raw events are marked link 0 (unreachable,
 * dropped with their month by retention), rollup rows are dropped, as the purge of a
 * deleted link would have dropped them. A rollup bucket that a deleted link and the link
 * that took its code over both clicked in (the day the code changed hands) cannot be split
 * and goes to the later link: rollups never held more than the code.
 *
 * Steps, in order: the index on raw events by link, partition by partition (CONCURRENTLY on
 * PostgreSQL, so writers carry on); the link of every raw event; the rollup rows; the
 * visitor sets of the days that may still see clicks; then the legacy tables are dropped.
 */
import type { Database, Queryable } from '../storage/database.js';
import { oldestKeptVisitorDay } from './analytics-retention.js';

const DONE_SETTING = 'analytics_link_identity_moved';
const PARENT_INDEX = 'click_events_link_at';

interface LegacyTable {
  name: string;
  legacy: string;
  /** The bucket's length, to tell whether the link existed before the bucket ended. */
  interval: string;
  /** Columns besides the code. */
  columns: readonly string[];
  key: readonly string[];
  counters: readonly string[];
}

const LEGACY_TABLES: readonly LegacyTable[] = [
  { name: 'link_clicks_day', legacy: 'legacy_link_clicks_day', interval: '1 day', columns: ['bucket', 'shard'], key: ['bucket', 'shard'], counters: ['human', 'bot', 'visitors', 'human_visitors'] },
  { name: 'link_clicks_minute', legacy: 'legacy_link_clicks_minute', interval: '1 minute', columns: ['bucket', 'shard'], key: ['bucket', 'shard'], counters: ['human', 'bot'] },
  { name: 'link_clicks_hour', legacy: 'legacy_link_clicks_hour', interval: '1 hour', columns: ['bucket', 'shard'], key: ['bucket', 'shard'], counters: ['human', 'bot'] },
  {
    name: 'link_breakdown_day', legacy: 'legacy_link_breakdown_day', interval: '1 day',
    columns: ['bucket', 'dimension', 'value', 'shard'], key: ['bucket', 'dimension', 'value', 'shard'], counters: ['human', 'bot'],
  },
  {
    name: 'link_agents_day', legacy: 'legacy_link_agents_day', interval: '1 day',
    columns: ['bucket', 'browser', 'os', 'device', 'shard'], key: ['bucket', 'browser', 'os', 'device', 'shard'], counters: ['human', 'bot'],
  },
];

export interface LinkIdentityMoveOptions {
  /** Rows per transaction. */
  batchSize?: number;
  now?: () => number;
}

export interface LinkIdentityMoveResult {
  /** False when there was nothing left to move (an earlier run finished). */
  ran: boolean;
  indexedPartitions: number;
  events: number;
  rollupRows: number;
}

export async function moveAnalyticsToLinks(db: Database, options: LinkIdentityMoveOptions = {}): Promise<LinkIdentityMoveResult> {
  const batchSize = options.batchSize ?? 5000;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError('batchSize must be a positive integer');
  const result: LinkIdentityMoveResult = { ran: false, indexedPartitions: 0, events: 0, rollupRows: 0 };
  const done = await db.query('SELECT 1 FROM settings WHERE name = $1', [DONE_SETTING]);
  if (done.rows.length > 0) return result;
  result.ran = true;
  result.indexedPartitions = await indexPartitions(db);
  for (;;) {
    const moved = await attributeEvents(db, batchSize);
    result.events += moved;
    if (moved === 0) break;
  }
  for (const table of LEGACY_TABLES) {
    if (!(await exists(db, table.legacy))) continue;
    for (;;) {
      const moved = await moveRollupBatch(db, table, batchSize);
      result.rollupRows += moved;
      if (moved === 0) break;
    }
  }
  await rebuildVisitorSets(db, oldestKeptVisitorDay(options.now?.() ?? Date.now()));
  await db.transaction(async (tx) => {
    for (const table of LEGACY_TABLES) await tx.query(`DROP TABLE IF EXISTS ${table.legacy}`);
    await tx.query('INSERT INTO settings (name, value) VALUES ($1, now()::text) ON CONFLICT (name) DO NOTHING', [DONE_SETTING]);
  });
  return result;
}

async function exists(db: Queryable, table: string): Promise<boolean> {
  const found = await db.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [table]);
  return found.rows[0]?.present === true;
}

/**
 * Builds the partitions' indexes of the parent index the migration declared ON ONLY the
 * parent, and attaches them; the parent index is valid once every partition has its own.
 * Partitions created since the migration got theirs when they were attached.
 */
async function indexPartitions(db: Database): Promise<number> {
  const missing = await db.query<{ partition: string }>(
    `SELECT c.relname AS partition FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'click_events'::regclass AND NOT EXISTS (
       SELECT 1 FROM pg_inherits AS ii JOIN pg_index AS x ON x.indexrelid = ii.inhrelid
       WHERE ii.inhparent = $1::regclass AND x.indrelid = c.oid)
     ORDER BY 1`,
    [PARENT_INDEX],
  );
  for (const { partition } of missing.rows) {
    const index = `${partition}_link_at`;
    // A concurrent build that failed leaves an invalid index behind: built again.
    const left = await db.query<{ valid: boolean }>(
      'SELECT x.indisvalid AS valid FROM pg_index AS x WHERE x.indexrelid = to_regclass($1)',
      [index],
    );
    if (left.rows[0]?.valid === false) await db.query(`DROP INDEX ${index}`);
    // CONCURRENTLY: writers of the partition are not held for the build. The embedded
    // store is one connection, where there is nobody to hold.
    const concurrently = db.kind === 'postgres' ? 'CONCURRENTLY' : '';
    await db.query(`CREATE INDEX ${concurrently} IF NOT EXISTS ${index} ON ${partition} (link_id, at, id)`);
    await db.query(`ALTER INDEX ${PARENT_INDEX} ATTACH PARTITION ${index}`);
  }
  return missing.rows.length;
}

/** Gives one batch of raw events without a link theirs (or 0); returns how many. */
async function attributeEvents(db: Queryable, batchSize: number): Promise<number> {
  const result = await db.query(
    `UPDATE click_events AS e SET link_id = coalesce(l.id, 0)
     FROM (SELECT id, at, code FROM click_events WHERE link_id IS NULL LIMIT $1) AS b
       LEFT JOIN links AS l ON l.code = b.code AND l.created_at <= b.at
     WHERE e.id = b.id AND e.at = b.at AND e.link_id IS NULL`,
    [batchSize],
  );
  return result.rowCount ?? 0;
}

/** Takes a batch of rows out of a legacy table and adds those that have a link to the new one. */
async function moveRollupBatch(db: Database, table: LegacyTable, batchSize: number): Promise<number> {
  const columns = table.columns.join(', ');
  const counters = table.counters.join(', ');
  const add = table.counters.map((column) => `${column} = r.${column} + excluded.${column}`).join(', ');
  const result = await db.query<{ moved: string }>(
    `WITH batch AS (
       DELETE FROM ${table.legacy} WHERE ctid = ANY (ARRAY(SELECT ctid FROM ${table.legacy} LIMIT $1))
       RETURNING code, ${columns}, ${counters}
     ), added AS (
       INSERT INTO ${table.name} AS r (link_id, ${columns}, ${counters})
       SELECT l.id, ${table.columns.map((c) => `b.${c}`).join(', ')}, ${table.counters.map((c) => `b.${c}`).join(', ')}
       FROM batch AS b JOIN links AS l ON l.code = b.code AND l.created_at < b.bucket + interval '${table.interval}'
       ORDER BY l.id, ${table.key.map((c) => `b.${c}`).join(', ')}
       ON CONFLICT (link_id, ${table.key.join(', ')}) DO UPDATE SET ${add}
     )
     SELECT count(*)::text AS moved FROM batch`,
    [batchSize],
  );
  return Number(result.rows[0]?.moved ?? 0);
}

/**
 * Members of the visitor sets are now made from the link (rollup-aggregation.ts): the days
 * that may still see clicks get them again from their raw events, so a visitor seen before
 * the upgrade is not counted as new again after it. The SQL hash is visitorSetKey's.
 */
async function rebuildVisitorSets(db: Queryable, from: Date): Promise<void> {
  await db.query(
    `INSERT INTO link_visitors (day, key, human)
     SELECT date_trunc('day', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
            substr(encode(sha256(convert_to(link_id::text || ':' || encode(visitor, 'hex'), 'UTF8')), 'hex'), 1, 32)::uuid,
            bool_or(NOT bot)
     FROM click_events WHERE at >= $1 AND link_id > 0 AND visitor IS NOT NULL
     GROUP BY 1, 2
     ON CONFLICT (day, key) DO UPDATE SET human = link_visitors.human OR excluded.human`,
    [from.toISOString()],
  );
}
