/**
 * API rate limits, driven through inject(), on PGlite and on PostgreSQL: RateLimit-*
 * headers on every API answer (errors included), 429 with Retry-After past the limit,
 * independent per-key buckets, and per-IP buckets for requests without a valid key.
 *
 * Limits are small (5 per key, 3 per IP per minute) and every test uses its own keys and
 * client addresses, so tests do not share a bucket.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import type { LinkJson } from '../../src/http/schemas.js';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';
import { expectProblem } from '../helpers/problems.js';
import { freshWindow } from '../helpers/rate-limit-window.js';

const KEY_LIMIT = 5;
const IP_LIMIT = 3;
const LINKS = '/api/v1/links';
/** Each test's requests fit in this; it starts with at least this much left in its window. */
const SEQUENCE_MS = 3000;

function integerHeader(response: LightMyRequestResponse, name: string): number {
  const raw = response.headers[name.toLowerCase()];
  assert.equal(typeof raw, 'string', `${name} missing on ${response.statusCode} ${response.body.slice(0, 200)}`);
  assert.match(raw as string, /^\d+$/, `${name} is not an integer: ${String(raw)}`);
  return Number(raw);
}

/** Checks the three RateLimit-* headers and returns them. */
function rateLimitHeaders(response: LightMyRequestResponse, limit: number): { remaining: number; reset: number } {
  assert.equal(integerHeader(response, 'RateLimit-Limit'), limit, `RateLimit-Limit on ${response.statusCode}`);
  const remaining = integerHeader(response, 'RateLimit-Remaining');
  const reset = integerHeader(response, 'RateLimit-Reset');
  assert.ok(remaining >= 0 && remaining <= limit, `RateLimit-Remaining ${remaining}`);
  assert.ok(reset >= 1 && reset <= 60, `RateLimit-Reset ${reset}`);
  return { remaining, reset };
}

function expectRateLimited(response: LightMyRequestResponse, limit: number): void {
  expectProblem(response, 429, 'rate_limited');
  const { remaining, reset } = rateLimitHeaders(response, limit);
  assert.equal(remaining, 0);
  const retryAfter = integerHeader(response, 'Retry-After');
  assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
  assert.ok(Math.abs(retryAfter - reset) <= 1, `Retry-After ${retryAfter} vs RateLimit-Reset ${reset}`);
}

