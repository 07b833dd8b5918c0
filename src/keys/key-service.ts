import { AppError } from '../shared/errors.js';
import type { Actor } from '../links/link.js';
import {
  generateKeyId, generateKeySecret, hashKeySecret, keyPrefix, secretMatches,
  type ApiKey, type KeyRole,
} from './api-key.js';
import type { KeyRepository } from './key-repository.js';

export interface CreatedKey {
  key: ApiKey;
  /** Shown once; only its hash is stored. */
  secret: string;
}

export class KeyService {
  constructor(
    private readonly keys: KeyRepository,
    private readonly onBackgroundError: (error: unknown) => void,
  ) {}

  /** The actor behind a presented secret, or null when it is unknown or revoked. */
  async authenticate(secret: string): Promise<Actor | null> {
    if (secret.length < 16 || secret.length > 256) return null;
    const candidates = await this.keys.findActiveByPrefix(keyPrefix(secret));
    const match = candidates.find((candidate) => secretMatches(secret, candidate.secretHash));
    if (match === undefined) return null;
    this.keys.touch(match.key.id).catch(this.onBackgroundError);
    return { keyId: match.key.id, role: match.key.role };
  }

  async create(name: string, role: KeyRole): Promise<CreatedKey> {
    const secret = generateKeySecret();
    const key = await this.keys.insert({
      id: generateKeyId(), name, role, prefix: keyPrefix(secret), secretHash: hashKeySecret(secret),
    });
    return { key, secret };
  }

  list(): Promise<ApiKey[]> {
    return this.keys.list();
  }

  async revoke(id: string): Promise<void> {
    const outcome = await this.keys.revoke(id);
    switch (outcome) {
      case 'revoked':
        return;
      case 'not_found':
        throw new AppError('key_not_found', { detail: `No active API key with id "${id}"` });
      case 'last_admin':
        throw new AppError('last_admin_key', { detail: 'Create another admin key before revoking this one' });
    }
  }

  /**
   * Makes sure an admin key exists. On first start that is `configured` (ADMIN_API_KEY) or
   * a new random one; the secret is returned only when it was generated here, so the
   * caller can print it once. Several instances starting at once create only one.
   */
  async ensureAdmin(configured: string | undefined): Promise<CreatedKey | null> {
    return this.keys.withAdminLock(async (tx) => {
      if ((await this.keys.countActiveAdmins(tx)) > 0) return null;
      const secret = configured ?? generateKeySecret();
      const key = await this.keys.insert(
        { id: generateKeyId(), name: 'admin', role: 'admin', prefix: keyPrefix(secret), secretHash: hashKeySecret(secret) },
        tx,
      );
      return configured === undefined ? { key, secret } : null;
    });
  }
}
