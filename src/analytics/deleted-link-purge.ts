/**
 * Removes the analytics of deleted links once their retention is over. Deleting a link
 * already makes its analytics unreachable (they are keyed by links.id, which no later link
 * gets: migrations/0005); they are kept a while only so that an accidental deletion can still
 * be investigated by an operator, then go: raw events, rollups and export jobs. Visitor sets
 * hold only hashes and are pruned with their day (analytics-retention.ts).
 *
 * Every delete is bounded (`batchSize` rows per statement, `maxLinks` links per run), so the
 * purge never holds many row locks or one long transaction, and a link is forgotten
 * (its deleted_links row) only after everything of it is gone: an interrupted run carries on
 * at the next one. Several workers may run it at once; they only repeat each other's deletes.
 */
import type { Queryable } from '../storage/database.js';

/** Tables keyed by link_id; the raw events are handled apart (partitioned, so no ctid). */
const ROLLUP_TABLES = ['link_clicks_minute', 'link_clicks_hour', 'link_clicks_day', 'link_breakdown_day', 'link_agents_day'] as const;

export interface PurgeOptions {
  /** Rows per delete statement. */
  batchSize?: number;
  /** Links per run. */
  maxLinks?: number;
}

export interface PurgeResult {
  links: number;
  rows: number;
}

export async function purgeDeletedLinks(db: Queryable, deletedBefore: Date, options: PurgeOptions = {}): Promise<PurgeResult> {
  const batchSize = options.batchSize ?? 5000;
  const maxLinks = options.maxLinks ?? 100;
  const due = await db.query<{ link_id: string }>(
    'SELECT link_id::text AS link_id FROM deleted_links WHERE deleted_at < $1 ORDER BY deleted_at LIMIT $2',
    [deletedBefore.toISOString(), maxLinks],
  );
  const result: PurgeResult = { links: 0, rows: 0 };
  for (const { link_id: linkId } of due.rows) {
    result.rows += await deleteInBatches(
      db,
      `DELETE FROM click_events WHERE (id, at) IN (SELECT id, at FROM click_events WHERE link_id = $1 LIMIT $2)`,
      linkId,
      batchSize,
    );
    for (const table of ROLLUP_TABLES) {
      result.rows += await deleteInBatches(
        db,
        `DELETE FROM ${table} WHERE ctid = ANY (ARRAY(SELECT ctid FROM ${table} WHERE link_id = $1 LIMIT $2))`,
        linkId,
        batchSize,
      );
    }
    await db.query('DELETE FROM export_jobs WHERE link_id = $1', [linkId]);
    await db.query('DELETE FROM deleted_links WHERE link_id = $1', [linkId]);
    result.links += 1;
  }
  return result;
}

async function deleteInBatches(db: Queryable, statement: string, linkId: string, batchSize: number): Promise<number> {
  let total = 0;
  for (;;) {
    const deleted = (await db.query(statement, [linkId, batchSize])).rowCount ?? 0;
    total += deleted;
    if (deleted < batchSize) return total;
  }
}
