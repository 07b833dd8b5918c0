import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DatabaseVisitorSalts } from '../../src/analytics/database-visitor-salts.js';
import { openDatabase, type Database, type Queryable } from '../../src/storage/database.js';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { openFreshDatabase, type FreshDatabase } from '../helpers/fresh-database.js';

const DAY_MS = 86_400_000;
const T0 = Date.parse('2025-03-01T12:00:00.000Z');

async function storedDays(db: Queryable): Promise<string[]> {
  const result = await db.query<{ day: string }>("SELECT to_char(day, 'YYYY-MM-DD') AS day FROM visitor_salts ORDER BY day");
  return result.rows.map((row) => row.day);
}

for (const backend of BACKENDS) {
  describe(`DatabaseVisitorSalts (${backend})`, await backendTestOptions(backend), () => {
    let fresh: FreshDatabase;
    before(async () => {
      fresh = await openFreshDatabase(backend);
    });
    after(() => fresh.close());

    test('the first ask creates a 32-byte salt; every worker then reads the same one', async () => {
      const first = new DatabaseVisitorSalts(fresh.db, { now: () => T0 });
      const salt = await first.saltFor('2025-03-01');
      assert.ok(Buffer.isBuffer(salt));
      assert.equal(salt.length, 32);
      const other = new DatabaseVisitorSalts(fresh.db, { now: () => T0 });
      assert.deepEqual(await other.saltFor('2025-03-01'), salt);
      assert.deepEqual(await storedDays(fresh.db), ['2025-03-01']);
      assert.notDeepEqual(await first.saltFor('2025-03-02'), salt, 'each day has its own salt');
    });

    test('workers racing for a new day agree on one salt', async () => {
      // On PostgreSQL each worker has its own pool, so the inserts really race.
      const pools: Database[] =
        fresh.url === undefined
          ? [fresh.db]
          : await Promise.all(Array.from({ length: 5 }, () => openDatabase({ url: fresh.url, dataDir: 'memory://', poolSize: 2 })));
      try {
        const workers = Array.from({ length: 10 }, (_, i) => new DatabaseVisitorSalts(pools[i % pools.length] ?? fresh.db, { now: () => T0 }));
        const salts = await Promise.all(workers.flatMap((worker) => [worker.saltFor('2025-02-28'), worker.saltFor('2025-02-28')]));
        assert.equal(new Set(salts.map((salt) => salt.toString('hex'))).size, 1);
        const rows = await fresh.db.query<{ n: number }>("SELECT count(*)::int AS n FROM visitor_salts WHERE day = '2025-02-28'");
        assert.equal(rows.rows[0]?.n, 1);
      } finally {
        if (fresh.url !== undefined) await Promise.all(pools.map((pool) => pool.close()));
      }
    });

    test('a worker reads a day once, then answers from memory', async () => {
      let queries = 0;
      const counting: Queryable = {
        query: (text, params) => {
          queries += 1;
          return fresh.db.query(text, params);
        },
      };
      const salts = new DatabaseVisitorSalts(counting, { now: () => T0 });
      const salt = await salts.saltFor('2025-03-01');
      const afterFirst = queries;
      assert.ok(afterFirst > 0);
      for (let i = 0; i < 100; i += 1) assert.equal(await salts.saltFor('2025-03-01'), salt);
      assert.equal(queries, afterFirst);
    });

    test('salts older than two days are deleted, and never created again', async () => {
      let now = T0;
      const salts = new DatabaseVisitorSalts(fresh.db, { now: () => now });
      const march1 = await salts.saltFor('2025-03-01');
      now = T0 + 2 * DAY_MS; // 3 March: 1 March is two days back, still kept
      assert.deepEqual(await salts.saltFor('2025-03-01'), march1);
      await salts.saltFor('2025-03-03');
      assert.deepEqual(await storedDays(fresh.db), ['2025-03-01', '2025-03-02', '2025-03-03']);

      now = T0 + 3 * DAY_MS; // 4 March
      await assert.rejects(salts.saltFor('2025-03-01'), /no longer/);
      await salts.saltFor('2025-03-04'); // a new day's first read prunes
      assert.deepEqual(await storedDays(fresh.db), ['2025-03-02', '2025-03-03', '2025-03-04']);
      await assert.rejects(new DatabaseVisitorSalts(fresh.db, { now: () => now }).saltFor('2025-03-01'), /no longer/);
      await assert.rejects(salts.saltFor('2025-03-06'), /not yet/);
      assert.deepEqual(await storedDays(fresh.db), ['2025-03-02', '2025-03-03', '2025-03-04'], 'refused days leave no row');
    });

    test('prune() deletes expired salts on its own', async () => {
      await fresh.db.query("INSERT INTO visitor_salts (day, salt) VALUES ('2020-01-01', $1), ('2020-01-02', $1)", [Buffer.alloc(32, 1)]);
      const now = T0 + 3 * DAY_MS;
      const removed = await new DatabaseVisitorSalts(fresh.db, { now: () => now }).prune();
      assert.equal(removed, 2);
      assert.deepEqual(await storedDays(fresh.db), ['2025-03-02', '2025-03-03', '2025-03-04']);
    });

    test('a failed read is not remembered: the next ask tries again', async () => {
      let failNext = true;
      const flaky: Queryable = {
        query: (text, params) => {
          if (failNext) {
            failNext = false;
            return Promise.reject(new Error('connection reset'));
          }
          return fresh.db.query(text, params);
        },
      };
      const salts = new DatabaseVisitorSalts(flaky, { now: () => T0 + 3 * DAY_MS });
      await assert.rejects(salts.saltFor('2025-03-04'), /connection reset/);
      const salt = await salts.saltFor('2025-03-04');
      assert.equal(salt.length, 32);
    });

    test('a malformed day is refused', async () => {
      const salts = new DatabaseVisitorSalts(fresh.db, { now: () => T0 });
      for (const day of ['2025-02-30', '2025-3-1', "2025-03-01'; DROP TABLE visitor_salts; --", '']) {
        await assert.rejects(salts.saltFor(day), RangeError, day);
      }
    });

    test('the table refuses a salt of the wrong length', async () => {
      await assert.rejects(fresh.db.query("INSERT INTO visitor_salts (day, salt) VALUES ('2030-01-01', $1)", [Buffer.alloc(16)]));
    });
  });
}
