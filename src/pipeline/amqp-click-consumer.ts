/**
 * The worker side of the click pipeline (ADR 0007): takes click batches off the broker
 * queue, gathers them until `batchSize` events or `batchWaitMs`, and hands the gathered
 * events to `handle` (one database transaction). Messages are acknowledged only after
 * `handle` resolves, so a crash, a lost channel or a failing store means redelivery, never
 * loss; `handle` is idempotent by event id, so redelivery never means double counts.
 *
 * - At most `prefetch` messages are unacknowledged on this worker; other workers on the
 *   same queue share the rest (competing consumers).
 * - A message that cannot be read at all is rejected without requeue: the broker moves it
 *   to the dead-letter queue. Single bad events in a readable batch are republished there
 *   (with the reason in headers, confirmed before the batch is acknowledged) and the rest
 *   are handled.
 * - When `handle` throws, the same batch is retried after 1 s, doubling to 30 s, for as long
 *   as the channel lives; messages are never dropped for it.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import type { IdentifiedClickEvent } from '../clicks/click-event.js';
import { decodeClickBatch, type RejectedClick } from '../clicks/click-event-codec.js';
import { AmqpConnection, backoffDelay, type BackoffOptions, type TransportLogger } from './amqp-connection.js';
import { assertClickTopology, clickTopologyNames } from './amqp-topology.js';

export interface AmqpClickConsumerOptions {
  url: string;
  queue: string;
  /** Unacknowledged messages (batches) held at once. */
  prefetch: number;
  /** Events handed to `handle` at once, at most (a single larger message goes whole). */
  batchSize: number;
  /** How long a partial batch waits for more messages. */
  batchWaitMs: number;
  /** Batches handled at once (default 1). */
  concurrency?: number;
  /** Stores the events; resolves once committed. Must be idempotent by event id. */
  handle: (events: readonly IdentifiedClickEvent[]) => Promise<void>;
  logger: TransportLogger;
  /** How often the queue's depth is read; default 5 s. */
  queueDepthIntervalMs?: number;
  /** Waits between attempts of a batch whose `handle` failed; default 1 s doubling to 30 s. */
  retryBackoff?: BackoffOptions;
  reconnectBackoff?: BackoffOptions;
  /** Longest close() spends finishing the batch under way; default 10 s. */
  closeTimeoutMs?: number;
  /** Longest wait for the broker to confirm a dead-lettered event; default 10 s. */
  confirmTimeoutMs?: number;
}

export interface AmqpClickConsumerStats {
  connected: boolean;
  /** Events handled and acknowledged. */
  consumedEvents: number;
  /** Unreadable messages plus bad single events, moved to the dead-letter queue. */
  deadLettered: number;
  /** Batches handled and acknowledged. */
  batches: number;
  /** Failed attempts of `handle` (each is retried). */
  handleFailures: number;
  /** Messages ready in the queue at the last check; null before the first. */
  queueDepth: number | null;
}

/** One channel's life: its deliveries can be acknowledged only on it. */
interface Session {
  channel: ConfirmChannel;
  open: boolean;
  consumerTag: string | null;
}

interface Delivery {
  session: Session;
  message: ConsumeMessage;
  events: IdentifiedClickEvent[];
  rejected: RejectedClick[];
  /** The bad events went to the dead-letter queue (done once, even if handle is retried). */
  rejectedMoved: boolean;
  receivedAt: number;
}

const RETRY_BACKOFF: BackoffOptions = { minMs: 1000, maxMs: 30_000 };

