/**
 * The redirect side of the click pipeline (ADR 0007): events are buffered in memory and
 * published to RabbitMQ in batches (one message per `batchSize` events, or whatever
 * `flushIntervalMs` gathered), on a confirm channel. Several batches are in flight at once.
 *
 * A batch leaves memory only once the broker confirmed it or it was appended to the local
 * spool. It goes to the spool when the broker is unreachable, blocked (resource alarm),
 * slow to take our writes, nacks it, returns it (no queue), or does not confirm it within
 * `confirmTimeoutMs`. Whenever the connection is up and unblocked, the spool is replayed
 * in order alongside new batches. A batch may so reach the broker twice (a confirm lost
 * with the connection, a late confirm after a timeout): the consumer is idempotent by
 * event id, so duplicates cost work, not counts.
 *
 * `record` never blocks and never throws: encoding and publishing happen off the request.
 */
import type { ConfirmChannel } from 'amqplib';
import { identified, CLICK_EVENT_VERSION, type ClickEvent, type ClickRecorder, type IdentifiedClickEvent } from '../clicks/click-event.js';
import { encodeProducedClickBatch } from '../clicks/click-event-codec.js';
import { AmqpConnection, type BackoffOptions, type TransportLogger } from './amqp-connection.js';
import { assertClickTopology, CLICK_BATCH_MESSAGE_TYPE, SCHEMA_VERSION_HEADER } from './amqp-topology.js';
import { ClickSpool, type ClickSpoolProblem } from './click-spool.js';

export interface AmqpClickPublisherOptions {
  url: string;
  queue: string;
  /** A publish not confirmed in this time goes to the spool. */
  confirmTimeoutMs: number;
  flushIntervalMs: number;
  /** Events per message. */
  batchSize: number;
  spoolDir: string;
  spoolMaxBytes: number;
  logger: TransportLogger;
  /** Longest wait for the channel's write buffer to drain before batches go to the spool; default confirmTimeoutMs. */
  drainTimeoutMs?: number;
  /** Longest close() waits for confirms before it spools what is still out; default confirmTimeoutMs. */
  closeTimeoutMs?: number;
  /** Batches awaiting confirms at most; more go to the spool (a broker this slow is not keeping up). */
  maxInFlightBatches?: number;
  /** Batches of the spool out at once during a replay. */
  replayWindow?: number;
  reconnectBackoff?: BackoffOptions;
}

export interface AmqpClickPublisherStats {
  connected: boolean;
  blocked: boolean;
  /** Events in memory, not yet handed to the broker or the spool. */
  buffered: number;
  /** Events published and awaiting a confirm. */
  inFlight: number;
  /** Events the broker confirmed (replays included). */
  published: number;
  /** Batches the broker did not take, which went to the spool. */
  publishFailures: number;
  /** Events waiting in the spool, and its size on disk. */
  spooledEvents: number;
  spoolBytes: number;
  /** Events lost: spool full or failing, or recorded after close. */
  droppedEvents: number;
}

/** Why a batch did not go out; only for logs. */
class NotPublished extends Error {
  override name = 'NotPublished';
}

interface Outstanding {
  events: number;
  returned: boolean;
  finish: (error?: Error) => void;
}

/** At most one log line per `ms` per key, with how many were left out. */
class LogThrottle {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(private readonly ms: number) {}

  /** The number of lines suppressed since the last one, or null to stay quiet now. */
  take(key: string, now = Date.now()): number | null {
    const entry = this.last.get(key);
    if (entry !== undefined && now - entry.at < this.ms) {
      entry.suppressed += 1;
      return null;
    }
    this.last.set(key, { at: now, suppressed: 0 });
    return entry?.suppressed ?? 0;
  }
}

export class AmqpClickPublisher implements ClickRecorder {
  private buffer: IdentifiedClickEvent[] = [];
  private readonly spool: ClickSpool;
  private readonly connection: AmqpConnection;
  private channel: ConfirmChannel | null = null;
  private readonly outstanding = new Map<string, Outstanding>();
  private readonly sends = new Set<Promise<void>>();
  private sequence = 0;
  private readonly idPrefix = `${process.pid}-${Date.now().toString(36)}`;
  private inFlightEvents = 0;
  private published = 0;
  private publishFailures = 0;
  private dropped = 0;
  private needsDrain = false;
  private drained: Promise<void> | null = null;
  private wakeDrainWaiters: (() => void) | null = null;
  private replaying: Promise<void> | null = null;
  private dispatchScheduled = false;
  private closed = false;
  /** Set when close() stops waiting: everything still out goes to the spool at once. */
  private giveUp = false;
  private closing: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout;
  private readonly throttle = new LogThrottle(10_000);

