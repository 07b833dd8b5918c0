/** What every benchmark script shares: start a target, drive it with autocannon, report medians. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import amqp from 'amqplib';
import autocannon from 'autocannon';
import { clickTopologyNames } from '../src/pipeline/amqp-topology.js';
import { createPostgresDatabase } from '../test/helpers/backends.js';
import { deleteKeys } from '../test/helpers/instance-pair.js';
import { freePort } from '../test/helpers/process.js';
import { procStat } from '../test/helpers/proc-stat.js';

export const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
export const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
// Targets alternate round by round and medians are compared, so a slow spell of this
// shared machine hits every side instead of skewing the ratio.
export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
export const AMQP_URL = process.env.BENCH_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
export const ADMIN_KEY = 'bench-admin-key-0123456789abcdef';
/** A browser's user agent: each redirect is then a click to enrich and store, not a bot's. */
export const BROWSER_UA = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';

export interface Result {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  /** Answers that were neither 2xx nor 3xx. */
  bad: number;
  errors: number;
  /** How long the machine stayed busy after the load stopped (work the target had deferred). */
  drainMs: number;
}

export async function waitForHttp(url: string, child?: ChildProcess): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt += 1) {
    if (child !== undefined && child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${url}`);
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

export function combine(results: readonly Result[]): Result {
  return {
    name: results[0]?.name ?? '',
    rps: Math.round(median(results.map((result) => result.rps))),
    p50: median(results.map((result) => result.p50)),
    p99: median(results.map((result) => result.p99)),
    bad: results.reduce((sum, result) => sum + result.bad, 0),
    errors: results.reduce((sum, result) => sum + result.errors, 0),
    drainMs: median(results.map((result) => result.drainMs)),
  };
}

/** Busy and total jiffies of all cores so far (/proc/stat; idle and iowait count as idle). */
function machineTicks(): { busy: number; total: number } {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((sum, value) => sum + value, 0);
  return { busy: total - (fields[3] ?? 0) - (fields[4] ?? 0), total };
}

/**
 * Waits until the whole machine is quiet (under 10 % busy over 200 ms) and returns how long
 * that took, at most BENCH_SETTLE_MAX_MS. A target that defers work (a store thread's
 * backlog) would otherwise spend it during the next target's round and slow that one instead.
 */
export async function settle(): Promise<number> {
  const started = performance.now();
  const limit = Number(process.env.BENCH_SETTLE_MAX_MS ?? 30_000);
  for (;;) {
    const before = machineTicks();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const after = machineTicks();
    const busy = (after.busy - before.busy) / Math.max(1, after.total - before.total);
    const waited = performance.now() - started;
    if (busy < 0.1 || waited >= limit) return Math.max(0, Math.round(waited - 200));
  }
}

/** Uniformly random codes from `codes` for SECONDS (after a 2 s warm-up when asked). */
export async function drive(name: string, port: number, codes: readonly string[], warmUp: boolean): Promise<Result> {
  const run = (duration: number) =>
    autocannon({
      url: `http://127.0.0.1:${port}`,
      connections: CONNECTIONS,
      duration,
      requests: [{ setupRequest: (request) => ({ ...request, path: `/${codes[Math.floor(Math.random() * codes.length)]}` }) }],
    });
  if (warmUp) await run(2);
  const result = await run(SECONDS);
  return {
    name,
    rps: Math.round(result.requests.average),
    p50: result.latency.p50,
    p99: result.latency.p99,
    bad: result.non2xx - (result['3xx'] ?? 0),
    errors: result.errors + result.timeouts,
    drainMs: await settle(),
  };
}

/** Runs every target once per round, in turn, and returns each target's medians. */
export async function alternate(targets: readonly { name: string; port: number }[], codes: readonly string[]): Promise<Result[]> {
  const rounds = targets.map(() => [] as Result[]);
  for (let round = 0; round < ROUNDS; round += 1) {
    const line: string[] = [];
    for (const [index, target] of targets.entries()) {
      const result = await drive(target.name, target.port, codes, round === 0);
      rounds[index]?.push(result);
      line.push(`${target.name} ${result.rps}${result.drainMs > 0 ? ` (busy ${(result.drainMs / 1000).toFixed(1)} s after)` : ''}`);
    }
    console.log(`round ${round + 1}: ${line.join(', ')} req/s`);
  }
  return rounds.map(combine);
}

export function printTable(title: string, results: readonly Result[]): void {
  console.log(`\n${title}\n`);
  console.log(`${'target'.padEnd(44)}  req/s     p50 ms   p99 ms   bad   errors`);
  for (const r of results) {
    console.log(
      `${r.name.padEnd(44)} ${String(r.rps).padStart(7)} ${String(r.p50).padStart(9)} ${String(r.p99).padStart(8)} ${String(r.bad).padStart(5)} ${String(r.errors).padStart(8)}`,
    );
  }
}