export class AmqpClickConsumer {
  private readonly connection: AmqpConnection;
  private readonly names: ReturnType<typeof clickTopologyNames>;
  private session: Session | null = null;
  private pending: Delivery[] = [];
  private pendingEvents = 0;
  private waitTimer: NodeJS.Timeout | null = null;
  /** Batches being handled; at most `concurrency` at once. */
  private readonly processing = new Set<Promise<void>>();
  private depthChannel: Promise<Channel | null> | null = null;
  private depthTimer: NodeJS.Timeout | null = null;
  private checkingDepth = false;
  private closing = false;
  /** close() gave up on the batch under way: stop retrying it. */
  private abandoned = false;
  private wakeRetry: (() => void) | null = null;
  private closed: Promise<void> | null = null;
  private counters = { consumedEvents: 0, deadLettered: 0, batches: 0, handleFailures: 0 };
  private queueDepth: number | null = null;

  constructor(private readonly options: AmqpClickConsumerOptions) {
    this.names = clickTopologyNames(options.queue);
    this.connection = new AmqpConnection({
      url: options.url,
      name: 'consumer',
      logger: options.logger,
      backoff: options.reconnectBackoff,
      setup: (connection) => this.setup(connection),
      onLost: () => this.endSession(),
    });
  }

  /** Connects (and keeps reconnecting) and starts consuming; returns at once. */
  start(): void {
    if (this.closing) return;
    this.connection.start();
    this.depthTimer ??= setInterval(() => void this.checkDepth(), this.options.queueDepthIntervalMs ?? 5000);
    this.depthTimer.unref();
  }

  get stats(): AmqpClickConsumerStats {
    return { connected: this.session?.open === true, ...this.counters, queueDepth: this.queueDepth };
  }