  constructor(private readonly options: AmqpClickPublisherOptions) {
    this.spool = ClickSpool.open({
      dir: options.spoolDir,
      maxBytes: options.spoolMaxBytes,
      onProblem: (problem) => this.spoolProblem(problem),
    });
    const pending = this.spool.stats;
    if (pending.events > 0) options.logger.warn({ events: pending.events, batches: pending.batches, path: this.spool.path }, 'click spool holds events from an earlier run; they are replayed once the broker is reachable');
    this.connection = new AmqpConnection({
      url: options.url,
      name: 'publisher',
      logger: options.logger,
      backoff: options.reconnectBackoff,
      setup: async (connection) => {
        const topology = await assertClickTopology(connection, options.queue);
        if (topology.queueType === 'classic') options.logger.warn({ queue: options.queue }, 'broker refused a quorum queue: using a classic durable queue');
        const channel = await connection.createConfirmChannel();
        this.watch(channel);
        this.channel = channel;
        setImmediate(() => this.replaySpool());
      },
      onLost: () => {
        this.channel = null;
      },
      onBlocked: (blocked) => {
        if (!blocked) this.replaySpool();
      },
    });
    this.timer = setInterval(() => {
      this.dispatch(false);
      this.replaySpool();
    }, options.flushIntervalMs);
    this.timer.unref();
    this.connection.start();
  }

  /** Events in memory not yet published or spooled. */
  get buffered(): number {
    return this.buffer.length;
  }

  get stats(): AmqpClickPublisherStats {
    const spool = this.spool.stats;
    return {
      connected: this.channel !== null,
      blocked: this.connection.blocked,
      buffered: this.buffer.length,
      inFlight: this.inFlightEvents,
      published: this.published,
      publishFailures: this.publishFailures,
      spooledEvents: spool.events,
      spoolBytes: spool.bytes,
      droppedEvents: spool.dropped + this.dropped,
    };
  }

  record(event: ClickEvent): void {
    if (this.closed) {
      this.dropped += 1;
      return;
    }
    this.buffer.push(identified(event));
    // Encoding a full batch takes a millisecond or so: not on the request that filled it.
    if (this.buffer.length >= this.options.batchSize && !this.dispatchScheduled) {
      this.dispatchScheduled = true;
      setImmediate(() => {
        this.dispatchScheduled = false;
        this.dispatch(true);
      });
    }
  }

  /** Publishes what is buffered; resolves once every batch is confirmed or spooled. Never rejects. */
  async flush(): Promise<void> {
    this.dispatch(false);
    await Promise.all([...this.sends]);
  }

  /**
   * Stops the timer, publishes what is buffered, waits for confirms up to `closeTimeoutMs`,
   * spools whatever is still out, then fsyncs the spool and closes the connection.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    const timeoutMs = this.options.closeTimeoutMs ?? this.options.confirmTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([this.flush(), deadline]);
    clearTimeout(timer);
    this.giveUp = true;
    this.wakeDrainWaiters?.();
    for (const outstanding of [...this.outstanding.values()]) outstanding.finish(new NotPublished('publisher closing'));
    await Promise.all([...this.sends]);
    await this.replaying;
    const left = this.spool.stats;
    if (left.events > 0) this.options.logger.warn({ events: left.events, path: this.spool.path }, 'click events left in the spool for the next start');
    this.spool.close();
    await this.connection.close(2000);
  }

  /** Takes batches off the buffer: only full ones, or everything. */
  private dispatch(fullOnly: boolean): void {
    const size = this.options.batchSize;
    while (this.buffer.length >= (fullOnly ? size : 1)) {
      const batch = this.buffer.splice(0, size);
      const sending = this.send(batch).finally(() => this.sends.delete(sending));
      this.sends.add(sending);
    }
  }

  /** Never rejects: the batch ends confirmed, spooled, or (spool full) counted as dropped. */
  private async send(batch: IdentifiedClickEvent[]): Promise<void> {
    const { payload, events } = this.encode(batch);
    if (this.needsDrain && !(await this.waitForDrain())) {
      this.toSpool(payload, events, 'the channel write buffer stayed full');
      return;
    }
    try {
      await this.publishConfirmed(payload, events);
      this.published += events;
    } catch (error) {
      this.toSpool(payload, events, (error as Error).message);
    }
  }

