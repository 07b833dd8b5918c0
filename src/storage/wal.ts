/** Positions in PostgreSQL's write-ahead log, as the replica router compares them. */
import type { Database } from './database.js';

/**
 * Where the primary's WAL stands now; null for the embedded store, which has no replicas.
 *
 * The insert position rather than `pg_current_wal_lsn()` (the write position): with
 * `synchronous_commit = off` a commit returns before its record is written, so the write
 * position read right after it can still be short of the commit, and a replica that has
 * replayed up to it would not show the change yet. The insert position is past every
 * record already inserted, whatever the commit mode.
 */
export async function currentWalLsn(db: Database): Promise<string | null> {
  if (db.kind === 'embedded') return null;
  const result = await db.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
  const lsn = result.rows[0]?.lsn;
  if (lsn === undefined) throw new Error('pg_current_wal_insert_lsn() returned no row');
  return lsn;
}

const LSN_PATTERN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** `16/B374D848` as a number that orders like the pg_lsn it came from. */
export function parseLsn(text: string): bigint {
  const match = LSN_PATTERN.exec(text);
  if (match?.[1] === undefined || match[2] === undefined) throw new Error(`not a WAL position: ${JSON.stringify(text)}`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

export function formatLsn(position: bigint): string {
  return `${(position >> 32n).toString(16).toUpperCase()}/${(position & 0xffffffffn).toString(16).toUpperCase()}`;
}
