import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryRateLimiter } from '../../src/ratelimit/memory-rate-limiter.js';
import { NotFoundThrottle, type ThrottleBroadcast } from '../../src/ratelimit/not-found-throttle.js';
import type { RateLimiter } from '../../src/ratelimit/rate-limiter.js';

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('NotFoundThrottle', () => {
  test('a client is refused only once it has drawn more unknown codes than its budget', async () => {
    const clock = { now: 60_000 * 100 };
    const throttle = new NotFoundThrottle(new MemoryRateLimiter(() => clock.now), 3, () => clock.now);
    for (let i = 0; i < 3; i += 1) {
      throttle.notFound('198.51.100.7');
      await settle();
      assert.equal(throttle.retryAfter('198.51.100.7'), 0, `404 number ${i + 1} is within budget`);
    }
    throttle.notFound('198.51.100.7');
    await settle();
    assert.equal(throttle.retryAfter('198.51.100.7'), 60);
    assert.equal(throttle.retryAfter('198.51.100.8'), 0, 'other clients are not affected');
  });

  test('the block ends with the window', async () => {
    const clock = { now: 60_000 * 100 + 30_000 };
    const throttle = new NotFoundThrottle(new MemoryRateLimiter(() => clock.now), 1, () => clock.now);
    throttle.notFound('2001:db8::1');
    throttle.notFound('2001:db8::1');
    await settle();
    assert.equal(throttle.retryAfter('2001:db8::1'), 30);
    clock.now += 29_999;
    assert.equal(throttle.retryAfter('2001:db8::1'), 1);
    clock.now += 1;
    assert.equal(throttle.retryAfter('2001:db8::1'), 0);
  });

  test('a failing limiter never blocks and never throws', async () => {
    const broken: RateLimiter = { consume: () => Promise.reject(new Error('down')) };
    const throttle = new NotFoundThrottle(broken, 1);
    for (let i = 0; i < 10; i += 1) throttle.notFound('192.0.2.1');
    await settle();
    assert.equal(throttle.retryAfter('192.0.2.1'), 0);
  });

  test('a block is announced, and an announced block is honoured', async () => {
    const clock = { now: 60_000 * 100 };
    const handlers: ((ip: string, untilMs: number) => void)[] = [];
    const published: [string, number][] = [];
    const broadcast: ThrottleBroadcast = {
      publish: (ip, untilMs) => {
        published.push([ip, untilMs]);
        for (const handler of handlers) handler(ip, untilMs);
      },
      onBlock: (handler) => handlers.push(handler),
    };
    const limiter = new MemoryRateLimiter(() => clock.now);
    const here = new NotFoundThrottle(limiter, 1, () => clock.now, broadcast);
    const there = new NotFoundThrottle(new MemoryRateLimiter(() => clock.now), 1, () => clock.now, broadcast);
    here.notFound('203.0.113.9');
    here.notFound('203.0.113.9');
    await settle();
    assert.deepEqual(published, [['203.0.113.9', clock.now + 60_000]]);
    assert.equal(there.retryAfter('203.0.113.9'), 60, 'the other instance refuses the client without counting it');
  });
});