  /** Publishes one batch; resolves on the broker's confirm, rejects on anything else. */
  private publishConfirmed(payload: Buffer, events: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const channel = this.channel;
      if (channel === null) return reject(new NotPublished('not connected'));
      if (this.connection.blocked) return reject(new NotPublished('broker blocked (resource alarm)'));
      if (this.giveUp) return reject(new NotPublished('publisher closing'));
      if (this.outstanding.size >= (this.options.maxInFlightBatches ?? 256)) return reject(new NotPublished('too many batches awaiting confirms'));
      this.sequence += 1;
      const id = `${this.idPrefix}-${this.sequence}`;
      let settled = false;
      const finish = (error?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.outstanding.delete(id);
        this.inFlightEvents -= events;
        if (error === undefined) resolve();
        else reject(error);
      };
      const timer = setTimeout(() => finish(new NotPublished(`not confirmed within ${this.options.confirmTimeoutMs} ms`)), this.options.confirmTimeoutMs);
      const outstanding: Outstanding = { events, returned: false, finish };
      this.outstanding.set(id, outstanding);
      this.inFlightEvents += events;
      try {
        const accepted = channel.publish(
          '',
          this.options.queue,
          payload,
          {
            persistent: true,
            // Unroutable (the queue was deleted) comes back as a return instead of vanishing with an ack.
            mandatory: true,
            contentType: 'application/json',
            type: CLICK_BATCH_MESSAGE_TYPE,
            messageId: id,
            timestamp: Math.floor(Date.now() / 1000),
            headers: { [SCHEMA_VERSION_HEADER]: CLICK_EVENT_VERSION, 'x-events': events },
          },
          (error: unknown) => {
            if (error !== null && error !== undefined) finish(new NotPublished(error instanceof Error ? error.message : 'nacked'));
            else if (outstanding.returned) finish(new NotPublished('returned by the broker: no queue took it'));
            else finish();
          },
        );
        if (!accepted) this.needsDrain = true;
      } catch (error) {
        // The channel closed under us (amqplib throws on a closed channel).
        finish(new NotPublished((error as Error).message));
      }
    });
  }

  private watch(channel: ConfirmChannel): void {
    channel.on('error', (error: unknown) => this.options.logger.warn({ err: error }, 'click publish channel error'));
    channel.on('return', (message: { properties: { messageId?: unknown } }) => {
      const outstanding = this.outstanding.get(String(message.properties.messageId));
      if (outstanding !== undefined) outstanding.returned = true;
    });
    channel.on('drain', () => {
      this.needsDrain = false;
      this.wakeDrainWaiters?.();
    });
    channel.on('close', () => {
      if (this.channel !== channel) return;
      this.channel = null;
      this.needsDrain = false;
      this.wakeDrainWaiters?.();
      // A channel the broker closed on a live connection: start over for a fresh one. (When
      // the whole connection went, its own 'close' comes right after and restart is a no-op.)
      setImmediate(() => {
        if (!this.closed && this.channel === null) this.connection.restart('click publish channel closed');
      });
    });
  }

  /** True once the channel can take more writes; false after `drainTimeoutMs` or on close. */
  private async waitForDrain(): Promise<boolean> {
    this.drained ??= new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.drained = null;
        this.wakeDrainWaiters = null;
        resolve();
      };
      const timer = setTimeout(done, this.options.drainTimeoutMs ?? this.options.confirmTimeoutMs);
      this.wakeDrainWaiters = done;
    });
    await this.drained;
    return !this.needsDrain && !this.giveUp && this.channel !== null;
  }

  private toSpool(payload: Buffer, events: number, reason: string): void {
    this.publishFailures += 1;
    const kept = this.spool.append(payload, events);
    const suppressed = this.throttle.take(kept ? 'spooled' : 'lost');
    if (suppressed !== null) {
      const context = { events, reason, spooledEvents: this.spool.stats.events, alsoSince: suppressed };
      if (kept) this.options.logger.warn(context, 'click batch not published; kept in the spool');
      else this.options.logger.error({ ...context, droppedEvents: this.stats.droppedEvents }, 'click batch not published and the spool did not take it: events lost');
    }
    if (kept) this.replaySpool();
  }

  /** Starts a replay of the spool when there is one to do and the broker can take it. */
  private replaySpool(): void {
    if (this.replaying !== null || this.giveUp || this.channel === null || this.connection.blocked || this.spool.stats.batches === 0) return;
    const canPublish = (): boolean => this.channel !== null && !this.connection.blocked && !this.giveUp && !this.needsDrain;
    this.replaying = this.spool
      .replay(
        async (payload, events) => {
          await this.publishConfirmed(payload, events);
          this.published += events;
        },
        { window: this.options.replayWindow ?? 8, shouldContinue: canPublish },
      )
      .then((result) => {
        if (result.events > 0) this.options.logger.info({ events: result.events, batches: result.batches, complete: result.complete, left: this.spool.stats.events }, 'replayed clicks from the spool');
        if (result.error !== undefined) this.options.logger.debug({ err: result.error }, 'spool replay paused');
      })
      .catch((error: unknown) => this.options.logger.error({ err: error }, 'spool replay failed'))
      .finally(() => {
        this.replaying = null;
      });
  }

  private encode(batch: IdentifiedClickEvent[]): { payload: Buffer; events: number } {
    return { payload: Buffer.from(encodeProducedClickBatch(batch), 'utf8'), events: batch.length };
  }

  private spoolProblem(problem: ClickSpoolProblem): void {
    const { logger } = this.options;
    switch (problem.kind) {
      case 'full':
      case 'write_failed':
        // Reported with the batch, in toSpool.
        return;
      case 'corrupt':
        logger.error({ at: problem.at, skippedBytes: problem.skippedBytes }, 'click spool: damaged data skipped');
        return;
      case 'torn_tail':
        logger.warn({ at: problem.at, bytes: problem.bytes }, 'click spool: incomplete last batch (cut by a crash) skipped');
        return;
      case 'io_failed':
        if (this.throttle.take(`io:${problem.operation}`) !== null) logger.error({ err: problem.error, operation: problem.operation }, 'click spool I/O failed');
        return;
    }
  }
}
