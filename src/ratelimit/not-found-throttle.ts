/**
 * Slows down code guessing on the redirect path. Only answers for unknown codes are
 * counted (in the shared limiter, off the response path); a client over its budget is
 * then refused every redirect, preview and QR code until its window ends, so a guess that
 * happens to hit a real code tells it nothing. Normal traffic pays one lookup in a usually
 * empty map. Clients are counted by `clientBucket` (an IPv6 client by its /64).
 */
import { BlockedClients } from './blocked-clients.js';
import { clientBucket } from './client-bucket.js';
import type { RateLimiter } from './rate-limiter.js';

/** Shares blocks between instances (Redis pub/sub); without it, each instance blocks alone. */
export interface ThrottleBroadcast {
  publish(bucket: string, untilMs: number): void;
  onBlock(handler: (bucket: string, untilMs: number) => void): void;
}

export class NotFoundThrottle {
  private readonly blocked: BlockedClients;

  constructor(
    private readonly limiter: RateLimiter,
    private readonly limitPerMinute: number,
    private readonly now: () => number = Date.now,
    private readonly broadcast?: ThrottleBroadcast,
  ) {
    this.blocked = new BlockedClients(now);
    broadcast?.onBlock((bucket, untilMs) => this.blocked.block(bucket, untilMs));
  }

  /** Seconds the client must wait, or 0 when it may be answered. */
  retryAfter(ip: string): number {
    // The hot path: nothing to compute while nobody is blocked.
    if (this.blocked.size === 0) return 0;
    return this.blocked.retryAfter(clientBucket(ip));
  }

  /** Counts one unknown-code answer for the client. Never throws. */
  notFound(ip: string): void {
    const bucket = clientBucket(ip);
    this.limiter.consume(`404:${bucket}`, this.limitPerMinute).then(
      (verdict) => {
        if (verdict.allowed) return;
        this.blocked.block(bucket, verdict.resetAtMs);
        this.broadcast?.publish(bucket, verdict.resetAtMs);
      },
      () => undefined,
    );
  }
}
