/**
 * The key of the short-code permutation, shared by every instance through the database.
 * It is created once and must never change (ADR 0001): new codes would collide with old.
 */
import { randomBytes } from 'node:crypto';
import type { Database } from '../storage/database.js';
import { CodeAllocator, CodePermutation } from './short-code.js';

const SETTING = 'code_permutation_key';

export async function loadCodeKey(db: Database): Promise<Buffer> {
  await db.query('INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [
    SETTING,
    randomBytes(32).toString('hex'),
  ]);
  const result = await db.query<{ value: string }>('SELECT value FROM settings WHERE name = $1', [SETTING]);
  const value = result.rows[0]?.value;
  if (value === undefined) throw new Error('code permutation key is missing from settings');
  return Buffer.from(value, 'hex');
}

export async function leaseCodeBlock(db: Database): Promise<bigint> {
  const result = await db.query<{ block: string }>("SELECT nextval('link_code_blocks')::text AS block");
  const block = result.rows[0]?.block;
  if (block === undefined) throw new Error('no block from link_code_blocks');
  return BigInt(block);
}

/** The allocator every code-creating process uses: this installation's key, blocks from the shared sequence. */
export async function codeAllocator(db: Database, codes: { length: number; blockSize: number }): Promise<CodeAllocator> {
  return new CodeAllocator({
    permutation: new CodePermutation(await loadCodeKey(db), codes.length),
    blockSize: codes.blockSize,
    leaseBlock: () => leaseCodeBlock(db),
  });
}
