/**
 * The live click feed across instances, through Redis pub/sub.
 *
 * Click writers store up to tens of thousands of clicks a second, and almost none of them
 * has anyone watching, so a writer publishes only the clicks of watched links (by link id,
 * written "code" below):
 * - an instance with event-stream subscribers for a code keeps a member `instance:code` in
 *   a sorted set scored by its expiry, renews it while it has subscribers and removes it
 *   with the last one (an instance that dies leaves a member that expires on its own), and
 *   announces a newly watched code on a channel;
 * - a writer learns the watched codes the first time it has clicks to announce, then keeps
 *   them in memory: re-read every few seconds, and added at once on an announcement. It
 *   publishes each watched code's clicks of a batch as one message on the code's channel;
 * - an instance subscribes to the channels of the codes it watches and hands each click
 *   to its local listeners.
 *
 * Redis is an accelerator here too: nothing throws into the writer or waits for Redis, and
 * while Redis is unavailable a writer's clicks still reach the listeners of its own process.
 */
import { randomBytes } from 'node:crypto';
import type { EnrichedClick } from '../analytics/enriched-click.js';
import type { CacheKeys } from '../cache/cache-keys.js';
import type { RedisConnection } from '../redis/redis-connection.js';
import { LiveClickListeners, toLiveClick, type LiveClick, type LiveClickFeed, type LiveClickListener } from './live-click-feed.js';

export interface RedisLiveClickFeedOptions {
  keys: CacheKeys;
  /** How long a watch lasts unless renewed; an instance that dies stops counting after this. */
  watchTtlMs?: number;
  /** How often this instance renews the watches of its subscribed codes. */
  renewIntervalMs?: number;
  /** How often a writer re-reads the watched codes (announcements add them sooner). */
  refreshIntervalMs?: number;
  onError?: (error: unknown, operation: string) => void;
}

export interface RedisLiveClickFeedStats {
  /** Messages (one per code and batch) published. */
  published: number;
  /** Messages that could not be published (Redis unavailable or failing). */
  failed: number;
  /** Clicks skipped because no instance watches their code. */
  unwatched: number;
}

const DEVICES: ReadonlySet<string> = new Set(['desktop', 'mobile', 'tablet', 'bot', 'other']);
/** Clicks a writer holds while it learns the watched codes for the first time. */
const MAX_EARLY_CLICKS = 10_000;

export class RedisLiveClickFeed implements LiveClickFeed {
  readonly stats: RedisLiveClickFeedStats = { published: 0, failed: 0, unwatched: 0 };
  private readonly listeners = new LiveClickListeners();
  /** Channel -> code, for the codes this instance is subscribed to. */
  private readonly channels = new Map<string, string>();
  /** Watched codes (by any instance) -> when the watch expires, as the writer knows them. */
  private readonly watchedRemotely = new Map<string, number>();
  private readonly instance = randomBytes(8).toString('hex');
  private readonly watchTtlMs: number;
  private readonly renewTimer: NodeJS.Timeout;
  private refreshTimer: NodeJS.Timeout | null = null;
  /** null: this process has not announced clicks yet, so it does not follow the watches. */
  private tracking: Promise<void> | null = null;
  private earlyClicks: EnrichedClick[] | null = null;
  private closed = false;

  private readonly onMessage = (channel: string, text: string): void => {
    if (channel === this.options.keys.liveWatchChannel) {
      if (this.tracking !== null && /^[1-9]\d{0,18}$/.test(text)) this.watchedRemotely.set(text, Date.now() + this.watchTtlMs);
      return;
    }
    const code = this.channels.get(channel);
    if (code !== undefined) for (const click of parseClicks(text, code)) this.listeners.deliver(click);
  };

  private readonly onReady = (): void => {
    // Subscriptions made while disconnected were refused: make them all again.
    const channels = [...this.channels.keys()];
    if (this.tracking !== null) channels.push(this.options.keys.liveWatchChannel);
    if (channels.length > 0) this.redis.subscriber.subscribe(...channels).catch((error: unknown) => this.options.onError?.(error, 'subscribe'));
    this.renewWatches();
  };

