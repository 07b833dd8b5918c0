import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import type { ClickEvent } from '../../src/clicks/click-event.js';
import { ClickRepository } from '../../src/clicks/click-repository.js';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { openFreshDatabase, type FreshDatabase } from '../helpers/fresh-database.js';
import { startTestApp } from '../helpers/test-app.js';

const IPS = ['203.0.113.7', '2001:db8::1', null, '::ffff:192.0.2.1', '10.0.0.255', 'fe80::1:2:3:4', '::1', '0.0.0.0'] as const;
// How PostgreSQL prints each address back (inet text form, host addresses without /32 or /128).
const IP_TEXT: Record<string, string> = {
  '203.0.113.7': '203.0.113.7',
  '2001:db8::1': '2001:db8::1',
  '::ffff:192.0.2.1': '::ffff:192.0.2.1',
  '10.0.0.255': '10.0.0.255',
  'fe80::1:2:3:4': 'fe80::1:2:3:4',
  '::1': '::1',
  '0.0.0.0': '0.0.0.0',
};
const BASE_TIME = Date.parse('2025-03-01T10:00:00.000Z');

function event(i: number): ClickEvent {
  return {
    code: `code${i % 7}`,
    at: new Date(BASE_TIME + i * 1001),
    method: i % 5 === 0 ? 'HEAD' : 'GET',
    referrer: i % 3 === 0 ? null : `https://ref.example/${i}?q='quoted'&x="y"`,
    userAgent: i % 4 === 0 ? null : `Agent/${i} (ünïcode; ✓) {"json":1}`,
    ip: IPS[i % IPS.length] ?? null,
  };
}

type ClickRow = {
  link_code: string;
  clicked_at: Date;
  method: string;
  referrer: string | null;
  user_agent: string | null;
  ip: string | null;
};

for (const backend of BACKENDS) {
  describe(`ClickRepository (${backend})`, await backendTestOptions(backend), () => {
    let fresh: FreshDatabase;
    let clicks: ClickRepository;
    before(async () => {
      fresh = await openFreshDatabase(backend);
      clicks = new ClickRepository(fresh.db);
    });
    after(() => fresh.close());

    test('insertMany stores 1000 events in one go, every field intact', async () => {
      // Every event has its own timestamp, so rows can be matched by clicked_at (the log has no id).
      const events = Array.from({ length: 1000 }, (_, i) => event(i));
      await clicks.insertMany(events);
      const rows = await fresh.db.query<ClickRow>(
        `SELECT link_code, clicked_at, method, referrer, user_agent, host(client_ip) AS ip FROM clicks ORDER BY clicked_at`,
      );
      assert.equal(rows.rows.length, 1000);
      rows.rows.forEach((row, i) => {
        const expected = events[i];
        assert.ok(expected !== undefined);
        assert.equal(row.link_code, expected.code, `row ${i}`);
        assert.equal(row.clicked_at.getTime(), expected.at.getTime(), `row ${i} time`);
        assert.equal(row.method, expected.method);
        assert.equal(row.referrer, expected.referrer);
        assert.equal(row.user_agent, expected.userAgent);
        assert.equal(row.ip, expected.ip === null ? null : IP_TEXT[expected.ip], `row ${i} ip ${expected.ip}`);
      });
      const families = await fresh.db.query<{ family: number | null; n: number }>(
        'SELECT family(client_ip) AS family, count(*)::int AS n FROM clicks GROUP BY 1 ORDER BY 1 NULLS LAST',
      );
      assert.deepEqual(families.rows, [
        { family: 4, n: 375 },
        { family: 6, n: 500 },
        { family: null, n: 125 },
      ]);
    });

    test('countFor counts per code', async () => {
      const expected = new Map<string, number>();
      for (let i = 0; i < 1000; i += 1) expected.set(`code${i % 7}`, (expected.get(`code${i % 7}`) ?? 0) + 1);
      for (const [code, count] of expected) assert.equal(await clicks.countFor(code), count, code);
      assert.equal([...expected.values()].reduce((a, b) => a + b, 0), 1000);
      assert.equal(await clicks.countFor('unknown'), 0);
      assert.equal(await clicks.countFor('CODE0'), 0, 'codes are case-sensitive');
    });

    test('an empty batch is a no-op', async () => {
      await clicks.insertMany([]);
      assert.equal((await fresh.db.query('SELECT 1 FROM clicks')).rowCount, 1000);
    });

    test('a batch with every optional field null', async () => {
      await clicks.insertMany([{ code: 'nulls', at: new Date(BASE_TIME), method: 'GET', referrer: null, userAgent: null, ip: null }]);
      assert.equal(await clicks.countFor('nulls'), 1);
    });

    test('separators, escapes and literal \\N in text fields are stored exactly as sent', async () => {
      const tricky = ['tab\there', 'line\nbreak', 'carriage\rreturn', 'back\\slash', '\\N', 'end\\'];
      await clicks.insertMany(tricky.map((text, i) => ({ code: 'tricky', at: new Date(BASE_TIME + i), method: 'GET' as const, referrer: text, userAgent: `${text}!`, ip: null })));
      const rows = await fresh.db.query<{ referrer: string; user_agent: string }>(
        "SELECT referrer, user_agent FROM clicks WHERE link_code = 'tricky' ORDER BY clicked_at",
      );
      assert.deepEqual(rows.rows.map((row) => row.referrer), tricky);
      assert.deepEqual(rows.rows.map((row) => row.user_agent), tricky.map((text) => `${text}!`));
    });

    test('concurrent batches all land', async () => {
      await Promise.all(
        Array.from({ length: 10 }, (_, b) =>
          clicks.insertMany(Array.from({ length: 100 }, (_, i) => ({ ...event(i), code: `batch${b}` }))),
        ),
      );
      for (let b = 0; b < 10; b += 1) assert.equal(await clicks.countFor(`batch${b}`), 100);
    });
  });

  // A client behind a trusted proxy controls X-Forwarded-For; whatever it sends must not
  // make the click batch unwritable (that would stop click recording for every link).
  describe(`click recording survives a forged X-Forwarded-For (${backend})`, await backendTestOptions(backend), () => {
    test('clicks before and after a request with X-Forwarded-For: garbage are all stored', async () => {
      const app = await startTestApp(backend, { env: { TRUSTED_PROXIES: '127.0.0.1', CLICK_FLUSH_INTERVAL_MS: '20' } });
      try {
        const created = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/xff' } });
        assert.equal(created.statusCode, 201, created.body);
        const { code } = created.json<{ code: string }>();
        for (const forwarded of ['203.0.113.9', 'garbage', '198.51.100.1, 203.0.113.10']) {
          const response = await app.request({ url: `/${code}`, key: null, headers: { 'x-forwarded-for': forwarded } });
          assert.equal(response.statusCode, 302);
        }
        const repository = new ClickRepository(app.runtime.db);
        let stored = 0;
        for (let i = 0; i < 100 && stored < 3; i += 1) {
          await sleep(20);
          stored = await repository.countFor(code).catch(() => 0);
        }
        const failures = app.logs.filter((line) => line.msg === 'click batch write failed; kept for retry').length;
        assert.equal(stored, 3, `stored ${stored} of 3 clicks; ${failures} failed batch writes; ${app.runtime.deps.clicks.buffered} still buffered`);
      } finally {
        await app.close();
      }
    });
  });
}
