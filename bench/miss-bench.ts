/**
 * Cache-miss redirects: 1,000,000 links in PostgreSQL, uniformly random codes, Redis on
 * and the in-process cache off, so nearly every request goes to Redis and then to
 * PostgreSQL. Printed next to the ceiling for that work: a loop of raw `pg` lookups of
 * the same codes with as many connections as Shunt's pool.
 *
 *   npm run bench:miss
 *   BENCH_LINKS=1000000 BENCH_SECONDS=20 npm run bench:miss
 */
import type { ChildProcess } from 'node:child_process';
import pg from 'pg';
import { createPostgresDatabase } from '../test/helpers/backends.js';
import { freePort } from '../test/helpers/process.js';
import { CONNECTIONS, drive, dropRedisKeys, printTable, SECONDS, startBuiltShunt, stop, type Result } from './lib.js';

const LINKS = Number(process.env.BENCH_LINKS ?? 1_000_000);
const POOL = Number(process.env.BENCH_POOL ?? 10);

/** `POOL` concurrent loops of single-row lookups by code, for SECONDS. */
async function rawLookups(url: string, codes: readonly string[]): Promise<Result> {
  const pool = new pg.Pool({ connectionString: url, max: POOL });
  const latencies: number[] = [];
  const deadline = Date.now() + SECONDS * 1000;
  let count = 0;
  await Promise.all(
    Array.from({ length: POOL }, async () => {
      while (Date.now() < deadline) {
        const started = performance.now();
        await pool.query('SELECT id, code, url, redirect_type, expires_at, max_visits, disabled FROM links WHERE code = $1', [
          codes[Math.floor(Math.random() * codes.length)],
        ]);
        latencies.push(performance.now() - started);
        count += 1;
      }
    }),
  );
  await pool.end();
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => Math.round((latencies[Math.floor(latencies.length * q)] ?? 0) * 100) / 100;
  return { name: `raw pg lookup loop (${POOL} connections)`, rps: Math.round(count / SECONDS), p50: at(0.5), p99: at(0.99), bad: 0, errors: 0 };
}

const database = await createPostgresDatabase();
const prefix = `bench-miss-${process.pid}`;
let shunt: ChildProcess | undefined;
try {
  const port = await freePort();
  shunt = await startBuiltShunt(port, {
    DATABASE_URL: database.url,
    DATABASE_POOL_SIZE: String(POOL),
    REDIS_URL: 'redis://127.0.0.1:6379',
    REDIS_KEY_PREFIX: prefix,
    CACHE_MAX_ENTRIES: '0',
    WORKERS: '1',
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
  });
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  const loadStarted = Date.now();
  await admin.query(
    `INSERT INTO links (code, custom_alias, url)
     SELECT 'm' || i, true, 'https://example.com/m/' || i FROM generate_series(1, $1::int) AS i`,
    [LINKS],
  );
  await admin.query('ANALYZE links');
  await admin.end();
  console.log(`loaded ${LINKS} links in ${((Date.now() - loadStarted) / 1000).toFixed(1)} s`);
  const codes = Array.from({ length: LINKS }, (_, i) => `m${i + 1}`);

  const raw = await rawLookups(database.url, codes);
  const shuntResult = await drive('shunt (LRU off, Redis + PostgreSQL)', port, codes, true);
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const tier = (name: string, result: string): string => /\d+/.exec(metrics.split('\n').find((line) => line.startsWith(`shunt_cache_requests_total{tier="${name}",result="${result}"}`)) ?? '')?.[0] ?? '?';
  printTable(`Cache-miss redirects over ${LINKS} links, ${CONNECTIONS} connections, ${SECONDS} s, Node ${process.version}`, [shuntResult, raw]);
  console.log(`\nredis hits ${tier('redis', 'hit')}, redis misses ${tier('redis', 'miss')}, store lookups ${tier('store', 'hit')}`);
  console.log(`ratio shunt / raw pg loop: ${(shuntResult.rps / raw.rps).toFixed(2)}`);
} finally {
  await stop(shunt);
  await database.drop();
  await dropRedisKeys(prefix);
}
