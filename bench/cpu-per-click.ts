/**
 * CPU per redirect and per click, by thread: BENCH_RATE redirects/s (2,000) for BENCH_SECONDS
 * (20), evenly paced, over 1,000 links with a browser user agent, once with clicks on and
 * once with CLICKS_ENABLED=false. CPU time comes from /proc for each of the server's threads,
 * from before the load until every click is stored (the server's CPU falls idle):
 *
 * - the HTTP thread (the main thread), which answers redirects;
 * - background threads (nice 10: the embedded store's thread, or the click consumer of
 *   `ROLE=all` on PostgreSQL), which enrich and store clicks;
 * - V8's and libuv's helper threads (garbage collection, compilation, file I/O);
 * - with BENCH_STORE=postgres, the PostgreSQL server's processes and RabbitMQ's broker.
 *
 * Per click = (clicks on - clicks off) / redirects, per thread: what a click adds.
 *
 *   npm run bench:cpu                          embedded default (npm start)
 *   BENCH_STORE=postgres npm run bench:cpu     ROLE=all with PostgreSQL + Redis + RabbitMQ
 *   BENCH_SHUNT_DIR=../old npm run bench:cpu   another build of Shunt (its dist/), e.g. an older commit
 */
import { readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { BROWSER_UA, createLinks, startTarget } from './lib.js';
import { procStat } from '../test/helpers/proc-stat.js';
import { pacedLoad } from './paced-load.js';

const RATE = Number(process.env.BENCH_RATE ?? 2000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const STORE = process.env.BENCH_STORE === 'postgres' ? 'postgres' : 'embedded';
const SHUNT_DIR = resolve(process.env.BENCH_SHUNT_DIR ?? '.');

type Part = 'http' | 'background' | 'helpers' | 'postgres' | 'broker';
type Cpu = Record<Part, number>;

function sample(pid: number): Cpu {
  const cpu: Cpu = { http: 0, background: 0, helpers: 0, postgres: 0, broker: 0 };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const thread = procStat(`/proc/${pid}/task/${tid}/stat`);
    if (thread === null) continue;
    if (Number(tid) === pid) cpu.http += thread.ms;
    else if (thread.nice > 0) cpu.background += thread.ms;
    else cpu.helpers += thread.ms;
  }
  if (STORE === 'postgres') {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const process = procStat(`/proc/${entry}/stat`);
      if (process?.comm === 'postgres') cpu.postgres += process.ms + process.childrenMs;
      else if (process?.comm === 'beam.smp') cpu.broker += process.ms;
    }
  }
  return cpu;
}

function minus(a: Cpu, b: Cpu): Cpu {
  return { http: a.http - b.http, background: a.background - b.background, helpers: a.helpers - b.helpers, postgres: a.postgres - b.postgres, broker: a.broker - b.broker };
}

async function run(clicks: boolean): Promise<{ cpu: Cpu; served: number }> {
  const target = await startTarget(STORE, { LOG_LEVEL: 'warn', CLICKS_ENABLED: String(clicks) }, STORE === 'postgres' ? { redis: true, amqp: true } : {});
  try {
    const { port } = target;
    const pid = target.child.pid ?? 0;
    const paths = (await createLinks(port, 1000)).map(([code]) => `/${code}`);
    const load = (seconds: number) => pacedLoad({ port, rate: RATE, seconds, connections: 100, paths, headers: { 'user-agent': BROWSER_UA } });
    await load(3);
    await quiet(pid);
    const before = sample(pid);
    const result = await load(SECONDS);
    await quiet(pid);
    const cpu = minus(sample(pid), before);
    return { cpu, served: result.statuses['302'] ?? 0 };
  } finally {
    await target.close();
  }
}

/** Until the server (and PostgreSQL, and the broker) used under 2% of a core for two seconds running. */
async function quiet(pid: number): Promise<void> {
  const total = (cpu: Cpu): number => cpu.http + cpu.background + cpu.helpers + cpu.postgres + cpu.broker;
  let calm = 0;
  for (let i = 0; i < 120 && calm < 2; i += 1) {
    const before = total(sample(pid));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    calm = total(sample(pid)) - before < 20 ? calm + 1 : 0;
  }
}

const off = await run(false);
const on = await run(true);
const parts: Part[] = STORE === 'postgres' ? ['http', 'background', 'helpers', 'postgres', 'broker'] : ['http', 'background', 'helpers'];
const us = (ms: number, n: number): string => ((ms * 1000) / n).toFixed(1).padStart(8);
const added = (onMs: number, offMs: number): string => ((onMs * 1000) / on.served - (offMs * 1000) / off.served).toFixed(1).padStart(8);
console.log(`\nCPU µs per redirect, ${RATE}/s for ${SECONDS} s over 1,000 links, ${STORE}${STORE === 'postgres' ? ' (ROLE=all, Redis, RabbitMQ)' : ''}, build ${SHUNT_DIR}, Node ${process.version}`);
console.log(`(clock ticks of 10 ms: each figure is ±${(10_000 / Math.min(on.served, off.served)).toFixed(2)} µs)\n`);
console.log(`${'part'.padEnd(12)} clicks off  clicks on  per click`);
for (const part of parts) {
  console.log(`${part.padEnd(12)} ${us(off.cpu[part], off.served)}   ${us(on.cpu[part], on.served)}   ${added(on.cpu[part], off.cpu[part])}`);
}
const sum = (cpu: Cpu): number => parts.reduce((total, part) => total + cpu[part], 0);
console.log(`${'total'.padEnd(12)} ${us(sum(off.cpu), off.served)}   ${us(sum(on.cpu), on.served)}   ${added(sum(on.cpu), sum(off.cpu))}`);
console.log(`\nredirects: ${off.served} with clicks off, ${on.served} with clicks on`);
