/**
 * Stripe-style Idempotency-Key records: the first request with a key claims it, and a
 * retry with the same key and the same request gets the stored answer back. Records
 * live 24 hours, and are then deleted by the workers (`purgeExpired`).
 *
 * A claim is a lease: a record still without an answer after `claimLeaseSeconds`
 * (IDEMPOTENCY_CLAIM_LEASE_SECONDS) belongs to a process that died between claiming and
 * answering, and the next request with the key takes it over, instead of being told "in
 * progress" for a day. Only the holder of the current claim (its token) can complete it, so
 * a process that was merely slow cannot overwrite the answer of the one that took over.
 */
import { createHash, randomUUID } from 'node:crypto';
import { transactionRetryingConflicts, type Database, type Queryable } from '../storage/database.js';

export const IDEMPOTENCY_TTL_HOURS = 24;
export const DEFAULT_CLAIM_LEASE_SECONDS = 60;
/** Attempts of a transaction that lost a deadlock or serialization race. */
const CONFLICT_ATTEMPTS = 3;
export const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

export type IdempotencyClaim =
  | { kind: 'claimed'; token: string }
  | { kind: 'replay'; status: number; body: unknown; headers: Record<string, string> }
  | { kind: 'in_progress' }
  | { kind: 'mismatch' };

/**
 * Passwords stay out of the stored fingerprint: a fast hash of a body with a password in it
 * would let anyone who reads the table test guesses offline. A retry that changes only a
 * password therefore counts as the same request.
 */
function withoutPasswords(key: string, value: unknown): unknown {
  return key === 'password' ? undefined : value;
}

export function requestFingerprint(method: string, path: string, body: unknown): string {
  return createHash('sha256').update(`${method} ${path}\n${JSON.stringify(body ?? null, withoutPasswords)}`).digest('hex');
}

export class IdempotencyStore {
  constructor(
    private readonly db: Database,
    private readonly claimLeaseSeconds = DEFAULT_CLAIM_LEASE_SECONDS,
  ) {}

  /**
   * Runs `work` in one transaction of the store that keeps the records (and the links), again
   * when it lost a deadlock or serialization race: two bulk creates that take the same aliases
   * in opposite orders wait on each other, and the one the store rolls back runs once more.
   * `work` must therefore start from scratch each time.
   */
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    return transactionRetryingConflicts(this.db, work, { attempts: CONFLICT_ATTEMPTS });
  }

  async claim(keyId: string, idempotencyKey: string, fingerprint: string): Promise<IdempotencyClaim> {
    const token = randomUUID();
    // An expired record is as good as none, and so is a claim whose lease ran out (the same
    // request only: another request's claim is a mismatch): replaced in the same statement.
    const inserted = await this.db.query(
      `INSERT INTO idempotency_keys (key_id, idempotency_key, request_hash, claim_token)
       VALUES ($1, $2, $3, $4)
       ON CONFLICT (key_id, idempotency_key) DO UPDATE
         SET request_hash = EXCLUDED.request_hash, claim_token = EXCLUDED.claim_token, response_status = NULL, response_body = NULL,
             response_headers = NULL, created_at = now()
         WHERE idempotency_keys.created_at < now() - make_interval(hours => ${IDEMPOTENCY_TTL_HOURS})
            OR (idempotency_keys.response_status IS NULL AND idempotency_keys.request_hash = EXCLUDED.request_hash
                AND idempotency_keys.created_at < now() - make_interval(secs => $5))`,
      [keyId, idempotencyKey, fingerprint, token, this.claimLeaseSeconds],
    );
    if ((inserted.rowCount ?? 0) > 0) return { kind: 'claimed', token };
    const existing = await this.db.query<{
      request_hash: string;
      response_status: number | null;
      response_body: unknown;
      response_headers: Record<string, string> | null;
    }>(
      `SELECT request_hash, response_status, response_body, response_headers
       FROM idempotency_keys WHERE key_id = $1 AND idempotency_key = $2`,
      [keyId, idempotencyKey],
    );
    const row = existing.rows[0];
    // Released between our two statements: let the client try again.
    if (row === undefined) return { kind: 'in_progress' };
    if (row.request_hash !== fingerprint) return { kind: 'mismatch' };
    if (row.response_status === null) return { kind: 'in_progress' };
    return { kind: 'replay', status: row.response_status, body: row.response_body, headers: row.response_headers ?? {} };
  }

  /**
   * Stores the answer of the claim `token`. `tx`: the transaction that commits the work the
   * answer reports, so the work and its answer are stored together or not at all. False when
   * the claim is no longer this one's (its lease ran out and another request took it).
   */
  async complete(
    keyId: string,
    idempotencyKey: string,
    token: string,
    response: { status: number; body: unknown; headers?: Record<string, string> | undefined },
    tx: Queryable = this.db,
  ): Promise<boolean> {
    const result = await tx.query(
      `UPDATE idempotency_keys SET response_status = $4, response_body = $5, response_headers = $6
       WHERE key_id = $1 AND idempotency_key = $2 AND claim_token = $3 AND response_status IS NULL`,
      [keyId, idempotencyKey, token, response.status, JSON.stringify(response.body), JSON.stringify(response.headers ?? {})],
    );
    return (result.rowCount ?? 0) > 0;
  }

  /** Frees a claim whose request failed (and committed nothing), so the client may retry with the same key. */
  async release(keyId: string, idempotencyKey: string, token: string): Promise<void> {
    await this.db.query(
      'DELETE FROM idempotency_keys WHERE key_id = $1 AND idempotency_key = $2 AND claim_token = $3 AND response_status IS NULL',
      [keyId, idempotencyKey, token],
    );
  }

  /**
   * Deletes expired records, `batchSize` at a time (each record may hold a whole bulk
   * answer), oldest first; returns how many. Run by the workers' maintenance.
   */
  async purgeExpired(batchSize = 1000, maxBatches = 100): Promise<number> {
    let total = 0;
    for (let batch = 0; batch < maxBatches; batch += 1) {
      const result = await this.db.query(
        `DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY(
           SELECT ctid FROM idempotency_keys WHERE created_at < now() - make_interval(hours => ${IDEMPOTENCY_TTL_HOURS})
           ORDER BY created_at LIMIT $1))`,
        [batchSize],
      );
      const deleted = result.rowCount ?? 0;
      total += deleted;
      if (deleted < batchSize) break;
    }
    return total;
  }
}
