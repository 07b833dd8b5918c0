/**
 * The in-process click queue on PostgreSQL (no broker) through a database outage, as a
 * real process on a PostgreSQL server of this test's own: clicks served while the server
 * is stopped go to the disk spool (the spool gauges show them, nothing is dropped), and
 * are stored exactly once when it returns; a SIGTERM during the outage leaves them in the
 * spool, and the next start on the same spool directory stores them.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { eventually } from '../helpers/amqp.js';
import { IN_CI } from '../helpers/backends.js';
import { createLinks, outageEnv, storedClicks } from '../helpers/outage-load.js';
import { postgresServerMissing, startPrivatePostgres, type PrivatePostgres } from '../helpers/private-postgres.js';
import { startShunt, type ShuntProcess } from '../helpers/process.js';

const missing = postgresServerMissing();
const options = missing !== null && !IN_CI ? { skip: missing } : {};
const ADMIN = 'spool-admin-key-0123456789abcdef';

function gauge(metrics: string, name: string): number {
  const line = metrics.split('\n').find((row) => row.startsWith(`${name} `) || row.startsWith(`${name}{`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('the in-process click queue through a database outage', options, () => {
  let server: PrivatePostgres;
  let dir: string;
  let sql: pg.Pool;
  let env: Record<string, string>;
  let shunt: ShuntProcess | undefined;
  let codes: string[];
  let served = 0;

  const redirect = async (count: number): Promise<void> => {
    assert.ok(shunt !== undefined);
    for (let i = 0; i < count; i += 1) {
      const response = await fetch(`${shunt.url}/${codes[i % codes.length]}`, { redirect: 'manual' });
      await response.arrayBuffer();
      assert.equal(response.status, 302);
      served += 1;
    }
  };
  const metrics = async (): Promise<string> => {
    assert.ok(shunt !== undefined);
    return (await fetch(`${shunt.url}/metrics`)).text();
  };
  const assertStoredOnce = async (): Promise<void> => {
    await eventually(`${served} clicks stored`, async () => (await storedClicks(sql).catch(() => ({ raw: -1 }))).raw >= served, 60_000);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.deepEqual(await storedClicks(sql), { raw: served, rollup: served }, 'clicks lost or doubled');
  };

  before(async () => {
    assert.equal(missing, null, 'PostgreSQL server binaries are needed (CI=true)');
    dir = mkdtempSync(join(tmpdir(), 'shunt-queue-spool-'));
    server = await startPrivatePostgres();
    const url = await server.createDatabase('queue_spool');
    sql = new pg.Pool({ connectionString: url, max: 2 });
    sql.on('error', () => undefined);
    env = { ...outageEnv(url, ADMIN), ROLE: 'all', CLICKS_SPOOL_DIR: join(dir, 'spool') };
    shunt = await startShunt(env);
    codes = await createLinks(shunt.url, ADMIN, 10, 'spooled');
    // Cached from here on, so redirects go on while the database is away.
    await redirect(codes.length);
    await assertStoredOnce();
  });

  after(async () => {
    if (shunt !== undefined) {
      shunt.child.kill('SIGKILL');
      await shunt.exited;
    }
    await sql?.end();
    server?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  test('clicks served while the server is stopped wait in the spool and are stored once when it returns', async () => {
    await server.stop();
    try {
      await redirect(600);
      await eventually('the outage’s clicks are in the spool', async () => gauge(await metrics(), 'shunt_click_spool_events') > 0, 15_000);
      const during = await metrics();
      assert.ok(gauge(during, 'shunt_click_spool_bytes') > 0);
      assert.equal(gauge(during, 'shunt_clicks_dropped_total'), 0, 'nothing dropped');
    } finally {
      await server.start();
    }
    await assertStoredOnce();
    await eventually('the spool is empty again', async () => gauge(await metrics(), 'shunt_click_spool_events') === 0, 15_000);
  });

  test('a SIGTERM during the outage leaves the clicks in the spool; the next start stores them', async () => {
    await server.stop();
    try {
      await redirect(400);
      assert.ok(shunt !== undefined);
      shunt.child.kill('SIGTERM');
      assert.equal(await shunt.exited, 0, `clean exit: ${shunt.stderr().slice(-2000)}`);
      shunt = undefined;
    } finally {
      await server.start();
    }
    assert.notEqual((await storedClicks(sql)).raw, served, 'the outage’s clicks were not stored before the restart');
    shunt = await startShunt(env);
    await assertStoredOnce();
  });
});
