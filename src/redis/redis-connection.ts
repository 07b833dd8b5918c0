/**
 * The Redis connections Shunt shares between its cache, rate limits and invalidation.
 * Redis is an accelerator, never a dependency a redirect waits on: commands time out
 * quickly, nothing queues while disconnected, and a circuit breaker stops paying even
 * that timeout while Redis is down. Everything that uses it has a fallback.
 */
import { createHash } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { CircuitBreaker, type BreakerState } from './circuit-breaker.js';

export interface RedisConnectionOptions {
  url: string;
  commandTimeoutMs: number;
  breakerThreshold: number;
  breakerCooldownMs: number;
  logger: Logger;
}

export interface RedisStats {
  failures: number;
  shortCircuited: number;
}

/** A Lua script run by its SHA, loaded on first use and again after a Redis restart. */
export class LuaScript {
  readonly sha: string;
  constructor(
    readonly name: string,
    readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

export class RedisConnection {
  readonly commands: Redis;
  /** Pub/sub needs a connection of its own: a subscribed connection runs no other commands. */
  readonly subscriber: Redis;
  readonly breaker: CircuitBreaker;
  readonly stats: RedisStats = { failures: 0, shortCircuited: 0 };
  private readonly recoveryListeners: (() => void)[] = [];
  private readonly probeTimer: NodeJS.Timeout;
  private readonly logger: Logger;
  /** A failure is logged when it starts a streak: an outage must not flood the log. */
  private failing = false;

  constructor(options: RedisConnectionOptions) {
    const { logger } = options;
    this.logger = logger;
    const common: RedisOptions = {
      // Fail fast instead of queueing: a redirect must never wait for a reconnect.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs,
      connectTimeout: Math.max(1000, options.commandTimeoutMs * 10),
      // Keep trying forever, backing off to 2 s: Redis coming back must heal everything.
      retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2000),
      lazyConnect: false,
      // Commands issued in the same tick share one socket write: on the miss path each
      // request sends two, and a write per command was the biggest cost in profiles.
      enableAutoPipelining: true,
    };
    this.commands = new Redis(options.url, { ...common, connectionName: 'shunt' });
    this.subscriber = new Redis(options.url, { ...common, connectionName: 'shunt-subscriber', commandTimeout: undefined });
    let lastState: BreakerState = 'closed';
    this.breaker = new CircuitBreaker({
      name: 'redis',
      threshold: options.breakerThreshold,
      cooldownMs: options.breakerCooldownMs,
      onStateChange: (state) => {
        if (state === 'open') logger.warn('redis unavailable: circuit open, falling back');
        if (state === 'closed' && lastState !== 'closed') {
          logger.info('redis available again: circuit closed');
          for (const listener of this.recoveryListeners) listener();
        }
        lastState = state;
      },
    });
    // ioredis emits every failed reconnect as an error event; the breaker already reports
    // the outage once, so these are only counted.
    this.commands.on('error', (error: Error) => this.failed(error, 'connection'));
    this.subscriber.on('error', () => undefined);
    this.commands.on('close', () => {
      if (this.breaker.state === 'closed') this.breaker.failed();
    });
    // An instance that serves from its own cache may not call Redis for a long time: probe
    // in the background, so the circuit (and what waits for it) recovers without traffic.
    this.probeTimer = setInterval(() => {
      if (this.breaker.state !== 'closed' && this.breaker.allows) this.ping().catch(() => undefined);
    }, options.breakerCooldownMs);
    this.probeTimer.unref();
  }

  /** True when a command would be attempted now. */
  get available(): boolean {
    return this.breaker.allows && this.commands.status === 'ready';
  }

  /**
   * Runs Redis work through the breaker. Rejects at once when the circuit is open or the
   * connection is down; callers fall back.
   */
  async run<T>(work: (redis: Redis) => Promise<T>): Promise<T> {
    if (!this.breaker.allows) {
      this.stats.shortCircuited += 1;
      throw new Error('redis unavailable (circuit open)');
    }
    try {
      const result = await this.breaker.run(() => work(this.commands));
      this.failing = false;
      return result;
    } catch (error) {
      this.failed(error, 'command');
      throw error;
    }
  }

  private failed(error: unknown, source: 'command' | 'connection'): void {
    this.stats.failures += 1;
    if (this.failing) return;
    this.failing = true;
    this.logger.warn({ err: error, source, status: this.commands.status }, 'redis command failed; callers fall back until it answers again');
  }

  /** Called when the circuit closes after an outage. */
  onRecovered(listener: () => void): void {
    this.recoveryListeners.push(listener);
  }

  async ping(): Promise<void> {
    await this.run((redis) => redis.ping());
  }

  async close(): Promise<void> {
    clearInterval(this.probeTimer);
    await Promise.allSettled([this.commands.quit(), this.subscriber.quit()]);
    this.commands.disconnect();
    this.subscriber.disconnect();
  }
}
