/**
 * Buffers clicks in memory and writes them in batches, off the response path: on a
 * timer, when a batch fills up, and on shutdown. A failed write puts the batch back for
 * the next attempt. Nothing is lost silently: events are dropped only when the buffer is
 * full while the store is unreachable, or when the store refuses an event's data, and
 * each drop is reported. After a failed write the next attempt waits (doubling up to
 * `maxRetryDelayMs`): while the store is away, recording a click stays a push onto an
 * array, not a write attempt, a re-queue and a log line per request.
 */
import type { ClickEvent, ClickRecorder } from './click-event.js';

export interface BatchingClickRecorderOptions {
  write: (events: readonly ClickEvent[]) => Promise<void>;
  flushIntervalMs: number;
  batchSize: number;
  /** Upper bound on memory while the store is unreachable. */
  maxBuffered: number;
  /** True when retrying cannot help (the store refuses the data itself). */
  isPermanent?: (error: unknown) => boolean;
  /** Wait after the first failed write; doubles per failure up to `maxRetryDelayMs`. Default: the flush interval. */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  now?: () => number;
  onError: (error: unknown, events: number) => void;
  onDropped: (events: number, reason: 'overflow' | 'refused') => void;
}

export class BatchingClickRecorder implements ClickRecorder {
  private buffer: ClickEvent[] = [];
  private writing: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private failures = 0;
  /** No write is started before this time (after a failure); close() ignores it. */
  private retryAt = 0;
  private readonly now: () => number;

  constructor(private readonly options: BatchingClickRecorderOptions) {
    this.now = options.now ?? Date.now;
    this.timer = setInterval(() => {
      if (this.now() >= this.retryAt) void this.flush();
    }, options.flushIntervalMs);
    this.timer.unref();
  }

  /** Events waiting for a write (a batch being written is no longer counted). */
  get buffered(): number {
    return this.buffer.length;
  }

  record(event: ClickEvent): void {
    this.buffer.push(event);
    this.trim();
    if (this.buffer.length >= this.options.batchSize && this.writing === null && this.now() >= this.retryAt) void this.flush();
  }

  /** Never rejects: failures are reported through onError and the events are kept. */
  async flush(): Promise<void> {
    while (this.writing !== null) await this.writing;
    if (this.buffer.length === 0) return;
    this.writing = this.writeAll().finally(() => {
      this.writing = null;
    });
    await this.writing;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.flush();
  }

  private async writeAll(): Promise<void> {
    while (this.buffer.length > 0) {
      // The batch leaves the buffer while it is written, so overflow trimming can only
      // ever drop events that are not being written.
      const batch = this.buffer.splice(0, this.options.batchSize);
      try {
        await this.options.write(batch);
      } catch (error) {
        if (this.options.isPermanent?.(error) === true) {
          await this.writeOneByOne(batch);
          continue;
        }
        this.options.onError(error, batch.length);
        this.buffer.unshift(...batch);
        this.trim();
        this.backOff();
        return;
      }
      this.failures = 0;
      this.retryAt = 0;
    }
  }

  private backOff(): void {
    this.failures += 1;
    const first = this.options.retryDelayMs ?? this.options.flushIntervalMs;
    const delay = Math.min(this.options.maxRetryDelayMs ?? 2000, first * 2 ** Math.min(this.failures - 1, 20));
    this.retryAt = this.now() + delay;
  }

  /** Isolates the events the store refuses, so one bad event cannot block the rest. */
  private async writeOneByOne(batch: readonly ClickEvent[]): Promise<void> {
    let refused = 0;
    for (const [index, event] of batch.entries()) {
      try {
        await this.options.write([event]);
      } catch (error) {
        if (this.options.isPermanent?.(error) !== true) {
          this.options.onError(error, batch.length - index);
          this.buffer.unshift(...batch.slice(index));
          this.trim();
          this.backOff();
          break;
        }
        refused += 1;
      }
    }
    if (refused > 0) this.options.onDropped(refused, 'refused');
  }

  /** Bounds the queue; the batch being written (the oldest events) is never dropped. */
  private trim(): void {
    const excess = this.buffer.length - this.options.maxBuffered;
    if (excess > 0) {
      this.buffer.splice(0, excess);
      this.options.onDropped(excess, 'overflow');
    }
  }
}
