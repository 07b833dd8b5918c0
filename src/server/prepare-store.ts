/**
 * Brings a store up to this version: the SQL migrations, then the one data step SQL cannot
 * do, retiring the old click log into the analytics store (each old click needs the
 * worker's enrichment). Run by whichever process migrates.
 */
import type { Logger } from 'pino';
import { retireLegacyClicks } from '../analytics/legacy-clicks-backfill.js';
import type { Config } from '../config/config.js';
import type { Database } from '../storage/database.js';
import { migrate } from '../storage/migrate.js';

export async function prepareStore(db: Database, config: Config, logger: Pick<Logger, 'info'>): Promise<string[]> {
  const applied = await migrate(db);
  const retired = await retireLegacyClicks(db, {
    storeRawIp: config.clicks.storeRawIp,
    onBatch: (progress) => logger.info(progress, 'copying the old click log into the analytics store'),
  });
  if (retired !== null) logger.info(retired, 'old click log copied into the analytics store and dropped');
  return applied;
}
