// Neither Node's nor the database's time zone may move a click across buckets: both are set
// to zones with half-hour offsets, on opposite sides of UTC, before anything runs.
process.env.TZ = 'America/St_Johns';

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { writeBatch } from '../../src/analytics/analytics-writer.js';
import { exportClicks } from '../../src/analytics/click-export.js';
import type { EnrichedClick } from '../../src/analytics/enriched-click.js';
import { linkStats, MAX_SERIES_POINTS, StatsQueryError, type LinkStatsOptions } from '../../src/analytics/stats-query.js';
import { openDatabase, type Database } from '../../src/storage/database.js';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { linkIdOf, makeClick, visitor } from '../helpers/enriched-click-fixture.js';
import { openFreshDatabase, type FreshDatabase } from '../helpers/fresh-database.js';

const DB_TIME_ZONE = 'Asia/Kolkata';

/**
 * The known clicks of link `stats`, and the counts below worked out from them by hand.
 * V1..V4 are visitor keys; V3 clicks first as a bot, then as a human.
 */
const CLICKS: EnrichedClick[] = [
  // Just before the day range of most queries.
  makeClick({ at: '2025-03-09T23:59:59.999Z', country: 'DE', visitor: visitor(9) }),
  makeClick({ at: '2025-03-10T10:00:05.000Z', referrerHost: 'google.com', country: 'DE', visitor: visitor(1) }),
  makeClick({ at: '2025-03-10T10:00:50.000Z', referrerHost: 'google.com', country: 'DE', visitor: visitor(1) }),
  makeClick({ at: '2025-03-10T10:02:10.000Z', country: 'US', browser: 'Safari', os: 'iOS', device: 'mobile', visitor: visitor(2) }),
  makeClick({ at: '2025-03-10T10:59:59.999Z', bot: true, browser: null, os: null, device: 'bot', userAgent: null, visitor: visitor(3) }),
  makeClick({ at: '2025-03-10T11:00:00.000Z', referrerHost: 't.co', country: 'US', browser: 'Firefox', os: 'Linux', visitor: visitor(3) }),
  makeClick({ at: '2025-03-10T23:59:59.999Z', method: 'HEAD', bot: true, referrerHost: 'google.com', country: 'FR', visitor: visitor(4) }),
  makeClick({ at: '2025-03-11T00:00:00.000Z', referrerHost: 'google.com', country: 'DE', visitor: visitor(1) }),
  makeClick({ at: '2025-03-12T12:00:00.000Z', referrerHost: 'news.ycombinator.com', browser: 'Chrome', os: 'Android', device: 'mobile' }),
  // Another link at the same times: never counted for `stats`.
  makeClick({ code: 'other', at: '2025-03-10T10:00:05.000Z', referrerHost: 'google.com', country: 'DE', visitor: visitor(1) }),
  makeClick({ code: 'other', at: '2025-03-11T00:00:00.000Z', bot: true, visitor: visitor(5) }),
];

const DAYS: Pick<LinkStatsOptions, 'from' | 'to'> = { from: new Date('2025-03-10T00:00:00Z'), to: new Date('2025-03-13T00:00:00Z') };

const series = (start: string, step: number, counts: number[]): { t: string; clicks: number }[] =>
  counts.map((clicks, i) => ({ t: new Date(Date.parse(start) + i * step).toISOString(), clicks }));

const HOUR = 3_600_000;
const MINUTE = 60_000;
const DAY = 86_400_000;

/** Sets the database's time zone for every connection the test uses. */
async function inTimeZone(fresh: FreshDatabase): Promise<Database> {
  if (fresh.url === undefined) {
    await fresh.db.query(`SET TIME ZONE '${DB_TIME_ZONE}'`);
    return fresh.db;
  }
  await fresh.db.query(`DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET TimeZone = %L', current_database(), '${DB_TIME_ZONE}'); END $$`);
  return openDatabase({ url: fresh.url, dataDir: 'memory://', poolSize: 3 });
}

