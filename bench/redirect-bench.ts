/**
 * Redirect throughput of Shunt (embedded store, cache warm) against a bare node:http
 * server answering the same 302s from a Map, on the same machine, in the same run.
 *
 *   npm run bench     (defaults: 1000 links, 3 alternating rounds of 10 s per target, 50 connections)
 *   BENCH_ROUNDS=5 BENCH_SECONDS=20 BENCH_CONNECTIONS=100 npm run bench
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { freePort } from '../test/helpers/process.js';

const LINKS = Number(process.env.BENCH_LINKS ?? 1000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
// Targets alternate round by round and medians are compared, so a slow spell of this
// shared machine hits both sides instead of skewing the ratio.
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ADMIN_KEY = 'bench-admin-key-0123456789abcdef';

interface Result {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  non2xx3xx: number;
  errors: number;
}

async function waitForHttp(url: string, child: ChildProcess): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt += 1) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      const response = await fetch(url);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${url}`);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

function combine(results: readonly Result[]): Result {
  return {
    name: results[0]?.name ?? '',
    rps: Math.round(median(results.map((result) => result.rps))),
    p50: median(results.map((result) => result.p50)),
    p99: median(results.map((result) => result.p99)),
    non2xx3xx: results.reduce((sum, result) => sum + result.non2xx3xx, 0),
    errors: results.reduce((sum, result) => sum + result.errors, 0),
  };
}

async function drive(name: string, port: number, codes: readonly string[], warmUp: boolean): Promise<Result> {
  const run = (duration: number) =>
    autocannon({
      url: `http://127.0.0.1:${port}`,
      connections: CONNECTIONS,
      duration,
      requests: [
        {
          setupRequest: (request) => ({ ...request, path: `/${codes[Math.floor(Math.random() * codes.length)]}` }),
        },
      ],
    });
  if (warmUp) await run(2); // JIT, caches, connections
  const result = await run(SECONDS);
  return {
    name,
    rps: Math.round(result.requests.average),
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx3xx: result.non2xx - (result['3xx'] ?? 0),
    errors: result.errors + result.timeouts,
  };
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'shunt-bench-'));
  const shuntPort = await freePort();
  const shunt = spawn(process.execPath, ['dist/cli/main.js', 'start'], {
    env: {
      ...process.env,
      NODE_ENV: 'production',
      PORT: String(shuntPort),
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      ADMIN_API_KEY: ADMIN_KEY,
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
      RATE_LIMIT_KEY_PER_MINUTE: '1000000',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  let bare: ChildProcess | undefined;
  try {
    await waitForHttp(`http://127.0.0.1:${shuntPort}/healthz`, shunt);
    const items = Array.from({ length: LINKS }, (_, index) => ({ url: `https://example.com/page/${index}?ref=bench` }));
    const created = await fetch(`http://127.0.0.1:${shuntPort}/api/v1/links/bulk`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ links: items }),
    });
    const body = (await created.json()) as { items: { status: number; link?: { code: string; url: string } }[] };
    const links = body.items.flatMap((item) => (item.link === undefined ? [] : [item.link]));
    if (links.length !== LINKS) throw new Error(`created ${links.length} of ${LINKS} links`);
    const codes = links.map((link) => link.code);

    bare = spawn(process.execPath, ['--import', 'tsx', 'bench/bare-server.ts'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const barePortLine = new Promise<number>((resolve) => bare?.stdout?.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))));
    bare.stdin?.end(JSON.stringify(links.map((link) => [link.code, link.url])));
    const barePort = await barePortLine;

    const shuntRounds: Result[] = [];
    const bareRounds: Result[] = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      shuntRounds.push(await drive('shunt (embedded, cache hit)', shuntPort, codes, round === 0));
      bareRounds.push(await drive('bare node:http + Map', barePort, codes, round === 0));
      console.log(`round ${round + 1}: shunt ${shuntRounds[round]?.rps} req/s, bare ${bareRounds[round]?.rps} req/s`);
    }
    const shuntResult = combine(shuntRounds);
    const bareResult = combine(bareRounds);

    console.log(`\nRedirects over ${LINKS} links, ${CONNECTIONS} connections, medians of ${ROUNDS} alternating rounds of ${SECONDS} s, Node ${process.version}\n`);
    console.log('target                          req/s     p50 ms   p99 ms   bad   errors');
    for (const result of [shuntResult, bareResult]) {
      console.log(
        `${result.name.padEnd(30)} ${String(result.rps).padStart(7)} ${String(result.p50).padStart(9)} ${String(result.p99).padStart(8)} ${String(result.non2xx3xx).padStart(5)} ${String(result.errors).padStart(8)}`,
      );
    }
    console.log(`\nratio shunt / bare: ${(shuntResult.rps / bareResult.rps).toFixed(2)}`);
  } finally {
    bare?.kill('SIGTERM');
    shunt.kill('SIGTERM');
    await new Promise((resolve) => shunt.once('exit', resolve));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
