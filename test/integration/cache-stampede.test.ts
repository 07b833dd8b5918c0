/**
 * No stampede on the store: when a hot link's entries have just expired in both tiers, 1,000
 * concurrent requests for it, split across two instances, cost at most one database query
 * per instance. The queries are counted twice, independently: on each instance's database
 * handle (every statement it sends), and on PostgreSQL itself (pg_stat_activity, by the
 * application name each instance connects with).
 *
 * To be sure the requests really overlap the load, the links table is locked while they
 * arrive: every lookup that reaches PostgreSQL waits there until all 1,000 requests are
 * inside the instances. Then /metrics must report the per-tier hit ratios this sequence
 * implies.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { Database } from '../../src/storage/database.js';
import { createLink, send, sharedTierTestOptions, startInstancePair, type Instance, type InstancePair } from '../helpers/instance-pair.js';

const REQUESTS = 1000;
const TTL_SECONDS = 2;
const ARRIVAL_TIMEOUT_MS = 60_000;
/** The statements behind LinkRepository.findByCode and findByCodes: the lookups a cache miss costs. */
const LINK_LOOKUP = /\bFROM links WHERE code = (\$1|ANY\(\$1)/;

/** Counts the link lookups an instance sends to its database. */
function countLookups(db: Database): { readonly count: number } {
  const counter = { count: 0 };
  const query = db.query.bind(db);
  db.query = (text, params) => {
    if (LINK_LOOKUP.test(text)) counter.count += 1;
    return query(text, params);
  };
  return counter;
}

/** Counts the HTTP requests an instance's server has received. */
function countArrivals(instance: Instance): { readonly count: number } {
  const counter = { count: 0 };
  instance.app.runtime.built.app.server.on('request', () => (counter.count += 1));
  return counter;
}

/** One sample of a Prometheus text exposition, by name and exact label set. */
function sample(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}{${labels}} `));
  assert.ok(line !== undefined, `no ${name}{${labels}} in /metrics`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('cache stampede across two instances (PostgreSQL + Redis)', await sharedTierTestOptions(), () => {
  let pair: InstancePair;
  let lookups: { a: { readonly count: number }; b: { readonly count: number } };
  let arrivals: { a: { readonly count: number }; b: { readonly count: number } };
  let locker: pg.Client | null = null;

  before(async () => {
    pair = await startInstancePair({
      env: {
        CACHE_TTL_SECONDS: String(TTL_SECONDS),
        CACHE_REDIS_TTL_SECONDS: String(TTL_SECONDS),
        // Client and both instances share this process's event loop: a 1,000-request burst
        // stalls it longer than the 100 ms default, and a Redis timeout would open the breaker
        // and send lookups around the shared tier, which is not what is measured here.
        REDIS_COMMAND_TIMEOUT_MS: '5000',
      },
    });
    lookups = { a: countLookups(pair.a.app.runtime.db), b: countLookups(pair.b.app.runtime.db) };
    arrivals = { a: countArrivals(pair.a), b: countArrivals(pair.b) };
  });
  after(async () => {
    await locker?.end().catch(() => undefined);
    // Nothing to close when the start itself failed (its own error is the one reported).
    if (pair !== undefined) await pair.close();
  });

  /** Link lookups waiting on PostgreSQL right now, by instance (application name). */
  async function waitingLookups(): Promise<Record<string, number>> {
    const rows = await pair.sql<{ app: string; n: number }>(
      `SELECT application_name AS app, count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active' AND query ~ 'FROM links WHERE code = (\\$1|ANY\\(\\$1)'
        GROUP BY application_name`,
    );
    return Object.fromEntries(rows.map((row) => [row.app, row.n]));
  }

  test('1,000 concurrent requests for a just-expired hot link cost at most one query per instance', async () => {
    const url = `https://example.com/hot/${randomBytes(4).toString('hex')}`;
    // The create's invalidation comes back to A too, and drops what A loads before it arrives:
    // wait for it to go out (the instances read it on this process's loop) before priming.
    const subscriber = pair.redis.duplicate();
    const announced = new Set<string>();
    subscriber.on('message', (_channel: string, text: string) => announced.add((JSON.parse(text) as { code: string }).code));
    await subscriber.subscribe(pair.keys.invalidationChannel);
    let code: string;
    try {
      ({ code } = await createLink(pair.a, { url }));
      const deadline = Date.now() + 5000;
      while (!announced.has(code)) {
        assert.ok(Date.now() < deadline, 'the create was never announced');
        await sleep(5);
      }
      await sleep(100);
    } finally {
      subscriber.disconnect();
    }
    const sharedKey = pair.keys.link(code);

    // Both tiers of both instances hold the link: A loads it and fills Redis, B reads it from Redis.
    assert.equal((await send(`${pair.a.url}/${code}`)).status, 302);
    const filled = Date.now() + 5000;
    while ((await pair.redis.exists(sharedKey)) === 0) {
      assert.ok(Date.now() < filled, 'A never filled the shared entry');
      await sleep(5);
    }
    assert.equal((await send(`${pair.b.url}/${code}`)).status, 302);
    const lastStored = Date.now();
    for (const instance of pair.both) assert.equal((await send(`${instance.url}/${code}`)).status, 302, 'a memory hit');
    assert.deepEqual([lookups.a.count, lookups.b.count], [1, 0], 'A loaded from the store, B from Redis');

    // Real expiry in both tiers: Redis drops the key on its TTL, the processes' entries age out.
    while ((await pair.redis.exists(sharedKey)) === 1) await sleep(20);
    const memoryExpired = lastStored + TTL_SECONDS * 1000 + 50;
    if (Date.now() < memoryExpired) await sleep(memoryExpired - Date.now());
    for (const instance of pair.both) assert.equal(instance.app.runtime.deps.links.peek(code), undefined, `${instance.name}'s entry expired`);

    const before = { a: lookups.a.count, b: lookups.b.count, arrivedA: arrivals.a.count, arrivedB: arrivals.b.count };
    locker = new pg.Client({ connectionString: pair.databaseUrl });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE links IN ACCESS EXCLUSIVE MODE');
    let answers: Promise<{ status: number; location: string | undefined }[]>;
    try {
      answers = Promise.all(
        Array.from({ length: REQUESTS }, async (_, i) => {
          const instance = i % 2 === 0 ? pair.a : pair.b;
          const answer = await send(`${instance.url}/${code}`);
          return { status: answer.status, location: answer.headers.location };
        }),
      );
      // Released only once every request is inside an instance and each instance's lookup is
      // blocked on the lock: every request has had its chance to reach the store.
      const deadline = Date.now() + ARRIVAL_TIMEOUT_MS;
      let waiting: Record<string, number> = {};
      for (;;) {
        waiting = await waitingLookups();
        const arrived = arrivals.a.count - before.arrivedA + arrivals.b.count - before.arrivedB;
        if (arrived === REQUESTS && waiting['shunt-a'] !== undefined && waiting['shunt-b'] !== undefined) break;
        assert.ok(Date.now() < deadline, `after ${ARRIVAL_TIMEOUT_MS} ms: ${arrived} requests arrived, lookups waiting ${JSON.stringify(waiting)}`);
        await sleep(20);
      }
      // Seen by PostgreSQL: one lookup per instance, not one per request.
      await sleep(100);
      assert.deepEqual(await waitingLookups(), { 'shunt-a': 1, 'shunt-b': 1 }, 'lookups waiting on PostgreSQL');
    } finally {
      await locker.query('COMMIT');
      await locker.end();
      locker = null;
    }

    const results = await answers;
    const wrong = results.filter((result) => result.status !== 302 || result.location !== url);
    assert.equal(wrong.length, 0, `wrong answers: ${JSON.stringify(wrong.slice(0, 5))}`);
    // Seen by the instances: each sent exactly one lookup for the whole burst. Each must send
    // one, since neither could find the link in Redis while both loads were held.
    assert.equal(lookups.a.count - before.a, 1, 'lookups sent by A');
    assert.equal(lookups.b.count - before.b, 1, 'lookups sent by B');

    // The ratios follow from the sequence: memory hit once (the repeat after priming) and
    // missed twice (priming, then the first request of the burst; the others waited on that
    // load rather than missing again). Redis: A missed twice (priming, burst), B hit once
    // (priming) and missed once (burst).
    const expected = {
      A: { memoryHits: 1, memoryMisses: 2, redisHits: 0, redisMisses: 2, storeLoads: 2 },
      B: { memoryHits: 1, memoryMisses: 2, redisHits: 1, redisMisses: 1, storeLoads: 1 },
    };
    for (const instance of pair.both) {
      const want = expected[instance.name];
      const metrics = await send(`${instance.url}/metrics`);
      assert.equal(metrics.status, 200);
      const text = metrics.body;
      const counts = {
        memoryHits: sample(text, 'shunt_cache_requests_total', 'tier="memory",result="hit"'),
        memoryMisses: sample(text, 'shunt_cache_requests_total', 'tier="memory",result="miss"'),
        redisHits: sample(text, 'shunt_cache_requests_total', 'tier="redis",result="hit"'),
        redisMisses: sample(text, 'shunt_cache_requests_total', 'tier="redis",result="miss"'),
        storeLoads: sample(text, 'shunt_cache_requests_total', 'tier="store",result="hit"'),
      };
      assert.deepEqual(counts, want, `cache counters of ${instance.name}`);
      assert.equal(sample(text, 'shunt_cache_requests_total', 'tier="redis",result="error"'), 0, `Redis errors on ${instance.name}`);
      const memoryRatio = sample(text, 'shunt_cache_hit_ratio', 'tier="memory"');
      const redisRatio = sample(text, 'shunt_cache_hit_ratio', 'tier="redis"');
      assert.ok(Math.abs(memoryRatio - want.memoryHits / (want.memoryHits + want.memoryMisses)) < 1e-9, `memory hit ratio of ${instance.name}: ${memoryRatio}`);
      assert.ok(Math.abs(redisRatio - want.redisHits / (want.redisHits + want.redisMisses)) < 1e-9, `redis hit ratio of ${instance.name}: ${redisRatio}`);
    }
  });
});
