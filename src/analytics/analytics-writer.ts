/**
 * Stores a batch of enriched clicks: the raw events and every rollup, in one transaction.
 *
 * Idempotent by event id: the raw insert skips events already stored (ON CONFLICT on the
 * key (id, at), see migrations/0003_analytics.sql) and returns the ids it did insert, and
 * only those clicks are counted in the rollups. A batch redelivered after a crash, whole or
 * in part, or two workers given the same events at once, count each event once: the second
 * inserter of an id waits for the first to commit and then skips it.
 *
 * Cost per batch is a fixed number of statements whatever its size. The raw events go in by
 * COPY where the connection has it. On PostgreSQL straight into click_events, since almost
 * every batch is new (copyDirect); a batch that meets an event already stored fails that COPY
 * on the key and is written again through a stage table with ON CONFLICT (insertFromStage),
 * which PGlite always uses. The rollups are folded in memory first
 * (rollup-aggregation.ts) and each table gets one multi-row upsert, its rows in one JSON
 * parameter (json_to_recordset), sorted by key so that concurrent writers lock
 * shared rows in the same order. JSON rather than one array per column: the driver escapes
 * every element of an array parameter in JavaScript, which showed in profiles, while
 * JSON.stringify is native; the stored values are the same.
 */
import { randomInt } from 'node:crypto';
import { copyRow } from '../storage/copy-text.js';
import { isUniqueViolation, transactionRetryingConflicts, type CopyIn, type Database, type Queryable } from '../storage/database.js';
import type { EnrichedClick } from './enriched-click.js';
import { aggregateBatch, countVisitors, type AgentRow, type BreakdownRow, type CounterRow, type DayRow, type VisitorRow } from './rollup-aggregation.js';

/** Counter rows per key: enough for a hot link's writers to rarely meet on one row. */
export const ROLLUP_SHARDS = 8;
/** Attempts of a batch that lost a deadlock or serialization race (the work is all rolled back). */
const MAX_ATTEMPTS = 3;

export interface WriteBatchOptions {
  /**
   * The counter shard this batch adds to, 0 to ROLLUP_SHARDS - 1. Random by default; a worker
   * may pass its own index instead, so concurrent workers never share a counter row.
   */
  shard?: number;
  /** Told of each attempt that lost a deadlock or serialization race and is being retried. */
  onRetry?: (error: unknown, attempt: number) => void;
}

export interface WriteBatchResult {
  /** Events stored (and counted) by this call. */
  inserted: number;
  /** Events of the batch that were already stored, or repeated within it. */
  duplicates: number;
  /** The clicks this call stored, in id order: what may be announced as new. */
  stored: readonly EnrichedClick[];
}

