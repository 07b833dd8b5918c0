/**
 * GET /api/v1/links/{code}/events over real sockets (inject() cannot hold a stream open):
 * events of stored clicks, heartbeats, the per-instance limit, ownership, the request log
 * line of a stream the client hung up on, and a drain that ends open streams at once.
 * Across two instances on the real Redis: a click announced on one instance reaches the
 * streams of the other, only watched codes are published, and a closed stream stops the
 * watch. Without Redis or PostgreSQL a local run skips that part; CI=true fails it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { cacheKeys } from '../../src/cache/cache-keys.js';
import { publicLiveClick, toLiveClick } from '../../src/live/live-click-feed.js';
import type { EnrichedClick } from '../../src/analytics/enriched-click.js';
import { RedisLiveClickFeed } from '../../src/live/redis-live-click-feed.js';
import { RedisConnection } from '../../src/redis/redis-connection.js';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { makeClick } from '../helpers/enriched-click-fixture.js';
import { createLink, sharedTierTestOptions, startInstancePair, type InstancePair } from '../helpers/instance-pair.js';
import { expectProblem } from '../helpers/problems.js';
import { freePort } from '../helpers/process.js';
import { eventually, SseClient, type SseFrame } from '../helpers/sse-client.js';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/test-app.js';

const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });
const clickData = (frame: SseFrame): unknown => JSON.parse(frame.data ?? 'null');
/** Codes of the links the tests made, to their links.id: clicks are announced by link. */
const linkIds = new Map<string, string>();

async function linkIdOfCode(app: TestApp, code: string): Promise<string> {
  const found = await app.runtime.db.query<{ id: string }>('SELECT id::text AS id FROM links WHERE code = $1', [code]);
  const id = found.rows[0]?.id;
  assert.ok(id !== undefined, `no link ${code}`);
  return id;
}

/** A stored click of the link that has `code` (a made-up link id for a code without one). */
function clickOf(code: string, overrides: Omit<Partial<EnrichedClick>, 'code' | 'at'> = {}): EnrichedClick {
  return makeClick({ code, at: new Date(), ...(linkIds.has(code) ? { linkId: linkIds.get(code) } : {}), ...overrides });
}

