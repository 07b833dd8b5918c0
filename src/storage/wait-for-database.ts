/**
 * Start-up waits for the database instead of failing at the first refused connection: an
 * instance started with (or just before) its database, or during a failover, comes up
 * when the database does. A database that answers with an error is not waited for.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Database } from './database.js';
import { isDatabaseUnavailable } from './database-unavailable.js';

export async function waitForDatabase(db: Database, options: { timeoutMs: number; onWait: (error: unknown) => void }): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  for (let attempt = 0; ; attempt += 1) {
    try {
      await db.ping();
      return;
    } catch (error) {
      if (!isDatabaseUnavailable(error) || Date.now() >= deadline) throw error;
      if (attempt === 0) options.onWait(error);
      await sleep(250);
    }
  }
}
