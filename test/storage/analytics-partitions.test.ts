import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { oldestKeptVisitorDay, pruneMinuteRollups, pruneVisitorSets } from '../../src/analytics/analytics-retention.js';
import { writeBatch, type WriteBatchResult } from '../../src/analytics/analytics-writer.js';
import { dropExpiredPartitions, ensurePartitions, MAX_PARTITIONS_PER_CALL } from '../../src/analytics/click-partitions.js';
import type { EnrichedClick } from '../../src/analytics/enriched-click.js';
import { linkStats } from '../../src/analytics/stats-query.js';
import { openDatabase, type Database, type Queryable } from '../../src/storage/database.js';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { linkIdOf, makeClick, visitor } from '../helpers/enriched-click-fixture.js';
import { openFreshDatabase, type FreshDatabase } from '../helpers/fresh-database.js';

/** The counts of a write, without the stored clicks themselves. */
const counts = ({ inserted, duplicates }: WriteBatchResult): { inserted: number; duplicates: number } => ({ inserted, duplicates });

async function partitionOf(db: Queryable, click: EnrichedClick): Promise<string | undefined> {
  const result = await db.query<{ p: string }>('SELECT tableoid::regclass::text AS p FROM click_events WHERE id = $1', [click.id]);
  return result.rows.length === 1 ? result.rows[0]?.p : `${result.rows.length} rows`;
}

async function partitions(db: Queryable): Promise<string[]> {
  const result = await db.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'click_events'::regclass ORDER BY c.relname COLLATE "C"`,
  );
  return result.rows.map((row) => row.name);
}

async function count(db: Queryable, sql: string): Promise<number> {
  return (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql}`)).rows[0]?.n ?? -1;
}

const yearClicks = async (db: Queryable, code: string): Promise<number> =>
  (await linkStats(db, linkIdOf(code), { from: new Date('2023-01-01T00:00:00Z'), to: new Date('2027-01-01T00:00:00Z'), interval: 'day', bots: 'include', top: 1 })).totals.clicks;

