import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LinkCache } from '../../src/cache/link-cache.js';
import type { Link } from '../../src/links/link.js';
import { makeLink as makeFixture } from '../helpers/link-fixture.js';

function makeLink(code: string, url = `https://example.com/${code}`): Link {
  return makeFixture({ id: String(code.length), code, url });
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A fetch backed by a map, counting its calls per code. */
function fakeStore(initial: Record<string, Link> = {}) {
  const links = new Map(Object.entries(initial));
  const calls: string[] = [];
  const fetch = (code: string): Promise<Link | null> => {
    calls.push(code);
    return Promise.resolve(links.get(code) ?? null);
  };
  return { links, calls, fetch };
}

function clock(start = 1_000_000) {
  const state = { now: start };
  return { state, now: () => state.now };
}

describe('LinkCache: hits and misses', () => {
  test('the first get fetches, the second is a hit with no fetch', async () => {
    const store = fakeStore({ abc: makeLink('abc') });
    const cache = new LinkCache({ load: store.fetch, refreshAhead: 0, maxEntries: 10, ttlMs: 1000 });
    assert.equal((await cache.get('abc'))?.code, 'abc');
    assert.deepEqual({ hits: cache.stats.hits, misses: cache.stats.misses }, { hits: 0, misses: 1 });
    assert.equal((await cache.get('abc'))?.url, 'https://example.com/abc');
    assert.deepEqual(store.calls, ['abc']);
    assert.deepEqual({ hits: cache.stats.hits, misses: cache.stats.misses }, { hits: 1, misses: 1 });
    assert.equal(cache.size, 1);
  });

  test('peek never fetches: undefined on a miss, the link on a hit', async () => {
    const store = fakeStore({ abc: makeLink('abc') });
    const cache = new LinkCache({ load: store.fetch, refreshAhead: 0, maxEntries: 10, ttlMs: 1000 });
    assert.equal(cache.peek('abc'), undefined);
    assert.deepEqual(store.calls, []);
    await cache.get('abc');
    assert.equal(cache.peek('abc')?.code, 'abc');
    assert.deepEqual(store.calls, ['abc']);
  });

  test('codes are cached independently', async () => {
    const store = fakeStore({ a: makeLink('a'), b: makeLink('b') });
    const cache = new LinkCache({ load: store.fetch, refreshAhead: 0, maxEntries: 10, ttlMs: 1000 });
    assert.equal((await cache.get('a'))?.code, 'a');
    assert.equal((await cache.get('b'))?.code, 'b');
    assert.equal((await cache.get('a'))?.code, 'a');
    assert.deepEqual(store.calls, ['a', 'b']);
  });

  test('a failed fetch is not cached and the next get tries again', async () => {
    let fail = true;
    const calls: string[] = [];
    const cache = new LinkCache({
      refreshAhead: 0,
      load: (code: string) => {
        calls.push(code);
        return fail ? Promise.reject(new Error('store down')) : Promise.resolve(makeLink(code));
      },
      maxEntries: 10, ttlMs: 1000,
    });
    await assert.rejects(cache.get('abc'), /store down/);
    assert.equal(cache.size, 0);
    fail = false;
    assert.equal((await cache.get('abc'))?.code, 'abc');
    assert.deepEqual(calls, ['abc', 'abc']);
  });
});

describe('LinkCache: TTL', () => {
  test('an entry is served until ttlMs has passed, then fetched again', async () => {
    const time = clock();
    const store = fakeStore({ abc: makeLink('abc') });
    const cache = new LinkCache({ load: store.fetch, refreshAhead: 0, maxEntries: 10, ttlMs: 1000, now: time.now });
    await cache.get('abc');
    time.state.now += 999;
    await cache.get('abc');
    assert.equal(store.calls.length, 1, 'still fresh at ttl - 1 ms');
    time.state.now += 1;
    assert.equal(cache.peek('abc'), undefined, 'expired exactly at ttl');
    await cache.get('abc');
    assert.equal(store.calls.length, 2);
    assert.deepEqual({ hits: cache.stats.hits, misses: cache.stats.misses }, { hits: 1, misses: 2 });
  });

  test('a re-fetched entry gets a new TTL and new content', async () => {
    const time = clock();
    const store = fakeStore({ abc: makeLink('abc', 'https://old.example/') });
    const cache = new LinkCache({ load: store.fetch, refreshAhead: 0, maxEntries: 10, ttlMs: 1000, now: time.now });
    await cache.get('abc');
    store.links.set('abc', makeLink('abc', 'https://new.example/'));
    assert.equal((await cache.get('abc'))?.url, 'https://old.example/', 'stale within TTL, by design');
    time.state.now += 1000;
    assert.equal((await cache.get('abc'))?.url, 'https://new.example/');
    time.state.now += 999;
    assert.equal(cache.peek('abc')?.url, 'https://new.example/');
  });
});

describe('LinkCache: LRU bound', () => {
  test('never holds more than maxEntries; evicts the least recently used', async () => {
    const store = fakeStore({ a: makeLink('a'), b: makeLink('b'), c: makeLink('c'), d: makeLink('d') });
    const cache = new LinkCache({ load: store.fetch, refreshAhead: 0, maxEntries: 3, ttlMs: 60_000 });
    await cache.get('a');
    await cache.get('b');
    await cache.get('c');
    assert.equal(cache.size, 3);
    // Touch `a`, so `b` becomes the least recently used.
    await cache.get('a');
    await cache.get('d');
    assert.equal(cache.size, 3);
    assert.equal(cache.peek('b'), undefined, 'b evicted');
    assert.equal(cache.peek('a')?.code, 'a');
    assert.equal(cache.peek('c')?.code, 'c');
    assert.equal(cache.peek('d')?.code, 'd');
  });

  test('a peek counts as a use for LRU order', async () => {
    const store = fakeStore({ a: makeLink('a'), b: makeLink('b'), c: makeLink('c') });
    const cache = new LinkCache({ load: store.fetch, refreshAhead: 0, maxEntries: 2, ttlMs: 60_000 });
    await cache.get('a');
    await cache.get('b');
    cache.peek('a');
    await cache.get('c');
    assert.equal(cache.peek('b'), undefined);
    assert.equal(cache.peek('a')?.code, 'a');
  });

  test('many codes through a small cache stay bounded', async () => {
    const store = fakeStore();
    const cache = new LinkCache({ load: store.fetch, refreshAhead: 0, maxEntries: 50, ttlMs: 60_000 });
    for (let i = 0; i < 1000; i += 1) await cache.get(`code${i}`);
    assert.equal(cache.size, 50);
    assert.notEqual(cache.peek('code999'), undefined);
    assert.equal(cache.peek('code949'), undefined);
  });

  test('maxEntries 0 disables caching', async () => {
    const store = fakeStore({ a: makeLink('a') });
    const cache = new LinkCache({ load: store.fetch, refreshAhead: 0, maxEntries: 0, ttlMs: 60_000 });
    await cache.get('a');
    await cache.get('a');
    assert.equal(cache.size, 0);
    assert.deepEqual(store.calls, ['a', 'a']);
  });
});

describe('LinkCache: negative entries', () => {
  test('an unknown code is cached as null (peek gives null, not undefined)', async () => {
    const store = fakeStore();
    const cache = new LinkCache({ load: store.fetch, refreshAhead: 0, maxEntries: 10, ttlMs: 1000 });
    assert.equal(await cache.get('nope'), null);
    assert.equal(await cache.get('nope'), null);
    assert.equal(cache.peek('nope'), null);
    assert.deepEqual(store.calls, ['nope']);
    assert.deepEqual({ hits: cache.stats.hits, misses: cache.stats.misses }, { hits: 2, misses: 1 });
  });

  test('a negative entry expires with the TTL too', async () => {
    const time = clock();
    const store = fakeStore();
    const cache = new LinkCache({ load: store.fetch, refreshAhead: 0, maxEntries: 10, ttlMs: 500, now: time.now });
    await cache.get('nope');
    store.links.set('nope', makeLink('nope'));
    time.state.now += 500;
    assert.equal((await cache.get('nope'))?.code, 'nope');
  });

  test('invalidate removes a negative entry at once', async () => {
    const store = fakeStore();
    const cache = new LinkCache({ load: store.fetch, refreshAhead: 0, maxEntries: 10, ttlMs: 60_000 });
    await cache.get('fresh');
    store.links.set('fresh', makeLink('fresh'));
    cache.invalidate('fresh');
    assert.equal(cache.peek('fresh'), undefined);
    assert.equal((await cache.get('fresh'))?.code, 'fresh');
  });
});

describe('LinkCache: one fetch per key at a time', () => {
  test('1000 concurrent gets of one missing key cost exactly one fetch', async () => {
    const pending = deferred<Link | null>();
    let fetches = 0;
    const cache = new LinkCache({
      refreshAhead: 0,
      load: () => {
        fetches += 1;
        return pending.promise;
      },
      maxEntries: 10, ttlMs: 60_000,
    });
    const gets = Array.from({ length: 1000 }, () => cache.get('hot'));
    assert.equal(fetches, 1);
    const link = makeLink('hot');
    pending.resolve(link);
    const results = await Promise.all(gets);
    assert.equal(fetches, 1);
    assert.ok(results.every((result) => result === link));
    assert.equal(cache.stats.misses, 1);
    assert.equal(cache.peek('hot'), link);
  });

  test('1000 concurrent gets of an unknown key: one fetch, all null', async () => {
    const store = fakeStore();
    const cache = new LinkCache({ load: store.fetch, refreshAhead: 0, maxEntries: 10, ttlMs: 60_000 });
    const results = await Promise.all(Array.from({ length: 1000 }, () => cache.get('ghost')));
    assert.ok(results.every((result) => result === null));
    assert.deepEqual(store.calls, ['ghost']);
  });

  test('a failed shared fetch rejects every waiter, and is retried afterwards', async () => {
    const pending = deferred<Link | null>();
    let fetches = 0;
    const cache = new LinkCache({
      refreshAhead: 0,
      load: () => {
        fetches += 1;
        return fetches === 1 ? pending.promise : Promise.resolve(makeLink('x'));
      },
      maxEntries: 10, ttlMs: 60_000,
    });
    const gets = Array.from({ length: 10 }, () => cache.get('x'));
    pending.reject(new Error('boom'));
    const settled = await Promise.allSettled(gets);
    assert.ok(settled.every((result) => result.status === 'rejected'));
    assert.equal((await cache.get('x'))?.code, 'x');
    assert.equal(fetches, 2);
  });
});

describe('LinkCache: invalidation races', () => {
  test('invalidate during an in-flight fetch: the stale answer is not stored', async () => {
    const first = deferred<Link | null>();
    const fetches: Deferred<Link | null>[] = [first];
    let calls = 0;
    const cache = new LinkCache({
      refreshAhead: 0,
      load: () => {
        calls += 1;
        const next = fetches[calls - 1];
        return next === undefined ? Promise.resolve(makeLink('x', 'https://third.example/')) : next.promise;
      },
      maxEntries: 10, ttlMs: 60_000,
    });
    const staleGet = cache.get('x');
    cache.invalidate('x');
    first.resolve(makeLink('x', 'https://stale.example/'));
    assert.equal((await staleGet)?.url, 'https://stale.example/', 'the caller that asked before still gets an answer');
    assert.equal(cache.peek('x'), undefined, 'stale answer must not be cached');
    assert.equal((await cache.get('x'))?.url, 'https://third.example/');
    assert.equal(calls, 2);
  });

  test('a fetch started after the invalidation wins even when the stale one finishes last', async () => {
    const stale = deferred<Link | null>();
    const fresh = deferred<Link | null>();
    const queue = [stale, fresh];
    let calls = 0;
    const cache = new LinkCache({
      refreshAhead: 0,
      load: () => {
        const next = queue[calls];
        calls += 1;
        assert.ok(next !== undefined, 'no more than two fetches');
        return next.promise;
      },
      maxEntries: 10, ttlMs: 60_000,
    });
    const before = cache.get('x');
    cache.invalidate('x');
    const afterInvalidate = cache.get('x');
    assert.equal(calls, 2, 'the invalidation dropped the in-flight fetch, so a new one starts');
    fresh.resolve(makeLink('x', 'https://fresh.example/'));
    assert.equal((await afterInvalidate)?.url, 'https://fresh.example/');
    stale.resolve(makeLink('x', 'https://stale.example/'));
    await before;
    assert.equal(cache.peek('x')?.url, 'https://fresh.example/');
  });

  test('an in-flight negative answer is not stored after the link was created', async () => {
    const pending = deferred<Link | null>();
    const cache = new LinkCache({ load: () => pending.promise, refreshAhead: 0, maxEntries: 10, ttlMs: 60_000 });
    const lookup = cache.get('new');
    // LinkService.create invalidates the code once the row exists.
    cache.invalidate('new');
    pending.resolve(null);
    assert.equal(await lookup, null);
    assert.equal(cache.peek('new'), undefined, 'a negative entry would hide the new link for a whole TTL');
  });

  test('clear() empties the cache and discards in-flight answers', async () => {
    const pending = deferred<Link | null>();
    const store = fakeStore({ a: makeLink('a') });
    let first = true;
    const cache = new LinkCache({
      refreshAhead: 0,
      load: (code: string) => {
        if (first) {
          first = false;
          return pending.promise;
        }
        return store.fetch(code);
      },
      maxEntries: 10, ttlMs: 60_000,
    });
    const inflight = cache.get('b');
    await cache.get('a');
    cache.clear();
    assert.equal(cache.size, 0);
    pending.resolve(makeLink('b'));
    await inflight;
    assert.equal(cache.peek('b'), undefined);
    assert.equal(cache.size, 0);
  });
});
