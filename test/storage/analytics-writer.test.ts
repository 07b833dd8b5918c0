import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ROLLUP_SHARDS, writeBatch, type WriteBatchResult } from '../../src/analytics/analytics-writer.js';
import type { EnrichedClick } from '../../src/analytics/enriched-click.js';
import { openDatabase, type Database, type Queryable } from '../../src/storage/database.js';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { clickRun, linkIdOf, makeClick, visitor } from '../helpers/enriched-click-fixture.js';
import { openFreshDatabase, type FreshDatabase } from '../helpers/fresh-database.js';

/** The counts of a write, without the stored clicks themselves. */
const counts = ({ inserted, duplicates }: WriteBatchResult): { inserted: number; duplicates: number } => ({ inserted, duplicates });

interface Totals {
  events: number;
  minute: string;
  hour: string;
  day: string;
  visitors: string;
  breakdown: Record<string, string>;
}

/** Everything stored for a code, summed over shards and buckets: "human/bot". */
async function totals(db: Queryable, code: string): Promise<Totals> {
  const sum = async (table: string): Promise<string> => {
    const row = (await db.query<{ h: string; b: string }>(`SELECT coalesce(sum(human), 0)::text AS h, coalesce(sum(bot), 0)::text AS b FROM ${table} WHERE link_id = $1`, [linkIdOf(code)])).rows[0];
    return `${row?.h}/${row?.b}`;
  };
  const events = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM click_events WHERE code = $1', [code]);
  const visitors = await db.query<{ v: string; h: string }>(
    'SELECT coalesce(sum(visitors), 0)::text AS v, coalesce(sum(human_visitors), 0)::text AS h FROM link_clicks_day WHERE link_id = $1',
    [linkIdOf(code)],
  );
  const breakdown = await db.query<{ dimension: string; h: string; b: string }>(
    `SELECT dimension, sum(human)::text AS h, sum(bot)::text AS b FROM link_breakdown_day WHERE link_id = $1 GROUP BY dimension
     UNION ALL SELECT 'agents', sum(human)::text, sum(bot)::text FROM link_agents_day WHERE link_id = $1 HAVING count(*) > 0
     ORDER BY 1`,
    [linkIdOf(code)],
  );
  return {
    events: events.rows[0]?.n ?? -1,
    minute: await sum('link_clicks_minute'),
    hour: await sum('link_clicks_hour'),
    day: await sum('link_clicks_day'),
    visitors: `${visitors.rows[0]?.v}/${visitors.rows[0]?.h}`,
    breakdown: Object.fromEntries(breakdown.rows.map((row) => [row.dimension, `${row.h}/${row.b}`])),
  };
}

/** What `totals` must say for these distinct clicks, counted here independently of the writer. */
function expectedTotals(clicks: readonly EnrichedClick[]): Totals {
  const bots = clicks.filter((click) => click.bot).length;
  const split = `${clicks.length - bots}/${bots}`;
  const visitorDays = new Map<string, boolean>();
  for (const click of clicks) {
    if (click.visitor === null) continue;
    const key = `${click.at.toISOString().slice(0, 10)} ${click.visitor}`;
    visitorDays.set(key, (visitorDays.get(key) ?? false) || !click.bot);
  }
  const humanVisitors = [...visitorDays.values()].filter(Boolean).length;
  return {
    events: clicks.length,
    minute: split,
    hour: split,
    day: split,
    visitors: `${visitorDays.size}/${humanVisitors}`,
    breakdown: Object.fromEntries(['agents', 'country', 'referrer'].map((dimension) => [dimension, split])),
  };
}

