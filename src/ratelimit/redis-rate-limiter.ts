/**
 * Rate limits shared by every instance: one atomic script per check (increment the
 * window's counter, set its expiry on first use, report the count). While Redis
 * is unreachable the per-instance limiter answers, so limits loosen to per-instance ones
 * instead of failing requests; they are shared again as soon as Redis is back.
 */
import type { CacheKeys } from '../cache/cache-keys.js';
import { LuaScript, type RedisConnection } from '../redis/redis-connection.js';
import { RATE_LIMIT_WINDOW_MS, type RateLimiter, type RateLimitVerdict } from './rate-limiter.js';

const CONSUME = new LuaScript(
  'rate-limit-consume',
  `local count = redis.call('INCR', KEYS[1])
   if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
   return count`,
);

export class RedisRateLimiter implements RateLimiter {
  fallbacks = 0;

  constructor(
    private readonly redis: RedisConnection,
    private readonly fallback: RateLimiter,
    private readonly keys: CacheKeys,
    private readonly now: () => number = Date.now,
  ) {}

  async consume(bucket: string, limit: number): Promise<RateLimitVerdict> {
    const now = this.now();
    const windowStart = now - (now % RATE_LIMIT_WINDOW_MS);
    let count: number;
    try {
      count = (await this.redis.run((r) =>
        CONSUME.run(r, [this.keys.rateLimit(bucket, windowStart)], [RATE_LIMIT_WINDOW_MS]),
      )) as number;
    } catch {
      this.fallbacks += 1;
      return this.fallback.consume(bucket, limit);
    }
    // The key names its window, so the budget comes back when that window ends: not a
    // minute after the key's first use, which is what the key's TTL would say.
    const resetMs = windowStart + RATE_LIMIT_WINDOW_MS - now;
    return {
      allowed: count <= limit,
      limit,
      remaining: Math.max(0, limit - count),
      resetSeconds: Math.max(1, Math.ceil(resetMs / 1000)),
      resetAtMs: windowStart + RATE_LIMIT_WINDOW_MS,
    };
  }
}
