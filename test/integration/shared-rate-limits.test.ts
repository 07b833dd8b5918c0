/**
 * Rate limits shared through Redis by two Shunt instances: a client's budget is one budget,
 * whichever instance it reaches. Per API key, per client IP without a key (X-Forwarded-For
 * believed only from TRUSTED_PROXIES), and on the redirect path, the throttle of clients
 * that draw many unknown codes.
 *
 * Every scenario uses its own API key or client address, and the instances their own Redis
 * prefix, so no two scenarios (or runs) share a bucket. Peers are told apart by the source
 * address the client binds on the loopback network: 127.0.0.2 is the trusted proxy, other
 * 127.0.0.x addresses are untrusted peers.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RATE_LIMIT_WINDOW_MS } from '../../src/ratelimit/rate-limiter.js';
import { assertProblemBody, type Problem } from '../helpers/problems.js';
import { freshWindow, msLeftInWindow } from '../helpers/rate-limit-window.js';
import {
  createLink,
  send,
  sharedTierTestOptions,
  startInstancePair,
  type Answer,
  type Instance,
  type InstancePair,
  type SendOptions,
} from '../helpers/instance-pair.js';

const KEY_LIMIT = 10;
const IP_LIMIT = 6;
const NOT_FOUND_LIMIT = 5;
const PROXY = '127.0.0.2';
const LINKS = '/api/v1/links';
/** Needs no key, so it is counted per client IP. */
const OPEN_ENDPOINT = '/api/v1/openapi.json';
const THROTTLE_WAIT_MS = 5000;

function integerHeader(answer: Answer, name: string): number {
  const raw = answer.headers[name.toLowerCase()];
  assert.equal(typeof raw, 'string', `${name} missing on ${answer.status} ${answer.body.slice(0, 200)}`);
  assert.match(raw as string, /^\d+$/, `${name} is not an integer: ${String(raw)}`);
  return Number(raw);
}

/**
 * Seconds left in the current fixed window, by this process's clock (the instances share it).
 * Taken before a request is sent, it bounds what the answer may say, however slow the answer.
 */
function secondsLeftInWindow(): number {
  return Math.ceil(msLeftInWindow() / 1000);
}

/** The RateLimit-* headers, checked: integers, the limit, and a reset no later than the window's end. */
function rateLimitHeaders(answer: Answer, limit: number, leftBefore: number): { remaining: number; reset: number } {
  assert.equal(integerHeader(answer, 'RateLimit-Limit'), limit, `RateLimit-Limit on ${answer.status}`);
  const remaining = integerHeader(answer, 'RateLimit-Remaining');
  const reset = integerHeader(answer, 'RateLimit-Reset');
  assert.ok(remaining >= 0 && remaining <= limit, `RateLimit-Remaining ${remaining}`);
  // Windows are fixed minutes: the budget comes back when the minute ends, and Reset says when.
  assert.ok(reset >= 1 && reset <= leftBefore, `RateLimit-Reset ${reset} s, but the window ends in ${leftBefore} s`);
  return { remaining, reset };
}

function assertRateLimited(answer: Answer, limit: number, leftBefore: number): void {
  assert.equal(answer.status, 429, answer.body);
  assert.match(String(answer.headers['content-type']), /^application\/problem\+json/);
  assertProblemBody(JSON.parse(answer.body) as Problem, 429, 'rate_limited', answer.body);
  const { remaining, reset } = rateLimitHeaders(answer, limit, leftBefore);
  assert.equal(remaining, 0);
  const retryAfter = integerHeader(answer, 'Retry-After');
  assert.ok(Math.abs(retryAfter - reset) <= 1, `Retry-After ${retryAfter} vs RateLimit-Reset ${reset}`);
}

/** The longest a scenario below takes: each starts with at least this much left in its window. */
const SCENARIO_MS = 5000;

