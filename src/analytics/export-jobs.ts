/**
 * CSV export jobs and their files, in the database (migrations/0004_export_jobs.sql), so
 * that any instance can answer for a job whichever worker ran it.
 *
 * A worker claims a queued job with a fresh lease token and names the token in every later
 * write; each write also renews the job's heartbeat. A job whose heartbeat is older than the
 * lease belongs to a worker that died: it is queued again (or failed, after a few attempts),
 * and the dead worker's token no longer matches anything, should it wake up.
 */
import { randomUUID } from 'node:crypto';
import type { Queryable } from '../storage/database.js';

export type ExportStatus = 'queued' | 'running' | 'done' | 'failed';

export interface ExportJob {
  id: string;
  /** The link exported (links.id); `code` is the code it had when the job was asked for. */
  linkId: string;
  code: string;
  ownerKeyId: string;
  /** Inclusive. */
  from: Date;
  /** Exclusive. */
  to: Date;
  status: ExportStatus;
  /** Clicks in the file, once done. */
  rows: number | null;
  /** Size of the file in bytes, once done. */
  bytes: number | null;
  error: string | null;
  attempts: number;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  expiresAt: Date;
}

interface JobRow {
  id: string;
  link_id: string;
  code: string;
  owner_key_id: string;
  range_from: Date;
  range_to: Date;
  status: ExportStatus;
  rows: string | null;
  bytes: string | null;
  error: string | null;
  attempts: number;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  expires_at: Date;
  [column: string]: unknown;
}

const COLUMNS = 'id, link_id::text AS link_id, code, owner_key_id, range_from, range_to, status, rows, bytes, error, attempts, created_at, started_at, finished_at, expires_at';

function toJob(row: JobRow): ExportJob {
  return {
    id: row.id,
    linkId: row.link_id,
    code: row.code,
    ownerKeyId: row.owner_key_id,
    from: row.range_from,
    to: row.range_to,
    status: row.status,
    rows: row.rows === null ? null : Number(row.rows),
    bytes: row.bytes === null ? null : Number(row.bytes),
    error: row.error,
    attempts: row.attempts,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    expiresAt: row.expires_at,
  };
}

/** Job ids are UUIDs; anything else is simply not a job (and never reaches a uuid cast). */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface ExportJobsOptions {
  /** Finished files (and jobs never run) are kept this long. */
  ttlHours: number;
}

export class ExportJobs {
  constructor(
    private readonly db: Queryable,
    private readonly options: ExportJobsOptions,
  ) {}

  async create(job: { linkId: string; code: string; ownerKeyId: string; from: Date; to: Date }): Promise<ExportJob> {
    const result = await this.db.query<JobRow>(
      `INSERT INTO export_jobs (id, link_id, code, owner_key_id, range_from, range_to, status, expires_at)
       VALUES ($1, $7, $2, $3, $4, $5, 'queued', now() + make_interval(hours => $6))
       RETURNING ${COLUMNS}`,
      [randomUUID(), job.code, job.ownerKeyId, job.from.toISOString(), job.to.toISOString(), this.options.ttlHours, job.linkId],
    );
    return toJob(result.rows[0] as JobRow);
  }

  /** Jobs of a key still waiting for a worker or being written. */
  async countUnfinished(ownerKeyId: string): Promise<number> {
    const result = await this.db.query<{ count: string }>(
      `SELECT count(*)::text AS count FROM export_jobs WHERE owner_key_id = $1 AND status IN ('queued', 'running') AND expires_at > now()`,
      [ownerKeyId],
    );
    return Number(result.rows[0]?.count ?? 0);
  }

  /** The job, or null when there is none (unknown, malformed or expired id). */
  async find(id: string): Promise<ExportJob | null> {
    if (!UUID.test(id)) return null;
    const result = await this.db.query<JobRow>(`SELECT ${COLUMNS} FROM export_jobs WHERE id = $1 AND expires_at > now()`, [id]);
    const row = result.rows[0];
    return row === undefined ? null : toJob(row);
  }

  /** The oldest queued job, now running under `lease`; null when none is queued. */
  async claim(lease: string): Promise<ExportJob | null> {
    // SKIP LOCKED: concurrent workers each take a different job instead of queueing on one row.
    const result = await this.db.query<JobRow>(
      `UPDATE export_jobs SET status = 'running', lease = $1, attempts = attempts + 1, started_at = now(), heartbeat_at = now(), error = NULL
       WHERE id = (SELECT id FROM export_jobs WHERE status = 'queued' AND expires_at > now() ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
       RETURNING ${COLUMNS}`,
      [lease],
    );
    const row = result.rows[0];
    return row === undefined ? null : toJob(row);
  }

