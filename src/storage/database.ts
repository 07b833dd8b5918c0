/**
 * One driver (`pg`) and one SQL dialect for both modes: a real PostgreSQL when a URL is
 * configured, otherwise PGlite (PostgreSQL compiled to WASM) behind pg's own Pool API.
 */
import { mkdirSync } from 'node:fs';
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
    return wrapPool(pool, 'postgres', async () => {
      await pool.end();
    });
  }
  // Loaded lazily: the WASM build costs memory that a PostgreSQL deployment should not pay.
  const [{ PGlite }, { createPgConfig }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('@electric-sql/pglite/node-postgres'),
  ]);
  if (!options.dataDir.startsWith('memory://')) mkdirSync(options.dataDir, { recursive: true });
  const lite = await PGlite.create(options.dataDir);
  // PGlite is a single connection: the pool serialises access to it.
  const pool = new pg.Pool({ ...createPgConfig(lite), max: 1 });
  return wrapPool(pool, 'embedded', async () => {
    await pool.end();
    await lite.close();
  });
}

function wrapPool(pool: pg.Pool, kind: Database['kind'], close: () => Promise<void>): Database {
  return {
    kind,
    query: <R extends Row>(text: string, params?: readonly unknown[]) => pool.query<R>(text, params as unknown[]),
    async transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await work({
          query: <R extends Row>(text: string, params?: readonly unknown[]) => client.query<R>(text, params as unknown[]),
        });
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
    async ping() {
      await pool.query('SELECT 1');
    },
    close,
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
  };
}

/** PostgreSQL's SQLSTATE for a unique violation. */
export const UNIQUE_VIOLATION = '23505';

export function isUniqueViolation(error: unknown, constraint?: string): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, constraint: name } = error as { code?: unknown; constraint?: unknown };
  return code === UNIQUE_VIOLATION && (constraint === undefined || name === constraint);
}
