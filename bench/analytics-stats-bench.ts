/**
 * linkStats on a link with about 10 million clicks over a year, answered from rollups: the
 * rollup rows such traffic leaves behind are generated directly (generate_series), with
 * every counter row split over all 8 shards, the most rows a read can meet. Prints the
 * rows generated, then each query's median time and its totals (to check the sums); then
 * compacts every day but the last (rollup-compaction.ts, the daily job) and times again.
 *
 *   npx tsx bench/analytics-stats-bench.ts                          # PostgreSQL (TEST_DATABASE_URL or local)
 *   BENCH_BACKEND=embedded npx tsx bench/analytics-stats-bench.ts   # PGlite
 *
 * Per day and shard: 3,000 human and 424 bot clicks (8 shards x 365 days = 9,998,080
 * clicks), spread over 300 referrer hosts, 60 countries and 80 browser/OS/device
 * combinations with Zipf-like weights, over 24 hours; minute rows for the last 14 days
 * only (minute counters are pruned after a couple of weeks).
 */
import { compactRollups } from '../src/analytics/rollup-compaction.js';
import { linkStats, type LinkStatsOptions } from '../src/analytics/stats-query.js';
import { openDatabase, type Database } from '../src/storage/database.js';
import { migrate } from '../src/storage/migrate.js';
import { createPostgresDatabase } from '../test/helpers/backends.js';
import { median } from './lib.js';

const BACKEND = process.env.BENCH_BACKEND === 'embedded' ? 'embedded' : 'postgres';
const RUNS = Number(process.env.BENCH_RUNS ?? 7);

const CODE = 'big';
/** Ids of the other links whose rows share the tables (no link row needed: rollups have no foreign key). */
const OTHER_IDS_FROM = 1_000_000_000;
const SHARDS = 8;
const DAYS = 365;
const FIRST_DAY = Date.parse('2025-01-01T00:00:00.000Z');
const END = FIRST_DAY + DAYS * 86_400_000;
const HUMAN_PER_DAY_SHARD = 3000;
const BOT_PER_DAY_SHARD = 424;
const MINUTE_DAYS = 14;

/** `n` positive integers with weights 1/k that add up to exactly `total`. */
function zipfSplit(total: number, n: number): number[] {
  const harmonic = Array.from({ length: n }, (_, k) => 1 / (k + 1)).reduce((a, b) => a + b, 0);
  const parts = Array.from({ length: n }, (_, k) => Math.max(1, Math.floor(total / ((k + 1) * harmonic))));
  parts[0] = (parts[0] ?? 0) + total - parts.reduce((a, b) => a + b, 0);
  return parts;
}

async function openStore(): Promise<{ db: Database; drop: () => Promise<void> }> {
  if (BACKEND === 'embedded') {
    const db = await openDatabase({ url: undefined, dataDir: 'memory://', poolSize: 1 });
    return { db, drop: () => db.close() };
  }
  const database = await createPostgresDatabase();
  const db = await openDatabase({ url: database.url, dataDir: 'memory://', poolSize: 4, applicationName: 'shunt-stats-bench' });
  return {
    db,
    drop: async () => {
      await db.close();
      await database.drop();
    },
  };
}

