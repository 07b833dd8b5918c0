/**
 * Slows down code guessing on the redirect path. Only answers for unknown codes are
 * counted (in the shared limiter, off the response path); a client over its budget is
 * then refused every redirect until its window ends, so a guess that happens to hit a
 * real code tells it nothing. Normal traffic pays one lookup in a usually empty map.
 */
import type { RateLimiter } from './rate-limiter.js';

/** Clients refused at once; beyond this, the oldest are forgotten (they are counted again). */
const MAX_BLOCKED = 100_000;

/** Shares blocks between instances (Redis pub/sub); without it, each instance blocks alone. */
export interface ThrottleBroadcast {
  publish(ip: string, untilMs: number): void;
  onBlock(handler: (ip: string, untilMs: number) => void): void;
}

export class NotFoundThrottle {
  private readonly blocked = new Map<string, number>();

  constructor(
    private readonly limiter: RateLimiter,
    private readonly limitPerMinute: number,
    private readonly now: () => number = Date.now,
    private readonly broadcast?: ThrottleBroadcast,
  ) {
    broadcast?.onBlock((ip, untilMs) => this.block(ip, untilMs));
  }

  /** Seconds the client must wait, or 0 when it may be answered. */
  retryAfter(ip: string): number {
    if (this.blocked.size === 0) return 0;
    const until = this.blocked.get(ip);
    if (until === undefined) return 0;
    const left = until - this.now();
    if (left <= 0) {
      this.blocked.delete(ip);
      return 0;
    }
    return Math.ceil(left / 1000);
  }

  /** Counts one unknown-code answer for the client. Never throws. */
  notFound(ip: string): void {
    this.limiter.consume(`404:${ip}`, this.limitPerMinute).then(
      (verdict) => {
        if (verdict.allowed) return;
        const untilMs = this.now() + verdict.resetSeconds * 1000;
        this.block(ip, untilMs);
        this.broadcast?.publish(ip, untilMs);
      },
      () => undefined,
    );
  }

  private block(ip: string, untilMs: number): void {
    if ((this.blocked.get(ip) ?? 0) >= untilMs) return;
    this.blocked.delete(ip);
    this.blocked.set(ip, untilMs);
    if (this.blocked.size > MAX_BLOCKED) {
      const oldest = this.blocked.keys().next();
      if (oldest.done !== true) this.blocked.delete(oldest.value);
    }
  }
}
