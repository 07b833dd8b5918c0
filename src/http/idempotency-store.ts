/**
 * Stripe-style Idempotency-Key records: the first request with a key claims it, and a
 * retry with the same key and the same request gets the stored answer back. Records
 * live 24 hours.
 */
import { createHash } from 'node:crypto';
import type { Database } from '../storage/database.js';

export const IDEMPOTENCY_TTL_HOURS = 24;
export const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

export type IdempotencyClaim =
  | { kind: 'claimed' }
  | { kind: 'replay'; status: number; body: unknown; headers: Record<string, string> }
  | { kind: 'in_progress' }
  | { kind: 'mismatch' };

export function requestFingerprint(method: string, path: string, body: unknown): string {
  return createHash('sha256').update(`${method} ${path}\n${JSON.stringify(body ?? null)}`).digest('hex');
}

export class IdempotencyStore {
  constructor(private readonly db: Database) {}

  async claim(keyId: string, idempotencyKey: string, fingerprint: string): Promise<IdempotencyClaim> {
    // An expired record is as good as none: replace it in the same statement.
    const inserted = await this.db.query(
      `INSERT INTO idempotency_keys (key_id, idempotency_key, request_hash)
       VALUES ($1, $2, $3)
       ON CONFLICT (key_id, idempotency_key) DO UPDATE
         SET request_hash = EXCLUDED.request_hash, response_status = NULL, response_body = NULL, response_headers = NULL, created_at = now()
         WHERE idempotency_keys.created_at < now() - make_interval(hours => ${IDEMPOTENCY_TTL_HOURS})`,
      [keyId, idempotencyKey, fingerprint],
    );
    if ((inserted.rowCount ?? 0) > 0) return { kind: 'claimed' };
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

  async complete(
    keyId: string,
    idempotencyKey: string,
    response: { status: number; body: unknown; headers?: Record<string, string> | undefined },
  ): Promise<void> {
    await this.db.query(
      `UPDATE idempotency_keys SET response_status = $3, response_body = $4, response_headers = $5
       WHERE key_id = $1 AND idempotency_key = $2`,
      [keyId, idempotencyKey, response.status, JSON.stringify(response.body), JSON.stringify(response.headers ?? {})],
    );
  }

  /** Frees a claim whose request failed, so the client may retry with the same key. */
  async release(keyId: string, idempotencyKey: string): Promise<void> {
    await this.db.query(
      'DELETE FROM idempotency_keys WHERE key_id = $1 AND idempotency_key = $2 AND response_status IS NULL',
      [keyId, idempotencyKey],
    );
  }
}
