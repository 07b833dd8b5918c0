import type { FastifyBaseLogger } from 'fastify';
import type { AnalyticsService } from '../analytics/analytics-service.js';
import type { QrCache } from '../cache/qr-cache.js';
import type { ExportJobs } from '../analytics/export-jobs.js';
import type { ClickRecorder } from '../clicks/click-event.js';
import type { Config } from '../config/config.js';
import type { KeyService } from '../keys/key-service.js';
import type { SessionService } from '../sessions/session-service.js';
import type { Actor } from '../links/link.js';
import type { LinkService } from '../links/link-service.js';
import type { LiveClickFeed } from '../live/live-click-feed.js';
import type { Metrics } from '../observability/metrics.js';
import type { NotFoundThrottle } from '../ratelimit/not-found-throttle.js';
import type { RateLimiter } from '../ratelimit/rate-limiter.js';
import type { EventStreamOptions } from './event-streams.js';
import type { IdempotencyStore } from './idempotency-store.js';
import type { RouteDoc } from './openapi.js';

/** Readiness as the process sees it: draining on shutdown, and dependency checks. */
export interface Readiness {
  readonly draining: boolean;
  check(): Promise<void>;
}

/** Everything the HTTP layer needs, handed in so that tests choose what is real. */
export interface AppDeps {
  config: Config;
  logger: FastifyBaseLogger;
  links: LinkService;
  keys: KeyService;
  /** Dashboard sign-in sessions (cookie-borne). */
  sessions: SessionService;
  clicks: ClickRecorder;
  rateLimiter: RateLimiter;
  notFoundThrottle: NotFoundThrottle;
  idempotency: IdempotencyStore;
  /** Rendered QR codes, cached. */
  qrCodes: QrCache;
  metrics: Metrics;
  readiness: Readiness;
  /** Stats, CSV exports and the live click stream. */
  analytics: {
    /** Stats, overview and totals, export plans and stream re-checks: the routes' only way to the analytics store. */
    service: AnalyticsService;
    liveClicks: LiveClickFeed;
    exports: ExportJobs;
    events: EventStreamOptions;
  };
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The API key behind the request; null when none (or on non-API routes). */
    actor: Actor | null;
  }
  interface FastifyContextConfig {
    doc?: RouteDoc;
  }
}
