/**
 * The public redirect path, end to end: GET and HEAD /{code}, cache headers per
 * redirect type, query forwarding, 404/410, preview pages, QR codes, exact visit
 * limits under concurrency, and the click events every redirect leaves behind.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LightMyRequestResponse } from 'fastify';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';

interface LinkJson {
  code: string;
  shortUrl: string;
  url: string;
  visits: number;
  maxVisits: number | null;
}

const NO_STORE = 'private, no-store';
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function assertHtml(response: LightMyRequestResponse, status: number): void {
  assert.equal(response.statusCode, status, response.body);
  assert.match(String(response.headers['content-type']), /^text\/html/);
  assert.equal(response.headers.location, undefined, 'no Location header');
}

function assertMaxAge(response: LightMyRequestResponse, low: number, high: number): void {
  const cacheControl = String(response.headers['cache-control']);
  const match = /^public, max-age=(\d+)$/.exec(cacheControl);
  assert.ok(match?.[1] !== undefined, `expected "public, max-age=N", got "${cacheControl}"`);
  const maxAge = Number(match[1]);
  assert.ok(maxAge >= low && maxAge <= high, `max-age ${maxAge} not within [${low}, ${high}]`);
}

/** Width of a PNG, from its IHDR chunk. */
function pngWidth(bytes: Buffer): number {
  return bytes.readUInt32BE(16);
}

// The embedded run keeps the default max-age; the postgres run sets the variable, so both
// the default and the setting are checked without a second app per backend.
const MAX_AGE_ENV: Readonly<Record<string, string | undefined>> = { embedded: undefined, postgres: '1800' };

