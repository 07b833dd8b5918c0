/**
 * The Server-Sent Events streams open on this instance: a bound on how many, one heartbeat
 * timer for all of them, and a way to end them all when the server drains.
 *
 * Streams are written on the raw response of a hijacked reply. Fastify runs its onResponse
 * hooks (the request log line and the latency metric) when the response emits 'finish' or
 * 'error'; a stream ended by the server finishes, but one whose client went away only
 * closes, so that end is reported as an 'error' of the response: every stream is logged
 * and measured once, however it ended.
 */
import type { ServerResponse } from 'node:http';
import { grantKey, type StreamGrant, type StreamGrantCheck } from '../analytics/stream-authorization.js';

export interface EventStreamOptions {
  /** A comment is sent this often, so proxies keep the connection and dead clients are noticed. */
  heartbeatMs: number;
  /** The reconnection delay suggested to clients (`retry:`). */
  retryMs: number;
  /** Open streams this instance accepts; more are refused with 503. */
  maxStreams: number;
  /** Open streams one key may hold on this instance; more are refused with 429. */
  maxStreamsPerKey: number;
  /** How often each open stream's key and link are checked again (stream-authorization.ts). */
  recheckMs: number;
  /** A client this far behind (bytes not yet sent) is cut off instead of buffered for. */
  maxBufferedBytes: number;
}

export const DEFAULT_EVENT_STREAM_OPTIONS: EventStreamOptions = {
  heartbeatMs: 15_000,
  retryMs: 3000,
  maxStreams: 1000,
  maxStreamsPerKey: 10,
  recheckMs: 2000,
  maxBufferedBytes: 1024 * 1024,
};

export class EventStream {
  private ended = false;
  private reported = false;
  private readonly cleanups: (() => void)[] = [];

  constructor(
    private readonly res: ServerResponse,
    private readonly maxBufferedBytes: number,
    onEnd: (stream: EventStream) => void,
  ) {
    this.cleanups.push(() => onEnd(this));
    res.on('close', () => this.closed());
  }

  /** The connection is gone: clean up, and report a response that never finished (see above). */
  closed(): void {
    this.cleanup();
    if (this.reported || this.res.writableFinished) return;
    this.reported = true;
    if (this.res.listenerCount('error') > 0) this.res.emit('error', new Error('the client closed the event stream'));
  }

  get open(): boolean {
    return !this.ended;
  }

  /** Runs `cleanup` once the stream ends, however it ends (at once if it already has). */
  onEnd(cleanup: () => void): void {
    if (this.ended) cleanup();
    else this.cleanups.push(cleanup);
  }

  /** One event; `data` must hold no line break (JSON text does not). */
  send(event: string, id: string, data: string): void {
    this.write(`event: ${event}\nid: ${id}\ndata: ${data}\n\n`);
  }

  comment(text: string): void {
    this.write(`: ${text}\n\n`);
  }

  /** Ends the stream with a last comment. */
  end(comment: string): void {
    if (this.ended || this.res.destroyed) return;
    this.res.end(`: ${comment}\n\n`);
    this.cleanup();
  }

  private write(text: string): void {
    if (this.ended || this.res.destroyed) return;
    if (this.res.writableLength > this.maxBufferedBytes) {
      // Buffering without bound for a client that does not read would let it take the
      // instance's memory; cut off, it reconnects and starts again from live clicks.
      this.res.destroy();
      return;
    }
    this.res.write(text);
  }

  private cleanup(): void {
    if (this.ended) return;
    this.ended = true;
    for (const cleanup of this.cleanups.splice(0)) cleanup();
  }
}

export interface EventStreamsContext {
  /** Where grants are checked again (on the primary, so that a revocation is seen at once). */
  grants: StreamGrantCheck;
  logger: { warn(details: object, message: string): void };
}

export class EventStreams {
  /** Open streams and what each was opened with. */
  private readonly streams = new Map<EventStream, StreamGrant>();
  private readonly perKey = new Map<string, number>();
  private heartbeat: NodeJS.Timeout | null = null;
  private recheck: NodeJS.Timeout | null = null;
  private checking = false;

  constructor(
    readonly options: EventStreamOptions,
    private readonly context: EventStreamsContext,
  ) {}

  get size(): number {
    return this.streams.size;
  }

  get full(): boolean {
    return this.streams.size >= this.options.maxStreams;
  }

  /** Whether `keyId` holds as many streams on this instance as it may. */
  fullFor(keyId: string): boolean {
    return (this.perKey.get(keyId) ?? 0) >= this.options.maxStreamsPerKey;
  }

  /**
   * Takes over a response whose head is written; the stream ends when either side ends it,
   * or when its grant no longer holds. Its slot (of the instance and of its key) is freed
   * when it ends, however it ends.
   */
  start(res: ServerResponse, grant: StreamGrant): EventStream {
    const stream = new EventStream(res, this.options.maxBufferedBytes, (ended) => {
      if (!this.streams.delete(ended)) return;
      const left = (this.perKey.get(grant.keyId) ?? 1) - 1;
      if (left > 0) this.perKey.set(grant.keyId, left);
      else this.perKey.delete(grant.keyId);
      if (this.streams.size === 0) this.stopTimers();
    });
    // The client may have gone while the request was being checked: then there is nothing to keep.
    if (res.destroyed || res.socket === null || res.socket.destroyed) {
      res.destroy();
      stream.closed();
      return stream;
    }
    this.streams.set(stream, grant);
    this.perKey.set(grant.keyId, (this.perKey.get(grant.keyId) ?? 0) + 1);
    stream.comment('connected');
    res.write(`retry: ${this.options.retryMs}\n\n`);
    if (this.heartbeat === null) {
      this.heartbeat = setInterval(() => {
        for (const open of this.streams.keys()) open.comment('ping');
      }, this.options.heartbeatMs);
      this.heartbeat.unref();
    }
    if (this.recheck === null) {
      this.recheck = setInterval(() => void this.checkGrants(), this.options.recheckMs);
      this.recheck.unref();
    }
    return stream;
  }

  /** Ends every stream with a comment; clients reconnect (to another instance, when draining). */
  endAll(comment: string): void {
    for (const stream of [...this.streams.keys()]) stream.end(comment);
    this.stopTimers();
  }

  /**
   * Ends the streams whose key was revoked or whose link was deleted or changed owner. A
   * failed check keeps the streams (the store is where their clicks come from, too) and is
   * tried again at the next tick.
   */
  async checkGrants(): Promise<void> {
    if (this.checking || this.streams.size === 0) return;
    this.checking = true;
    try {
      const grants = new Map<string, StreamGrant>();
      for (const grant of this.streams.values()) grants.set(grantKey(grant), grant);
      const revoked = await this.context.grants.revokedGrants([...grants.values()]);
      if (revoked.size === 0) return;
      for (const [stream, grant] of [...this.streams]) {
        if (revoked.has(grantKey(grant))) stream.end('access to this link ended (key revoked, or link deleted or given away)');
      }
    } catch (error) {
      this.context.logger.warn({ err: error }, 'could not check the event streams\' keys and links; checked again shortly');
    } finally {
      this.checking = false;
    }
  }

  private stopTimers(): void {
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    if (this.recheck !== null) clearInterval(this.recheck);
    this.heartbeat = null;
    this.recheck = null;
  }
}
