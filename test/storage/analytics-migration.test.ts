import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { backfillLegacyClicks, legacyClickId, retireLegacyClicks, type LegacyBackfillResult } from '../../src/analytics/legacy-clicks-backfill.js';
import { linkStats } from '../../src/analytics/stats-query.js';
import type { ClickEvent } from '../../src/clicks/click-event.js';
import { isUuidV7, uuidV7Timestamp } from '../../src/shared/uuid-v7.js';
import type { Queryable } from '../../src/storage/database.js';
import { loadMigrations, migrate } from '../../src/storage/migrate.js';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { openFreshDatabase, type FreshDatabase } from '../helpers/fresh-database.js';

const BROWSER = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';
const HOUR = 3_600_000;

/**
 * Old log rows: `old` in 2024 (their visitor salts are long gone), `recent` from the last
 * hours (salts still usable). Every fifth is a HEAD, every seventh has no user agent (both
 * bots). Three identical rows are three clicks.
 */
function legacyClicks(now: number): ClickEvent[] {
  const rows: ClickEvent[] = [];
  for (let i = 0; i < 600; i += 1) {
    const recent = i % 2 === 0;
    rows.push({
      code: `legacy${i % 3}`,
      at: new Date(recent ? now - HOUR - i * 1000 : Date.parse('2024-06-01T00:00:00Z') + i * 60_000),
      method: i % 5 === 0 ? 'HEAD' : 'GET',
      referrer: i % 4 === 0 ? null : `https://ref${i % 6}.example/page?i=${i}`,
      userAgent: i % 7 === 0 ? null : `${BROWSER} padding-${'x'.repeat(i % 200)}`,
      ip: `203.0.113.${i % 40}`,
    });
  }
  const twin: ClickEvent = { code: 'legacy0', at: new Date(now - 2 * HOUR), method: 'GET', referrer: null, userAgent: BROWSER, ip: '198.51.100.1' };
  rows.push(twin, { ...twin }, { ...twin });
  return rows;
}

interface Expected {
  clicks: number;
  humans: number;
  uniques: number;
}

/** Counted here from the rows, independently of the enricher and the writer. */
function expected(rows: readonly ClickEvent[], code: string): Expected {
  const mine = rows.filter((row) => row.code === code);
  const humans = mine.filter((row) => row.method === 'GET' && row.userAgent !== null);
  const visitors = new Set(
    mine.filter((row) => row.at.getUTCFullYear() > 2024).map((row) => `${row.at.toISOString().slice(0, 10)} ${row.ip} ${row.userAgent}`),
  );
  return { clicks: mine.length, humans: humans.length, uniques: visitors.size };
}

async function measured(db: Queryable, code: string): Promise<Expected> {
  const range = { from: new Date('2024-01-01T00:00:00Z'), to: new Date(Date.now() + 2 * 86_400_000), interval: 'day' as const, top: 1 };
  const link = (await db.query<{ id: string }>('SELECT id::text AS id FROM links WHERE code = $1', [code])).rows[0];
  assert.ok(link !== undefined, `no link ${code}`);
  const all = await linkStats(db, link.id, { ...range, bots: 'include' });
  const humans = await linkStats(db, link.id, { ...range, bots: 'exclude' });
  return { clicks: all.totals.clicks, humans: humans.totals.clicks, uniques: all.totals.uniques };
}

test('legacy click ids are UUIDv7s carrying the click time, stable for one row, distinct between rows', () => {
  const at = new Date('2025-03-01T10:00:00.123Z');
  const id = legacyClickId('(0,1)', 'abc', at);
  assert.ok(isUuidV7(id), id);
  assert.equal(uuidV7Timestamp(id), at.getTime());
  assert.equal(legacyClickId('(0,1)', 'abc', at), id);
  assert.notEqual(legacyClickId('(0,2)', 'abc', at), id);
  assert.notEqual(legacyClickId('(0,1)', 'abd', at), id);
});

