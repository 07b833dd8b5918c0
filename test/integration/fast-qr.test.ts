/**
 * A cached QR code is answered ahead of Fastify, and must be answered exactly like the
 * `/:code/qr` route. For each case, the answers compared are: the first request over a real
 * socket (nothing cached: the route answers), the next over a real socket (answered by the
 * fast path where the case allows it), and inject() (which never reaches the fast path).
 * (Where an earlier request already cached the link, the first may be the fast path's too.)
 * Status, Content-Type, Content-Length, ETag, Cache-Control, Location and body must agree;
 * the request id is echoed; each answer leaves exactly one log line. Which path answered is
 * told by the route's lookup (`links.resolve`), which the fast path never calls. Queries the
 * fast path does not read itself (a bad size or format, encodings) always reach the route,
 * so the 422 problems come from its validation alone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { send, type SendOptions } from '../helpers/instance-pair.js';
import { requestLines } from '../helpers/request-lines.js';
import { freshWindow } from '../helpers/rate-limit-window.js';
import { pickHeaders, type SeenAnswer } from '../helpers/seen-answer.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';

const COMPARED_HEADERS = ['content-type', 'content-length', 'etag', 'cache-control', 'location'] as const;
const NOT_FOUND_BUDGET = 3;
const EXPIRED = "UPDATE links SET expires_at = now() - interval '1 minute' WHERE code = $1";

type Seen = SeenAnswer<(typeof COMPARED_HEADERS)[number]>;

interface Case {
  name: string;
  method?: 'GET' | 'HEAD';
  /** The link to create; null for an unknown code. */
  link: Record<string, unknown> | null;
  alter?: string;
  /** Its one visit made before the QR code is asked for. */
  visitFirst?: boolean;
  query: string;
  /** If-None-Match, given the image's ETag. */
  ifNoneMatch?: (etag: string) => string;
  status: number;
  contentType?: RegExp;
  /** The fast path answers the second request; false: the route answers every one. */
  fast: boolean;
}

const CASES: Case[] = [
  { name: 'SVG by default', link: {}, query: '', status: 200, contentType: /^image\/svg\+xml$/, fast: true },
  { name: 'SVG sized', link: {}, query: 'format=svg&size=64', status: 200, contentType: /^image\/svg\+xml$/, fast: true },
  { name: 'PNG', link: {}, query: 'size=128&format=png', status: 200, contentType: /^image\/png$/, fast: true },
  { name: 'HEAD of a PNG', method: 'HEAD', link: {}, query: 'format=png&size=96', status: 200, contentType: /^image\/png$/, fast: true },
  { name: 'If-None-Match of the current tag', link: {}, query: 'format=png&size=100', ifNoneMatch: (etag) => `"other", W/${etag}`, status: 304, fast: true },
  { name: 'If-None-Match of another tag', link: {}, query: 'format=svg&size=100', ifNoneMatch: () => '"qr-other"', status: 200, contentType: /^image\/svg\+xml$/, fast: true },
  { name: 'password-protected: the QR code all the same', link: { password: 'open sesame' }, query: 'format=svg', status: 200, contentType: /^image\/svg\+xml$/, fast: true },
  { name: 'disabled, with a fallback it does not reveal', link: { disabled: true, fallbackUrl: 'https://example.org/fb' }, query: 'format=png', status: 410, contentType: /^text\/html/, fast: true },
  { name: 'expired', link: {}, alter: EXPIRED, query: '', status: 410, contentType: /^text\/html/, fast: true },
  { name: 'used up', link: { maxVisits: 1 }, visitFirst: true, query: 'format=png&size=64', status: 410, contentType: /^text\/html/, fast: true },
  { name: 'unknown code', link: null, query: 'format=png', status: 404, contentType: /^text\/html/, fast: true },
  { name: 'size too large', link: {}, query: 'format=png&size=5000', status: 422, contentType: /^application\/problem\+json/, fast: false },
  { name: 'unknown format', link: {}, query: 'format=gif', status: 422, contentType: /^application\/problem\+json/, fast: false },
  { name: 'fractional size', link: {}, query: 'size=64.5', status: 422, contentType: /^application\/problem\+json/, fast: false },
  { name: 'unknown field', link: {}, query: 'format=png&colour=red', status: 422, contentType: /^application\/problem\+json/, fast: false },
  { name: 'a field twice', link: {}, query: 'size=64&size=128', status: 422, contentType: /^application\/problem\+json/, fast: false },
  { name: 'percent-encoded', link: {}, query: 'format=%70ng', status: 200, contentType: /^image\/png$/, fast: false },
];