  constructor(
    private readonly redis: RedisConnection,
    private readonly options: RedisLiveClickFeedOptions,
  ) {
    this.watchTtlMs = options.watchTtlMs ?? 30_000;
    redis.subscriber.on('message', this.onMessage);
    redis.subscriber.on('ready', this.onReady);
    redis.onRecovered(() => {
      if (!this.closed) this.renewWatches();
    });
    this.renewTimer = setInterval(() => this.renewWatches(), options.renewIntervalMs ?? 10_000);
    this.renewTimer.unref();
  }

  get watched(): number {
    return this.listeners.size;
  }

  /** Until the first publish has learnt which links are watched elsewhere, assume some are. */
  get wanted(): boolean {
    return this.tracking === null || this.earlyClicks !== null || this.listeners.size > 0 || this.watchedRemotely.size > 0;
  }

  /** Whether this writer currently publishes the clicks of `code`. */
  publishes(code: string): boolean {
    return (this.watchedRemotely.get(code) ?? 0) > Date.now();
  }

  publish(clicks: readonly EnrichedClick[]): void {
    if (this.closed || clicks.length === 0) return;
    if (this.tracking === null) {
      this.earlyClicks = [];
      this.tracking = this.startTracking().catch((error: unknown) => this.options.onError?.(error, 'track'));
    }
    if (this.earlyClicks !== null) {
      // Still learning which codes are watched: these wait for that answer (milliseconds).
      for (const click of clicks) if (this.earlyClicks.length < MAX_EARLY_CLICKS) this.earlyClicks.push(click);
      return;
    }
    try {
      this.announce(clicks);
    } catch (error) {
      // The writer has committed these clicks: nothing here may fail its batch.
      this.options.onError?.(error, 'publish');
    }
  }

