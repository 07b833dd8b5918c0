/**
 * Redirect latency at a steady rate, as a busy shortener sees it: autocannon sends
 * BENCH_RATE redirects/s (2,000 by default) for BENCH_SECONDS (20) over BENCH_LINKS (1,000)
 * links with a browser user agent, so every redirect is a click to enrich and store. Prints
 * p50/p99/p99.9, then waits for the analytics to catch up and compares the stats total with
 * the redirects served, and prints the server's RSS.
 *
 *   npm run bench:fixed-rate                          embedded default (npm start)
 *   BENCH_STORE=postgres npm run bench:fixed-rate     ROLE=all with PostgreSQL + Redis + RabbitMQ
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { createPostgresDatabase } from '../test/helpers/backends.js';
import { freePort } from '../test/helpers/process.js';
import { ADMIN_KEY, AMQP_URL, createLinks, deleteQueues, dropRedisKeys, rssMb, startBuiltShunt, stop } from './lib.js';

const RATE = Number(process.env.BENCH_RATE ?? 2000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const LINKS = Number(process.env.BENCH_LINKS ?? 1000);
const STORE = process.env.BENCH_STORE === 'postgres' ? 'postgres' : 'embedded';
const BROWSER = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';

const dataDir = mkdtempSync(join(tmpdir(), 'shunt-bench-'));
const redisPrefix = `bench-${process.pid}`;
const queue = `bench.clicks.${process.pid}`;
const database = STORE === 'postgres' ? await createPostgresDatabase() : null;
let shunt: ChildProcess | undefined;
try {
  const port = await freePort();
  shunt = await startBuiltShunt(port, {
    DATA_DIR: dataDir,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
    ...(database === null
      ? {}
      : { DATABASE_URL: database.url, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_KEY_PREFIX: redisPrefix, AMQP_URL, AMQP_QUEUE: queue, WORKERS: '1' }),
  });
  const codes = (await createLinks(port, LINKS)).map(([code]) => code);
  const result = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: 100,
    overallRate: RATE,
    duration: SECONDS,
    headers: { 'user-agent': BROWSER },
    requests: [{ setupRequest: (request) => ({ ...request, path: `/${codes[Math.floor(Math.random() * codes.length)]}` }) }],
  });
  // The server's own count: autocannon does not count answers that arrive after its last second.
  const served = await redirectsServed(port);
  console.log(`\n${served} redirects at ${RATE}/s for ${SECONDS} s over ${LINKS} links (${STORE}${STORE === 'postgres' ? ', ROLE=all, Redis, RabbitMQ' : ''}), Node ${process.version}`);
  console.log(`latency ms: p50 ${result.latency.p50}  p99 ${result.latency.p99}  p99.9 ${result.latency.p99_9}  max ${result.latency.max}`);
  console.log(`errors ${result.errors}, timeouts ${result.timeouts}, answers other than a redirect ${result.non2xx - (result['3xx'] ?? 0)}`);
  console.log(`server RSS after the run: ${rssMb(shunt)} MB`);

  const deadline = Date.now() + 120_000;
  let counted = 0;
  do {
    counted = await statsTotal(port, codes);
    if (counted >= served) break;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  } while (Date.now() < deadline);
  console.log(`stats total ${counted} / redirects served ${served}: ${counted === served ? 'equal' : 'DIFFERENT'}`);
} finally {
  await stop(shunt);
  await database?.drop();
  if (database !== null) {
    await dropRedisKeys(redisPrefix);
    await deleteQueues(queue);
  }
  rmSync(dataDir, { recursive: true, force: true });
}

async function statsTotal(port: number, codes: readonly string[]): Promise<number> {
  let total = 0;
  for (const code of codes) {
    const response = await fetch(`http://127.0.0.1:${port}/api/v1/links/${code}/stats`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    total += ((await response.json()) as { totals: { clicks: number } }).totals.clicks;
  }
  return total;
}

/** 302s answered, from the server's request histogram on /metrics. */
async function redirectsServed(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('shunt_http_request_duration_seconds_count{') && line.includes('status="302"')) total += Number(line.split(' ').pop());
  }
  return total;
}
