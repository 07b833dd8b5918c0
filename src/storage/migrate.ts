/**
 * Plain, ordered SQL migrations, recorded in `schema_migrations`, applied under an
 * advisory lock so that any number of instances can start at once.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Database, Queryable } from './database.js';

// Arbitrary, but fixed forever: every Shunt instance must agree on it.
const MIGRATION_LOCK_ID = 7_412_2025;

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

export interface Migration {
  version: string;
  sql: string;
}

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((name) => /^\d{4}_[a-z0-9_]+\.sql$/.test(name))
    .sort()
    .map((name) => ({ version: name.replace(/\.sql$/, ''), sql: readFileSync(`${dir}/${name}`, 'utf8') }));
}

/**
 * Applies what is missing; returns the versions it applied. `then`: data steps SQL cannot
 * do, run after the SQL in the same transaction, under the same lock.
 */
export async function migrate(db: Database, migrations = loadMigrations(), then?: (tx: Queryable) => Promise<void>): Promise<string[]> {
  return db.transaction(async (tx) => {
    // A transaction-scoped lock is released by COMMIT/ROLLBACK, even if this process dies.
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_ID]);
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version text PRIMARY KEY,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const done = new Set(
      (await tx.query<{ version: string }>('SELECT version FROM schema_migrations')).rows.map((row) => row.version),
    );
    const applied: string[] = [];
    for (const migration of migrations) {
      if (done.has(migration.version)) continue;
      await tx.query(migration.sql);
      await tx.query('INSERT INTO schema_migrations (version) VALUES ($1)', [migration.version]);
      applied.push(migration.version);
    }
    await then?.(tx);
    return applied;
  });
}