for (const backend of BACKENDS) {
  describe(`event stream on one instance (${backend})`, await backendTestOptions(backend), () => {
    let app: TestApp;
    let url: string;
    let memberA: string;
    let memberB: string;
    let closed = false;
    const open: SseClient[] = [];

    const connect = async (code: string, key = ADMIN_KEY): Promise<SseClient> => {
      const client = await SseClient.connect(`${url}/api/v1/links/${code}/events`, bearer(key));
      open.push(client);
      return client;
    };

    before(async () => {
      app = await startTestApp(backend, {
        env: { RATE_LIMIT_KEY_PER_MINUTE: '1000000', RATE_LIMIT_IP_PER_MINUTE: '1000000' },
        runtime: { eventStreams: { heartbeatMs: 100, maxStreams: 2 } },
      });
      url = await app.runtime.built.app.listen({ host: '127.0.0.1', port: 0 });
      memberA = await app.createKey('member', 'member A');
      memberB = await app.createKey('member', 'member B');
      for (const [alias, key] of [['live-a', ADMIN_KEY], ['live-m', memberA]] as const) {
        const created = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: `https://example.com/${alias}`, alias }, key });
        assert.equal(created.statusCode, 201, created.body);
        linkIds.set(alias, await linkIdOfCode(app, alias));
      }
    });
    after(async () => {
      for (const client of open) client.close();
      if (!closed) await app.close();
    });

    test('stored clicks of the link arrive as click events, others do not; hanging up unsubscribes and is logged', async () => {
      const client = await connect('live-a');
      assert.equal(client.status, 200);
      assert.equal(client.headers['content-type'], 'text/event-stream; charset=utf-8');
      assert.equal(client.headers['cache-control'], 'no-cache, no-transform');
      assert.equal(client.headers['x-accel-buffering'], 'no');
      assert.ok(client.headers['ratelimit-limit'] !== undefined, 'rate limit headers go out with the head');
      const requestId = String(client.headers['x-request-id']);
      assert.ok(requestId.length > 0);
      await client.next((frame) => frame.comments.includes('connected'));
      assert.equal((await client.next((frame) => frame.retry !== undefined)).retry, 3000);
      assert.equal(app.runtime.liveClicks.watched, 1);

      const clicks = [
        clickOf('live-a', { country: 'DE', referrerHost: 'news.example', ip: '203.0.113.9', visitor: 'ff'.repeat(16) }),
        clickOf('live-m'),
        clickOf('live-a', { method: 'HEAD', bot: true, device: 'bot' }),
      ];
      app.runtime.liveClicks.publish(clicks);
      await client.next((frame) => frame.id === clicks[2]?.id);
      const events = client.clicks();
      assert.deepEqual(
        events.map((frame) => ({ event: frame.event, id: frame.id, data: clickData(frame) })),
        [clicks[0], clicks[2]].map((click) => ({ event: 'click', id: click?.id, data: click === undefined ? null : publicLiveClick(toLiveClick(click)) })),
      );
      assert.ok(!client.body.includes('203.0.113.9') && !client.body.includes('ff'.repeat(16)), 'neither the IP nor the visitor key is sent');

      client.close();
      await eventually(() => app.runtime.liveClicks.watched === 0, 'the feed to lose its subscriber');
      await eventually(
        () => app.logs.some((line) => line.reqId === requestId && line.msg === 'request' && line.route === '/api/v1/links/:code/events' && line.status === 200),
        'the request log line of the stream',
      );
      const metrics = await app.request({ url: '/metrics', key: null });
      assert.match(metrics.body, /shunt_http_request_duration_seconds_count\{method="GET",route="\/api\/v1\/links\/:code\/events",status="200"\} 1/);
      assert.match(metrics.body, /shunt_event_streams 0/);
    });

    test('a comment heartbeat keeps the stream alive', async () => {
      const client = await connect('live-a');
      const first = client.frames.length;
      await client.next((frame) => frame.comments.includes('ping'), 2000, first);
      await client.next((frame) => frame.comments.includes('ping'), 2000, client.frames.length);
      client.close();
      await eventually(() => app.runtime.liveClicks.watched === 0, 'the feed to lose its subscriber');
    });

    test('past the per-instance limit a stream is refused with 503 and Retry-After', async () => {
      const one = await connect('live-a');
      const two = await connect('live-m', memberA);
      assert.equal(one.status, 200);
      assert.equal(two.status, 200);
      const third = await connect('live-a');
      assert.equal(third.status, 503);
      assert.match(String(third.headers['content-type']), /^application\/problem\+json/);
      assert.equal(third.headers['retry-after'], '5');
      await third.ended;
      assert.equal((JSON.parse(third.body) as { code: string }).code, 'too_many_streams');
      one.close();
      two.close();
      await eventually(() => app.runtime.liveClicks.watched === 0, 'both streams to unsubscribe');
      const again = await connect('live-a');
      assert.equal(again.status, 200, 'a freed place is taken again');
      again.close();
      await eventually(() => app.runtime.liveClicks.watched === 0, 'the stream to unsubscribe');
    });

    test('a member streams its own links only; no key is 401', async () => {
      const own = await connect('live-m', memberA);
      assert.equal(own.status, 200);
      own.close();
      expectProblem(await app.request({ url: '/api/v1/links/live-m/events', key: memberB }), 404, 'link_not_found');
      expectProblem(await app.request({ url: '/api/v1/links/live-a/events', key: memberA }), 404, 'link_not_found');
      expectProblem(await app.request({ url: '/api/v1/links/NoSuchLink/events' }), 404, 'link_not_found');
      expectProblem(await app.request({ url: '/api/v1/links/a%0Ab/events' }), 404, 'link_not_found');
      expectProblem(await app.request({ url: '/api/v1/links/live-a/events', key: null }), 401, 'unauthorized');
      // Keys are only read from the header: one in the query string is an unknown parameter, never a credential.
      expectProblem(await app.request({ url: `/api/v1/links/live-a/events?key=${ADMIN_KEY}`, key: null }), 401, 'unauthorized');
      const head = await app.request({ method: 'HEAD', url: '/api/v1/links/live-a/events' });
      assert.notEqual(head.statusCode, 200, 'HEAD opens no stream');
      await eventually(() => app.runtime.liveClicks.watched === 0, 'the stream to unsubscribe');
    });

    // Last: it closes the runtime.
    test('closing the runtime ends open streams with a comment, promptly', async () => {
      const client = await connect('live-a');
      assert.equal(client.status, 200);
      const requestId = String(client.headers['x-request-id']);
      const started = Date.now();
      closed = true;
      // A drain that waited for the stream would only end when after() hangs up the client.
      const drained = await Promise.race([app.close().then(() => true), new Promise<false>((resolve) => setTimeout(resolve, 3000, false))]);
      assert.ok(drained, 'the drain ended the open stream instead of waiting for it');
      assert.ok(Date.now() - started < 3000, `drained in ${Date.now() - started} ms`);
      await client.ended;
      assert.ok(client.frames.some((frame) => frame.comments.includes('server shutting down; reconnect')), JSON.stringify(client.frames));
      assert.ok(app.logs.some((line) => line.reqId === requestId && line.msg === 'request' && line.status === 200), 'the stream is logged when it ends');
    });
  });
}

