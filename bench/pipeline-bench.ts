/**
 * The click pipeline with RabbitMQ and PostgreSQL, as in production, in three parts:
 *
 * 1. ingest: a worker process (ROLE=worker) consumes while this script publishes
 *    BENCH_EVENTS distinct events as fast as the broker confirms them (batches of 500, like
 *    the redirect instances); prints events/s from the first publish to the last commit.
 * 2. lag: a redirect instance and a worker; autocannon sends BENCH_LAG_RATE redirects/s
 *    (default 5,000) for BENCH_SECONDS; prints the click-to-commit lag percentiles from the
 *    worker's shunt_click_event_lag_seconds histogram, and checks stored = redirects served.
 * 3. cost: redirect throughput of one ROLE=redirect instance publishing to the broker against
 *    one with CLICKS_ENABLED=false, alternating rounds (BENCH_ROUNDS), medians.
 *
 * The ingest's events carry their link id, as redirect instances publish them;
 * BENCH_EVENT_VERSION=1 publishes them without (the upgrade path).
 *
 *   npm run bench:pipeline
 *   BENCH_PARTS=ingest,lag BENCH_EVENTS=500000 npm run bench:pipeline
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import autocannon from 'autocannon';
import pg from 'pg';
import { encodeClickBatch } from '../src/clicks/click-event-codec.js';
import type { IdentifiedClickEvent } from '../src/clicks/click-event.js';
import { uuidv7 } from '../src/shared/uuid-v7.js';
import { createPostgresDatabase } from '../test/helpers/backends.js';
import { freePort } from '../test/helpers/process.js';
import { cpuMsOf, treeCpuMs } from '../test/helpers/proc-stat.js';
import { alternate, AMQP_URL, createLinks, deleteQueues, printTable, SECONDS, startBuiltShunt, stop } from './lib.js';


const EVENTS = Number(process.env.BENCH_EVENTS ?? 300_000);
const LAG_RATE = Number(process.env.BENCH_LAG_RATE ?? 5000);
const PARTS = new Set((process.env.BENCH_PARTS ?? 'ingest,lag,cost').split(','));
const LINKS = 1000;
/** Processes of the worker instance (WORKERS); production's default is one per core. */
const WORKER_PROCESSES = process.env.BENCH_WORKER_PROCESSES ?? '2';

const AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36',
  'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
  'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
  'curl/8.5.0',
];
const REFERRERS = [null, null, 'https://www.google.com/', 'https://t.co/abc', 'https://news.ycombinator.com/item?id=1', 'https://www.reddit.com/r/x'];

const pick = <T>(values: readonly T[]): T => values[Math.floor(Math.random() * values.length)] as T;
const randomIp = (): string => `${1 + Math.floor(Math.random() * 223)}.${Math.floor(Math.random() * 256)}.${Math.floor(Math.random() * 256)}.${1 + Math.floor(Math.random() * 254)}`;

/**
 * BENCH_EVENT_VERSION=1: events without their link, as a version before link ids left them in
 * a queue or spool at an upgrade; the worker then looks each batch's codes up (click-attribution.ts).
 */
const EVENT_VERSION = Number(process.env.BENCH_EVENT_VERSION ?? 2);

/** An event as a redirect instance publishes it: with the link it resolved. */
function syntheticEvent(links: readonly { code: string; id: string }[]): IdentifiedClickEvent {
  // A few hot links and a long tail.
  const link = links[Math.min(links.length - 1, Math.floor(links.length * Math.random() ** 3))] as { code: string; id: string };
  const event: IdentifiedClickEvent = { id: uuidv7(), code: link.code, at: new Date(), method: 'GET', referrer: pick(REFERRERS), userAgent: pick(AGENTS), ip: randomIp() };
  if (EVENT_VERSION !== 1) event.linkId = link.id;
  return event;
}

async function storedClicks(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const result = await client.query<{ n: string }>('SELECT coalesce(sum(human + bot), 0)::text AS n FROM link_clicks_day');
    return Number(result.rows[0]?.n ?? 0);
  } finally {
    await client.end();
  }
}

