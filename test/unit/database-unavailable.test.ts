import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CircuitBreaker } from '../../src/redis/circuit-breaker.js';
import { DatabaseUnavailableError, isConnectionFailure } from '../../src/storage/database-unavailable.js';

const withCode = (code: string, message = 'x'): Error => Object.assign(new Error(message), { code });

describe('isConnectionFailure', () => {
  test('a server going, gone or not taking work', () => {
    for (const code of ['08006', '08001', '57P01', '57P02', '57P03', '53300', '57014', '25006', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT']) {
      assert.equal(isConnectionFailure(withCode(code)), true, code);
    }
    assert.equal(isConnectionFailure(new Error('Connection terminated unexpectedly')), true);
    assert.equal(isConnectionFailure(new Error('timeout exceeded when trying to connect')), true);
    assert.equal(isConnectionFailure(new Error('Query read timeout')), true);
    assert.equal(isConnectionFailure(new AggregateError([withCode('ECONNREFUSED')])), true);
    assert.equal(isConnectionFailure(new DatabaseUnavailableError(1)), true);
  });

  test('the server answering no is not an outage', () => {
    for (const code of ['23505', '22P02', '40001', '40P01', '42P01']) assert.equal(isConnectionFailure(withCode(code)), false, code);
    assert.equal(isConnectionFailure(new Error('alias taken')), false);
    assert.equal(isConnectionFailure(null), false);
    assert.equal(isConnectionFailure('Connection terminated'), false);
  });
});

describe('CircuitBreaker with isFailure', () => {
  test('only failures that say the dependency is down open the circuit', async () => {
    const breaker = new CircuitBreaker({ name: 'database', threshold: 2, cooldownMs: 1000, isFailure: isConnectionFailure });
    const fail = (error: Error) => breaker.run(() => Promise.reject(error)).catch(() => undefined);
    await fail(withCode('ECONNREFUSED'));
    await fail(withCode('23505'));
    await fail(withCode('ECONNREFUSED'));
    assert.equal(breaker.state, 'closed', 'an answer in between resets the count');
    await fail(withCode('ECONNREFUSED'));
    assert.equal(breaker.state, 'open');
  });
});