describe('Redis live click feed while Redis is unreachable', () => {
  test('nothing throws or waits; clicks still reach this process', async () => {
    const port = await freePort();
    const redis = new RedisConnection({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 50, breakerThreshold: 1, breakerCooldownMs: 60_000, logger: pino({ level: 'silent' }) });
    const feed = new RedisLiveClickFeed(redis, { keys: cacheKeys('t-unreachable') });
    try {
      const seen: string[] = [];
      const unsubscribe = feed.subscribe(clickOf('down').linkId, (click) => seen.push(click.id));
      const click = clickOf('down');
      await eventually(() => !redis.available, 'the connection to be known down');
      feed.publish([click, clickOf('elsewhere')]);
      await eventually(() => seen.length === 1, 'local delivery');
      assert.deepEqual(seen, [click.id]);
      unsubscribe();
      unsubscribe();
      assert.equal(feed.watched, 0);
    } finally {
      await feed.close();
      await redis.close();
    }
  });
});

describe('event streams across instances (Redis)', await sharedTierTestOptions(), () => {
  let pair: InstancePair;
  const open: SseClient[] = [];

  before(async () => {
    pair = await startInstancePair({ runtime: { eventStreams: { heartbeatMs: 60_000 } } });
    await createLink(pair.a, { url: 'https://example.com/live-x', alias: 'live-x' });
    linkIds.set('live-x', await linkIdOfCode(pair.a.app, 'live-x'));
  });
  after(async () => {
    for (const client of open) client.close();
    await pair.close();
  });

  const connect = async (instance: InstancePair['a'], code: string): Promise<SseClient> => {
    const client = await SseClient.connect(`${instance.url}/api/v1/links/${code}/events`, bearer(ADMIN_KEY));
    open.push(client);
    assert.equal(client.status, 200, client.body);
    return client;
  };
  const members = (): Promise<string[]> => pair.redis.zrange(pair.keys.liveWatched, 0, -1);
  const feedOf = (instance: InstancePair['a']): RedisLiveClickFeed => {
    const feed = instance.app.runtime.liveClicks;
    assert.ok(feed instanceof RedisLiveClickFeed);
    return feed;
  };

  test('nobody watching: a writer publishes nothing', async () => {
    const feed = feedOf(pair.b);
    feed.publish([clickOf('live-x')]);
    await eventually(() => feed.stats.unwatched === 1, 'the click to be skipped');
    assert.equal(feed.stats.published, 0);
  });

  test('a click announced on instance B reaches a stream on instance A, exactly once, and only its link', async () => {
    const client = await connect(pair.a, 'live-x');
    await eventually(async () => (await members()).some((member) => member.endsWith(`:${linkIds.get('live-x')}`)), 'the watch to be registered');
    const writer = feedOf(pair.b);
    await eventually(() => writer.publishes(linkIds.get('live-x') ?? ''), 'the writer to learn of the watch');
    const clicks = [clickOf('live-x'), clickOf('not-watched'), clickOf('live-x', { country: 'FR' })];
    const published = writer.stats.published;
    writer.publish(clicks);
    await client.next((frame) => frame.id === clicks[2]?.id);
    assert.deepEqual(
      client.clicks().map((frame) => clickData(frame)),
      [clicks[0], clicks[2]].map((click) => (click === undefined ? null : publicLiveClick(toLiveClick(click)))),
    );
    await eventually(() => writer.stats.published === published + 1, 'one message for the watched link');
    client.close();
    await eventually(() => feedOf(pair.a).watched === 0, 'A to lose its subscriber');
    await eventually(async () => (await members()).length === 0, 'the watch to be removed from Redis');
  });

  test('two instances watching one link: each gets the click, and one leaving keeps the other watching', async () => {
    const onA = await connect(pair.a, 'live-x');
    const onB = await connect(pair.b, 'live-x');
    await eventually(async () => (await members()).length === 2, 'both watches');
    const writer = feedOf(pair.a);
    await eventually(() => writer.publishes(linkIds.get('live-x') ?? '') || writer.watched > 0, 'the writer to publish the link');
    const click = clickOf('live-x');
    writer.publish([click]);
    await onA.next((frame) => frame.id === click.id);
    await onB.next((frame) => frame.id === click.id);
    onB.close();
    await eventually(async () => (await members()).length === 1, 'B\'s watch alone to go');
    const later = clickOf('live-x');
    feedOf(pair.b).publish([later]);
    await onA.next((frame) => frame.id === later.id);
    onA.close();
    await eventually(async () => (await members()).length === 0, 'every watch to go');
  });
});

