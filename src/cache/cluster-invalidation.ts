/**
 * Invalidation across the workers of one machine (node:cluster) without Redis: a worker
 * sends its message to the primary over IPC, and the primary relays it to every worker,
 * the sender included, so all local caches drop the entry the same way.
 */
import type { Invalidation, InvalidationBus } from './invalidation.js';

const KIND = 'shunt:invalidate';

interface Envelope {
  kind: typeof KIND;
  message: Invalidation;
}

/** The worker's end of the IPC channel (`process` in a cluster worker). */
export interface WorkerChannel {
  readonly connected: boolean;
  send(message: unknown, callback: (error: Error | null) => void): void;
  on(event: 'message', listener: (message: unknown) => void): void;
  off(event: 'message', listener: (message: unknown) => void): void;
}

/** A worker as the primary sees it. */
export interface RelayTarget {
  isConnected(): boolean;
  send(message: unknown, callback: (error: Error | null) => void): void;
}

/**
 * Only well-formed messages are relayed, rebuilt field by field: IPC carries whatever a
 * process sends, and a malformed one must not reach every cache.
 */
export function readEnvelope(value: unknown): Envelope | null {
  if (typeof value !== 'object' || value === null) return null;
  const { kind, message } = value as { kind?: unknown; message?: unknown };
  if (kind !== KIND || typeof message !== 'object' || message === null) return null;
  const { code, lsn } = message as { code?: unknown; lsn?: unknown };
  if (typeof code !== 'string' || (lsn !== null && typeof lsn !== 'string')) return null;
  return { kind: KIND, message: { code, lsn } };
}

/**
 * The primary's half: given anything a worker sent, relays it to every connected worker
 * when it is an invalidation. Returns whether it was one.
 */
export function relayInvalidation(value: unknown, targets: Iterable<RelayTarget>): boolean {
  const envelope = readEnvelope(value);
  if (envelope === null) return false;
  for (const target of targets) {
    // A worker that is exiting misses nothing that matters: its successor starts with an empty cache.
    if (target.isConnected()) target.send(envelope, ignoreError);
  }
  return true;
}

export class ClusterInvalidationBus implements InvalidationBus {
  private readonly handlers: ((message: Invalidation) => void)[] = [];
  private closed = false;
  private readonly listener = (value: unknown): void => {
    const envelope = readEnvelope(value);
    if (envelope === null || this.closed) return;
    for (const handler of this.handlers) handler(envelope.message);
  };

  constructor(private readonly channel: WorkerChannel) {
    channel.on('message', this.listener);
  }

  publish(message: Invalidation): void {
    // IPC keeps every message while connected. Once disconnected the primary is gone,
    // node:cluster ends this worker, and its successor starts with an empty cache: there
    // is nothing to keep for later.
    if (this.closed || !this.channel.connected) return;
    const envelope: Envelope = { kind: KIND, message: { code: message.code, lsn: message.lsn } };
    this.channel.send(envelope, ignoreError);
  }

  onMessage(handler: (message: Invalidation) => void): void {
    this.handlers.push(handler);
  }

  onResync(): void {
    // Nothing is ever missed: the channel is reliable while it is open, and the worker ends with it.
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      // A 'message' listener keeps the IPC channel referenced, which would keep a drained worker alive.
      this.channel.off('message', this.listener);
      this.handlers.length = 0;
    }
    return Promise.resolve();
  }
}

/** This process's channel to its primary; only meaningful in a cluster worker. */
export function processChannel(): WorkerChannel {
  return {
    get connected() {
      return process.connected;
    },
    send: (message, callback) => {
      if (process.send === undefined) callback(new Error('not a child process'));
      else process.send(message, undefined, {}, callback);
    },
    on: (event, listener) => void process.on(event, listener),
    off: (event, listener) => void process.off(event, listener),
  };
}

// A failed send means the other end is exiting; see the comments above.
function ignoreError(): void {}
