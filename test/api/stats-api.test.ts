/**
 * GET /api/v1/links/{code}/stats through inject(), on PGlite and on PostgreSQL: exact
 * totals, series, uniques and breakdowns of known clicks (written straight into the
 * analytics store), bots left out or counted, defaults, every bad parameter as a 422 that
 * names it, and ownership (another member's link is not found).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { writeBatch } from '../../src/analytics/analytics-writer.js';
import type { EnrichedClick } from '../../src/analytics/enriched-click.js';
import type { LinkStats } from '../../src/analytics/stats-query.js';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { documentMismatch } from '../helpers/documented-response.js';
import { makeClick, ofLinks, visitor } from '../helpers/enriched-click-fixture.js';
import { expectProblem } from '../helpers/problems.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';

const CODE = 'stats-link';
const HOUR = 3_600_000;

/** The known clicks of CODE; the expectations below are worked out from them by hand. */
const CLICKS: EnrichedClick[] = [
  makeClick({ code: CODE, at: '2025-03-09T23:59:59.999Z', country: 'DE', visitor: visitor(9) }),
  makeClick({ code: CODE, at: '2025-03-10T10:00:05.000Z', referrerHost: 'google.com', country: 'DE', visitor: visitor(1) }),
  makeClick({ code: CODE, at: '2025-03-10T10:00:50.000Z', referrerHost: 'google.com', country: 'DE', visitor: visitor(1) }),
  makeClick({ code: CODE, at: '2025-03-10T10:02:10.000Z', country: 'US', browser: 'Safari', os: 'iOS', device: 'mobile', visitor: visitor(2) }),
  makeClick({ code: CODE, at: '2025-03-10T10:59:59.999Z', bot: true, browser: null, os: null, device: 'bot', userAgent: null, visitor: visitor(3) }),
  makeClick({ code: CODE, at: '2025-03-10T11:00:00.000Z', referrerHost: 't.co', country: 'US', browser: 'Firefox', os: 'Linux', visitor: visitor(3) }),
  makeClick({ code: CODE, at: '2025-03-10T23:59:59.999Z', method: 'HEAD', bot: true, referrerHost: 'google.com', country: 'FR', visitor: visitor(4) }),
  makeClick({ code: CODE, at: '2025-03-11T00:00:00.000Z', referrerHost: 'google.com', country: 'DE', visitor: visitor(1) }),
  makeClick({ code: CODE, at: '2025-03-12T12:00:00.000Z', referrerHost: 'news.ycombinator.com', browser: 'Chrome', os: 'Android', device: 'mobile' }),
  // Another link at the same times: never counted for CODE.
  makeClick({ code: 'other-link', at: '2025-03-10T10:00:05.000Z', referrerHost: 'google.com', country: 'DE', visitor: visitor(1) }),
];

const DAYS = 'from=2025-03-10T00:00:00Z&to=2025-03-13T00:00:00Z';

interface Problem {
  errors?: { field: string; message: string }[];
}

