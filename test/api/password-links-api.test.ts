/**
 * Password-protected links: stored as a slow hash and never returned; every path that
 * could reveal the destination (redirect GET and HEAD, preview, QR code, the API without
 * ownership, the caches) reveals nothing; the form's POST unlocks with 303 and one click;
 * wrong guesses are limited per link and per client.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { freshWindow } from '../helpers/rate-limit-window.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';

const PASSWORD = 'correct horse battery staple';
const FORM = 'application/x-www-form-urlencoded';

for (const backend of BACKENDS) {
  describe(`password-protected links (${backend})`, await backendTestOptions(backend), () => {
    let app: TestApp;
    before(async () => {
      app = await startTestApp(backend, {
        env: { RATE_LIMIT_PASSWORD_PER_LINK_PER_MINUTE: '5', RATE_LIMIT_PASSWORD_PER_IP_PER_MINUTE: '3' },
      });
    });
    after(() => app.close());

    let nextIp = 1;
    /** A client address of its own, so per-client limits of one test do not touch another. */
    const freshIp = (): string => `198.51.100.${nextIp++}`;

    function send(method: 'GET' | 'HEAD' | 'POST', url: string, ip: string, payload?: string, contentType = FORM): Promise<LightMyRequestResponse> {
      return app.runtime.built.app.inject({
        method, url, remoteAddress: ip,
        ...(payload === undefined ? {} : { payload, headers: { 'content-type': contentType } }),
      });
    }

    async function protectedLink(destination: string): Promise<{ code: string; body: string }> {
      const created = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: destination, password: PASSWORD, title: 'Secret' } });
      assert.equal(created.statusCode, 201, created.body);
      return { code: created.json<{ code: string }>().code, body: created.body };
    }

    async function clicksFor(code: string): Promise<number> {
      await app.runtime.deps.clicks.flush();
      const result = await app.runtime.db.query<{ n: number }>('select count(*)::int as n from click_events where code=$1', [code]);
      return result.rows[0]?.n ?? -1;
    }

    function assertReveals(response: LightMyRequestResponse, destination: string, what: string): void {
      assert.equal(response.headers.location, undefined, `${what}: no Location`);
      assert.ok(!response.body.includes(destination) && !response.body.includes('example.com'), `${what}: the body names the destination`);
    }

    test('the API says passwordProtected and never returns the password or its hash; the store keeps a scrypt hash', async () => {
      const destination = 'https://example.com/vault/1';
      const { code, body } = await protectedLink(destination);
      assert.equal((JSON.parse(body) as { passwordProtected: boolean }).passwordProtected, true);
      for (const text of [body, (await app.request({ url: `/api/v1/links/${code}` })).body, (await app.request({ url: '/api/v1/links' })).body]) {
        assert.ok(!text.includes(PASSWORD) && !text.includes('scrypt'), text);
      }
      const stored = await app.runtime.db.query<{ password_hash: string }>('select password_hash from links where code=$1', [code]);
      assert.match(stored.rows[0]?.password_hash ?? '', /^scrypt\$\d+\$\d+\$\d+\$[\w-]{22}\$[\w-]{43}$/);
      // Two links with one password get different hashes (a salt per link).
      const other = await protectedLink(destination);
      const hashes = await app.runtime.db.query<{ password_hash: string }>('select password_hash from links where code = any($1)', [[code, other.code]]);
      assert.notEqual(hashes.rows[0]?.password_hash, hashes.rows[1]?.password_hash);
      // The cache carries what the redirect needs, not the hash.
      await send('GET', `/${code}`, freshIp());
      const cached = app.runtime.deps.links.peek(code);
      assert.ok(cached !== undefined && cached !== null);
      assert.ok(!JSON.stringify(cached).includes('scrypt'));
    });

    test('redirect GET and HEAD, preview and QR reveal nothing and count no click', async () => {
      const destination = 'https://example.com/vault/2';
      const { code } = await protectedLink(destination);
      const ip = freshIp();
      for (const method of ['GET', 'HEAD'] as const) {
        // Twice: the second answer comes from the cache (the fast path's parity test covers sockets).
        for (let i = 0; i < 2; i += 1) {
          const form = await send(method, `/${code}?utm=x`, ip);
          assert.equal(form.statusCode, 200);
          assert.match(String(form.headers['content-type']), /^text\/html/);
          assert.equal(form.headers['cache-control'], 'private, no-store');
          assertReveals(form, destination, `${method} /${code}`);
          if (method === 'GET') {
            assert.match(form.body, /<form method="post">/);
            assert.ok(!/<script/i.test(form.body), 'no script on the form page');
          }
        }
      }
      const preview = await send('GET', `/${code}+`, ip);
      assert.equal(preview.statusCode, 200);
      assertReveals(preview, destination, 'preview');
      assert.match(preview.body, /protected by a password/);
      const qr = await send('GET', `/${code}/qr`, ip);
      assert.equal(qr.statusCode, 200);
      assertReveals(qr, destination, 'QR');
      assert.equal(await clicksFor(code), 0);
    });

    test('another member cannot see the link through the API', async () => {
      const { code } = await protectedLink('https://example.com/vault/3');
      const member = await app.createKey('member');
      const seen = await app.request({ url: `/api/v1/links/${code}`, key: member });
      assert.equal(seen.statusCode, 404);
      assert.ok(!seen.body.includes('example.com'));
    });

    test('a wrong password gets the form again (401); the right one 303 to the destination, one click', async () => {
      const destination = 'https://example.com/vault/4';
      const { code } = await protectedLink(destination);
      const ip = freshIp();
      const wrong = await send('POST', `/${code}`, ip, 'password=hunter2');
      assert.equal(wrong.statusCode, 401);
      assertReveals(wrong, destination, 'wrong password');
      assert.match(wrong.body, /not right/);
      assert.equal(await clicksFor(code), 0);
      const right = await send('POST', `/${code}?ref=mail`, ip, `password=${encodeURIComponent(PASSWORD)}`);
      assert.equal(right.statusCode, 303);
      assert.equal(right.headers.location, `${destination}?ref=mail`);
      assert.equal(right.headers['cache-control'], 'private, no-store');
      assert.equal(await clicksFor(code), 1);
      // JSON works too, for scripts.
      const json = await send('POST', `/${code}`, freshIp(), JSON.stringify({ password: PASSWORD }), 'application/json');
      assert.equal(json.statusCode, 303);
    });

    test('an open or unknown link refuses the POST like an unknown code', async () => {
      const open = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/open' } });
      const { code } = open.json<{ code: string }>();
      assert.equal((await send('POST', `/${code}`, freshIp(), 'password=x')).statusCode, 404);
      assert.equal((await send('POST', '/NoSuchLinkPw', freshIp(), 'password=x')).statusCode, 404);
    });

    test('guesses are limited per client (3/min) and per link (5/min), the right password included', async () => {
      const destination = 'https://example.com/vault/5';
      await freshWindow(10_000);
      const { code } = await protectedLink(destination);
      const other = await protectedLink(destination);
      const guesser = freshIp();
      for (let i = 0; i < 3; i += 1) assert.equal((await send('POST', `/${code}`, guesser, `password=guess${i}`)).statusCode, 401);
      // The client's budget is spent, on any link.
      const blocked = await send('POST', `/${other.code}`, guesser, `password=${encodeURIComponent(PASSWORD)}`);
      assert.equal(blocked.statusCode, 429);
      assert.ok(Number(blocked.headers['retry-after']) >= 1);
      assertReveals(blocked, destination, '429');
      // Two more guesses from elsewhere spend the link's budget: then nobody gets in this minute.
      for (let i = 0; i < 2; i += 1) assert.equal((await send('POST', `/${code}`, freshIp(), 'password=nope')).statusCode, 401);
      assert.equal((await send('POST', `/${code}`, freshIp(), `password=${encodeURIComponent(PASSWORD)}`)).statusCode, 429);
      assert.equal(await clicksFor(code), 0);
      // A whole IPv6 /64 is one client.
      const v6 = await protectedLink(destination);
      for (let i = 1; i <= 3; i += 1) assert.equal((await send('POST', `/${v6.code}`, `2001:db8:1:2::${i}`, 'password=no')).statusCode, 401);
      assert.equal((await send('POST', `/${v6.code}`, '2001:db8:1:2:ffff::9', 'password=no')).statusCode, 429);
    });

    test('removing the password opens the link; setting one protects an open link at once', async () => {
      const destination = 'https://example.com/vault/6';
      const { code } = await protectedLink(destination);
      const ip = freshIp();
      assert.equal((await send('GET', `/${code}`, ip)).statusCode, 200);
      const opened = await app.request({ method: 'PATCH', url: `/api/v1/links/${code}`, body: { password: null } });
      assert.equal(opened.json<{ passwordProtected: boolean }>().passwordProtected, false);
      assert.equal((await send('GET', `/${code}`, ip)).headers.location, destination);
      await app.request({ method: 'PATCH', url: `/api/v1/links/${code}`, body: { password: 'again' } });
      const form = await send('GET', `/${code}`, ip);
      assert.equal(form.statusCode, 200);
      assertReveals(form, destination, 'after setting a password');
    });

    test('a disabled protected link is 410 everywhere, form POST included', async () => {
      const destination = 'https://example.com/vault/7';
      const { code } = await protectedLink(destination);
      await app.request({ method: 'PATCH', url: `/api/v1/links/${code}`, body: { disabled: true } });
      const ip = freshIp();
      for (const [method, url] of [['GET', `/${code}`], ['GET', `/${code}+`], ['GET', `/${code}/qr`], ['POST', `/${code}`]] as const) {
        const response = await send(method, url, ip, method === 'POST' ? `password=${encodeURIComponent(PASSWORD)}` : undefined);
        assert.equal(response.statusCode, 410, `${method} ${url}`);
        assertReveals(response, destination, `${method} ${url}`);
      }
    });
  });
}
