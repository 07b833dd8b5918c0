/**
 * The operations endpoints: liveness, readiness (red while draining or when the store
 * does not answer) and Prometheus metrics that move with real traffic.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { backendTestOptions } from '../helpers/backends.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';

interface Problem {
  status: number;
  code: string;
  requestId?: string;
}

/** The value of one sample: `name{...}` whose labels include every pair given. */
function sample(metrics: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of metrics.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const present = new Map([...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((pair) => [pair[1], pair[2]]));
    if (Object.entries(labels).every(([label, value]) => present.get(label) === value)) return Number(match[3]);
  }
  return undefined;
}

function assertProblem(response: LightMyRequestResponse, status: number, code: string): Problem {
  assert.equal(response.statusCode, status, response.body);
  assert.match(String(response.headers['content-type']), /^application\/problem\+json/);
  const problem = response.json<Problem>();
  assert.equal(problem.status, status);
  assert.equal(problem.code, code);
  return problem;
}

describe('operations endpoints (embedded)', await backendTestOptions('embedded'), () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp('embedded');
  });
  after(() => app.close());

  async function metrics(): Promise<string> {
    const response = await app.request({ url: '/metrics', key: null });
    assert.equal(response.statusCode, 200, response.body);
    assert.match(String(response.headers['content-type']), /^text\/plain/);
    return response.body;
  }

  async function createCode(url: string): Promise<string> {
    const response = await app.request({ method: 'POST', url: '/api/v1/links', body: { url } });
    assert.equal(response.statusCode, 201, response.body);
    return response.json<{ code: string }>().code;
  }

  test('GET /healthz is 200 without a key', async () => {
    const response = await app.request({ url: '/healthz', key: null });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { status: 'ok' });
    assert.equal((await app.request({ method: 'HEAD', url: '/healthz', key: null })).statusCode, 200);
  });

  test('GET /readyz is 200 while the store answers', async () => {
    const response = await app.request({ url: '/readyz', key: null });
    assert.equal(response.statusCode, 200, response.body);
    assert.deepEqual(response.json(), { status: 'ready' });
    assert.equal(app.runtime.deps.readiness.draining, false);
  });

  test('GET /readyz is a 503 problem with Retry-After when the store does not answer', async () => {
    const readiness = app.runtime.deps.readiness;
    const original = readiness.check.bind(readiness);
    readiness.check = () => Promise.reject(new Error('connection refused'));
    try {
      const response = await app.request({ url: '/readyz', key: null });
      assertProblem(response, 503, 'dependency_unavailable');
      assert.ok(Number(response.headers['retry-after']) > 0);
      assert.doesNotMatch(response.body, /connection refused/, 'the cause stays internal');
    } finally {
      readiness.check = original;
    }
    assert.equal((await app.request({ url: '/readyz', key: null })).statusCode, 200);
    // Liveness does not depend on the store.
    assert.equal((await app.request({ url: '/healthz', key: null })).statusCode, 200);
  });

  test('while draining, /readyz is a 503 shutting_down problem, in-flight requests finish and clicks are flushed', async () => {
    // A second app of its own: this test shuts it down. Clicks stay buffered until close.
    const draining = await startTestApp('embedded', { env: { CLICK_FLUSH_INTERVAL_MS: '60000' } });
    try {
      const created = await draining.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/drain' } });
      const { code } = created.json<{ code: string }>();
      assert.equal((await draining.request({ url: `/${code}`, key: null })).statusCode, 302);
      assert.equal(draining.runtime.deps.clicks.buffered, 1);

      // Both requests are in flight when the drain begins.
      const readyz = draining.request({ url: '/readyz', key: null });
      const redirect = draining.request({ url: `/${code}`, key: null });
      const closing = draining.runtime.close();
      assert.equal(draining.runtime.deps.readiness.draining, true);

      const response = await readyz;
      assertProblem(response, 503, 'shutting_down');
      assert.ok(Number(response.headers['retry-after']) > 0);
      assert.equal(typeof response.headers['x-request-id'], 'string');
      assert.equal((await redirect).statusCode, 302);

      await closing;
      assert.equal(draining.runtime.deps.readiness.draining, true);
      assert.equal(draining.runtime.deps.clicks.buffered, 0, 'buffered clicks are written on close');
    } finally {
      await draining.close();
    }
  });

  test('/metrics is Prometheus text with the latency histogram by route and status', async () => {
    const code = await createCode('https://example.com/metrics');
    const before = await metrics();
    const labels = { method: 'GET', route: '/:code', status: '302' };
    const countBefore = sample(before, 'shunt_http_request_duration_seconds_count', labels) ?? 0;

    for (let i = 0; i < 3; i += 1) assert.equal((await app.request({ url: `/${code}`, key: null })).statusCode, 302);

    const text = await metrics();
    assert.match(text, /^# HELP shunt_http_request_duration_seconds /m);
    assert.match(text, /^# TYPE shunt_http_request_duration_seconds histogram$/m);
    const bucketLines = text.split('\n').filter((line) => line.startsWith('shunt_http_request_duration_seconds_bucket{'));
    assert.ok(
      bucketLines.some((line) => line.includes('route="/:code"') && line.includes('status="302"') && line.includes('le="+Inf"')),
      'a bucket series for route="/:code", status="302"',
    );
    assert.equal(sample(text, 'shunt_http_request_duration_seconds_count', labels), countBefore + 3);
    assert.equal(sample(text, 'shunt_http_request_duration_seconds_bucket', { ...labels, le: '+Inf' }), countBefore + 3);
    assert.ok((sample(text, 'shunt_http_request_duration_seconds_sum', labels) ?? -1) >= 0);
    // Other routes are labelled by their template too.
    assert.ok((sample(text, 'shunt_http_request_duration_seconds_count', { method: 'POST', route: '/api/v1/links', status: '201' }) ?? 0) >= 1);
  });

  test('route labels are templates: unknown paths do not create series of their own', async () => {
    await app.request({ url: '/api/v1/nothing-here-4711', key: null });
    await app.request({ url: '/NoSuchCode4711', key: null });
    const text = await metrics();
    assert.doesNotMatch(text, /4711/);
  });

  test('cache hit and miss counters move with redirects', async () => {
    const code = await createCode('https://example.com/cached');
    const read = (text: string, result: 'hit' | 'miss'): number => {
      const value = sample(text, 'shunt_cache_requests_total', { tier: 'memory', result });
      assert.ok(value !== undefined, `shunt_cache_requests_total{tier="memory",result="${result}"} present`);
      return value;
    };
    const start = await metrics();
    assert.match(start, /^# TYPE shunt_cache_requests_total counter$/m);

    assert.equal((await app.request({ url: `/${code}`, key: null })).statusCode, 302);
    const afterFirst = await metrics();
    assert.equal(read(afterFirst, 'miss'), read(start, 'miss') + 1, 'the first redirect misses');
    assert.equal(read(afterFirst, 'hit'), read(start, 'hit'));

    for (let i = 0; i < 4; i += 1) assert.equal((await app.request({ url: `/${code}`, key: null })).statusCode, 302);
    const afterMore = await metrics();
    assert.equal(read(afterMore, 'hit'), read(afterFirst, 'hit') + 4, 'repeated redirects hit');
    assert.equal(read(afterMore, 'miss'), read(afterFirst, 'miss'));

    const ratio = sample(afterMore, 'shunt_cache_hit_ratio', { tier: 'memory' });
    assert.ok(ratio !== undefined && ratio > 0 && ratio <= 1, `hit ratio ${ratio}`);
    assert.ok((sample(afterMore, 'shunt_cache_entries') ?? 0) >= 1);
  });

  test('/metrics also exposes the click queue and the database pool', async () => {
    const text = await metrics();
    for (const name of ['shunt_click_events_buffered', 'shunt_clicks_dropped_total', 'shunt_click_write_failures_total']) {
      assert.ok(sample(text, name) !== undefined, `${name} present`);
    }
    for (const state of ['total', 'idle', 'waiting']) {
      assert.ok(sample(text, 'shunt_db_pool_connections', { state }) !== undefined, `shunt_db_pool_connections{state="${state}"}`);
    }
    const max = sample(text, 'shunt_db_pool_max_connections');
    const total = sample(text, 'shunt_db_pool_connections', { state: 'total' });
    assert.ok(max !== undefined && total !== undefined && max >= 1 && total <= max, `pool ${total} of at most ${max}`);
  });
});

describe('metric names (with the Node.js default metrics)', await backendTestOptions('embedded'), () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp('embedded', { runtime: { defaultMetrics: true } });
  });
  after(() => app.close());

  test('only counters end in _total (what promtool check metrics asks)', async () => {
    const text = (await app.request({ url: '/metrics', key: null })).body;
    const types = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((match) => ({ name: match[1] ?? '', type: match[2] ?? '' }));
    assert.ok(types.some((metric) => metric.name === 'shunt_nodejs_active_handles'), 'the default metrics are there');
    assert.deepEqual(types.filter((metric) => metric.type !== 'counter' && metric.name.endsWith('_total')), []);
    assert.ok(types.filter((metric) => metric.type === 'counter').every((metric) => metric.name.endsWith('_total')));
  });
});