for (const backend of BACKENDS) {
  describe(`stats API (${backend})`, await backendTestOptions(backend), () => {
    let app: TestApp;
    let memberA: string;
    let memberB: string;

    before(async () => {
      app = await startTestApp(backend, { env: { RATE_LIMIT_KEY_PER_MINUTE: '1000000', RATE_LIMIT_IP_PER_MINUTE: '1000000' } });
      memberA = await app.createKey('member', 'member A');
      memberB = await app.createKey('member', 'member B');
      for (const [alias, key] of [[CODE, undefined], ['other-link', undefined], ['member-a-link', memberA]] as const) {
        const created = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: `https://example.com/${alias}`, alias }, ...(key === undefined ? {} : { key }) });
        assert.equal(created.statusCode, 201, created.body);
      }
      await writeBatch(app.runtime.db, await ofLinks(app.runtime.db, CLICKS));
      await writeBatch(app.runtime.db, await ofLinks(app.runtime.db, [makeClick({ code: 'member-a-link', at: '2025-03-10T10:00:00.000Z', visitor: visitor(7) })]));
    });
    after(() => app.close());

    async function stats(query: string, key?: string): Promise<LinkStats> {
      const response = await app.request({ url: `/api/v1/links/${CODE}/stats?${query}`, ...(key === undefined ? {} : { key }) });
      assert.equal(response.statusCode, 200, response.body);
      assert.equal(await documentMismatch(app, 'GET', '/api/v1/links/{code}/stats', response), '');
      return response.json<LinkStats>();
    }

    test('daily: totals, series, uniques and every breakdown, bots left out', async () => {
      const body = await stats(`${DAYS}&interval=day`);
      assert.deepEqual(body, {
        range: { from: '2025-03-10T00:00:00.000Z', to: '2025-03-13T00:00:00.000Z', interval: 'day' },
        days: { from: '2025-03-10T00:00:00.000Z', to: '2025-03-13T00:00:00.000Z' },
        totals: { clicks: 6, uniques: 4, imported: 0 },
        series: [
          { t: '2025-03-10T00:00:00.000Z', clicks: 4 },
          { t: '2025-03-11T00:00:00.000Z', clicks: 1 },
          { t: '2025-03-12T00:00:00.000Z', clicks: 1 },
        ],
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

    test('bots=include counts bot user agents and HEAD requests, and their visitors', async () => {
      const body = await stats(`${DAYS}&interval=day&bots=include`);
      assert.deepEqual(body.totals, { clicks: 8, uniques: 5, imported: 0 });
      assert.deepEqual(body.series.map((point) => point.clicks), [6, 1, 1]);
      assert.deepEqual(body.referrers, [
        { value: 'google.com', clicks: 4 },
        { value: null, clicks: 2 },
        { value: 'news.ycombinator.com', clicks: 1 },
        { value: 't.co', clicks: 1 },
      ]);
      assert.deepEqual(body.devices, [
        { value: 'desktop', clicks: 5 },
        { value: 'mobile', clicks: 2 },
        { value: 'bot', clicks: 1 },
      ]);
      assert.deepEqual((await stats(`${DAYS}&interval=day&bots=exclude`)).totals, { clicks: 6, uniques: 4, imported: 0 });
    });

    test('hourly and minutely series are exact, with zero buckets', async () => {
      const hourly = await stats('from=2025-03-10T10:00:00Z&to=2025-03-10T12:00:00Z&interval=hour&bots=include');
      assert.deepEqual(hourly.series, [
        { t: '2025-03-10T10:00:00.000Z', clicks: 4 },
        { t: '2025-03-10T11:00:00.000Z', clicks: 1 },
      ]);
      assert.deepEqual(hourly.totals.clicks, 5);
      const minutes = await stats('from=2025-03-10T10:00:00Z&to=2025-03-10T10:03:00Z&interval=minute');
      assert.deepEqual(minutes.series.map((point) => point.clicks), [2, 0, 1]);
      assert.equal(minutes.totals.clicks, 3);
      // An offset other than Z names the same instant.
      const offset = await stats('from=2025-03-10T11:00:00%2B01:00&to=2025-03-10T12:00:00%2B01:00&interval=minute');
      assert.equal(offset.range.from, '2025-03-10T10:00:00.000Z');
      assert.equal(offset.series.length, 60);
    });

    test('top limits every breakdown', async () => {
      const body = await stats(`${DAYS}&top=1`);
      assert.deepEqual(body.referrers, [{ value: 'google.com', clicks: 3 }]);
      assert.deepEqual(body.os, [{ value: 'Windows', clicks: 3 }]);
      assert.equal(body.countries.length, 1);
    });

    test('defaults: the last 7 days up to now, hourly; a range over 31 days is daily', async () => {
      const before = Date.now();
      const body = await stats('');
      assert.equal(body.range.interval, 'hour');
      const to = Date.parse(body.range.to);
      assert.ok(to >= before && to <= Date.now() + HOUR, body.range.to);
      assert.ok(body.series.length === 168 || body.series.length === 169, String(body.series.length));
      assert.equal((await stats('from=2025-01-01T00:00:00Z&to=2025-03-01T00:00:00Z')).range.interval, 'day');
      assert.equal((await stats('from=2025-02-01T00:00:00Z&to=2025-03-01T00:00:00Z')).range.interval, 'hour');
      // Only `to`: a week before it.
      const week = await stats('to=2025-03-13T00:00:00Z&interval=day');
      assert.equal(week.range.from, '2025-03-06T00:00:00.000Z');
      assert.equal(week.totals.clicks, 7);
    });

    test('the answer is private and not kept by caches', async () => {
      const response = await app.request({ url: `/api/v1/links/${CODE}/stats?${DAYS}` });
      assert.equal(response.headers['cache-control'], 'private, no-cache');
      assert.match(String(response.headers.etag), /^W\/"/);
      assert.ok(response.headers['ratelimit-limit'] !== undefined);
    });

    const badQueries: [query: string, fields: string[]][] = [
      ['from=yesterday', ['from']],
      ['to=2025-13-01T00:00:00Z', ['to']],
      ['from=2025-03-10T10:00:00', ['from']],
      ['from=2025-03-10', ['from']],
      ['interval=week', ['interval']],
      ['bots=maybe', ['bots']],
      ['top=0', ['top']],
      ['top=101', ['top']],
      ['top=abc', ['top']],
      ['top=1.5', ['top']],
      ['foo=1', ['foo']],
      ['from=x&top=0&interval=week&bots=no', ['from', 'top', 'interval', 'bots']],
      ['from=2025-03-12T00:00:00Z&to=2025-03-10T00:00:00Z', ['from']],
      ['from=2025-03-10T00:00:00Z&to=2025-03-10T00:00:00Z', ['from']],
      ['from=2020-01-01T00:00:00Z&to=2025-01-01T00:00:00Z&interval=minute', ['interval']],
      ['from=0000-01-01T00:00:00Z', ['from']],
      ['to=9999-12-31T23:59:59-05:00', ['to']],
      ['to=2016-12-31T23:59:60Z', ['to']],
      [`from=${'9'.repeat(400)}`, ['from']],
    ];
    for (const [query, fields] of badQueries) {
      test(`422 validation_failed naming ${fields.join(', ')}: ${query.slice(0, 80)}`, async () => {
        const response = await app.request({ url: `/api/v1/links/${CODE}/stats?${query}` });
        const problem = expectProblem(response, 422, 'validation_failed') as Problem;
        assert.deepEqual(new Set(problem.errors?.map((error) => error.field)), new Set(fields), JSON.stringify(problem.errors));
        assert.equal(await documentMismatch(app, 'GET', '/api/v1/links/{code}/stats', response), '');
      });
    }

    test('a member sees the stats of its own links only; others are not found', async () => {
      const own = await app.request({ url: `/api/v1/links/member-a-link/stats?${DAYS}&interval=day`, key: memberA });
      assert.equal(own.statusCode, 200, own.body);
      assert.equal(own.json<LinkStats>().totals.clicks, 1);
      expectProblem(await app.request({ url: `/api/v1/links/member-a-link/stats?${DAYS}`, key: memberB }), 404, 'link_not_found');
      expectProblem(await app.request({ url: `/api/v1/links/${CODE}/stats?${DAYS}`, key: memberA }), 404, 'link_not_found');
      // The admin sees every link.
      assert.equal((await app.request({ url: `/api/v1/links/member-a-link/stats?${DAYS}` })).statusCode, 200);
    });

    test('unknown or impossible codes are not found; no key is 401', async () => {
      expectProblem(await app.request({ url: '/api/v1/links/NoSuchLink/stats' }), 404, 'link_not_found');
      expectProblem(await app.request({ url: '/api/v1/links/a%20b/stats' }), 404, 'link_not_found');
      expectProblem(await app.request({ url: `/api/v1/links/${'x'.repeat(65)}/stats` }), 404, 'link_not_found');
      expectProblem(await app.request({ url: `/api/v1/links/${CODE}/stats`, key: null }), 401, 'unauthorized');
    });

    test('a link without clicks answers zeros for every bucket', async () => {
      const response = await app.request({ url: '/api/v1/links/other-link/stats?from=2025-04-01T00:00:00Z&to=2025-04-02T00:00:00Z' });
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json<LinkStats>();
      assert.deepEqual(body.totals, { clicks: 0, uniques: 0, imported: 0 });
      assert.equal(body.series.length, 24);
      assert.ok(body.series.every((point) => point.clicks === 0));
      assert.deepEqual([body.referrers, body.countries, body.browsers, body.os, body.devices], [[], [], [], [], []]);
    });
  });
}

const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0';

for (const backend of BACKENDS) {
  describe(`clicks served are in the stats and the export (${backend})`, await backendTestOptions(backend), () => {
    let app: TestApp;
    before(async () => {
      app = await startTestApp(backend);
    });
    after(() => app.close());

    test('redirects, through the click queue and the worker, to stats and CSV', async () => {
      const created = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/served', alias: 'served' } });
      assert.equal(created.statusCode, 201, created.body);
      const headers = { 'user-agent': FIREFOX, referer: 'https://news.example/post?id=1' };
      for (let i = 0; i < 5; i += 1) assert.equal((await app.request({ url: '/served', key: null, headers })).statusCode, 302);
      assert.equal((await app.request({ method: 'HEAD', url: '/served', key: null, headers })).statusCode, 302);
      await app.runtime.deps.clicks.flush();

      const range = `from=${new Date(Date.now() - HOUR).toISOString()}&to=${new Date(Date.now() + HOUR).toISOString()}`;
      const humans = await app.request({ url: `/api/v1/links/served/stats?${range}&interval=day` });
      assert.equal(humans.statusCode, 200, humans.body);
      const stats = humans.json<LinkStats>();
      // One client (same address and agent) is one visitor; the HEAD is a bot, left out.
      assert.deepEqual(stats.totals, { clicks: 5, uniques: 1, imported: 0 });
      assert.deepEqual(stats.referrers, [{ value: 'news.example', clicks: 5 }]);
      assert.deepEqual(stats.browsers, [{ value: 'Firefox', clicks: 5 }]);
      assert.deepEqual(stats.devices, [{ value: 'desktop', clicks: 5 }]);
      const all = (await app.request({ url: `/api/v1/links/served/stats?${range}&interval=day&bots=include` })).json<LinkStats>();
      assert.equal(all.totals.clicks, 6);

      const csv = await app.request({ url: `/api/v1/links/served/stats/export?${range}` });
      assert.equal(csv.statusCode, 200, csv.body);
      const lines = csv.body.trim().split(/\r?\n/);
      assert.equal(lines.length, 7, 'a header and one row per click');
      assert.equal(lines.slice(1).filter((line) => line.includes(',HEAD,')).length, 1);
    });
  });
}
