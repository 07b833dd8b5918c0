/**
 * QR codes and previews under abuse: a QR code is rendered once per link version, format
 * and size, then served from cache (ETag, 304); rendering never stalls the event loop;
 * the size is bounded; links that no longer redirect (disabled, expired, used up) answer
 * 410 on both paths and reveal nothing; unknown codes on both paths count toward the
 * unknown-code throttle, which both honour, and an IPv6 client counts by its /64.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { LightMyRequestResponse } from 'fastify';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { freshWindow } from '../helpers/rate-limit-window.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';

const NOT_FOUND_BUDGET = 6;

for (const backend of BACKENDS) {
  describe(`QR codes and previews (${backend})`, await backendTestOptions(backend), () => {
    let app: TestApp;
    before(async () => {
      app = await startTestApp(backend, { env: { RATE_LIMIT_404_PER_MINUTE: String(NOT_FOUND_BUDGET) } });
    });
    after(() => app.close());

    let nextIp = 1;
    const freshIp = (): string => `203.0.113.${nextIp++}`;

    function get(url: string, ip: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
      return app.runtime.built.app.inject({ method: 'GET', url, remoteAddress: ip, headers });
    }

    async function createLink(body: Record<string, unknown>): Promise<string> {
      const created = await app.request({ method: 'POST', url: '/api/v1/links', body });
      assert.equal(created.statusCode, 201, created.body);
      return created.json<{ code: string }>().code;
    }

    test('rendered once per version, format and size; ETag and 304; a change gives a new tag', async () => {
      const code = await createLink({ url: 'https://example.com/qr-cache' });
      const ip = freshIp();
      const stats = app.runtime.deps.qrCodes.stats;
      const rendersBefore = stats.renders;
      const first = await get(`/${code}/qr?format=png&size=300`, ip);
      assert.equal(first.statusCode, 200);
      const etag = String(first.headers.etag);
      assert.match(etag, /^"[^"]+"$/);
      const second = await get(`/${code}/qr?format=png&size=300`, ip);
      assert.deepEqual(second.rawPayload, first.rawPayload);
      assert.equal(second.headers.etag, etag);
      assert.equal(stats.renders, rendersBefore + 1, 'the second answer came from the cache');
      const notModified = await get(`/${code}/qr?format=png&size=300`, ip, { 'if-none-match': `W/${etag}, "other"` });
      assert.equal(notModified.statusCode, 304);
      assert.equal(notModified.body, '');
      assert.equal((await get(`/${code}/qr?format=svg&size=300`, ip)).statusCode, 200);
      assert.equal(stats.renders, rendersBefore + 2, 'another format is another entry');
      await app.request({ method: 'PATCH', url: `/api/v1/links/${code}`, body: { title: 'changed' } });
      const changed = await get(`/${code}/qr?format=png&size=300`, ip, { 'if-none-match': etag });
      assert.equal(changed.statusCode, 200, 'a new version no longer matches the old tag');
      assert.notEqual(changed.headers.etag, etag);
    });

    test('the size is bounded to 1024 (print); larger is refused before any rendering', async () => {
      const code = await createLink({ url: 'https://example.com/qr-size' });
      const ip = freshIp();
      const big = await get(`/${code}/qr?format=png&size=1024`, ip);
      assert.equal(big.statusCode, 200);
      assert.equal(big.rawPayload.readUInt32BE(16), 1024);
      const rendersBefore = app.runtime.deps.qrCodes.stats.renders;
      for (const size of [1025, 2048]) assert.equal((await get(`/${code}/qr?format=png&size=${size}`, ip)).statusCode, 422);
      assert.equal(app.runtime.deps.qrCodes.stats.renders, rendersBefore);
      const document = (await app.request({ url: '/api/v1/openapi.json', key: null })).json<{
        paths: Record<string, { get: { parameters: { name: string; schema: { maximum?: number } }[] } }>;
      }>();
      assert.equal(document.paths['/{code}/qr']?.get.parameters.find((parameter) => parameter.name === 'size')?.schema.maximum, 1024);
    });

    test('rendering large PNGs does not stall the event loop', async () => {
      const codes = await Promise.all(Array.from({ length: 6 }, (_, i) => createLink({ url: `https://example.com/qr-loop/${i}` })));
      const ip = freshIp();
      const delay = monitorEventLoopDelay({ resolution: 2 });
      delay.enable();
      const answers = await Promise.all(codes.map((code) => get(`/${code}/qr?format=png&size=1024`, ip)));
      delay.disable();
      for (const answer of answers) assert.equal(answer.statusCode, 200);
      // Each render costs ~100 ms of CPU; on the loop the worst stall would be that or more.
      const worstMs = delay.max / 1e6;
      assert.ok(worstMs < 60, `the event loop stalled for ${worstMs.toFixed(1)} ms`);
    });

    test('disabled, expired and used-up links: 410 on the QR code and the preview, revealing nothing', async () => {
      const ip = freshIp();
      const disabled = await createLink({ url: 'https://example.com/gone-disabled', disabled: true, fallbackUrl: 'https://example.org/fb' });
      const expired = await createLink({ url: 'https://example.com/gone-expired' });
      await app.runtime.db.query("update links set expires_at = now() - interval '1 minute' where code = $1", [expired]);
      app.runtime.deps.links.peek(expired);
      const usedUp = await createLink({ url: 'https://example.com/gone-used', maxVisits: 1 });
      assert.equal((await get(`/${usedUp}`, ip)).statusCode, 302);
      // Previewed and QR'd once while it still redirected... then used up by the visit above.
      assert.equal((await get(`/${usedUp}`, ip)).statusCode, 410);
      for (const code of [disabled, expired, usedUp]) {
        for (const path of [`/${code}+`, `/${code}/qr`, `/${code}/qr?format=png`]) {
          const response = await get(path, ip);
          assert.equal(response.statusCode, 410, `${path}: ${response.body.slice(0, 80)}`);
          assert.equal(response.headers.location, undefined, `${path}: no fallback either`);
          assert.ok(!response.body.includes('example.'), `${path} reveals a URL`);
        }
      }
    });

    test('a used-up link stops showing its destination in a preview that was cached while it redirected', async () => {
      const ip = freshIp();
      const code = await createLink({ url: 'https://example.com/used-preview', maxVisits: 1 });
      assert.equal((await get(`/${code}+`, ip)).statusCode, 200);
      assert.equal((await get(`/${code}`, ip)).statusCode, 302);
      const preview = await get(`/${code}+`, ip);
      assert.equal(preview.statusCode, 410);
      assert.ok(!preview.body.includes('used-preview'));
    });

    for (const [name, path] of [['preview', (code: string) => `/${code}+`], ['QR code', (code: string) => `/${code}/qr`]] as const) {
      test(`unknown codes on the ${name} count toward the throttle, and the ${name} honours it`, async () => {
        const real = await createLink({ url: `https://example.com/throttle-${name.length}` });
        const ip = freshIp();
        await freshWindow(5000);
        // The miss that goes over the budget is still answered; it blocks what follows.
        for (let i = 0; i <= NOT_FOUND_BUDGET; i += 1) assert.equal((await get(path(`NoSuch${i}x`), ip)).statusCode, 404);
        const refused = await get(path(`NoSuchMore`), ip);
        assert.equal(refused.statusCode, 429);
        // Now even a real code tells the client nothing, on every path.
        for (const url of [path(real), `/${real}`, `/${real}+`, `/${real}/qr`]) {
          const response = await get(url, ip);
          assert.equal(response.statusCode, 429, url);
          assert.ok(Number(response.headers['retry-after']) >= 1);
        }
        assert.equal((await get(path(real), freshIp())).statusCode, 200, 'another client is not affected');
      });
    }

    test('an IPv6 client is throttled by its /64, not per address', async () => {
      const real = await createLink({ url: 'https://example.com/v6' });
      await freshWindow(5000);
      for (let i = 1; i <= NOT_FOUND_BUDGET + 1; i += 1) await get(`/NoSuchV6${i}`, `2001:db8:aa:bb::${i.toString(16)}`);
      assert.equal((await get(`/${real}/qr`, '2001:db8:aa:bb:1234:5678:9abc:def0')).statusCode, 429);
      assert.equal((await get(`/${real}/qr`, '2001:db8:aa:bc::1')).statusCode, 200, 'the next /64 is another client');
    });
  });
}
