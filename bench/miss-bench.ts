/**
 * Cache-miss redirects: BENCH_LINKS links in PostgreSQL (seeded in one INSERT ... SELECT),
 * uniformly random codes, a redirect instance (ROLE=redirect) with the in-process cache off,
 * Redis on and clicks published to RabbitMQ, so nearly every request goes to Redis and then
 * to PostgreSQL. Compared round by round with the ceiling for that work: a loop of raw `pg`
 * lookups of the same codes on a pool of the same size with as many callers as wrk has
 * connections. The queue of this run is purged after each round and deleted at the end.
 *
 * BENCH_BASELINE_DIR=../other adds another build (its dist/) to every round, on the same
 * database, for a before/after that shares the machine's slow and fast spells.
 *
 *   npm run bench:miss
 *   BENCH_REDIS_COLD=1 npm run bench:miss          every round starts with Redis empty: misses all the way
 *   BENCH_LINKS=10000000 BENCH_ROUNDS=5 BENCH_BASELINE_DIR=/tmp/before npm run bench:miss
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import pg from 'pg';
import { clickTopologyNames } from '../src/pipeline/amqp-topology.js';
import { createPostgresDatabase } from '../test/helpers/backends.js';
import { freePort } from '../test/helpers/process.js';
import { AMQP_URL, combine, CONNECTIONS, deleteQueues, dropRedisKeys, median, printTable, ROUNDS, SECONDS, settle, startBuiltShunt, stop, type Result } from './lib.js';

const LINKS = Number(process.env.BENCH_LINKS ?? 100_000);
const POOL = Number(process.env.BENCH_POOL ?? 10);
// BENCH_REDIS_COLD=1 empties each instance's Redis keys before every round: over a small
// key space Redis otherwise fills up round by round, and later rounds measure Redis hits.
const REDIS_COLD = process.env.BENCH_REDIS_COLD === '1';

function percentile(sorted: readonly number[], q: number): number {
  return Math.round((sorted[Math.floor(sorted.length * q)] ?? 0) * 100) / 100;
}

/** CONNECTIONS callers sharing a pool of POOL connections, each looping single-row lookups, for `seconds`. */
async function rawLookups(url: string, seconds: number): Promise<Result> {
  const pool = new pg.Pool({ connectionString: url, max: POOL });
  const latencies: number[] = [];
  const deadline = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (Date.now() < deadline) {
        const started = performance.now();
        await pool.query('SELECT url FROM links WHERE code = $1', [`m${1 + Math.floor(Math.random() * LINKS)}`]);
        latencies.push(performance.now() - started);
      }
    }),
  );
  await pool.end();
  latencies.sort((a, b) => a - b);
  return {
    name: `pg loop (${CONNECTIONS} callers, pool ${POOL})`,
    rps: Math.round(latencies.length / seconds),
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    bad: 0,
    errors: 0,
    drainMs: await settle(),
  };
}

