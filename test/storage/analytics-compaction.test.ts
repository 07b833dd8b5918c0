import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { writeBatch } from '../../src/analytics/analytics-writer.js';
import type { EnrichedClick } from '../../src/analytics/enriched-click.js';
import { compactDay, compactRollups } from '../../src/analytics/rollup-compaction.js';
import { linkStats, type LinkStats } from '../../src/analytics/stats-query.js';
import { openDatabase, type Database, type Queryable } from '../../src/storage/database.js';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { clickRun, linkIdOf, makeClick, visitor } from '../helpers/enriched-click-fixture.js';
import { openFreshDatabase, type FreshDatabase } from '../helpers/fresh-database.js';

const TABLES = ['link_clicks_minute', 'link_clicks_hour', 'link_clicks_day', 'link_breakdown_day', 'link_agents_day'];
const DAY1 = '2025-03-10T00:00:00.000Z';
const DAY2 = '2025-03-11T00:00:00.000Z';
const DAY3 = '2025-03-12T00:00:00.000Z';

/** Rows not on shard 0 in [from, to), over every rollup table. */
async function shardedRows(db: Queryable, from: string, to: string): Promise<number> {
  let rows = 0;
  for (const table of TABLES) {
    const result = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE bucket >= $1 AND bucket < $2 AND shard <> 0`, [from, to]);
    rows += result.rows[0]?.n ?? 0;
  }
  return rows;
}

/** Every figure linkStats can give for `code` around the two days. */
async function everything(db: Queryable, code: string): Promise<LinkStats[]> {
  const results: LinkStats[] = [];
  for (const bots of ['include', 'exclude'] as const) {
    for (const interval of ['minute', 'hour', 'day'] as const) {
      const from = new Date(interval === 'minute' ? '2025-03-10T09:00:00Z' : DAY1);
      const to = new Date(interval === 'minute' ? '2025-03-11T01:00:00Z' : DAY3);
      results.push(await linkStats(db, linkIdOf(code), { from, to, interval, bots, top: 20 }));
    }
  }
  return results;
}

/** Clicks of one link over two days, with bots, visitors and every dimension varying. */
function twoDays(code: string): EnrichedClick[] {
  return [
    ...clickRun(code, 120, Date.parse('2025-03-10T10:00:00Z')).map((click, i) => ({ ...click, at: new Date(click.at.getTime() + i * 61_000) })),
    ...clickRun(code, 30, Date.parse('2025-03-11T00:30:00Z')),
    makeClick({ code, at: '2025-03-10T12:00:00Z', bot: true, visitor: visitor(900), browser: 'Safari', os: 'iOS', device: 'mobile' }),
    makeClick({ code, at: '2025-03-10T13:00:00Z', visitor: visitor(900), browser: 'Safari', os: 'iOS', device: 'mobile' }),
  ];
}

for (const backend of BACKENDS) {
  describe(`rollup compaction (${backend})`, await backendTestOptions(backend), () => {
    let fresh: FreshDatabase;
    let expected: LinkStats[];
    before(async () => {
      fresh = await openFreshDatabase(backend);
      for (const code of ['alpha', 'beta']) {
        const clicks = twoDays(code);
        // Seven batches on seven shards.
        for (let shard = 0; shard < 7; shard += 1) await writeBatch(fresh.db, clicks.filter((_, i) => i % 7 === shard), { shard });
      }
      expected = await everything(fresh.db, 'alpha');
    });
    after(() => fresh.close());

    test('folds a day into shard 0 and changes no figure', async () => {
      const sharded = await shardedRows(fresh.db, DAY1, DAY2);
      assert.ok(sharded > 100, `${sharded} sharded rows`);
      const nextDay = await shardedRows(fresh.db, DAY2, DAY3);
      assert.deepEqual(await compactDay(fresh.db, new Date('2025-03-10T17:00:00Z')), { links: 2, folded: sharded });
      assert.equal(await shardedRows(fresh.db, DAY1, DAY2), 0);
      assert.equal(await shardedRows(fresh.db, DAY2, DAY3), nextDay, 'the next day is left alone');
      assert.deepEqual(await everything(fresh.db, 'alpha'), expected);
    });

    test('a compacted day has nothing left to fold', async () => {
      assert.deepEqual(await compactDay(fresh.db, new Date(DAY1)), { links: 0, folded: 0 });
    });

    test('late clicks of a compacted day are counted, then folded by the next run', async () => {
      const late = [makeClick({ code: 'alpha', at: '2025-03-10T20:00:00Z', visitor: visitor(901) }), makeClick({ code: 'alpha', at: '2025-03-10T20:00:01Z', bot: true })];
      await writeBatch(fresh.db, late, { shard: 3 });
      const withLate = await everything(fresh.db, 'alpha');
      assert.equal((withLate[0]?.totals.clicks ?? 0) - (expected[0]?.totals.clicks ?? 0), 2);
      assert.equal((withLate[2]?.totals.uniques ?? 0) - (expected[2]?.totals.uniques ?? 0), 1);
      const result = await compactDay(fresh.db, new Date(DAY1));
      assert.equal(result.links, 1);
      assert.ok(result.folded >= 6, `${result.folded} rows folded`);
      assert.equal(await shardedRows(fresh.db, DAY1, DAY2), 0);
      assert.deepEqual(await everything(fresh.db, 'alpha'), withLate);
    });

    test('compactRollups covers a range of days, the last one excluded', async () => {
      const before = await everything(fresh.db, 'beta');
      const day2 = await shardedRows(fresh.db, DAY2, DAY3);
      assert.deepEqual(await compactRollups(fresh.db, new Date(DAY1), new Date(DAY2)), { links: 0, folded: 0 });
      assert.deepEqual(await compactRollups(fresh.db, new Date(DAY1), new Date(DAY3)), { links: 2, folded: day2 });
      assert.equal(await shardedRows(fresh.db, DAY1, DAY3), 0);
      assert.deepEqual(await everything(fresh.db, 'beta'), before);
      await assert.rejects(compactRollups(fresh.db, new Date(Number.NaN), new Date(DAY1)), RangeError);
    });
  });
}

describe('rollup compaction while workers write the same day (postgres)', await backendTestOptions('postgres'), () => {
  let fresh: FreshDatabase;
  let pools: Database[];
  before(async () => {
    fresh = await openFreshDatabase('postgres', { poolSize: 2 });
    const url = fresh.url;
    assert.ok(url !== undefined);
    pools = await Promise.all(Array.from({ length: 3 }, () => openDatabase({ url, dataDir: 'memory://', poolSize: 2 })));
  });
  after(async () => {
    await Promise.all(pools.map((db) => db.close()));
    await fresh.close();
  });

  test('no click is lost or counted twice', async () => {
    const clicks = clickRun('busy', 3000, Date.parse('2025-03-10T10:00:00Z'));
    const writers = Array.from({ length: 6 }, async (_, w) => {
      const db = pools[w % pools.length] as Database;
      for (let b = 0; b < 10; b += 1) {
        const start = (b * 6 + w) * 50;
        await writeBatch(db, clicks.slice(start, start + 50), { shard: 1 + w });
      }
    });
    let compacting = true;
    const compactor = (async () => {
      let runs = 0;
      while (compacting || runs === 0) {
        await compactDay(fresh.db, new Date(DAY1));
        runs += 1;
      }
      return runs;
    })();
    await Promise.all(writers);
    compacting = false;
    assert.ok((await compactor) >= 1);
    await compactDay(fresh.db, new Date(DAY1));
    const stats = await linkStats(fresh.db, linkIdOf('busy'), { from: new Date(DAY1), to: new Date(DAY2), interval: 'hour', bots: 'include', top: 5 });
    assert.equal(stats.totals.clicks, 3000);
    const all = stats.countries.reduce((sum, entry) => sum + entry.clicks, 0);
    assert.equal(all, 3000);
    assert.equal(await shardedRows(fresh.db, DAY1, DAY2), 0);
  });
});
