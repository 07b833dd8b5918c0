/**
 * The shared tier in Redis: cache-aside with a TTL, negative entries for unknown codes,
 * and the invalidation channel every instance listens on.
 *
 * The classic cache-aside race (an instance reads the old row, another commits a change
 * and deletes the key, then the first writes the old row back) is closed with a
 * generation per key: an invalidation bumps it, and a fill only lands if the generation
 * is still the one seen before the store was read.
 */
import type { Link } from '../links/link.js';
import { LuaScript, type RedisConnection } from '../redis/redis-connection.js';
import type { CacheKeys } from './cache-keys.js';
import type { Invalidation, InvalidationBus } from './invalidation.js';
import { decodeCachedLink, encodeCachedLink } from './link-codec.js';

/** What a lookup in the shared tier found. */
export interface RemoteEntry {
  /** undefined: not cached; null: known unknown; else the link. */
  link: Link | null | undefined;
  /** Milliseconds the entry has left (0 when absent). */
  ttlMs: number;
  /** The key's generation, to hand back to `fill`. */
  generation: string;
}

/** The shared tier as the link cache sees it. */
export interface RemoteLinkTier {
  lookup(code: string): Promise<RemoteEntry>;
  fill(code: string, link: Link | null, generation: string): Promise<void>;
  /** Entries older than this share of their TTL are refreshed from the store. */
  readonly ttlMs: number;
}

const GET = new LuaScript(
  'link-get',
  `local value = redis.call('GET', KEYS[1])
   local ttl = redis.call('PTTL', KEYS[1])
   local gen = redis.call('GET', KEYS[2])
   return {value or false, ttl, gen or '0'}`,
);

const FILL = new LuaScript(
  'link-fill',
  `local gen = redis.call('GET', KEYS[2]) or '0'
   if gen ~= ARGV[3] then return 0 end
   redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
   return 1`,
);

const INVALIDATE = new LuaScript(
  'link-invalidate',
  `redis.call('DEL', KEYS[1])
   redis.call('INCR', KEYS[2])
   redis.call('PEXPIRE', KEYS[2], ARGV[3])
   return redis.call('PUBLISH', ARGV[1], ARGV[2])`,
);

export interface RedisLinkTierOptions {
  keys: CacheKeys;
  ttlMs: number;
  negativeTtlMs: number;
  /** Invalidations kept for retry while Redis is unreachable. */
  maxPending?: number;
  retryIntervalMs?: number;
  onError?: (error: unknown, operation: string) => void;
}

export interface RedisTierStats {
  hits: number;
  misses: number;
  errors: number;
  pendingInvalidations: number;
  droppedInvalidations: number;
}

export class RedisLinkTier implements RemoteLinkTier, InvalidationBus {
  readonly stats: RedisTierStats = { hits: 0, misses: 0, errors: 0, pendingInvalidations: 0, droppedInvalidations: 0 };
  private readonly pending = new Map<string, Invalidation>();
  private readonly messageHandlers: ((message: Invalidation) => void)[] = [];
  private readonly resyncHandlers: (() => void)[] = [];
  private readonly retryTimer: NodeJS.Timeout;
  private flushing = false;
  /** The subscriber lost (or never got) its connection since it last subscribed. */
  private mayHaveMissed = false;

