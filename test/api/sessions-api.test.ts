/**
 * Dashboard sessions through inject(), on PGlite and on PostgreSQL: an API key exchanged for
 * an HttpOnly cookie, CSRF protection of cookie-borne writes, sign-out, expiry and key
 * revocation ending the session; and the dashboard's own answers (headers, caching, ETags,
 * the overview and per-link totals).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/test-app.js';
import { expectProblem } from '../helpers/problems.js';

interface SessionJson {
  keyId: string;
  role: 'admin' | 'member';
  expiresAt: string;
  csrfToken: string;
}

function sessionCookie(response: LightMyRequestResponse): string {
  const header = response.headers['set-cookie'];
  const text = Array.isArray(header) ? header.join('\n') : (header ?? '');
  const value = /shunt_session=([^;]*)/.exec(text)?.[1];
  assert.ok(value !== undefined, `no session cookie in ${text}`);
  return value;
}

for (const backend of BACKENDS) {
  describe(`sessions API (${backend})`, await backendTestOptions(backend), () => {
    let app: TestApp;
    before(async () => {
      app = await startTestApp(backend, { env: { SESSION_TTL_HOURS: '2' } });
    });
    after(async () => {
      await app.close();
    });

    async function signIn(key = ADMIN_KEY): Promise<{ cookie: string; session: SessionJson; response: LightMyRequestResponse }> {
      const response = await app.request({ method: 'POST', url: '/api/v1/session', key: null, body: { key } });
      assert.equal(response.statusCode, 201, response.body);
      return { cookie: sessionCookie(response), session: response.json<SessionJson>(), response };
    }

    const withCookie = (cookie: string, options: { method?: 'GET' | 'POST' | 'PATCH' | 'DELETE'; url: string; body?: unknown; headers?: Record<string, string> }) =>
      app.request({ ...options, key: null, headers: { cookie: `shunt_session=${cookie}`, ...options.headers } });

    test('a wrong key is a 401 and sets no cookie; a body without a key is a 422', async () => {
      const response = await app.request({ method: 'POST', url: '/api/v1/session', key: null, body: { key: 'shunt_wrongwrongwrongwrong' } });
      expectProblem(response, 401, 'unauthorized');
      assert.equal(response.headers['set-cookie'], undefined);
      expectProblem(await app.request({ method: 'POST', url: '/api/v1/session', key: null, body: {} }), 422, 'validation_failed');
    });

    test('a good key gives an HttpOnly, SameSite=Strict cookie with a server-side expiry, and the key is not logged', async () => {
      const before = Date.now();
      const { response, session, cookie } = await signIn();
      const setCookie = String(response.headers['set-cookie']);
      assert.match(setCookie, /; HttpOnly/);
      assert.match(setCookie, /; SameSite=Strict/);
      assert.match(setCookie, /; Path=\//);
      assert.doesNotMatch(setCookie, /Secure/, 'BASE_URL is http here');
      const maxAge = Number(/Max-Age=(\d+)/.exec(setCookie)?.[1]);
      assert.ok(maxAge > 7100 && maxAge <= 7200, `Max-Age ${maxAge}`);
      assert.ok(Math.abs(Date.parse(session.expiresAt) - (before + 7_200_000)) < 60_000);
      assert.equal(session.role, 'admin');
      assert.equal(response.headers['cache-control'], 'no-store');
      assert.ok(!cookie.includes(ADMIN_KEY));
      const again = await withCookie(cookie, { url: '/api/v1/session' });
      assert.equal(again.statusCode, 200);
      assert.equal(again.json<SessionJson>().csrfToken, session.csrfToken);
      assert.equal((await withCookie(cookie, { url: '/api/v1/links' })).statusCode, 200);
      assert.ok(!JSON.stringify(app.logs).includes(ADMIN_KEY.slice(8)), 'the key is in the logs');
    });

    test('writes made with the cookie need the CSRF token and this origin; Bearer calls do not', async () => {
      const { cookie, session } = await signIn();
      const body = { url: 'https://example.com/csrf' };
      expectProblem(await withCookie(cookie, { method: 'POST', url: '/api/v1/links', body }), 403, 'csrf_failed');
      expectProblem(await withCookie(cookie, { method: 'POST', url: '/api/v1/links', body, headers: { 'x-csrf-token': 'x'.repeat(43) } }), 403, 'csrf_failed');
      expectProblem(
        await withCookie(cookie, { method: 'POST', url: '/api/v1/links', body, headers: { 'x-csrf-token': session.csrfToken, origin: 'https://evil.example' } }),
        403, 'csrf_failed',
      );
      const other = await signIn();
      expectProblem(await withCookie(cookie, { method: 'POST', url: '/api/v1/links', body, headers: { 'x-csrf-token': other.session.csrfToken } }), 403, 'csrf_failed');
      const made = await withCookie(cookie, { method: 'POST', url: '/api/v1/links', body, headers: { 'x-csrf-token': session.csrfToken, origin: 'http://sho.rt' } });
      assert.equal(made.statusCode, 201, made.body);
      assert.equal((await app.request({ method: 'POST', url: '/api/v1/links', body })).statusCode, 201);
      expectProblem(await app.request({ method: 'POST', url: '/api/v1/session', key: null, body: { key: ADMIN_KEY }, headers: { origin: 'https://evil.example' } }), 403, 'csrf_failed');
    });

    test('sign-out ends the session and clears the cookie', async () => {
      const { cookie, session } = await signIn();
      const out = await withCookie(cookie, { method: 'DELETE', url: '/api/v1/session', headers: { 'x-csrf-token': session.csrfToken } });
      assert.equal(out.statusCode, 204);
      assert.match(String(out.headers['set-cookie']), /shunt_session=; .*Max-Age=0/);
      expectProblem(await withCookie(cookie, { url: '/api/v1/links' }), 401, 'unauthorized');
    });

    test('revoking the key ends its sessions; an expired session is refused', async () => {
      const memberKey = await app.createKey('member', 'session member');
      const member = await signIn(memberKey);
      assert.equal(member.session.role, 'member');
      assert.equal((await withCookie(member.cookie, { url: '/api/v1/links' })).statusCode, 200);
      expectProblem(await withCookie(member.cookie, { url: '/api/v1/keys' }), 403, 'forbidden');
      const revoked = await app.request({ method: 'DELETE', url: `/api/v1/keys/${member.session.keyId}` });
      assert.equal(revoked.statusCode, 204);
      expectProblem(await withCookie(member.cookie, { url: '/api/v1/links' }), 401, 'unauthorized');

      const admin = await signIn();
      await app.runtime.db.query("UPDATE sessions SET expires_at = now() - interval '1 second'");
      expectProblem(await withCookie(admin.cookie, { url: '/api/v1/links' }), 401, 'unauthorized');
    });

    test('lists and stats answer 304 to a current ETag; sort=oldest reverses the order', async () => {
      for (const alias of ['sess-a', 'sess-b', 'sess-c']) {
        assert.equal((await app.request({ method: 'POST', url: '/api/v1/links', body: { url: `https://example.com/${alias}`, alias, tags: ['sess'] } })).statusCode, 201);
      }
      const newest = await app.request({ url: '/api/v1/links?tag=sess' });
      assert.deepEqual(newest.json<{ items: { code: string }[] }>().items.map((link) => link.code), ['sess-c', 'sess-b', 'sess-a']);
      assert.equal(newest.headers['cache-control'], 'private, no-cache');
      const etag = String(newest.headers.etag);
      assert.equal((await app.request({ url: '/api/v1/links?tag=sess', headers: { 'if-none-match': etag } })).statusCode, 304);
      const page = await app.request({ url: '/api/v1/links?tag=sess&sort=oldest&limit=2' });
      const first = page.json<{ items: { code: string }[]; nextCursor: string }>();
      assert.deepEqual(first.items.map((link) => link.code), ['sess-a', 'sess-b']);
      const rest = await app.request({ url: `/api/v1/links?tag=sess&sort=oldest&limit=2&cursor=${first.nextCursor}` });
      assert.deepEqual(rest.json<{ items: { code: string }[] }>().items.map((link) => link.code), ['sess-c']);
      assert.equal((await app.request({ method: 'PATCH', url: '/api/v1/links/sess-a', body: { title: 'changed' } })).statusCode, 200);
      assert.equal((await app.request({ url: '/api/v1/links?tag=sess', headers: { 'if-none-match': etag } })).statusCode, 200);
      expectProblem(await app.request({ url: '/api/v1/links?sort=sideways' }), 422, 'validation_failed');

      const stats = await app.request({ url: '/api/v1/links/sess-a/stats' });
      assert.equal(stats.statusCode, 200);
      assert.equal((await app.request({ url: '/api/v1/links/sess-a/stats', headers: { 'if-none-match': String(stats.headers.etag) } })).statusCode, 304);
    });

    test('the overview and per-link totals count clicks, and a member sees only its own links', async () => {
      const memberKey = await app.createKey('member', 'overview member');
      assert.equal((await app.request({ method: 'POST', url: '/api/v1/links', key: memberKey, body: { url: 'https://example.com/m', alias: 'sess-member' } })).statusCode, 201);
      for (let i = 0; i < 3; i += 1) await app.request({ url: '/sess-b', key: null, headers: { 'user-agent': 'Mozilla/5.0 Firefox/120.0' } });
      await app.request({ url: '/sess-member', key: null, headers: { 'user-agent': 'Mozilla/5.0 Firefox/120.0' } });
      const deadline = Date.now() + 10_000;
      let overview = { totals: { clicks: 0, links: 0 }, topLinks: [] as { code: string; clicks: number }[], series: [] as unknown[] };
      while (Date.now() < deadline) {
        overview = (await app.request({ url: '/api/v1/stats/overview' })).json();
        if (overview.totals.clicks >= 4) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(overview.totals.clicks, 4);
      assert.equal(overview.series.length, 8, 'seven days back, whole UTC days');
      assert.deepEqual(overview.topLinks.slice(0, 2), [{ code: 'sess-b', title: null, clicks: 3 }, { code: 'sess-member', title: null, clicks: 1 }]);
      const mine = (await app.request({ url: '/api/v1/stats/overview', key: memberKey })).json<typeof overview>();
      assert.deepEqual([mine.totals, mine.topLinks.map((link) => link.code)], [{ clicks: 1, links: 1 }, ['sess-member']]);

      const totals = await app.request({ url: '/api/v1/stats/links?codes=sess-a,sess-b,sess-member,nope,bad%20code' });
      assert.deepEqual(totals.json<{ items: { code: string; clicks: number }[] }>().items.sort((a, b) => a.code.localeCompare(b.code)), [
        { code: 'sess-a', clicks: 0 }, { code: 'sess-b', clicks: 3 }, { code: 'sess-member', clicks: 1 },
      ]);
      const theirs = await app.request({ url: '/api/v1/stats/links?codes=sess-b,sess-member', key: memberKey });
      assert.deepEqual(theirs.json<{ items: unknown[] }>().items, [{ code: 'sess-member', clicks: 1 }]);
      expectProblem(await app.request({ url: `/api/v1/stats/links?codes=${Array.from({ length: 101 }, (_, i) => `c${i}`).join(',')}` }), 422, 'validation_failed');
      expectProblem(await app.request({ url: '/api/v1/stats/overview?from=2020-01-01T00:00:00Z&to=2022-01-01T00:00:00Z' }), 422, 'validation_failed');
    });

    test('the dashboard is served with a strict CSP; assets are immutable; its prefix is a reserved alias', async () => {
      const index = await app.request({ url: '/', key: null });
      assert.equal(index.statusCode, 200);
      assert.match(String(index.headers['content-security-policy']), /default-src 'none'; script-src 'self'; style-src 'self'/);
      assert.equal(index.headers['x-frame-options'], 'DENY');
      assert.equal(index.headers['x-content-type-options'], 'nosniff');
      assert.equal(index.headers['referrer-policy'], 'same-origin');
      assert.equal(index.headers['cache-control'], 'no-cache');
      const script = /src="(\/assets\/[^"]+)"/.exec(index.body)?.[1];
      assert.ok(script !== undefined);
      const asset = await app.request({ url: script, key: null, headers: { 'accept-encoding': 'gzip' } });
      assert.equal(asset.headers['cache-control'], 'public, max-age=31536000, immutable');
      assert.equal(asset.headers['content-encoding'], 'gzip');
      assert.equal((await app.request({ url: '/assets/nope.js', key: null })).statusCode, 404);
      expectProblem(await app.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com', alias: 'Assets' } }), 422, 'alias_reserved');
    });
  });
}

describe('sessions over https', () => {
  test('the cookie is Secure when BASE_URL is https', async () => {
    const app = await startTestApp('embedded', { env: { BASE_URL: 'https://sho.rt' } });
    try {
      const response = await app.request({ method: 'POST', url: '/api/v1/session', key: null, body: { key: ADMIN_KEY } });
      assert.equal(response.statusCode, 201, response.body);
      assert.match(String(response.headers['set-cookie']), /; Secure/);
    } finally {
      await app.close();
    }
  });
});
