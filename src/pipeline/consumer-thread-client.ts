/**
 * The HTTP thread's handle on the click consumer's thread (consumer-thread.ts): starts it,
 * relays what it stored to the live feed and the metrics, and stops it. A thread that dies
 * is started again after a pause: the broker still holds whatever it had not acknowledged.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { EnrichedClick } from '../analytics/enriched-click.js';
import type { ConsumerStats } from '../observability/pipeline-metrics.js';
import { threadEntry } from '../shared/thread-entry.js';
import type { ConsumerThreadData, ConsumerThreadReport, ConsumerThreadRequest } from './consumer-thread-protocol.js';

const RESTART_DELAY_MS = 1000;

export interface ConsumerThreadOptions {
  data: ConsumerThreadData;
  logger: Logger;
  onStored: (stored: readonly EnrichedClick[], counts: { inserted: number; duplicates: number }, lagSeconds: readonly number[]) => void;
  onWriteFailure: () => void;
}

export class ConsumerThread {
  private worker: Worker | null = null;
  private latest: ConsumerStats | null = null;
  private closing = false;
  private closed: Promise<void> | null = null;

  constructor(private readonly options: ConsumerThreadOptions) {}

  get stats(): ConsumerStats | null {
    return this.latest;
  }

  start(): void {
    if (this.closing || this.worker !== null) return;
    const worker = new Worker(threadEntry(import.meta.url, 'consumer-thread'), { workerData: this.options.data });
    this.worker = worker;
    worker.on('message', (message: ConsumerThreadReport) => this.receive(message));
    worker.on('error', (error) => this.options.logger.error({ err: error }, 'click consumer thread failed'));
    worker.once('exit', (code) => {
      this.worker = null;
      if (this.closing) return;
      this.options.logger.error({ code }, 'click consumer thread stopped; starting it again');
      setTimeout(() => this.start(), RESTART_DELAY_MS).unref();
    });
  }

  /** Asks the thread to finish what it holds (acknowledging it) and waits for it to end. */
  close(): Promise<void> {
    this.closing = true;
    this.closed ??= this.stop();
    return this.closed;
  }

  private async stop(): Promise<void> {
    const worker = this.worker;
    if (worker === null) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    const request: ConsumerThreadRequest = { t: 'close' };
    worker.postMessage(request);
    // The consumer bounds its own drain; this bounds a thread that hangs anyway.
    const timer = setTimeout(() => void worker.terminate(), this.options.data.closeTimeoutMs + 5000);
    await exited;
    clearTimeout(timer);
  }

  private receive(message: ConsumerThreadReport): void {
    switch (message.t) {
      case 'stored':
        this.options.onStored(message.stored as EnrichedClick[], message, message.lagSeconds);
        return;
      case 'write-failure':
        this.options.onWriteFailure();
        return;
      case 'stats':
        this.latest = message.stats;
        return;
      case 'ready':
      case 'closed':
        return;
    }
  }
}