  constructor(
    private readonly redis: RedisConnection,
    private readonly options: RedisLinkTierOptions,
  ) {
    const { subscriber } = redis;
    const channel = options.keys.invalidationChannel;
    subscriber.on('message', (from: string, text: string) => {
      if (from !== channel) return;
      const message = parseInvalidation(text);
      if (message !== null) for (const handler of this.messageHandlers) handler(message);
    });
    // Every (re)connection subscribes again. Messages published while the connection was
    // down are lost, and so are those published before a first connection that only came
    // after failed attempts (the instance started while Redis was unreachable, and has
    // served and cached meanwhile): either way, local copies must go.
    subscriber.on('close', () => {
      this.mayHaveMissed = true;
    });
    subscriber.on('ready', () => {
      // Taken now: a drop while subscribing sets it again for the next connection.
      const missed = this.mayHaveMissed;
      this.mayHaveMissed = false;
      void subscriber.subscribe(channel).then(
        () => {
          if (missed) for (const handler of this.resyncHandlers) handler();
        },
        (error: unknown) => {
          if (missed) this.mayHaveMissed = true;
          this.options.onError?.(error, 'subscribe');
        },
      );
    });
    redis.onRecovered(() => void this.flushPending());
    this.retryTimer = setInterval(() => void this.flushPending(), options.retryIntervalMs ?? 500);
    this.retryTimer.unref();
  }

  get ttlMs(): number {
    return this.options.ttlMs;
  }

  async lookup(code: string): Promise<RemoteEntry> {
    try {
      const [value, ttl, generation] = (await this.redis.run((r) =>
        GET.run(r, [this.options.keys.link(code), this.options.keys.linkGeneration(code)], []),
      )) as [string | null | false, number, string];
      if (typeof value !== 'string') {
        this.stats.misses += 1;
        return { link: undefined, ttlMs: 0, generation };
      }
      this.stats.hits += 1;
      return { link: decodeCachedLink(value), ttlMs: Math.max(0, ttl), generation };
    } catch (error) {
      this.stats.errors += 1;
      throw error;
    }
  }

  async fill(code: string, link: Link | null, generation: string): Promise<void> {
    const ttl = link === null ? this.options.negativeTtlMs : this.options.ttlMs;
    await this.redis.run((r) =>
      FILL.run(r, [this.options.keys.link(code), this.options.keys.linkGeneration(code)], [encodeCachedLink(link), ttl, generation]),
    );
  }

  /** Deletes the shared entry and tells every instance; kept and retried while Redis is away. */
  publish(message: Invalidation): void {
    this.pending.delete(message.code);
    this.pending.set(message.code, message);
    const max = this.options.maxPending ?? 100_000;
    while (this.pending.size > max) {
      const oldest = this.pending.keys().next();
      if (oldest.done === true) break;
      this.pending.delete(oldest.value);
      this.stats.droppedInvalidations += 1;
    }
    this.stats.pendingInvalidations = this.pending.size;
    void this.flushPending();
  }

  onMessage(handler: (message: Invalidation) => void): void {
    this.messageHandlers.push(handler);
  }

  onResync(handler: () => void): void {
    this.resyncHandlers.push(handler);
  }

  /** Sends what is pending, oldest first; stops at the first failure and keeps the rest. */
  async flushPending(): Promise<void> {
    if (this.flushing || this.pending.size === 0 || !this.redis.available) return;
    this.flushing = true;
    try {
      for (const [code, message] of this.pending) {
        try {
          await this.redis.run((r) =>
            INVALIDATE.run(
              r,
              [this.options.keys.link(code), this.options.keys.linkGeneration(code)],
              [this.options.keys.invalidationChannel, JSON.stringify(message), this.options.ttlMs * 2],
            ),
          );
        } catch (error) {
          this.stats.errors += 1;
          this.options.onError?.(error, 'invalidate');
          return;
        }
        // A newer message for the code may have replaced this one while it was sent.
        if (this.pending.get(code) === message) this.pending.delete(code);
      }
    } finally {
      this.flushing = false;
      this.stats.pendingInvalidations = this.pending.size;
    }
  }

  close(): Promise<void> {
    clearInterval(this.retryTimer);
    return this.flushPending();
  }
}

function parseInvalidation(text: string): Invalidation | null {
  try {
    const value = JSON.parse(text) as Partial<Invalidation>;
    if (typeof value.code !== 'string') return null;
    return { code: value.code, lsn: typeof value.lsn === 'string' ? value.lsn : null };
  } catch {
    return null;
  }
}