/** wrk with a Lua script that asks for a uniformly random code of the seeded range. */
async function wrk(name: string, port: number, seconds: number, script: string): Promise<Result> {
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn('wrk', ['-t2', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', '-s', script, `http://127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited with ${code}\n${text}`))));
  });
  const ms = (label: string): number => {
    const match = new RegExp(`^\\s*${label}\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(output);
    if (match === null) return NaN;
    const value = Number(match[1]);
    return Math.round((match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value) * 100) / 100;
  };
  const count = (pattern: RegExp): number => Number(pattern.exec(output)?.[1] ?? 0);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  return {
    name,
    rps: Math.round(Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1] ?? 0)),
    p50: ms('50%'),
    p99: ms('99%'),
    bad: count(/Non-2xx or 3xx responses: (\d+)/),
    errors: socketErrors === null ? 0 : socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0),
    drainMs: await settle(),
  };
}

const runId = `${process.pid}-${randomBytes(3).toString('hex')}`;
const scratch = mkdtempSync(join(tmpdir(), 'shunt-miss-'));
const script = join(scratch, 'random-code.lua');
// Each wrk thread has its own Lua state: seeded alike, they would ask for the same codes
// at the same moments, and half the requests would share a lookup.
writeFileSync(
  script,
  `local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(args)
  math.randomseed(os.time() * 100 + id)
end
function request()
  return wrk.format("GET", "/m" .. math.random(1, ${LINKS}))
end
`,
);

interface Instance {
  name: string;
  port: number;
  child: ChildProcess;
  redisPrefix: string;
  queue: string;
  rounds: Result[];
}

const builds = [
  { name: 'shunt', dir: process.env.BENCH_SHUNT_DIR ?? '.' },
  ...(process.env.BENCH_BASELINE_DIR === undefined ? [] : [{ name: 'baseline', dir: process.env.BENCH_BASELINE_DIR }]),
];
const database = await createPostgresDatabase();
const broker = await amqp.connect(AMQP_URL);
const instances: Instance[] = [];
try {
  for (const [index, build] of builds.entries()) {
    const port = await freePort();
    const redisPrefix = `bench-miss-${runId}-${index}`;
    const queue = `bench.miss.${runId}.${index}`;
    const env = {
      ROLE: 'redirect',
      DATABASE_URL: database.url,
      DATABASE_POOL_SIZE: String(POOL),
      REDIS_URL: 'redis://127.0.0.1:6379',
      REDIS_KEY_PREFIX: redisPrefix,
      AMQP_URL,
      AMQP_QUEUE: queue,
      CLICKS_SPOOL_DIR: join(scratch, `spool-${index}`),
      CACHE_MAX_ENTRIES: '0',
      WORKERS: '1',
      RATE_LIMIT_IP_PER_MINUTE: '10000000',
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    };
    instances.push({ name: `${build.name} redirect (wrk, ${CONNECTIONS} conn.)`, port, child: await startBuiltShunt(port, env, build.dir), redisPrefix, queue, rounds: [] });
  }
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  const loadStarted = Date.now();
  await admin.query(
    `INSERT INTO links (code, custom_alias, url)
     SELECT 'm' || i, true, 'https://example.com/m/' || i FROM generate_series(1, $1::int) AS i`,
    [LINKS],
  );
  await admin.query('VACUUM ANALYZE links');
  await admin.end();
  console.log(`seeded ${LINKS} links in ${((Date.now() - loadStarted) / 1000).toFixed(1)} s`);

  const channel = await broker.createChannel();
  const purge = async (instance: Instance): Promise<void> => {
    await channel.purgeQueue(clickTopologyNames(instance.queue).queue);
  };
  // Warm-up: connections, JIT, and the table's index into PostgreSQL's buffers for all.
  for (const instance of instances) {
    await wrk(instance.name, instance.port, 3, script);
    await purge(instance);
  }
  await rawLookups(database.url, 3);
  const rawRounds: Result[] = [];
  const ratios = instances.map(() => [] as number[]);
  for (let round = 0; round < ROUNDS; round += 1) {
    // Builds take turns going first, so neither always meets the machine right after the pg loop.
    const order = instances.map((_, index) => instances[(index + round) % instances.length] as Instance);
    for (const instance of order) {
      if (REDIS_COLD) await dropRedisKeys(instance.redisPrefix);
      const result = await wrk(instance.name, instance.port, SECONDS, script);
      await purge(instance);
      instance.rounds.push(result);
    }
    const raw = await rawLookups(database.url, SECONDS);
    rawRounds.push(raw);
    for (const [index, instance] of instances.entries()) ratios[index]?.push((instance.rounds[round]?.rps ?? 0) / raw.rps);
    const line = instances.map((instance) => instance.rounds[round] as Result).map((result) => `${result.name.split(' ')[0]} ${result.rps} req/s p99 ${result.p99} ms (${(result.rps / raw.rps).toFixed(2)})`);
    console.log(`round ${round + 1}: ${line.join(', ')}, pg loop ${raw.rps}/s p99 ${raw.p99} ms`);
  }
  const range = (values: readonly number[]): string => `${Math.min(...values)}-${Math.max(...values)}`;
  printTable(`Cache-miss redirects over ${LINKS} links, ${CONNECTIONS} connections, pool ${POOL}, ${ROUNDS} x ${SECONDS} s, Node ${process.version}`, [
    ...instances.map((instance) => combine(instance.rounds)),
    combine(rawRounds),
  ]);
  console.log('');
  for (const [index, instance] of instances.entries()) {
    const metrics = await (await fetch(`http://127.0.0.1:${instance.port}/metrics`)).text();
    if (process.env.BENCH_METRICS === '1') console.log(metrics.split('\n').filter((line) => /^shunt_(cache|redis|db|click)/.test(line)).join('\n'));
    const tier = (name: string, result: string): string =>
      /\s(\d+)/.exec(metrics.split('\n').find((line) => line.startsWith(`shunt_cache_requests_total{tier="${name}",result="${result}"}`)) ?? '')?.[1] ?? '?';
    const rounds = ratios[index] ?? [];
    console.log(`${instance.name}: ${range(instance.rounds.map((r) => r.rps))} req/s, p99 ${range(instance.rounds.map((r) => r.p99))} ms`);
    console.log(`  redis hits ${tier('redis', 'hit')}, redis misses ${tier('redis', 'miss')}, store lookups ${tier('store', 'hit')}`);
    console.log(`  ratio to pg loop: median ${median(rounds).toFixed(2)} (rounds ${rounds.map((r) => r.toFixed(2)).join(', ')})`);
  }
  console.log(`pg loop: ${range(rawRounds.map((r) => r.rps))} lookups/s, p99 ${range(rawRounds.map((r) => r.p99))} ms`);
} finally {
  for (const instance of instances) await stop(instance.child);
  await broker.close();
  for (const instance of instances) {
    await deleteQueues(instance.queue);
    await dropRedisKeys(instance.redisPrefix);
  }
  await database.drop();
  rmSync(scratch, { recursive: true, force: true });
}