describe('the fast QR path answers like the /:code/qr route', () => {
  let app: TestApp;
  let url: string;
  let routed = 0;
  before(async () => {
    app = await startTestApp('embedded', { env: { RATE_LIMIT_404_PER_MINUTE: String(NOT_FOUND_BUDGET) } });
    const links = app.runtime.deps.links;
    const resolve = links.resolve.bind(links);
    links.resolve = (code) => {
      routed += 1;
      return resolve(code);
    };
    url = await app.runtime.built.app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(() => (app === undefined ? undefined : app.close()));

  async function createLink(body: Record<string, unknown>): Promise<string> {
    const created = await app.request({ method: 'POST', url: '/api/v1/links', body });
    assert.equal(created.statusCode, 201, created.body);
    return created.json<{ code: string }>().code;
  }

  function pick(headers: IncomingHttpHeaders | OutgoingHttpHeaders): Seen['headers'] {
    return pickHeaders(headers, COMPARED_HEADERS);
  }

  for (const [index, spec] of CASES.entries()) {
    test(spec.name, async () => {
      const method = spec.method ?? 'GET';
      const code = spec.link === null ? `NoSuchQr${index}` : await createLink({ url: `https://example.com/qr-fast/${index}`, ...spec.link });
      if (spec.alter !== undefined) await app.runtime.db.query(spec.alter, [code]);
      if (spec.visitFirst === true) assert.equal((await send(`${url}/${code}`)).status, 302);
      const path = `/${code}/qr${spec.query === '' ? '' : `?${spec.query}`}`;
      // The tag a client holds: the image's, fetched the way a browser first would.
      let ifNoneMatch: string | undefined;
      if (spec.ifNoneMatch !== undefined) ifNoneMatch = spec.ifNoneMatch(String((await app.request({ url: path, key: null })).headers.etag));

      const sent: string[] = [];
      const nextId = (): string => {
        sent.push(`qr-${index}-${sent.length}`);
        return sent[sent.length - 1] as string;
      };
      const headers = (): Record<string, string> => ({ 'x-request-id': nextId(), ...(ifNoneMatch === undefined ? {} : { 'if-none-match': ifNoneMatch }) });
      const overSocket = async (how: string): Promise<{ seen: Seen; routed: boolean }> => {
        const before = routed;
        const options: SendOptions = { method, headers: headers() };
        const answer = await send(`${url}${path}`, options);
        const requestId = answer.headers['x-request-id'] as string | undefined;
        return { seen: { how, status: answer.status, headers: pick(answer.headers), body: answer.body, requestId }, routed: routed > before };
      };

      const cachedBefore = app.runtime.deps.links.peek(code) !== undefined;
      const first = await overSocket('first, over a socket');
      // A refused query never reaches the route's handler: the answers' equality tells it apart.
      const reachesHandler = spec.status !== 422;
      if (!cachedBefore && reachesHandler) assert.ok(first.routed, 'the link not cached yet: the route answers');
      const second = await overSocket('second, over a socket');
      if (reachesHandler) assert.equal(!second.routed, spec.fast, spec.fast ? 'the fast path answers once all is cached' : 'the route answers');
      const injected = await app.request({ method, url: path, key: null, headers: headers() });
      const viaInject: Seen = {
        how: 'inject()',
        status: injected.statusCode,
        headers: pick(injected.headers),
        body: injected.body,
        requestId: injected.headers['x-request-id'] as string | undefined,
      };

      const reference = second.seen;
      assert.equal(reference.status, spec.status, reference.body.slice(0, 200));
      if (spec.contentType !== undefined) assert.match(String(reference.headers['content-type']), spec.contentType);
      assert.equal(reference.headers.location, undefined, 'a QR answer never redirects');
      if (method === 'HEAD' || spec.status === 304) assert.equal(reference.body, '');
      if (spec.status >= 400) assert.ok(!reference.body.includes('example.'), 'reveals nothing of the link');
      for (const other of [first.seen, viaInject]) {
        const label = `${other.how} vs ${reference.how}`;
        assert.equal(other.status, reference.status, label);
        assert.deepEqual({ ...other.headers }, { ...reference.headers }, label);
        // A problem names the request it answers: compare the rest.
        const withoutId = (body: string): string => body.replace(/"requestId":"[^"]*"/, '');
        assert.equal(withoutId(other.body), withoutId(reference.body), label);
      }
      assert.deepEqual([first.seen.requestId, second.seen.requestId, viaInject.requestId], sent, 'X-Request-Id echoed');

      const lines = await Promise.all(sent.map((id) => requestLines(app, id)));
      for (const [i, found] of lines.entries()) {
        assert.equal(found.length, 1, `log lines for request ${i + 1}: ${JSON.stringify(found)}`);
        assert.deepEqual([found[0]?.method, found[0]?.url, found[0]?.route, found[0]?.status, found[0]?.ip], [method, path, '/:code/qr', spec.status, '127.0.0.1']);
      }
    });
  }

  test('unknown codes answered on the fast path count toward the throttle, which then refuses every path', async () => {
    const real = await createLink({ url: 'https://example.com/qr-fast-throttle' });
    await freshWindow(5000);
    const client: SendOptions = { localAddress: '127.0.0.7' };
    // Cached as unknown, without spending this client's budget.
    assert.equal((await send(`${url}/NoSuchQrThrottle/qr`, { localAddress: '127.0.0.8' })).status, 404);
    assert.equal((await send(`${url}/${real}/qr`, { localAddress: '127.0.0.8' })).status, 200);
    const before = routed;
    for (let i = 0; i <= NOT_FOUND_BUDGET; i += 1) assert.equal((await send(`${url}/NoSuchQrThrottle/qr`, client)).status, 404);
    assert.equal(routed, before, 'every 404 came from the fast path');
    for (const path of [`/${real}/qr`, `/${real}`, `/NoSuchQrThrottle/qr`]) {
      const refused = await send(`${url}${path}`, client);
      assert.equal(refused.status, 429, path);
      assert.ok(Number(refused.headers['retry-after']) >= 1, path);
    }
    assert.equal((await send(`${url}/${real}/qr`, { localAddress: '127.0.0.9' })).status, 200, 'another client is not affected');
  });
});
