/**
 * The analytics store's housekeeping, run by every worker: monthly partitions created
 * ahead of the clicks that will need them, raw clicks past retention dropped a month at a
 * time, minute counters and visitor sets pruned, the shards of finished days folded, old
 * visitor salts deleted, deleted links' analytics purged after their retention, and (once,
 * after the upgrade that keyed analytics by link) the older analytics moved to their links. Each step is safe to run from several workers at once
 * (advisory locks, or statements that find nothing left to do), so no leader is needed.
 */
import type { Logger } from 'pino';
import { pruneMinuteRollups, pruneVisitorSets } from './analytics-retention.js';
import { dropExpiredPartitions, ensurePartitions } from './click-partitions.js';
import type { DatabaseVisitorSalts } from './database-visitor-salts.js';
import { compactRollups } from './rollup-compaction.js';
import { purgeDeletedLinks } from './deleted-link-purge.js';
import { moveAnalyticsToLinks } from './link-identity-move.js';
import type { Database } from '../storage/database.js';

const DAY_MS = 86_400_000;
/** Minute series are answered for about a week (stats-query.ts MAX_SERIES_POINTS); two are kept. */
export const MINUTE_ROLLUP_DAYS = 14;
/** Late clicks of the last few days are folded too. */
const COMPACTION_DAYS = 3;
const PURGE_LINKS_PER_ROUND = 100;

export interface AnalyticsMaintenanceOptions {
  db: Database;
  salts: DatabaseVisitorSalts;
  /** Raw clicks kept this many days; 0 keeps them forever. */
  retentionDays: number;
  /** A deleted link's analytics are purged this many days after its deletion. */
  deletedLinkRetentionDays: number;
  /** Expired Idempotency-Key records, purged here too: the workers are the store's housekeepers. */
  idempotency?: { purgeExpired(): Promise<number> };
  logger: Logger;
  /** Between runs. */
  intervalMs?: number;
  now?: () => number;
}

export class AnalyticsMaintenance {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private readonly now: () => number;

  constructor(private readonly options: AnalyticsMaintenanceOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Makes sure this month's and the next months' partitions exist; called before consuming. */
  async prepare(): Promise<void> {
    const now = this.now();
    const created = await ensurePartitions(this.options.db, new Date(now - 31 * DAY_MS), new Date(now + 62 * DAY_MS));
    if (created.length > 0) this.options.logger.info({ partitions: created }, 'click partitions created');
  }

  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => void this.runOnce(), this.options.intervalMs ?? 3_600_000);
    this.timer.unref();
    void this.runOnce();
  }

  /** Resolves when the run under way, if any, is over; starts none. */
  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  /** Never rejects: a failed step is logged and tried again at the next run. */
  runOnce(): Promise<void> {
    this.running ??= this.run().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  private async run(): Promise<void> {
    const { db, logger } = this.options;
    const now = this.now();
    const today = Math.floor(now / DAY_MS) * DAY_MS;
    const steps: [string, () => Promise<unknown>][] = [
      ['partitions', () => this.prepare()],
      [
        'link identity move',
        async () => {
          const moved = await moveAnalyticsToLinks(db);
          if (moved.ran) logger.info(moved, 'analytics stored before this version moved to their links');
        },
      ],
      [
        'deleted links',
        async () => {
          const before = new Date(now - this.options.deletedLinkRetentionDays * DAY_MS);
          for (;;) {
            const purged = await purgeDeletedLinks(db, before, { maxLinks: PURGE_LINKS_PER_ROUND });
            if (purged.links > 0) logger.info(purged, 'analytics of deleted links purged');
            if (purged.links < PURGE_LINKS_PER_ROUND) return;
          }
        },
      ],
      [
        'retention',
        async () => {
          if (this.options.retentionDays === 0) return;
          const result = await dropExpiredPartitions(db, new Date(today - this.options.retentionDays * DAY_MS));
          if (result.dropped.length > 0 || result.deletedFromDefault > 0) logger.info(result, 'expired raw clicks dropped');
        },
      ],
      ['minute rollups', () => pruneMinuteRollups(db, new Date(today - MINUTE_ROLLUP_DAYS * DAY_MS))],
      ['visitor sets', () => pruneVisitorSets(db, undefined)],
      ['visitor salts', () => this.options.salts.prune()],
      [
        'idempotency records',
        async () => {
          const purged = (await this.options.idempotency?.purgeExpired()) ?? 0;
          if (purged > 0) logger.info({ purged }, 'expired idempotency records deleted');
        },
      ],
      ['compaction', () => compactRollups(db, new Date(today - COMPACTION_DAYS * DAY_MS), new Date(today))],
    ];
    for (const [step, work] of steps) {
      try {
        await work();
      } catch (error) {
        logger.warn({ err: error, step }, 'analytics maintenance step failed; retried at the next run');
      }
    }
  }
}
