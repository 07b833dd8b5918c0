/**
 * The PostgreSQL side of `Database`: a pg.Pool that survives its server going away.
 * - Every connection has an `error` listener at all times: idle ones get pg-pool's, and a
 *   connection checked out for a transaction gets ours, so a terminated backend, a
 *   restart or a failover is an error for the work in flight, never an unhandled event
 *   that ends the process. A connection that failed is destroyed, not reused.
 * - Connecting and each statement have time limits, so no caller waits on a dead server.
 * - A circuit breaker opens after consecutive connection failures: while it is open every
 *   call fails at once with DatabaseUnavailableError (503 with Retry-After at the edge),
 *   and one call at a time probes until the server answers again.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { CircuitBreaker, CircuitOpenError, type BreakerState } from '../redis/circuit-breaker.js';
import { inTransaction, type CopyIn, type Database, type Queryable, type Row } from './database.js';
import { DatabaseUnavailableError, isConnectionFailure } from './database-unavailable.js';

export interface PostgresPoolOptions {
  url: string;
  poolSize: number;
  applicationName: string;
  /** Waiting for a pooled connection or a new one, at most. */
  connectTimeoutMs: number;
  /** One statement, at most (the server cancels it; the client gives up a second later). */
  statementTimeoutMs: number;
  breakerThreshold: number;
  breakerCooldownMs: number;
  onStateChange?: (state: BreakerState) => void;
}

export function openPostgresPool(options: PostgresPoolOptions): Database {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize,
    application_name: options.applicationName,
    connectionTimeoutMillis: options.connectTimeoutMs,
    statement_timeout: options.statementTimeoutMs,
    // A server that stopped answering without closing the socket (frozen, partitioned).
    query_timeout: options.statementTimeoutMs + 1000,
    keepAlive: true,
  });
  // An idle connection that loses its server is dropped by the pool; the next query opens another.
  pool.on('error', () => undefined);
  // pg-pool hands a new connection out with no listener of its own, and its ReadyForQuery
  // may share a network read with the server's "terminating connection": the error would be
  // emitted before any caller could listen. This listener stays for the connection's life.
  pool.on('connect', (client) => client.on('error', () => undefined));
  const retryAfterSeconds = Math.max(1, Math.ceil(options.breakerCooldownMs / 1000));
  const breaker = new CircuitBreaker({
    name: 'database',
    threshold: options.breakerThreshold,
    cooldownMs: options.breakerCooldownMs,
    isFailure: isConnectionFailure,
    ...(options.onStateChange === undefined ? {} : { onStateChange: options.onStateChange }),
  });

  /** Runs `work` behind the breaker; a lost or refused server becomes DatabaseUnavailableError. */
  const guarded = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await breaker.run(work);
    } catch (error) {
      if (error instanceof CircuitOpenError || isConnectionFailure(error)) throw new DatabaseUnavailableError(retryAfterSeconds, error);
      throw error;
    }
  };

  const query = <R extends Row>(text: string, params?: readonly unknown[]): Promise<pg.QueryResult<R>> =>
    guarded(() => pool.query<R>(text, params as unknown[]));

  return {
    kind: 'postgres',
    query,
    transaction: <T>(work: (tx: Queryable) => Promise<T>) => guarded(() => transactionOnOwnClient(pool, work)),
    async ping() {
      await query('SELECT 1');
    },
    close: () => pool.end(),
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    breakerState: () => breaker.state,
  };
}

/**
 * A connection for a transaction, with a listener that notes the connection's loss. The
 * callback form of connect() runs in the same tick as the hand-out; an awaited promise
 * would leave a gap in which an error could already be emitted.
 */
function checkout(pool: pg.Pool): Promise<{ client: pg.PoolClient; lost: () => Error | undefined; onError: (error: Error) => void }> {
  return new Promise((resolve, reject) => {
    pool.connect((error, client) => {
      if (error !== undefined && error !== null) {
        reject(error);
        return;
      }
      if (client === undefined) {
        reject(new Error('the pool handed out no connection'));
        return;
      }
      let lost: Error | undefined;
      const onError = (failure: Error): void => {
        lost ??= failure;
      };
      client.on('error', onError);
      resolve({ client, lost: () => lost, onError });
    });
  });
}

/** Each pooled connection's COPY, kept while the connection lives: its identity is the connection's. */
const copyIns = new WeakMap<pg.PoolClient, CopyIn>();

function copyInOf(client: pg.PoolClient): CopyIn {
  let copyIn = copyIns.get(client);
  if (copyIn === undefined) {
    copyIn = { copy: (table, data) => pipeline(Readable.from([Buffer.from(data)]), client.query(copyStreams.from(`COPY ${table} FROM STDIN`))) };
    copyIns.set(client, copyIn);
  }
  return copyIn;
}

async function transactionOnOwnClient<T>(pool: pg.Pool, work: (tx: Queryable) => Promise<T>): Promise<T> {
  const { client, lost: lostError, onError } = await checkout(pool);
  let failure: unknown;
  try {
    return await inTransaction({ query: (text, params) => client.query(text, params as unknown[]), copyIn: copyInOf(client) }, work);
  } catch (error) {
    failure = error;
    const lost = lostError();
    throw lost !== undefined && !isConnectionFailure(error) ? lost : error;
  } finally {
    client.removeListener('error', onError);
    // Released with an error, the pool destroys the connection instead of reusing it.
    client.release(lostError() ?? (isConnectionFailure(failure) ? (failure as Error) : undefined));
  }
}
