/**
 * The databases a storage or API test runs against: PGlite (embedded, in memory) and the
 * real PostgreSQL of this machine. Each test gets a fresh database. Without PostgreSQL a
 * local run skips those cases, but under CI=true they fail: CI must never pass by skipping.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export type Backend = 'embedded' | 'postgres';

export const POSTGRES_ADMIN_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const IN_CI = process.env.CI === 'true';

let postgresAvailable: Promise<boolean> | undefined;

export function isPostgresAvailable(): Promise<boolean> {
  return (postgresAvailable ??= (async () => {
    const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL, connectionTimeoutMillis: 2000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return true;
    } catch {
      return false;
    } finally {
      await client.end().catch(() => undefined);
    }
  })());
}

/** Options for node:test's describe/test: skip (locally) when the backend is missing. */
export async function backendTestOptions(backend: Backend): Promise<{ skip?: string }> {
  if (backend === 'embedded' || (await isPostgresAvailable()) || IN_CI) return {};
  return { skip: `PostgreSQL not reachable at ${POSTGRES_ADMIN_URL}` };
}

export const BACKENDS: readonly Backend[] = ['embedded', 'postgres'];

/** A new, empty PostgreSQL database; drop() removes it. */
export async function createPostgresDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `shunt_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    drop: async () => {
      const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}
