import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RestartPolicy } from '../../src/server/restart-policy.js';

const options = { stableAfterMs: 10_000, baseDelayMs: 250, maxDelayMs: 8_000, maxQuickFailures: 5 };

describe('RestartPolicy', () => {
  test('a worker that ran well is restarted after the base delay, however often', () => {
    const policy = new RestartPolicy(options);
    for (let i = 0; i < 20; i += 1) assert.deepEqual(policy.decide(0, 60_000), { restart: true, delayMs: 250 });
  });

  test('deaths at once double the wait, then the primary gives up', () => {
    const policy = new RestartPolicy(options);
    const delays = [1, 2, 3, 4].map(() => policy.decide(0, 500));
    assert.deepEqual(delays, [250, 500, 1000, 2000].map((delayMs) => ({ restart: true, delayMs })));
    assert.deepEqual(policy.decide(0, 500), { restart: false, quickFailures: 5 });
  });

  test('a run that lasted resets the count', () => {
    const policy = new RestartPolicy(options);
    for (let i = 0; i < 4; i += 1) assert.equal(policy.decide(0, 100).restart, true);
    assert.deepEqual(policy.decide(0, 10_000), { restart: true, delayMs: 250 });
    assert.deepEqual(policy.decide(0, 100), { restart: true, delayMs: 250 });
  });

  test('each slot counts its own failures', () => {
    const policy = new RestartPolicy(options);
    for (let i = 0; i < 4; i += 1) policy.decide(0, 100);
    assert.deepEqual(policy.decide(1, 100), { restart: true, delayMs: 250 });
    assert.equal(policy.decide(0, 100).restart, false);
  });

  test('the wait never exceeds the maximum', () => {
    const policy = new RestartPolicy({ ...options, maxDelayMs: 600, maxQuickFailures: 100 });
    const delays = Array.from({ length: 10 }, () => policy.decide(0, 0)).map((d) => (d.restart ? d.delayMs : -1));
    assert.deepEqual(delays, [250, 500, 600, 600, 600, 600, 600, 600, 600, 600]);
  });
});
