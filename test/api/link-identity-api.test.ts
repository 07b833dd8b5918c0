/**
 * Analytics belong to a link, not to its code: a member's deleted link leaves nothing that
 * the next owner of the code can see, on PGlite and on PostgreSQL. Clicks go through the
 * real redirect route and click pipeline; stats and exports through the API.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { purgeDeletedLinks } from '../../src/analytics/deleted-link-purge.js';
import type { LinkStats } from '../../src/analytics/stats-query.js';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';

const TOKEN_REFERRER = 'https://mail.example/inbox?token=secret-token-of-member-a';
const AGENT_A = 'Mozilla/5.0 (X11; Linux x86_64) MemberA-Browser/1.0 Firefox/125.0';
const RANGE = () => `from=${new Date(Date.now() - 86_400_000).toISOString()}&to=${new Date(Date.now() + 86_400_000).toISOString()}`;

for (const backend of BACKENDS) {
  describe(`analytics of a deleted link stay with it (${backend})`, await backendTestOptions(backend), () => {
    let app: TestApp;
    let memberA: string;
    let memberB: string;
    let linkOfA: string;

    before(async () => {
      app = await startTestApp(backend, { env: { RATE_LIMIT_KEY_PER_MINUTE: '1000000', RATE_LIMIT_IP_PER_MINUTE: '1000000' } });
      memberA = await app.createKey('member', 'member A');
      memberB = await app.createKey('member', 'member B');
    });
    after(() => app.close());

    async function stats(key: string): Promise<LinkStats> {
      const response = await app.request({ url: `/api/v1/links/promo/stats?${RANGE()}&interval=day&bots=include`, key });
      assert.equal(response.statusCode, 200, response.body);
      return response.json<LinkStats>();
    }

    async function csv(key: string): Promise<string> {
      const response = await app.request({ url: `/api/v1/links/promo/stats/export?${RANGE()}`, key });
      assert.equal(response.statusCode, 200, response.body);
      return response.body;
    }

    async function click(headers: Record<string, string>): Promise<void> {
      const response = await app.request({ url: '/promo', key: null, headers: { 'x-forwarded-for': '203.0.113.9', ...headers } });
      assert.equal(response.statusCode, 302, response.body);
    }

    test("member A's link gets clicks with a token in the referrer", async () => {
      const created = await app.request({ method: 'POST', url: '/api/v1/links', key: memberA, body: { url: 'https://a.example/', alias: 'promo' } });
      assert.equal(created.statusCode, 201, created.body);
      for (let i = 0; i < 3; i += 1) await click({ referer: TOKEN_REFERRER, 'user-agent': AGENT_A });
      await app.runtime.deps.clicks.flush();
      const seen = await stats(memberA);
      assert.equal(seen.totals.clicks, 3);
      assert.deepEqual(seen.referrers, [{ value: 'mail.example', clicks: 3 }]);
      assert.match(await csv(memberA), /secret-token-of-member-a/);
      const row = await app.runtime.db.query<{ id: string }>(`SELECT id::text AS id FROM links WHERE code = 'promo'`);
      linkOfA = row.rows[0]?.id ?? '';
    });

    test("A deletes it; B takes the alias and sees nothing of A's, in stats or export", async () => {
      assert.equal((await app.request({ method: 'DELETE', url: '/api/v1/links/promo', key: memberA })).statusCode, 204);
      const created = await app.request({ method: 'POST', url: '/api/v1/links', key: memberB, body: { url: 'https://b.example/', alias: 'promo' } });
      assert.equal(created.statusCode, 201, created.body);

      const seen = await stats(memberB);
      assert.equal(seen.totals.clicks, 0);
      assert.equal(seen.totals.uniques, 0);
      assert.deepEqual([seen.referrers, seen.browsers, seen.os, seen.devices, seen.countries], [[], [], [], [], []]);
      const file = await csv(memberB);
      assert.doesNotMatch(file, /secret-token|MemberA-Browser|mail\.example/);
      assert.equal(file.trim().split('\n').length, 1, `only the header: ${file}`);
    });

    test("B's own clicks count for B only, and never reach A's rows", async () => {
      await click({ 'user-agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0.0.0 Safari/537.36' });
      await app.runtime.deps.clicks.flush();
      const seen = await stats(memberB);
      assert.equal(seen.totals.clicks, 1);
      assert.deepEqual(seen.referrers, [{ value: null, clicks: 1 }]);
      const file = await csv(memberB);
      assert.equal(file.trim().split('\n').length, 2);
      assert.doesNotMatch(file, /secret-token|MemberA-Browser/);
      const ofA = await app.runtime.db.query<{ n: number }>('SELECT count(*)::int AS n FROM click_events WHERE link_id = $1', [linkOfA]);
      assert.equal(ofA.rows[0]?.n, 3, "A's clicks are kept (unreachable) until the purge");
    });

    test("A's analytics are purged after the retention, and B's are left alone", async () => {
      const db = app.runtime.db;
      assert.deepEqual(await purgeDeletedLinks(db, new Date(Date.now() - 86_400_000)), { links: 0, rows: 0 }, 'not yet: the deletion is recent');
      const purged = await purgeDeletedLinks(db, new Date(Date.now() + 1000), { batchSize: 2 });
      assert.equal(purged.links, 1);
      for (const table of ['click_events', 'link_clicks_minute', 'link_clicks_hour', 'link_clicks_day', 'link_breakdown_day', 'link_agents_day']) {
        const left = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE link_id = $1`, [linkOfA]);
        assert.equal(left.rows[0]?.n, 0, table);
      }
      assert.equal((await db.query('SELECT 1 FROM deleted_links WHERE link_id = $1', [linkOfA])).rowCount, 0);
      assert.equal((await stats(memberB)).totals.clicks, 1);
    });

    test('update and delete of a link that is not yours are refused without touching it', async () => {
      const patch = await app.request({ method: 'PATCH', url: '/api/v1/links/promo', key: memberA, body: { title: 'mine now' } });
      assert.equal(patch.statusCode, 404, patch.body);
      const del = await app.request({ method: 'DELETE', url: '/api/v1/links/promo', key: memberA });
      assert.equal(del.statusCode, 404, del.body);
      const still = await app.request({ url: '/api/v1/links/promo', key: memberB });
      assert.equal(still.statusCode, 200);
      assert.equal(still.json<{ title: string | null }>().title, null);
    });
  });
}
