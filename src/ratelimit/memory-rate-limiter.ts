/** Per-instance counters; the Redis tier shares them across instances when configured. */
import { RATE_LIMIT_WINDOW_MS, type RateLimiter, type RateLimitVerdict } from './rate-limiter.js';

interface Window {
  startedAt: number;
  count: number;
}

export class MemoryRateLimiter implements RateLimiter {
  private readonly windows = new Map<string, Window>();
  private lastSweep = 0;

  constructor(private readonly now: () => number = Date.now) {}

  consume(bucket: string, limit: number): Promise<RateLimitVerdict> {
    const now = this.now();
    const windowStart = now - (now % RATE_LIMIT_WINDOW_MS);
    this.sweep(windowStart);
    let window = this.windows.get(bucket);
    if (window === undefined || window.startedAt !== windowStart) {
      window = { startedAt: windowStart, count: 0 };
      this.windows.set(bucket, window);
    }
    window.count += 1;
    return Promise.resolve({
      allowed: window.count <= limit,
      limit,
      remaining: Math.max(0, limit - window.count),
      resetSeconds: Math.max(1, Math.ceil((windowStart + RATE_LIMIT_WINDOW_MS - now) / 1000)),
      resetAtMs: windowStart + RATE_LIMIT_WINDOW_MS,
    });
  }

  /** Drops finished windows once per window, so memory follows the active clients only. */
  private sweep(windowStart: number): void {
    if (this.lastSweep === windowStart) return;
    this.lastSweep = windowStart;
    for (const [bucket, window] of this.windows) {
      if (window.startedAt < windowStart) this.windows.delete(bucket);
    }
  }
}