for (const backend of BACKENDS) {
  describe(`click_events partitions and retention (${backend})`, await backendTestOptions(backend), () => {
    let fresh: FreshDatabase;
    const code = 'parts';
    const clicks = {
      lastOfJanuary: makeClick({ code, at: '2025-01-31T23:59:59.999Z' }),
      firstOfFebruary: makeClick({ code, at: '2025-02-01T00:00:00.000Z' }),
      march: makeClick({ code, at: '2025-03-15T12:00:00.000Z' }),
      december: makeClick({ code, at: '2024-12-31T23:59:59.999Z' }),
      future: makeClick({ code, at: '2026-06-01T00:00:00.000Z' }),
      ancient: makeClick({ code, at: '2023-05-01T00:00:00.000Z' }),
    };
    before(async () => {
      fresh = await openFreshDatabase(backend);
    });
    after(() => fresh.close());

    test('a fresh store has only the default partition', async () => {
      assert.deepEqual(await partitions(fresh.db), ['click_events_default']);
    });

    test('ensurePartitions creates each missing month once, inclusive of both ends', async () => {
      const created = await ensurePartitions(fresh.db, new Date('2025-01-20T00:00:00Z'), new Date('2025-03-01T00:00:00Z'));
      assert.deepEqual(created, ['click_events_p202501', 'click_events_p202502', 'click_events_p202503']);
      assert.deepEqual(await ensurePartitions(fresh.db, new Date('2025-01-01T00:00:00Z'), new Date('2025-03-31T23:59:59.999Z')), []);
      assert.deepEqual(await partitions(fresh.db), ['click_events_default', 'click_events_p202501', 'click_events_p202502', 'click_events_p202503']);
    });

    test('rows land in their month, and the default partition takes any other time', async () => {
      await writeBatch(fresh.db, Object.values(clicks));
      assert.equal(await partitionOf(fresh.db, clicks.lastOfJanuary), 'click_events_p202501');
      assert.equal(await partitionOf(fresh.db, clicks.firstOfFebruary), 'click_events_p202502');
      assert.equal(await partitionOf(fresh.db, clicks.march), 'click_events_p202503');
      assert.equal(await partitionOf(fresh.db, clicks.december), 'click_events_default');
      assert.equal(await partitionOf(fresh.db, clicks.future), 'click_events_default');
      assert.equal(await partitionOf(fresh.db, clicks.ancient), 'click_events_default');
      assert.equal(await yearClicks(fresh.db, code), 6);
    });

    test("creating a month moves its rows out of the default partition; they stay idempotent", async () => {
      assert.deepEqual(await ensurePartitions(fresh.db, new Date('2024-12-01T00:00:00Z'), new Date('2024-12-01T00:00:00Z')), ['click_events_p202412']);
      assert.equal(await partitionOf(fresh.db, clicks.december), 'click_events_p202412');
      assert.equal(await partitionOf(fresh.db, clicks.future), 'click_events_default');
      assert.equal(await count(fresh.db, 'click_events_default'), 2);
      assert.equal(await count(fresh.db, 'click_events'), 6);
      assert.deepEqual(counts(await writeBatch(fresh.db, [clicks.december, clicks.future])), { inserted: 0, duplicates: 2 });
      assert.equal(await yearClicks(fresh.db, code), 6);
    });

    test('concurrent ensurePartitions calls with overlapping ranges, while rows arrive', async () => {
      const dbs: Database[] = fresh.url === undefined
        ? [fresh.db]
        : await Promise.all(Array.from({ length: 4 }, () => openDatabase({ url: fresh.url, dataDir: 'memory://', poolSize: 1 })));
      try {
        const arriving = Array.from({ length: 40 }, (_, i) => makeClick({ code: 'arriving', at: new Date(Date.UTC(2025, 3 + (i % 8), 1 + (i % 28))) }));
        const results = await Promise.all([
          ...Array.from({ length: 8 }, (_, i) => {
            const db = dbs[i % dbs.length] as Database;
            return ensurePartitions(db, new Date(Date.UTC(2025, 3 + (i % 3), 1)), new Date(Date.UTC(2025, 8 + (i % 3), 1)));
          }),
          ...Array.from({ length: 4 }, async (_, i) => {
            const db = dbs[i % dbs.length] as Database;
            await writeBatch(db, arriving.slice(i * 10, i * 10 + 10));
            return [];
          }),
        ]);
        const created = results.flat().sort();
        const months = Array.from({ length: 8 }, (_, i) => `click_events_p2025${String(4 + i).padStart(2, '0')}`);
        assert.deepEqual(created, months, 'each month created by exactly one call');
        for (const click of arriving) {
          const month = String(click.at.getUTCMonth() + 1).padStart(2, '0');
          assert.equal(await partitionOf(fresh.db, click), `click_events_p2025${month}`);
        }
      } finally {
        if (dbs[0] !== fresh.db) await Promise.all(dbs.map((db) => db.close()));
      }
    });

    test('retention drops whole expired months and old default rows, and keeps the rollups', async () => {
      const before = await count(fresh.db, 'click_events');
      const result = await dropExpiredPartitions(fresh.db, new Date('2025-02-15T00:00:00Z'));
      // February still holds rows newer than the limit, so it stays whole.
      assert.deepEqual(result, { dropped: ['click_events_p202412', 'click_events_p202501'], deletedFromDefault: 1 });
      assert.equal(await count(fresh.db, 'click_events'), before - 3);
      assert.equal(await partitionOf(fresh.db, clicks.lastOfJanuary), '0 rows');
      assert.equal(await partitionOf(fresh.db, clicks.ancient), '0 rows');
      assert.equal(await partitionOf(fresh.db, clicks.firstOfFebruary), 'click_events_p202502');
      assert.equal(await partitionOf(fresh.db, clicks.future), 'click_events_default');
      assert.ok(!(await partitions(fresh.db)).includes('click_events_p202501'));
      assert.equal(await yearClicks(fresh.db, code), 6, 'stats come from rollups, which retention keeps');
      assert.deepEqual(await dropExpiredPartitions(fresh.db, new Date('2025-02-15T00:00:00Z')), { dropped: [], deletedFromDefault: 0 });
    });

    test('minute counters and visitor sets are pruned by age; hour and day rollups stay', async () => {
      const pruneCode = 'prune';
      await writeBatch(fresh.db, [
        makeClick({ code: pruneCode, at: '2025-03-01T10:00:00Z', visitor: visitor(1) }),
        makeClick({ code: pruneCode, at: '2025-03-05T10:00:00Z', visitor: visitor(1) }),
      ]);
      const limit = "'2025-03-05T00:00:00Z'";
      const oldMinutes = await count(fresh.db, `link_clicks_minute WHERE bucket < ${limit}`);
      const oldVisitors = await count(fresh.db, `link_visitors WHERE day < ${limit}`);
      assert.ok(oldMinutes > 1, 'earlier tests left older minutes of other links too');
      assert.equal(await pruneMinuteRollups(fresh.db, new Date('2025-03-05T00:00:00Z')), oldMinutes);
      assert.equal(await count(fresh.db, `link_clicks_minute WHERE bucket < ${limit}`), 0);
      assert.equal(await count(fresh.db, `link_clicks_minute WHERE link_id = ${linkIdOf(pruneCode)}`), 1);
      assert.equal(await pruneVisitorSets(fresh.db, new Date('2025-03-05T00:00:00Z')), oldVisitors);
      assert.equal(await count(fresh.db, `link_visitors WHERE day < ${limit}`), 0);
      assert.equal(await count(fresh.db, `link_visitors WHERE day = '2025-03-05T00:00:00Z'`), 1);
      assert.equal(await count(fresh.db, `link_clicks_hour WHERE link_id = ${linkIdOf(pruneCode)}`), 2);
      const stats = await linkStats(fresh.db, linkIdOf(pruneCode), { from: new Date('2025-03-01T00:00:00Z'), to: new Date('2025-03-06T00:00:00Z'), interval: 'day', bots: 'include', top: 1 });
      assert.deepEqual(stats.totals, { clicks: 2, uniques: 2 });
      // Visitor sets outlive the salts (two days) by two more days.
      assert.equal(oldestKeptVisitorDay(Date.parse('2025-03-10T15:00:00Z')).toISOString(), '2025-03-06T00:00:00.000Z');
    });

    test('refuses a range of too many months and invalid dates', async () => {
      const far = new Date(Date.UTC(2025, MAX_PARTITIONS_PER_CALL + 1, 1));
      await assert.rejects(ensurePartitions(fresh.db, new Date('2025-01-01T00:00:00Z'), far), RangeError);
      await assert.rejects(ensurePartitions(fresh.db, new Date(Number.NaN), far), RangeError);
      await assert.rejects(dropExpiredPartitions(fresh.db, new Date(Number.NaN)), RangeError);
      assert.deepEqual(await ensurePartitions(fresh.db, new Date('2025-05-01T00:00:00Z'), new Date('2025-04-01T00:00:00Z')), []);
    });
  });
}
