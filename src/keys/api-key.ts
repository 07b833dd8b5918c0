/** API keys: secrets handed out once, kept only as hashes, compared in constant time. */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { BASE62_ALPHABET } from '../shared/base62.js';

export const KEY_ROLES = ['admin', 'member'] as const;
export type KeyRole = (typeof KEY_ROLES)[number];

export interface ApiKey {
  id: string;
  name: string;
  role: KeyRole;
  prefix: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

/** Characters kept in clear: enough to find the row, far too few to guess the rest. */
export const KEY_PREFIX_LENGTH = 14;

function randomBase62(length: number): string {
  // Rejection sampling keeps every character uniform (256 is not a multiple of 62).
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248 && out.length < length) out += BASE62_ALPHABET[byte % 62];
    }
  }
  return out;
}

/** A new secret: `shunt_` and 40 base62 characters (about 238 bits). */
export function generateKeySecret(): string {
  return `shunt_${randomBase62(40)}`;
}

export function generateKeyId(): string {
  return `key_${randomBase62(16)}`;
}

export function keyPrefix(secret: string): string {
  return secret.slice(0, KEY_PREFIX_LENGTH);
}

export function hashKeySecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

export function secretMatches(secret: string, storedHash: Buffer): boolean {
  const presented = hashKeySecret(secret);
  return presented.length === storedHash.length && timingSafeEqual(presented, storedHash);
}