describe('event streams stay authorized, on every instance (Redis, PostgreSQL)', await sharedTierTestOptions(), () => {
  let pair: InstancePair;
  const open: SseClient[] = [];

  before(async () => {
    pair = await startInstancePair({ runtime: { eventStreams: { heartbeatMs: 60_000, maxStreamsPerKey: 2 } } });
  });
  after(async () => {
    for (const client of open) client.close();
    await pair.close();
  });

  /** A member key made through instance A: its secret and its id. */
  const member = async (name: string): Promise<{ key: string; id: string }> => {
    const response = await pair.a.app.request({ method: 'POST', url: '/api/v1/keys', body: { name, role: 'member' } });
    assert.equal(response.statusCode, 201, response.body);
    return response.json<{ key: string; id: string }>();
  };
  const link = async (instance: InstancePair['a'], alias: string, key: string): Promise<string> => {
    const response = await instance.app.request({ method: 'POST', url: '/api/v1/links', key, body: { url: `https://example.com/${alias}`, alias } });
    assert.equal(response.statusCode, 201, response.body);
    return linkIdOfCode(instance.app, alias);
  };
  const stream = async (instance: InstancePair['a'], code: string, key: string): Promise<SseClient> => {
    const client = await SseClient.connect(`${instance.url}/api/v1/links/${code}/events`, bearer(key));
    open.push(client);
    assert.equal(client.status, 200, client.body);
    await client.next((frame) => frame.comments.includes('connected'));
    return client;
  };
  /** Resolves when the server has ended the stream; fails past the promised 5 s. */
  const endsWithin5s = async (client: SseClient, what: string): Promise<void> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: the stream was still open after 5 s`)), 5000);
    });
    try {
      await Promise.race([client.ended, late]);
    } finally {
      clearTimeout(timer);
    }
    assert.match(client.body, /access to this link ended/);
  };

  test("a stream on B ends within 5 s of its key being revoked through A", async () => {
    const owner = await member('revoked member');
    await link(pair.a, 'auth-revoke', owner.key);
    const client = await stream(pair.b, 'auth-revoke', owner.key);
    const revoked = await pair.a.app.request({ method: 'DELETE', url: `/api/v1/keys/${owner.id}` });
    assert.equal(revoked.statusCode, 204, revoked.body);
    await endsWithin5s(client, 'revoked key');
    await eventually(() => feedOf(pair.b).watched === 0, 'B to drop the watch');
  });

  test('a deleted link ends its streams on both instances; a later link with its code reaches only its own streams', async () => {
    const first = await member('first owner');
    const second = await member('second owner');
    const oldId = await link(pair.a, 'auth-reuse', first.key);
    const ownerStream = await stream(pair.a, 'auth-reuse', first.key);
    const adminStream = await stream(pair.b, 'auth-reuse', ADMIN_KEY);
    const deleted = await pair.b.app.request({ method: 'DELETE', url: '/api/v1/links/auth-reuse', key: first.key });
    assert.equal(deleted.statusCode, 204, deleted.body);
    await Promise.all([endsWithin5s(ownerStream, 'owner'), endsWithin5s(adminStream, 'admin')]);

    const newId = await link(pair.b, 'auth-reuse', second.key);
    assert.notEqual(newId, oldId);
    const newStream = await stream(pair.a, 'auth-reuse', second.key);
    // A late click of the deleted link and a click of the new one, announced from B.
    const late = makeClick({ code: 'auth-reuse', linkId: oldId, at: new Date(), referrerHost: 'old.example' });
    const fresh = makeClick({ code: 'auth-reuse', linkId: newId, at: new Date(), referrerHost: 'new.example' });
    const writer = feedOf(pair.b);
    // A writer follows the watches from its first announcement on.
    writer.publish([makeClick({ code: 'nobody-watches', at: new Date() })]);
    await eventually(() => writer.publishes(newId), 'B to learn of the new watch');
    writer.publish([late, fresh]);
    await newStream.next((frame) => frame.id === fresh.id);
    assert.deepEqual(newStream.clicks().map((frame) => frame.id), [fresh.id]);
    for (const ended of [ownerStream, adminStream]) assert.ok(!ended.body.includes(fresh.id) && !ended.body.includes(late.id));
  });

  test('a link given to another owner ends the old owner\'s stream', async () => {
    const owner = await member('old owner');
    const other = await member('new owner');
    const id = await link(pair.a, 'auth-moved', owner.key);
    const client = await stream(pair.b, 'auth-moved', owner.key);
    // No API moves a link between keys; an operator can, in the store.
    await pair.sql('UPDATE links SET owner_key_id = $1 WHERE id = $2', [other.id, id]);
    await endsWithin5s(client, 'moved link');
  });

  test('a key holds at most EVENTS_MAX_STREAMS_PER_KEY streams per instance (429); a closed stream frees its slot', async () => {
    const owner = await member('greedy member');
    await link(pair.a, 'auth-limit', owner.key);
    const first = await stream(pair.a, 'auth-limit', owner.key);
    await stream(pair.a, 'auth-limit', owner.key);
    const refused = await SseClient.connect(`${pair.a.url}/api/v1/links/auth-limit/events`, bearer(owner.key));
    assert.equal(refused.status, 429);
    assert.match(String(refused.headers['content-type']), /^application\/problem\+json/);
    await refused.ended;
    assert.equal((JSON.parse(refused.body) as { code: string }).code, 'too_many_streams_for_key');
    assert.equal(refused.headers['retry-after'], '5');
    // Another key is not held back by this one.
    await stream(pair.a, 'auth-limit', ADMIN_KEY);
    first.close();
    await eventually(async () => {
      const again = await SseClient.connect(`${pair.a.url}/api/v1/links/auth-limit/events`, bearer(owner.key));
      open.push(again);
      return again.status === 200;
    }, 'the closed stream\'s slot to be free');
  });

  const feedOf = (instance: InstancePair['a']): RedisLiveClickFeed => {
    const feed = instance.app.runtime.liveClicks;
    assert.ok(feed instanceof RedisLiveClickFeed);
    return feed;
  };
});