for (const backend of BACKENDS) {
  describe(`rate limits (${backend})`, await backendTestOptions(backend), () => {
    let app: TestApp;
    let ipCounter = 0;
    /** A client address no other test uses (TEST-NET-2). */
    const newIp = (): string => `198.51.100.${(ipCounter += 1)}`;

    before(async () => {
      app = await startTestApp(backend, {
        env: { RATE_LIMIT_KEY_PER_MINUTE: String(KEY_LIMIT), RATE_LIMIT_IP_PER_MINUTE: String(IP_LIMIT) },
      });
    });
    after(() => app.close());

    /** A fresh key made directly, so that making it costs no request of any bucket. */
    async function newKey(role: 'admin' | 'member' = 'member'): Promise<string> {
      return (await app.runtime.deps.keys.create(`rate ${role}`, role)).secret;
    }

    function send(options: {
      ip: string;
      method?: 'GET' | 'POST' | 'PATCH' | 'DELETE';
      url: string;
      key?: string | null;
      authorization?: string;
      body?: unknown;
      payload?: string;
      headers?: Record<string, string>;
    }): Promise<LightMyRequestResponse> {
      const headers: Record<string, string> = { ...options.headers };
      if (options.authorization !== undefined) headers.authorization = options.authorization;
      else if (options.key !== undefined && options.key !== null) headers.authorization = `Bearer ${options.key}`;
      let payload: string | undefined = options.payload;
      if (options.body !== undefined) {
        payload = JSON.stringify(options.body);
        headers['content-type'] ??= 'application/json';
      }
      return app.runtime.built.app.inject({
        method: options.method ?? 'GET',
        url: options.url,
        remoteAddress: options.ip,
        headers,
        ...(payload === undefined ? {} : { payload }),
      });
    }

    test('per key: headers on every answer, Remaining counts down, then 429 with Retry-After', async () => {
      await freshWindow(SEQUENCE_MS);
      const key = await newKey();
      const ip = newIp();
      const alias = `rl-${backend}-first`;
      const answers = [
        await send({ ip, key, url: LINKS }),
        await send({ ip, key, url: `${LINKS}/does-not-exist` }),
        await send({ ip, key, method: 'POST', url: LINKS, payload: '{"url":', headers: { 'content-type': 'application/json' } }),
        await send({ ip, key, method: 'POST', url: LINKS, body: { title: 'no url' } }),
        await send({ ip, key, method: 'POST', url: LINKS, body: { url: 'https://example.com/rl', alias } }),
      ];
      assert.deepEqual(answers.map((answer) => answer.statusCode), [200, 404, 400, 422, 201]);
      expectProblem(answers[1] as LightMyRequestResponse, 404, 'link_not_found');
      expectProblem(answers[3] as LightMyRequestResponse, 422, 'validation_failed');

      let previousReset = 60;
      answers.forEach((answer, index) => {
        const { remaining, reset } = rateLimitHeaders(answer, KEY_LIMIT);
        assert.equal(remaining, KEY_LIMIT - 1 - index, `RateLimit-Remaining of request ${index + 1}`);
        assert.ok(reset <= previousReset, 'RateLimit-Reset does not go up within a window');
        previousReset = reset;
      });

      const limited = await send({ ip, key, url: LINKS });
      expectRateLimited(limited, KEY_LIMIT);
      // Still limited, and a limited create does nothing.
      const alsoLimited = await send({ ip, key, method: 'POST', url: LINKS, body: { url: 'https://example.com/rl-2', alias: `${alias}-2` } });
      expectRateLimited(alsoLimited, KEY_LIMIT);
      assert.equal(await app.runtime.deps.links.resolve(`${alias}-2`), null);
      assert.notEqual(await app.runtime.deps.links.resolve(alias), null);
    });

    test('per key: conditional and content-type answers carry the headers too (304, 412, 415)', async () => {
      await freshWindow(SEQUENCE_MS);
      const key = await newKey();
      const ip = newIp();
      const created = await send({ ip, key, method: 'POST', url: LINKS, body: { url: 'https://example.com/rl-etag' } });
      assert.equal(created.statusCode, 201, created.body);
      const { code } = created.json<LinkJson>();
      const etag = String(created.headers.etag);

      const notModified = await send({ ip, key, url: `${LINKS}/${code}`, headers: { 'if-none-match': etag } });
      assert.equal(notModified.statusCode, 304);
      const precondition = await send({ ip, key, method: 'PATCH', url: `${LINKS}/${code}`, body: { title: 'x' }, headers: { 'if-match': '"0-0"' } });
      expectProblem(precondition, 412, 'precondition_failed');
      const mediaType = await send({ ip, key, method: 'POST', url: LINKS, payload: '<url/>', headers: { 'content-type': 'application/xml' } });
      expectProblem(mediaType, 415, 'unsupported_media_type');
      const forbidden = await send({ ip, key, url: '/api/v1/keys' });
      expectProblem(forbidden, 403, 'forbidden');

      [created, notModified, precondition, mediaType, forbidden].forEach((answer, index) => {
        assert.equal(rateLimitHeaders(answer, KEY_LIMIT).remaining, KEY_LIMIT - 1 - index, `request ${index + 1} (${answer.statusCode})`);
      });
      expectRateLimited(await send({ ip, key, url: `${LINKS}/${code}` }), KEY_LIMIT);
    });

    test('an unknown /api/v1 route is an API answer too: headers, and counted', async () => {
      await freshWindow(SEQUENCE_MS);
      const key = await newKey();
      const keyed = await send({ ip: newIp(), key, url: '/api/v1/no-such-endpoint' });
      expectProblem(keyed, 404, 'not_found');
      assert.equal(rateLimitHeaders(keyed, KEY_LIMIT).remaining, KEY_LIMIT - 1);

      // Without a key, probing for endpoints is limited per address like any other API request.
      const ip = newIp();
      for (let i = 0; i < IP_LIMIT; i += 1) {
        const probe = await send({ ip, url: `/api/v1/probe-${i}` });
        expectProblem(probe, 404, 'not_found');
        assert.equal(rateLimitHeaders(probe, IP_LIMIT).remaining, IP_LIMIT - 1 - i);
      }
      expectRateLimited(await send({ ip, url: '/api/v1/probe-last' }), IP_LIMIT);
    });

    test('per-key limits are independent of each other and of the client IP', async () => {
      await freshWindow(SEQUENCE_MS);
      const ip = newIp();
      const spent = await newKey();
      const fresh = await newKey();
      const admin = await newKey('admin');
      for (let i = 0; i < KEY_LIMIT; i += 1) assert.equal((await send({ ip, key: spent, url: LINKS })).statusCode, 200);
      expectRateLimited(await send({ ip, key: spent, url: LINKS }), KEY_LIMIT);

      const other = await send({ ip, key: fresh, url: LINKS });
      assert.equal(other.statusCode, 200, other.body);
      assert.equal(rateLimitHeaders(other, KEY_LIMIT).remaining, KEY_LIMIT - 1);
      const adminAnswer = await send({ ip, key: admin, url: '/api/v1/keys' });
      assert.equal(adminAnswer.statusCode, 200, adminAnswer.body);
      assert.equal(rateLimitHeaders(adminAnswer, KEY_LIMIT).remaining, KEY_LIMIT - 1);

      // The keyed requests were not charged to the address: its own bucket is untouched.
      const anonymous = await send({ ip, url: LINKS });
      expectProblem(anonymous, 401, 'unauthorized');
      assert.equal(rateLimitHeaders(anonymous, IP_LIMIT).remaining, IP_LIMIT - 1);

      // The spent key stays limited whatever address it comes from.
      expectRateLimited(await send({ ip: newIp(), key: spent, url: LINKS }), KEY_LIMIT);
    });

    test('without a key: limited per client IP, independently for each address', async () => {
      await freshWindow(SEQUENCE_MS);
      const ip = newIp();
      const answers: LightMyRequestResponse[] = [];
      for (let i = 0; i < IP_LIMIT; i += 1) answers.push(await send({ ip, url: LINKS }));
      answers.forEach((answer, index) => {
        expectProblem(answer, 401, 'unauthorized');
        assert.match(String(answer.headers['www-authenticate']), /^Bearer\b/);
        assert.equal(rateLimitHeaders(answer, IP_LIMIT).remaining, IP_LIMIT - 1 - index);
      });
      // Past the limit: 429, not 401; the public document is limited the same way.
      expectRateLimited(await send({ ip, url: LINKS }), IP_LIMIT);
      expectRateLimited(await send({ ip, url: '/api/v1/openapi.json' }), IP_LIMIT);

      // Another address has its own budget.
      const elsewhere = newIp();
      const document = await send({ ip: elsewhere, url: '/api/v1/openapi.json' });
      assert.equal(document.statusCode, 200);
      assert.equal(rateLimitHeaders(document, IP_LIMIT).remaining, IP_LIMIT - 1);
      const anonymous = await send({ ip: elsewhere, url: LINKS });
      expectProblem(anonymous, 401, 'unauthorized');
      assert.equal(rateLimitHeaders(anonymous, IP_LIMIT).remaining, IP_LIMIT - 2);

      // The address's limit applies before any key is looked up: a key from it waits too.
      expectRateLimited(await send({ ip, key: await newKey(), url: LINKS }), IP_LIMIT);
      // From an address within its budget, a key is counted on the key, not the address.
      const keyed = await send({ ip: newIp(), key: await newKey(), url: LINKS });
      assert.equal(keyed.statusCode, 200, keyed.body);
      assert.equal(rateLimitHeaders(keyed, KEY_LIMIT).remaining, KEY_LIMIT - 1);
    });

    test('once its address got 429, a request with a bogus key costs no key lookup', async () => {
      await freshWindow(SEQUENCE_MS);
      const ip = newIp();
      const keys = app.runtime.deps.keys;
      const authenticate = keys.authenticate.bind(keys);
      let lookups = 0;
      keys.authenticate = (secret) => {
        lookups += 1;
        return authenticate(secret);
      };
      try {
        for (let i = 0; i < IP_LIMIT; i += 1) await send({ ip, url: LINKS, authorization: `Bearer shunt_BogusKeyBogusKeyBogusKey${i}0000` });
        expectRateLimited(await send({ ip, url: LINKS, authorization: 'Bearer shunt_BogusKeyBogusKeyBogusKeyX0000' }), IP_LIMIT);
        const before = lookups;
        for (let i = 0; i < 5; i += 1) {
          expectRateLimited(await send({ ip, url: LINKS, authorization: `Bearer shunt_MoreGuessesMoreGuesses${i}00000` }), IP_LIMIT);
        }
        assert.equal(lookups, before, 'no key was looked up after the 429');
        // The rest of the /64 of an IPv6 client is refused as well.
        const v6 = '2001:db8:77:1::1';
        for (let i = 0; i <= IP_LIMIT; i += 1) await send({ ip: v6, url: LINKS });
        expectRateLimited(await send({ ip: '2001:db8:77:1:ffff::2', url: LINKS }), IP_LIMIT);
      } finally {
        keys.authenticate = authenticate;
      }
    });

    test('a bad key is counted on the client IP: 401 until the limit, then 429', async () => {
      await freshWindow(SEQUENCE_MS);
      const ip = newIp();
      const fake = 'Bearer shunt_NotARealKeyNotARealKeyNotARealKey00';
      const authorizations = [fake, 'Basic dXNlcjpwYXNz', 'Bearer shunt_AnotherFakeKeyAnotherFakeKey000000'];
      for (const [index, authorization] of authorizations.entries()) {
        const answer = await send({ ip, url: LINKS, authorization });
        expectProblem(answer, 401, 'unauthorized');
        assert.equal(rateLimitHeaders(answer, IP_LIMIT).remaining, IP_LIMIT - 1 - index);
      }
      expectRateLimited(await send({ ip, url: LINKS, authorization: fake }), IP_LIMIT);
      // Guessing more keys from that address gets nowhere, even with a different key each time.
      expectRateLimited(await send({ ip, url: LINKS, authorization: 'Bearer shunt_YetAnotherGuessYetAnotherGuess00000' }), IP_LIMIT);
    });

    test('the redirect path is not counted against API limits', async () => {
      await freshWindow(SEQUENCE_MS);
      const key = await newKey();
      const ip = newIp();
      const created = await send({ ip, key, method: 'POST', url: LINKS, body: { url: 'https://example.com/rl-follow' } });
      assert.equal(created.statusCode, 201, created.body);
      const { code } = created.json<LinkJson>();
      for (let i = 0; i < IP_LIMIT + 2; i += 1) {
        const followed = await send({ ip, url: `/${code}` });
        assert.equal(followed.statusCode, 302);
        assert.equal(followed.headers.location, 'https://example.com/rl-follow');
      }
      // The address still has its whole API budget.
      const anonymous = await send({ ip, url: LINKS });
      assert.equal(rateLimitHeaders(anonymous, IP_LIMIT).remaining, IP_LIMIT - 1);
    });
  });
}
