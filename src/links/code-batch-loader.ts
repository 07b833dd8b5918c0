/**
 * Lookups by code, coalesced: the codes asked for during one turn of the event loop go to
 * the store as one query, and while `maxInFlight` such queries are out, new codes wait and
 * join the next one. Under a burst of cache misses the store then answers a few queries of
 * many rows instead of one query (and one round trip, parse and plan) per request.
 */
import type { Link } from './link.js';

export interface CodeBatchLoaderOptions {
  /** The links among `codes` (distinct); codes without a link are simply absent. */
  loadMany: (codes: readonly string[]) => Promise<Link[]>;
  /** Queries out at once; the pool's size is the natural bound. */
  maxInFlight: number;
  /** Codes per query at most. */
  maxBatch?: number;
}

interface Waiter {
  resolve: (link: Link | null) => void;
  reject: (error: unknown) => void;
}

export class CodeBatchLoader {
  private pending = new Map<string, Waiter[]>();
  private inFlight = 0;
  private scheduled = false;

  constructor(private readonly options: CodeBatchLoaderOptions) {}

  load(code: string): Promise<Link | null> {
    return new Promise((resolve, reject) => {
      const waiters = this.pending.get(code);
      if (waiters === undefined) this.pending.set(code, [{ resolve, reject }]);
      else waiters.push({ resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // After this turn's I/O callbacks: every miss their replies uncovered joins the query.
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const max = this.options.maxBatch ?? 500;
    while (this.pending.size > 0 && this.inFlight < this.options.maxInFlight) {
      let batch = this.pending;
      if (batch.size <= max) {
        this.pending = new Map();
      } else {
        batch = new Map();
        for (const [code, waiters] of this.pending) {
          if (batch.size === max) break;
          batch.set(code, waiters);
          this.pending.delete(code);
        }
      }
      this.inFlight += 1;
      void this.run(batch);
    }
  }

  private async run(batch: Map<string, Waiter[]>): Promise<void> {
    try {
      const found = new Map((await this.options.loadMany([...batch.keys()])).map((link) => [link.code, link]));
      for (const [code, waiters] of batch) for (const waiter of waiters) waiter.resolve(found.get(code) ?? null);
    } catch (error) {
      for (const waiters of batch.values()) for (const waiter of waiters) waiter.reject(error);
    } finally {
      this.inFlight -= 1;
      if (this.pending.size > 0) this.flush();
    }
  }
}
