import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryRateLimiter } from '../../src/ratelimit/memory-rate-limiter.js';
import { RATE_LIMIT_WINDOW_MS } from '../../src/ratelimit/rate-limiter.js';

/** A settable clock, starting at the beginning of a window. */
function clock(start = 1_700_000_040_000) {
  assert.equal(start % RATE_LIMIT_WINDOW_MS, 0);
  const state = { now: start };
  return { state, now: () => state.now };
}

describe('MemoryRateLimiter', () => {
  test('the window is one minute', () => {
    assert.equal(RATE_LIMIT_WINDOW_MS, 60_000);
  });

  test('allows up to the limit, then refuses; remaining counts down to 0', async () => {
    const time = clock();
    const limiter = new MemoryRateLimiter(time.now);
    for (let i = 1; i <= 5; i += 1) {
      const verdict = await limiter.consume('key:a', 5);
      assert.equal(verdict.allowed, true, `request ${i}`);
      assert.equal(verdict.limit, 5);
      assert.equal(verdict.remaining, 5 - i);
    }
    for (let i = 0; i < 3; i += 1) {
      const verdict = await limiter.consume('key:a', 5);
      assert.equal(verdict.allowed, false);
      assert.equal(verdict.remaining, 0);
      assert.equal(verdict.limit, 5);
    }
  });

  test('a limit of 1 allows exactly one request per window', async () => {
    const limiter = new MemoryRateLimiter(clock().now);
    assert.equal((await limiter.consume('ip:1', 1)).allowed, true);
    assert.equal((await limiter.consume('ip:1', 1)).allowed, false);
  });

  test('buckets are independent', async () => {
    const limiter = new MemoryRateLimiter(clock().now);
    for (let i = 0; i < 3; i += 1) await limiter.consume('key:a', 3);
    assert.equal((await limiter.consume('key:a', 3)).allowed, false);
    const other = await limiter.consume('key:b', 3);
    assert.equal(other.allowed, true);
    assert.equal(other.remaining, 2);
    assert.equal((await limiter.consume('ip:10.0.0.1', 3)).remaining, 2);
    assert.equal((await limiter.consume('key:a', 3)).allowed, false, 'still refused');
  });

  test('concurrent consumes are all counted', async () => {
    const limiter = new MemoryRateLimiter(clock().now);
    const verdicts = await Promise.all(Array.from({ length: 100 }, () => limiter.consume('burst', 60)));
    assert.equal(verdicts.filter((verdict) => verdict.allowed).length, 60);
    assert.deepEqual(
      verdicts.map((verdict) => verdict.remaining).filter((remaining) => remaining > 0).sort((a, b) => b - a),
      Array.from({ length: 59 }, (_, i) => 59 - i),
    );
  });

  test('resetSeconds runs from 60 down to 1 across the window', async () => {
    const time = clock();
    const limiter = new MemoryRateLimiter(time.now);
    const start = time.state.now;
    const at = async (offset: number): Promise<number> => {
      time.state.now = start + offset;
      return (await limiter.consume('clock', 1_000_000)).resetSeconds;
    };
    assert.equal(await at(0), 60);
    assert.equal(await at(1), 60);
    assert.equal(await at(999), 60);
    assert.equal(await at(1000), 59);
    assert.equal(await at(30_500), 30);
    assert.equal(await at(58_999), 2);
    assert.equal(await at(59_000), 1);
    assert.equal(await at(59_999), 1);
    for (let offset = 0; offset < 60_000; offset += 137) {
      const reset = await at(offset);
      assert.ok(reset >= 1 && reset <= 60, `resetSeconds ${reset} at +${offset} ms`);
      // The window really does reset by then.
      assert.ok(start + offset + reset * 1000 >= start + RATE_LIMIT_WINDOW_MS);
    }
  });

  test('resetAtMs is the window end exactly, where resetSeconds rounds up', async () => {
    const time = clock();
    const limiter = new MemoryRateLimiter(time.now);
    const end = time.state.now + RATE_LIMIT_WINDOW_MS;
    for (const offset of [0, 1, 30_500, 59_999]) {
      time.state.now = end - RATE_LIMIT_WINDOW_MS + offset;
      assert.equal((await limiter.consume('exact', 1_000_000)).resetAtMs, end, `at +${offset} ms`);
    }
  });

  test('a new window resets the count', async () => {
    const time = clock();
    const limiter = new MemoryRateLimiter(time.now);
    for (let i = 0; i < 2; i += 1) await limiter.consume('key:a', 2);
    time.state.now += 59_999;
    assert.equal((await limiter.consume('key:a', 2)).allowed, false, 'same window, 1 ms before the end');
    time.state.now += 1;
    const fresh = await limiter.consume('key:a', 2);
    assert.equal(fresh.allowed, true);
    assert.equal(fresh.remaining, 1);
    assert.equal(fresh.resetSeconds, 60);
  });

  test('windows are fixed to the clock, not to the first request', async () => {
    const time = clock();
    const limiter = new MemoryRateLimiter(time.now);
    time.state.now += 50_000;
    assert.equal((await limiter.consume('key:a', 1)).resetSeconds, 10);
    assert.equal((await limiter.consume('key:a', 1)).allowed, false);
    time.state.now += 10_000;
    assert.equal((await limiter.consume('key:a', 1)).allowed, true, '10 s later is a new window');
  });

  test('a bucket idle across a window change starts fresh, while others keep counting', async () => {
    const time = clock();
    const limiter = new MemoryRateLimiter(time.now);
    await limiter.consume('idle', 1);
    time.state.now += 60_000;
    await limiter.consume('busy', 2);
    assert.equal((await limiter.consume('busy', 2)).allowed, true);
    assert.equal((await limiter.consume('busy', 2)).allowed, false);
    assert.equal((await limiter.consume('idle', 1)).allowed, true);
  });

  test('the default clock is Date.now', async () => {
    const limiter = new MemoryRateLimiter();
    const verdict = await limiter.consume('real', 10);
    assert.equal(verdict.allowed, true);
    const expected = Math.max(1, Math.ceil((RATE_LIMIT_WINDOW_MS - (Date.now() % RATE_LIMIT_WINDOW_MS)) / 1000));
    assert.ok(Math.abs(verdict.resetSeconds - expected) <= 1);
  });
});
