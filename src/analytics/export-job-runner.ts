/**
 * Runs the queued CSV exports (on worker processes: ROLE=worker or all). Each pass recovers
 * jobs left running by dead workers, deletes expired ones, then runs queued jobs one at a
 * time until none is left. A job's file is written a chunk at a time while the clicks are
 * read a page at a time, so memory stays flat whatever the size of the export.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Queryable } from '../storage/database.js';
import { clickCsv } from './click-csv-export.js';
import type { ExportJob, ExportJobs } from './export-jobs.js';

export interface ExportJobRunnerOptions {
  jobs: ExportJobs;
  /** Where the raw clicks are read: the primary. */
  db: Queryable;
  /** Export the raw IP column (only where the operator keeps raw IPs). */
  includeIp: boolean;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  pollIntervalMs?: number;
  /** How often polling also recovers stale jobs and deletes expired ones (runOnce always does). */
  housekeepingIntervalMs?: number;
  /** A running job not heard of for this long belongs to a dead worker. */
  leaseMs?: number;
  /** Claims of one job before it is failed. */
  maxAttempts?: number;
  chunkBytes?: number;
  pageSize?: number;
}

type Outcome = 'done' | 'lost' | 'released';

export class ExportJobRunner {
  private readonly jobs: ExportJobs;
  private readonly pollIntervalMs: number;
  private readonly leaseMs: number;
  private readonly maxAttempts: number;
  private readonly chunkBytes: number;
  private readonly housekeepingIntervalMs: number;
  private housekeptAt = 0;
  private timer: NodeJS.Timeout | null = null;
  /** Passes run one after another, whether from the timer or from runOnce(). */
  private queue: Promise<unknown> = Promise.resolve();
  private closing = false;

  constructor(private readonly options: ExportJobRunnerOptions) {
    this.jobs = options.jobs;
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.leaseMs = options.leaseMs ?? 60_000;
    this.maxAttempts = options.maxAttempts ?? 3;
    this.chunkBytes = options.chunkBytes ?? 1024 * 1024;
    this.housekeepingIntervalMs = options.housekeepingIntervalMs ?? 30_000;
  }

  /** Polls for work until close(). */
  start(): void {
    if (this.timer !== null || this.closing) return;
    const schedule = (): void => {
      if (this.closing) return;
      this.timer = setTimeout(tick, this.pollIntervalMs);
      // The server keeps a worker alive; a forgotten runner must not.
      this.timer.unref();
    };
    const tick = (): void => {
      // Every worker polls every second: the claim alone is cheap (a partial index of queued
      // jobs); recovery and expiry can wait longer.
      void this.enqueue(Date.now() - this.housekeptAt >= this.housekeepingIntervalMs)
        .catch((error: unknown) => this.options.logger.warn({ err: error }, 'export jobs: pass failed; retrying'))
        .finally(schedule);
    };
    schedule();
  }

  /**
   * One pass; resolves with the jobs it finished. It waits for a pass already under way, so
   * once it resolves every job queued before the call has been run.
   */
  runOnce(): Promise<number> {
    return this.enqueue(true);
  }

  /** Stops polling; a job under way is handed back to the queue at its next page. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.queue;
  }

  private enqueue(housekeeping: boolean): Promise<number> {
    const pass = this.queue.then(() => this.pass(housekeeping));
    this.queue = pass.catch(() => undefined);
    return pass;
  }

  private async pass(housekeeping: boolean): Promise<number> {
    if (this.closing) return 0;
    if (housekeeping) {
      this.housekeptAt = Date.now();
      const recovered = await this.jobs.recoverStale(this.leaseMs, this.maxAttempts);
      if (recovered > 0) this.options.logger.warn({ jobs: recovered }, 'export jobs of stopped workers queued again');
      await this.jobs.deleteExpired();
    }
    let finished = 0;
    while (!this.closing) {
      const lease = randomUUID();
      const job = await this.jobs.claim(lease);
      if (job === null) break;
      if ((await this.run(job, lease)) === 'done') finished += 1;
    }
    return finished;
  }

  private async run(job: ExportJob, lease: string): Promise<Outcome> {
    const started = Date.now();
    try {
      const outcome = await this.write(job, lease);
      if (outcome === 'lost') this.options.logger.warn({ job: job.id }, 'export job taken over by another worker; this attempt stopped');
      else if (outcome === 'done') this.options.logger.info({ job: job.id, code: job.code, ms: Date.now() - started }, 'export job done');
      return outcome;
    } catch (error) {
      this.options.logger.error({ err: error, job: job.id }, 'export job failed');
      await this.jobs
        .giveBack(job.id, lease, this.maxAttempts, 'the export could not be written; ask for it again')
        .catch((giveBackError: unknown) => this.options.logger.warn({ err: giveBackError, job: job.id }, 'export job could not be handed back; it will be recovered'));
      return 'lost';
    }
  }

  private async write(job: ExportJob, lease: string): Promise<Outcome> {
    const jobs = this.jobs;
    const includeIp = this.options.includeIp;
    if (!(await jobs.restart(job.id, lease))) return 'lost';
    let pending = '';
    let seq = 0;
    let rows = 0;
    let bytes = 0;
    let renewedAt = Date.now();
    const flush = async (): Promise<boolean> => {
      const data = Buffer.from(pending, 'utf8');
      pending = '';
      if (!(await jobs.appendChunk(job.id, lease, seq, data))) return false;
      seq += 1;
      bytes += data.length;
      renewedAt = Date.now();
      return true;
    };
    const range = { from: job.from, to: job.to, ...(this.options.pageSize === undefined ? {} : { pageSize: this.options.pageSize }) };
    for await (const part of clickCsv(this.options.db, job.linkId, range, includeIp)) {
      if (this.closing) {
        await jobs.release(job.id, lease);
        return 'released';
      }
      pending += part.text;
      rows += part.rows;
      if (Buffer.byteLength(pending, 'utf8') >= this.chunkBytes) {
        if (!(await flush())) return 'lost';
      } else if (Date.now() - renewedAt > this.leaseMs / 3) {
        if (!(await jobs.renew(job.id, lease))) return 'lost';
        renewedAt = Date.now();
      }
    }
    if (pending !== '' && !(await flush())) return 'lost';
    return (await jobs.complete(job.id, lease, rows, bytes)) ? 'done' : 'lost';
  }
}
