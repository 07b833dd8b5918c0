/**
 * One driver (`pg`) and one SQL dialect for both modes: a real PostgreSQL when a URL is
 * configured, otherwise PGlite (PostgreSQL compiled to WASM) behind pg's own Pool API.
 */
import { mkdirSync } from 'node:fs';
import type { PGlite } from '@electric-sql/pglite';
import pg from 'pg';

export type Row = Record<string, unknown>;

/** Anything that runs a query: the pool, or a client inside a transaction. */
export interface Queryable {
  query<R extends Row = Row>(text: string, params?: readonly unknown[]): Promise<pg.QueryResult<R>>;
}

export interface Database extends Queryable {
  readonly kind: 'embedded' | 'postgres';
  /** Runs `work` in one transaction on one connection; rolls back when it throws. */
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  close(): Promise<void>;
  readonly poolStats: () => { total: number; idle: number; waiting: number };
}

export interface DatabaseOptions {
  url: string | undefined;
  /** Embedded only: a directory, or `memory://` for a throw-away store (tests). */
  dataDir: string;
  poolSize: number;
  applicationName?: string;
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.url !== undefined) {
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize,
      application_name: options.applicationName ?? 'shunt',
      connectionTimeoutMillis: 5000,
    });
    // An idle client that loses its server must not crash the process; the next query reconnects.
    pool.on('error', () => undefined);
    return wrapPool(pool);
  }
  // Loaded lazily: the WASM build costs memory that a PostgreSQL deployment should not pay.
  const [{ PGlite }, { createPgConfig }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('@electric-sql/pglite/node-postgres'),
  ]);
  if (!options.dataDir.startsWith('memory://')) mkdirSync(options.dataDir, { recursive: true });
  const lite = await PGlite.create(options.dataDir);
  const client = new pg.Client(createPgConfig(lite));
  await client.connect();
  return serialClient(lite, client);
}

/** The queries a pg client or pool can run, as our Queryable. */
function queryable(target: pg.Pool | pg.PoolClient | pg.Client): Queryable {
  return { query: <R extends Row>(text: string, params?: readonly unknown[]) => target.query<R>(text, params as unknown[]) };
}

/** BEGIN, work, COMMIT; ROLLBACK and rethrow when the work throws. One connection throughout. */
async function inTransaction<T>(tx: Queryable, work: (tx: Queryable) => Promise<T>): Promise<T> {
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

/**
 * PGlite is one connection. A pg.Pool over it would discard the "connection" after a
 * failed query and break the next one, so one long-lived client is shared instead, and
 * each query or transaction waits for the previous one to finish.
 */
function serialClient(lite: PGlite, client: pg.Client): Database {
  let tail: Promise<unknown> = Promise.resolve();
  let waiting = 0;
  let busy = false;
  const run = <T>(work: () => Promise<T>): Promise<T> => {
    waiting += 1;
    const result = tail.then(async () => {
      waiting -= 1;
      busy = true;
      try {
        return await work();
      } finally {
        busy = false;
      }
    });
    tail = result.catch(() => undefined);
    return result;
  };
  const direct = queryable(client);
  return {
    kind: 'embedded',
    query: <R extends Row>(text: string, params?: readonly unknown[]) => run(() => direct.query<R>(text, params)),
    transaction: <T>(work: (tx: Queryable) => Promise<T>) => run(() => inTransaction(direct, work)),
    async ping() {
      await run(() => client.query('SELECT 1'));
    },
    close: () =>
      run(async () => {
        await client.end();
        await lite.close();
      }),
    poolStats: () => ({ total: 1, idle: busy ? 0 : 1, waiting }),
  };
}

function wrapPool(pool: pg.Pool): Database {
  return {
    kind: 'postgres',
    ...queryable(pool),
    async transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      try {
        return await inTransaction(queryable(client), work);
      } finally {
        client.release();
      }
    },
    async ping() {
      await pool.query('SELECT 1');
    },
    close: () => pool.end(),
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
  };
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
      if (attempt >= options.attempts || !CONFLICT_STATES.has(sqlState(error) ?? '')) throw error;
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
