/**
 * The read path in front of the link store: an in-process LRU (bounded, short TTL), then
 * the shared tier (Redis) when there is one, then the store. Both tiers remember unknown
 * codes (negative entries). Only one load per code runs at a time in a process, so a burst
 * of misses for one code costs one lookup, and entries that are still being read are
 * refreshed in the background before they expire, so a hot link never stampedes the store.
 */
import type { Link } from '../links/link.js';
import type { InvalidationBus } from './invalidation.js';
import type { RemoteLinkTier } from './redis-link-tier.js';

interface Entry {
  link: Link | null;
  expiresAt: number;
}

export interface LinkCacheOptions {
  /** The store: the last tier. */
  load: (code: string) => Promise<Link | null>;
  remote?: RemoteLinkTier;
  /** Tells every instance (this one included) about a change. */
  bus?: InvalidationBus;
  maxEntries: number;
  ttlMs: number;
  /** A hit in the last share of an entry's life starts a background refresh (default 0.2). */
  refreshAhead?: number;
  now?: () => number;
  onRemoteError?: (error: unknown) => void;
}

export interface LinkCacheStats {
  hits: number;
  misses: number;
  /** Lookups that reached the store. */
  loads: number;
  refreshes: number;
}

export class LinkCache {
  // A Map iterates in insertion order; re-inserting on hit keeps it in LRU order.
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<Link | null>>();
  private readonly now: () => number;
  private readonly refreshWindowMs: number;
  readonly stats: LinkCacheStats = { hits: 0, misses: 0, loads: 0, refreshes: 0 };

  constructor(private readonly options: LinkCacheOptions) {
    this.now = options.now ?? Date.now;
    this.refreshWindowMs = options.ttlMs * (options.refreshAhead ?? 0.2);
  }

  /** A fresh cached answer without I/O: a link, null for a known-unknown code, or undefined. */
  peek(code: string): Link | null | undefined {
    const entry = this.entries.get(code);
    if (entry === undefined) return undefined;
    const left = entry.expiresAt - this.now();
    if (left <= 0) {
      this.entries.delete(code);
      return undefined;
    }
    this.entries.delete(code);
    this.entries.set(code, entry);
    this.stats.hits += 1;
    if (left <= this.refreshWindowMs && !this.inflight.has(code)) {
      this.stats.refreshes += 1;
      void this.startLoad(code).catch(() => undefined);
    }
    return entry.link;
  }

  get(code: string): Promise<Link | null> {
    const cached = this.peek(code);
    if (cached !== undefined) return Promise.resolve(cached);
    const pending = this.inflight.get(code);
    if (pending !== undefined) return pending;
    this.stats.misses += 1;
    return this.startLoad(code);
  }

  /**
   * After a change to the code in the store: drops the local copy at once and has every
   * instance drop theirs (and the shared entry). `lsn`: where the primary's WAL stood after
   * the change, for instances that read from replicas.
   */
  invalidate(code: string, lsn: string | null = null): void {
    this.drop(code);
    this.options.bus?.publish({ code, lsn });
  }

  /** Drops the local copy; an answer being loaded now is not kept (it may predate the change). */
  drop(code: string): void {
    this.entries.delete(code);
    this.inflight.delete(code);
  }

  clear(): void {
    this.entries.clear();
    this.inflight.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  private startLoad(code: string): Promise<Link | null> {
    const load = this.loadThroughTiers(code)
      .then((link) => {
        if (this.inflight.get(code) === load) this.store(code, link);
        return link;
      })
      .finally(() => {
        if (this.inflight.get(code) === load) this.inflight.delete(code);
      });
    this.inflight.set(code, load);
    return load;
  }

  private async loadThroughTiers(code: string): Promise<Link | null> {
    const { remote } = this.options;
    if (remote === undefined) return this.loadFromStore(code);
    let generation: string | null = null;
    try {
      const entry = await remote.lookup(code);
      generation = entry.generation;
      if (entry.link !== undefined) {
        // A shared entry near its end is refreshed by whoever reads it then; the readers
        // meanwhile keep getting the current value.
        if (entry.ttlMs < remote.ttlMs * 0.1) void this.refreshRemote(code, generation);
        return entry.link;
      }
    } catch (error) {
      // Redis down or slow: the store answers, and nothing is filled.
      this.options.onRemoteError?.(error);
      return this.loadFromStore(code);
    }
    const link = await this.loadFromStore(code);
    this.fillRemote(code, link, generation);
    return link;
  }

  private async refreshRemote(code: string, generation: string): Promise<void> {
    try {
      // Only the shared entry is renewed: the local copy is short-lived anyway, and a
      // change never travels this way (invalidations do that).
      this.fillRemote(code, await this.loadFromStore(code), generation);
    } catch (error) {
      this.options.onRemoteError?.(error);
    }
  }

  private fillRemote(code: string, link: Link | null, generation: string): void {
    this.options.remote?.fill(code, link, generation).catch((error: unknown) => this.options.onRemoteError?.(error));
  }

  private loadFromStore(code: string): Promise<Link | null> {
    this.stats.loads += 1;
    return this.options.load(code);
  }

  private store(code: string, link: Link | null): void {
    if (this.options.maxEntries === 0) return;
    this.entries.delete(code);
    this.entries.set(code, { link, expiresAt: this.now() + this.options.ttlMs });
    while (this.entries.size > this.options.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
  }
}
