import type { Database, Queryable } from '../storage/database.js';
import type { ApiKey, KeyRole } from './api-key.js';

interface KeyRow {
  id: string;
  name: string;
  role: KeyRole;
  prefix: string;
  secret_hash: Buffer;
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
  [column: string]: unknown;
}

function toKey(row: KeyRow): ApiKey {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    prefix: row.prefix,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    revokedAt: row.revoked_at,
  };
}

export interface StoredKey {
  key: ApiKey;
  secretHash: Buffer;
}

export class KeyRepository {
  constructor(private readonly db: Database) {}

  async insert(
    key: { id: string; name: string; role: KeyRole; prefix: string; secretHash: Buffer },
    tx: Queryable = this.db,
  ): Promise<ApiKey> {
    const result = await tx.query<KeyRow>(
      `INSERT INTO api_keys (id, name, role, prefix, secret_hash) VALUES ($1, $2, $3, $4, $5) RETURNING *`,
      [key.id, key.name, key.role, key.prefix, key.secretHash],
    );
    return toKey(result.rows[0] as KeyRow);
  }

  async findActiveByPrefix(prefix: string): Promise<StoredKey[]> {
    const result = await this.db.query<KeyRow>(
      'SELECT * FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL',
      [prefix],
    );
    return result.rows.map((row) => ({ key: toKey(row), secretHash: Buffer.from(row.secret_hash) }));
  }

  async findById(id: string): Promise<ApiKey | null> {
    const result = await this.db.query<KeyRow>('SELECT * FROM api_keys WHERE id = $1', [id]);
    const row = result.rows[0];
    return row === undefined ? null : toKey(row);
  }

  async list(): Promise<ApiKey[]> {
    const result = await this.db.query<KeyRow>('SELECT * FROM api_keys ORDER BY created_at DESC, id');
    return result.rows.map(toKey);
  }

  async countActiveAdmins(tx: Queryable = this.db): Promise<number> {
    const result = await tx.query<{ count: number }>(
      "SELECT count(*)::int AS count FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL",
    );
    return result.rows[0]?.count ?? 0;
  }

  /** Revokes the key unless it is the last active admin; says which happened. */
  async revoke(id: string): Promise<'revoked' | 'not_found' | 'last_admin'> {
    return this.db.transaction(async (tx) => {
      // Serialises revocations so two concurrent calls cannot remove the last two admins.
      await tx.query('SELECT pg_advisory_xact_lock($1)', [KEY_ADMIN_LOCK_ID]);
      const found = await tx.query<KeyRow>('SELECT * FROM api_keys WHERE id = $1 AND revoked_at IS NULL', [id]);
      const row = found.rows[0];
      if (row === undefined) return 'not_found';
      if (row.role === 'admin' && (await this.countActiveAdmins(tx)) <= 1) return 'last_admin';
      await tx.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1', [id]);
      return 'revoked';
    });
  }

  /** Records use at most once a minute, so authentication does not write on every request. */
  async touch(id: string): Promise<void> {
    await this.db.query(
      `UPDATE api_keys SET last_used_at = now()
       WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`,
      [id],
    );
  }

  async withAdminLock<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [KEY_ADMIN_LOCK_ID]);
      return work(tx);
    });
  }
}

const KEY_ADMIN_LOCK_ID = 7_412_2026;
