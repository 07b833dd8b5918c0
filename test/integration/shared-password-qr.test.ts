/**
 * Two instances on one Redis: password guesses are limited per link and per client across
 * both, and a QR code rendered by one instance is served by the other from Redis.
 * Clients are told apart by X-Forwarded-For from a trusted proxy (127.0.0.2).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLink, send, sharedTierTestOptions, startInstancePair, type Answer, type InstancePair } from '../helpers/instance-pair.js';
import { freshWindow } from '../helpers/rate-limit-window.js';

const PER_LINK = 4;
const PER_CLIENT = 3;
const PROXY = '127.0.0.2';

describe('password guesses and QR codes across two instances (PostgreSQL + Redis)', await sharedTierTestOptions(), () => {
  let pair: InstancePair;
  let clientCounter = 0;
  const newClient = (): string => `198.51.100.${(clientCounter += 1)}`;

  before(async () => {
    pair = await startInstancePair({
      env: {
        RATE_LIMIT_PASSWORD_PER_LINK_PER_MINUTE: String(PER_LINK),
        RATE_LIMIT_PASSWORD_PER_IP_PER_MINUTE: String(PER_CLIENT),
        TRUSTED_PROXIES: `${PROXY}/32`,
        REDIS_COMMAND_TIMEOUT_MS: '5000',
      },
    });
  });
  after(() => (pair === undefined ? undefined : pair.close()));

  function guess(index: number, code: string, client: string, password: string): Promise<Answer> {
    const instance = pair.both[index % 2] ?? pair.a;
    return send(`${instance.url}/${code}`, {
      method: 'POST',
      localAddress: PROXY,
      headers: { 'x-forwarded-for': client, 'content-type': 'application/x-www-form-urlencoded' },
      body: `password=${encodeURIComponent(password)}`,
    });
  }

  test('one budget per link, whichever instance and client a guess reaches', async () => {
    await freshWindow(5000);
    const { code } = await createLink(pair.a, { url: 'https://example.com/shared-pw', password: 'right one' });
    for (let i = 0; i < PER_LINK; i += 1) assert.equal((await guess(i, code, newClient(), 'wrong')).status, 401, `guess ${i}`);
    for (let i = 0; i < 2; i += 1) assert.equal((await guess(i, code, newClient(), 'right one')).status, 429);
  });

  test('one budget per client, whichever instance and link it tries', async () => {
    await freshWindow(5000);
    const client = newClient();
    const links = await Promise.all([0, 1, 2, 3].map((i) => createLink(pair.a, { url: `https://example.com/shared-pw-${i}`, password: 'right one' })));
    for (let i = 0; i < PER_CLIENT; i += 1) assert.equal((await guess(i, links[i]?.code ?? '', client, 'wrong')).status, 401);
    const refused = await guess(PER_CLIENT, links[3]?.code ?? '', client, 'right one');
    assert.equal(refused.status, 429);
    assert.ok(!refused.body.includes('example.com'));
  });

  test('a QR code rendered by one instance is served by the other from Redis', async () => {
    const { code } = await createLink(pair.a, { url: 'https://example.com/shared-qr' });
    const path = `/${code}/qr?format=png&size=512`;
    const first = await send(`${pair.a.url}${path}`);
    assert.equal(first.status, 200);
    const b = pair.b.app.runtime.deps.qrCodes.stats;
    const rendersOnB = b.renders;
    // The fill of the shared tier does not hold up the answer: wait for it to land.
    for (let i = 0; i < 100 && (await pair.redis.keys(`${pair.keys.qr(code)}:*`)).length === 0; i += 1) await sleep(20);
    const second = await send(`${pair.b.url}${path}`);
    assert.equal(second.status, 200);
    assert.equal(second.headers.etag, first.headers.etag);
    assert.equal(b.renders, rendersOnB, 'B rendered nothing');
    assert.equal(b.remoteHits, 1);
  });
});
