/**
 * Clients refused until a given instant, known in process: checking costs one lookup in
 * a usually empty map, and no call to the shared limiter. Bounded: beyond the maximum,
 * the oldest entries are forgotten (those clients are counted again).
 */
const MAX_BLOCKED = 100_000;

export class BlockedClients {
  private readonly until = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  get size(): number {
    return this.until.size;
  }

  /** Seconds the bucket must wait, or 0 when it is not blocked. */
  retryAfter(bucket: string): number {
    if (this.until.size === 0) return 0;
    const until = this.until.get(bucket);
    if (until === undefined) return 0;
    const left = until - this.now();
    if (left <= 0) {
      this.until.delete(bucket);
      return 0;
    }
    return Math.ceil(left / 1000);
  }

  block(bucket: string, untilMs: number): void {
    if ((this.until.get(bucket) ?? 0) >= untilMs) return;
    this.until.delete(bucket);
    this.until.set(bucket, untilMs);
    if (this.until.size > MAX_BLOCKED) {
      const oldest = this.until.keys().next();
      if (oldest.done !== true) this.until.delete(oldest.value);
    }
  }
}
