/**
 * The embedded store's thread (ADR 0010): PGlite, its one connection, and (once asked) the
 * enrichment and storage of clicks, so that none of it runs on the thread that answers
 * redirects. Requests come from embedded-store.ts; each gets one reply.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runAsBackgroundThread } from '../shared/thread-priority.js';
import type { Database, Queryable } from './database.js';
import { openPglite } from './embedded-pglite.js';
import { toWireError, toWireResult, type ClickReply, type ClickRequest, type StoreReply, type StoreRequest, type StoreThreadData, type WireResult } from './embedded-protocol.js';

type Incoming = StoreRequest | ClickRequest | { t: 'clicks-start'; storeRawIp: boolean };

interface OpenTransaction {
  tx: Queryable;
  finish: (commit: boolean) => void;
  done: Promise<unknown>;
}

/** Thrown inside a transaction's work to roll it back when the HTTP thread asks for it. */
class RollbackRequested extends Error {}

async function main(): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('embedded-thread.ts runs only as a worker thread');
  const { dataDir } = workerData as StoreThreadData;
  runAsBackgroundThread();
  const db = await openPglite(dataDir);
  const open = new Map<number, OpenTransaction>();
  // Loaded on the first clicks-start (clicks may be off). The batches that follow at once
  // wait for it, in order, rather than finding no host and going unanswered.
  let clicks: Promise<(request: ClickRequest) => void> | null = null;

  const reply = (message: StoreReply | ClickReply): void => port.postMessage(message);
  const answer = async (id: number, work: () => Promise<WireResult | WireResult[] | undefined>): Promise<void> => {
    try {
      const result = await work();
      reply(result === undefined ? { t: 'reply', id, ok: true } : { t: 'reply', id, ok: true, result });
    } catch (error) {
      reply({ t: 'reply', id, ok: false, error: toWireError(error) });
    }
  };

  const handle = async (message: Incoming): Promise<void> => {
    switch (message.t) {
      case 'query':
        return answer(message.id, async () => {
          const target = message.tx === null ? db : open.get(message.tx)?.tx;
          if (target === undefined) throw new Error(`transaction ${message.tx} is not open in the store thread`);
          return toWireResult(await target.query(message.text, message.params));
        });
      case 'begin':
        return answer(message.id, () => begin(db, open, message.tx).then(() => undefined));
      case 'end':
        return answer(message.id, async () => {
          const transaction = open.get(message.tx);
          if (transaction === undefined) throw new Error(`transaction ${message.tx} is not open in the store thread`);
          open.delete(message.tx);
          transaction.finish(message.commit);
          await transaction.done.catch((error: unknown) => {
            if (!(error instanceof RollbackRequested)) throw error;
          });
          return undefined;
        });
      case 'close':
        return answer(message.id, async () => {
          await db.close();
          port.close();
          return undefined;
        });
      case 'clicks-start':
        clicks ??= import('../pipeline/thread-click-host.js').then(({ serveClicks }) => serveClicks(db, { storeRawIp: message.storeRawIp }, reply));
        return;
      case 'clicks': {
        if (clicks === null) {
          reply({ t: 'clicks-failed', batch: message.batch, error: toWireError(new Error('clicks posted before clicks-start')) });
          return;
        }
        const serve = await clicks.catch((error: unknown) => error instanceof Error ? error : new Error(String(error)));
        if (serve instanceof Error) reply({ t: 'clicks-failed', batch: message.batch, error: toWireError(serve) });
        else serve(message);
        return;
      }
    }
  };
  port.on('message', (message: Incoming) => void handle(message));
  port.postMessage({ t: 'ready' });
}

/**
 * Opens a transaction that stays open (holding the one connection, as on the HTTP thread
 * before) until `end` says commit or roll back. Resolves once BEGIN has run.
 */
function begin(db: Database, open: Map<number, OpenTransaction>, id: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let finish: (commit: boolean) => void = () => undefined;
    const decided = new Promise<boolean>((resolveDecision) => {
      finish = resolveDecision;
    });
    const done = db.transaction(async (tx) => {
      open.set(id, { tx, finish, done });
      resolve();
      if (!(await decided)) throw new RollbackRequested();
    });
    // BEGIN itself failed: the work never ran.
    done.catch((error: unknown) => {
      if (!open.has(id) && !(error instanceof RollbackRequested)) reject(error instanceof Error ? error : new Error(String(error)));
    });
  });
}

// Thrown out of the thread: the HTTP thread sees its 'error' and exit, and fails what waits.
main().catch((error: unknown) => {
  throw error;
});