  /** Drops what an earlier attempt wrote. False when the lease is lost. */
  async restart(id: string, lease: string): Promise<boolean> {
    if (!(await this.renew(id, lease))) return false;
    await this.db.query('DELETE FROM export_chunks WHERE job_id = $1', [id]);
    return true;
  }

  /** Renews the heartbeat. False when the lease is lost (the job was recovered or deleted). */
  async renew(id: string, lease: string): Promise<boolean> {
    const result = await this.db.query(`UPDATE export_jobs SET heartbeat_at = now() WHERE id = $1 AND lease = $2 AND status = 'running'`, [id, lease]);
    return result.rowCount === 1;
  }

  /** Stores the next part of the file and renews the heartbeat, in one statement. False when the lease is lost. */
  async appendChunk(id: string, lease: string, seq: number, data: Buffer): Promise<boolean> {
    const result = await this.db.query(
      `WITH held AS (
         UPDATE export_jobs SET heartbeat_at = now() WHERE id = $1 AND lease = $2 AND status = 'running' RETURNING id
       )
       INSERT INTO export_chunks (job_id, seq, data) SELECT id, $3, $4 FROM held`,
      [id, lease, seq, data],
    );
    return result.rowCount === 1;
  }

  async complete(id: string, lease: string, rows: number, bytes: number): Promise<boolean> {
    const result = await this.db.query(
      `UPDATE export_jobs SET status = 'done', rows = $3, bytes = $4, lease = NULL, finished_at = now(),
         expires_at = now() + make_interval(hours => $5)
       WHERE id = $1 AND lease = $2 AND status = 'running'`,
      [id, lease, rows, bytes, this.options.ttlHours],
    );
    return result.rowCount === 1;
  }

  /** Queues the job again for another worker, or fails it with `reason` after `maxAttempts`. */
  async giveBack(id: string, lease: string, maxAttempts: number, reason: string): Promise<void> {
    await this.db.query(
      `UPDATE export_jobs SET lease = NULL, heartbeat_at = NULL,
         status = CASE WHEN attempts >= $3 THEN 'failed' ELSE 'queued' END,
         error = CASE WHEN attempts >= $3 THEN $4 END,
         finished_at = CASE WHEN attempts >= $3 THEN now() END
       WHERE id = $1 AND lease = $2 AND status = 'running'`,
      [id, lease, maxAttempts, reason],
    );
  }

  /** Queues a job again without counting the attempt: its worker is stopping, not failing. */
  async release(id: string, lease: string): Promise<void> {
    await this.db.query(
      `UPDATE export_jobs SET status = 'queued', lease = NULL, heartbeat_at = NULL, attempts = greatest(attempts - 1, 0)
       WHERE id = $1 AND lease = $2 AND status = 'running'`,
      [id, lease],
    );
  }

  /** Jobs of workers that stopped renewing for `leaseMs`: queued again, or failed after `maxAttempts`. */
  async recoverStale(leaseMs: number, maxAttempts: number): Promise<number> {
    const result = await this.db.query(
      `UPDATE export_jobs SET lease = NULL, heartbeat_at = NULL,
         status = CASE WHEN attempts >= $2 THEN 'failed' ELSE 'queued' END,
         error = CASE WHEN attempts >= $2 THEN 'the export stopped with its worker too many times' END,
         finished_at = CASE WHEN attempts >= $2 THEN now() END
       WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => $1::double precision / 1000)`,
      [leaseMs, maxAttempts],
    );
    return result.rowCount ?? 0;
  }

  /** Deletes jobs past their expiry, files included; a running one is left to finish. */
  async deleteExpired(): Promise<number> {
    const result = await this.db.query(`DELETE FROM export_jobs WHERE expires_at <= now() AND status <> 'running'`);
    return result.rowCount ?? 0;
  }

  /** The file of a job, chunk by chunk; one query per few chunks, nothing held in between. */
  async *file(id: string): AsyncGenerator<Buffer> {
    let after = -1;
    for (;;) {
      const result = await this.db.query<{ seq: number; data: Buffer }>(
        'SELECT seq, data FROM export_chunks WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT 4',
        [id, after],
      );
      for (const row of result.rows) yield row.data;
      const last = result.rows.at(-1);
      if (last === undefined || result.rows.length < 4) return;
      after = last.seq;
    }
  }
}
