/**
 * Redirect latency while QR codes are being fetched: autocannon follows cached short links
 * while 4 clients fetch PNG QR codes in a loop, as fast as they are answered. Two
 * runs: every QR request for the same image (served from cache after the first), and
 * every QR request for an image not rendered yet (a new size each time, so each is
 * rendered in the worker thread). The redirect p99 of each is printed next to the
 * redirects alone. Embedded store, one process; figures on a busy machine are noisy.
 *
 *   npm run bench:qr
 *   BENCH_SECONDS=20 BENCH_QR_CLIENTS=4 npm run bench:qr
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { freePort } from '../test/helpers/process.js';
import { createLinks, drive, printTable, SECONDS, startBuiltShunt, stop, type Result } from './lib.js';

const QR_CLIENTS = Number(process.env.BENCH_QR_CLIENTS ?? 4);
const LINKS = 1000;

interface QrLoad {
  stop(): Promise<{ fetched: number; statuses: Record<number, number> }>;
}

/** `QR_CLIENTS` loops of PNG fetches; `fresh` asks each time for a size not rendered yet. */
function qrLoad(port: number, codes: readonly string[], fresh: boolean): QrLoad {
  let running = true;
  let fetched = 0;
  let nextSize = 64;
  const statuses: Record<number, number> = {};
  const loops = Array.from({ length: QR_CLIENTS }, async (_, client) => {
    while (running) {
      const code = codes[fresh ? Math.floor(Math.random() * codes.length) : client] ?? '';
      // 64..1024: 961 sizes per code, so a fresh run never asks for the same image twice.
      const size = fresh ? 64 + (nextSize++ % 961) : 1024;
      const response = await fetch(`http://127.0.0.1:${port}/${code}/qr?format=png&size=${size}`);
      await response.arrayBuffer();
      statuses[response.status] = (statuses[response.status] ?? 0) + 1;
      fetched += 1;
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return { fetched, statuses };
    },
  };
}

const dataDir = await mkdtemp(join(tmpdir(), 'shunt-qr-bench-'));
let shunt: ChildProcess | undefined;
try {
  const port = await freePort();
  shunt = await startBuiltShunt(port, { DATA_DIR: dataDir, WORKERS: '1', LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn', RATE_LIMIT_404_PER_MINUTE: '10000000' });
  const codes = (await createLinks(port, LINKS)).map(([code]) => code);
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
