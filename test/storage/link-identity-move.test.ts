/**
 * The upgrade that keyed analytics by link (migrations/0005): a store holding analytics
 * keyed by code is migrated, then moved in small batches (link-identity-move.ts). Every row
 * of a live link ends up with it; rows of a code whose link was deleted before the upgrade
 * reach no link, not even a later one with the same code.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ensurePartitions } from '../../src/analytics/click-partitions.js';
import { moveAnalyticsToLinks } from '../../src/analytics/link-identity-move.js';
import { visitorSetKey } from '../../src/analytics/rollup-aggregation.js';
import { linkStats } from '../../src/analytics/stats-query.js';
import { uuidv7 } from '../../src/shared/uuid-v7.js';
import { loadMigrations, migrate } from '../../src/storage/migrate.js';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { openFreshDatabase, type FreshDatabase } from '../helpers/fresh-database.js';

const DAY = '2025-03-10T00:00:00Z';

for (const backend of BACKENDS) {
  describe(`moving analytics keyed by code to their links (${backend})`, await backendTestOptions(backend), () => {
    let fresh: FreshDatabase;
    const ids: Record<string, string> = {};
    before(async () => {
      fresh = await openFreshDatabase(backend, { migrated: false });
    });
    after(() => fresh.close());

    test('a store at 0004 with analytics of a live link, a reused code and a deleted link', async () => {
      const db = fresh.db;
      await migrate(db, loadMigrations().filter((migration) => migration.version < '0005'));
      await ensurePartitions(db, new Date('2025-03-01T00:00:00Z'), new Date('2025-03-01T00:00:00Z'));
      // `reused` was taken over at noon by a new link, after an earlier (deleted) link's clicks.
      const links = await db.query<{ code: string; id: string }>(
        `INSERT INTO links (code, url, created_at) VALUES ('kept', 'https://k.example/', '2025-01-01T00:00:00Z'),
           ('reused', 'https://r.example/', '2025-03-10T12:00:00Z') RETURNING code, id::text AS id`,
      );
      for (const row of links.rows) ids[row.code] = row.id;
      const event = (code: string, at: string, visitor: string | null = null): unknown[] => [uuidv7(), at, code, visitor];
      for (const values of [
        event('kept', '2025-03-10T10:00:00Z', 'aa'.repeat(16)),
        event('kept', '2025-03-10T10:30:00Z'),
        event('reused', '2025-03-10T09:00:00Z'),
        event('reused', '2025-03-10T13:00:00Z'),
        event('gone', '2025-03-10T09:00:00Z'),
        event('kept', '2026-01-01T00:00:00Z'),
      ]) {
        await db.query(
          `INSERT INTO click_events (id, at, code, method, bot, device, visitor) VALUES ($1, $2, $3, 'GET', false, 'desktop', decode($4, 'hex'))`,
          values,
        );
      }
      await db.query(
        `INSERT INTO link_clicks_day (code, bucket, shard, human, bot, visitors, human_visitors) VALUES
           ('kept', '${DAY}', 0, 2, 0, 1, 1), ('kept', '${DAY}', 3, 1, 1, 0, 0), ('reused', '2025-03-09T00:00:00Z', 0, 5, 0, 0, 0),
           ('reused', '${DAY}', 0, 2, 0, 0, 0), ('gone', '${DAY}', 0, 1, 0, 0, 0)`,
      );
      await db.query(
        `INSERT INTO link_clicks_hour (code, bucket, shard, human, bot) VALUES
           ('kept', '2025-03-10T10:00:00Z', 0, 2, 0), ('reused', '2025-03-10T09:00:00Z', 0, 1, 0), ('reused', '2025-03-10T13:00:00Z', 0, 1, 0)`,
      );
      await db.query(`INSERT INTO link_breakdown_day (code, bucket, dimension, value, shard, human, bot) VALUES ('kept', '${DAY}', 'referrer', 't.co', 0, 2, 0), ('gone', '${DAY}', 'referrer', 'secret.example', 0, 1, 0)`);
      await db.query(`INSERT INTO link_agents_day (code, bucket, browser, os, device, shard, human, bot) VALUES ('kept', '${DAY}', 'Firefox', 'Linux', 'desktop', 0, 2, 0)`);
      await db.query(`INSERT INTO link_clicks_minute (code, bucket, shard, human, bot) VALUES ('kept', '2025-03-10T10:00:00Z', 0, 1, 0), ('gone', '2025-03-10T09:00:00Z', 0, 1, 0)`);
    });

    test('the migration only renames and adds: every legacy row is still there, none is moved yet', async () => {
      const db = fresh.db;
      // Later migrations come along; this one is the first to run on a store at 0004.
      assert.equal((await migrate(db))[0], '0005_link_analytics_identity');
      const legacy = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM legacy_link_clicks_day');
      assert.equal(legacy.rows[0]?.n, 5);
      assert.equal((await db.query('SELECT 1 FROM link_clicks_day')).rowCount, 0);
      assert.equal((await db.query('SELECT 1 FROM click_events WHERE link_id IS NOT NULL')).rowCount, 0);
    });

    test('the move gives every row its link, in batches of one, and drops what no link owns', async () => {
      const db = fresh.db;
      const result = await moveAnalyticsToLinks(db, { batchSize: 1, now: () => Date.parse('2025-03-11T00:00:00Z') });
      assert.equal(result.ran, true);
      assert.equal(result.events, 6);
      assert.ok(result.indexedPartitions >= 2, `${result.indexedPartitions} partitions indexed`);
      const events = await db.query<{ code: string; at: Date; link_id: string }>('SELECT code, at, link_id::text AS link_id FROM click_events ORDER BY at, code');
      assert.deepEqual(events.rows.map((row) => [row.code, row.link_id]), [
        ['gone', '0'],
        ['reused', '0'],
        ['kept', ids.kept],
        ['kept', ids.kept],
        ['reused', ids.reused],
        ['kept', ids.kept],
      ]);
      const kept = await linkStats(db, ids.kept ?? '', { from: new Date(DAY), to: new Date('2025-03-11T00:00:00Z'), interval: 'hour', bots: 'include', top: 5 });
      assert.equal(kept.totals.clicks, 2);
      assert.equal(kept.totals.uniques, 1);
      assert.deepEqual(kept.referrers, [{ value: 't.co', clicks: 2 }]);
      assert.deepEqual(kept.browsers, [{ value: 'Firefox', clicks: 2 }]);
      const keptDays = await linkStats(db, ids.kept ?? '', { from: new Date(DAY), to: new Date('2025-03-11T00:00:00Z'), interval: 'day', bots: 'include', top: 5 });
      assert.equal(keptDays.totals.clicks, 4, 'both shards of the day');
      // The day the code changed hands cannot be split (documented); the day before belonged to the deleted link.
      const reused = await linkStats(db, ids.reused ?? '', { from: new Date('2025-03-09T00:00:00Z'), to: new Date('2025-03-11T00:00:00Z'), interval: 'day', bots: 'include', top: 5 });
      assert.deepEqual(reused.series.map((point) => point.clicks), [0, 2]);
      const hours = await db.query<{ bucket: Date }>('SELECT bucket FROM link_clicks_hour WHERE link_id = $1', [ids.reused]);
      assert.deepEqual(hours.rows.map((row) => row.bucket.toISOString()), ['2025-03-10T13:00:00.000Z']);
      assert.equal((await db.query(`SELECT 1 FROM link_breakdown_day WHERE value = 'secret.example'`)).rowCount, 0);
      for (const table of ['legacy_link_clicks_minute', 'legacy_link_clicks_hour', 'legacy_link_clicks_day', 'legacy_link_breakdown_day', 'legacy_link_agents_day']) {
        assert.equal((await db.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [table])).rows[0]?.t, null, table);
      }
      const index = await db.query<{ valid: boolean }>(`SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = 'click_events_link_at'::regclass`);
      assert.equal(index.rows[0]?.valid, true, 'every partition has its index');
      const member = visitorSetKey(ids.kept ?? '', 'aa'.repeat(16));
      assert.equal((await db.query('SELECT 1 FROM link_visitors WHERE key = $1', [member])).rowCount, 1, 'the visitor set of a recent day is rebuilt');
    });

    test('run again, it does nothing', async () => {
      assert.deepEqual(await moveAnalyticsToLinks(fresh.db), { ran: false, indexedPartitions: 0, events: 0, rollupRows: 0 });
    });
  });
}
