/**
 * The HTTP thread's handle on the click writer thread of PostgreSQL without a broker
 * (click-writer-thread.ts): the same channel the embedded store offers, so one recorder
 * (thread-click-recorder.ts) serves both. A thread that dies is started again after a
 * pause; the recorder then posts again every batch it had not heard back about (the store
 * is idempotent by event id).
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { threadEntry } from '../shared/thread-entry.js';
import type { ClickReply, ClickRequest } from '../storage/embedded-protocol.js';
import type { ClickChannel } from '../storage/embedded-store.js';
import type { DatabaseResilience } from '../storage/database.js';

const RESTART_DELAY_MS = 1000;

/** What the thread is started with: plain values, since a Config does not cross threads. */
export interface ClickWriterThreadData {
  databaseUrl: string;
  poolSize: number;
  resilience: Omit<DatabaseResilience, 'onStateChange'>;
}

export class ClickWriterChannel implements ClickChannel {
  private worker: Worker | null = null;
  private clickOptions: { storeRawIp: boolean } | null = null;
  private readonly replyListeners: ((reply: ClickReply) => void)[] = [];
  private readonly restartListeners: (() => void)[] = [];
  private closing = false;

  constructor(
    private readonly data: ClickWriterThreadData,
    private readonly logger: Logger,
  ) {
    this.start();
  }

  get alive(): boolean {
    return this.worker !== null && !this.closing;
  }

  startClicks(options: { storeRawIp: boolean }): void {
    this.clickOptions = options;
    this.worker?.postMessage({ t: 'clicks-start', ...options });
  }

  postClicks(request: ClickRequest): void {
    this.worker?.postMessage(request);
  }

  onClickReply(listener: (reply: ClickReply) => void): void {
    this.replyListeners.push(listener);
  }

  onRestart(listener: () => void): void {
    this.restartListeners.push(listener);
  }

  /** After the recorder has closed (it waits for the answers it needs): ends the thread. */
  async close(): Promise<void> {
    this.closing = true;
    const worker = this.worker;
    if (worker === null) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage({ t: 'close' });
    const timer = setTimeout(() => void worker.terminate(), 5000);
    await exited;
    clearTimeout(timer);
  }

  private start(): void {
    const worker = new Worker(threadEntry(import.meta.url, 'click-writer-thread'), { workerData: this.data });
    this.worker = worker;
    if (this.clickOptions !== null) worker.postMessage({ t: 'clicks-start', ...this.clickOptions });
    worker.on('message', (message: ClickReply | { t: 'ready' }) => {
      if (message.t === 'ready') return;
      for (const listener of this.replyListeners) listener(message);
    });
    worker.on('error', (error) => this.logger.error({ err: error }, 'click writer thread failed'));
    worker.once('exit', (code) => {
      if (this.worker === worker) this.worker = null;
      if (this.closing) return;
      this.logger.error({ code }, 'click writer thread stopped; starting it again');
      setTimeout(() => {
        if (this.closing) return;
        this.start();
        for (const listener of this.restartListeners) listener();
      }, RESTART_DELAY_MS).unref();
    });
  }
}
