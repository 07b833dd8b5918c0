/**
 * The embedded store as the HTTP thread sees it (ADR 0010): the same Database as before,
 * but PGlite runs in a worker thread (embedded-thread.ts), so a query's planning and
 * execution never hold up the event loop that answers redirects. Each request is one
 * message and one reply; a transaction is `begin`, its queries and `end`, tagged with its
 * id, and the thread runs one query or transaction at a time on its one connection.
 *
 * If the thread dies, what waits on it fails with `dependency_unavailable` (a 503 the
 * client may retry), and a store on disk is opened again in a new thread; those who
 * watch (the click recorder) are told, so they can send again what was not answered.
 * An in-memory store dies with its thread: its data is gone, so it is not restarted.
 */
import { Worker } from 'node:worker_threads';
import type pg from 'pg';
import { AppError } from '../shared/errors.js';
import { threadEntry } from '../shared/thread-entry.js';
import type { Database, Queryable, Row } from './database.js';
import { fromWireError, fromWireResult, type ClickReply, type ClickRequest, type StoreReply, type StoreRequest, type StoreThreadData, type WireResult } from './embedded-protocol.js';

type Request = StoreRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

interface Waiter {
  resolve: (result: WireResult | WireResult[] | undefined) => void;
  reject: (error: Error) => void;
}

/** Between restarts of a thread that keeps dying. */
const RESTART_DELAYS_MS = [100, 500, 2000, 5000];

/** What the click recorder needs from the thread (thread-click-recorder.ts). */
export interface ClickChannel {
  /** Asks the thread to enrich and store clicks; repeated after each restart. */
  startClicks(options: { storeRawIp: boolean }): void;
  postClicks(request: ClickRequest): void;
  onClickReply(listener: (reply: ClickReply) => void): void;
  /** Called once a new thread has replaced a dead one. */
  onRestart(listener: () => void): void;
  readonly alive: boolean;
}

export class EmbeddedStore implements Database, ClickChannel {
  readonly kind = 'embedded' as const;
  private worker!: Worker;
  private ready!: Promise<void>;
  private readonly waiters = new Map<number, Waiter>();
  private readonly clickListeners: ((reply: ClickReply) => void)[] = [];
  private readonly restartListeners: (() => void)[] = [];
  private clickOptions: { storeRawIp: boolean } | null = null;
  private nextId = 1;
  private nextTx = 1;
  private closing = false;
  private dead: Error | null = null;
  private restarts = 0;
  private stableTimer: NodeJS.Timeout | null = null;
  private lastError: Error | null = null;
  private restartTimer: NodeJS.Timeout | null = null;

  private constructor(private readonly dataDir: string) {}

  static async open(dataDir: string): Promise<EmbeddedStore> {
    const store = new EmbeddedStore(dataDir);
    store.spawn();
    try {
      await store.ready;
    } catch (error) {
      store.closing = true;
      await store.worker.terminate();
      throw error;
    }
    return store;
  }

  get alive(): boolean {
    return this.dead === null && !this.closing;
  }

  query<R extends Row = Row>(text: string, params?: readonly unknown[]): Promise<pg.QueryResult<R>> {
    return this.request({ t: 'query', text, params, tx: null }).then((result) => fromWireResult<R>(result as WireResult | WireResult[]));
  }