async function generate(db: Database): Promise<string> {
  const link = await db.query<{ id: string }>(`INSERT INTO links (code, custom_alias, url) VALUES ($1, true, 'https://example.com/big') RETURNING id::text AS id`, [CODE]);
  const linkId = link.rows[0]?.id;
  if (linkId === undefined) throw new Error('the link was not created');
  const days = `generate_series(0, ${DAYS - 1}) AS d(n)`;
  const shards = `generate_series(0, ${SHARDS - 1}) AS s(shard)`;
  const dayStart = `'${new Date(FIRST_DAY).toISOString()}'::timestamptz + d.n * interval '1 day'`;
  const hours = zipfSplit(HUMAN_PER_DAY_SHARD, 24).map((_, h) => Math.floor(HUMAN_PER_DAY_SHARD / 24) + (h < HUMAN_PER_DAY_SHARD % 24 ? 1 : 0));
  const botHours = hours.map((_, h) => Math.floor(BOT_PER_DAY_SHARD / 24) + (h < BOT_PER_DAY_SHARD % 24 ? 1 : 0));
  await db.query(
    `INSERT INTO link_clicks_day (link_id, bucket, shard, human, bot, visitors, human_visitors)
     SELECT $1, ${dayStart}, s.shard, $2, $3, 2000, 1900 FROM ${days}, ${shards}`,
    [linkId, HUMAN_PER_DAY_SHARD, BOT_PER_DAY_SHARD],
  );
  await db.query(
    `INSERT INTO link_clicks_hour (link_id, bucket, shard, human, bot)
     SELECT $1, ${dayStart} + (h.n - 1) * interval '1 hour', s.shard, h.human, h.bot
     FROM ${days}, ${shards}, unnest($2::int[], $3::int[]) WITH ORDINALITY AS h(human, bot, n)`,
    [linkId, hours, botHours],
  );
  // Minutes of the last days: each hour's clicks spread over its 60 minutes.
  await db.query(
    `INSERT INTO link_clicks_minute (link_id, bucket, shard, human, bot)
     SELECT link_id, bucket + m.n * interval '1 minute', shard, human / 60 + (CASE WHEN m.n < human % 60 THEN 1 ELSE 0 END),
            bot / 60 + (CASE WHEN m.n < bot % 60 THEN 1 ELSE 0 END)
     FROM link_clicks_hour, generate_series(0, 59) AS m(n)
     WHERE link_id = $1 AND bucket >= $2`,
    [linkId, new Date(END - MINUTE_DAYS * 86_400_000).toISOString()],
  );
  const breakdown = async (dimension: string, n: number, value: (i: string) => string): Promise<void> => {
    await db.query(
      `INSERT INTO link_breakdown_day (link_id, bucket, dimension, value, shard, human, bot)
       SELECT $1, ${dayStart}, $2, ${value('v.i')}, s.shard, v.human, v.bot
       FROM ${days}, ${shards}, unnest($3::int[], $4::int[]) WITH ORDINALITY AS v(human, bot, i)`,
      [linkId, dimension, zipfSplit(HUMAN_PER_DAY_SHARD, n), zipfSplit(BOT_PER_DAY_SHARD, n)],
    );
  };
  await breakdown('referrer', 300, (i) => `'ref' || ${i} || '.example'`);
  await breakdown('country', 60, (i) => `chr(65 + ${i}::int % 26) || chr(65 + ${i}::int / 26)`);
  await db.query(
    `INSERT INTO link_agents_day (link_id, bucket, browser, os, device, shard, human, bot)
     SELECT $1, ${dayStart}, 'Browser ' || v.i % 12, 'OS ' || v.i % 9, (ARRAY['desktop', 'mobile', 'tablet', 'bot', 'other'])[v.i % 5 + 1],
            s.shard, v.human, v.bot
     FROM ${days}, ${shards}, unnest($2::int[], $3::int[]) WITH ORDINALITY AS v(human, bot, i)`,
    [linkId, zipfSplit(HUMAN_PER_DAY_SHARD, 80), zipfSplit(BOT_PER_DAY_SHARD, 80)],
  );
  // Other links in the same tables, so the one asked for is not alone in its indexes.
  await db.query(
    `INSERT INTO link_breakdown_day (link_id, bucket, dimension, value, shard, human, bot)
     SELECT ${OTHER_IDS_FROM} + o.n, ${dayStart}, 'referrer', 'ref' || o.n % 7 || '.example', 0, 3, 0
     FROM ${days}, generate_series(1, 2000) AS o(n)`,
  );
  await db.query('ANALYZE');
  return linkId;
}

