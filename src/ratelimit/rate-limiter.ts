/** Fixed one-minute windows per bucket (an API key or a client IP). */
export interface RateLimitVerdict {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the window resets: what `RateLimit-Reset` and `Retry-After` carry. */
  resetSeconds: number;
  /** The instant (epoch ms) the window ends: a client refused now may come back then, not a rounded second later. */
  resetAtMs: number;
}

export interface RateLimiter {
  consume(bucket: string, limit: number): Promise<RateLimitVerdict>;
}

export const RATE_LIMIT_WINDOW_MS = 60_000;
