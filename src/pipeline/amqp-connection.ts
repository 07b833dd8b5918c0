/**
 * One RabbitMQ connection that keeps itself up, shared by the click publisher and consumer.
 * A lost or refused connection is retried forever with backoff (100 ms doubling to 5 s,
 * with jitter so that many instances restarting together do not reconnect in step).
 * Each new connection is handed to `setup` (topology, channels); if setup fails the
 * connection is dropped and the loop tries again.
 *
 * The URL may carry a password: it is never logged, only its host and port.
 */
import amqp, { type ChannelModel } from 'amqplib';

/** What the transports log through: pino's Logger fits. */
export interface TransportLogger {
  debug(object: object, message: string): void;
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
  error(object: object, message: string): void;
}

export interface BackoffOptions {
  minMs: number;
  maxMs: number;
}

export const DEFAULT_RECONNECT_BACKOFF: BackoffOptions = { minMs: 100, maxMs: 5000 };

/**
 * The wait before retry number `attempt` (0-based): doubling from `minMs` up to `maxMs`,
 * then a random point in its upper half ("equal jitter": never shorter than half the step).
 */
export function backoffDelay(attempt: number, backoff: BackoffOptions, random: () => number = Math.random): number {
  const step = Math.min(backoff.maxMs, backoff.minMs * 2 ** Math.min(attempt, 30));
  return Math.round(step / 2 + random() * (step / 2));
}

/** host:port of an AMQP URL, for logs (never the credentials). */
export function brokerAddress(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port === '' ? (parsed.protocol === 'amqps:' ? 5671 : 5672) : parsed.port}`;
  } catch {
    return 'unparsable URL';
  }
}

export interface AmqpConnectionOptions {
  url: string;
  /** Shown in the broker's connection list and in logs: "publisher", "consumer". */
  name: string;
  logger: TransportLogger;
  /** Prepares a fresh connection (topology, channels). A throw drops it and the loop retries. */
  setup: (connection: ChannelModel) => Promise<void>;
  /** The connection went away; its channels went with it. */
  onLost?: () => void;
  /** The broker stopped (true) or resumed (false) reading from us: a memory or disk alarm. */
  onBlocked?: (blocked: boolean) => void;
  backoff?: BackoffOptions;
  /** Heartbeat asked of the broker, unless the URL sets one: a silent broker is noticed in about twice this. */
  heartbeatSeconds?: number;
  connectTimeoutMs?: number;
}

export class AmqpConnection {
  private connection: ChannelModel | null = null;
  /** A connection that is open but whose setup has not finished: close() must close it too. */
  private opening: ChannelModel | null = null;
  private isBlocked = false;
  private closing = false;
  private running: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private readonly address: string;

  constructor(private readonly options: AmqpConnectionOptions) {
    this.address = brokerAddress(options.url);
  }

  /** Starts the connect loop (once); returns at once. */
  start(): void {
    this.running ??= this.run();
  }

  /** The connection, once set up; null while down or reconnecting. */
  get current(): ChannelModel | null {
    return this.connection;
  }

  get blocked(): boolean {
    return this.isBlocked;
  }

  /** Drops the current connection (a channel died, say); the loop connects again. */
  restart(reason: string): void {
    const connection = this.connection;
    if (connection === null) return;
    this.options.logger.warn({ broker: this.address, connection: this.options.name, reason }, 'dropping broker connection to start over');
    void closeQuietly(connection, 2000);
  }

  /** Stops reconnecting and closes the connection (within `timeoutMs`). */
  async close(timeoutMs = 5000): Promise<void> {
    this.closing = true;
    this.wake?.();
    const connections = [this.connection, this.opening].filter((item): item is ChannelModel => item !== null);
    await Promise.all(connections.map((connection) => closeQuietly(connection, timeoutMs)));
    // The loop ends on the connection's 'close'; a socket that never reports it must not hold us.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.running, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.closing) {
      let lost: Promise<void> | null = null;
      try {
        const connection = await amqp.connect(this.connectUrl(), {
          timeout: this.options.connectTimeoutMs ?? 5000,
          clientProperties: { connection_name: `shunt-${this.options.name}-${process.pid}` },
        });
        this.opening = connection;
        lost = new Promise((resolve) => connection.once('close', () => resolve()));
        // Without a listener an 'error' event would crash the process; 'close' follows it.
        connection.on('error', (error: unknown) => this.options.logger.warn({ err: error, broker: this.address, connection: this.options.name }, 'broker connection error'));
        connection.on('blocked', (reason: unknown) => this.setBlocked(true, reason));
        connection.on('unblocked', () => this.setBlocked(false, null));
        if (this.closing) throw new Error('closing');
        await this.options.setup(connection);
        if (this.closing) throw new Error('closing');
        this.opening = null;
        this.connection = connection;
        this.options.logger.info({ broker: this.address, connection: this.options.name, attempts: attempt + 1 }, 'connected to the broker');
        attempt = 0;
        await lost;
        this.connection = null;
        this.setBlocked(false, null);
        this.options.onLost?.();
        if (!this.closing) this.options.logger.warn({ broker: this.address, connection: this.options.name }, 'broker connection lost; reconnecting');
      } catch (error) {
        const opening = this.opening;
        this.opening = null;
        if (opening !== null) await closeQuietly(opening, 2000);
        if (this.closing) break;
        // Every attempt at debug, and the first and then every 20th at warn: an outage of an hour is not 700 warnings.
        const level = attempt % 20 === 0 ? 'warn' : 'debug';
        this.options.logger[level]({ err: error, broker: this.address, connection: this.options.name, attempt: attempt + 1 }, 'cannot connect to the broker; retrying');
      }
      if (this.closing) break;
      await this.sleep(backoffDelay(attempt, this.options.backoff ?? DEFAULT_RECONNECT_BACKOFF));
      attempt += 1;
    }
  }

  private setBlocked(blocked: boolean, reason: unknown): void {
    if (this.isBlocked === blocked) return;
    this.isBlocked = blocked;
    if (blocked) this.options.logger.warn({ broker: this.address, connection: this.options.name, reason }, 'broker blocked publishing (resource alarm)');
    else this.options.logger.info({ broker: this.address, connection: this.options.name }, 'broker unblocked publishing');
    this.options.onBlocked?.(blocked);
  }

  private connectUrl(): string {
    const heartbeat = this.options.heartbeatSeconds ?? 10;
    try {
      const parsed = new URL(this.options.url);
      if (!parsed.searchParams.has('heartbeat')) parsed.searchParams.set('heartbeat', String(heartbeat));
      return parsed.href;
    } catch {
      return this.options.url;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}

/** Closes a connection, giving up (and destroying its socket) after `timeoutMs`: a hung broker never answers CloseOk. */
export async function closeQuietly(connection: ChannelModel, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const outcome = await Promise.race([connection.close().then(() => 'closed' as const, () => 'failed' as const), timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') (connection.connection as unknown as { stream?: { destroy(): void } }).stream?.destroy();
}
