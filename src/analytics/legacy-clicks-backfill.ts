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
 */
import { createHash } from 'node:crypto';
import type { IdentifiedClickEvent } from '../clicks/click-event.js';
import type { Database } from '../storage/database.js';
import { attributeClicks } from '../pipeline/click-attribution.js';
import { writeBatch, type WriteBatchResult } from './analytics-writer.js';
import { DatabaseVisitorSalts } from './database-visitor-salts.js';
import { ClickEnricher } from './enrich.js';

export interface LegacyBackfillOptions {
  /** Keep the clients' IP addresses in the new store (CLICKS_STORE_RAW_IP). */
  storeRawIp?: boolean;
  /** Heap blocks read per batch (8 KiB each, a few dozen clicks per block). */
  blocksPerBatch?: number;
  enricher?: ClickEnricher;
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

/** A UUIDv7 with the click's millisecond, the rest from a hash of the row. */
export function legacyClickId(tid: string, code: string, at: Date): string {
  const hash = createHash('sha256').update(`shunt legacy click\n${tid}\n${code}\n${at.toISOString()}`).digest('hex');
  const ms = at.getTime().toString(16).padStart(12, '0');
  const variant = ((Number.parseInt(hash.charAt(3), 16) & 0x3) | 0x8).toString(16);
  return `${ms.slice(0, 8)}-${ms.slice(8, 12)}-7${hash.slice(0, 3)}-${variant}${hash.slice(4, 7)}-${hash.slice(7, 19)}`;
}

function toEvent(row: LegacyRow): IdentifiedClickEvent {
  return {
    id: legacyClickId(row.tid, row.link_code, row.clicked_at),
    code: row.link_code,
    at: row.clicked_at,
    method: row.method === 'HEAD' ? 'HEAD' : 'GET',
    referrer: row.referrer,
    userAgent: row.user_agent,
    ip: row.ip,
  };
}

export async function backfillLegacyClicks(db: Database, options: LegacyBackfillOptions = {}): Promise<LegacyBackfillResult> {
  const blocksPerBatch = options.blocksPerBatch ?? 64;
  if (!Number.isInteger(blocksPerBatch) || blocksPerBatch < 1) throw new RangeError('blocksPerBatch must be a positive integer');
  // Salts only for days whose salt may still exist: older clicks get no visitor key and so
  // count as clicks but not as unique visitors.
  const enricher = options.enricher ?? new ClickEnricher({ salts: new DatabaseVisitorSalts(db), storeRawIp: options.storeRawIp === true });
  const total: LegacyBackfillResult = { read: 0, inserted: 0, duplicates: 0 };
  for (let block = 0; ; block += blocksPerBatch) {
    // Read again each time: rows appended during the copy are copied too.
    const size = await db.query<{ blocks: string }>(
      `SELECT (pg_relation_size('clicks') / current_setting('block_size')::bigint)::text AS blocks`,
    );
    if (block >= Number(size.rows[0]?.blocks ?? 0)) return total;
    const rows = await db.query<LegacyRow>(
      `SELECT ctid::text AS tid, link_code, clicked_at, method, referrer, user_agent, host(client_ip) AS ip
       FROM clicks WHERE ctid >= $1::tid AND ctid < $2::tid`,
      [`(${block},0)`, `(${block + blocksPerBatch},0)`],
    );
    if (rows.rows.length === 0) continue;
    // The old log names codes only: each click goes to the link that had its code then.
    const attributed = await attributeClicks(db, rows.rows.map(toEvent));
    const written = await writeBatch(db, await enricher.enrichBatch(attributed.events));
    total.read += rows.rows.length;
    total.inserted += written.inserted;
    total.duplicates += written.duplicates + attributed.orphaned;
    options.onBatch?.({ ...total });
  }
}

/**
 * Retires the old log if this store still has it: copies every row (see above), then drops
 * the table. Returns null when there was nothing to retire. Run at start-up after the SQL
 * migrations, by whichever process migrates; the copy and the drop are separate steps, and
 * an interrupted run copies nothing twice when it runs again.
 */
export async function retireLegacyClicks(db: Database, options: LegacyBackfillOptions = {}): Promise<LegacyBackfillResult | null> {
  const present = async (): Promise<boolean> =>
    (await db.query<{ present: boolean }>(`SELECT to_regclass('clicks') IS NOT NULL AS present`)).rows[0]?.present === true;
  if (!(await present())) return null;
  let result: LegacyBackfillResult;
  try {
    result = await backfillLegacyClicks(db, options);
  } catch (error) {
    // Another instance starting at the same time finished first and dropped the table.
    if (!(await present())) return null;
    throw error;
  }
  // Rows appended between the last read and the drop would be lost: nothing writes the old
  // log any more (the recorder of this version writes events), so there are none.
  await db.query('DROP TABLE IF EXISTS clicks');
  return result;
}
