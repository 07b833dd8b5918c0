/**
 * Where the redirect path records clicks in the embedded default (ADR 0010): events are
 * batched, encoded and posted to the store's thread (thread-click-host.ts), which enriches
 * and stores them. The HTTP thread only encodes and posts.
 *
 * Back-pressure without loss: at most `maxInFlight` events are out to the thread at once;
 * beyond that, batches go to the disk spool (click-spool.ts) and are replayed as the thread
 * catches up. Every posted batch is kept until the thread answers it and posted again if the
 * thread died; a batch the store failed goes to the spool, and so does everything after it
 * until a replay succeeds, so a database outage is waited out on disk (the store is
 * idempotent by event id). Events are lost
 * only when the spool itself is full or the disk fails, and those are counted and logged.
 */
import type { Logger } from 'pino';
import { encodeProducedClickBatch } from '../clicks/click-event-codec.js';
import { identified, type ClickEvent, type ClickRecorder, type IdentifiedClickEvent } from '../clicks/click-event.js';
import type { EnrichedClick } from '../analytics/enriched-click.js';
import type { PublisherStats } from '../observability/pipeline-metrics.js';
import { fromWireError, type ClickReply } from '../storage/embedded-protocol.js';
import type { ClickChannel } from '../storage/embedded-store.js';
import { ClickSpool, type ClickSpoolProblem } from './click-spool.js';

export interface ThreadClickRecorderOptions {
  channel: ClickChannel;
  storeRawIp: boolean;
  batchSize: number;
  flushIntervalMs: number;
  /** Events posted to the thread and not yet answered, at most; more go to the spool. */
  maxInFlight: number;
  spoolDir: string;
  spoolMaxBytes: number;
  /** Longest close() waits for the thread to store what is out and spooled; the rest stays on disk. */
  closeTimeoutMs: number;
  /** Before a failed batch is posted again. */
  retryDelayMs?: number;
  logger: Logger;
  onStored: (stored: readonly EnrichedClick[], counts: { inserted: number; duplicates: number }, lagSeconds: readonly number[]) => void;
  /** Whether stored clicks are wanted back, to be announced (the live feed has watchers). */
  announce: () => boolean;
  onWriteFailure: () => void;
  onRefused: (events: number) => void;
}

interface Posted {
  payload: Buffer;
  events: number;
  /** Set for a spool replay, which waits for the answer. */
  settle?: { resolve: () => void; reject: (error: Error) => void };
}

export class ThreadClickRecorder implements ClickRecorder {
  private buffer: IdentifiedClickEvent[] = [];
  private readonly posted = new Map<number, Posted>();
  private inFlight = 0;
  private nextBatch = 1;
  private readonly spool: ClickSpool;
  private readonly timer: NodeJS.Timeout;
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private sent = 0;
  private failures = 0;
  private closed = false;
  private answerWaiters: (() => void)[] = [];
  /** Batches whose last attempt failed; they wait for their retry. */
  private readonly failed = new Set<number>();

  constructor(private readonly options: ThreadClickRecorderOptions) {
    this.spool = ClickSpool.open({ dir: options.spoolDir, maxBytes: options.spoolMaxBytes, onProblem: (problem) => this.spoolProblem(problem) });
    const left = this.spool.stats;
    if (left.events > 0) options.logger.warn({ events: left.events, path: this.spool.path }, 'click spool holds events from an earlier run; storing them');
    options.channel.onClickReply((reply) => this.answered(reply));
    options.channel.onRestart(() => this.repost());
    options.channel.startClicks({ storeRawIp: options.storeRawIp });
    this.timer = setInterval(() => void this.flush(), options.flushIntervalMs);
    this.timer.unref();
    this.replaySpool();
  }

  /** Events not yet stored: in memory here, out to the thread, and in the spool. */
  get buffered(): number {
    return this.buffer.length + this.inFlight;
  }

  get stats(): PublisherStats {
    const spool = this.spool.stats;
    return {
      connected: this.options.channel.alive,
      blocked: false,
      published: this.sent,
      publishFailures: this.failures,
      spooledEvents: spool.events,
      spoolBytes: spool.bytes,
      spoolMaxBytes: this.options.spoolMaxBytes,
      droppedEvents: spool.dropped,
    };
  }

  record(event: ClickEvent): void {
    this.buffer.push(identified(event));
    if (this.buffer.length >= this.options.batchSize) this.post();
  }

  /**
   * Hands what is buffered to the thread and resolves once every batch out by then is
   * stored, or failed once and is kept for retry (or sits in the spool).
   */
  async flush(): Promise<void> {
    this.post();
    const out = [...this.posted.keys()];
    const settled = (batch: number): boolean => !this.posted.has(batch) || this.failed.has(batch);
    while (!out.every(settled) && this.options.channel.alive) await this.answer(1000);
  }