for (const backend of BACKENDS) {
  describe(`analytics writer (${backend})`, await backendTestOptions(backend), () => {
    let fresh: FreshDatabase;
    before(async () => {
      fresh = await openFreshDatabase(backend);
    });
    after(() => fresh.close());

    test('stores every field of every click and counts it once in each rollup', async () => {
      const clicks = [
        makeClick({
          code: 'fields',
          at: '2025-03-10T10:00:00.123Z',
          method: 'HEAD',
          bot: true,
          device: 'bot',
          referrerHost: 'news.example',
          country: 'DE',
          browser: 'curl',
          os: null,
          visitor: 'ff'.repeat(16),
          ip: '2001:db8::7',
          userAgent: `curl/8.0 tab\there "quoted" 'single' \\N ünïcode ✓`,
          referrer: 'https://news.example/item?id=1&x="y"',
        }),
        makeClick({ code: 'fields', at: '2025-03-10T10:00:01.000Z', browser: null, os: null, userAgent: null, ip: '203.0.113.7' }),
      ];
      assert.deepEqual(counts(await writeBatch(fresh.db, clicks)), { inserted: 2, duplicates: 0 });
      const rows = await fresh.db.query(
        `SELECT id::text, at, code, method, bot, device, referrer_host, country, browser, os, encode(visitor, 'hex') AS visitor,
                host(ip) AS ip, user_agent, referrer FROM click_events WHERE code = 'fields' ORDER BY at`,
      );
      assert.deepEqual(
        rows.rows,
        clicks.map((click) => ({
          id: click.id,
          at: click.at,
          code: click.code,
          method: click.method,
          bot: click.bot,
          device: click.device,
          referrer_host: click.referrerHost,
          country: click.country,
          browser: click.browser,
          os: click.os,
          visitor: click.visitor,
          ip: click.ip,
          user_agent: click.userAgent,
          referrer: click.referrer,
        })),
      );
      assert.deepEqual(await totals(fresh.db, 'fields'), expectedTotals(clicks));
    });

    test('an empty batch writes nothing', async () => {
      assert.deepEqual(counts(await writeBatch(fresh.db, [])), { inserted: 0, duplicates: 0 });
    });

    test('the same batch twice is stored and counted once', async () => {
      const clicks = clickRun('twice', 300);
      assert.deepEqual(counts(await writeBatch(fresh.db, clicks)), { inserted: 300, duplicates: 0 });
      const once = await totals(fresh.db, 'twice');
      assert.deepEqual(once, expectedTotals(clicks));
      assert.deepEqual(counts(await writeBatch(fresh.db, clicks)), { inserted: 0, duplicates: 300 });
      assert.deepEqual(await totals(fresh.db, 'twice'), once);
    });

    test('overlapping batches count the overlap once', async () => {
      const clicks = clickRun('overlap', 100);
      assert.deepEqual(counts(await writeBatch(fresh.db, clicks.slice(0, 60))), { inserted: 60, duplicates: 0 });
      // A redelivery of part of the first batch together with new events, in another order.
      const second = await writeBatch(fresh.db, clicks.slice(40).reverse());
      assert.deepEqual(counts(second), { inserted: 40, duplicates: 20 });
      // Only the new events are reported as stored (they are what may be announced live).
      assert.deepEqual(second.stored.map((click) => click.id), clicks.slice(60).map((click) => click.id).sort());
      assert.deepEqual(await totals(fresh.db, 'overlap'), expectedTotals(clicks));
    });

    test('a batch that repeats its own events counts each once', async () => {
      const [a, b, c] = clickRun('self', 3);
      assert.ok(a !== undefined && b !== undefined && c !== undefined);
      const upper = { ...a, id: a.id.toUpperCase() };
      assert.deepEqual(counts(await writeBatch(fresh.db, [a, b, a, c, b, upper])), { inserted: 3, duplicates: 3 });
      assert.deepEqual(await totals(fresh.db, 'self'), expectedTotals([a, b, c]));
    });

    test('a failed batch leaves nothing behind, and its redelivery counts once', async () => {
      // The failure comes after the raw events are inserted, in the same transaction.
      await fresh.db.query(`CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.link_id = ${linkIdOf('boom')} THEN RAISE EXCEPTION 'simulated crash'; END IF; RETURN NEW; END $$`);
      await fresh.db.query('CREATE TRIGGER refuse_boom BEFORE INSERT ON link_breakdown_day FOR EACH ROW EXECUTE FUNCTION refuse_boom()');
      const clicks = clickRun('crash', 50);
      const poisoned = [...clicks.slice(0, 30), makeClick({ code: 'boom', at: '2025-03-10T10:00:00Z' })];
      await assert.rejects(writeBatch(fresh.db, poisoned), /simulated crash/);
      assert.deepEqual(await totals(fresh.db, 'crash'), {
        events: 0,
        minute: '0/0',
        hour: '0/0',
        day: '0/0',
        visitors: '0/0',
        breakdown: {},
      });
      await fresh.db.query('DROP TRIGGER refuse_boom ON link_breakdown_day');
      assert.deepEqual(counts(await writeBatch(fresh.db, clicks.slice(0, 30))), { inserted: 30, duplicates: 0 });
      assert.deepEqual(counts(await writeBatch(fresh.db, clicks)), { inserted: 20, duplicates: 30 });
      assert.deepEqual(await totals(fresh.db, 'crash'), expectedTotals(clicks));
    });

    test('visitors: new per day, and a visitor first seen as a bot becomes human once', async () => {
      const day1 = '2025-03-10T08:00:00Z';
      const day2 = '2025-03-11T08:00:00Z';
      const code = 'visits';
      const steps: [EnrichedClick[], string][] = [
        // v1 bot only; v2 human; v3 bot then human in one batch.
        [[makeClick({ code, at: day1, bot: true, visitor: visitor(1) }), makeClick({ code, at: day1, visitor: visitor(2) }),
          makeClick({ code, at: day1, bot: true, visitor: visitor(3) }), makeClick({ code, at: day1, visitor: visitor(3) })], '3/2'],
        // v1 turns human in a later batch; v2 again changes nothing.
        [[makeClick({ code, at: day1, visitor: visitor(1) }), makeClick({ code, at: day1, visitor: visitor(2) })], '3/3'],
        // A bot click of a human visitor changes nothing; no visitor key counts no visitor.
        [[makeClick({ code, at: day1, bot: true, visitor: visitor(2) }), makeClick({ code, at: day1, visitor: null })], '3/3'],
        // The same key on the next day is another visitor (the salt changes every day).
        [[makeClick({ code, at: day2, visitor: visitor(1) })], '4/4'],
      ];
      for (const [index, [batch, expected]] of steps.entries()) {
        await writeBatch(fresh.db, batch);
        assert.equal((await totals(fresh.db, code)).visitors, expected, `after batch ${index}`);
      }
    });

    test('each batch adds to one shard; reads sum over shards', async () => {
      const clicks = clickRun('sharded', 8 * 20);
      for (let shard = 0; shard < ROLLUP_SHARDS; shard += 1) {
        await writeBatch(fresh.db, clicks.slice(shard * 20, shard * 20 + 20), { shard });
      }
      const shards = await fresh.db.query<{ shard: number }>("SELECT DISTINCT shard FROM link_clicks_hour WHERE link_id = $1 ORDER BY shard", [linkIdOf('sharded')]);
      assert.deepEqual(shards.rows.map((row) => row.shard), [0, 1, 2, 3, 4, 5, 6, 7]);
      assert.deepEqual(await totals(fresh.db, 'sharded'), expectedTotals(clicks));
      await assert.rejects(writeBatch(fresh.db, clicks, { shard: ROLLUP_SHARDS }), RangeError);
      await assert.rejects(writeBatch(fresh.db, clicks, { shard: 1.5 }), RangeError);
    });

    test('rollup rows: one per key per batch, in the right UTC buckets', async () => {
      const code = 'buckets';
      await writeBatch(fresh.db, [
        makeClick({ code, at: '2025-03-10T23:59:59.999Z' }),
        makeClick({ code, at: '2025-03-10T23:59:00.000Z', bot: true }),
        makeClick({ code, at: '2025-03-11T00:00:00.000Z' }),
      ], { shard: 0 });
      const minute = await fresh.db.query<{ bucket: Date; human: string; bot: string }>(
        `SELECT bucket, human::text, bot::text FROM link_clicks_minute WHERE link_id = $1 ORDER BY bucket`, [linkIdOf(code)]);
      assert.deepEqual(minute.rows.map((row) => [row.bucket.toISOString(), row.human, row.bot]), [
        ['2025-03-10T23:59:00.000Z', '1', '1'],
        ['2025-03-11T00:00:00.000Z', '1', '0'],
      ]);
      const day = await fresh.db.query<{ bucket: Date; human: string; bot: string }>(
        `SELECT bucket, human::text, bot::text FROM link_clicks_day WHERE link_id = $1 ORDER BY bucket`, [linkIdOf(code)]);
      assert.deepEqual(day.rows.map((row) => [row.bucket.toISOString(), row.human, row.bot]), [
        ['2025-03-10T00:00:00.000Z', '1', '1'],
        ['2025-03-11T00:00:00.000Z', '1', '0'],
      ]);
    });
  });
}

