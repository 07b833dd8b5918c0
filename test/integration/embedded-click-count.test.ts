import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import autocannon from 'autocannon';
import { amqpReachable, deleteClickTopology, eventually, SHARED_AMQP_URL, uniqueQueue } from '../helpers/amqp.js';
import { backendTestOptions, createPostgresDatabase, IN_CI } from '../helpers/backends.js';
import { startShunt } from '../helpers/process.js';

const ADMIN = 'integration-admin-key-0123456789';
const REDIRECTS = 20_000;
const LINKS = 50;
const BROWSER = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
const BOT = 'Googlebot/2.1 (+http://www.google.com/bot.html)';

/**
 * Clicks are stored off the HTTP thread (ADR 0010): in the store's thread in the embedded
 * default, in the consumer's thread in ROLE=all on PostgreSQL. Either way every redirect
 * served is counted once, even at full speed and through a SIGTERM.
 */
describe('the embedded default at full speed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shunt-count-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test(`${REDIRECTS} redirects: the stats count every one served, bots apart, and SIGTERM leaves none behind`, async () => {
    const shunt = await startShunt({ DATA_DIR: dir, ADMIN_API_KEY: ADMIN });
    const codes: string[] = [];
    try {
      for (let index = 0; index < LINKS; index += 1) {
        const created = await fetch(`${shunt.url}/api/v1/links`, {
          method: 'POST',
          headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
          body: JSON.stringify({ url: `https://example.com/count/${index}` }),
        });
        assert.equal(created.status, 201);
        codes.push(((await created.json()) as { code: string }).code);
      }
      // Every tenth link is only ever visited by a known bot: stored, but not in the default totals.
      const requests = codes.flatMap((code, index) => [
        { method: 'GET' as const, path: `/${code}`, headers: { 'user-agent': index % 10 === 0 ? BOT : BROWSER } },
      ]);
      const result = await autocannon({
        url: shunt.url,
        connections: 32,
        amount: REDIRECTS,
        requests,
      });
      assert.equal(result.errors, 0, 'no connection errors');
      assert.equal(result.non2xx, REDIRECTS, `every request was a redirect (${JSON.stringify(result.statusCodeStats)})`);
    } finally {
      shunt.child.kill('SIGTERM');
    }
    assert.equal(await shunt.exited, 0, shunt.stderr());

    // What the API reports, after a restart: nothing may have stayed in memory.
    const again = await startShunt({ DATA_DIR: dir, ADMIN_API_KEY: ADMIN });
    try {
      let all = 0;
      for (const [index, code] of codes.entries()) {
        const withBots = await totalClicks(again.url, code, 'include');
        const humans = await totalClicks(again.url, code, 'exclude');
        all += withBots;
        if (index % 10 === 0) assert.equal(humans, 0, `${code} had only bot visits`);
        else assert.equal(humans, withBots, `${code} had only browser visits`);
      }
      assert.equal(all, REDIRECTS, 'every redirect served was counted exactly once');
    } finally {
      again.child.kill('SIGTERM');
      await again.exited;
    }
  });
});

const amqpUp = await amqpReachable();
const postgresOptions = await backendTestOptions('postgres');
const rabbitOptions = !amqpUp && !IN_CI ? { skip: `RabbitMQ not reachable at ${new URL(SHARED_AMQP_URL).host}` } : {};

for (const store of ['postgres', 'embedded'] as const) {
  const thread = store === 'postgres' ? 'the consumer thread' : "the store's thread";
  describe(`ROLE=all on ${store === 'postgres' ? 'PostgreSQL' : 'the embedded store'} with RabbitMQ`, { ...(store === 'postgres' ? postgresOptions : {}), ...rabbitOptions }, () => {
    test(`${thread} stores every redirect served, and SIGTERM drains it`, async () => {
      assert.ok(amqpUp, 'RabbitMQ is not reachable (CI=true needs it)');
      const database = store === 'postgres' ? await createPostgresDatabase() : null;
      const queue = uniqueQueue();
      const dir = mkdtempSync(join(tmpdir(), 'shunt-all-'));
      try {
        const env = { DATA_DIR: dir, ADMIN_API_KEY: ADMIN, AMQP_URL: SHARED_AMQP_URL, AMQP_QUEUE: queue, ROLE: 'all', ...(database === null ? {} : { DATABASE_URL: database.url }) };
        const shunt = await startShunt(env);
        const codes: string[] = [];
        try {
          for (let index = 0; index < 5; index += 1) {
            const created = await fetch(`${shunt.url}/api/v1/links`, {
              method: 'POST',
              headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
              body: JSON.stringify({ url: `https://example.com/all/${index}` }),
            });
            codes.push(((await created.json()) as { code: string }).code);
          }
          const result = await autocannon({
            url: shunt.url,
            connections: 16,
            amount: 2000,
            requests: codes.map((code) => ({ method: 'GET' as const, path: `/${code}`, headers: { 'user-agent': BROWSER } })),
          });
          assert.equal(result.non2xx, 2000);
        } finally {
          shunt.child.kill('SIGTERM');
        }
        assert.equal(await shunt.exited, 0, shunt.stderr());
        const again = await startShunt(env);
        try {
          // What the broker still held at the SIGTERM is consumed by this start.
          let all = 0;
          await eventually('every redirect served is counted', async () => {
            all = 0;
            for (const code of codes) all += await totalClicks(again.url, code, 'include');
            return all >= 2000;
          });
          assert.equal(all, 2000, 'every redirect served was counted exactly once');
        } finally {
          again.child.kill('SIGTERM');
          await again.exited;
        }
      } finally {
        await deleteClickTopology(queue);
        await database?.drop();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

async function totalClicks(base: string, code: string, bots: 'include' | 'exclude'): Promise<number> {
  const response = await fetch(`${base}/api/v1/links/${code}/stats?bots=${bots}`, { headers: { authorization: `Bearer ${ADMIN}` } });
  assert.equal(response.status, 200);
  return ((await response.json()) as { totals: { clicks: number } }).totals.clicks;
}
