/**
 * The in-process tier in front of the link store: a bounded LRU with a short TTL that
 * also remembers unknown codes (negative entries), and lets only one fetch per key run
 * at a time, so a burst of misses for one code costs one query.
 */
import type { Link } from '../links/link.js';
import { cacheKeys } from './cache-keys.js';

interface Entry {
  link: Link | null;
  expiresAt: number;
}

export interface LinkCacheOptions {
  maxEntries: number;
  ttlMs: number;
  now?: () => number;
}

export interface LinkCacheStats {
  hits: number;
  misses: number;
}

export class LinkCache {
  // A Map iterates in insertion order; re-inserting on hit keeps it in LRU order.
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<Link | null>>();
  private readonly now: () => number;
  readonly stats: LinkCacheStats = { hits: 0, misses: 0 };

  constructor(
    private readonly fetch: (code: string) => Promise<Link | null>,
    private readonly options: LinkCacheOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** A fresh cached answer without I/O: a link, null for a known-unknown code, or undefined. */
  peek(code: string): Link | null | undefined {
    const key = cacheKeys.link(code);
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    this.entries.delete(key);
    this.entries.set(key, entry);
    this.stats.hits += 1;
    return entry.link;
  }

  async get(code: string): Promise<Link | null> {
    const cached = this.peek(code);
    if (cached !== undefined) return cached;
    const key = cacheKeys.link(code);
    const pending = this.inflight.get(key);
    if (pending !== undefined) return pending;
    this.stats.misses += 1;
    const load = this.fetch(code)
      .then((link) => {
        // invalidate() removes the in-flight entry: an answer fetched before it is stale.
        if (this.inflight.get(key) === load) this.store(key, link);
        return link;
      })
      .finally(() => {
        if (this.inflight.get(key) === load) this.inflight.delete(key);
      });
    this.inflight.set(key, load);
    return load;
  }

  invalidate(code: string): void {
    const key = cacheKeys.link(code);
    this.entries.delete(key);
    this.inflight.delete(key);
  }

  clear(): void {
    this.entries.clear();
    this.inflight.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  private store(key: string, link: Link | null): void {
    if (this.options.maxEntries === 0) return;
    this.entries.delete(key);
    this.entries.set(key, { link, expiresAt: this.now() + this.options.ttlMs });
    while (this.entries.size > this.options.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
  }
}
