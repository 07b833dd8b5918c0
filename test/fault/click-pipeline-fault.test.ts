/**
 * Zero loss and zero double counting, end to end: real Shunt processes (ROLE=redirect
 * publishing to RabbitMQ, ROLE=worker consuming into PostgreSQL), a private RabbitMQ node
 * of this test's own and a TCP proxy it controls. Each scenario sends a known number of
 * distinct clicks to its own link, breaks something mid-stream, and then compares the raw
 * events and the rollups with the number of redirects served: exactly equal, and still
 * equal a while later (nothing arrives twice).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { eventually } from '../helpers/amqp.js';
import { createPostgresDatabase, IN_CI, isPostgresAvailable } from '../helpers/backends.js';
import { startShunt, type ShuntProcess } from '../helpers/process.js';
import { rabbitmqServerMissing, startPrivateRabbitMq, type PrivateRabbitMq } from '../helpers/rabbitmq-node.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const missing = rabbitmqServerMissing() ?? ((await isPostgresAvailable()) ? null : 'PostgreSQL is not reachable');
const options = missing !== null && !IN_CI ? { skip: missing } : {};
const ADMIN = 'fault-admin-key-0123456789abcdef';
// Bots are counted too (bots=include); a browser agent keeps the human/bot split visible.
const BROWSER = 'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0';

describe('the click pipeline loses nothing and counts nothing twice', options, () => {
  let broker: PrivateRabbitMq;
  let proxy: TcpProxy;
  let database: { url: string; drop: () => Promise<void> };
  let sql: pg.Pool;
  let dir: string;
  const running = new Set<ShuntProcess>();
  let linkSerial = 0;

  function env(extra: Record<string, string>): Record<string, string> {
    return {
      DATABASE_URL: database.url,
      AMQP_URL: broker.url,
      AMQP_QUEUE: 'fault.clicks',
      ADMIN_API_KEY: ADMIN,
      NODE_ENV: 'production',
      WORKERS: '1',
      LOG_LEVEL: 'warn',
      RATE_LIMIT_IP_PER_MINUTE: '10000000',
      CLICK_FLUSH_INTERVAL_MS: '100',
      CLICK_BATCH_SIZE: '50',
      WORKER_BATCH_SIZE: '200',
      AMQP_CONFIRM_TIMEOUT_MS: '2000',
      ...extra,
    };
  }

  async function start(role: 'redirect' | 'worker', extra: Record<string, string> = {}): Promise<ShuntProcess> {
    const shunt = await startShunt(env({ ROLE: role, CLICKS_SPOOL_DIR: join(dir, `spool-${role}-${running.size}`), ...extra }));
    running.add(shunt);
    void shunt.exited.then(() => running.delete(shunt));
    return shunt;
  }

  async function stop(shunt: ShuntProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    shunt.child.kill(signal);
    return shunt.exited;
  }

  async function newLink(): Promise<string> {
    linkSerial += 1;
    const code = `fault${linkSerial}`;
    await sql.query('INSERT INTO links (code, url) VALUES ($1, $2)', [code, `https://example.com/${code}`]);
    return code;
  }

  /** Sends `count` redirects, `parallel` at a time; every one must be answered 302. */
  async function click(shunt: ShuntProcess, code: string, count: number, parallel = 10): Promise<void> {
    let next = 0;
    const failures: string[] = [];
    const lane = async (): Promise<void> => {
      while (next < count) {
        next += 1;
        const response = await fetch(`${shunt.url}/${code}`, { redirect: 'manual', headers: { 'user-agent': BROWSER } });
        if (response.status !== 302) failures.push(String(response.status));
        await response.arrayBuffer();
      }
    };
    await Promise.all(Array.from({ length: parallel }, lane));
    assert.deepEqual(failures, [], 'every redirect answered');
  }

  async function counted(code: string): Promise<{ raw: number; rollup: number; minute: number }> {
    const result = await sql.query<{ raw: number; rollup: number; minute: number }>(
      `WITH link AS (SELECT id FROM links WHERE code = $1)
       SELECT (SELECT count(*)::int FROM click_events WHERE link_id = (SELECT id FROM link)) AS raw,
              (SELECT coalesce(sum(human + bot), 0)::int FROM link_clicks_day WHERE link_id = (SELECT id FROM link)) AS rollup,
              (SELECT coalesce(sum(human + bot), 0)::int FROM link_clicks_minute WHERE link_id = (SELECT id FROM link)) AS minute`,
      [code],
    );
    const row = result.rows[0];
    assert.ok(row !== undefined);
    return row;
  }

  /** Waits for `expected` clicks, then checks that no more arrive. */
  async function assertExactly(code: string, expected: number): Promise<void> {
    await eventually(`${expected} clicks of ${code} stored`, async () => (await counted(code)).raw >= expected, 60_000);
    await sleep(1500);
    assert.deepEqual(await counted(code), { raw: expected, rollup: expected, minute: expected });
  }

  async function metric(shunt: ShuntProcess, name: string): Promise<number> {
    const text = await (await fetch(`${shunt.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line === undefined ? NaN : Number(line.split(' ')[1]);
  }

  before(async () => {
    assert.equal(missing, null, 'rabbitmq-server and PostgreSQL are needed (CI=true)');
    dir = mkdtempSync(join(tmpdir(), 'shunt-pipeline-fault-'));
    broker = await startPrivateRabbitMq();
    proxy = await startTcpProxy(broker.port);
    database = await createPostgresDatabase();
    sql = new pg.Pool({ connectionString: database.url, max: 2 });
  });

  after(async () => {
    await Promise.all([...running].map((shunt) => stop(shunt, 'SIGKILL')));
    await sql?.end();
    await database?.drop();
    await proxy?.close();
    await broker?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  test('the broker stopped and started again mid-stream', async () => {
    const worker = await start('worker');
    const redirect = await start('redirect');
    const code = await newLink();
    await click(redirect, code, 400);
    await broker.stopApp();
    // Redirects go on while the broker is away: their clicks wait in the spool.
    await click(redirect, code, 400);
    await eventually('clicks spooled', async () => (await metric(redirect, 'shunt_click_spool_events')) > 0);
    await broker.startApp();
    await click(redirect, code, 400);
    await assertExactly(code, 1200);
    assert.ok((await metric(redirect, 'shunt_click_publish_failures_total')) > 0);
    await eventually('spool drained', async () => (await metric(redirect, 'shunt_click_spool_events')) === 0);
    assert.equal(await stop(redirect), 0);
    assert.equal(await stop(worker), 0);
  });

  test("the publisher's connection cut by a proxy mid-stream", async () => {
    const worker = await start('worker');
    const redirect = await start('redirect', { AMQP_URL: broker.url.replace(`:${broker.port}`, `:${proxy.port}`) });
    const code = await newLink();
    await click(redirect, code, 400);
    proxy.cut();
    await click(redirect, code, 400);
    await eventually('clicks spooled', async () => (await metric(redirect, 'shunt_click_spool_events')) > 0);
    proxy.restore();
    await click(redirect, code, 400);
    await assertExactly(code, 1200);
    assert.equal(await stop(redirect), 0);
    assert.equal(await stop(worker), 0);
  });

  test('a worker killed with SIGKILL in the middle of a backlog', async () => {
    const redirect = await start('redirect');
    const code = await newLink();
    // No worker yet: the clicks wait in the queue.
    await click(redirect, code, 3000, 20);
    const first = await start('worker', { WORKER_BATCH_SIZE: '100', AMQP_PREFETCH: '8' });
    await eventually('the first worker storing', async () => (await counted(code)).raw > 0, 30_000);
    await stop(first, 'SIGKILL');
    const stored = (await counted(code)).raw;
    assert.ok(stored < 3000, `killed too late to matter (${stored} stored)`);
    const second = await start('worker');
    await assertExactly(code, 3000);
    assert.equal(await stop(second), 0);
    assert.equal(await stop(redirect), 0);
  });

  test('SIGTERM to an instance that holds buffered clicks: they are published before it exits', async () => {
    const worker = await start('worker');
    // Nothing is published on a timer or by size: only the drain can send these clicks.
    const redirect = await start('redirect', { CLICK_FLUSH_INTERVAL_MS: '60000', CLICK_BATCH_SIZE: '100000' });
    const code = await newLink();
    await click(redirect, code, 700);
    assert.equal(await metric(redirect, 'shunt_click_events_buffered'), 700);
    assert.equal(await stop(redirect), 0);
    await assertExactly(code, 700);
    assert.equal(await stop(worker), 0);
  });

  test('SIGTERM while the broker is away: the clicks wait on disk and the next start sends them', async () => {
    const worker = await start('worker');
    const spool = join(dir, 'spool-restarted');
    const redirect = await start('redirect', { CLICKS_SPOOL_DIR: spool, CLICK_FLUSH_INTERVAL_MS: '60000', CLICK_BATCH_SIZE: '100000' });
    const code = await newLink();
    await click(redirect, code, 500);
    await broker.stopApp();
    assert.equal(await stop(redirect), 0);
    await broker.startApp();
    // The same spool directory, as a restarted pod with its volume (or the same host) has.
    const restarted = await start('redirect', { CLICKS_SPOOL_DIR: spool });
    await assertExactly(code, 500);
    await eventually('spool drained', async () => (await metric(restarted, 'shunt_click_spool_events')) === 0);
    assert.equal(await stop(restarted), 0);
    assert.equal(await stop(worker), 0);
  });
});