for (const backend of BACKENDS) {
  describe(`linkStats and exportClicks (${backend})`, await backendTestOptions(backend), () => {
    let fresh: FreshDatabase;
    let db: Database;
    before(async () => {
      fresh = await openFreshDatabase(backend, { poolSize: 1 });
      db = await inTimeZone(fresh);
      // In three batches, one on another shard, so reads must add shards and batches up.
      await writeBatch(db, CLICKS.slice(0, 4), { shard: 0 });
      await writeBatch(db, CLICKS.slice(4, 8), { shard: 5 });
      await writeBatch(db, CLICKS.slice(8), { shard: 0 });
    });
    after(async () => {
      if (db !== fresh.db) await db.close();
      await fresh.close();
    });

    test('the store really runs in a non-UTC time zone', async () => {
      const zone = await db.query<{ tz: string }>("SELECT current_setting('TimeZone') AS tz");
      assert.equal(zone.rows[0]?.tz, DB_TIME_ZONE);
      assert.equal(new Date('2025-01-10T00:00:00Z').getTimezoneOffset(), 210, "Node runs in St. John's time (UTC-3:30)");
    });

    test('by day, bots excluded: series, totals, uniques and every breakdown', async () => {
      const stats = await linkStats(db, linkIdOf('stats'), { ...DAYS, interval: 'day', bots: 'exclude', top: 10 });
      assert.deepEqual(stats, {
        range: { from: '2025-03-10T00:00:00.000Z', to: '2025-03-13T00:00:00.000Z', interval: 'day' },
        days: { from: '2025-03-10T00:00:00.000Z', to: '2025-03-13T00:00:00.000Z' },
        // Uniques: V1, V2, V3 (human at 11:00) on the 10th, V1 again on the 11th; no key on the 12th.
        totals: { clicks: 6, uniques: 4 },
        series: series('2025-03-10T00:00:00Z', DAY, [4, 1, 1]),
        // Ties are ordered by value, byte-wise, with unknown ('' in the store) first.
        referrers: [
          { value: 'google.com', clicks: 3 },
          { value: null, clicks: 1 },
          { value: 'news.ycombinator.com', clicks: 1 },
          { value: 't.co', clicks: 1 },
        ],
        countries: [
          { value: 'DE', clicks: 3 },
          { value: 'US', clicks: 2 },
          { value: null, clicks: 1 },
        ],
        browsers: [
          { value: 'Chrome', clicks: 4 },
          { value: 'Firefox', clicks: 1 },
          { value: 'Safari', clicks: 1 },
        ],
        os: [
          { value: 'Windows', clicks: 3 },
          { value: 'Android', clicks: 1 },
          { value: 'Linux', clicks: 1 },
          { value: 'iOS', clicks: 1 },
        ],
        devices: [
          { value: 'desktop', clicks: 4 },
          { value: 'mobile', clicks: 2 },
        ],
      });
    });

    test('by day, bots included', async () => {
      const stats = await linkStats(db, linkIdOf('stats'), { ...DAYS, interval: 'day', bots: 'include', top: 10 });
      assert.deepEqual(stats.totals, { clicks: 8, uniques: 5 });
      assert.deepEqual(stats.series, series('2025-03-10T00:00:00Z', DAY, [6, 1, 1]));
      assert.deepEqual(stats.referrers, [
        { value: 'google.com', clicks: 4 },
        { value: null, clicks: 2 },
        { value: 'news.ycombinator.com', clicks: 1 },
        { value: 't.co', clicks: 1 },
      ]);
      assert.deepEqual(stats.countries, [
        { value: 'DE', clicks: 3 },
        { value: null, clicks: 2 },
        { value: 'US', clicks: 2 },
        { value: 'FR', clicks: 1 },
      ]);
      assert.deepEqual(stats.browsers, [
        { value: 'Chrome', clicks: 5 },
        { value: null, clicks: 1 },
        { value: 'Firefox', clicks: 1 },
        { value: 'Safari', clicks: 1 },
      ]);
      assert.deepEqual(stats.os, [
        { value: 'Windows', clicks: 4 },
        { value: null, clicks: 1 },
        { value: 'Android', clicks: 1 },
        { value: 'Linux', clicks: 1 },
        { value: 'iOS', clicks: 1 },
      ]);
      assert.deepEqual(stats.devices, [
        { value: 'desktop', clicks: 5 },
        { value: 'mobile', clicks: 2 },
        { value: 'bot', clicks: 1 },
      ]);
    });

    test('top N keeps the N largest of each breakdown', async () => {
      const stats = await linkStats(db, linkIdOf('stats'), { ...DAYS, interval: 'day', bots: 'include', top: 2 });
      assert.deepEqual(stats.referrers, [
        { value: 'google.com', clicks: 4 },
        { value: null, clicks: 2 },
      ]);
      assert.deepEqual(stats.os, [
        { value: 'Windows', clicks: 4 },
        { value: null, clicks: 1 },
      ]);
      assert.equal(stats.devices.length, 2);
    });

    test('by hour: the range widens to whole hours, empty hours are zero', async () => {
      const options = { from: new Date('2025-03-10T09:30:00Z'), to: new Date('2025-03-10T12:00:00Z'), interval: 'hour' as const, top: 3 };
      const human = await linkStats(db, linkIdOf('stats'), { ...options, bots: 'exclude' });
      assert.deepEqual(human.range, { from: '2025-03-10T09:00:00.000Z', to: '2025-03-10T12:00:00.000Z', interval: 'hour' });
      assert.deepEqual(human.series, series('2025-03-10T09:00:00Z', HOUR, [0, 3, 1]));
      assert.deepEqual(human.totals, { clicks: 4, uniques: 3 });
      assert.deepEqual(human.days, { from: '2025-03-10T00:00:00.000Z', to: '2025-03-11T00:00:00.000Z' });
      const all = await linkStats(db, linkIdOf('stats'), { ...options, bots: 'include' });
      // The bot click at 10:59:59.999 is in the 10:00 hour.
      assert.deepEqual(all.series, series('2025-03-10T09:00:00Z', HOUR, [0, 4, 1]));
      assert.deepEqual(all.totals, { clicks: 5, uniques: 4 });
    });

    test('by minute, with gaps, and a range ending inside a minute', async () => {
      const stats = await linkStats(db, linkIdOf('stats'), {
        from: new Date('2025-03-10T10:00:00Z'),
        to: new Date('2025-03-10T10:04:00Z'),
        interval: 'minute',
        bots: 'exclude',
        top: 1,
      });
      assert.deepEqual(stats.series, series('2025-03-10T10:00:00Z', MINUTE, [2, 0, 1, 0]));
      assert.equal(stats.totals.clicks, 3);
      const partial = await linkStats(db, linkIdOf('stats'), {
        from: new Date('2025-03-10T10:00:30Z'),
        to: new Date('2025-03-10T10:02:00.001Z'),
        interval: 'minute',
        bots: 'exclude',
        top: 1,
      });
      assert.deepEqual(partial.range, { from: '2025-03-10T10:00:00.000Z', to: '2025-03-10T10:03:00.000Z', interval: 'minute' });
      assert.deepEqual(partial.series, series('2025-03-10T10:00:00Z', MINUTE, [2, 0, 1]));
    });

    test('UTC day edges: the last millisecond of a day and the first of the next', async () => {
      const stats = await linkStats(db, linkIdOf('stats'), {
        from: new Date('2025-03-09T00:00:00Z'),
        to: new Date('2025-03-12T00:00:00Z'),
        interval: 'day',
        bots: 'include',
        top: 1,
      });
      assert.deepEqual(stats.series, series('2025-03-09T00:00:00Z', DAY, [1, 6, 1]));
      const late = await linkStats(db, linkIdOf('stats'), {
        from: new Date('2025-03-10T23:00:00Z'),
        to: new Date('2025-03-11T01:00:00Z'),
        interval: 'hour',
        bots: 'include',
        top: 1,
      });
      assert.deepEqual(late.series, series('2025-03-10T23:00:00Z', HOUR, [1, 1]));
    });

    test('a link or a range without clicks: zeros everywhere', async () => {
      const stats = await linkStats(db, linkIdOf('nobody'), { ...DAYS, interval: 'day', bots: 'include', top: 5 });
      assert.deepEqual(stats.totals, { clicks: 0, uniques: 0 });
      assert.deepEqual(stats.series, series('2025-03-10T00:00:00Z', DAY, [0, 0, 0]));
      assert.deepEqual([stats.referrers, stats.countries, stats.browsers, stats.os, stats.devices], [[], [], [], [], []]);
    });

    test('refuses ranges of too many points, empty or reversed ranges and a bad top, with a typed error', async () => {
      const from = new Date('2025-03-01T00:00:00Z');
      const ok = await linkStats(db, linkIdOf('stats'), { from, to: new Date(from.getTime() + MAX_SERIES_POINTS * MINUTE), interval: 'minute', bots: 'include', top: 1 });
      assert.equal(ok.series.length, MAX_SERIES_POINTS);
      const refused = (options: Partial<LinkStatsOptions>, reason: string) =>
        assert.rejects(
          linkStats(db, linkIdOf('stats'), { from, to: new Date(from.getTime() + DAY), interval: 'hour', bots: 'include', top: 5, ...options }),
          (error: unknown) => error instanceof StatsQueryError && error.reason === reason,
          reason,
        );
      await refused({ to: new Date(from.getTime() + MAX_SERIES_POINTS * MINUTE + 1), interval: 'minute' }, 'too_many_points');
      await refused({ to: new Date(from.getTime() + 2 * 366 * DAY), interval: 'hour' }, 'too_many_points');
      await refused({ to: from }, 'invalid_range');
      await refused({ to: new Date(from.getTime() - 1) }, 'invalid_range');
      await refused({ from: new Date(Number.NaN) }, 'invalid_range');
      await refused({ top: 0 }, 'invalid_top');
      await refused({ top: 101 }, 'invalid_top');
      await refused({ top: 2.5 }, 'invalid_top');
      await refused({ interval: 'week' as 'day' }, 'invalid_interval');
    });

    test('export: every raw event of the link and range, in pages, in (time, id) order', async () => {
      const at = '2025-03-20T08:00:00.000Z';
      const ties = [
        makeClick({ code: 'export', at, ip: '203.0.113.7', visitor: visitor(7), referrer: 'https://example.org/a?b=c' }),
        makeClick({ code: 'export', at, ip: '2001:db8::1' }),
        makeClick({ code: 'export', at }),
      ];
      const others = [
        makeClick({ code: 'export', at: '2025-03-20T07:59:59.999Z' }),
        makeClick({ code: 'export', at: '2025-03-20T08:00:00.001Z', method: 'HEAD', bot: true }),
        makeClick({ code: 'export', at: '2025-03-20T09:00:00.000Z' }),
        makeClick({ code: 'export', at: '2025-03-20T10:00:00.000Z' }), // at `to`: left out
        makeClick({ code: 'export-other', at }),
      ];
      await writeBatch(db, [...others, ...ties]);
      const pages: EnrichedClick[][] = [];
      for await (const page of exportClicks(db, linkIdOf('export'), { from: new Date('2025-03-20T08:00:00Z'), to: new Date('2025-03-20T10:00:00Z'), pageSize: 2 })) {
        pages.push(page);
      }
      const expected = [...[...ties].sort((a, b) => (a.id < b.id ? -1 : 1)), others[1], others[2]];
      assert.deepEqual(pages.map((page) => page.length), [2, 2, 1]);
      assert.deepEqual(pages.flat(), expected);
      const all: EnrichedClick[] = [];
      for await (const page of exportClicks(db, linkIdOf('export'), { from: new Date(0), to: new Date('2030-01-01T00:00:00Z'), pageSize: 7 })) all.push(...page);
      assert.equal(all.length, 7);
      const none: EnrichedClick[][] = [];
      for await (const page of exportClicks(db, linkIdOf('nobody'), { ...DAYS })) none.push(page);
      assert.deepEqual(none, []);
    });
  });
}
