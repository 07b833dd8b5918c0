/**
 * The cached-redirect path that runs ahead of Fastify must answer exactly like the `/:code`
 * route it shortcuts. For each kind of link, three answers are compared: the first request
 * over a real socket (a cache miss, so the route answers), the second over a real socket
 * (cached, so the fast path answers), and inject() (which never reaches the fast path).
 * Status, Location, Cache-Control, Content-Type, Content-Length and body must agree; the
 * request id is echoed; every answer leaves exactly one log line, and every redirect exactly
 * one click. Visit-limited links must keep going through the route, so their limit holds
 * exactly, across two instances.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createLink,
  send,
  sharedTierTestOptions,
  startInstancePair,
  type Instance,
  type InstancePair,
} from '../helpers/instance-pair.js';
import { requestLines } from '../helpers/request-lines.js';
import { pickHeaders, type SeenAnswer } from '../helpers/seen-answer.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const COMPARED_HEADERS = ['location', 'cache-control', 'content-type', 'content-length'] as const;
/** The same client for every request, so that the clicks they leave can be compared too. */
const CLIENT_HEADERS = { 'user-agent': 'shunt-fast-path-test/1.0', referer: 'https://referrer.example/page' };
const LOG_WAIT_MS = 5000;

type Seen = SeenAnswer<(typeof COMPARED_HEADERS)[number], 'route over a socket' | 'fast path' | 'inject()'>;

function pick(headers: IncomingHttpHeaders | OutgoingHttpHeaders): Seen['headers'] {
  return pickHeaders(headers, COMPARED_HEADERS);
}

interface Case {
  name: string;
  method: 'GET' | 'HEAD';
  /** The link to create; null for an unknown code. */
  link: Record<string, unknown> | null;
  /** Applied to the stored row before any request: states the API cannot create directly. */
  alter?: string;
  query?: string;
  /** What every answer must be. */
  status: number;
  location?: (destination: string) => string;
  clicks: boolean;
}

const destination = (): string => `https://example.com/d/${randomBytes(4).toString('hex')}?from=shunt#top`;
const EXPIRED = "UPDATE links SET expires_at = now() - interval '1 minute' WHERE code = $1";

const CASES: Case[] = [
  { name: '302 (default)', method: 'GET', link: {}, status: 302, location: (d) => d, clicks: true },
  { name: '301', method: 'GET', link: { redirectType: 301 }, status: 301, location: (d) => d, clicks: true },
  { name: '307', method: 'GET', link: { redirectType: 307 }, status: 307, location: (d) => d, clicks: true },
  { name: '308', method: 'GET', link: { redirectType: 308 }, status: 308, location: (d) => d, clicks: true },
  {
    name: 'forwardQuery with a query',
    method: 'GET',
    link: { forwardQuery: true },
    query: 'utm_source=mail&q=a%20b',
    status: 302,
    location: (d) => d.replace('#top', '&utm_source=mail&q=a%20b#top'),
    clicks: true,
  },
  { name: 'query not forwarded', method: 'GET', link: { forwardQuery: false }, query: 'utm_source=mail', status: 302, location: (d) => d, clicks: true },
  { name: 'expired', method: 'GET', link: {}, alter: EXPIRED, status: 410, clicks: false },
  {
    name: 'expired with a fallback URL',
    method: 'GET',
    link: { fallbackUrl: 'https://example.org/fallback' },
    alter: EXPIRED,
    status: 302,
    location: () => 'https://example.org/fallback',
    clicks: false,
  },
  { name: 'disabled', method: 'GET', link: { disabled: true }, status: 410, clicks: false },
  { name: 'unknown code', method: 'GET', link: null, status: 404, clicks: false },
  { name: 'HEAD of a 301', method: 'HEAD', link: { redirectType: 301 }, status: 301, location: (d) => d, clicks: true },
  { name: 'HEAD of a 302 with a query', method: 'HEAD', link: {}, query: 'x=1', status: 302, location: (d) => d.replace('#top', '&x=1#top'), clicks: true },
  { name: 'HEAD of a disabled link', method: 'HEAD', link: { disabled: true }, status: 410, clicks: false },
  { name: 'HEAD of an unknown code', method: 'HEAD', link: null, status: 404, clicks: false },
  { name: 'password-protected: the form', method: 'GET', link: { password: 'open sesame' }, status: 200, clicks: false },
  { name: 'HEAD of a password-protected link', method: 'HEAD', link: { password: 'open sesame' }, status: 200, clicks: false },
];

