/**
 * The live click feed across the worker processes of one machine (node:cluster) without
 * Redis: each process stores the clicks it served, so a stream held by one process must hear
 * of the clicks stored by the others.
 *
 * As with Redis, only watched codes travel: a process with streams for a code announces it
 * (again every few seconds while it has them), the primary relays the announcement to every
 * process, and a process storing clicks sends on those of codes another process watches.
 * An announcement that is not renewed lapses, so an ended stream or a dead process costs
 * nothing after a while. Messages are checked field by field on arrival: IPC carries
 * whatever a process sends.
 */
import type { EnrichedClick } from '../analytics/enriched-click.js';
import type { RelayTarget, WorkerChannel } from '../cache/cluster-invalidation.js';
import { LiveClickListeners, toLiveClick, type LiveClick, type LiveClickFeed, type LiveClickListener } from './live-click-feed.js';

const WATCH = 'shunt:live-watch';
const CLICKS = 'shunt:live-clicks';
const DEVICES: ReadonlySet<string> = new Set(['desktop', 'mobile', 'tablet', 'bot', 'other']);

interface WatchMessage {
  kind: typeof WATCH;
  pid: number;
  codes: string[];
}

interface ClicksMessage {
  kind: typeof CLICKS;
  pid: number;
  clicks: LiveClick[];
}

const isText = (value: unknown): value is string => typeof value === 'string';
const isOptionalText = (value: unknown): value is string | null => value === null || typeof value === 'string';

function readClick(value: unknown): LiveClick | null {
  if (typeof value !== 'object' || value === null) return null;
  const c = value as Record<string, unknown>;
  if (!isText(c.id) || !isText(c.linkId) || !isText(c.code) || !isText(c.at) || (c.method !== 'GET' && c.method !== 'HEAD') || typeof c.bot !== 'boolean') return null;
  if (!isOptionalText(c.country) || !isOptionalText(c.referrerHost) || !isOptionalText(c.browser) || !isOptionalText(c.os)) return null;
  if (!isText(c.device) || !DEVICES.has(c.device)) return null;
  return {
    id: c.id,
    linkId: c.linkId,
    code: c.code,
    at: c.at,
    method: c.method,
    bot: c.bot,
    country: c.country,
    referrerHost: c.referrerHost,
    browser: c.browser,
    os: c.os,
    device: c.device as LiveClick['device'],
  };
}

/** A well-formed message of this feed, rebuilt from what arrived, or null. */
export function readLiveMessage(value: unknown): WatchMessage | ClicksMessage | null {
  if (typeof value !== 'object' || value === null) return null;
  const { kind, pid, codes, clicks } = value as { kind?: unknown; pid?: unknown; codes?: unknown; clicks?: unknown };
  if (typeof pid !== 'number') return null;
  if (kind === WATCH && Array.isArray(codes) && codes.every(isText)) return { kind, pid, codes: [...codes] };
  if (kind === CLICKS && Array.isArray(clicks)) {
    const read = clicks.map(readClick);
    return read.every((click): click is LiveClick => click !== null) ? { kind, pid, clicks: read } : null;
  }
  return null;
}

/** The primary's half: relays a message of this feed to every worker. Returns whether it was one. */
export function relayLiveClicks(value: unknown, targets: Iterable<RelayTarget>): boolean {
  const message = readLiveMessage(value);
  if (message === null) return false;
  for (const target of targets) if (target.isConnected()) target.send(message, ignoreError);
  return true;
}

export interface ClusterLiveClickFeedOptions {
  /** How long another process's watch counts unless announced again. */
  watchTtlMs?: number;
  /** How often this process announces the codes it watches. */
  renewIntervalMs?: number;
  now?: () => number;
  /** Tells this process's messages from the others' (relayed back to it too): its pid. */
  pid?: number;
}

export class ClusterLiveClickFeed implements LiveClickFeed {
  private readonly listeners = new LiveClickListeners();
  /** Codes other processes watch, with when their last announcement lapses. */
  private readonly remote = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;
  private readonly now: () => number;
  private readonly ttlMs: number;
  private readonly pid: number;
  private closed = false;
  private readonly receive = (value: unknown): void => {
    const message = readLiveMessage(value);
    if (message === null || message.pid === this.pid || this.closed) return;
    if (message.kind === WATCH) {
      const until = this.now() + this.ttlMs;
      for (const code of message.codes) this.remote.set(code, until);
    } else {
      for (const click of message.clicks) this.listeners.deliver(click);
    }
  };

  constructor(
    private readonly channel: WorkerChannel,
    options: ClusterLiveClickFeedOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.ttlMs = options.watchTtlMs ?? 30_000;
    this.pid = options.pid ?? process.pid;
    channel.on('message', this.receive);
    this.timer = setInterval(() => this.announce([...this.listeners.codes()]), options.renewIntervalMs ?? 10_000);
    this.timer.unref();
  }

  get watched(): number {
    return this.listeners.size;
  }

  /** Lapsed remote watches count until publish prunes them: a wasted announcement, never a lost one. */
  get wanted(): boolean {
    return this.listeners.size > 0 || this.remote.size > 0;
  }

  publish(clicks: readonly EnrichedClick[]): void {
    if (this.closed) return;
    const elsewhere: LiveClick[] = [];
    const now = this.now();
    for (const click of clicks) {
      const local = this.listeners.has(click.linkId);
      const until = this.remote.get(click.linkId);
      const remote = until !== undefined && until > now;
      if (until !== undefined && !remote) this.remote.delete(click.linkId);
      if (!local && !remote) continue;
      const live = toLiveClick(click);
      if (local) this.listeners.deliver(live);
      if (remote) elsewhere.push(live);
    }
    if (elsewhere.length > 0) this.send({ kind: CLICKS, pid: this.pid, clicks: elsewhere });
  }

  subscribe(linkId: string, listener: LiveClickListener): () => void {
    if (this.listeners.add(linkId, listener)) this.announce([linkId]);
    return () => void this.listeners.remove(linkId, listener);
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      clearInterval(this.timer);
      // A 'message' listener keeps the IPC channel referenced, which would keep a drained worker alive.
      this.channel.off('message', this.receive);
    }
    return Promise.resolve();
  }

  private announce(codes: string[]): void {
    if (codes.length > 0) this.send({ kind: WATCH, pid: this.pid, codes });
  }

  private send(message: WatchMessage | ClicksMessage): void {
    // Disconnected means the primary is gone and this worker is ending: nothing to keep.
    if (!this.closed && this.channel.connected) this.channel.send(message, ignoreError);
  }
}

function ignoreError(): void {}