async function waitForStored(url: string, expected: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let stored = 0;
  while (Date.now() < deadline) {
    stored = await storedClicks(url);
    if (stored >= expected) return stored;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return stored;
}

/** Percentile from a Prometheus histogram's cumulative buckets, interpolated within the bucket. */
function histogramPercentile(metrics: string, name: string, q: number): number {
  const buckets: [number, number][] = [];
  for (const line of metrics.split('\n')) {
    const match = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`).exec(line);
    if (match !== null) buckets.push([match[1] === '+Inf' ? Infinity : Number(match[1]), Number(match[2])]);
  }
  const total = buckets.at(-1)?.[1] ?? 0;
  const target = q * total;
  let previous: [number, number] = [0, 0];
  for (const bucket of buckets) {
    if (bucket[1] >= target) {
      if (bucket[0] === Infinity) return previous[0];
      const share = bucket[1] === previous[1] ? 1 : (target - previous[1]) / (bucket[1] - previous[1]);
      return previous[0] + share * (bucket[0] - previous[0]);
    }
    previous = bucket;
  }
  return NaN;
}

/**
 * The links the ingest's events name, straight into the worker's database (it has migrated it
 * by the time it answers): a click is stored only for a link that existed when it happened.
 */
async function createLinkRows(url: string, codes: readonly string[]): Promise<{ code: string; id: string }[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const result = await client.query<{ code: string; id: string }>(
      `INSERT INTO links (code, url, created_at) SELECT code, 'https://example.com/' || code, now() - interval '1 hour' FROM unnest($1::text[]) AS code
       RETURNING code, id::text AS id`,
      [codes],
    );
    return result.rows;
  } finally {
    await client.end();
  }
}

/** CPU ms so far of the PostgreSQL backends connected to this database. */
async function backendsCpuMs(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const backends = await client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
    return cpuMsOf(backends.rows.map((row) => row.pid));
  } finally {
    await client.end();
  }
}

async function startWorker(env: Record<string, string>): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  return { child: await startBuiltShunt(port, { ROLE: 'worker', WORKERS: WORKER_PROCESSES, ...env }), port };
}

const scratch = mkdtempSync(join(tmpdir(), 'shunt-pipeline-bench-'));
const children: ChildProcess[] = [];
try {
  if (PARTS.has('ingest')) {
    const database = await createPostgresDatabase();
    const queue = `bench.clicks.${randomBytes(4).toString('hex')}`;
    const env = { DATABASE_URL: database.url, AMQP_URL, AMQP_QUEUE: queue, CLICKS_SPOOL_DIR: join(scratch, 'ingest'), LOG_LEVEL: 'warn' };
    const worker = await startWorker(env);
    children.push(worker.child);
    const links = await createLinkRows(
      database.url,
      Array.from({ length: 10_000 }, (_, i) => `l${i}`),
    );
    const connection = await amqp.connect(AMQP_URL);
    const channel = await connection.createConfirmChannel();
    const workerPid = worker.child.pid ?? 0;
    const cpuBefore = { worker: treeCpuMs(workerPid), postgres: await backendsCpuMs(database.url) };
    const started = Date.now();
    for (let sent = 0; sent < EVENTS; sent += 500) {
      const batch = Array.from({ length: Math.min(500, EVENTS - sent) }, () => syntheticEvent(links));
      channel.sendToQueue(queue, Buffer.from(encodeClickBatch(batch)), { persistent: true, contentType: 'application/json' });
      // Keeps a bounded window in flight, as the redirect instances' publishers do.
      if ((sent / 500) % 20 === 19) await channel.waitForConfirms();
    }
    await channel.waitForConfirms();
    const published = Date.now();
    const stored = await waitForStored(database.url, EVENTS, 600_000);
    const done = Date.now();
    const cpu = { worker: treeCpuMs(workerPid) - cpuBefore.worker, postgres: (await backendsCpuMs(database.url)) - cpuBefore.postgres };
    await connection.close();
    console.log(`\n## ingest: ${EVENTS} events published with confirms, consumed by 1 worker instance (${WORKER_PROCESSES} processes) into PostgreSQL`);
    console.log(`published in ${((published - started) / 1000).toFixed(1)} s (${Math.round((EVENTS * 1000) / (published - started))}/s)`);
    console.log(`stored ${stored} in ${((done - started) / 1000).toFixed(1)} s: ${Math.round((stored * 1000) / (done - started))} events/s end to end`);
    // The worker's backends stay connected (its pool) throughout, so their CPU is all counted.
    console.log(`CPU per event: worker instance ${((cpu.worker * 1000) / stored).toFixed(1)} µs, its PostgreSQL backends ${((cpu.postgres * 1000) / stored).toFixed(1)} µs`);
    await stop(worker.child);
    await deleteQueues(queue);
    await database.drop();
  }

  if (PARTS.has('lag')) {
    const database = await createPostgresDatabase();
    const queue = `bench.clicks.${randomBytes(4).toString('hex')}`;
    const env = { DATABASE_URL: database.url, AMQP_URL, AMQP_QUEUE: queue, LOG_LEVEL: 'warn', RATE_LIMIT_IP_PER_MINUTE: '10000000' };
    const worker = await startWorker({ ...env, CLICKS_SPOOL_DIR: join(scratch, 'lag-worker') });
    children.push(worker.child);
    const apiPort = await freePort();
    const api = await startBuiltShunt(apiPort, { ...env, ROLE: 'all', CLICKS_SPOOL_DIR: join(scratch, 'lag-api') });
    children.push(api);
    const codes = (await createLinks(apiPort, LINKS)).map(([code]) => code);
    await stop(api);
    const redirectPort = await freePort();
    const redirect = await startBuiltShunt(redirectPort, { ...env, ROLE: 'redirect', CLICKS_SPOOL_DIR: join(scratch, 'lag-redirect') });
    children.push(redirect);
    const result = await autocannon({
      url: `http://127.0.0.1:${redirectPort}`,
      // autocannon paces each connection on its own; with 50 it fell short of the rate asked.
      connections: 200,
      overallRate: LAG_RATE,
      duration: SECONDS,
      requests: [{ setupRequest: (request) => ({ ...request, path: `/${pick(codes)}` }) }],
    });
    const served = result['3xx'] ?? 0;
    const stored = await waitForStored(database.url, served, 60_000);
    const metrics = await (await fetch(`http://127.0.0.1:${worker.port}/metrics`)).text();
    const lag = (q: number): string => `${histogramPercentile(metrics, 'shunt_click_event_lag_seconds', q).toFixed(2)} s`;
    console.log(`\n## lag: ${LAG_RATE} redirects/s asked for ${SECONDS} s through one redirect instance and one worker instance`);
    // autocannon counts the answers it read before its time was up; the instance may have
    // served (and recorded) a few more in the last moment.
    console.log(`redirects answered ${served} (${Math.round(result.requests.average)}/s), clicks stored ${stored}, lag p50 ${lag(0.5)}, p99 ${lag(0.99)}`);
    await stop(redirect);
    await stop(worker.child);
    await deleteQueues(queue);
    await database.drop();
  }

  if (PARTS.has('cost')) {
    const database = await createPostgresDatabase();
    const queue = `bench.clicks.${randomBytes(4).toString('hex')}`;
    const env = { DATABASE_URL: database.url, LOG_LEVEL: 'info', WORKERS: '1' };
    const apiPort = await freePort();
    const api = await startBuiltShunt(apiPort, { ...env, ROLE: 'api' });
    children.push(api);
    const codes = (await createLinks(apiPort, LINKS)).map(([code]) => code);
    await stop(api);
    const onPort = await freePort();
    const on = await startBuiltShunt(onPort, { ...env, ROLE: 'redirect', AMQP_URL, AMQP_QUEUE: queue, CLICKS_SPOOL_DIR: join(scratch, 'cost') });
    children.push(on);
    const offPort = await freePort();
    const off = await startBuiltShunt(offPort, { ...env, ROLE: 'redirect', CLICKS_ENABLED: 'false' });
    children.push(off);
    const [published, unpublished] = await alternate(
      [
        { name: 'redirect instance, clicks published to RabbitMQ', port: onPort },
        { name: 'redirect instance, CLICKS_ENABLED=false', port: offPort },
      ],
      codes,
    );
    if (published !== undefined && unpublished !== undefined) {
      printTable('cost of publishing clicks (cache-hit redirects, 1 process each)', [published, unpublished]);
      console.log(`publishing costs ${(100 * (1 - published.rps / unpublished.rps)).toFixed(1)}% of redirect throughput`);
    }
    await stop(on);
    await stop(off);
    await deleteQueues(queue);
    await database.drop();
  }
} finally {
  await Promise.all(children.map((child) => stop(child)));
  rmSync(scratch, { recursive: true, force: true });
}
