/**
 * Lookups by key, coalesced: the keys asked for during one turn of the event loop go out as
 * one request, and while `maxInFlight` such requests are out, new keys wait and join the
 * next one. Under a burst of cache misses the store then answers a few requests of many
 * keys instead of one request (and one round trip, parse and plan) per key.
 */
import { AppError } from './errors.js';

export interface BatchLoaderOptions<T> {
  /** The answers for `keys` (distinct), in the same order. */
  loadMany: (keys: readonly string[]) => Promise<readonly T[]>;
  /** Requests out at once; a pool's size is the natural bound. */
  maxInFlight: number;
  /** Keys per request at most. */
  maxBatch?: number;
}

interface Waiter<T> {
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

export class BatchLoader<T> {
  private pending = new Map<string, Waiter<T>[]>();
  private inFlight = 0;
  private scheduled = false;

  constructor(private readonly options: BatchLoaderOptions<T>) {}

  load(key: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const waiters = this.pending.get(key);
      if (waiters === undefined) this.pending.set(key, [{ resolve, reject }]);
      else waiters.push({ resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // After this turn's I/O callbacks: every key their replies asked for joins the request.
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
        for (const [key, waiters] of this.pending) {
          if (batch.size === max) break;
          batch.set(key, waiters);
          this.pending.delete(key);
        }
      }
      this.inFlight += 1;
      void this.run(batch);
    }
  }

  private async run(batch: Map<string, Waiter<T>[]>): Promise<void> {
    try {
      const keys = [...batch.keys()];
      const answers = await this.options.loadMany(keys);
      if (answers.length !== keys.length) {
        throw new AppError('internal_error', { detail: `A batch of ${keys.length} lookups was answered with ${answers.length} values` });
      }
      for (const [index, key] of keys.entries()) for (const waiter of batch.get(key) ?? []) waiter.resolve(answers[index] as T);
    } catch (error) {
      for (const waiters of batch.values()) for (const waiter of waiters) waiter.reject(error);
    } finally {
      this.inFlight -= 1;
      if (this.pending.size > 0) this.flush();
    }
  }
}
