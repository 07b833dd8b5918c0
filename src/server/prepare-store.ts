/**
 * Brings a store up to this version: the SQL migrations, then the one data step SQL cannot
 * do, retiring the old click log into the analytics store (each old click needs the
 * worker's enrichment), in the migration's transaction and under its lock. Run by
 * whichever process migrates.
 */
import type { Logger } from 'pino';
import { retireLegacyClicks } from '../analytics/legacy-clicks-backfill.js';
import type { Config } from '../config/config.js';
import type { Database } from '../storage/database.js';
import { loadMigrations, migrate } from '../storage/migrate.js';
import type { LegacyBackfillResult } from '../analytics/legacy-clicks-backfill.js';

export async function prepareStore(db: Database, config: Config, logger: Pick<Logger, 'info'>): Promise<string[]> {
  const outcome: { retired: LegacyBackfillResult | null } = { retired: null };
  const applied = await migrate(db, loadMigrations(), async (tx) => {
    outcome.retired = await retireLegacyClicks(tx, {
      storeRawIp: config.clicks.storeRawIp,
      onBatch: (progress) => logger.info(progress, 'copying the old click log into the analytics store'),
    });
  });
  if (outcome.retired !== null) logger.info(outcome.retired, 'old click log copied into the analytics store and emptied');
  return applied;
}
