/**
 * Cache-hit redirect throughput of one Shunt process against a bare node:http server
 * answering the same 302s from a Map, on the same machine, in the same run.
 *
 *   npm run bench                                  embedded store (npm start's default)
 *   BENCH_STORE=postgres npm run bench             PostgreSQL + Redis, as in production
 *   BENCH_CLICKS=off npm run bench                 with CLICKS_ENABLED=false (no analytics at all)
 *   BENCH_ROUNDS=5 BENCH_SECONDS=8 npm run bench   the recorded runs (see docs/benchmarks.md)
 *
 * The server's RSS is printed after the run.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPostgresDatabase } from '../test/helpers/backends.js';
import { freePort } from '../test/helpers/process.js';
import { alternate, dropRedisKeys, CONNECTIONS, createLinks, printTable, ROUNDS, rssMb, SECONDS, startBare, startBuiltShunt, stop } from './lib.js';

const LINKS = Number(process.env.BENCH_LINKS ?? 1000);
const STORE = process.env.BENCH_STORE === 'postgres' ? 'postgres' : 'embedded';
const CLICKS = process.env.BENCH_CLICKS !== 'off';

const dataDir = mkdtempSync(join(tmpdir(), 'shunt-bench-'));
const redisPrefix = `bench-${process.pid}`;
const database = STORE === 'postgres' ? await createPostgresDatabase() : null;
let shunt: ChildProcess | undefined;
let bare: ChildProcess | undefined;
try {
  const port = await freePort();
  shunt = await startBuiltShunt(port, {
    DATA_DIR: dataDir,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    CLICKS_ENABLED: String(CLICKS),
    ...(database === null ? {} : { DATABASE_URL: database.url, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_KEY_PREFIX: redisPrefix, WORKERS: '1' }),
  });
  const pairs = await createLinks(port, LINKS);
  const started = await startBare(pairs);
  bare = started.child;
  const [shuntResult, bareResult] = await alternate(
    [
      { name: `shunt, 1 process (${STORE}, cache hit${CLICKS ? '' : ', no clicks'})`, port },
      { name: 'bare node:http + Map', port: started.port },
    ],
    pairs.map(([code]) => code),
  );
  if (shuntResult === undefined || bareResult === undefined) throw new Error('no results');
  printTable(`Redirects over ${LINKS} links, ${CONNECTIONS} connections, medians of ${ROUNDS} alternating rounds of ${SECONDS} s, Node ${process.version}`, [shuntResult, bareResult]);
  console.log(`\nratio shunt / bare: ${(shuntResult.rps / bareResult.rps).toFixed(2)}`);
  console.log(`shunt RSS after the run: ${rssMb(shunt)} MB`);
} finally {
  await stop(bare);
  await stop(shunt);
  await database?.drop();
  if (database !== null) await dropRedisKeys(redisPrefix);
  rmSync(dataDir, { recursive: true, force: true });
}
