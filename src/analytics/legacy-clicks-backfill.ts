/**
 * Copies the raw clicks of the old `clicks` log (migrations/0001_core.sql) into the
 * analytics store, enriched and counted in the rollups like any new click, so a link's
 * stats include its history. For the step that retires the old log: stop its writer, run
 * this, then drop the table.
 *
 * The old rows have no id. Each gets a UUIDv7 made from the row itself: the millisecond of
 * its click, then a hash of its physical position (ctid) and content. The log is only ever
 * appended to, so a row keeps its ctid, and a run interrupted part way and run again gives
 * every row the id it had the first time: the rows already copied are recognised as
 * duplicates and nothing is counted twice. (A VACUUM FULL or CLUSTER of `clicks` between
 * two runs would move rows and break that; nothing in Shunt does either.)
 *
 * The log is read in ranges of heap blocks (a TID range scan): it has no index, and each
 * range reads only its own blocks, so the whole copy reads the table once.
 *
 * The copy runs in the migration's transaction, under its lock (see retireLegacyClicks and
 * ADR 0012): once per migration run, never by two instances at once, all or nothing.
 */
import { createHash } from 'node:crypto';
import type { IdentifiedClickEvent } from '../clicks/click-event.js';
import type { Queryable } from '../storage/database.js';
import { attributeClicks } from '../pipeline/click-attribution.js';
import { writeBatchInTransaction, type WriteBatchResult } from './analytics-writer.js';
import { DatabaseVisitorSalts } from './database-visitor-salts.js';
import { ClickEnricher } from './enrich.js';

export interface LegacyBackfillOptions {
  /** Keep the clients' IP addresses in the new store (CLICKS_STORE_RAW_IP). */
  storeRawIp?: boolean;
  /** Heap blocks read per batch (8 KiB each, a few dozen clicks per block). */
  blocksPerBatch?: number;
  enricher?: ClickEnricher;
  /** Times the log was emptied before this copy (see legacyClickId). */
  generation?: number;
  /** Called after each batch, for progress logs. */
  onBatch?: (progress: LegacyBackfillResult) => void;
}

export interface LegacyBackfillResult extends Omit<WriteBatchResult, 'stored'> {
  /** Rows read from the old log. */
  read: number;
}

type LegacyRow = {
  tid: string;
  link_code: string;
  clicked_at: Date;
  method: string;
  referrer: string | null;
  user_agent: string | null;
  ip: string | null;
};

/**
 * A UUIDv7 with the click's millisecond, the rest from a hash of the row. `generation`:
 * how many times the log was emptied before (its row positions start again each time).
 */
export function legacyClickId(tid: string, code: string, at: Date, generation = 0): string {
  const row = `shunt legacy click\n${tid}\n${code}\n${at.toISOString()}${generation === 0 ? '' : `\n${generation}`}`;
  const hash = createHash('sha256').update(row).digest('hex');
  const ms = at.getTime().toString(16).padStart(12, '0');
  const variant = ((Number.parseInt(hash.charAt(3), 16) & 0x3) | 0x8).toString(16);
  return `${ms.slice(0, 8)}-${ms.slice(8, 12)}-7${hash.slice(0, 3)}-${variant}${hash.slice(4, 7)}-${hash.slice(7, 19)}`;
}

function toEvent(row: LegacyRow, generation: number): IdentifiedClickEvent {
  return {
    id: legacyClickId(row.tid, row.link_code, row.clicked_at, generation),
    code: row.link_code,
    at: row.clicked_at,
    method: row.method === 'HEAD' ? 'HEAD' : 'GET',
    referrer: row.referrer,
    userAgent: row.user_agent,
    ip: row.ip,
  };
}

/** `tx`: a transaction; the copy is all or nothing. */
export async function backfillLegacyClicks(tx: Queryable, options: LegacyBackfillOptions = {}): Promise<LegacyBackfillResult> {
  const blocksPerBatch = options.blocksPerBatch ?? 64;
  if (!Number.isInteger(blocksPerBatch) || blocksPerBatch < 1) throw new RangeError('blocksPerBatch must be a positive integer');
  // Salts only for days whose salt may still exist: older clicks get no visitor key and so
  // count as clicks but not as unique visitors.
  const enricher = options.enricher ?? new ClickEnricher({ salts: new DatabaseVisitorSalts(tx), storeRawIp: options.storeRawIp === true });
  const total: LegacyBackfillResult = { read: 0, inserted: 0, duplicates: 0 };
  for (let block = 0; ; block += blocksPerBatch) {
    // Read again each time: rows appended during the copy are copied too.
    const size = await tx.query<{ blocks: string }>(
      `SELECT (pg_relation_size('clicks') / current_setting('block_size')::bigint)::text AS blocks`,
    );
    if (block >= Number(size.rows[0]?.blocks ?? 0)) return total;
    const rows = await tx.query<LegacyRow>(
      `SELECT ctid::text AS tid, link_code, clicked_at, method, referrer, user_agent, host(client_ip) AS ip
       FROM clicks WHERE ctid >= $1::tid AND ctid < $2::tid`,
      [`(${block},0)`, `(${block + blocksPerBatch},0)`],
    );
    if (rows.rows.length === 0) continue;
    // The old log names codes only: each click goes to the link that had its code then.
    const attributed = await attributeClicks(tx, rows.rows.map((row) => toEvent(row, options.generation ?? 0)));
    const written = await writeBatchInTransaction(tx, await enricher.enrichBatch(attributed.events));
    total.read += rows.rows.length;
    total.inserted += written.inserted;
    total.duplicates += written.duplicates + attributed.orphaned;
    options.onBatch?.({ ...total });
  }
}

/**
 * Copies the old log into the analytics store and empties it, if this store still has it
 * (null when it does not). Runs in the migration's transaction, holding the migration lock,
 * so one instance does it, once per migration run, never racing another.
 *
 * The table is kept, empty, instead of dropped: during a rolling upgrade, instances of the
 * previous version still append to it, and a dropped table would fail (and lose) their
 * writes. While the copy runs, their inserts wait (SHARE lock) rather than land in rows
 * already read; what they write afterwards is copied by the next migration run: every new
 * instance's start, and `shunt migrate` after the rollout. A later release drops the table.
 */
const GENERATION_SETTING = 'legacy_clicks_generation';

export async function retireLegacyClicks(tx: Queryable, options: LegacyBackfillOptions = {}): Promise<LegacyBackfillResult | null> {
  const present = await tx.query<{ present: boolean }>(`SELECT to_regclass('clicks') IS NOT NULL AS present`);
  if (present.rows[0]?.present !== true) return null;
  await tx.query('LOCK TABLE clicks IN SHARE MODE');
  const setting = await tx.query<{ value: string }>(`SELECT value FROM settings WHERE name = '${GENERATION_SETTING}'`);
  const generation = Number(setting.rows[0]?.value ?? 0);
  const result = await backfillLegacyClicks(tx, { ...options, generation });
  if (result.read === 0) return result;
  // Emptied, the table gives its row positions out again: later rows get ids of a new generation.
  await tx.query('TRUNCATE clicks');
  await tx.query(
    `INSERT INTO settings (name, value) VALUES ('${GENERATION_SETTING}', $1) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`,
    [String(generation + 1)],
  );
  return result;
}
