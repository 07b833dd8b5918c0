import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CircuitBreaker, CircuitOpenError, type BreakerState } from '../../src/redis/circuit-breaker.js';

function breaker(threshold = 3, cooldownMs = 1000) {
  const clock = { now: 0 };
  const states: BreakerState[] = [];
  const instance = new CircuitBreaker({ name: 'redis', threshold, cooldownMs, now: () => clock.now, onStateChange: (s) => states.push(s) });
  return { instance, clock, states };
}

const fail = (): Promise<never> => Promise.reject(new Error('down'));
const ok = (): Promise<string> => Promise.resolve('ok');

describe('CircuitBreaker', () => {
  test('stays closed below the threshold, and a success resets the count', async () => {
    const { instance } = breaker(3);
    await assert.rejects(instance.run(fail));
    await assert.rejects(instance.run(fail));
    assert.equal(await instance.run(ok), 'ok');
    await assert.rejects(instance.run(fail));
    await assert.rejects(instance.run(fail));
    assert.equal(instance.state, 'closed');
  });

  test('opens after threshold consecutive failures and then fails at once without calling', async () => {
    const { instance, states } = breaker(3);
    for (let i = 0; i < 3; i += 1) await assert.rejects(instance.run(fail), /down/);
    assert.equal(instance.state, 'open');
    assert.deepEqual(states, ['open']);
    let called = false;
    await assert.rejects(
      instance.run(() => {
        called = true;
        return ok();
      }),
      CircuitOpenError,
    );
    assert.equal(called, false);
    assert.equal(instance.allows, false);
  });

  test('after the cooldown one probe goes through; success closes the circuit', async () => {
    const { instance, clock, states } = breaker(1, 1000);
    await assert.rejects(instance.run(fail));
    clock.now = 999;
    assert.equal(instance.allows, false);
    clock.now = 1000;
    assert.equal(instance.allows, true);
    assert.equal(await instance.run(ok), 'ok');
    assert.equal(instance.state, 'closed');
    assert.deepEqual(states, ['open', 'half-open', 'closed']);
  });

  test('only one probe at a time while half-open', async () => {
    const { instance, clock } = breaker(1, 10);
    await assert.rejects(instance.run(fail));
    clock.now = 10;
    let release!: () => void;
    const probe = instance.run(() => new Promise<void>((resolve) => (release = resolve)));
    assert.equal(instance.state, 'half-open');
    await assert.rejects(instance.run(ok), CircuitOpenError);
    release();
    await probe;
    assert.equal(instance.state, 'closed');
  });

  test('a failed probe re-opens for another full cooldown', async () => {
    const { instance, clock } = breaker(2, 100);
    await assert.rejects(instance.run(fail));
    await assert.rejects(instance.run(fail));
    clock.now = 100;
    await assert.rejects(instance.run(fail), /down/);
    assert.equal(instance.state, 'open');
    clock.now = 199;
    assert.equal(instance.allows, false);
    clock.now = 200;
    assert.equal(instance.allows, true);
  });

  test('outside failure signals count like failed calls', () => {
    const { instance } = breaker(2);
    instance.failed();
    assert.equal(instance.state, 'closed');
    instance.failed();
    assert.equal(instance.state, 'open');
  });
});
