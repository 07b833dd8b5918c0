/**
 * Throughput of the analytics writer alone (src/analytics/analytics-writer.ts): enriched
 * clicks already in memory, written with writeBatch into a fresh database, which this
 * script creates and drops. Prints events/s per scenario (median of the rounds).
 *
 *   npx tsx bench/analytics-writer-bench.ts                         # PostgreSQL (TEST_DATABASE_URL or local)
 *   BENCH_BACKEND=embedded npx tsx bench/analytics-writer-bench.ts  # PGlite, in this thread as the store thread runs it
 *   BENCH_EVENTS=200000 BENCH_ROUNDS=3 npx tsx bench/analytics-writer-bench.ts
 *   BENCH_RAW=compare npx tsx bench/analytics-writer-bench.ts        # raw events by COPY against JSON
 *
 * BENCH_RAW=compare runs one scenario (batches of 1,000, one writer) in alternating rounds with
 * the raw events by COPY and by json_to_recordset (a transaction without COPY, as a thread
 * proxy has), and prints CPU per event: this process (the writer, and PGlite when embedded) and
 * the PostgreSQL backends of the bench's database, from /proc. CPU time, unlike events/s, holds
 * up on a machine that other work shares.
 *
 * Traffic model: links drawn from a Zipf-like distribution over BENCH_LINKS links (a few
 * hot links, a long tail), a visitor pool of 200,000, ten countries, referrers, browsers,
 * OS and devices, 3% bots; click times advance by 50 µs per event (20,000 events/s), so a
 * batch spans a realistic handful of minute buckets. Every scenario writes new events.
 */
import { writeBatch } from '../src/analytics/analytics-writer.js';
import { ensurePartitions } from '../src/analytics/click-partitions.js';
import type { EnrichedClick } from '../src/analytics/enriched-click.js';
import { uuidv7 } from '../src/shared/uuid-v7.js';
import { openDatabase, type Database } from '../src/storage/database.js';
import { openPglite } from '../src/storage/embedded-pglite.js';
import { migrate } from '../src/storage/migrate.js';
import { createPostgresDatabase } from '../test/helpers/backends.js';
import { median } from './lib.js';
import { cpuMsOf } from '../test/helpers/proc-stat.js';

