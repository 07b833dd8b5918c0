/**
 * How a link change reaches every instance's in-process cache. The instance that wrote
 * publishes; every instance (itself included) drops its local entry. With replicas, the
 * message carries the primary's WAL position after the write, so a reader knows how far
 * a replica must have replayed before it may answer for that code.
 */
export interface Invalidation {
  code: string;
  /** The primary's WAL insert position after the write's commit; null on stores without WAL (embedded). */
  lsn: string | null;
}

export interface InvalidationBus {
  /** Never throws and never waits: a bus that cannot deliver now keeps the message and retries. */
  publish(message: Invalidation): void;
  /** Called for every message, including this instance's own. */
  onMessage(handler: (message: Invalidation) => void): void;
  /** Called when messages may have been missed (a reconnect): drop every local entry. */
  onResync(handler: () => void): void;
  close(): Promise<void>;
}

/** One process and nothing shared: a message goes straight back to this instance. */
export class LocalInvalidationBus implements InvalidationBus {
  private readonly handlers: ((message: Invalidation) => void)[] = [];

  publish(message: Invalidation): void {
    for (const handler of this.handlers) handler(message);
  }

  onMessage(handler: (message: Invalidation) => void): void {
    this.handlers.push(handler);
  }

  onResync(): void {
    // Nothing can be missed in one process.
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