/** First occurrence of each id, in id order: overlapping batches then lock ids in one order. */
function distinctById(clicks: readonly EnrichedClick[]): EnrichedClick[] {
  const byId = new Map<string, EnrichedClick>();
  for (const click of clicks) {
    const id = click.id.toLowerCase();
    if (!byId.has(id)) byId.set(id, click.id === id ? click : { ...click, id });
  }
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export async function writeBatch(db: Database, clicks: readonly EnrichedClick[], options: WriteBatchOptions = {}): Promise<WriteBatchResult> {
  if (clicks.length === 0) return { inserted: 0, duplicates: 0, stored: [] };
  const shard = options.shard ?? randomInt(ROLLUP_SHARDS);
  if (!Number.isInteger(shard) || shard < 0 || shard >= ROLLUP_SHARDS) throw new RangeError(`shard must be 0-${ROLLUP_SHARDS - 1}`);
  const events = distinctById(clicks);
  let createdStage: CopyIn | undefined;
  const write = (path: RawPath): Promise<EnrichedClick[]> =>
    transactionRetryingConflicts(
      db,
      (tx) => {
        createdStage = undefined;
        return writeInTransaction(tx, events, shard, path, (copyIn) => {
          createdStage = copyIn;
        });
      },
      { attempts: MAX_ATTEMPTS, ...(options.onRetry === undefined ? {} : { onRetry: options.onRetry }) },
    );
  let stored: EnrichedClick[];
  if (db.kind !== 'postgres') {
    // PGlite: the direct COPY was no cheaper there, and grew slower round after round in the
    // writer benchmark (docs/benchmarks.md, "Click ingest"), so it keeps the stage.
    stored = await write('stage');
  } else {
    try {
      stored = await write('direct');
    } catch (error) {
      // A redelivered batch (or one that overlaps another worker's): nothing of the first try
      // was kept, and the stage path skips the events already stored.
      if (!isUniqueViolation(error)) throw error;
      stored = await write('stage');
    }
  }
  // Committed: the stage now exists for good on that connection.
  if (createdStage !== undefined) staged.add(createdStage);
  return { inserted: stored.length, duplicates: clicks.length - stored.length, stored };
}

/**
 * How the raw events go in: `direct` copies them into click_events and fails with a unique
 * violation if any is stored already (only its key is unique, and the rollup statements
 * never raise one); `stage` skips those with ON CONFLICT: after such a failure, on PGlite, and
 * for a caller that cannot retry.
 */
type RawPath = 'direct' | 'stage';

/**
 * Like writeBatch, inside a transaction the caller holds (no retry: the caller's to decide).
 * Whether that transaction commits is not known here, so a stage it creates is not remembered.
 */
export async function writeBatchInTransaction(tx: Queryable, clicks: readonly EnrichedClick[]): Promise<Omit<WriteBatchResult, 'stored'>> {
  const stored = clicks.length === 0 ? [] : await writeInTransaction(tx, distinctById(clicks), randomInt(ROLLUP_SHARDS), 'stage', () => undefined);
  return { inserted: stored.length, duplicates: clicks.length - stored.length };
}

/** `events` have distinct lower-case ids, sorted. Returns those that were new. */
async function writeInTransaction(
  tx: Queryable,
  events: readonly EnrichedClick[],
  shard: number,
  path: RawPath,
  onStageCreated: (copyIn: CopyIn) => void,
): Promise<EnrichedClick[]> {
  const fresh = path === 'direct' && tx.copyIn !== undefined ? await copyDirect(tx.copyIn, events) : await insertEvents(tx, events, onStageCreated);
  if (fresh.length === 0) return fresh;
  const rollups = aggregateBatch(fresh);
  await recordVisitors(tx, rollups.visitors, rollups.day);
  // The day rows first, as compaction takes them first (rollup-compaction.ts): a batch that
  // meets a day being folded then waits before it writes anything else of that day, and its
  // rows cannot end up on a shard whose day row was already folded away.
  await upsertDays(tx, rollups.day, shard);
  await upsertCounters(tx, 'link_clicks_minute', rollups.minute, shard);
  await upsertCounters(tx, 'link_clicks_hour', rollups.hour, shard);
  await upsertBreakdowns(tx, rollups.breakdown, shard);
  await upsertAgents(tx, rollups.agents, shard);
  return fresh;
}

/**
 * A bucket's ISO text. Rows of a batch share few buckets, and formatting a date for every row
 * showed up in profiles, so the texts of recent buckets are kept.
 */
const isoTexts = new Map<number, string>();
function iso(ms: number): string {
  let text = isoTexts.get(ms);
  if (text === undefined) {
    if (isoTexts.size >= 4096) isoTexts.clear();
    text = new Date(ms).toISOString();
    isoTexts.set(ms, text);
  }
  return text;
}

/** The events this statement inserted; those already stored are left out. */
async function insertEvents(tx: Queryable, events: readonly EnrichedClick[], onStageCreated: (copyIn: CopyIn) => void): Promise<EnrichedClick[]> {
  const result = tx.copyIn === undefined ? await insertFromJson(tx, events) : await insertFromStage(tx, tx.copyIn, events, onStageCreated);
  if (result.rows.length === events.length) return [...events];
  const inserted = new Set(result.rows.map((row) => row.id));
  return events.filter((event) => inserted.has(event.id));
}

const EVENT_COLUMNS = 'id, at, link_id, code, method, bot, device, referrer_host, country, browser, os, visitor, ip, user_agent, referrer';
const EVENT_SOURCE = 'id, at, link_id, code, method, bot, device, referrer_host, country, browser, os, decode(visitor, \'hex\'), ip, user_agent, referrer';
/** The raw events as the statements below read them: `visitor` is hex text, decoded on insert. */
const EVENT_TYPES = `id uuid, at timestamptz, link_id bigint, code text, method text, bot boolean, device text, referrer_host text, country text,
  browser text, os text, visitor text, ip inet, user_agent text, referrer text`;
const STAGE = 'click_events_stage';

/**
 * Connections (known by their COPY) on which the stage table exists: created by a
 * transaction that committed. Weak, so a connection that goes takes its entry with it.
 */
const staged = new WeakSet<CopyIn>();

/**
 * COPY into a temporary stage table, then one INSERT ... SELECT from it: COPY is the cheapest
 * way in for rows, and the INSERT keeps ON CONFLICT and RETURNING, which idempotency needs.
 * The stage lives as long as its connection and empties itself at each commit. Its rows are
 * read back sorted by id, so that concurrent writers lock the ids they share in one order
 * (the copy order would do on a fresh heap, but nothing promises it; the sort of one batch
 * costs little).
 */
async function insertFromStage(
  tx: Queryable,
  copyIn: CopyIn,
  events: readonly EnrichedClick[],
  onStageCreated: (copyIn: CopyIn) => void,
): Promise<{ rows: { id: string }[] }> {
  if (!staged.has(copyIn)) {
    await tx.query(`CREATE TEMPORARY TABLE IF NOT EXISTS ${STAGE} (${EVENT_TYPES}) ON COMMIT DELETE ROWS`);
    onStageCreated(copyIn);
  }
  await copyIn.copy(STAGE, eventRows(events, false));
  return tx.query<{ id: string }>(`INSERT INTO click_events (${EVENT_COLUMNS}) SELECT ${EVENT_SOURCE} FROM ${STAGE} ORDER BY id ON CONFLICT (id, at) DO NOTHING RETURNING id`);
}

/** Every event is new, or the COPY fails on the key and nothing of it is kept. */
async function copyDirect(copyIn: CopyIn, events: readonly EnrichedClick[]): Promise<EnrichedClick[]> {
  await copyIn.copy(`click_events (${EVENT_COLUMNS})`, eventRows(events, true));
  return [...events];
}

/**
 * The events in COPY text, in id order. `visitor` is hex text, which the stage decodes on
 * insert; straight into click_events it is written as bytea's own hex input (`\x…`).
 */
function eventRows(events: readonly EnrichedClick[], byteaVisitor: boolean): string {
  let data = '';
  for (const e of events) {
    data += copyRow([
      e.id,
      e.at.toISOString(),
      e.linkId,
      e.code,
      e.method,
      e.bot,
      e.device,
      e.referrerHost,
      e.country,
      e.browser,
      e.os,
      e.visitor === null || !byteaVisitor ? e.visitor : `\\x${e.visitor}`,
      e.ip,
      e.userAgent,
      e.referrer,
    ]);
  }
  return data;
}

/** Without COPY (a transaction proxied from another thread): the rows in one JSON parameter. */
function insertFromJson(tx: Queryable, events: readonly EnrichedClick[]): Promise<{ rows: { id: string }[] }> {
  return tx.query<{ id: string }>(
    `INSERT INTO click_events (${EVENT_COLUMNS}) SELECT ${EVENT_SOURCE} FROM json_to_recordset($1::json) AS u(${EVENT_TYPES})
     ON CONFLICT (id, at) DO NOTHING
     RETURNING id`,
    [
      JSON.stringify(
        events.map((e) => ({
          id: e.id,
          at: e.at.toISOString(),
          link_id: e.linkId,
          code: e.code,
          method: e.method,
          bot: e.bot,
          device: e.device,
          referrer_host: e.referrerHost,
          country: e.country,
          browser: e.browser,
          os: e.os,
          visitor: e.visitor,
          ip: e.ip,
          user_agent: e.userAgent,
          referrer: e.referrer,
        })),
      ),
    ],
  );
}

/**
 * Adds the batch's visitors to the day sets and counts the new ones into the day rows. Two
 * statements: the insert finds visitors new to the day; the update finds those the store
 * had seen only as bots and who now clicked as humans. The update is a separate statement
 * so that it sees a visitor row a concurrent writer committed while the insert waited on it.
 */
async function recordVisitors(tx: Queryable, visitors: readonly VisitorRow[], days: DayRow[]): Promise<void> {
  if (visitors.length === 0) return;
  const member = (day: number, key: string): string => `${day} ${key}`;
  const inserted = await tx.query<{ day: Date; key: string }>(
    `INSERT INTO link_visitors (day, key, human)
     SELECT day, key, human FROM json_to_recordset($1::json) AS u(day timestamptz, key uuid, human boolean)
     ON CONFLICT (day, key) DO NOTHING
     RETURNING day, key`,
    [JSON.stringify(visitors.map((v) => ({ day: iso(v.day), key: v.key, human: v.human })))],
  );
  const freshKeys = new Set(inserted.rows.map((row) => member(row.day.getTime(), row.key)));
  const fresh = visitors.filter((v) => freshKeys.has(member(v.day, v.key)));
  const known = visitors.filter((v) => v.human && !freshKeys.has(member(v.day, v.key)));
  let nowHuman: VisitorRow[] = [];
  if (known.length > 0) {
    const updated = await tx.query<{ day: Date; key: string }>(
      `UPDATE link_visitors AS v SET human = true
       FROM json_to_recordset($1::json) AS u(day timestamptz, key uuid)
       WHERE v.day = u.day AND v.key = u.key AND NOT v.human
       RETURNING v.day, v.key`,
      [JSON.stringify(known.map((v) => ({ day: iso(v.day), key: v.key })))],
    );
    const upgraded = new Set(updated.rows.map((row) => member(row.day.getTime(), row.key)));
    nowHuman = known.filter((v) => upgraded.has(member(v.day, v.key)));
  }
  countVisitors(days, fresh, nowHuman);
}

async function upsertCounters(tx: Queryable, table: 'link_clicks_minute' | 'link_clicks_hour', rows: readonly CounterRow[], shard: number): Promise<void> {
  await tx.query(
    `INSERT INTO ${table} AS r (link_id, bucket, shard, human, bot)
     SELECT link_id, bucket, $1, human, bot FROM json_to_recordset($2::json) AS u(link_id bigint, bucket timestamptz, human bigint, bot bigint)
     ON CONFLICT (link_id, bucket, shard) DO UPDATE SET human = r.human + excluded.human, bot = r.bot + excluded.bot`,
    [shard, JSON.stringify(rows.map((r) => ({ link_id: r.linkId, bucket: iso(r.bucket), human: r.human, bot: r.bot })))],
  );
}

async function upsertDays(tx: Queryable, rows: readonly DayRow[], shard: number): Promise<void> {
  await tx.query(
    `INSERT INTO link_clicks_day AS r (link_id, bucket, shard, human, bot, visitors, human_visitors)
     SELECT link_id, bucket, $1, human, bot, visitors, human_visitors
     FROM json_to_recordset($2::json)
       AS u(link_id bigint, bucket timestamptz, human bigint, bot bigint, visitors bigint, human_visitors bigint)
     ON CONFLICT (link_id, bucket, shard) DO UPDATE SET human = r.human + excluded.human, bot = r.bot + excluded.bot,
       visitors = r.visitors + excluded.visitors, human_visitors = r.human_visitors + excluded.human_visitors`,
    [
      shard,
      JSON.stringify(
        rows.map((r) => ({ link_id: r.linkId, bucket: iso(r.bucket), human: r.human, bot: r.bot, visitors: r.visitors, human_visitors: r.humanVisitors })),
      ),
    ],
  );
}

async function upsertBreakdowns(tx: Queryable, rows: readonly BreakdownRow[], shard: number): Promise<void> {
  await tx.query(
    `INSERT INTO link_breakdown_day AS r (link_id, bucket, dimension, value, shard, human, bot)
     SELECT link_id, bucket, dimension, value, $1, human, bot
     FROM json_to_recordset($2::json) AS u(link_id bigint, bucket timestamptz, dimension text, value text, human bigint, bot bigint)
     ON CONFLICT (link_id, bucket, dimension, value, shard) DO UPDATE SET human = r.human + excluded.human, bot = r.bot + excluded.bot`,
    [
      shard,
      JSON.stringify(rows.map((r) => ({ link_id: r.linkId, bucket: iso(r.bucket), dimension: r.dimension, value: r.value, human: r.human, bot: r.bot }))),
    ],
  );
}

async function upsertAgents(tx: Queryable, rows: readonly AgentRow[], shard: number): Promise<void> {
  await tx.query(
    `INSERT INTO link_agents_day AS r (link_id, bucket, browser, os, device, shard, human, bot)
     SELECT link_id, bucket, browser, os, device, $1, human, bot
     FROM json_to_recordset($2::json)
       AS u(link_id bigint, bucket timestamptz, browser text, os text, device text, human bigint, bot bigint)
     ON CONFLICT (link_id, bucket, browser, os, device, shard) DO UPDATE SET human = r.human + excluded.human, bot = r.bot + excluded.bot`,
    [
      shard,
      JSON.stringify(
        rows.map((r) => ({ link_id: r.linkId, bucket: iso(r.bucket), browser: r.browser, os: r.os, device: r.device, human: r.human, bot: r.bot })),
      ),
    ],
  );
}