  subscribe(code: string, listener: LiveClickListener): () => void {
    if (this.listeners.add(code, listener)) {
      const channel = this.options.keys.liveClicks(code);
      this.channels.set(channel, code);
      this.redis.subscriber.subscribe(channel).catch((error: unknown) => this.options.onError?.(error, 'subscribe'));
      this.command('watch', async (r) => {
        await r.zadd(this.options.keys.liveWatched, Date.now() + this.watchTtlMs, this.member(code));
        await r.publish(this.options.keys.liveWatchChannel, code);
      });
    }
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      if (!this.listeners.remove(code, listener)) return;
      const channel = this.options.keys.liveClicks(code);
      this.channels.delete(channel);
      this.redis.subscriber.unsubscribe(channel).catch(() => undefined);
      this.command('unwatch', (r) => r.zrem(this.options.keys.liveWatched, this.member(code)));
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.renewTimer);
    if (this.refreshTimer !== null) clearInterval(this.refreshTimer);
    this.redis.subscriber.off('message', this.onMessage);
    this.redis.subscriber.off('ready', this.onReady);
    const codes = [...this.listeners.codes()];
    const channels = [...this.channels.keys()];
    if (this.tracking !== null) channels.push(this.options.keys.liveWatchChannel);
    this.channels.clear();
    if (channels.length > 0) await this.redis.subscriber.unsubscribe(...channels).catch(() => undefined);
    // Other instances stop publishing these codes now rather than when the watches expire.
    if (codes.length > 0) {
      await this.redis.run((r) => r.zrem(this.options.keys.liveWatched, ...codes.map((code) => this.member(code)))).catch(() => undefined);
    }
  }

  private member(code: string): string {
    return `${this.instance}:${code}`;
  }

  private announce(clicks: readonly EnrichedClick[]): void {
    if (!this.redis.available) {
      // No other instance can be reached: this process's own listeners still can.
      for (const click of clicks) if (this.listeners.has(click.linkId)) this.listeners.deliver(toLiveClick(click));
      return;
    }
    if (this.listeners.size === 0 && this.watchedRemotely.size === 0) {
      // The usual case at volume: nobody watches anything.
      this.stats.unwatched += clicks.length;
      return;
    }
    const now = Date.now();
    let byCode: Map<string, LiveClick[]> | null = null;
    for (const click of clicks) {
      if (!this.listeners.has(click.linkId) && (this.watchedRemotely.get(click.linkId) ?? 0) <= now) {
        this.stats.unwatched += 1;
        continue;
      }
      byCode ??= new Map();
      const list = byCode.get(click.linkId);
      if (list === undefined) byCode.set(click.linkId, [toLiveClick(click)]);
      else list.push(toLiveClick(click));
    }
    if (byCode === null) return;
    for (const [code, list] of byCode) {
      this.redis.run((r) => r.publish(this.options.keys.liveClicks(code), JSON.stringify(list))).then(
        () => {
          this.stats.published += 1;
        },
        (error: unknown) => {
          this.stats.failed += 1;
          this.options.onError?.(error, 'publish');
        },
      );
    }
  }

  /** Follows the watched codes from now on; the clicks held meanwhile are announced after the first read. */
  private async startTracking(): Promise<void> {
    this.redis.subscriber.subscribe(this.options.keys.liveWatchChannel).catch((error: unknown) => this.options.onError?.(error, 'subscribe'));
    this.refreshTimer = setInterval(() => void this.refreshWatched(), this.options.refreshIntervalMs ?? 3000);
    this.refreshTimer.unref();
    try {
      await this.refreshWatched();
    } finally {
      const early = this.earlyClicks ?? [];
      this.earlyClicks = null;
      if (!this.closed && early.length > 0) this.announce(early);
    }
  }

  private async refreshWatched(): Promise<void> {
    const now = Date.now();
    let entries: string[];
    try {
      entries = await this.redis.run((r) => r.zrangebyscore(this.options.keys.liveWatched, `(${now}`, '+inf', 'WITHSCORES'));
    } catch (error) {
      // Keep what is known: watches still expire by their own time.
      this.options.onError?.(error, 'refresh');
      return;
    }
    const fresh = new Map<string, number>();
    for (let i = 0; i + 1 < entries.length; i += 2) {
      const member = entries[i] ?? '';
      const code = member.slice(member.indexOf(':') + 1);
      const expiry = Number(entries[i + 1]);
      if (code !== '' && expiry > (fresh.get(code) ?? 0)) fresh.set(code, expiry);
    }
    // An announcement that arrived while the read was under way may not be in its answer:
    // it is kept. (One that arrived before is, since a watcher adds its member first.)
    for (const [code, expiry] of this.watchedRemotely) {
      if (expiry >= now + this.watchTtlMs && expiry > (fresh.get(code) ?? 0)) fresh.set(code, expiry);
    }
    this.watchedRemotely.clear();
    for (const [code, expiry] of fresh) this.watchedRemotely.set(code, expiry);
  }

  private renewWatches(): void {
    if (this.closed) return;
    const expiry = Date.now() + this.watchTtlMs;
    const members: (string | number)[] = [];
    for (const code of this.listeners.codes()) members.push(expiry, this.member(code));
    this.command('renew', async (r) => {
      if (members.length > 0) await r.zadd(this.options.keys.liveWatched, ...members);
      // Members of instances that died; nobody reads them, this only keeps the set small.
      await r.zremrangebyscore(this.options.keys.liveWatched, '-inf', Date.now() - this.watchTtlMs);
    });
  }

  private command(operation: string, work: Parameters<RedisConnection['run']>[0]): void {
    this.redis.run(work).catch((error: unknown) => this.options.onError?.(error, operation));
  }
}

/** Only well-formed clicks of the channel's link pass, rebuilt field by field. */
function parseClicks(text: string, linkId: string): LiveClick[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(value)) return [];
  const clicks: LiveClick[] = [];
  for (const item of value as unknown[]) {
    if (typeof item !== 'object' || item === null) continue;
    const c = item as Record<string, unknown>;
    if (typeof c.id !== 'string' || c.linkId !== linkId || typeof c.code !== 'string' || typeof c.at !== 'string' || (c.method !== 'GET' && c.method !== 'HEAD')) continue;
    if (typeof c.bot !== 'boolean' || typeof c.device !== 'string' || !DEVICES.has(c.device)) continue;
    clicks.push({
      id: c.id,
      linkId,
      code: c.code,
      at: c.at,
      method: c.method,
      bot: c.bot,
      country: nullableText(c.country),
      referrerHost: nullableText(c.referrerHost),
      browser: nullableText(c.browser),
      os: nullableText(c.os),
      device: c.device as LiveClick['device'],
    });
  }
  return clicks;
}

function nullableText(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}