async function time(db: Database, linkId: string, label: string, options: LinkStatsOptions): Promise<void> {
  const ms: number[] = [];
  let result = await linkStats(db, linkId, options);
  for (let run = 0; run < RUNS; run += 1) {
    const started = process.hrtime.bigint();
    result = await linkStats(db, linkId, options);
    ms.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  const top = result.referrers[0];
  console.log(
    `${label.padEnd(40)} median ${median(ms).toFixed(1).padStart(7)} ms  (min ${Math.min(...ms).toFixed(1)}, max ${Math.max(...ms).toFixed(1)})` +
      `  points ${String(result.series.length).padStart(5)}  clicks ${result.totals.clicks.toLocaleString('en').padStart(10)}` +
      `  uniques ${result.totals.uniques.toLocaleString('en')}  top referrer ${top?.value ?? '-'} ${top?.clicks.toLocaleString('en') ?? ''}`,
  );
}

const store = await openStore();
try {
  await migrate(store.db);
  const started = Date.now();
  const linkId = await generate(store.db);
  const counts = await store.db.query<{ name: string; n: string }>(
    `SELECT 'link_clicks_minute' AS name, count(*)::text AS n FROM link_clicks_minute WHERE link_id = $1
     UNION ALL SELECT 'link_clicks_hour', count(*)::text FROM link_clicks_hour WHERE link_id = $1
     UNION ALL SELECT 'link_clicks_day', count(*)::text FROM link_clicks_day WHERE link_id = $1
     UNION ALL SELECT 'link_breakdown_day', count(*)::text FROM link_breakdown_day WHERE link_id = $1
     UNION ALL SELECT 'link_agents_day', count(*)::text FROM link_agents_day WHERE link_id = $1`,
    [linkId],
  );
  const expected = (HUMAN_PER_DAY_SHARD + BOT_PER_DAY_SHARD) * SHARDS * DAYS;
  console.log(`linkStats on ${BACKEND}: link '${CODE}' with ${expected.toLocaleString('en')} clicks over ${DAYS} days, generated in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`rollup rows of the link: ${counts.rows.map((row) => `${row.name} ${Number(row.n).toLocaleString('en')}`).join(', ')}\n`);
  const year = { from: new Date(FIRST_DAY), to: new Date(END), top: 10 };
  const queries = async (): Promise<void> => {
    await time(store.db, linkId, 'year by day, bots included', { ...year, interval: 'day', bots: 'include' });
    await time(store.db, linkId, 'year by day, bots excluded', { ...year, interval: 'day', bots: 'exclude' });
    await time(store.db, linkId, 'year by hour (8,760 points)', { ...year, interval: 'hour', bots: 'include' });
    await time(store.db, linkId, 'last 10,000 minutes by minute', { from: new Date(END - 10_000 * 60_000), to: new Date(END), interval: 'minute', bots: 'include', top: 10 });
    await time(store.db, linkId, 'last 30 days by day', { from: new Date(END - 30 * 86_400_000), to: new Date(END), interval: 'day', bots: 'include', top: 10 });
  };
  console.log('every row on 8 shards (no compaction):');
  await queries();
  const compactStarted = Date.now();
  const compacted = await compactRollups(store.db, new Date(FIRST_DAY), new Date(END - 86_400_000));
  await store.db.query('VACUUM ANALYZE');
  const after = await store.db.query<{ n: string }>(
    `SELECT (SELECT count(*) FROM link_breakdown_day WHERE link_id = $1) + (SELECT count(*) FROM link_agents_day WHERE link_id = $1) AS n`,
    [linkId],
  );
  console.log(
    `\ncompacted ${DAYS - 1} days in ${((Date.now() - compactStarted) / 1000).toFixed(1)} s (${compacted.folded.toLocaleString('en')} rows folded);` +
      ` breakdown + agent rows now ${Number(after.rows[0]?.n).toLocaleString('en')}:`,
  );
  await queries();
} finally {
  await store.drop();
}
