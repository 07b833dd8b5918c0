import type { KeyRole } from '../keys/api-key.js';
import type { Queryable } from '../storage/database.js';

export interface StoredSession {
  keyId: string;
  role: KeyRole;
  expiresAt: Date;
}

interface SessionRow {
  key_id: string;
  role: KeyRole;
  expires_at: Date;
  [column: string]: unknown;
}

export class SessionRepository {
  constructor(private readonly db: Queryable) {}

  async insert(tokenHash: Buffer, keyId: string, expiresAt: Date): Promise<void> {
    await this.db.query('INSERT INTO sessions (token_hash, key_id, expires_at) VALUES ($1, $2, $3)', [tokenHash, keyId, expiresAt]);
  }

  /** The live session behind a token hash: unexpired, and its key not revoked. */
  async findLive(tokenHash: Buffer): Promise<StoredSession | null> {
    const result = await this.db.query<SessionRow>(
      `SELECT sessions.key_id, api_keys.role, sessions.expires_at
       FROM sessions JOIN api_keys ON api_keys.id = sessions.key_id
       WHERE sessions.token_hash = $1 AND sessions.expires_at > now() AND api_keys.revoked_at IS NULL`,
      [tokenHash],
    );
    const row = result.rows[0];
    return row === undefined ? null : { keyId: row.key_id, role: row.role, expiresAt: row.expires_at };
  }

  async delete(tokenHash: Buffer): Promise<void> {
    await this.db.query('DELETE FROM sessions WHERE token_hash = $1', [tokenHash]);
  }

  /** Expired rows are dead already (findLive ignores them); this only reclaims space. */
  async deleteExpired(): Promise<void> {
    await this.db.query('DELETE FROM sessions WHERE expires_at <= now()');
  }
}
