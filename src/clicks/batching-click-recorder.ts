/**
 * Buffers clicks in memory and writes them in batches, off the response path: on a
 * timer, when a batch fills up, and on shutdown. A failed write puts the batch back for
 * the next attempt. After a failed write the next attempt waits (doubling up to
 * `maxRetryDelayMs`): while the store is away, recording a click stays a push onto an
 * array, not a write attempt, a re-queue and a log line per request.
 *
 * With a disk spool (click-spool.ts), nothing waits in memory while the store is away:
 * each timer tick moves the buffer to the spool (and, with the store up but behind, what
 * passes `maxBuffered`), and every write attempt replays the spool, oldest batch first,
 * before the buffer. The redirect path never touches the disk. Events keep their id from
 * the moment they are recorded, and the store ignores an id it already has, so a batch
 * written again (its commit was not acknowledged, or the spool kept a replayed frame
 * through a crash) is stored once. Without a spool, or with the spool full, events are
 * dropped oldest first, and each drop is reported.
 */
import { decodeClickBatch, encodeProducedClickBatch } from './click-event-codec.js';
import { identified, type ClickEvent, type ClickRecorder, type IdentifiedClickEvent } from './click-event.js';
import type { ClickSpool } from '../pipeline/click-spool.js';

export interface BatchingClickRecorderOptions {
  write: (events: readonly IdentifiedClickEvent[]) => Promise<void>;
  flushIntervalMs: number;
  batchSize: number;
  /** Upper bound on memory while the store is unreachable or behind. */
  maxBuffered: number;
  /** Where batches wait instead of memory; the caller opens it and closes it after close(). */
  spool?: ClickSpool;
  /** True when retrying cannot help (the store refuses the data itself). */
  isPermanent?: (error: unknown) => boolean;
  /** Wait after the first failed write; doubles per failure up to `maxRetryDelayMs`. Default: the flush interval. */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  now?: () => number;
  onError: (error: unknown, events: number) => void;
  onDropped: (events: number, reason: 'overflow' | 'refused') => void;
}

/** A write that did not go through: the events still to write, and why. */
interface WriteFailure {
  error: unknown;
  remaining: IdentifiedClickEvent[];
}

export class BatchingClickRecorder implements ClickRecorder {
  private buffer: IdentifiedClickEvent[] = [];
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
      this.spill();
      if (this.now() >= this.retryAt) void this.flush();
    }, options.flushIntervalMs);
    this.timer.unref();
  }

  /** Events waiting in memory for a write (a batch being written is no longer counted). */
  get buffered(): number {
    return this.buffer.length;
  }

  /** False from a failed write until the next one that succeeds. */
  get storeReachable(): boolean {
    return this.failures === 0;
  }

  record(event: ClickEvent): void {
    // The id is set once, here, so every attempt at writing this click writes the same row.
    this.buffer.push(identified(event));
    // With a spool the overflow moves to disk on the next tick, off this path.
    if (this.options.spool === undefined) this.trim();
    if (this.buffer.length >= this.options.batchSize && this.writing === null && this.now() >= this.retryAt) void this.flush();
  }

  /** Never rejects: failures are reported through onError and the events are kept. */
  async flush(): Promise<void> {
    while (this.writing !== null) await this.writing;
    if (this.buffer.length === 0 && (this.options.spool?.stats.events ?? 0) === 0) return;
    this.writing = this.writeAll().finally(() => {
      this.writing = null;
    });
    await this.writing;
  }

  /** Writes what it can; with a spool, what could not be written is left in it for the next start. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.flush();
    if (this.failures > 0) this.spill();
  }

  private async writeAll(): Promise<void> {
    const spool = this.options.spool;
    for (;;) {
      if (spool !== undefined && spool.stats.events > 0) {
        const result = await spool.replay((payload, events) => this.writeFrame(payload, events), { window: 1 });
        if (result.error !== undefined) {
          this.failed(result.error, spool.stats.events);
          return;
        }
        if (!result.complete) return;
        this.succeeded();
        continue;
      }
      if (this.buffer.length === 0) return;
      // The batch leaves the buffer while it is written, so overflow trimming can only
      // ever drop events that are not being written.
      const failure = await this.write(this.buffer.splice(0, this.options.batchSize));
      if (failure !== null) {
        this.buffer.unshift(...failure.remaining);
        if (spool === undefined) this.trim();
        this.failed(failure.error, failure.remaining.length);
        return;
      }
      this.succeeded();
    }
  }

  /** A spooled batch, written like any other; rejecting leaves it (and those after it) in the spool. */
  private async writeFrame(payload: Buffer, events: number): Promise<void> {
    const decoded = decodeClickBatch(payload);
    // The frame passed its CRC, so only a producer bug makes it unreadable: retrying cannot help.
    if (!decoded.ok) {
      this.options.onDropped(events, 'refused');
      return;
    }
    if (decoded.rejected.length > 0) this.options.onDropped(decoded.rejected.length, 'refused');
    const failure = await this.write(decoded.events);
    if (failure !== null) throw failure.error;
  }

  /**
   * Writes one batch, isolating the events the store refuses, so one bad event cannot
   * block the rest. Null when every event is stored or refused.
   */
  private async write(batch: IdentifiedClickEvent[]): Promise<WriteFailure | null> {
    try {
      await this.options.write(batch);
      return null;
    } catch (error) {
      if (this.options.isPermanent?.(error) !== true) return { error, remaining: batch };
    }
    let refused = 0;
    let failure: WriteFailure | null = null;
    for (const [index, event] of batch.entries()) {
      try {
        await this.options.write([event]);
      } catch (error) {
        if (this.options.isPermanent?.(error) !== true) {
          failure = { error, remaining: batch.slice(index) };
          break;
        }
        refused += 1;
      }
    }
    if (refused > 0) this.options.onDropped(refused, 'refused');
    return failure;
  }

  private succeeded(): void {
    this.failures = 0;
    this.retryAt = 0;
  }

  private failed(error: unknown, events: number): void {
    this.options.onError(error, events);
    this.failures += 1;
    const first = this.options.retryDelayMs ?? this.options.flushIntervalMs;
    const delay = Math.min(this.options.maxRetryDelayMs ?? 2000, first * 2 ** Math.min(this.failures - 1, 20));
    this.retryAt = this.now() + delay;
  }

  /**
   * Moves events from memory to the spool: all of them while the store is away, else what
   * passes the bound (the oldest, so the spool, replayed first, keeps the order). During a
   * write the batch out may come back behind them; only the excess moves then.
   */
  private spill(): void {
    const spool = this.options.spool;
    if (spool === undefined) return;
    const count = this.failures > 0 && this.writing === null ? this.buffer.length : this.buffer.length - this.options.maxBuffered;
    if (count <= 0) return;
    const events = this.buffer.splice(0, count);
    for (let start = 0; start < events.length; start += this.options.batchSize) {
      const batch = events.slice(start, start + this.options.batchSize);
      // A refused append (spool full, disk failing) is counted by the spool and logged by its owner.
      spool.append(Buffer.from(encodeProducedClickBatch(batch)), batch.length);
    }
  }

  /** Bounds the queue without a spool; the batch being written (the oldest events) is never dropped. */
  private trim(): void {
    const excess = this.buffer.length - this.options.maxBuffered;
    if (excess > 0) {
      this.buffer.splice(0, excess);
      this.options.onDropped(excess, 'overflow');
    }
  }
}
