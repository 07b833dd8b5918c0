/**
 * One driver (`pg`) and one SQL dialect for both modes: a real PostgreSQL when a URL is
 * configured, otherwise PGlite (PostgreSQL compiled to WASM) behind pg's own client API, in a
 * thread of its own (embedded-store.ts, ADR 0010).
 */
import type pg from 'pg';
import type { BreakerState } from '../redis/circuit-breaker.js';
import { openPostgresPool, type PostgresPoolOptions } from './postgres-pool.js';

export type Row = Record<string, unknown>;

/**
 * A store's bulk load: COPY in text format (copy-text.ts), from STDIN on PostgreSQL and from
 * PGlite's '/dev/blob'. One object per connection, so a caller may remember by it what it
 * set up on that connection (a temporary table).
 */
export interface CopyIn {
  /** Loads `data`, rows in COPY text format, into `table` (which may name its columns). */
  copy(table: string, data: string): Promise<void>;
}

/** Anything that runs a query: the pool, or a client inside a transaction. */
export interface Queryable {
  query<R extends Row = Row>(text: string, params?: readonly unknown[]): Promise<pg.QueryResult<R>>;
  /** Present on a transaction whose connection can COPY; callers fall back to plain statements without it. */
  readonly copyIn?: CopyIn;
}

export interface Database extends Queryable {
  readonly kind: 'embedded' | 'postgres';
  /** Runs `work` in one transaction on one connection; rolls back when it throws. */
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  close(): Promise<void>;
  readonly poolStats: () => { total: number; idle: number; waiting: number };
  /** PostgreSQL only: the circuit in front of the pool (ADR 0016). */
  readonly breakerState?: () => BreakerState;
}

export interface DatabaseOptions {
  url: string | undefined;
  /** Embedded only: a directory, or `memory://` for a throw-away store (tests). */
  dataDir: string;
  poolSize: number;
  applicationName?: string;
  /** PostgreSQL only: time limits and the circuit breaker (ADR 0016). */
  resilience?: DatabaseResilience;
}

export type DatabaseResilience = Pick<PostgresPoolOptions, 'connectTimeoutMs' | 'statementTimeoutMs' | 'breakerThreshold' | 'breakerCooldownMs' | 'onStateChange'>;

const DEFAULT_RESILIENCE: DatabaseResilience = { connectTimeoutMs: 1000, statementTimeoutMs: 15_000, breakerThreshold: 3, breakerCooldownMs: 1000 };

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.url !== undefined) {
    const { connectTimeoutMs, statementTimeoutMs, breakerThreshold, breakerCooldownMs, onStateChange } = options.resilience ?? DEFAULT_RESILIENCE;
    return openPostgresPool({
      url: options.url,
      poolSize: options.poolSize,
      applicationName: options.applicationName ?? 'shunt',
      connectTimeoutMs,
      statementTimeoutMs,
      breakerThreshold,
      breakerCooldownMs,
      ...(onStateChange === undefined ? {} : { onStateChange }),
    });
  }
  // Loaded lazily: the WASM build costs memory that a PostgreSQL deployment should not pay.
  const { EmbeddedStore } = await import('./embedded-store.js');
  return EmbeddedStore.open(options.dataDir);
}

/** The queries a pg client or pool can run, as our Queryable. */
export function queryable(target: pg.Pool | pg.PoolClient | pg.Client): Queryable {
  return { query: <R extends Row>(text: string, params?: readonly unknown[]) => target.query<R>(text, params as unknown[]) };
}

/** BEGIN, work, COMMIT; ROLLBACK and rethrow when the work throws. One connection throughout. */
export async function inTransaction<T>(tx: Queryable, work: (tx: Queryable) => Promise<T>): Promise<T> {
  await tx.query('BEGIN');
  try {
    const result = await work(tx);
    await tx.query('COMMIT');
    return result;
  } catch (error) {
    await tx.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** The SQLSTATE of a database error, if it is one. */
function sqlState(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code } = error as { code?: unknown };
  return typeof code === 'string' ? code : undefined;
}

/** SQLSTATE classes 22 (data exception) and 23 (integrity): retrying the same rows cannot succeed. */
export function isDataError(error: unknown): boolean {
  return /^2[23][0-9A-Z]{3}$/.test(sqlState(error) ?? '');
}

/** Serialization failure and deadlock: the transaction was rolled back whole and may simply run again. */
const CONFLICT_STATES: ReadonlySet<string> = new Set(['40001', '40P01']);

export function isTransactionConflict(error: unknown): boolean {
  return CONFLICT_STATES.has(sqlState(error) ?? '');
}

/**
 * Runs `work` in a transaction, again when it lost a deadlock or serialization race, up to
 * `attempts` times in all; any other error, or the last one, is thrown.
 */
export async function transactionRetryingConflicts<T>(
  db: Database,
  work: (tx: Queryable) => Promise<T>,
  options: { attempts: number; onRetry?: (error: unknown, attempt: number) => void },
): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await db.transaction(work);
    } catch (error) {
      if (attempt >= options.attempts || !isTransactionConflict(error)) throw error;
      options.onRetry?.(error, attempt);
    }
  }
}

/** PostgreSQL's SQLSTATE for a unique violation. */
export const UNIQUE_VIOLATION = '23505';

export function isUniqueViolation(error: unknown, constraint?: string): boolean {
  if (sqlState(error) !== UNIQUE_VIOLATION) return false;
  return constraint === undefined || (error as { constraint?: unknown }).constraint === constraint;
}
