/**
 * Invalidation across instances: two Shunt instances on one PostgreSQL and one Redis. A
 * change made through instance A must be what instance B serves within 1 s (the product's
 * promise, ADR 0004), although B holds the old answer in its in-process cache and the shared
 * Redis entry, and B must never serve the old answer again afterwards. The shared entry
 * itself must be gone or replaced, so no third instance could pick the old answer up.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeCachedLink } from '../../src/cache/link-codec.js';
import {
  api,
  createLink,
  send,
  sharedTierTestOptions,
  startInstancePair,
  type Answer,
  type Instance,
  type InstancePair,
} from '../helpers/instance-pair.js';

/** The product's bound for a change to reach every instance. */
const PROPAGATION_BOUND_MS = 1000;
/** Polling goes on this long past the bound, so a slow propagation fails instead of passing late. */
const GIVE_UP_MS = 5000;
/** How long B is watched after it switched, to catch an old answer coming back. */
const STABLE_MS = 500;

/** What a redirect answer says, in one comparable string. */
function outcome(answer: Answer): string {
  return answer.status >= 300 && answer.status < 400 ? `${answer.status} ${String(answer.headers.location)}` : String(answer.status);
}

interface Switch {
  elapsedMs: number;
  before: string[];
  afterwards: string[];
}

/**
 * Polls `instance` for `code` from `since` on until the answer is `next`; every answer before
 * must be `previous`, and every answer for STABLE_MS after must stay `next`.
 */
async function watchSwitch(instance: Instance, code: string, since: number, previous: string, next: string): Promise<Switch> {
  const before: string[] = [];
  const afterwards: string[] = [];
  let switchedAt: number | null = null;
  for (;;) {
    const answer = outcome(await send(`${instance.url}/${code}`));
    const now = performance.now();
    if (switchedAt === null) {
      if (answer === next) switchedAt = now;
      else before.push(answer);
      if (switchedAt === null && now - since > GIVE_UP_MS) break;
    } else {
      afterwards.push(answer);
      if (now - switchedAt > STABLE_MS) break;
    }
    await sleep(5);
  }
  assert.ok(switchedAt !== null, `instance ${instance.name} never answered "${next}" for ${code}; it kept answering ${[...new Set(before)].join(', ')}`);
  assert.ok(before.every((answer) => answer === previous), `before switching, ${instance.name} answered ${[...new Set(before)].join(', ')} (only "${previous}" is right)`);
  assert.ok(afterwards.length > 0);
  assert.ok(afterwards.every((answer) => answer === next), `after switching, ${instance.name} went back: ${afterwards.join(', ')}`);
  return { elapsedMs: switchedAt - since, before, afterwards };
}

