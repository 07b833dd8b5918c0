/**
 * Clicks announced as they are stored, for the events stream of a link. Workers publish a
 * batch once it is committed, so a client never sees a click that the stats will not count;
 * API instances subscribe per link. With Redis the announcement reaches every instance
 * (redis-live-click-feed.ts); without it, the worker processes of one machine
 * (cluster-live-click-feed.ts), or this process's own subscribers, which is the whole
 * deployment in the embedded default.
 */
import type { EnrichedClick } from '../analytics/enriched-click.js';

/**
 * One click as the feeds carry it: the enriched facts, never the IP or visitor key, and the
 * link it belongs to, which routes it. The events stream shows `publicLiveClick` of it.
 */
export interface LiveClick {
  id: string;
  linkId: string;
  code: string;
  /** ISO 8601, UTC, milliseconds. */
  at: string;
  method: 'GET' | 'HEAD';
  bot: boolean;
  country: string | null;
  referrerHost: string | null;
  browser: string | null;
  os: string | null;
  device: EnrichedClick['device'];
}

export function toLiveClick(click: EnrichedClick): LiveClick {
  return {
    id: click.id,
    linkId: click.linkId,
    code: click.code,
    at: click.at.toISOString(),
    method: click.method,
    bot: click.bot,
    country: click.country,
    referrerHost: click.referrerHost,
    browser: click.browser,
    os: click.os,
    device: click.device,
  };
}

/** What an events stream sends: the link's id is internal. */
export function publicLiveClick(click: LiveClick): Omit<LiveClick, 'linkId'> {
  const { linkId: _linkId, ...shown } = click;
  return shown;
}

export type LiveClickListener = (click: LiveClick) => void;

export interface LiveClickFeed {
  /** Announces stored clicks. Never throws and never waits: a lost announcement loses no data. */
  publish(clicks: readonly EnrichedClick[]): void;
  /**
   * Calls `listener` for each click of the link (links.id) stored from now on; returns the
   * unsubscribe. By link, not code: a later link that takes the code is another feed.
   */
  subscribe(linkId: string, listener: LiveClickListener): () => void;
  /** Links with at least one subscriber in this process. */
  readonly watched: number;
  /**
   * False when no click published now could reach a listener, here or elsewhere: a writer on
   * another thread then need not send its stored clicks back to be announced. Announcements
   * stay best-effort: clicks already on their way when the first watcher arrives (a batch,
   * some hundreds of milliseconds) may go unannounced; they are stored and counted all the same.
   */
  readonly wanted: boolean;
  close(): Promise<void>;
}

/** Listeners per link id, shared by the feeds. */
export class LiveClickListeners {
  private readonly byCode = new Map<string, Set<LiveClickListener>>();

  get size(): number {
    return this.byCode.size;
  }

  has(code: string): boolean {
    return this.byCode.has(code);
  }

  codes(): IterableIterator<string> {
    return this.byCode.keys();
  }

  /** Returns true when `code` gained its first listener. */
  add(code: string, listener: LiveClickListener): boolean {
    let set = this.byCode.get(code);
    const first = set === undefined;
    if (set === undefined) {
      set = new Set();
      this.byCode.set(code, set);
    }
    set.add(listener);
    return first;
  }

  /** Returns true when `code` lost its last listener. */
  remove(code: string, listener: LiveClickListener): boolean {
    const set = this.byCode.get(code);
    if (set === undefined || !set.delete(listener)) return false;
    if (set.size > 0) return false;
    this.byCode.delete(code);
    return true;
  }

  deliver(click: LiveClick): void {
    const set = this.byCode.get(click.linkId);
    if (set === undefined) return;
    // A listener that throws (a closed socket) must not stop the others.
    for (const listener of set) {
      try {
        listener(click);
      } catch {
        // The stream's own close handler unsubscribes it.
      }
    }
  }
}

/** The feed of one process: publish calls its subscribers directly. */
export class MemoryLiveClickFeed implements LiveClickFeed {
  private readonly listeners = new LiveClickListeners();

  get watched(): number {
    return this.listeners.size;
  }

  get wanted(): boolean {
    return this.listeners.size > 0;
  }

  publish(clicks: readonly EnrichedClick[]): void {
    if (this.listeners.size === 0) return;
    for (const click of clicks) if (this.listeners.has(click.linkId)) this.listeners.deliver(toLiveClick(click));
  }

  subscribe(linkId: string, listener: LiveClickListener): () => void {
    this.listeners.add(linkId, listener);
    return () => void this.listeners.remove(linkId, listener);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
