/**
 * PGlite behind pg's client API, as the store thread runs it (embedded-thread.ts): pg's
 * type parsing applies, so rows are what they are on PostgreSQL.
 */
import { mkdirSync } from 'node:fs';
import type { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { inTransaction, queryable, type CopyIn, type Database, type Queryable, type Row } from './database.js';

export async function openPglite(dataDir: string): Promise<Database> {
  const [{ PGlite }, { createPgConfig }] = await Promise.all([import('@electric-sql/pglite'), import('@electric-sql/pglite/node-postgres')]);
  if (!dataDir.startsWith('memory://')) mkdirSync(dataDir, { recursive: true });
  const lite = await PGlite.create(dataDir);
  const client = new pg.Client(createPgConfig(lite));
  await client.connect();
  return serialClient(lite, client);
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
  // COPY goes to PGlite itself: it reads COPY data from '/dev/blob', not from the protocol
  // stream the pg client speaks. Same session, so inside the client's transaction.
  const copyIn: CopyIn = {
    copy: async (table, data) => {
      await lite.query(`COPY ${table} FROM '/dev/blob'`, [], { blob: new Blob([data]) });
    },
  };
  const direct = queryable(client);
  const inTransactionWithCopy: Queryable = { ...direct, copyIn };
  return {
    kind: 'embedded',
    query: <R extends Row>(text: string, params?: readonly unknown[]) => run(() => direct.query<R>(text, params)),
    transaction: <T>(work: (tx: Queryable) => Promise<T>) => run(() => inTransaction(inTransactionWithCopy, work)),
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
