/**
 * Redis is an accelerator, not a dependency: with it refusing connections or hanging,
 * redirects and the API keep working from PostgreSQL, rate limits fall back to
 * per-instance counters, the circuit breaker stops paying the command timeout, and
 * everything heals by itself when Redis returns. Two instances share a PostgreSQL
 * database and a redis-server of this test's own, which it kills, pauses and restarts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { cacheKeys } from '../../src/cache/cache-keys.js';
import { createPostgresDatabase, IN_CI, isPostgresAvailable } from '../helpers/backends.js';
import { freePort } from '../helpers/process.js';
import { redisServerMissing, startPrivateRedis, type PrivateRedis } from '../helpers/redis-server.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/test-app.js';

const missing = redisServerMissing() ?? ((await isPostgresAvailable()) ? null : 'PostgreSQL is not reachable');
const options = missing !== null && !IN_CI ? { skip: missing } : {};
const KEY_LIMIT = 15;

interface Instance {
  app: TestApp;
  url: string;
}

async function metric(instance: Instance, line: string): Promise<number> {
  const text = await (await fetch(`${instance.url}/metrics`)).text();
  const found = text.split('\n').find((row) => row.startsWith(`${line} `));
  return Number(found?.slice(line.length + 1) ?? NaN);
}

async function eventually(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('Redis outages', options, () => {
  let redis: PrivateRedis;
  let drop: () => Promise<void>;
  let databaseUrl: string;
  const instances: Instance[] = [];
  let a: Instance;
  let b: Instance;
  let code: string;

  const start = async (redisUrl: string): Promise<Instance> => {
    const app = await startTestApp('postgres', {
      databaseUrl,
      env: {
        REDIS_URL: redisUrl,
        REDIS_COMMAND_TIMEOUT_MS: '100',
        REDIS_BREAKER_THRESHOLD: '3',
        REDIS_BREAKER_COOLDOWN_MS: '500',
        // Every redirect goes past the in-process tier to Redis (or its fallback).
        CACHE_MAX_ENTRIES: '0',
        RATE_LIMIT_KEY_PER_MINUTE: String(KEY_LIMIT),
      },
    });
    const instance = { app, url: await app.runtime.built.app.listen({ host: '127.0.0.1', port: 0 }) };
    instances.push(instance);
    return instance;
  };

  const follow = async (instance: Instance, path: string): Promise<{ status: number; location: string | null }> => {
    const response = await fetch(`${instance.url}/${path}`, { redirect: 'manual' });
    return { status: response.status, location: response.headers.get('location') };
  };

  const createLink = async (instance: Instance, url: string): Promise<string> => {
    const response = await fetch(`${instance.url}/api/v1/links`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url }),
    });
    assert.equal(response.status, 201);
    return ((await response.json()) as { code: string }).code;
  };

  before(async () => {
    if (missing !== null) throw new Error(missing);
    redis = await startPrivateRedis();
    const database = await createPostgresDatabase();
    databaseUrl = database.url;
    drop = database.drop;
    a = await start(redis.url);
    b = await start(redis.url);
    code = await createLink(a, 'https://example.com/steady');
  });

  after(async () => {
    await Promise.allSettled(instances.map((instance) => instance.app.close()));
    await redis?.stop();
    await drop?.();
  });

  test('Redis refusing connections: redirects and the API keep working, limits become per instance', async () => {
    await redis.kill();
    for (let i = 0; i < 40; i += 1) {
      assert.deepEqual(await follow(i % 2 === 0 ? a : b, code), { status: 302, location: 'https://example.com/steady' });
    }
    const fresh = await createLink(b, 'https://example.com/made-while-redis-is-down');
    assert.deepEqual(await follow(a, fresh), { status: 302, location: 'https://example.com/made-while-redis-is-down' });
    assert.equal(await metric(a, 'shunt_redis_up'), 0);
    const skipped = await metric(a, 'shunt_redis_failures_total{kind="short_circuited"}');
    for (let i = 0; i < 10; i += 1) await follow(a, code);
    assert.ok((await metric(a, 'shunt_redis_failures_total{kind="short_circuited"}')) > skipped, 'the breaker skips Redis instead of trying it each time');

    // A key made now has no count anywhere yet: each instance alone allows the whole limit.
    const keyResponse = await fetch(`${a.url}/api/v1/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'outage', role: 'member' }),
    });
    assert.equal(keyResponse.status, 201);
    const { key } = (await keyResponse.json()) as { key: string };
    for (const instance of [a, b]) {
      const statuses: number[] = [];
      for (let i = 0; i < KEY_LIMIT + 1; i += 1) {
        statuses.push((await fetch(`${instance.url}/api/v1/links`, { headers: { authorization: `Bearer ${key}` } })).status);
      }
      assert.deepEqual(statuses, [...Array<number>(KEY_LIMIT).fill(200), 429], 'the per-instance limit applies on each instance');
    }
  });

  test('Redis back: the circuit closes by itself and limits are shared again', async () => {
    await redis.restart();
    for (const instance of [a, b]) {
      await eventually('the circuit closes', async () => {
        await follow(instance, code);
        return (await metric(instance, 'shunt_redis_up')) === 1;
      });
    }
    const keyResponse = await fetch(`${b.url}/api/v1/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'shared-again', role: 'member' }),
    });
    const { key } = (await keyResponse.json()) as { key: string };
    let allowed = 0;
    for (let i = 0; i < KEY_LIMIT + 6; i += 1) {
      const response = await fetch(`${(i % 2 === 0 ? a : b).url}/api/v1/links`, { headers: { authorization: `Bearer ${key}` } });
      if (response.status === 200) allowed += 1;
    }
    assert.equal(allowed, KEY_LIMIT, 'one budget for both instances');
  });

  test('Redis hanging: the breaker opens, redirects keep working, and a change made meanwhile reaches the other instance', async () => {
    const link = await createLink(a, 'https://example.com/old');
    // Both tiers of B know the old destination (the in-process one is off: Redis holds it).
    assert.equal((await follow(b, link)).location, 'https://example.com/old');
    assert.equal((await follow(b, link)).location, 'https://example.com/old');
    redis.pause();
    try {
      for (let i = 0; i < 10; i += 1) assert.equal((await follow(b, code)).status, 302);
      const failedBefore = await metric(b, 'shunt_redis_failures_total{kind="failed"}');
      const skippedBefore = await metric(b, 'shunt_redis_failures_total{kind="short_circuited"}');
      for (let i = 0; i < 30; i += 1) assert.equal((await follow(b, code)).status, 302);
      const failed = (await metric(b, 'shunt_redis_failures_total{kind="failed"}')) - failedBefore;
      const skipped = (await metric(b, 'shunt_redis_failures_total{kind="short_circuited"}')) - skippedBefore;
      // Each redirect would ask Redis once (a failed lookup skips the fill); with the circuit
      // open only the occasional probe waits for the timeout.
      assert.ok(skipped >= 20, `only ${skipped} of 30 calls skipped`);
      assert.ok(failed <= 10, `${failed} calls paid the timeout`);
      assert.equal(await metric(b, 'shunt_redis_up'), 0);

      const patched = await fetch(`${a.url}/api/v1/links/${link}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ url: 'https://example.com/new' }),
      });
      assert.equal(patched.status, 200);
      assert.equal(await metric(a, 'shunt_cache_pending_invalidations'), 1, 'the invalidation waits for Redis');
    } finally {
      redis.resume();
    }
    await eventually('B serves the change made while Redis hung', async () => (await follow(b, link)).location === 'https://example.com/new');
    assert.equal(await metric(a, 'shunt_cache_pending_invalidations'), 0);
  });

  test('an instance cut off from Redis replays its invalidations when it reconnects', async () => {
    // C reaches Redis through a proxy the test cuts; B stays connected and keeps the old
    // destination in Redis, which only C's replayed invalidation can remove.
    const proxy = await startTcpProxy(redis.port);
    try {
      const c = await start(`redis://127.0.0.1:${proxy.port}`);
      const link = await createLink(c, 'https://example.com/before-partition');
      const direct = new Redis(redis.url, { maxRetriesPerRequest: 0 });
      try {
        // B's fill lands once C's own invalidation of the new code has passed.
        await eventually('Redis holds the link', async () => {
          assert.equal((await follow(b, link)).location, 'https://example.com/before-partition');
          return (await direct.exists(cacheKeys('shunt').link(link))) === 1;
        });
      } finally {
        direct.disconnect();
      }
      proxy.cut();
      const patched = await fetch(`${c.url}/api/v1/links/${link}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ url: 'https://example.com/after-partition' }),
      });
      assert.equal(patched.status, 200);
      assert.equal(await metric(c, 'shunt_cache_pending_invalidations'), 1);
      assert.equal((await follow(b, link)).location, 'https://example.com/before-partition', 'B cannot know yet: Redis still holds the old entry');
      proxy.restore();
      await eventually('B serves the change once C is back', async () => (await follow(b, link)).location === 'https://example.com/after-partition');
      assert.equal(await metric(c, 'shunt_cache_pending_invalidations'), 0);
    } finally {
      await proxy.close();
    }
  });

  test('an instance starts and serves while its Redis is unreachable', async () => {
    const deadPort = await freePort();
    const c = await start(`redis://127.0.0.1:${deadPort}`);
    assert.equal((await fetch(`${c.url}/readyz`)).status, 200);
    assert.deepEqual(await follow(c, code), { status: 302, location: 'https://example.com/steady' });
  });
});
