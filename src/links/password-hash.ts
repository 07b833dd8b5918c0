/**
 * Link passwords, stored as scrypt hashes (node:crypto): a random salt per link, cost
 * parameters kept in the stored text so they can be raised later without breaking old
 * hashes, and a constant-time comparison. scrypt runs on libuv's thread pool, not on the
 * event loop. Format: `scrypt$<log2 N>$<r>$<p>$<salt, base64url>$<hash, base64url>`.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const LOG2_N = 14;
const BLOCK_SIZE = 8;
const PARALLELISM = 1;
const SALT_BYTES = 16;
const HASH_BYTES = 32;
/** Longest password accepted: scrypt's cost does not depend on it, but parsing and storage do. */
export const MAX_PASSWORD_LENGTH = 1024;

function derive(password: string, salt: Buffer, log2N: number, r: number, p: number): Promise<Buffer> {
  const N = 2 ** log2N;
  const options: ScryptOptions = { N, r, p, maxmem: 256 * N * r + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, HASH_BYTES, options, (error, key) => (error === null ? resolve(key) : reject(error)));
  });
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, LOG2_N, BLOCK_SIZE, PARALLELISM);
  return `scrypt$${LOG2_N}$${BLOCK_SIZE}$${PARALLELISM}$${salt.toString('base64url')}$${hash.toString('base64url')}`;
}

/** False for a wrong password and for a stored text this version cannot read. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [log2N, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![log2N, r, p].every((value) => Number.isInteger(value) && value > 0 && value <= 20)) return false;
  const expected = Buffer.from(parts[5] ?? '', 'base64url');
  if (expected.length !== HASH_BYTES || password.length > MAX_PASSWORD_LENGTH) return false;
  const actual = await derive(password, Buffer.from(parts[4] ?? '', 'base64url'), log2N, r, p);
  return timingSafeEqual(actual, expected);
}
