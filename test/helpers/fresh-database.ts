/** A new, empty store on either backend, migrated unless asked otherwise; close() removes it. */
import { openDatabase, type Database } from '../../src/storage/database.js';
import { migrate } from '../../src/storage/migrate.js';
import { createPostgresDatabase, type Backend } from './backends.js';

export interface FreshDatabase {
  db: Database;
  /** The PostgreSQL URL, for tests that open more pools on the same database. */
  url: string | undefined;
  close: () => Promise<void>;
}

export async function openFreshDatabase(backend: Backend, options: { migrated?: boolean; poolSize?: number } = {}): Promise<FreshDatabase> {
  const { migrated = true, poolSize = 20 } = options;
  if (backend === 'embedded') {
    const db = await openDatabase({ url: undefined, dataDir: 'memory://', poolSize: 1 });
    if (migrated) await migrate(db);
    return { db, url: undefined, close: () => db.close() };
  }
  const database = await createPostgresDatabase();
  const db = await openDatabase({ url: database.url, dataDir: 'memory://', poolSize });
  if (migrated) await migrate(db);
  return {
    db,
    url: database.url,
    close: async () => {
      await db.close();
      await database.drop();
    },
  };
}