describe('analytics writer: concurrent workers on one hot link (postgres)', await backendTestOptions('postgres'), () => {
  let fresh: FreshDatabase;
  let pools: Database[];
  before(async () => {
    fresh = await openFreshDatabase('postgres', { poolSize: 2 });
    assert.ok(fresh.url !== undefined);
    const url = fresh.url;
    pools = await Promise.all(
      Array.from({ length: 4 }, (_, i) => openDatabase({ url, dataDir: 'memory://', poolSize: 2, applicationName: `shunt-analytics-writer-${i}` })),
    );
  });
  after(async () => {
    await Promise.all(pools.map((db) => db.close()));
    await fresh.close();
  });

  test('8 writers from 4 pools, overlapping and reversed batches: exact totals, no deadlock, no retry', async () => {
    const clicks = clickRun('hot', 4000);
    // Chunk c (500 events) is sent at once by writer c in time order and by writer c + 4 in
    // reverse, each batch also holding half of the next chunk, so batches overlap pairwise in
    // opposite orders: without a common lock order these transactions deadlock.
    const chunk = (c: number): EnrichedClick[] => clicks.slice(c * 1000, c * 1000 + 1500);
    const retries: unknown[] = [];
    const onRetry = (error: unknown): void => void retries.push(error);
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, w) => {
        const db = pools[w % pools.length];
        assert.ok(db !== undefined);
        const events = w < 4 ? chunk(w) : [...chunk(w - 4)].reverse();
        return writeBatch(db, events, { shard: w, onRetry });
      }),
    );
    assert.deepEqual(retries, []);
    assert.equal(results.reduce((sum, result) => sum + result.inserted, 0), 4000);
    const sent = 2 * [0, 1, 2, 3].reduce((sum, c) => sum + chunk(c).length, 0);
    assert.equal(results.reduce((sum, result) => sum + result.duplicates, 0), sent - 4000);
    assert.deepEqual(await totals(fresh.db, 'hot'), expectedTotals(clicks));
  });

  test('the same events from every pool at once are counted once', async () => {
    const clicks = clickRun('race', 1000);
    const retries: unknown[] = [];
    const onRetry = (error: unknown): void => void retries.push(error);
    const results = await Promise.all(
      pools.flatMap((db, i) => [writeBatch(db, clicks, { shard: i, onRetry }), writeBatch(db, [...clicks].reverse(), { shard: i + 4, onRetry })]),
    );
    assert.deepEqual(retries, []);
    assert.equal(results.reduce((sum, result) => sum + result.inserted, 0), 1000);
    assert.deepEqual(await totals(fresh.db, 'race'), expectedTotals(clicks));
  });
});