/** Starts the built Shunt (`dist/`) with `env`; resolves once it answers /healthz. */
export async function startBuiltShunt(port: number, env: Record<string, string>, dir = process.env.BENCH_SHUNT_DIR ?? '.'): Promise<ChildProcess> {
  // BENCH_SERVER_CPUS=0 pins the server to core 0 (run the benchmark itself under
  // `taskset -c 1`), so load generators and server do not take turns on the same cores.
  const pin = process.env.BENCH_SERVER_CPUS;
  // BENCH_SHUNT_DIR=../other runs another build (its dist/), e.g. an older commit, for a before/after.
  const main = join(resolve(dir), 'dist/cli/main.js');
  // BENCH_CPU_PROF_DIR=dir: a V8 CPU profile of each Shunt process, written when it stops.
  const profile = process.env.BENCH_CPU_PROF_DIR;
  const node = [...(profile === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profile}`]), main, 'start'];
  const [command, args] = pin === undefined ? [process.execPath, node] : ['taskset', ['-c', pin, process.execPath, ...node]];
  const child = spawn(command, args, {
    env: { ...process.env, NODE_ENV: 'production', PORT: String(port), HOST: '127.0.0.1', ADMIN_API_KEY: ADMIN_KEY, RATE_LIMIT_KEY_PER_MINUTE: '10000000', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await waitForHttp(`http://127.0.0.1:${port}/healthz`, child);
  return child;
}

export interface BenchTarget {
  port: number;
  child: ChildProcess;
  /** Stops Shunt and removes its data directory, database, Redis keys and queues. */
  close(): Promise<void>;
}

/**
 * The built Shunt, one process, on the embedded store in a data directory of its own or on a
 * fresh PostgreSQL database; with `redis`, Redis under a key prefix of this run; with `amqp`,
 * RabbitMQ on a queue of this run, which the process (ROLE=all) also consumes.
 */
export async function startTarget(
  store: 'embedded' | 'postgres',
  env: Record<string, string>,
  services: { redis?: boolean; amqp?: boolean } = {},
): Promise<BenchTarget> {
  const dataDir = mkdtempSync(join(tmpdir(), 'shunt-bench-'));
  const redisPrefix = `bench-${process.pid}`;
  const queue = `bench.clicks.${process.pid}`;
  const database = store === 'postgres' ? await createPostgresDatabase() : null;
  const cleanUp = async (): Promise<void> => {
    await database?.drop();
    if (services.redis === true) await dropRedisKeys(redisPrefix);
    if (services.amqp === true) await deleteQueues(queue);
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const port = await freePort();
    const child = await startBuiltShunt(port, {
      DATA_DIR: dataDir,
      WORKERS: '1',
      ...(database === null ? {} : { DATABASE_URL: database.url }),
      ...(services.redis === true ? { REDIS_URL: 'redis://127.0.0.1:6379', REDIS_KEY_PREFIX: redisPrefix } : {}),
      ...(services.amqp === true ? { AMQP_URL, AMQP_QUEUE: queue } : {}),
      ...env,
    });
    return {
      port,
      child,
      async close() {
        await stop(child);
        await cleanUp();
      },
    };
  } catch (error) {
    await cleanUp();
    throw error;
  }
}

export async function stop(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** Creates `count` links through the bulk API; returns [code, url] pairs. */
export async function createLinks(port: number, count: number): Promise<[string, string][]> {
  const pairs: [string, string][] = [];
  for (let start = 0; start < count; start += 1000) {
    const items = Array.from({ length: Math.min(1000, count - start) }, (_, i) => ({ url: `https://example.com/page/${start + i}?ref=bench` }));
    const response = await fetch(`http://127.0.0.1:${port}/api/v1/links/bulk`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ links: items }),
    });
    const body = (await response.json()) as { items: { link?: { code: string; url: string } }[] };
    for (const item of body.items) if (item.link !== undefined) pairs.push([item.link.code, item.link.url]);
  }
  if (pairs.length !== count) throw new Error(`created ${pairs.length} of ${count} links`);
  return pairs;
}

/** The bare node:http + Map ceiling, as its own process (`workers` > 1: node:cluster). */
export async function startBare(pairs: readonly [string, string][], workers = 1): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/bare-server.ts', String(workers)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = new Promise<number>((resolve) => child.stdout?.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))));
  child.stdin?.end(JSON.stringify(pairs));
  return { child, port: await port };
}

/** Removes the keys a benchmark left in the shared Redis under its own prefix. */
export async function dropRedisKeys(prefix: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true });
  try {
    await redis.connect();
    await deleteKeys(redis, prefix);
  } finally {
    redis.disconnect();
  }
}

/** Removes the queue, its dead-letter queue and exchange (amqp-topology.ts) that the run declared. */
export async function deleteQueues(queue: string): Promise<void> {
  const names = clickTopologyNames(queue);
  const connection = await amqp.connect(AMQP_URL);
  try {
    const channel = await connection.createChannel();
    await channel.deleteQueue(names.queue);
    await channel.deleteQueue(names.deadLetterQueue);
    await channel.deleteExchange(names.deadLetterExchange);
  } finally {
    await connection.close();
  }
}

/** CPU time of a process's main thread (Shunt's HTTP thread) so far, in ms; NaN where /proc has none. */
export function mainThreadCpuMs(child: ChildProcess): number {
  return procStat(`/proc/${child.pid}/task/${child.pid}/stat`)?.ms ?? Number.NaN;
}

/** Resident set of a process, from /proc (Linux), in MB; '?' elsewhere. */
export function rssMb(child: ChildProcess): string {
  try {
    const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? '?' : (Number(kb) / 1024).toFixed(0);
  } catch {
    return '?';
  }
}