  /** Posts everything, then waits (up to closeTimeoutMs) until the thread has stored it all. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.post();
    const deadline = Date.now() + this.options.closeTimeoutMs;
    while ((this.inFlight > 0 || this.spool.stats.events > 0) && Date.now() < deadline) {
      this.replaySpool();
      await this.answer(deadline - Date.now());
    }
    for (const timer of this.retryTimers) clearTimeout(timer);
    // What the thread has not answered stays on disk for the next start (stored twice at
    // worst, and counted once): a replayed frame by staying in the spool, the rest appended.
    for (const [batch, posted] of this.posted) {
      this.posted.delete(batch);
      if (posted.settle === undefined) this.spool.append(posted.payload, posted.events);
      else posted.settle.reject(new Error('closing before the store thread answered'));
    }
    await this.spool.replayInProgress;
    const left = this.spool.stats.events;
    if (left > 0) this.options.logger.warn({ events: left, path: this.spool.path }, 'click events left in the spool for the next start');
    this.spool.close();
  }

  private post(): void {
    while (this.buffer.length > 0) {
      const batch = this.buffer.splice(0, this.options.batchSize);
      const payload = Buffer.from(encodeProducedClickBatch(batch));
      // Spooled clicks go first, so a backlog on disk is not overtaken for ever.
      if (this.inFlight + batch.length > this.options.maxInFlight || this.spool.stats.events > 0) {
        this.spool.append(payload, batch.length);
        this.replaySpool();
      } else {
        this.send({ payload, events: batch.length });
      }
    }
  }

  private send(posted: Posted): void {
    const batch = this.nextBatch++;
    this.posted.set(batch, posted);
    this.inFlight += posted.events;
    this.sent += 1;
    this.postToThread(batch, posted);
  }

  private postToThread(batch: number, posted: Posted): void {
    this.options.channel.postClicks({ t: 'clicks', batch, payload: posted.payload, events: posted.events, announce: this.options.announce() });
  }

  private answered(reply: ClickReply): void {
    const posted = this.posted.get(reply.batch);
    if (posted === undefined) return;
    if (reply.t === 'clicks-failed') {
      this.failures += 1;
      this.options.onWriteFailure();
      // A batch fresh from memory goes to disk at once, like everything after it until the
      // store answers again: an outage's clicks wait in the spool, not in memory (ADR 0016).
      // A spool replay (its frame is on disk already) or a batch failing during close is
      // kept and posted again.
      const spooled = posted.settle === undefined && !this.closed;
      this.options.logger.error({ err: fromWireError(reply.error), events: posted.events }, `click batch write failed; ${spooled ? 'spooled' : 'kept'} for retry`);
      if (spooled) {
        this.posted.delete(reply.batch);
        this.inFlight -= posted.events;
        this.spool.append(posted.payload, posted.events);
        this.replaySpool();
      } else {
        this.failed.add(reply.batch);
        const timer = setTimeout(() => {
          this.retryTimers.delete(timer);
          if (this.posted.get(reply.batch) === posted && this.options.channel.alive) this.postToThread(reply.batch, posted);
        }, this.options.retryDelayMs ?? 1000);
        this.retryTimers.add(timer);
      }
      this.wakeWaiters();
      return;
    }
    this.posted.delete(reply.batch);
    this.failed.delete(reply.batch);
    this.inFlight -= posted.events;
    if (reply.refused > 0) {
      this.options.onRefused(reply.refused);
      this.options.logger.error({ events: reply.refused }, 'clicks refused by the store: dropped');
    }
    this.options.onStored(reply.stored as EnrichedClick[], reply, reply.lagSeconds);
    posted.settle?.resolve();
    if (this.inFlight <= this.options.maxInFlight / 2) this.replaySpool();
    this.wakeWaiters();
  }

  private wakeWaiters(): void {
    for (const waiter of this.answerWaiters.splice(0)) waiter();
  }

  /** After a new thread replaced a dead one: everything unanswered goes again. */
  private repost(): void {
    for (const [batch, posted] of this.posted) this.postToThread(batch, posted);
  }

  private replaySpool(): void {
    if (this.spool.replayInProgress !== null || this.spool.stats.events === 0) return;
    void this.spool
      .replay(
        (payload, events) =>
          new Promise<void>((resolve, reject) => {
            this.send({ payload, events, settle: { resolve, reject } });
          }),
        { window: 4, shouldContinue: () => this.inFlight < this.options.maxInFlight },
      )
      .then((result) => {
        // Room again before the replay noticed: carry on.
        if (!result.complete && result.error === undefined && this.inFlight < this.options.maxInFlight / 2) this.replaySpool();
      });
  }

  /** Until the thread's next answer, or at most `timeoutMs` (200 ms at most, to look again). */
  private answer(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, Math.min(timeoutMs, 200)));
      this.answerWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private spoolProblem(problem: ClickSpoolProblem): void {
    this.options.logger.error({ problem: { ...problem, error: undefined }, err: 'error' in problem ? problem.error : undefined }, 'click spool problem');
  }
}