/** Rows as the old click recorder wrote them into the `clicks` log. */
async function insertLegacyClicks(db: Queryable, events: readonly ClickEvent[]): Promise<void> {
  await db.query(
    `INSERT INTO clicks (link_code, clicked_at, method, referrer, user_agent, client_ip)
     SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::inet[])`,
    [
      events.map((event) => event.code),
      events.map((event) => event.at.toISOString()),
      events.map((event) => event.method),
      events.map((event) => event.referrer),
      events.map((event) => event.userAgent),
      events.map((event) => event.ip),
    ],
  );
}

for (const backend of BACKENDS) {
  describe(`migration 0003_analytics on a store with clicks (${backend})`, await backendTestOptions(backend), () => {
    let fresh: FreshDatabase;
    const now = Date.now();
    const rows = legacyClicks(now);
    before(async () => {
      fresh = await openFreshDatabase(backend, { migrated: false });
    });
    after(() => fresh.close());

    test('applies alone on a store at 0002 holding links and clicks, which it leaves as they were', async () => {
      const earlier = loadMigrations().filter((migration) => migration.version < '0003');
      assert.deepEqual(await migrate(fresh.db, earlier), ['0001_core', '0002_visitor_salts']);
      // The links existed before their clicks: the copy gives each click the link that had its code then.
      await fresh.db.query(
        `INSERT INTO links (code, url, created_at) SELECT 'legacy' || i, 'https://example.com/', '2020-01-01T00:00:00Z' FROM generate_series(0, 2) AS i`,
      );
      await insertLegacyClicks(fresh.db, rows);
      const before = await fresh.db.query('SELECT * FROM clicks ORDER BY clicked_at, link_code, user_agent');

      assert.deepEqual(await migrate(fresh.db, loadMigrations().filter((migration) => migration.version < '0004')), ['0003_analytics']);
      assert.deepEqual((await fresh.db.query('SELECT * FROM clicks ORDER BY clicked_at, link_code, user_agent')).rows, before.rows);
      assert.equal((await fresh.db.query(`SELECT 1 FROM links WHERE code LIKE 'legacy_'`)).rowCount, 3);
      const tables = await fresh.db.query<{ name: string }>(
        `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_name LIKE ANY (ARRAY['click_events%', 'link\\_%'])
         ORDER BY table_name COLLATE "C"`,
      );
      assert.deepEqual(tables.rows.map((row) => row.name), [
        'click_events',
        'click_events_default',
        'link_agents_day',
        'link_breakdown_day',
        'link_clicks_day',
        'link_clicks_hour',
        'link_clicks_minute',
        'link_visitors',
      ]);
    });

    test('the backfill copies every old click, enriched and counted, in many small batches', async () => {
      // The copy runs after every migration (prepare-store.ts), so it writes the current schema.
      assert.deepEqual(await migrate(fresh.db), loadMigrations().map((m) => m.version).filter((version) => version >= '0004'));
      const batches: number[] = [];
      const result = await fresh.db.transaction((tx) => backfillLegacyClicks(tx, { blocksPerBatch: 1, onBatch: (progress) => batches.push(progress.read) }));
      assert.deepEqual(result, { read: rows.length, inserted: rows.length, duplicates: 0 });
      assert.ok(batches.length > 3, `${batches.length} batches`);
      assert.equal((await fresh.db.query('SELECT 1 FROM click_events')).rowCount, rows.length);
      for (const code of ['legacy0', 'legacy1', 'legacy2']) {
        assert.deepEqual(await measured(fresh.db, code), expected(rows, code), code);
      }
      // Raw IP storage is off unless asked for.
      assert.equal((await fresh.db.query('SELECT 1 FROM click_events WHERE ip IS NOT NULL')).rowCount, 0);
    });

    test('run again, it copies nothing twice; rows appended since are copied once', async () => {
      assert.deepEqual(await fresh.db.transaction((tx) => backfillLegacyClicks(tx, { blocksPerBatch: 2 })), { read: rows.length, inserted: 0, duplicates: rows.length });
      const twin = rows.at(-1);
      assert.ok(twin !== undefined);
      const more: ClickEvent[] = [{ ...twin }, { ...twin, code: 'legacy1', at: new Date(now - 3 * HOUR) }];
      await insertLegacyClicks(fresh.db, more);
      assert.deepEqual(await fresh.db.transaction((tx) => backfillLegacyClicks(tx, { storeRawIp: true })), { read: rows.length + 2, inserted: 2, duplicates: rows.length });
      const all = [...rows, ...more];
      for (const code of ['legacy0', 'legacy1', 'legacy2']) {
        assert.deepEqual(await measured(fresh.db, code), expected(all, code), code);
      }
      assert.equal((await fresh.db.query('SELECT 1 FROM click_events WHERE ip IS NOT NULL')).rowCount, 2);
    });

    test('retiring the old log, in the migration, copies what is left and empties it; the next run copies only what came since', async () => {
      const twin = rows.at(0);
      assert.ok(twin !== undefined);
      const late: ClickEvent[] = [{ ...twin, code: 'legacy2', at: new Date(now - 2 * HOUR) }];
      await insertLegacyClicks(fresh.db, late);
      const count = async (): Promise<number> => (await fresh.db.query<{ n: number }>('SELECT count(*)::int AS n FROM click_events')).rows[0]?.n ?? -1;
      const before = await count();
      const retire = async (): Promise<LegacyBackfillResult | null> => {
        let result: LegacyBackfillResult | null = null;
        await migrate(fresh.db, loadMigrations(), async (tx) => {
          result = await retireLegacyClicks(tx);
        });
        return result;
      };
      const retired = await retire();
      assert.equal(retired?.inserted, 1);
      assert.equal(await count(), before + 1);
      // Kept, empty, for writers of the previous version still running.
      assert.equal((await fresh.db.query('SELECT 1 FROM clicks')).rowCount, 0);
      assert.deepEqual(await retire(), { read: 0, inserted: 0, duplicates: 0 });
      // A row an old instance writes after that is copied by the next migration run.
      await insertLegacyClicks(fresh.db, [{ ...twin, code: 'legacy1', at: new Date(now - HOUR) }]);
      assert.equal((await retire())?.inserted, 1);
      assert.equal(await count(), before + 2);
      await fresh.db.query('DROP TABLE clicks');
      assert.equal(await retire(), null);
    });

    test('an old instance inserting while the log is copied waits, and its click is copied by the next run', { skip: backend === 'embedded' ? 'one connection: no concurrent writer' : false }, async () => {
      await fresh.db.query('CREATE TABLE clicks (link_code text NOT NULL, clicked_at timestamptz NOT NULL, method text NOT NULL, referrer text, user_agent text, client_ip inet)');
      const count = async (): Promise<number> => (await fresh.db.query<{ n: number }>('SELECT count(*)::int AS n FROM click_events')).rows[0]?.n ?? -1;
      const before = await count();
      let written = false;
      await migrate(fresh.db, loadMigrations(), async (tx) => {
        await tx.query('LOCK TABLE clicks IN SHARE MODE');
        const oldWriter = insertLegacyClicks(fresh.db, [{ code: 'legacy0', at: new Date(now - HOUR), method: 'GET', referrer: null, userAgent: null, ip: null }]).then(() => {
          written = true;
        });
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.equal(written, false, 'the insert waits for the copy');
        await retireLegacyClicks(tx);
        void oldWriter;
      });
      for (let i = 0; i < 50 && !written; i += 1) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(written, true, 'the insert went through, not failed');
      let copied: LegacyBackfillResult | null = null;
      await migrate(fresh.db, loadMigrations(), async (tx) => {
        copied = await retireLegacyClicks(tx);
      });
      assert.equal((copied as LegacyBackfillResult | null)?.inserted, 1);
      assert.equal(await count(), before + 1);
    });

  });
}