async function pollUntil<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + GIVE_UP_MS;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: last seen ${JSON.stringify(value)}`);
    await sleep(10);
  }
}

describe('cache invalidation across two instances (PostgreSQL + Redis)', await sharedTierTestOptions(), () => {
  let pair: InstancePair;
  before(async () => {
    pair = await startInstancePair({
      // The polling below draws many 404s from one address; the 404 throttle is another test's subject.
      env: { RATE_LIMIT_404_PER_MINUTE: '1000000' },
    });
  });
  // Nothing to close when the start itself failed (its own error is the one reported).
  after(() => (pair === undefined ? undefined : pair.close()));

  const redisValue = (code: string): Promise<string | null> => pair.redis.get(pair.keys.link(code));
  const generation = async (code: string): Promise<number> => Number((await pair.redis.get(pair.keys.linkGeneration(code))) ?? '0');

  /** B answers `expected` from both tiers: its in-process entry and the shared one hold the link. */
  async function cacheOnB(code: string, url: string): Promise<void> {
    // The first answer loads and fills both tiers; the second comes from B's memory.
    for (let i = 0; i < 2; i += 1) assert.equal(outcome(await send(`${pair.b.url}/${code}`)), `302 ${url}`);
    assert.equal(pair.b.app.runtime.deps.links.peek(code)?.url, url, 'B holds the link in memory');
    // The shared fill is not awaited by the request that caused it.
    const shared = await pollUntil(`shared entry of ${code}`, () => redisValue(code), (value) => value !== null);
    assert.equal(decodeCachedLink(shared as string)?.url, url, 'Redis holds the link');
  }

  test('a PATCH through A is served by B within 1 s, and B never goes back', async () => {
    const oldUrl = `https://example.com/old/${randomBytes(4).toString('hex')}`;
    const newUrl = `https://example.com/new/${randomBytes(4).toString('hex')}`;
    const { code } = await createLink(pair.a, { url: oldUrl });
    await cacheOnB(code, oldUrl);
    const generationBefore = await generation(code);

    const patched = await api(pair.a, 'PATCH', `/api/v1/links/${code}`, { url: newUrl });
    // Timed from the moment A acknowledged the change: before that, the old answer is still right.
    const acknowledged = performance.now();
    assert.equal(patched.status, 200, patched.body);

    const watched = await watchSwitch(pair.b, code, acknowledged, `302 ${oldUrl}`, `302 ${newUrl}`);
    assert.ok(watched.elapsedMs < PROPAGATION_BOUND_MS, `B served the new URL ${Math.round(watched.elapsedMs)} ms after the PATCH`);

    // The shared entry went through the invalidation (generation bumped), and holds no old answer.
    assert.ok((await generation(code)) > generationBefore, 'the invalidation reached Redis');
    const shared = await redisValue(code);
    assert.ok(shared === null || decodeCachedLink(shared)?.url === newUrl, `Redis still holds ${shared}`);
    // A itself never had a stale copy to serve.
    assert.equal(outcome(await send(`${pair.a.url}/${code}`)), `302 ${newUrl}`);
  });

  test('a DELETE through A stops redirects on B within 1 s', async () => {
    const url = `https://example.com/deleted/${randomBytes(4).toString('hex')}`;
    const { code } = await createLink(pair.a, { url });
    await cacheOnB(code, url);
    const generationBefore = await generation(code);

    const deleted = await api(pair.a, 'DELETE', `/api/v1/links/${code}`);
    const acknowledged = performance.now();
    assert.equal(deleted.status, 204, deleted.body);

    const watched = await watchSwitch(pair.b, code, acknowledged, `302 ${url}`, '404');
    assert.ok(watched.elapsedMs < PROPAGATION_BOUND_MS, `B stopped redirecting ${Math.round(watched.elapsedMs)} ms after the DELETE`);

    assert.ok((await generation(code)) > generationBefore, 'the invalidation reached Redis');
    const shared = await redisValue(code);
    // Gone, or replaced by the negative entry B's own 404 lookup wrote since.
    assert.ok(shared === null || decodeCachedLink(shared) === null, `Redis still holds ${shared}`);
  });

  test('a code B answered 404 for redirects on B within 1 s of being created through A', async () => {
    const code = `neg-${randomBytes(5).toString('hex')}`;
    const url = `https://example.com/born/${randomBytes(4).toString('hex')}`;
    // B learns that the code is unknown, in memory and in the shared tier.
    for (let i = 0; i < 2; i += 1) assert.equal(outcome(await send(`${pair.b.url}/${code}`)), '404');
    assert.equal(pair.b.app.runtime.deps.links.peek(code), null, 'B holds a negative entry in memory');
    const negative = await pollUntil(`negative entry of ${code}`, () => redisValue(code), (value) => value !== null);
    assert.equal(decodeCachedLink(negative as string), null, 'Redis holds a negative entry');
    const generationBefore = await generation(code);

    const created = await api(pair.a, 'POST', '/api/v1/links', { url, alias: code });
    const acknowledged = performance.now();
    assert.equal(created.status, 201, created.body);

    const watched = await watchSwitch(pair.b, code, acknowledged, '404', `302 ${url}`);
    assert.ok(watched.elapsedMs < PROPAGATION_BOUND_MS, `B redirected ${Math.round(watched.elapsedMs)} ms after the creation`);

    assert.ok((await generation(code)) > generationBefore, 'the invalidation reached Redis');
    const shared = await redisValue(code);
    assert.ok(shared === null || decodeCachedLink(shared)?.url === url, `Redis still holds ${shared}`);
  });
});
