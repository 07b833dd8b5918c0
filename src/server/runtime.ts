/**
 * The composition root: turns a Config into running parts (store, services, app) and
 * knows how to stop them in order. Nothing else wires modules together.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { ClickRecorder } from '../clicks/click-event.js';
import { cacheKeys } from '../cache/cache-keys.js';
import { LocalInvalidationBus, type InvalidationBus } from '../cache/invalidation.js';
import { LinkCache } from '../cache/link-cache.js';
import { QrCache } from '../cache/qr-cache.js';
import { RedisLinkTier } from '../cache/redis-link-tier.js';
import { KeyRepository } from '../keys/key-repository.js';
import { KeyService, type CreatedKey } from '../keys/key-service.js';
import { codeAllocator } from '../links/code-key.js';
import { installationPolicy } from '../links/destination-policy.js';
import { SessionRepository } from '../sessions/session-repository.js';
import { SessionService } from '../sessions/session-service.js';
import type { Link } from '../links/link.js';
import { LinkRepository } from '../links/link-repository.js';
import { LinkService } from '../links/link-service.js';
import { buildApp, type BuiltApp } from '../http/app.js';
import type { AppDeps } from '../http/app-deps.js';
import { QrRenderer } from '../http/qr.js';
import { shortUrlFor } from '../http/routes/link-json.js';
import { IdempotencyStore } from '../http/idempotency-store.js';
import { MemoryLiveClickFeed, type LiveClickFeed } from '../live/live-click-feed.js';
import { RedisLiveClickFeed } from '../live/redis-live-click-feed.js';
import { AnalyticsService } from '../analytics/analytics-service.js';
import { ExportJobRunner } from '../analytics/export-job-runner.js';
import { ExportJobs } from '../analytics/export-jobs.js';
import { DEFAULT_EVENT_STREAM_OPTIONS, type EventStreamOptions } from '../http/event-streams.js';
import { createLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { MemoryRateLimiter } from '../ratelimit/memory-rate-limiter.js';
import { NotFoundThrottle } from '../ratelimit/not-found-throttle.js';
import type { RateLimiter } from '../ratelimit/rate-limiter.js';
import { RedisRateLimiter } from '../ratelimit/redis-rate-limiter.js';
import { RedisThrottleBroadcast } from '../ratelimit/redis-throttle-broadcast.js';
import { RedisConnection } from '../redis/redis-connection.js';
import { openDatabase, type Database } from '../storage/database.js';
import { BatchLoader } from '../shared/batch-loader.js';
import { ReplicaRouter } from '../storage/replica-router.js';
import { waitForDatabase } from '../storage/wait-for-database.js';
import { currentWalLsn } from '../storage/wal.js';
import { createClickPipeline } from './click-pipeline.js';
import { prepareStore } from './prepare-store.js';
import type { ClickProcessor } from '../pipeline/click-processor.js';

/** Rendered QR codes kept in process (bytes), and in Redis (a 1024 px PNG is about 10 KB). */
const QR_CACHE_MAX_BYTES = 32 * 1024 * 1024;
const QR_REDIS_TTL_MS = 24 * 60 * 60 * 1000;

export interface Runtime {
  config: Config;
  db: Database;
  logger: Logger;
  deps: AppDeps;
  built: BuiltApp;
  /** Set when this start created the first admin key: its secret, to print once. */
  createdAdmin: CreatedKey | null;
  /** Where stored clicks are announced to event streams (on every instance, with Redis). */
  liveClicks: LiveClickFeed;
  /** Writes queued CSV exports; only on roles that run workers (worker, all). */
  exportRunner: ExportJobRunner | null;
  /** Resolves when the analytics store's upkeep run under way (retention, pruning, moves) is over. */
  upkeepIdle(): Promise<void>;
  /** Drains: readiness red, in-flight requests finish, clicks flushed, store closed. */
  close(): Promise<void>;
}

export interface RuntimeOptions {
  logger?: Logger;
  /** Test hook: replaces the click recorder; it may hand clicks to the processor itself. */
  clicks?: (processor: ClickProcessor) => ClickRecorder;
  defaultMetrics?: boolean;
  /** How changes reach the other processes when there is no Redis (e.g. cluster workers). */
  invalidation?: InvalidationBus;
  /** How stored clicks reach the other processes' event streams when there is no Redis (cluster workers). */
  liveClicks?: LiveClickFeed;
  /** Test hook: heartbeat and limits of the event streams. */
  eventStreams?: Partial<EventStreamOptions>;
}