for (const backend of BACKENDS) {
  describe(`redirect path (${backend})`, await backendTestOptions(backend), () => {
    const maxAgeSetting = MAX_AGE_ENV[backend];
    const expectedMaxAge = maxAgeSetting === undefined ? 3600 : Number(maxAgeSetting);
    let app: TestApp;
    before(async () => {
      // The raw IP is kept so that the stored clicks can be compared whole.
      app = await startTestApp(backend, {
        env: { CLICKS_STORE_RAW_IP: 'true', ...(maxAgeSetting === undefined ? {} : { PERMANENT_REDIRECT_MAX_AGE: maxAgeSetting }) },
      });
    });
    after(() => app.close());

    async function createLink(body: Record<string, unknown>): Promise<LinkJson> {
      const response = await app.request({ method: 'POST', url: '/api/v1/links', body });
      assert.equal(response.statusCode, 201, response.body);
      return response.json<LinkJson>();
    }

    function follow(url: string, method: 'GET' | 'HEAD' = 'GET', headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
      return app.request({ method, url, key: null, headers });
    }

    async function clicksFor(code: string): Promise<{ n: number; heads: number }> {
      await app.runtime.deps.clicks.flush();
      const result = await app.runtime.db.query<{ n: number; heads: number }>(
        "select count(*)::int as n, count(*) filter (where method='HEAD')::int as heads from click_events where code=$1",
        [code],
      );
      const row = result.rows[0];
      assert.ok(row !== undefined);
      return row;
    }

    test('302 by default, for GET and HEAD, with Cache-Control: private, no-store', async () => {
      const { code } = await createLink({ url: 'https://example.com/default' });
      for (const method of ['GET', 'HEAD'] as const) {
        const response = await follow(`/${code}`, method);
        assert.equal(response.statusCode, 302, `${method}: ${response.body}`);
        assert.equal(response.headers.location, 'https://example.com/default');
        assert.equal(response.headers['cache-control'], NO_STORE);
        if (method === 'HEAD') assert.equal(response.body, '');
      }
    });

    test(`301 and 308 carry public, max-age=PERMANENT_REDIRECT_MAX_AGE (default 3600; ${expectedMaxAge} here)`, async () => {
      for (const redirectType of [301, 308]) {
        const { code } = await createLink({ url: `https://example.com/permanent-${redirectType}`, redirectType });
        for (const method of ['GET', 'HEAD'] as const) {
          const response = await follow(`/${code}`, method);
          assert.equal(response.statusCode, redirectType, `${method}: ${response.body}`);
          assert.equal(response.headers.location, `https://example.com/permanent-${redirectType}`);
          assert.equal(response.headers['cache-control'], `public, max-age=${expectedMaxAge}`);
        }
      }
    });

    test('a permanent redirect is never cached beyond the link\'s expiry', async () => {
      for (const redirectType of [301, 308]) {
        const expiresAt = new Date(Date.now() + 100_000).toISOString();
        const { code } = await createLink({ url: 'https://example.com/soon-gone', redirectType, expiresAt });
        const response = await follow(`/${code}`);
        assert.equal(response.statusCode, redirectType);
        assertMaxAge(response, 90, 100);
      }
    });

    test('307 keeps the method and is not cached', async () => {
      const { code } = await createLink({ url: 'https://example.com/temporary', redirectType: 307 });
      for (const method of ['GET', 'HEAD'] as const) {
        const response = await follow(`/${code}`, method);
        assert.equal(response.statusCode, 307);
        assert.equal(response.headers.location, 'https://example.com/temporary');
        assert.equal(response.headers['cache-control'], NO_STORE);
      }
    });

    test('the query string is forwarded before the fragment, unless forwardQuery is false', async () => {
      const forwarding = await createLink({ url: 'https://example.com/path?x=1#frag' });
      assert.equal((await follow(`/${forwarding.code}?a=1`)).headers.location, 'https://example.com/path?x=1&a=1#frag');
      assert.equal((await follow(`/${forwarding.code}?a=1&b=two`, 'HEAD')).headers.location, 'https://example.com/path?x=1&a=1&b=two#frag');
      assert.equal((await follow(`/${forwarding.code}`)).headers.location, 'https://example.com/path?x=1#frag');

      const plain = await createLink({ url: 'https://example.com/plain' });
      assert.equal((await follow(`/${plain.code}?utm_source=mail&a=%20b`)).headers.location, 'https://example.com/plain?utm_source=mail&a=%20b');

      const dropping = await createLink({ url: 'https://example.com/path?x=1#frag', forwardQuery: false });
      const response = await follow(`/${dropping.code}?a=1`);
      assert.equal(response.statusCode, 302);
      assert.equal(response.headers.location, 'https://example.com/path?x=1#frag');
    });

    test('an unknown code is a 404 HTML page without Location', async () => {
      for (const url of ['/NoSuchCode1', '/no.such', '/zz-unknown?a=1']) {
        for (const method of ['GET', 'HEAD'] as const) {
          const response = await follow(url, method);
          assertHtml(response, 404);
          if (method === 'GET') assert.match(response.body, /not found/i);
        }
      }
    });

    test('an expired link answers 410, or 302 to its fallbackUrl', async () => {
      const expiresAtMs = Date.now() + 2000;
      const expiresAt = new Date(expiresAtMs).toISOString();
      const [plain, withFallback] = await Promise.all([
        createLink({ url: 'https://example.com/expiring', expiresAt }),
        createLink({ url: 'https://example.com/expiring', expiresAt, fallbackUrl: 'https://example.org/fallback' }),
      ]);
      // Before the expiry: ordinary redirects (and the links are now in the cache).
      assert.equal((await follow(`/${plain.code}`)).statusCode, 302);
      assert.equal((await follow(`/${withFallback.code}`)).statusCode, 302);

      await sleep(Math.max(0, expiresAtMs - Date.now()) + 250);

      for (const method of ['GET', 'HEAD'] as const) {
        const gone = await follow(`/${plain.code}`, method);
        assertHtml(gone, 410);
        assert.equal(gone.headers['cache-control'], NO_STORE);

        const fallback = await follow(`/${withFallback.code}?a=1`, method);
        assert.equal(fallback.statusCode, 302);
        assert.equal(fallback.headers.location, 'https://example.org/fallback');
        assert.equal(fallback.headers['cache-control'], NO_STORE);
      }
      // Only the two redirects served before the expiry are clicks.
      assert.equal((await clicksFor(plain.code)).n, 1);
      assert.equal((await clicksFor(withFallback.code)).n, 1);
    });

    test('a disabled link answers 410, and redirects again once re-enabled', async () => {
      const { code } = await createLink({ url: 'https://example.com/switch' });
      assert.equal((await follow(`/${code}`)).statusCode, 302);

      const disabled = await app.request({ method: 'PATCH', url: `/api/v1/links/${code}`, body: { disabled: true } });
      assert.equal(disabled.statusCode, 200, disabled.body);
      for (const method of ['GET', 'HEAD'] as const) assertHtml(await follow(`/${code}`, method), 410);

      const enabled = await app.request({ method: 'PATCH', url: `/api/v1/links/${code}`, body: { disabled: false } });
      assert.equal(enabled.statusCode, 200, enabled.body);
      const response = await follow(`/${code}`);
      assert.equal(response.statusCode, 302);
      assert.equal(response.headers.location, 'https://example.com/switch');
    });

    test('/{code}+ is an HTML preview (escaped destination and title, inline QR) and records no click', async () => {
      const title = '<script>alert("x")</script> Tom & Jerry';
      const { code, shortUrl } = await createLink({ url: 'https://example.com/search?q=1&lang=en', title });
      const response = await follow(`/${code}+`);
      assert.equal(response.statusCode, 200, response.body);
      assert.match(String(response.headers['content-type']), /^text\/html/);
      assert.equal(response.headers.location, undefined);
      assert.equal(response.headers['cache-control'], NO_STORE);
      const html = response.body;
      assert.ok(html.includes('https://example.com/search?q=1&amp;lang=en'), 'destination, HTML-escaped');
      assert.ok(!html.includes('q=1&lang=en'), 'no raw & in the destination');
      assert.ok(html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; Tom &amp; Jerry'), 'title, HTML-escaped');
      assert.ok(!html.includes('<script>'), 'no script element from the title');
      assert.ok(html.includes(shortUrl), 'the short URL');
      assert.match(html, /<svg[\s>]/, 'an inline SVG QR code');
      assert.equal((await clicksFor(code)).n, 0);

      assertHtml(await follow('/NoSuchCode2+'), 404);
    });

    test('HEAD /{code}+ answers like GET (200, HTML) and records no click', async () => {
      const { code } = await createLink({ url: 'https://example.com/head-preview' });
      const response = await follow(`/${code}+`, 'HEAD');
      assert.equal(response.statusCode, 200, 'HEAD must answer with the same status as GET (RFC 9110 9.3.2)');
      assert.match(String(response.headers['content-type']), /^text\/html/);
      assert.equal(response.body, '');
      assert.equal((await clicksFor(code)).n, 0);
    });

    test('/{code}/qr is an SVG by default, a PNG on request, sized by ?size', async () => {
      const { code } = await createLink({ url: 'https://example.com/qr' });

      const svg = await follow(`/${code}/qr`);
      assert.equal(svg.statusCode, 200, svg.body);
      assert.match(String(svg.headers['content-type']), /^image\/svg\+xml/);
      assert.match(svg.body, /^(<\?xml[^>]*>\s*)?<svg[\s>]/);
      assert.match(svg.body, /width="256"/);

      const explicitSvg = await follow(`/${code}/qr?format=svg&size=64`);
      assert.equal(explicitSvg.statusCode, 200);
      assert.match(explicitSvg.body, /<svg[^>]*width="64"/);

      const png = await follow(`/${code}/qr?format=png`);
      assert.equal(png.statusCode, 200);
      assert.equal(png.headers['content-type'], 'image/png');
      assert.deepEqual(png.rawPayload.subarray(0, 8), PNG_MAGIC);
      assert.equal(pngWidth(png.rawPayload), 256);

      const small = await follow(`/${code}/qr?format=png&size=64`);
      assert.equal(small.statusCode, 200);
      assert.deepEqual(small.rawPayload.subarray(0, 8), PNG_MAGIC);
      assert.equal(pngWidth(small.rawPayload), 64);
      assert.ok(small.rawPayload.length < png.rawPayload.length);

      // A QR code view is not a click.
      assert.equal((await clicksFor(code)).n, 0);
    });

    test('/{code}/qr refuses a bad format or size with a 422 problem naming the field', async () => {
      const { code } = await createLink({ url: 'https://example.com/qr-bad' });
      const cases: [string, string][] = [
        ['format=gif', 'format'],
        ['format=', 'format'],
        ['size=10', 'size'],
        ['size=5000', 'size'],
        ['size=abc', 'size'],
        ['size=64.5', 'size'],
      ];
      for (const [query, field] of cases) {
        const response = await follow(`/${code}/qr?${query}`);
        assert.equal(response.statusCode, 422, `${query}: ${response.body}`);
        assert.match(String(response.headers['content-type']), /^application\/problem\+json/);
        const problem = response.json<{ status: number; code: string; errors?: { field: string }[] }>();
        assert.equal(problem.status, 422);
        assert.equal(problem.code, 'validation_failed');
        assert.ok(problem.errors?.some((error) => error.field === field), `${query}: errors list ${field}: ${response.body}`);
      }
    });

    test('/{code}/qr of an unknown code is a 404', async () => {
      for (const url of ['/NoSuchCode3/qr', '/NoSuchCode3/qr?format=png']) {
        const response = await follow(url);
        assert.equal(response.statusCode, 404);
        assert.equal(response.headers.location, undefined);
        assert.ok(!String(response.headers['content-type']).startsWith('image/'));
      }
    });

    test('maxVisits holds exactly under 40 concurrent requests', async () => {
      const { code } = await createLink({ url: 'https://example.com/limited', maxVisits: 10 });
      const responses = await Promise.all(Array.from({ length: 40 }, () => follow(`/${code}`)));
      const statuses = responses.map((response) => response.statusCode);
      assert.equal(statuses.filter((status) => status === 302).length, 10, `statuses: ${statuses.join(',')}`);
      assert.equal(statuses.filter((status) => status === 410).length, 30, `statuses: ${statuses.join(',')}`);
      for (const response of responses.filter((r) => r.statusCode === 302)) {
        assert.equal(response.headers.location, 'https://example.com/limited');
      }
      for (const response of responses.filter((r) => r.statusCode === 410)) assertHtml(response, 410);

      assert.equal((await clicksFor(code)).n, 10);
      const link = await app.request({ url: `/api/v1/links/${code}` });
      assert.equal(link.json<LinkJson>().visits, 10);
      // Still gone afterwards.
      assertHtml(await follow(`/${code}`), 410);
    });

    test('every GET and HEAD redirect becomes a click with referrer, user agent and client IP', async () => {
      const { code } = await createLink({ url: 'https://example.com/counted' });
      const headers = {
        referer: 'https://news.example.net/article?id=7',
        'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) ShuntTest/1.0',
        // Not trusted (no TRUSTED_PROXIES): must not replace the peer address.
        'x-forwarded-for': '203.0.113.9',
      };
      const served = await Promise.all([
        follow(`/${code}`, 'GET', headers),
        follow(`/${code}?a=1`, 'GET', headers),
        follow(`/${code}`, 'GET', headers),
        follow(`/${code}`, 'HEAD', headers),
        follow(`/${code}`, 'HEAD', headers),
      ]);
      assert.deepEqual(served.map((response) => response.statusCode), [302, 302, 302, 302, 302]);
      // Neither a preview nor a 404 is a click.
      await follow(`/${code}+`);
      await follow(`/${code}x-unknown`);

      assert.deepEqual(await clicksFor(code), { n: 5, heads: 2 });
      const rows = await app.runtime.db.query<{ method: string; referrer: string | null; user_agent: string | null; ip: string | null }>(
        'select method, referrer, user_agent, host(ip) as ip from click_events where code=$1',
        [code],
      );
      assert.equal(rows.rows.length, 5);
      for (const row of rows.rows) {
        assert.equal(row.referrer, headers.referer);
        assert.equal(row.user_agent, headers['user-agent']);
        assert.equal(row.ip, '127.0.0.1');
      }
    });

    test('a click without referrer and with an empty user agent is stored with nulls', async () => {
      const { code } = await createLink({ url: 'https://example.com/bare' });
      assert.equal((await follow(`/${code}`, 'GET', { 'user-agent': '' })).statusCode, 302);
      assert.deepEqual(await clicksFor(code), { n: 1, heads: 0 });
      const rows = await app.runtime.db.query<{ referrer: string | null; user_agent: string | null }>(
        'select referrer, user_agent from click_events where code=$1',
        [code],
      );
      assert.deepEqual(rows.rows.map((row) => ({ ...row })), [{ referrer: null, user_agent: null }]);
    });
  });
}

for (const backend of BACKENDS) {
  describe(`redirects with CLICKS_ENABLED=false (${backend})`, await backendTestOptions(backend), () => {
    let app: TestApp;
    before(async () => {
      app = await startTestApp(backend, { env: { CLICKS_ENABLED: 'false' } });
    });
    after(() => app.close());

    test('redirect as usual and record nothing', async () => {
      const created = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/untracked' } });
      const { code } = created.json<{ code: string }>();
      for (let i = 0; i < 3; i += 1) assert.equal((await app.request({ url: `/${code}`, key: null })).statusCode, 302);
      await app.runtime.deps.clicks.flush();
      const stored = await app.runtime.db.query('SELECT 1 FROM click_events WHERE code = $1', [code]);
      assert.equal(stored.rowCount, 0);
    });
  });
}

for (const backend of BACKENDS) {
  describe(`the in-process click queue (${backend})`, await backendTestOptions(backend), () => {
    let app: TestApp;
    before(async () => {
      app = await startTestApp(backend, { env: { CLICK_FLUSH_INTERVAL_MS: '1000' } });
    });
    after(() => app.close());

    test('stores clicks on its timer, with nobody calling flush', async () => {
      const created = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/timer' } });
      const { code } = created.json<{ code: string }>();
      for (let i = 0; i < 4; i += 1) assert.equal((await app.request({ url: `/${code}`, key: null })).statusCode, 302);
      const deadline = Date.now() + 5000;
      let stored = 0;
      while (stored < 4 && Date.now() < deadline) {
        await sleep(100);
        stored = (await app.runtime.db.query<{ n: number }>('SELECT count(*)::int AS n FROM click_events WHERE code = $1', [code])).rows[0]?.n ?? 0;
      }
      assert.equal(stored, 4);
    });
  });
}
