/**
 * Redirect latency at a steady rate, as a busy shortener sees it: BENCH_RATE redirects/s
 * (2,000 by default), evenly paced (paced-load.ts), for BENCH_SECONDS (20) over BENCH_LINKS
 * (1,000) links with a browser user agent, so every redirect is a click to enrich and store.
 * The same load first goes to a bare node:http server, the floor of this machine and this
 * generator. Prints p50/p99/p99.9 from the request written and from the instant it was due,
 * the server's own event-loop delay, then waits for the analytics to catch up, compares
 * the stats total with the redirects served, and prints the server's RSS.
 *
 *   npm run bench:fixed-rate                          embedded default (npm start)
 *   BENCH_STORE=postgres npm run bench:fixed-rate     ROLE=all with PostgreSQL + Redis + RabbitMQ
 */
import { ADMIN_KEY, BROWSER_UA, createLinks, rssMb, startBare, startTarget } from './lib.js';
import { pacedLoad, type PacedResult, type Percentiles } from './paced-load.js';

const RATE = Number(process.env.BENCH_RATE ?? 2000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const LINKS = Number(process.env.BENCH_LINKS ?? 1000);
const STORE = process.env.BENCH_STORE === 'postgres' ? 'postgres' : 'embedded';

// ROLE=all on PostgreSQL with Redis and RabbitMQ, as the issue measured it.
const target = await startTarget(STORE, { LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn' }, STORE === 'postgres' ? { redis: true, amqp: true } : {});
const { port } = target;
try {
  const pairs = await createLinks(port, LINKS);
  const codes = pairs.map(([code]) => code);
  const load = (target: number): Promise<PacedResult> =>
    pacedLoad({ port: target, rate: RATE, seconds: SECONDS, connections: 100, paths: codes.map((code) => `/${code}`), headers: { 'user-agent': BROWSER_UA } });
  const bare = await startBare(pairs);
  const floor = await load(bare.port).finally(() => bare.child.kill());
  // Warm the caches the way a running shortener has them, then measure.
  await pacedLoad({ port, rate: RATE, seconds: 2, connections: 100, paths: codes.map((code) => `/${code}`), headers: { 'user-agent': BROWSER_UA } });
  await fetch(`http://127.0.0.1:${port}/metrics`);
  const result = await load(port);
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const served = redirectsServed(metrics);
  console.log(`\n${served} redirects at ${RATE}/s for ${SECONDS} s over ${LINKS} links (${STORE}${STORE === 'postgres' ? ', ROLE=all, Redis, RabbitMQ' : ''}), Node ${process.version}`);
  const line = (p: Percentiles): string => `p50 ${p.p50}  p99 ${p.p99}  p99.9 ${p.p999}  max ${p.max}`;
  console.log(`bare node:http, latency ms from written: ${line(floor.fromWritten)};  from due: ${line(floor.fromDue)}`);
  console.log(`Shunt,          latency ms from written: ${line(result.fromWritten)};  from due: ${line(result.fromDue)}`);
  const other = result.answered - (result.statuses['302'] ?? 0);
  console.log(`errors ${result.errors}, unanswered ${result.unanswered}, answers other than a redirect ${other}`);
  console.log(`server RSS after the run: ${rssMb(target.child)} MB`);
  // The server's own view: a stall of its event loop shows here, autocannon's own delays do not.
  const lag = (name: string): string => (Number(new RegExp(`^shunt_nodejs_eventloop_lag_${name}_seconds (\\S+)$`, 'm').exec(metrics)?.[1]) * 1000).toFixed(1);
  console.log(`server event-loop delay ms: p50 ${lag('p50')}  p99 ${lag('p99')}  max ${lag('max')}`);

  const deadline = Date.now() + 120_000;
  let counted = 0;
  do {
    counted = await statsTotal(port, codes);
    if (counted >= served) break;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  } while (Date.now() < deadline);
  console.log(`stats total ${counted} / redirects served ${served}: ${counted === served ? 'equal' : 'DIFFERENT'}`);
} finally {
  await target.close();
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
function redirectsServed(text: string): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('shunt_http_request_duration_seconds_count{') && line.includes('status="302"')) total += Number(line.split(' ').pop());
  }
  return total;
}