  /**
   * Stops taking messages, finishes the batch under way and the messages already received
   * (handle + ack) within `closeTimeoutMs`, then closes. Whatever is not acknowledged by
   * then returns to the queue for another worker.
   */
  close(): Promise<void> {
    this.closed ??= this.shutdown();
    return this.closed;
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    if (this.depthTimer !== null) clearInterval(this.depthTimer);
    const session = this.session;
    if (session !== null && session.consumerTag !== null) await session.channel.cancel(session.consumerTag).catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.options.closeTimeoutMs ?? 10_000);
    });
    await Promise.race([this.drainPending(), deadline]);
    clearTimeout(timer);
    this.abandoned = true;
    this.wakeRetry?.();
    // A handle that hangs (a stuck database) must not hold the close: its messages are not
    // acknowledged, so closing the connection returns them to the queue.
    await Promise.race([Promise.all(this.processing), delay(100)]);
    // The channel first: its close travels behind our acks on the same stream, whereas the
    // connection's close (channel 0) can overtake them and the broker would drop the acks.
    const open = this.session;
    if (open !== null && open.open) await Promise.race([open.channel.close().catch(() => undefined), delay(2000)]);
    await this.connection.close(2000);
  }

  private async drainPending(): Promise<void> {
    while (this.processing.size > 0 || this.pending.length > 0) {
      this.kick();
      await Promise.race(this.processing);
    }
  }

  private async setup(connection: ChannelModel): Promise<void> {
    const topology = await assertClickTopology(connection, this.options.queue);
    if (topology.queueType === 'classic') this.options.logger.warn({ queue: this.options.queue }, 'broker refused a quorum queue: using a classic durable queue');
    // A confirm channel, for the dead-letter republishes: a bad event is set aside only once the broker has it.
    const channel = await connection.createConfirmChannel();
    const session: Session = { channel, open: true, consumerTag: null };
    channel.on('error', (error: unknown) => this.options.logger.warn({ err: error }, 'click consume channel error'));
    channel.on('close', () => {
      if (this.session !== session) return;
      this.endSession();
      // The broker closed the channel but not the connection: start over for a fresh one.
      setImmediate(() => {
        if (!this.closing && this.session === null) this.connection.restart('click consume channel closed');
      });
    });
    await channel.prefetch(this.options.prefetch);
    this.session = session;
    const { consumerTag } = await channel.consume(this.options.queue, (message) => this.receive(session, message), { noAck: false });
    session.consumerTag = consumerTag;
    this.depthChannel = null;
    void this.checkDepth();
  }

  /** The channel is gone: what it delivered and we have not acknowledged returns to the queue. */
  private endSession(): void {
    const session = this.session;
    if (session === null) return;
    session.open = false;
    this.session = null;
    this.depthChannel = null;
    this.pending = this.pending.filter((delivery) => delivery.session.open);
    this.pendingEvents = this.pending.reduce((sum, delivery) => sum + delivery.events.length + delivery.rejected.length, 0);
  }

  private receive(session: Session, message: ConsumeMessage | null): void {
    if (message === null) {
      // The broker cancelled us (the queue was deleted): reconnecting declares it again.
      this.options.logger.warn({ queue: this.options.queue }, 'click consumer cancelled by the broker');
      if (!this.closing) this.connection.restart('consumer cancelled by the broker');
      return;
    }
    const decoded = decodeClickBatch(message.content);
    if (!decoded.ok) {
      this.counters.deadLettered += 1;
      this.options.logger.warn(
        { reason: decoded.error.reason, error: decoded.error.message, messageId: message.properties.messageId as unknown, bytes: message.content.length },
        'unreadable click message: moved to the dead-letter queue',
      );
      try {
        session.channel.nack(message, false, false);
      } catch {
        // Channel gone: the message comes back and is judged again.
      }
      return;
    }
    this.pending.push({ session, message, events: decoded.events, rejected: decoded.rejected, rejectedMoved: decoded.rejected.length === 0, receivedAt: Date.now() });
    this.pendingEvents += decoded.events.length + decoded.rejected.length;
    if (this.pendingEvents >= this.options.batchSize) this.kick();
    else this.waitTimer ??= setTimeout(() => this.kick(), this.options.batchWaitMs);
  }

  /**
   * Starts the next batch, unless `concurrency` are under way (each starts the next when it
   * ends). Two batches in flight let one commit while the next is enriched and sent: a
   * worker otherwise spends most of its time waiting for the database.
   */
  private kick(): void {
    if (this.waitTimer !== null) {
      clearTimeout(this.waitTimer);
      this.waitTimer = null;
    }
    if (this.processing.size >= (this.options.concurrency ?? 1) || this.pending.length === 0) return;
    const batch: Delivery[] = [];
    let events = 0;
    while (this.pending.length > 0 && (batch.length === 0 || events < this.options.batchSize)) {
      const delivery = this.pending[0] as Delivery;
      const size = delivery.events.length + delivery.rejected.length;
      if (batch.length > 0 && events + size > this.options.batchSize) break;
      this.pending.shift();
      batch.push(delivery);
      events += size;
    }
    this.pendingEvents -= events;
    const processing: Promise<void> = this.process(batch).finally(() => {
      this.processing.delete(processing);
      this.afterBatch();
    });
    this.processing.add(processing);
    // A full batch waiting behind this one may start at once, up to `concurrency`.
    if (this.pendingEvents >= this.options.batchSize) this.kick();
  }

  private afterBatch(): void {
    const oldest = this.pending[0];
    if (oldest === undefined) return;
    const waited = Date.now() - oldest.receivedAt;
    if (this.closing || this.pendingEvents >= this.options.batchSize || waited >= this.options.batchWaitMs) this.kick();
    else this.waitTimer ??= setTimeout(() => this.kick(), this.options.batchWaitMs - waited);
  }

  /** Handles and acknowledges one batch, retrying for as long as its channel lives. Never rejects. */
  private async process(batch: Delivery[]): Promise<void> {
    for (let attempt = 0; ; attempt += 1) {
      // Deliveries of a dead channel are redelivered (here or elsewhere): not ours any more.
      const live = batch.filter((delivery) => delivery.session.open);
      if (live.length === 0) return;
      const events = live.flatMap((delivery) => delivery.events);
      try {
        await this.moveRejected(live);
        if (events.length > 0) await this.options.handle(events);
      } catch (error) {
        this.counters.handleFailures += 1;
        const delayMs = backoffDelay(attempt, this.options.retryBackoff ?? RETRY_BACKOFF);
        this.options.logger.error({ err: error, events: events.length, attempt: attempt + 1, retryInMs: delayMs }, 'click batch failed; retrying the same batch');
        if (this.abandoned) return;
        await this.sleep(delayMs);
        if (this.abandoned) return;
        continue;
      }
      this.acknowledge(live);
      this.counters.consumedEvents += events.length;
      this.counters.batches += 1;
      return;
    }
  }

  /**
   * Acknowledges each message of a batch on its own: with batches committing concurrently
   * and out of order, a `multiple` ack could settle an earlier batch that has not committed.
   * A message carries hundreds of events, so this is a few dozen acks a second.
   */
  private acknowledge(batch: Delivery[]): void {
    for (const delivery of batch) {
      if (!delivery.session.open) continue;
      try {
        delivery.session.channel.ack(delivery.message);
      } catch (error) {
        // The channel died after handle: the messages come back and are skipped as duplicates.
        this.options.logger.warn({ err: error }, 'could not acknowledge a handled click batch; it will be delivered again');
        return;
      }
    }
  }

  /** Republishes the bad events of readable messages to the dead-letter exchange, confirmed. */
  private async moveRejected(batch: Delivery[]): Promise<void> {
    for (const delivery of batch) {
      if (delivery.rejectedMoved) continue;
      await Promise.all(delivery.rejected.map((rejected) => this.deadLetter(delivery, rejected)));
      delivery.rejectedMoved = true;
      this.counters.deadLettered += delivery.rejected.length;
      for (const rejected of delivery.rejected.slice(0, 3)) {
        this.options.logger.warn({ reason: rejected.error.reason, field: rejected.error.field, error: rejected.error.message }, 'bad click event moved to the dead-letter queue');
      }
    }
  }

  private deadLetter(delivery: Delivery, rejected: RejectedClick): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('dead-letter publish not confirmed in time')), this.options.confirmTimeoutMs ?? 10_000);
      const done = (error: unknown): void => {
        clearTimeout(timer);
        if (error === null || error === undefined) resolve();
        else reject(error instanceof Error ? error : new Error('dead-letter publish nacked'));
      };
      try {
        delivery.session.channel.publish(
          this.names.deadLetterExchange,
          this.options.queue,
          Buffer.from(JSON.stringify(rejected.raw) ?? 'null', 'utf8'),
          {
            persistent: true,
            contentType: 'application/json',
            headers: {
              'x-shunt-reason': rejected.error.reason,
              'x-shunt-field': rejected.error.field,
              'x-shunt-error': rejected.error.message,
              'x-shunt-index': rejected.index,
              'x-shunt-source-queue': this.options.queue,
              'x-shunt-source-message-id': delivery.message.properties.messageId as unknown,
            },
          },
          done,
        );
      } catch (error) {
        done(error ?? new Error('dead-letter publish failed'));
      }
    });
  }

  /** Reads the queue's ready count on a channel of its own (a failed check closes its channel). */
  private async checkDepth(): Promise<void> {
    const connection = this.connection.current;
    if (this.checkingDepth || connection === null) return;
    this.checkingDepth = true;
    try {
      this.depthChannel ??= connection.createChannel().then(
        (channel) => {
          channel.on('error', () => undefined);
          channel.on('close', () => {
            this.depthChannel = null;
          });
          return channel;
        },
        () => null,
      );
      const channel = await this.depthChannel;
      if (channel === null) {
        this.depthChannel = null;
        return;
      }
      this.queueDepth = (await channel.checkQueue(this.options.queue)).messageCount;
    } catch (error) {
      this.depthChannel = null;
      this.options.logger.debug({ err: error }, 'could not read the click queue depth');
    } finally {
      this.checkingDepth = false;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakeRetry = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeRetry = done;
    });
  }
}