describe('the fast redirect path answers like the /:code route (PostgreSQL + Redis)', await sharedTierTestOptions(), () => {
  let pair: InstancePair;
  before(async () => {
    // The raw IP is kept here so that the stored click can be compared whole.
    pair = await startInstancePair({ env: { CLICKS_STORE_RAW_IP: 'true' } });
  });
  // Nothing to close when the start itself failed (its own error is the one reported).
  after(() => (pair === undefined ? undefined : pair.close()));

  /** Every recorder has written what it holds. */
  async function flushClicks(): Promise<void> {
    await Promise.all(pair.both.map((instance) => instance.app.runtime.deps.clicks.flush()));
  }

  /** Lookups the instance's in-process cache could not answer, as /metrics counts them. */
  async function memoryMisses(instance: Instance): Promise<number> {
    const text = await instance.app.runtime.deps.metrics.registry.getSingleMetricAsString('shunt_cache_requests_total');
    const line = text.split('\n').find((candidate) => candidate.startsWith('shunt_cache_requests_total{tier="memory",result="miss"} '));
    assert.ok(line !== undefined, text);
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }

  /**
   * Requests until one is answered from the in-process entry the earlier ones loaded: the
   * first goes through the route (nothing cached), and a request that costs no cache miss is
   * answered by the fast path. The instance's own invalidation of a new code (sent on
   * creation) may arrive after the first answer and drop the entry it loaded; then the route
   * answers again.
   */
  async function routeThenFast<T>(instance: Instance, request: () => Promise<T>): Promise<{ routed: T[]; fast: T }> {
    const routed = [await request()];
    for (;;) {
      assert.ok(routed.length <= 3, 'the entry never stayed cached');
      const missesBefore = await memoryMisses(instance);
      const answer = await request();
      if ((await memoryMisses(instance)) === missesBefore) return { routed, fast: answer };
      routed.push(answer);
    }
  }

  for (const [index, spec] of CASES.entries()) {
    test(`${spec.name}: ${spec.method}`, async () => {
      const { a } = pair;
      const links = a.app.runtime.deps.links;
      const url = destination();
      const code = spec.link === null ? `unknown-${randomBytes(5).toString('hex')}` : (await createLink(a, { url, ...spec.link })).code;
      if (spec.alter !== undefined) await pair.sql(spec.alter, [code]);
      const path = `/${code}${spec.query === undefined ? '' : `?${spec.query}`}`;
      const overSocket = async (requestId: string): Promise<Omit<Seen, 'how'>> => {
        const answer = await send(`${a.url}${path}`, { method: spec.method, headers: { ...CLIENT_HEADERS, 'x-request-id': requestId } });
        return { status: answer.status, headers: pick(answer.headers), body: answer.body, requestId: answer.headers['x-request-id'] as string | undefined };
      };
      const sent: string[] = [];
      const nextId = (): string => {
        sent.push(`${index}-${sent.length}-${code}`);
        return sent[sent.length - 1] as string;
      };

      assert.equal(links.peek(code), undefined, 'nothing cached yet: the first request goes through the route');
      const { routed: routedAnswers, fast: fastAnswer } = await routeThenFast(a, () => overSocket(nextId()));
      const routed = routedAnswers.map((answer): Seen => ({ ...answer, how: 'route over a socket' }));
      const fast: Seen = { ...fastAnswer, how: 'fast path' };
      const injectId = nextId();
      const injected = await a.app.request({ method: spec.method, url: path, key: null, headers: { ...CLIENT_HEADERS, 'x-request-id': injectId } });
      const viaInject: Seen = {
        how: 'inject()',
        status: injected.statusCode,
        headers: pick(injected.headers),
        body: injected.body,
        requestId: injected.headers['x-request-id'] as string | undefined,
      };
      const answers = [...routed, fast, viaInject];

      assert.equal(fast.status, spec.status, fast.body);
      if (spec.location !== undefined) assert.equal(fast.headers.location, spec.location(url));
      else assert.equal(fast.headers.location, undefined);
      if (spec.method === 'HEAD') assert.equal(fast.body, '');
      for (const other of [...routed, viaInject]) {
        const label = `${other.how} vs fast path`;
        assert.equal(other.status, fast.status, label);
        assert.deepEqual(other.headers, fast.headers, label);
        assert.equal(other.body, fast.body, label);
      }
      assert.deepEqual(answers.map((answer) => answer.requestId), sent, 'X-Request-Id echoed');

      // One log line per answer, saying the same thing whichever path answered.
      const lines = await Promise.all(sent.map((id) => requestLines(a.app, id)));
      for (const [i, found] of lines.entries()) assert.equal(found.length, 1, `log lines for request ${i + 1}: ${JSON.stringify(found)}`);
      const summary = (line: Record<string, unknown> | undefined): unknown[] => [line?.method, line?.url, line?.route, line?.status, line?.ip];
      for (const found of lines) assert.deepEqual(summary(found[0]), [spec.method, path, '/:code', spec.status, '127.0.0.1']);

      // One click per redirect answered, the same click whichever path answered.
      await flushClicks();
      const clicks = await pair.sql<{ method: string; referrer: string | null; user_agent: string | null; client_ip: string | null }>(
        'SELECT method, referrer, user_agent, host(ip) AS client_ip FROM click_events WHERE code = $1',
        [code],
      );
      const click = { method: spec.method, referrer: CLIENT_HEADERS.referer, user_agent: CLIENT_HEADERS['user-agent'], client_ip: '127.0.0.1' };
      assert.deepEqual(clicks, spec.clicks ? answers.map(() => click) : []);
    });
  }

  test('an invalid X-Request-Id is replaced by a fresh one on both paths', async () => {
    const { a } = pair;
    const { code } = await createLink(a, { url: destination() });
    const bad = 'not a valid id';
    const { routed, fast } = await routeThenFast(a, () => send(`${a.url}/${code}`, { headers: { 'x-request-id': bad } }));
    const injected = await a.app.request({ url: `/${code}`, key: null, headers: { 'x-request-id': bad } });
    const ids = [...routed, fast, injected].map((answer) => String(answer.headers['x-request-id']));
    for (const id of ids) assert.match(id, UUID);
    assert.equal(new Set(ids).size, ids.length, 'a new id per request');
  });

  test('a visit-limited link counts every visit exactly, across both instances', async () => {
    const maxVisits = 3;
    const url = destination();
    const code = `limited-${randomBytes(5).toString('hex')}`;
    // A first learns the code as unknown, then the link is created through B: A's negative
    // entry goes when the invalidation reaches it, after which no message for the code is
    // left in flight that could drop the entry A loads next.
    assert.equal((await send(`${pair.a.url}/${code}`)).status, 404);
    await createLink(pair.b, { url, alias: code, maxVisits });
    const deadline = Date.now() + LOG_WAIT_MS;
    while (pair.a.app.runtime.deps.links.peek(code) === null) {
      assert.ok(Date.now() < deadline, 'the invalidation never reached A');
      await sleep(5);
    }
    const first = await send(`${pair.a.url}/${code}`, { headers: CLIENT_HEADERS });
    assert.equal(first.status, 302);
    assert.notEqual(pair.a.app.runtime.deps.links.peek(code), undefined, 'cached, yet the fast path must leave it to the route');

    const requestIds = Array.from({ length: 9 }, (_, i) => `limited-${i}-${code}`);
    const answers = await Promise.all(
      requestIds.map((id, i) => send(`${(i % 2 === 0 ? pair.b : pair.a).url}/${code}`, { headers: { ...CLIENT_HEADERS, 'x-request-id': id } })),
    );
    const statuses = answers.map((answer) => answer.status);
    assert.equal(statuses.filter((status) => status === 302).length, maxVisits - 1, `statuses: ${statuses.join(' ')}`);
    assert.equal(statuses.filter((status) => status === 410).length, answers.length - (maxVisits - 1), `statuses: ${statuses.join(' ')}`);
    for (const answer of answers) {
      if (answer.status === 302) assert.equal(answer.headers.location, url);
      assert.equal(answer.headers['cache-control'], 'private, no-store', 'a limited redirect must not be cached by clients');
    }

    const [row] = await pair.sql<{ visits: string }>('SELECT visits::text AS visits FROM links WHERE code = $1', [code]);
    assert.equal(row?.visits, String(maxVisits));
    await flushClicks();
    const [clicks] = await pair.sql<{ n: number }>('SELECT count(*)::int AS n FROM click_events WHERE code = $1', [code]);
    assert.equal(clicks?.n, maxVisits, 'one click per redirect served');
    for (const [i, id] of requestIds.entries()) {
      const instance = i % 2 === 0 ? pair.b : pair.a;
      assert.equal((await requestLines(instance.app, id)).length, 1, `log lines for ${id} on ${instance.name}`);
    }
  });
});
