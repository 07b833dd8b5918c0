/**
 * Buffers clicks in memory and writes them in batches, off the response path: on a
 * timer, when a batch fills up, and on shutdown. A failed write keeps the events for the
 * next attempt; only when the buffer is full are the oldest dropped, and each drop is
 * counted and logged, never silent.
 */
import type { ClickEvent, ClickRecorder } from './click-event.js';

export interface BatchingClickRecorderOptions {
  write: (events: readonly ClickEvent[]) => Promise<void>;
  flushIntervalMs: number;
  batchSize: number;
  /** Upper bound on memory while the store is unreachable. */
  maxBuffered: number;
  onError: (error: unknown, events: number) => void;
  onDropped: (events: number) => void;
}

export class BatchingClickRecorder implements ClickRecorder {
  private buffer: ClickEvent[] = [];
  private writing: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly options: BatchingClickRecorderOptions) {
    this.timer = setInterval(() => void this.flush(), options.flushIntervalMs);
    this.timer.unref();
  }

  get buffered(): number {
    return this.buffer.length;
  }

  record(event: ClickEvent): void {
    this.buffer.push(event);
    if (this.buffer.length > this.options.maxBuffered) {
      const excess = this.buffer.length - this.options.maxBuffered;
      this.buffer.splice(0, excess);
      this.options.onDropped(excess);
    }
    if (this.buffer.length >= this.options.batchSize && this.writing === null) void this.flush();
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
      const batch = this.buffer.slice(0, this.options.batchSize);
      try {
        await this.options.write(batch);
      } catch (error) {
        this.options.onError(error, batch.length);
        return;
      }
      // Only what was written leaves the buffer; events recorded meanwhile stay queued.
      this.buffer.splice(0, batch.length);
    }
  }
}
