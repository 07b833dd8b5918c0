/**
 * The database goes away under load, and Shunt stays up: real processes in every role
 * (all, api, redirect, worker), with the in-process click queue and with RabbitMQ, on a
 * PostgreSQL server of this test's own. First its connections are terminated twice a
 * second (pg_terminate_backend, as a restart, a failover or a pooler does); then the
 * server is stopped (immediate mode, as a crash) and started again. Throughout, no process
 * dies, cached redirects answer 302, creates answer 201 or 503 problem+json with
 * Retry-After within 1 s, and afterwards every click served is stored exactly once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { amqpReachable, deleteClickTopology, eventually, SHARED_AMQP_URL, uniqueQueue } from '../helpers/amqp.js';
import { IN_CI } from '../helpers/backends.js';
import { createLinks, OutageLoad, outageEnv, storedClicks, type OutageLoadResult } from '../helpers/outage-load.js';
import { postgresServerMissing, startPrivatePostgres, type PrivatePostgres } from '../helpers/private-postgres.js';
import { startShunt, type ShuntProcess } from '../helpers/process.js';

const missing = postgresServerMissing() ?? ((await amqpReachable()) ? null : 'RabbitMQ is not reachable');
const options = missing !== null && !IN_CI ? { skip: missing } : {};
const ADMIN = 'outage-admin-key-0123456789abcdef';
const ROLES = ['all', 'api', 'redirect', 'worker'] as const;
type Role = (typeof ROLES)[number];

function report(what: string, result: OutageLoadResult): void {
  console.log(
    `${what}: ${result.redirectsServed} redirects (${result.redirectFailures.length} failed, p99 ${result.redirectP99Ms.toFixed(1)} ms), ` +
      `${result.created} creates, ${result.unavailable} answered 503, ${result.createFailures.length} wrong answers`,
  );
}

function assertHeld(result: OutageLoadResult): void {
  assert.deepEqual(result.redirectFailures.slice(0, 5), [], 'every cached redirect answered 302');
  assert.deepEqual(result.createFailures.slice(0, 5), [], 'every create answered 201, or 503 with Retry-After within 1 s');
}

describe('the database goes away', options, () => {
  let server: PrivatePostgres;
  let dir: string;

  before(() => {
    assert.equal(missing, null, 'PostgreSQL server binaries and RabbitMQ are needed (CI=true)');
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shunt-db-outage-'));
    server = await startPrivatePostgres();
  });

  after(() => {
    server?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  for (const queueMode of ['in-process', 'rabbitmq'] as const) {
    describe(`with the ${queueMode} click queue`, () => {
      const instances = new Map<Role, ShuntProcess>();
      let sql: pg.Pool;
      let codes: string[];
      let queue: string;
      /** Redirects answered 302 so far: each one is a click to be stored. */
      let served = 0;
      const of = (role: Role): ShuntProcess => {
        const found = instances.get(role);
        assert.ok(found !== undefined);
        return found;
      };
      const targets = () => ({
        redirects: [of('all').url, of('redirect').url],
        codes,
        api: [of('all').url, of('api').url],
        apiKey: ADMIN,
      });

      const assertAlive = (): void => {
        for (const [role, shunt] of instances) assert.equal(shunt.child.exitCode, null, `ROLE=${role} died: ${shunt.stderr().slice(-2000)}`);
      };

      /** Every redirect served is stored, once: the count reaches it and stays there. */
      const assertClicksStoredOnce = async (): Promise<void> => {
        await eventually(`${served} clicks stored`, async () => (await storedClicks(sql).catch(() => ({ raw: -1 }))).raw >= served, 90_000);
        await sleep(2000);
        assert.deepEqual(await storedClicks(sql), { raw: served, rollup: served }, 'clicks lost or doubled');
      };

      before(async () => {
        const database = `outage_${queueMode.replace('-', '_')}`;
        const url = await server.createDatabase(database);
        sql = new pg.Pool({ connectionString: url, max: 2, application_name: 'outage-test' });
        sql.on('error', () => undefined);
        queue = uniqueQueue();
        const env = (role: Role): Record<string, string> => ({
          ...outageEnv(url, ADMIN),
          ...(queueMode === 'rabbitmq' ? { AMQP_URL: SHARED_AMQP_URL, AMQP_QUEUE: queue } : {}),
          ROLE: role,
          DATABASE_POOL_SIZE: '4',
          CLICKS_SPOOL_DIR: join(dir, `spool-${queueMode}-${role}`),
        });
        // ROLE=all first: it creates the schema the others then find.
        instances.set('all', await startShunt(env('all')));
        await Promise.all(ROLES.slice(1).map(async (role) => instances.set(role, await startShunt(env(role)))));
        codes = await createLinks(of('api').url, ADMIN, 20, 'cached');
        // Twice on each instance: the second answer comes from its in-process cache.
        for (const base of targets().redirects) {
          for (const code of [...codes, ...codes]) {
            const response = await fetch(`${base}/${code}`, { redirect: 'manual' });
            await response.arrayBuffer();
            assert.equal(response.status, 302);
            served += 1;
          }
        }
      });

      after(async () => {
        await Promise.all(
          [...instances.values()].map((shunt) => {
            shunt.child.kill('SIGKILL');
            return shunt.exited;
          }),
        );
        await sql?.end();
        if (queueMode === 'rabbitmq') await deleteClickTopology(queue).catch(() => undefined);
      });

      test('connections terminated twice a second under load: no crash, no 500', async () => {
        const load = new OutageLoad(targets(), { redirect: 4, create: 2 });
        let terminated = 0;
        for (let i = 0; i < 10; i += 1) {
          await sleep(500);
          terminated += await server.terminate('shunt');
          assertAlive();
        }
        const result = await load.stop();
        served += result.redirectsServed;
        report(`${queueMode}, terminations`, result);
        assert.ok(terminated > 0, 'the test terminated some of Shunt’s connections');
        assertAlive();
        assertHeld(result);
        assert.ok(result.created > 0, 'creates went on between terminations');
        await assertClicksStoredOnce();
        assertAlive();
      });

      test('the server stopped and started: 503 with Retry-After while away, recovery on its own', async () => {
        const load = new OutageLoad(targets(), { redirect: 4, create: 2 });
        await sleep(500);
        await server.stop();
        const stoppedAt = performance.now();
        let back = false;
        // Whatever fails here, the next suite needs the server.
        after(async () => {
          if (!back) await server.start();
        });
        await sleep(3000);
        assertAlive();
        for (const role of ['all', 'api'] as const) {
          const ready = await fetch(`${of(role).url}/readyz`);
          assert.equal(ready.status, 503, `ROLE=${role} reports the database in /readyz`);
          await ready.arrayBuffer();
        }
        const metrics = await (await fetch(`${of('api').url}/metrics`)).text();
        assert.match(metrics, /^shunt_database_up 0$/m, 'the open circuit shows in /metrics');
        // A redirect that needs the database (an unknown code) is 503 too, not 500.
        const uncached = await fetch(`${of('redirect').url}/neverseen42`, { redirect: 'manual' });
        await uncached.arrayBuffer();
        assert.equal(uncached.status, 503);
        assert.ok(uncached.headers.get('retry-after') !== null);
        const during = { created: load.result.created, unavailable: load.result.unavailable };
        await server.start();
        back = true;
        const startedAt = performance.now();
        await eventually('creates succeed again', () => load.result.created > during.created, 30_000);
        const result = await load.stop();
        served += result.redirectsServed;
        report(`${queueMode}, server stopped for ${Math.round(startedAt - stoppedAt)} ms`, result);
        const firstCreate = result.createdAt.find((at) => at > stoppedAt) ?? NaN;
        console.log(`${queueMode}: first successful create sent ${Math.round(firstCreate - stoppedAt)} ms after the stop (server back after ${Math.round(startedAt - stoppedAt)} ms)`);
        assert.ok(during.unavailable > 0, 'creates were answered 503 while the server was down');
        assertAlive();
        assertHeld(result);
        for (const role of ROLES) {
          await eventually(`ROLE=${role} ready again`, async () => (await fetch(`${of(role).url}/readyz`)).ok, 15_000);
        }
        assert.match(await (await fetch(`${of('api').url}/metrics`)).text(), /^shunt_database_up 1$/m);
        await assertClicksStoredOnce();
        assertAlive();
      });
    });
  }
});