  async transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    const tx = this.nextTx++;
    await this.request({ t: 'begin', tx });
    const scoped: Queryable = {
      query: <R extends Row>(text: string, params?: readonly unknown[]) =>
        this.request({ t: 'query', text, params, tx }).then((result) => fromWireResult<R>(result as WireResult | WireResult[])),
    };
    let result: T;
    try {
      result = await work(scoped);
    } catch (error) {
      await this.request({ t: 'end', tx, commit: false }).catch(() => undefined);
      throw error;
    }
    await this.request({ t: 'end', tx, commit: true });
    return result;
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.stableTimer !== null) clearTimeout(this.stableTimer);
    if (this.restartTimer !== null) clearTimeout(this.restartTimer);
    if (this.dead === null) {
      // Everything sent before is answered first: the thread handles messages in order.
      await this.send({ t: 'close' }).catch(() => undefined);
    }
    await this.worker.terminate();
  }

  poolStats(): { total: number; idle: number; waiting: number } {
    const waiting = this.waiters.size;
    return { total: 1, idle: waiting === 0 ? 1 : 0, waiting };
  }

  startClicks(options: { storeRawIp: boolean }): void {
    this.clickOptions = options;
    this.worker.postMessage({ t: 'clicks-start', ...options });
  }

  postClicks(request: ClickRequest): void {
    this.worker.postMessage(request);
  }

  onClickReply(listener: (reply: ClickReply) => void): void {
    this.clickListeners.push(listener);
  }

  onRestart(listener: () => void): void {
    this.restartListeners.push(listener);
  }

  /** Ends the thread the way a crash would: for the tests of what follows one. */
  async killThread(): Promise<void> {
    await this.worker.terminate();
  }

  private request(message: Request): Promise<WireResult | WireResult[] | undefined> {
    return this.send(message);
  }

  private send(message: Request): Promise<WireResult | WireResult[] | undefined> {
    if (this.dead !== null) return Promise.reject(this.dead);
    if (this.closing && message.t !== 'close') return Promise.reject(unavailable('the embedded store is closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiters.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id });
    });
  }

  private spawn(): void {
    const data: StoreThreadData = { dataDir: this.dataDir, clicks: null };
    const worker = new Worker(threadEntry(import.meta.url, 'embedded-thread'), { workerData: data });
    this.worker = worker;
    this.ready = new Promise<void>((resolve, reject) => {
      const onEarlyExit = (code: number): void => reject(new Error(`the embedded store thread exited (code ${code}) before it was ready`));
      const onEarlyError = (error: Error): void => reject(error);
      worker.once('exit', onEarlyExit);
      worker.once('error', onEarlyError);
      worker.once('message', () => {
        worker.off('exit', onEarlyExit);
        worker.off('error', onEarlyError);
        worker.on('message', (message: StoreReply | ClickReply) => this.receive(message));
        worker.on('error', (error) => {
          this.lastError = error;
        });
        worker.once('exit', () => this.died(worker));
        resolve();
      });
    });
  }

  private receive(message: StoreReply | ClickReply): void {
    if (message.t !== 'reply') {
      for (const listener of this.clickListeners) listener(message);
      return;
    }
    const waiter = this.waiters.get(message.id);
    if (waiter === undefined) return;
    this.waiters.delete(message.id);
    if (message.ok) waiter.resolve(message.result);
    else waiter.reject(fromWireError(message.error));
  }

  private died(worker: Worker): void {
    if (worker !== this.worker) return;
    const cause = this.lastError === null ? '' : ` (${this.lastError.message})`;
    this.lastError = null;
    const error = unavailable(`the embedded store thread stopped${cause}; retry shortly`);
    for (const waiter of this.waiters.values()) waiter.reject(error);
    this.waiters.clear();
    if (this.closing) return;
    if (this.dataDir.startsWith('memory://')) {
      this.dead = unavailable('the in-memory embedded store was lost with its thread');
      return;
    }
    this.dead = error;
    const delay = RESTART_DELAYS_MS[Math.min(this.restarts, RESTART_DELAYS_MS.length - 1)] ?? 5000;
    this.restarts += 1;
    if (this.stableTimer !== null) clearTimeout(this.stableTimer);
    // Not unref'd: a process whose store is coming back has not finished (close() clears it).
    this.restartTimer = setTimeout(() => void this.restart(), delay);
  }

  private async restart(): Promise<void> {
    if (this.closing) return;
    this.spawn();
    try {
      await this.ready;
    } catch {
      // Its exit was not watched yet: try again, later.
      this.died(this.worker);
      return;
    }
    this.dead = null;
    // A thread that has lived a minute starts the delays over.
    this.stableTimer = setTimeout(() => {
      this.restarts = 0;
    }, 60_000);
    this.stableTimer.unref();
    if (this.clickOptions !== null) this.worker.postMessage({ t: 'clicks-start', ...this.clickOptions });
    for (const listener of this.restartListeners) listener();
  }
}

function unavailable(detail: string): AppError {
  return new AppError('dependency_unavailable', { detail, headers: { 'Retry-After': '1' } });
}
