import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LocalInvalidationBus, type Invalidation } from '../../src/cache/invalidation.js';
import { LinkCache } from '../../src/cache/link-cache.js';
import type { RemoteEntry, RemoteLinkTier } from '../../src/cache/redis-link-tier.js';
import type { Link } from '../../src/links/link.js';
import { makeLink } from '../helpers/link-fixture.js';

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A shared tier in memory that records fills; `down` makes every call fail. */
function fakeRemote(ttlMs = 10_000) {
  const entries = new Map<string, { link: Link | null; ttlMs: number; generation: string }>();
  const fills: { code: string; link: Link | null; generation: string }[] = [];
  const state = { down: false, lookups: 0 };
  const remote: RemoteLinkTier = {
    ttlMs,
    lookup(code): Promise<RemoteEntry> {
      state.lookups += 1;
      if (state.down) return Promise.reject(new Error('redis down'));
      const entry = entries.get(code);
      return Promise.resolve(entry === undefined ? { link: undefined, ttlMs: 0, generation: '7' } : { ...entry });
    },
    fill(code, link, generation) {
      if (state.down) return Promise.reject(new Error('redis down'));
      fills.push({ code, link, generation });
      return Promise.resolve();
    },
  };
  return { remote, entries, fills, state };
}

function counter(links: Record<string, Link>) {
  const calls: string[] = [];
  return { calls, load: (code: string) => (calls.push(code), Promise.resolve(links[code] ?? null)) };
}

describe('LinkCache with a shared tier', () => {
  test('a shared hit is kept locally and never reaches the store', async () => {
    const { remote, entries } = fakeRemote();
    entries.set('abc', { link: makeLink({ code: 'abc' }), ttlMs: 9000, generation: '1' });
    const store = counter({});
    const cache = new LinkCache({ load: store.load, remote, maxEntries: 10, ttlMs: 1000 });
    assert.equal((await cache.get('abc'))?.code, 'abc');
    assert.equal(cache.peek('abc')?.code, 'abc');
    assert.deepEqual(store.calls, []);
  });

  test('a shared miss loads from the store and fills with the generation seen before the load', async () => {
    const { remote, fills } = fakeRemote();
    const store = counter({ abc: makeLink({ code: 'abc' }) });
    const cache = new LinkCache({ load: store.load, remote, maxEntries: 10, ttlMs: 1000 });
    await cache.get('abc');
    await cache.get('ghost');
    await settle();
    assert.deepEqual(store.calls, ['abc', 'ghost']);
    assert.deepEqual(fills.map((f) => [f.code, f.link?.code ?? null, f.generation]), [['abc', 'abc', '7'], ['ghost', null, '7']]);
  });

  test('a shared entry near its end is refreshed from the store in the background, once', async () => {
    const { remote, entries, fills } = fakeRemote(10_000);
    entries.set('hot', { link: makeLink({ code: 'hot', url: 'https://old.example/' }), ttlMs: 500, generation: '3' });
    const store = counter({ hot: makeLink({ code: 'hot', url: 'https://new.example/' }) });
    const cache = new LinkCache({ load: store.load, remote, maxEntries: 10, ttlMs: 1000 });
    assert.equal((await cache.get('hot'))?.url, 'https://old.example/', 'readers are not kept waiting');
    await settle();
    assert.deepEqual(store.calls, ['hot']);
    assert.deepEqual(fills.map((f) => [f.generation, f.link?.url]), [['3', 'https://new.example/']]);
  });

  test('Redis down: the store answers and nothing is filled', async () => {
    const { remote, fills, state } = fakeRemote();
    state.down = true;
    const errors: unknown[] = [];
    const store = counter({ abc: makeLink({ code: 'abc' }) });
    const cache = new LinkCache({ load: store.load, remote, maxEntries: 10, ttlMs: 1000, onRemoteError: (e) => errors.push(e) });
    assert.equal((await cache.get('abc'))?.code, 'abc');
    await settle();
    assert.equal(fills.length, 0);
    assert.equal(errors.length, 1);
  });

  test('1000 concurrent misses: one shared lookup and one store load', async () => {
    const { remote, state } = fakeRemote();
    const store = counter({ hot: makeLink({ code: 'hot' }) });
    const cache = new LinkCache({ load: store.load, remote, maxEntries: 10, ttlMs: 1000 });
    const results = await Promise.all(Array.from({ length: 1000 }, () => cache.get('hot')));
    assert.ok(results.every((link) => link?.code === 'hot'));
    assert.equal(state.lookups, 1);
    assert.deepEqual(store.calls, ['hot']);
  });
});

describe('LinkCache refresh-ahead', () => {
  test('a hit in the last fifth of the entry life refreshes it in the background, and only once', async () => {
    const clock = { now: 0 };
    const links: Record<string, Link> = { hot: makeLink({ code: 'hot', url: 'https://v1.example/' }) };
    const store = counter(links);
    const cache = new LinkCache({ load: store.load, maxEntries: 10, ttlMs: 1000, now: () => clock.now });
    await cache.get('hot');
    clock.now = 799;
    cache.peek('hot');
    assert.equal(store.calls.length, 1, 'not yet in the refresh window');
    links.hot = makeLink({ code: 'hot', url: 'https://v2.example/' });
    clock.now = 800;
    assert.equal(cache.peek('hot')?.url, 'https://v1.example/');
    cache.peek('hot');
    assert.equal(store.calls.length, 2, 'one refresh however many hits');
    await settle();
    clock.now = 1500;
    assert.equal(cache.peek('hot')?.url, 'https://v2.example/', 'the entry was renewed before it expired');
    assert.equal(cache.stats.refreshes, 1);
  });
});

describe('LinkCache invalidation', () => {
  test('invalidate drops locally and publishes; drop only drops', async () => {
    const bus = new LocalInvalidationBus();
    const seen: Invalidation[] = [];
    bus.onMessage((message) => seen.push(message));
    const store = counter({ a: makeLink({ code: 'a' }) });
    const cache = new LinkCache({ load: store.load, bus, maxEntries: 10, ttlMs: 60_000 });
    await cache.get('a');
    cache.invalidate('a', '0/16B3748');
    assert.equal(cache.peek('a'), undefined);
    assert.deepEqual(seen, [{ code: 'a', lsn: '0/16B3748' }]);
    await cache.get('a');
    cache.drop('a');
    assert.equal(cache.peek('a'), undefined);
    assert.equal(seen.length, 1);
  });
});