describe('rate limits shared by two instances (PostgreSQL + Redis)', await sharedTierTestOptions(), () => {
  let pair: InstancePair;
  let clientCounter = 0;
  /** A client address (TEST-NET-2) no other scenario uses. */
  const newClient = (): string => `198.51.100.${(clientCounter += 1)}`;

  before(async () => {
    pair = await startInstancePair({
      env: {
        RATE_LIMIT_KEY_PER_MINUTE: String(KEY_LIMIT),
        RATE_LIMIT_IP_PER_MINUTE: String(IP_LIMIT),
        RATE_LIMIT_404_PER_MINUTE: String(NOT_FOUND_LIMIT),
        TRUSTED_PROXIES: `${PROXY}/32`,
        // Client and instances share one event loop: a stall past the 100 ms default would
        // time Redis out and loosen limits to per-instance ones, which is not what is tested.
        REDIS_COMMAND_TIMEOUT_MS: '5000',
      },
    });
  });
  // Nothing to close when the start itself failed (its own error is the one reported).
  after(() => (pair === undefined ? undefined : pair.close()));

  /** A member key made directly, so that making it costs no request of any bucket. */
  async function newKey(): Promise<string> {
    return (await pair.a.app.runtime.deps.keys.create(`rate ${randomBytes(3).toString('hex')}`, 'member')).secret;
  }

  const instanceFor = (i: number): Instance => (i % 2 === 0 ? pair.a : pair.b);
  const call = (i: number, path: string, options: SendOptions = {}): Promise<Answer> => send(`${instanceFor(i).url}${path}`, options);
  const withKey = (key: string): SendOptions => ({ headers: { authorization: `Bearer ${key}` } });

  /** Fires `count` requests at once, alternating the instances; exactly `limit` may pass. */
  async function burst(count: number, limit: number, path: string, options: (i: number) => SendOptions): Promise<Answer[]> {
    const leftBefore = secondsLeftInWindow();
    const answers = await Promise.all(Array.from({ length: count }, (_, i) => call(i, path, options(i))));
    for (const answer of answers) rateLimitHeaders(answer, limit, leftBefore);
    const passed = answers.filter((answer) => answer.status === 200);
    const refused = answers.filter((answer) => answer.status !== 200);
    assert.equal(passed.length, limit, `statuses: ${answers.map((answer) => answer.status).join(' ')}`);
    for (const answer of refused) assertRateLimited(answer, limit, leftBefore);
    // Each passing request took its own slot of the shared counter.
    assert.deepEqual(
      passed.map((answer) => integerHeader(answer, 'RateLimit-Remaining')).sort((x, y) => y - x),
      Array.from({ length: limit }, (_, i) => limit - 1 - i),
    );
    return answers;
  }

  test(`an API key gets exactly ${KEY_LIMIT} requests a minute across both instances, however concurrent`, async () => {
    await freshWindow(SCENARIO_MS);
    const key = await newKey();
    await burst(2 * KEY_LIMIT + 5, KEY_LIMIT, LINKS, () => withKey(key));
  });

  test('RateLimit-Remaining counts down one budget across sequential calls to both instances', async () => {
    await freshWindow(SCENARIO_MS);
    const key = await newKey();
    const remaining: number[] = [];
    for (let i = 0; i < KEY_LIMIT + 2; i += 1) {
      const leftBefore = secondsLeftInWindow();
      const answer = await call(i, LINKS, withKey(key));
      if (i < KEY_LIMIT) assert.equal(answer.status, 200, answer.body);
      else assertRateLimited(answer, KEY_LIMIT, leftBefore);
      remaining.push(rateLimitHeaders(answer, KEY_LIMIT, leftBefore).remaining);
    }
    assert.deepEqual(remaining, [...Array.from({ length: KEY_LIMIT }, (_, i) => KEY_LIMIT - 1 - i), 0, 0]);
    // Another key's budget is its own.
    assert.equal((await call(1, LINKS, withKey(await newKey()))).status, 200);
  });

  // Runs and reports as TODO until the stray Redis failure below is found.
  test(`requests without a key get exactly ${IP_LIMIT} a minute per client IP across both instances`, async () => {
    await freshWindow(SCENARIO_MS);
    await burst(2 * IP_LIMIT + 3, IP_LIMIT, OPEN_ENDPOINT, () => ({ localAddress: '127.0.0.3' }));
    // A bad key is no way around it: it is counted on the same address.
    const leftBefore = secondsLeftInWindow();
    assertRateLimited(await call(1, LINKS, { localAddress: '127.0.0.3', headers: { authorization: 'Bearer shunt_not-a-real-key' } }), IP_LIMIT, leftBefore);
    // Another address has its own budget.
    assert.equal((await call(0, OPEN_ENDPOINT, { localAddress: '127.0.0.4' })).status, 200);
  });

  test('an untrusted peer cannot pick a fresh bucket by sending X-Forwarded-For', async () => {
    await freshWindow(SCENARIO_MS);
    // Every request claims another client: all of them are still counted on the peer.
    await burst(2 * IP_LIMIT + 3, IP_LIMIT, OPEN_ENDPOINT, () => ({
      localAddress: '127.0.0.5',
      headers: { 'x-forwarded-for': newClient() },
    }));
  });

  test('a trusted proxy forwards distinct clients, each with its own budget', async () => {
    await freshWindow(SCENARIO_MS);
    const first = newClient();
    await burst(2 * IP_LIMIT + 3, IP_LIMIT, OPEN_ENDPOINT, () => ({ localAddress: PROXY, headers: { 'x-forwarded-for': first } }));
    // The same proxy, another client: a full budget, on both instances.
    const second = newClient();
    for (let i = 0; i < 2; i += 1) {
      const leftBefore = secondsLeftInWindow();
      const answer = await call(i, OPEN_ENDPOINT, { localAddress: PROXY, headers: { 'x-forwarded-for': second } });
      assert.equal(answer.status, 200, answer.body);
      assert.equal(rateLimitHeaders(answer, IP_LIMIT, leftBefore).remaining, IP_LIMIT - 1 - i);
    }
  });

  test('a client drawing unknown codes is throttled on the redirect path, across instances; others are not', async () => {
    await freshWindow(SCENARIO_MS);
    const { code } = await createLink(pair.a, { url: `https://example.com/real/${randomBytes(4).toString('hex')}` });
    const guesser = newClient();
    const bystander = newClient();
    const as = (client: string): SendOptions => ({ localAddress: PROXY, headers: { 'x-forwarded-for': client } });
    const unknown = (): string => `/nope-${randomBytes(5).toString('hex')}`;

    // Unknown codes alternate between the instances: neither sees more than three, so only
    // a budget shared through Redis can be exhausted. The 6th is over it and reaches B only;
    // A must refuse the guesser too (the block is announced to every instance).
    for (let i = 0; i < NOT_FOUND_LIMIT + 1; i += 1) {
      const answer = await call(i, unknown(), as(guesser));
      assert.equal(answer.status, 404, `unknown code ${i + 1} of the guesser`);
    }
    const windowStart = Date.now() - (Date.now() % RATE_LIMIT_WINDOW_MS);
    const counted = await pair.redis.get(pair.keys.rateLimit(`404:${guesser}`, windowStart));
    assert.equal(counted, String(NOT_FOUND_LIMIT + 1), 'the shared counter holds every unknown code of the guesser');

    for (const instance of pair.both) {
      // Counting happens off the response path, so the refusal starts a moment later.
      const deadline = Date.now() + THROTTLE_WAIT_MS;
      const leftBefore = secondsLeftInWindow();
      let answer = await send(`${instance.url}/${code}`, as(guesser));
      while (answer.status !== 429 && Date.now() < deadline) {
        assert.equal(answer.status, 302, `the real code on ${instance.name}`);
        await sleep(10);
        answer = await send(`${instance.url}/${code}`, as(guesser));
      }
      assert.equal(answer.status, 429, `${instance.name} still redirects the guesser`);
      assert.match(String(answer.headers['content-type']), /^text\/html/);
      assert.equal(answer.headers.location, undefined);
      const retryAfter = integerHeader(answer, 'Retry-After');
      // Refused until the window ends, when the budget comes back (not a full minute more).
      // (One second of slack: the throttle rounds the verdict's reset up once more.)
      assert.ok(retryAfter >= 1 && retryAfter <= leftBefore + 1, `Retry-After ${retryAfter} s, but the window ends in ${leftBefore} s`);
      // Refused whatever it asks for, known code or not, over and over.
      for (const [method, path] of [['HEAD', `/${code}`], ['GET', unknown()], ['GET', `/${code}?again=1`]] as const) {
        const again = await send(`${instance.url}${path}`, { ...as(guesser), method });
        assert.equal(again.status, 429, `${method} ${path} on ${instance.name}`);
      }
      // Another client behind the same proxy is unaffected.
      const other = await send(`${instance.url}/${code}`, as(bystander));
      assert.equal(other.status, 302, `the bystander on ${instance.name}`);
      assert.equal((await send(`${instance.url}${unknown()}`, as(bystander))).status, 404);
    }
  });

  // Last, so that it covers every verdict above: all came from the shared counters, none from
  // the per-instance fallback a Redis failure would have switched to.
  test('no verdict fell back to a per-instance counter', async () => {
    for (const instance of pair.both) {
      const metrics = (await send(`${instance.url}/metrics`)).body;
      const failures = instance.app.logs.filter((line) => String(line.msg).startsWith('redis command failed'));
      assert.match(metrics, /^shunt_redis_failures_total\{kind="failed"\} 0$/m, `Redis failures on ${instance.name}: ${JSON.stringify(failures)}`);
      assert.match(metrics, /^shunt_redis_failures_total\{kind="short_circuited"\} 0$/m, `Redis skipped on ${instance.name}`);
    }
  });
});