const BACKEND = process.env.BENCH_BACKEND === 'embedded' ? 'embedded' : 'postgres';
const EVENTS = Number(process.env.BENCH_EVENTS ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const LINKS = Number(process.env.BENCH_LINKS ?? 10_000);

const COUNTRIES = ['US', 'DE', 'GB', 'FR', 'IN', 'BR', 'JP', 'CA', 'NL', null] as const;
const REFERRERS = [null, null, 'google.com', 't.co', 'news.ycombinator.com', 'www.reddit.com', 'www.linkedin.com', 'android-app', 'mail.google.com'] as const;
const BROWSERS = [['Chrome', 'Windows', 'desktop'], ['Safari', 'iOS', 'mobile'], ['Chrome', 'Android', 'mobile'], ['Firefox', 'Linux', 'desktop'], ['Safari', 'macOS', 'desktop'], ['Microsoft Edge', 'Windows', 'desktop'], ['Safari', 'iOS', 'tablet']] as const;
const START = Date.parse('2025-03-10T00:00:00.000Z');

let clock = START;
let serial = 0;

/** Link index with P(k) ~ 1/k: link 0 gets about a tenth of all clicks at 10,000 links. */
function zipf(n: number): number {
  const h = Math.log(n) + 0.5772;
  return Math.min(n - 1, Math.floor(Math.exp(Math.random() * h)) - 1);
}

function makeEvents(count: number, code: () => string): EnrichedClick[] {
  return Array.from({ length: count }, () => {
    serial += 1;
    clock += 0.05;
    const bot = serial % 33 === 0;
    const [browser, os, device] = BROWSERS[serial % BROWSERS.length] ?? BROWSERS[0];
    const at = new Date(Math.floor(clock));
    const linkCode = code();
    return {
      id: uuidv7(),
      // The bench's codes are `c<n>`: link n + 1.
      linkId: String(Number(linkCode.replace(/\D/g, '') || 0) + 1),
      code: linkCode,
      at,
      method: 'GET',
      referrerHost: REFERRERS[serial % REFERRERS.length] ?? null,
      country: COUNTRIES[Math.floor(Math.random() * COUNTRIES.length)] ?? null,
      browser: bot ? 'Googlebot' : browser,
      os: bot ? null : os,
      device: (bot ? 'bot' : device),
      bot,
      visitor: serial % 20 === 0 ? null : (Math.floor(Math.random() * 200_000)).toString(16).padStart(32, '0'),
      ip: null,
      userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
      referrer: null,
    };
  });
}

async function openStore(): Promise<{ open: (poolSize: number) => Promise<Database>; drop: () => Promise<void> }> {
  if (BACKEND === 'embedded') {
    // PGlite itself, as the store thread's click writer has it (not the proxy other threads use).
    const db = await openPglite('memory://');
    return { open: () => Promise.resolve(db), drop: () => db.close() };
  }
  const database = await createPostgresDatabase();
  const opened: Database[] = [];
  return {
    open: async (poolSize) => {
      const db = await openDatabase({ url: database.url, dataDir: 'memory://', poolSize, applicationName: 'shunt-analytics-bench' });
      opened.push(db);
      return db;
    },
    drop: async () => {
      await Promise.all(opened.map((db) => db.close()));
      await database.drop();
    },
  };
}

interface Scenario {
  name: string;
  batch: number;
  writers: number;
  code: () => string;
}

async function run(db: Database, scenario: Scenario): Promise<number> {
  const perWriter = Math.floor(EVENTS / scenario.writers);
  // Generated before timing starts: only the writer is measured.
  const work = Array.from({ length: scenario.writers }, () => {
    const events = makeEvents(perWriter, scenario.code);
    const batches: EnrichedClick[][] = [];
    for (let i = 0; i < events.length; i += scenario.batch) batches.push(events.slice(i, i + scenario.batch));
    return batches;
  });
  const started = process.hrtime.bigint();
  await Promise.all(
    work.map(async (batches, writer) => {
      for (const batch of batches) await writeBatch(db, batch, { shard: writer });
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return (perWriter * scenario.writers) / seconds;
}

/** The same store with transactions that cannot COPY: the raw events then go in as JSON. */
function withoutCopy(db: Database): Database {
  return { ...db, transaction: (work) => db.transaction((tx) => work({ query: (text, params) => tx.query(text, params) })) };
}

/** CPU ms so far of this process and of the PostgreSQL backends serving this database. */
async function cpuMs(db: Database): Promise<{ node: number; postgres: number }> {
  const usage = process.cpuUsage();
  if (BACKEND === 'embedded') return { node: (usage.user + usage.system) / 1000, postgres: 0 };
  const backends = await db.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database()');
  return { node: (usage.user + usage.system) / 1000, postgres: cpuMsOf(backends.rows.map((row) => row.pid)) };
}

async function compareRawInserts(db: Database, code: () => string): Promise<void> {
  const scenario: Scenario = { name: 'batch 1000, 1 writer, Zipf over links', batch: 1000, writers: 1, code };
  const sides = [
    { name: 'COPY', db },
    { name: 'json_to_recordset', db: withoutCopy(db) },
  ];
  const measured = new Map(sides.map((side) => [side.name, { rates: [] as number[], node: [] as number[], postgres: [] as number[] }]));
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const side of round % 2 === 0 ? sides : [...sides].reverse()) {
      const before = await cpuMs(db);
      const rate = await run(side.db, scenario);
      const after = await cpuMs(db);
      const events = Math.floor(EVENTS / scenario.writers) * scenario.writers;
      const m = measured.get(side.name)!;
      m.rates.push(rate);
      m.node.push(((after.node - before.node) * 1000) / events);
      m.postgres.push(((after.postgres - before.postgres) * 1000) / events);
    }
  }
  const list = (values: number[], digits: number): string => values.map((v) => v.toFixed(digits)).join(', ');
  for (const [name, m] of measured) {
    console.log(`${name.padEnd(18)} ${Math.round(median(m.rates)).toLocaleString('en').padStart(7)} events/s (${list(m.rates, 0)})`);
    console.log(`${''.padEnd(18)} CPU µs per event: node ${median(m.node).toFixed(1)} (${list(m.node, 1)}), PostgreSQL backends ${median(m.postgres).toFixed(1)} (${list(m.postgres, 1)})`);
  }
}

const store = await openStore();
try {
  const db = await store.open(4);
  await migrate(db);
  await ensurePartitions(db, new Date(START), new Date(START + 31 * 86_400_000));
  const tail = (): string => `link${zipf(LINKS)}`;
  const scenarios: Scenario[] = [
    { name: 'batch 1000, 1 writer, Zipf over links', batch: 1000, writers: 1, code: tail },
    { name: 'batch 5000, 1 writer, Zipf over links', batch: 5000, writers: 1, code: tail },
    { name: 'batch 1000, 2 writers, Zipf over links', batch: 1000, writers: 2, code: tail },
    { name: 'batch 5000, 2 writers, Zipf over links', batch: 5000, writers: 2, code: tail },
    { name: 'batch 5000, 2 writers, one hot link', batch: 5000, writers: 2, code: () => 'hot' },
  ].filter((scenario) => BACKEND === 'postgres' || scenario.writers === 1);
  console.log(`analytics writer on ${BACKEND}: ${EVENTS.toLocaleString('en')} events per round, ${ROUNDS} rounds, ${LINKS.toLocaleString('en')} links\n`);
  // One unmeasured round so the first scenario does not pay for cold caches and catalogs.
  await run(db, { ...scenarios[0]!, name: 'warm-up' });
  if (process.env.BENCH_RAW === 'compare') await compareRawInserts(db, tail);
  else for (const scenario of scenarios) {
    const rates: number[] = [];
    for (let round = 0; round < ROUNDS; round += 1) rates.push(await run(db, scenario));
    const shown = rates.map((rate) => Math.round(rate).toLocaleString('en')).join(', ');
    console.log(`${scenario.name.padEnd(44)} median ${Math.round(median(rates)).toLocaleString('en').padStart(7)} events/s   (rounds: ${shown})`);
  }
  const sizes = await db.query<{ name: string; rows: string }>(
    `SELECT relname AS name, n_live_tup::text AS rows FROM pg_stat_user_tables
     WHERE relname LIKE 'link\\_%' OR relname LIKE 'click_events%' ORDER BY relname`,
  );
  console.log(`\nrows: ${sizes.rows.filter((row) => row.rows !== '0').map((row) => `${row.name} ${Number(row.rows).toLocaleString('en')}`).join(', ')}`);
} finally {
  await store.drop();
}
