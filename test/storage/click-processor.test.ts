import { linkIdOf } from '../helpers/enriched-click-fixture.js';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { DatabaseVisitorSalts } from '../../src/analytics/database-visitor-salts.js';
import { ClickEnricher } from '../../src/analytics/enrich.js';
import { linkStats } from '../../src/analytics/stats-query.js';
import type { IdentifiedClickEvent } from '../../src/clicks/click-event.js';
import { MemoryLiveClickFeed, type LiveClick } from '../../src/live/live-click-feed.js';
import { AnalyticsMaintenance } from '../../src/analytics/analytics-maintenance.js';
import { ClickProcessor } from '../../src/pipeline/click-processor.js';
import { uuidv7 } from '../../src/shared/uuid-v7.js';
import type { Queryable } from '../../src/storage/database.js';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { openFreshDatabase, type FreshDatabase } from '../helpers/fresh-database.js';

const DAY_MS = 86_400_000;
const CHROME = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';
const GOOGLEBOT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';

function event(code: string, at: number, overrides: Partial<IdentifiedClickEvent> = {}): IdentifiedClickEvent {
  return { id: uuidv7(), linkId: linkIdOf(code), code, at: new Date(at), method: 'GET', referrer: 'https://news.example/a', userAgent: CHROME, ip: '203.0.113.7', ...overrides };
}

async function partitions(db: Queryable): Promise<string[]> {
  const result = await db.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'click_events'::regclass ORDER BY 1`,
  );
  return result.rows.map((row) => row.name);
}

const silent = pino({ level: 'silent' });

for (const backend of BACKENDS) {
  describe(`click processor and analytics maintenance (${backend})`, await backendTestOptions(backend), () => {
    let fresh: FreshDatabase;
    before(async () => {
      fresh = await openFreshDatabase(backend);
    });
    after(() => fresh.close());

    test('a batch is enriched, stored once, announced once, and its lag reported', async () => {
      const now = Date.now();
      const live = new MemoryLiveClickFeed();
      const seen: LiveClick[] = [];
      const unsubscribe = live.subscribe(linkIdOf('proc'), (click) => seen.push(click));
      const lags: number[] = [];
      const processor = new ClickProcessor({
        db: fresh.db,
        enricher: new ClickEnricher({ salts: new DatabaseVisitorSalts(fresh.db) }),
        live,
        now: () => now,
        onStored: (_result, lag) => lags.push(...lag),
      });
      const batch = [
        event('proc', now - 1500),
        event('proc', now - 1000, { ip: '198.51.100.4' }),
        event('proc', now - 500, { userAgent: GOOGLEBOT }),
        event('proc', now - 400, { method: 'HEAD' }),
        event('other', now - 300),
      ];
      const first = await processor.handle(batch);
      assert.equal(first.inserted, 5);
      // Redelivered (a worker died before its ack): nothing is stored or announced again.
      const again = await processor.handle(batch.slice(0, 3));
      assert.deepEqual([again.inserted, again.duplicates], [0, 3]);
      unsubscribe();

      assert.deepEqual(seen.map((click) => click.id).sort(), batch.slice(0, 4).map((e) => e.id).sort());
      assert.deepEqual(seen.map((click) => click.bot).sort(), [false, false, true, true]);
      assert.deepEqual(lags.sort((a, b) => a - b), [0.3, 0.4, 0.5, 1, 1.5]);

      const stats = await linkStats(fresh.db, linkIdOf('proc'), { from: new Date(now - DAY_MS), to: new Date(now + 1), interval: 'day', bots: 'exclude', top: 5 });
      // Two humans (the bot agent and the HEAD are bots), two visitors among them.
      assert.deepEqual(stats.totals, { clicks: 2, uniques: 2 });
      assert.deepEqual(stats.referrers, [{ value: 'news.example', clicks: 2 }]);
      const withBots = await linkStats(fresh.db, linkIdOf('proc'), { from: new Date(now - DAY_MS), to: new Date(now + 1), interval: 'day', bots: 'include', top: 5 });
      assert.equal(withBots.totals.clicks, 4);
    });

    test('a batch the store rejects commits nothing and can be handed again', async () => {
      const processor = new ClickProcessor({ db: fresh.db, enricher: new ClickEnricher({ salts: new DatabaseVisitorSalts(fresh.db) }) });
      const good = event('atomic', Date.now());
      // A method the store refuses (CHECK constraint) sinks the whole transaction.
      const bad = { ...event('atomic', Date.now()), method: 'POST' } as unknown as IdentifiedClickEvent;
      await assert.rejects(processor.handle([good, bad]));
      const stored = await fresh.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM click_events WHERE code = 'atomic'`);
      assert.equal(stored.rows[0]?.n, 0);
      assert.equal((await processor.handle([good])).inserted, 1);
    });

    test('maintenance creates the coming months, drops raw clicks past retention and keeps their rollups', async () => {
      const now = Date.parse('2026-05-15T12:00:00.000Z');
      const processor = new ClickProcessor({ db: fresh.db, enricher: new ClickEnricher({ salts: new DatabaseVisitorSalts(fresh.db) }) });
      const maintenance = new AnalyticsMaintenance({
        db: fresh.db,
        salts: new DatabaseVisitorSalts(fresh.db, { now: () => now }),
        retentionDays: 60,
        deletedLinkRetentionDays: 7,
        logger: silent,
        now: () => now,
      });
      await maintenance.prepare();
      assert.deepEqual(
        (await partitions(fresh.db)).filter((name) => name >= 'click_events_p202604' && name <= 'click_events_p202607'),
        ['click_events_p202604', 'click_events_p202605', 'click_events_p202606', 'click_events_p202607'],
      );
      // An old click (more than 60 days before `now`), in a month that gets its partition.
      const old = Date.parse('2026-02-10T08:00:00.000Z');
      await processor.handle([{ ...event('kept', old), ip: null }]);
      await new AnalyticsMaintenance({ db: fresh.db, salts: new DatabaseVisitorSalts(fresh.db), retentionDays: 0, deletedLinkRetentionDays: 7, logger: silent, now: () => old }).prepare();
      assert.ok((await partitions(fresh.db)).includes('click_events_p202602'));

      await maintenance.runOnce();
      assert.ok(!(await partitions(fresh.db)).includes('click_events_p202602'), 'the expired month is dropped whole');
      assert.ok((await partitions(fresh.db)).includes('click_events_p202605'));
      const raw = await fresh.db.query(`SELECT 1 FROM click_events WHERE code = 'kept'`);
      assert.equal(raw.rowCount, 0);
      const stats = await linkStats(fresh.db, linkIdOf('kept'), { from: new Date(old - DAY_MS), to: new Date(old + DAY_MS), interval: 'day', bots: 'include', top: 5 });
      assert.equal(stats.totals.clicks, 1, 'rollups outlive the raw clicks');
      await maintenance.close();
    });
  });
}
