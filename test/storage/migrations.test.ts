import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openDatabase, type Database } from '../../src/storage/database.js';
import { loadMigrations, migrate, type Migration } from '../../src/storage/migrate.js';
import { BACKENDS, backendTestOptions, createPostgresDatabase } from '../helpers/backends.js';
import { openFreshDatabase, type FreshDatabase } from '../helpers/fresh-database.js';

/** An empty database of the backend: PGlite in memory, or a new PostgreSQL database. */
const CORE_TABLES = [
  'api_keys',
  'click_events',
  'click_events_default',
  'clicks',
  'deleted_links',
  'export_chunks',
  'export_jobs',
  'idempotency_keys',
  'legacy_link_agents_day',
  'legacy_link_breakdown_day',
  'legacy_link_clicks_day',
  'legacy_link_clicks_hour',
  'legacy_link_clicks_minute',
  'link_agents_day',
  'link_breakdown_day',
  'link_clicks_day',
  'link_clicks_hour',
  'link_clicks_minute',
  'link_imports',
  'link_visitors',
  'links',
  'schema_migrations',
  'sessions',
  'settings',
  'visitor_salts',
];

async function tables(db: Database): Promise<string[]> {
  const result = await db.query<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name COLLATE "C"`,
  );
  return result.rows.map((row) => row.name);
}

async function recorded(db: Database): Promise<{ version: string; applied_at: Date }[]> {
  const result = await db.query<{ version: string; applied_at: Date }>('SELECT version, applied_at FROM schema_migrations ORDER BY version');
  return result.rows;
}

test('loadMigrations finds 0001_core first, in order', () => {
  const migrations = loadMigrations();
  assert.equal(migrations[0]?.version, '0001_core');
  assert.match(migrations[0]?.sql ?? '', /CREATE TABLE links/);
  const versions = migrations.map((migration) => migration.version);
  assert.deepEqual(versions, [...versions].sort());
});

for (const backend of BACKENDS) {
  describe(`migrate (${backend})`, await backendTestOptions(backend), () => {
    let fresh: FreshDatabase;
    before(async () => {
      fresh = await openFreshDatabase(backend, { migrated: false });
    });
    after(() => fresh.close());

    test('the first run applies 0001_core once, even with 5 concurrent calls, and records it', async () => {
      assert.deepEqual(await tables(fresh.db), []);
      const versions = loadMigrations().map((migration) => migration.version);
      assert.ok(versions.includes('0001_core'));
      // Five concurrent calls on one database object: the advisory lock lets one apply.
      const results = await Promise.all(Array.from({ length: 5 }, () => migrate(fresh.db)));
      assert.deepEqual(results.flat().sort(), [...versions].sort(), `applied per call: ${JSON.stringify(results)}`);
      assert.equal(results.filter((applied) => applied.length > 0).length, 1);
      assert.deepEqual(await tables(fresh.db), CORE_TABLES);
      const rows = await recorded(fresh.db);
      assert.deepEqual(rows.map((row) => row.version), versions);
      for (const row of rows) assert.ok(row.applied_at instanceof Date && Date.now() - row.applied_at.getTime() < 60_000);
      const sequence = await fresh.db.query(`SELECT 1 FROM pg_class WHERE relname = 'link_code_blocks' AND relkind = 'S'`);
      assert.equal(sequence.rowCount, 1);
    });

    test('a second run applies nothing and changes nothing', async () => {
      const before = await recorded(fresh.db);
      assert.deepEqual(await migrate(fresh.db), []);
      assert.deepEqual(await migrate(fresh.db), []);
      assert.deepEqual(await recorded(fresh.db), before);
    });

    test('a new migration is applied alone, once', async () => {
      const extra: Migration = { version: '9001_test_extra', sql: 'CREATE TABLE migration_probe (x integer NOT NULL)' };
      assert.deepEqual(await migrate(fresh.db, [...loadMigrations(), extra]), ['9001_test_extra']);
      assert.deepEqual(await migrate(fresh.db, [...loadMigrations(), extra]), []);
      assert.ok((await tables(fresh.db)).includes('migration_probe'));
    });

    test('a failing migration is rolled back entirely and not recorded', async () => {
      const good: Migration = { version: '9002_test_good', sql: 'CREATE TABLE migration_good (x integer)' };
      const bad: Migration = { version: '9003_test_bad', sql: 'CREATE TABLE migration_half (x integer); SELECT no_such_function();' };
      await assert.rejects(migrate(fresh.db, [...loadMigrations(), good, bad]));
      const names = await tables(fresh.db);
      assert.ok(!names.includes('migration_half'), 'the failing migration left a table behind');
      assert.ok(!names.includes('migration_good'), 'the run is one transaction');
      const versions = (await recorded(fresh.db)).map((row) => row.version);
      assert.ok(!versions.includes('9002_test_good') && !versions.includes('9003_test_bad'));
      // The store is still usable and a fixed list applies.
      assert.deepEqual(await migrate(fresh.db, [...loadMigrations(), good]), ['9002_test_good']);
    });
  });
}

describe('migrate: five instances start at once (postgres)', await backendTestOptions('postgres'), () => {
  test('5 pools on one fresh database: all succeed, each migration applied exactly once', async () => {
    const database = await createPostgresDatabase();
    const pools = await Promise.all(
      Array.from({ length: 5 }, (_, i) => openDatabase({ url: database.url, dataDir: 'memory://', poolSize: 2, applicationName: `shunt-migrate-${i}` })),
    );
    try {
      // Hold every pool open with a live connection so the calls really race.
      await Promise.all(pools.map((db) => db.ping()));
      const results = await Promise.all(pools.map((db) => migrate(db)));
      const versions = loadMigrations().map((migration) => migration.version);
      assert.deepEqual(results.flat().sort(), [...versions].sort(), `applied per pool: ${JSON.stringify(results)}`);
      assert.equal(results.filter((applied) => applied.length > 0).length, 1, 'one instance applied everything');
      const first = pools[0];
      assert.ok(first !== undefined);
      const rows = await first.query<{ version: string; n: number }>(
        'SELECT version, count(*)::int AS n FROM schema_migrations GROUP BY version ORDER BY version',
      );
      assert.deepEqual(rows.rows, versions.map((version) => ({ version, n: 1 })));
      assert.deepEqual(await tables(first), CORE_TABLES);
      // And afterwards every instance sees nothing to do.
      assert.deepEqual((await Promise.all(pools.map((db) => migrate(db)))).flat(), []);
    } finally {
      await Promise.all(pools.map((db) => db.close()));
      await database.drop();
    }
  });
});
