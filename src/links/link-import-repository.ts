/** Where imported links came from (`link_imports`): their fingerprints and the visits counted elsewhere. */
import type { Queryable } from '../storage/database.js';

export interface ImportedLinkRecord {
  linkId: string;
  sourceKey: string;
  sourceFormat: string;
  originalCode: string | null;
  importedClicks: number;
}

// Fixed forever: every importer takes it, so two imports of one file cannot both create a row.
const IMPORT_LOCK_ID = 7_412_0008;

export class LinkImportRepository {
  constructor(private readonly db: Queryable) {}

  /** Within a transaction: waits for any other import's batch to commit first. */
  async lock(tx: Queryable): Promise<void> {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [IMPORT_LOCK_ID]);
  }

  /** The keys among `keys` that an earlier import already recorded. */
  async existingKeys(keys: readonly string[], from: Queryable = this.db): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    const result = await from.query<{ source_key: string }>(
      'SELECT source_key FROM link_imports WHERE source_key = ANY($1::text[])',
      [keys],
    );
    return new Set(result.rows.map((row) => row.source_key));
  }

  async record(records: readonly ImportedLinkRecord[], tx: Queryable): Promise<void> {
    if (records.length === 0) return;
    await tx.query(
      `INSERT INTO link_imports (link_id, source_key, source_format, original_code, imported_clicks)
       SELECT r.link_id, r.source_key, r.source_format, r.original_code, r.imported_clicks
       FROM json_to_recordset($1::json) AS r(link_id bigint, source_key text, source_format text, original_code text, imported_clicks bigint)`,
      [JSON.stringify(records.map((r) => ({
        link_id: r.linkId, source_key: r.sourceKey, source_format: r.sourceFormat, original_code: r.originalCode, imported_clicks: r.importedClicks,
      })))],
    );
  }

  /** Visits the link had before it was imported; 0 for a link made here. */
  async importedClicks(linkId: string, from: Queryable = this.db): Promise<number> {
    const result = await from.query<{ clicks: string }>('SELECT imported_clicks::text AS clicks FROM link_imports WHERE link_id = $1', [linkId]);
    return Number(result.rows[0]?.clicks ?? 0);
  }
}
