/**
 * Cache-hit redirects with 2 workers (WORKERS=2, PostgreSQL + Redis) against two ceilings
 * on the same machine in the same run: the bare node:http + Map server with 2 processes,
 * and nginx (2 worker processes) answering the 302s itself from a `map`.
 *
 *   npm run bench:workers
 *   BENCH_ROUNDS=5 BENCH_SECONDS=8 npm run bench:workers
 */
import type { ChildProcess } from 'node:child_process';
import { createPostgresDatabase } from '../test/helpers/backends.js';
import { freePort } from '../test/helpers/process.js';
import { alternate, dropRedisKeys, CONNECTIONS, createLinks, printTable, ROUNDS, SECONDS, startBare, startBuiltShunt, stop } from './lib.js';
import { startNginxCeiling, type NginxCeiling } from './nginx-ceiling.js';

const LINKS = Number(process.env.BENCH_LINKS ?? 1000);
const WORKERS = 2;

const redisPrefix = `bench-workers-${process.pid}`;
const database = await createPostgresDatabase();
let shunt: ChildProcess | undefined;
let bare: ChildProcess | undefined;
let nginx: NginxCeiling | undefined;
try {
  const port = await freePort();
  shunt = await startBuiltShunt(port, {
    DATABASE_URL: database.url,
    REDIS_URL: 'redis://127.0.0.1:6379',
    REDIS_KEY_PREFIX: redisPrefix,
    WORKERS: String(WORKERS),
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
  });
  const pairs = await createLinks(port, LINKS);
  const started = await startBare(pairs, WORKERS);
  bare = started.child;
  nginx = await startNginxCeiling(new Map(pairs), { workers: WORKERS });
  const nginxPort = Number(new URL(nginx.url).port);
  const results = await alternate(
    [
      { name: `shunt, ${WORKERS} workers (postgres + redis)`, port },
      { name: `bare node:http + Map, ${WORKERS} processes`, port: started.port },
      { name: `nginx map 302, ${WORKERS} workers`, port: nginxPort },
    ],
    pairs.map(([code]) => code),
  );
  const [shuntResult, bareResult, nginxResult] = results;
  if (shuntResult === undefined || bareResult === undefined || nginxResult === undefined) throw new Error('no results');
  printTable(`Redirects over ${LINKS} links, ${CONNECTIONS} connections, medians of ${ROUNDS} alternating rounds of ${SECONDS} s, Node ${process.version}`, results);
  console.log(`\nratio shunt / bare: ${(shuntResult.rps / bareResult.rps).toFixed(2)}, shunt / nginx: ${(shuntResult.rps / nginxResult.rps).toFixed(2)}`);
} finally {
  await nginx?.stop();
  await stop(bare);
  await stop(shunt);
  await database.drop();
  await dropRedisKeys(redisPrefix);
}
