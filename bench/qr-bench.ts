/**
 * Redirect latency while QR codes are being fetched: redirects of cached short links
 * while 4 clients fetch PNG QR codes in a loop, as fast as they are answered. Two
 * runs: every QR request for the same image (served from cache after the first), and
 * every QR request for an image not rendered yet (a new size each time, so each is
 * rendered in the worker thread). The redirect p99 of each is printed next to the
 * redirects alone. Embedded store, one process; figures on a busy machine are noisy.
 *
 * The QR clients read whole answers over keep-alive connections with a minimal client
 * (get-loop.ts): node:http's client would spend a core of this small machine on itself.
 *
 * Each paced run also prints the CPU Shunt's HTTP thread spent (from /proc, Linux) and the
 * QR clients' own, per PNG: figures that a busy machine disturbs less than latencies.
 *
 * Redirects come two ways: at full speed (autocannon, 50 connections: the p99 is then
 * mostly queueing), and at a steady BENCH_RATE (2,000/s), evenly paced (paced-load.ts),
 * which shows what QR traffic does to the latency of a redirect that does not queue.
 *
 *   npm run bench:qr
 *   BENCH_SECONDS=20 BENCH_QR_CLIENTS=4 BENCH_RATE=2000 npm run bench:qr
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { freePort } from '../test/helpers/process.js';
import { BROWSER_UA, createLinks, drive, mainThreadCpuMs, printTable, SECONDS, startBuiltShunt, stop, type Result } from './lib.js';
import { getLoop, type LoopStats } from './get-loop.js';
import { pacedLoad, type PacedResult } from './paced-load.js';

const QR_CLIENTS = Number(process.env.BENCH_QR_CLIENTS ?? 4);
const LINKS = 1000;
const RATE = Number(process.env.BENCH_RATE ?? 2000);
/** The size of the one image each client of the cached run fetches. */
const CACHED_SIZE = 1024;

function qrPath(code: string, size: number): string {
  return `/${code}/qr?format=png&size=${size}`;
}

interface QrLoad {
  stop(): Promise<{ fetched: number; statuses: Record<number, number> }>;
}

/** `QR_CLIENTS` loops of PNG fetches, one keep-alive connection each; `fresh` asks each time for a size not rendered yet. */
function qrLoad(port: number, codes: readonly string[], fresh: boolean): QrLoad {
  let running = true;
  let nextSize = 64;
  const stats: LoopStats = { fetched: 0, bytes: 0, statuses: {} };
  const loops = Array.from({ length: QR_CLIENTS }, (_, client) => {
    const nextPath = (): string => {
      const code = codes[fresh ? Math.floor(Math.random() * codes.length) : client] ?? '';
      // 64..1024: 961 sizes per code, so a fresh run never asks for the same image twice.
      return qrPath(code, fresh ? 64 + (nextSize++ % 961) : CACHED_SIZE);
    };
    return getLoop(port, nextPath, 'image/png', () => running, stats);
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return { fetched: stats.fetched, statuses: stats.statuses };
    },
  };
}

const dataDir = await mkdtemp(join(tmpdir(), 'shunt-qr-bench-'));
let shunt: ChildProcess | undefined;
try {
  const port = await freePort();
  shunt = await startBuiltShunt(port, { DATA_DIR: dataDir, WORKERS: '1', LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn', RATE_LIMIT_404_PER_MINUTE: '10000000' });
  const codes = (await createLinks(port, LINKS)).map(([code]) => code);

  const paced = (): Promise<PacedResult> => pacedLoad({ port, rate: RATE, seconds: SECONDS, connections: 100, paths: codes.map((code) => `/${code}`), headers: { 'user-agent': BROWSER_UA } });
  const server = shunt;
  /** A paced run, with the CPU Shunt's HTTP thread and this process (the QR clients: the paced load runs apart) spent meanwhile. */
  const measured = async (): Promise<{ result: PacedResult; httpMs: number; clientsMs: number }> => {
    const http = mainThreadCpuMs(server);
    const own = process.cpuUsage();
    const result = await paced();
    const used = process.cpuUsage(own);
    return { result, httpMs: mainThreadCpuMs(server) - http, clientsMs: (used.user + used.system) / 1000 };
  };
  console.log(`Redirects at a steady ${RATE}/s for ${SECONDS} s (latency ms from the request written; from the instant it was due in brackets)\n`);
  const report = (name: string, result: PacedResult, qr = ''): void => {
    const { fromWritten: w, fromDue: d } = result;
    console.log(`${name.padEnd(44)} p50 ${w.p50}  p99 ${w.p99}  p99.9 ${w.p999}  (p99 ${d.p99})  non-302 ${result.answered - (result.statuses['302'] ?? 0)}, errors ${result.errors}${qr}`);
  };
  const share = (ms: number): string => `${Math.round(ms / SECONDS / 10)}%`;
  // Warm the link cache and the JIT, as on a server that has been up a while.
  await pacedLoad({ port, rate: RATE, seconds: 3, connections: 100, paths: codes.map((code) => `/${code}`), headers: { 'user-agent': BROWSER_UA } });
  const alone = await measured();
  report('redirects alone', alone.result, `; HTTP thread ${share(alone.httpMs)} of a core`);
  // The cached run measures cached images only: each client's is rendered before it starts.
  for (const code of codes.slice(0, QR_CLIENTS)) await fetch(`http://127.0.0.1:${port}${qrPath(code, CACHED_SIZE)}`).then((response) => response.arrayBuffer());
  for (const fresh of [false, true]) {
    const load = qrLoad(port, codes, fresh);
    const { result, httpMs, clientsMs } = await measured();
    const { fetched, statuses } = await load.stop();
    const perPng = (ms: number): string => `${Math.round((ms * 1000) / Math.max(1, fetched))} µs per PNG`;
    // New images are rendered on another thread, and too few for a per-image share of the HTTP thread.
    const cpu = fresh
      ? `HTTP thread ${share(httpMs)} of a core, QR clients ${share(clientsMs)}`
      : `HTTP thread ${share(httpMs)} of a core (${perPng(httpMs - alone.httpMs)} over the redirects alone), QR clients ${share(clientsMs)} (${perPng(clientsMs)})`;
    report(`redirects + ${QR_CLIENTS} clients fetching ${fresh ? 'new' : 'cached'} QR PNGs`, result, `; QR ${fetched} (${Math.round(fetched / SECONDS)}/s) ${JSON.stringify(statuses)}; ${cpu}`);
  }

  // Full speed last: it leaves the store thread a backlog of clicks that would weigh on a paced run.
  const results: Result[] = [await drive('redirects alone', port, codes, true)];
  for (const fresh of [false, true]) {
    const load = qrLoad(port, codes, fresh);
    const result = await drive(`redirects + ${QR_CLIENTS} clients fetching ${fresh ? 'new' : 'cached'} QR PNGs`, port, codes, false);
    const { fetched, statuses } = await load.stop();
    results.push(result);
    console.log(`${fresh ? 'new' : 'cached'} QR PNGs: ${fetched} fetched in ${SECONDS} s (${Math.round(fetched / SECONDS)}/s), statuses ${JSON.stringify(statuses)}`);
  }
  printTable(`Redirect latency under QR load (p99 should stay under 10 ms), Node ${process.version}`, results);
} finally {
  await stop(shunt);
  await rm(dataDir, { recursive: true, force: true });
}
