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
import { alternate, CONNECTIONS, createLinks, printTable, ROUNDS, rssMb, SECONDS, startBare, startTarget, stop } from './lib.js';

const LINKS = Number(process.env.BENCH_LINKS ?? 1000);
const STORE = process.env.BENCH_STORE === 'postgres' ? 'postgres' : 'embedded';
const CLICKS = process.env.BENCH_CLICKS !== 'off';

const target = await startTarget(
  STORE,
  { LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info', CLICKS_ENABLED: String(CLICKS) },
  STORE === 'postgres' ? { redis: true } : {},
);
const { port } = target;
let bare: ChildProcess | undefined;
try {
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
  // Work Shunt deferred (its store thread's backlog) ran after its rounds, on a machine each
  // round waited to be quiet again; counting that time gives the rate Shunt could sustain.
  const sustained = Math.round((shuntResult.rps * SECONDS) / (SECONDS + shuntResult.drainMs / 1000));
  console.log(`shunt busy ${(shuntResult.drainMs / 1000).toFixed(1)} s after each round (median); sustained ${sustained} req/s, ratio ${(sustained / bareResult.rps).toFixed(2)}`);
  console.log(`shunt RSS after the run: ${rssMb(target.child)} MB`);
} finally {
  await stop(bare);
  await target.close();
}
