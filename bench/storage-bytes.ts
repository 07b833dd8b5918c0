/**
 * Measures the byte figures `shunt capacity` works from, on PostgreSQL and Redis:
 *   npm run bench:bytes                          (BENCH_BYTES_LINKS, BENCH_BYTES_CLICKS to change the sizes)
 *   BENCH_BACKEND=embedded npm run bench:bytes   (the same tables in PGlite, the embedded default)
 * - bytes per link: pg_total_relation_size of links (table, TOAST and every index) after
 *   inserting N links with a title and two tags, divided by N;
 * - bytes per raw click: the size of every click_events partition after writing the clicks
 *   through the analytics writer, divided by the clicks;
 * - rollup bytes per click: the size of every rollup table (minute, hour, day, breakdowns,
 *   agents, visitors), divided by the clicks, at the density stated in the output;
 * - Redis bytes per cached link: growth of used_memory after caching N links the way the
 *   redirect path does (key, encoded link, expiry), divided by N.
 */
import { Redis } from 'ioredis';
import { writeBatch } from '../src/analytics/analytics-writer.js';
import { encodeCachedLink } from '../src/cache/link-codec.js';
import { cacheKeys } from '../src/cache/cache-keys.js';
import { LinkRepository, type BulkLink } from '../src/links/link-repository.js';
import { createPostgresDatabase } from '../test/helpers/backends.js';
import { makeClick, visitor } from '../test/helpers/enriched-click-fixture.js';
import { openDatabase, type Database } from '../src/storage/database.js';
import { openPglite } from '../src/storage/embedded-pglite.js';
import { migrate } from '../src/storage/migrate.js';

const LINKS = Number(process.env.BENCH_BYTES_LINKS ?? 100_000);
const CLICKS = Number(process.env.BENCH_BYTES_CLICKS ?? 200_000);
const CLICK_LINKS = 1000;
const DAYS = 10;
const REDIS_URL_GIVEN = process.env.REDIS_URL;
const REDIS_URL = REDIS_URL_GIVEN ?? 'redis://127.0.0.1:6379';

const BACKEND = process.env.BENCH_BACKEND === 'embedded' ? 'embedded' : 'postgres';

// PGlite is PostgreSQL's own storage in WASM: the same pages, so the same size functions apply.
const database = BACKEND === 'embedded' ? null : await createPostgresDatabase();
const db: Database = database === null ? await openPglite('memory://') : await openDatabase({ url: database.url, dataDir: 'memory://', poolSize: 4 });
try {
  await migrate(db);
  const links = new LinkRepository(db);
  const sample = (i: number): BulkLink => ({
    code: `b${i.toString(36).padStart(6, '0')}`, customAlias: false, url: `https://example.com/articles/${i}?utm_source=newsletter&utm_medium=email`,
    title: `Article number ${i} of the benchmark`, tags: ['bench', `batch-${i % 50}`], ownerKeyId: null, expiresAt: null, maxVisits: null,
    redirectType: 302, forwardQuery: true, fallbackUrl: null, disabled: false,
  });
  for (let i = 0; i < LINKS; i += 5000) await links.insertMany(Array.from({ length: Math.min(5000, LINKS - i) }, (_, j) => sample(i + j)));
  const size = async (sql: string): Promise<number> => Number((await db.query<{ bytes: string }>(sql)).rows[0]?.bytes ?? 0);
  await db.query('VACUUM ANALYZE links');
  const linkBytes = await size("SELECT pg_total_relation_size('links')::text AS bytes");

  const countries = ['DE', 'US', 'FR', null, 'GB'];
  const start = Date.parse('2025-03-01T00:00:00Z');
  const step = (DAYS * 86_400_000) / CLICKS;
  for (let i = 0; i < CLICKS; i += 5000) {
    const batch = Array.from({ length: Math.min(5000, CLICKS - i) }, (_, j) => {
      const n = i + j;
      return makeClick({
        code: `b${(n % CLICK_LINKS).toString(36).padStart(6, '0')}`, at: new Date(start + n * step), country: countries[n % countries.length] ?? null,
        referrerHost: n % 3 === 0 ? 'news.example.org' : null, referrer: n % 3 === 0 ? 'https://news.example.org/today' : null, visitor: visitor(n % 5000),
      });
    });
    await writeBatch(db, batch);
  }
  const partitions = "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::text AS bytes FROM pg_inherits WHERE inhparent = 'click_events'::regclass";
  const rawBytes = (await size(partitions)) + (await size("SELECT pg_total_relation_size('click_events')::text AS bytes"));
  const rollupTables = ['link_clicks_minute', 'link_clicks_hour', 'link_clicks_day', 'link_breakdown_day', 'link_agents_day', 'link_visitors'];
  let rollupBytes = 0;
  for (const table of rollupTables) rollupBytes += await size(`SELECT pg_total_relation_size('${table}')::text AS bytes`);

  // The embedded default runs without Redis; measure it there only when one is named.
  const redisBytes = BACKEND === 'postgres' || REDIS_URL_GIVEN !== undefined ? await redisBytesPerLink(links) : null;

  console.log(JSON.stringify({
    backend: BACKEND,
    bytesPerLink: Math.round(linkBytes / LINKS),
    bytesPerRawClick: Math.round(rawBytes / CLICKS),
    rollupBytesPerClick: Number((rollupBytes / CLICKS).toFixed(1)),
    redisBytesPerLink: redisBytes === null ? null : Math.round(redisBytes.perLink),
    measured: { links: LINKS, clicks: CLICKS, clickedLinks: CLICK_LINKS, days: DAYS, clicksPerLinkPerDay: CLICKS / CLICK_LINKS / DAYS, redisLinks: redisBytes?.links ?? 0 },
  }, null, 2));
} finally {
  await db.close();
  await database?.drop();
}

/** Growth of Redis's used_memory per link after caching links as the redirect path does. */
async function redisBytesPerLink(links: LinkRepository): Promise<{ perLink: number; links: number }> {
  const redis = new Redis(REDIS_URL);
  const keys = cacheKeys(`bytes-bench-${process.pid}`);
  const used = async (): Promise<number> => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0);
  const REDIS_LINKS = 20_000;
  const before = await used();
  const all = await links.list({ ownerKeyId: null, limit: REDIS_LINKS, beforeId: null, search: null, tag: null });
  const pipeline = redis.pipeline();
  for (const link of all) pipeline.set(keys.link(link.code), encodeCachedLink(link), 'PX', 600_000);
  await pipeline.exec();
  const perLink = ((await used()) - before) / all.length;
  const cleanup = redis.pipeline();
  for (const link of all) cleanup.del(keys.link(link.code));
  await cleanup.exec();
  await redis.quit();
  return { perLink, links: all.length };
}
