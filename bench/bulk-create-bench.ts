/**
 * Bulk create throughput: BENCH_REQUESTS (20) POST /api/v1/links/bulk requests of 1,000 new
 * links each, first one after another, then from 4 concurrent clients; prints links/s.
 * Every item gets a generated code; BENCH_IDEMPOTENCY=1 sends each request with an
 * Idempotency-Key (the items then commit with the stored answer).
 *
 *   npm run bench:bulk                          PostgreSQL
 *   BENCH_STORE=embedded npm run bench:bulk     the embedded store (PGlite)
 */
import { randomUUID } from 'node:crypto';
import { ADMIN_KEY, startTarget } from './lib.js';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 20);
const ITEMS = 1000;
const CLIENTS = 4;
const STORE = process.env.BENCH_STORE === 'embedded' ? 'embedded' : 'postgres';
const IDEMPOTENT = process.env.BENCH_IDEMPOTENCY === '1';

let sent = 0;

async function bulk(port: number): Promise<void> {
  const batch = sent++;
  const links = Array.from({ length: ITEMS }, (_, i) => ({ url: `https://example.com/bulk/${batch}/${i}?ref=bench` }));
  const response = await fetch(`http://127.0.0.1:${port}/api/v1/links/bulk`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${ADMIN_KEY}`,
      'content-type': 'application/json',
      ...(IDEMPOTENT ? { 'idempotency-key': randomUUID() } : {}),
    },
    body: JSON.stringify({ links }),
  });
  const body = (await response.json()) as { items?: { status: number }[] };
  const created = body.items?.filter((item) => item.status === 201).length ?? 0;
  if (response.status !== 200 || created !== ITEMS) throw new Error(`bulk answered ${response.status} with ${created} of ${ITEMS} created`);
}

/** `REQUESTS` bulk requests shared among `clients` loops; links/s over the whole run. */
async function run(port: number, clients: number): Promise<number> {
  let left = REQUESTS;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (left > 0) {
        left -= 1;
        await bulk(port);
      }
    }),
  );
  return Math.round((REQUESTS * ITEMS) / ((performance.now() - started) / 1000));
}

const target = await startTarget(STORE, { LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn' });
const { port } = target;
try {
  // Warm-up: the first request compiles the path and leases the first blocks of codes.
  await bulk(port);
  const sequential = await run(port, 1);
  const concurrent = await run(port, CLIENTS);
  console.log(`store: ${STORE}, ${REQUESTS} requests of ${ITEMS} links${IDEMPOTENT ? ', each with an Idempotency-Key' : ''}, Node ${process.version}`);
  console.log(`sequential:          ${sequential} links/s`);
  console.log(`${CLIENTS} concurrent clients: ${concurrent} links/s`);
} finally {
  await target.close();
}
