/**
 * Rate limits shared by every instance: one atomic script per check (increment the
 * window's counter, set its expiry on first use, report count and time left). While Redis
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
   return {count, redis.call('PTTL', KEYS[1])}`,
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
    let ttlMs: number;
    try {
      [count, ttlMs] = (await this.redis.run((r) =>
        CONSUME.run(r, [this.keys.rateLimit(bucket, windowStart)], [RATE_LIMIT_WINDOW_MS]),
      )) as [number, number];
    } catch {
      this.fallbacks += 1;
      return this.fallback.consume(bucket, limit);
    }
    const resetMs = ttlMs > 0 ? ttlMs : windowStart + RATE_LIMIT_WINDOW_MS - now;
    return {
      allowed: count <= limit,
      limit,
      remaining: Math.max(0, limit - count),
      resetSeconds: Math.max(1, Math.ceil(resetMs / 1000)),
    };
  }
}