export async function createRuntime(config: Config, options: RuntimeOptions = {}): Promise<Runtime> {
  const logger = options.logger ?? createLogger(config);
  const db = await openDatabase({
    url: config.database.url,
    dataDir: config.database.dataDir,
    poolSize: config.database.poolSize,
    // Logged here, once per change, rather than once per request it turns away.
    resilience: { ...config.database, onStateChange: (state) => logger[state === 'closed' ? 'info' : 'warn']({ state }, `database circuit ${state}`) },
  });
  const replicas: Database[] = [];
  try {
    await waitForDatabase(db, { timeoutMs: 30_000, onWait: (error) => logger.warn({ err: error }, 'waiting for the database') });
    const applied = await prepareStore(db, config, logger);
    if (applied.length > 0) logger.info({ applied }, 'migrations applied');

    const linkRepository = new LinkRepository(db);
    const keys = new KeyService(new KeyRepository(db), (error) => logger.warn({ err: error }, 'api key bookkeeping failed'));
    const createdAdmin = await keys.ensureAdmin(config.adminApiKey);

    const codes = await codeAllocator(db, config.codes);
    // Redis, when configured, is the shared cache tier, the invalidation channel and the
    // rate-limit counters; without it each of those stays in the process.
    const redis =
      config.redis.url === undefined
        ? null
        : new RedisConnection({
            url: config.redis.url,
            commandTimeoutMs: config.redis.commandTimeoutMs,
            breakerThreshold: config.redis.breakerThreshold,
            breakerCooldownMs: config.redis.breakerCooldownMs,
            logger,
          });
    const redisKeys = cacheKeys(config.redis.keyPrefix);
    const redisTier =
      redis === null
        ? null
        : new RedisLinkTier(redis, {
            keys: redisKeys,
            ttlMs: config.cache.redisTtlSeconds * 1000,
            negativeTtlMs: config.cache.negativeTtlSeconds * 1000,
            onError: (error, operation) => logger.debug({ err: error, operation }, 'redis cache operation failed'),
          });
    const bus: InvalidationBus = redisTier ?? options.invalidation ?? new LocalInvalidationBus();
    // Read replicas answer the redirect path's lookups; writes and the API stay on the primary.
    const router =
      config.database.replicaUrls.length === 0
        ? null
        : await ReplicaRouter.create(db, await openReplicas(config, replicas), {
            onReplicaError: (error, replica) => logger.warn({ err: error, replica }, 'read replica failed; reading from the primary'),
          });
    // Misses that reach the primary together are read together. Replica reads stay one per
    // code: each code has its own WAL fence to check.
    const storeLookups = new BatchLoader<Link | null>({
      loadMany: async (codes) => {
        const found = new Map((await linkRepository.findByCodes(codes)).map((link) => [link.code, link]));
        return codes.map((code) => found.get(code) ?? null);
      },
      maxInFlight: db.kind === 'embedded' ? 1 : config.database.poolSize,
    });
    const cache = new LinkCache({
      load: (code) => (router === null ? storeLookups.load(code) : router.read(code, (from) => linkRepository.findByCode(code, from), (link) => link !== null)),
      ...(redisTier === null ? {} : { remote: redisTier }),
      bus,
      maxEntries: config.cache.maxEntries,
      ttlMs: config.cache.ttlSeconds * 1000,
    });
    bus.onMessage((message) => {
      router?.noteWrite(message.code, message.lsn);
      cache.drop(message.code);
    });
    // Messages may have been missed while the channel was down: forget every local copy.
    bus.onResync(() => cache.clear());
    const qrRenderer = new QrRenderer();
    const qrCodes = new QrCache({
      renderer: qrRenderer,
      textFor: (code) => shortUrlFor(config.baseUrl, code),
      maxBytes: QR_CACHE_MAX_BYTES,
      ...(redis === null ? {} : { redis: { connection: redis, keys: redisKeys, ttlMs: QR_REDIS_TTL_MS } }),
      onRemoteError: (error) => logger.debug({ err: error }, 'redis QR cache operation failed'),
    });
    const memoryLimiter = new MemoryRateLimiter();
    const rateLimiter: RateLimiter = redis === null ? memoryLimiter : new RedisRateLimiter(redis, memoryLimiter, redisKeys);
    const links = new LinkService(
      linkRepository,
      codes,
      cache,
      installationPolicy(config.destinations, config.baseUrl),
      undefined,
      // On PostgreSQL every change carries the WAL position, even on instances without
      // replicas: other instances (a redirect tier) may read from them.
      db.kind === 'embedded'
        ? undefined
        : async (codes) => {
            try {
              const lsn = await currentWalLsn(db);
              // This instance's own fence is set before the change is acknowledged; other
              // instances get it with the invalidation.
              for (const code of codes) router?.noteWrite(code, lsn);
              return lsn;
            } catch (error) {
              // The change is committed: it must be acknowledged and invalidated all the same.
              logger.warn({ err: error, codes: codes.slice(0, 10), count: codes.length }, 'could not read the WAL position after a change');
              return null;
            }
          },
    );

    // Sources are read at scrape time, so the recorder may be created after the registry.
    const metrics = new Metrics(
      {
        cacheStats: () => ({ ...cache.stats, entries: cache.size }),
        redisTierStats: () => redisTier?.stats ?? null,
        redisStats: () => (redis === null ? null : { ...redis.stats, state: redis.breaker.state }),
        replicaStats: () => router?.stats ?? null,
        clickBuffer: () => pipeline.recorder.buffered,
        dbPool: () => ({ ...db.poolStats(), max: db.kind === 'embedded' ? 1 : config.database.poolSize }),
        dbBreaker: () => db.breakerState?.() ?? null,
      },
      { defaultMetrics: options.defaultMetrics ?? true },
    );
    const liveClicks: LiveClickFeed =
      redis === null
        ? (options.liveClicks ?? new MemoryLiveClickFeed())
        : new RedisLiveClickFeed(redis, { keys: redisKeys, onError: (error, operation) => logger.debug({ err: error, operation }, 'redis live click feed operation failed') });
    const exportJobs = new ExportJobs(db, { ttlHours: config.exports.ttlHours });
    const exportRunner =
      config.role === 'worker' || config.role === 'all'
        ? new ExportJobRunner({ jobs: exportJobs, db, includeIp: config.clicks.storeRawIp, logger })
        : null;
    const pipeline = createClickPipeline({
      config,
      db,
      logger,
      metrics,
      live: liveClicks,
      ...(options.clicks === undefined ? {} : { recorder: options.clicks }),
    });
    const clicks = pipeline.recorder;

    let draining = false;
    const deps: AppDeps = {
      config,
      logger,
      links,
      keys,
      sessions: new SessionService(new SessionRepository(db), keys, config.sessions.ttlHours * 3_600_000, (error) => logger.warn({ err: error }, 'session bookkeeping failed')),
      clicks,
      rateLimiter,
      notFoundThrottle: new NotFoundThrottle(
        rateLimiter,
        config.rateLimits.notFoundPerMinute,
        Date.now,
        redis === null ? undefined : new RedisThrottleBroadcast(redis, redisKeys.throttleChannel),
      ),
      idempotency: new IdempotencyStore(db, config.idempotencyClaimLeaseSeconds),
      qrCodes,
      metrics,
      readiness: {
        get draining() {
          return draining;
        },
        check: () => db.ping(),
      },
      analytics: {
        service: new AnalyticsService(db, { syncMaxRows: config.exports.syncMaxRows, includeIp: config.clicks.storeRawIp }),
        liveClicks,
        exports: exportJobs,
        events: { ...DEFAULT_EVENT_STREAM_OPTIONS, ...config.events, ...options.eventStreams },
      },
    };
    const built = await buildApp(deps);
    await pipeline.start();
    exportRunner?.start();

    let closing: Promise<void> | null = null;
    const close = (): Promise<void> =>
      (closing ??= (async () => {
        draining = true;
        // Load balancers that poll /readyz (Kubernetes) stop sending new requests during
        // this delay; the instance keeps serving until then.
        if (config.shutdownDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, config.shutdownDelayMs));
        await built.app.close();
        logger.info({ clicksBuffered: clicks.buffered }, 'drain: requests finished');
        await pipeline.close();
        logger.info('drain: clicks flushed');
        await qrRenderer.close();
        // A job under way goes back to the queue for another worker.
        await exportRunner?.close();
        await liveClicks.close();
        await bus.close();
        await redis?.close();
        await Promise.all(replicas.map((replica) => replica.close()));
        await db.close();
      })());

    return { config, db, logger, deps, built, createdAdmin, liveClicks, exportRunner, upkeepIdle: () => pipeline.upkeepIdle(), close };
  } catch (error) {
    await Promise.all(replicas.map((replica) => replica.close().catch(() => undefined)));
    await db.close().catch(() => undefined);
    throw error;
  }
}

/** Opens each replica into `into` (so a failure part-way still closes the ones opened). */
async function openReplicas(config: Config, into: Database[]): Promise<Database[]> {
  for (const url of config.database.replicaUrls) {
    into.push(await openDatabase({ url, dataDir: config.database.dataDir, poolSize: config.database.poolSize, applicationName: 'shunt-replica-reader', resilience: config.database }));
  }
  return into;
}
