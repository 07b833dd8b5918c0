/**
 * Composes the click pipeline for a role (ADR 0007):
 * - instances that serve redirects get the recorder the redirect path hands clicks to: the
 *   broker publisher with AMQP_URL, otherwise a recorder that posts batches to the thread
 *   that stores them (the embedded store's, or on PostgreSQL a click writer thread);
 * - workers (ROLE=worker or all) consume from the broker and keep the analytics store
 *   (partitions, retention, compaction).
 * Both paths end in the same ClickProcessor. None of the click work runs on this (the HTTP)
 * thread where it can be avoided (ADR 0010): in the embedded default it runs in the store's
 * thread, on PostgreSQL without a broker in a click writer thread, and in ROLE=all on
 * PostgreSQL with a broker the consumer has a thread of its own.
 */
import type { Logger } from 'pino';
import type { ClickRecorder } from '../clicks/click-event.js';
import { NoClickRecorder } from '../clicks/no-click-recorder.js';
import type { Config } from '../config/config.js';
import { DatabaseVisitorSalts } from '../analytics/database-visitor-salts.js';
import { ClickEnricher } from '../analytics/enrich.js';
import type { LiveClickFeed } from '../live/live-click-feed.js';
import type { Metrics } from '../observability/metrics.js';
import { PipelineMetrics, type ConsumerStats, type PublisherStats } from '../observability/pipeline-metrics.js';
import { AnalyticsMaintenance } from '../analytics/analytics-maintenance.js';
import { IdempotencyStore } from '../http/idempotency-store.js';
import { AmqpClickConsumer } from '../pipeline/amqp-click-consumer.js';
import { AmqpClickPublisher } from '../pipeline/amqp-click-publisher.js';
import { ClickProcessor } from '../pipeline/click-processor.js';
import type { Database } from '../storage/database.js';
import { EmbeddedStore } from '../storage/embedded-store.js';
import { ThreadClickRecorder } from '../pipeline/thread-click-recorder.js';
import { ConsumerThread } from '../pipeline/consumer-thread-client.js';
import { ClickWriterChannel } from '../pipeline/click-writer-channel.js';
import { ThreadClickWriter } from '../pipeline/thread-click-writer.js';
import type { EnrichedClick } from '../analytics/enriched-click.js';

/**
 * Clicks out to the store's or the writer's thread at once; a spike (or a database outage)
 * beyond this waits in the disk spool. About 40 MB of events, and some seconds of work.
 */
const THREAD_MAX_IN_FLIGHT = 100_000;
/** Batches are stored one at a time by the writer thread: two connections cover a retry beside it. */
const CLICK_WRITER_POOL_SIZE = 2;

export interface ClickPipeline {
  /** Where the redirect path records clicks. */
  readonly recorder: ClickRecorder;
  /** Starts consuming and housekeeping, as the role asks. */
  start(): Promise<void>;
  /** Publishes or stores what is buffered, then stops consuming; the store stays open. */
  close(): Promise<void>;
  /** Resolves when the store's upkeep run under way (the first starts with `start`) is over. */
  upkeepIdle(): Promise<void>;
}

export interface ClickPipelineOptions {
  config: Config;
  db: Database;
  logger: Logger;
  metrics: Metrics;
  live: LiveClickFeed;
  /** Test hook: replaces the recorder the redirect path uses. */
  recorder?: (processor: ClickProcessor) => ClickRecorder;
}

export function createClickPipeline(options: ClickPipelineOptions): ClickPipeline {
  const { config, db, logger, metrics } = options;
  const consumes = config.role === 'all' || config.role === 'worker';
  const salts = new DatabaseVisitorSalts(db);
  const enricher = new ClickEnricher({ salts, storeRawIp: config.clicks.storeRawIp });
  let publisherStats: () => PublisherStats | null = () => null;
  let consumerStats: () => ConsumerStats | null = () => null;
  const pipelineMetrics = new PipelineMetrics(metrics.registry, {
    publisher: () => publisherStats(),
    consumer: () => consumerStats(),
  });
  const processor = new ClickProcessor({
    db,
    enricher,
    live: options.live,
    onStored: (result, lag) => {
      pipelineMetrics.stored.inc(result.inserted);
      pipelineMetrics.duplicates.inc(result.duplicates);
      for (const seconds of lag) pipelineMetrics.lag.observe(seconds);
    },
    onRetry: (error, attempt) => logger.warn({ err: error, attempt }, 'click batch lost a lock race; retrying'),
  });

  /** Counts and announces a batch stored on another thread. */
  const recordStored = (stored: readonly EnrichedClick[], counts: { inserted: number; duplicates: number }, lag: readonly number[]): void => {
    pipelineMetrics.stored.inc(counts.inserted);
    pipelineMetrics.duplicates.inc(counts.duplicates);
    for (const seconds of lag) pipelineMetrics.lag.observe(seconds);
    if (stored.length > 0) options.live.publish(stored);
  };

  // Without a broker this process stores the clicks it serves, so it keeps the store too.
  const keepsStore = consumes || config.amqp.url === undefined;
  const maintenance = keepsStore ? new AnalyticsMaintenance({ db, salts, retentionDays: config.clicks.retentionDays, deletedLinkRetentionDays: config.clicks.deletedLinkRetentionDays, idempotency: new IdempotencyStore(db), logger }) : null;

  const brokerUrl = config.amqp.url;
  const servesRedirects = config.role === 'all' || config.role === 'redirect';
  const publisher =
    options.recorder === undefined && config.clicks.enabled && brokerUrl !== undefined && servesRedirects
      ? new AmqpClickPublisher({
          url: brokerUrl,
          queue: config.amqp.queue,
          confirmTimeoutMs: config.amqp.confirmTimeoutMs,
          flushIntervalMs: config.clicks.flushIntervalMs,
          batchSize: config.clicks.batchSize,
          spoolDir: config.clicks.spoolDir,
          spoolMaxBytes: config.clicks.spoolMaxBytes,
          // Half the drain budget: what the broker has not confirmed by then is spooled.
          closeTimeoutMs: Math.floor(config.shutdownTimeoutMs / 2),
          logger,
        })
      : null;
  if (publisher !== null) publisherStats = () => ({ ...publisher.stats, spoolMaxBytes: config.clicks.spoolMaxBytes });
  // In ROLE=all on PostgreSQL the consumer and its writes get a thread (and a pool) of their
  // own, so they never hold up the redirects this process answers (ADR 0010).
  const consumerThread =
    config.role === 'all' && brokerUrl !== undefined && config.database.url !== undefined && options.recorder === undefined
      ? new ConsumerThread({
          data: {
            databaseUrl: config.database.url,
            poolSize: config.database.poolSize,
            logLevel: config.logLevel,
            storeRawIp: config.clicks.storeRawIp,
            amqp: { url: brokerUrl, queue: config.amqp.queue, prefetch: config.amqp.prefetch, confirmTimeoutMs: config.amqp.confirmTimeoutMs },
            worker: { batchSize: config.worker.batchSize, batchWaitMs: config.worker.batchWaitMs, concurrency: config.worker.concurrency },
            closeTimeoutMs: Math.floor(config.shutdownTimeoutMs / 2),
          },
          logger,
          onStored: recordStored,
          onWriteFailure: () => metrics.clickWriteFailures.inc(),
        })
      : null;
  if (consumerThread !== null) consumerStats = () => consumerThread.stats;
  // The embedded store with a broker: the consumer stays here (it only moves bytes), and
  // each batch is enriched and written in the store's thread before it is acknowledged.
  const storeThreadWriter =
    consumes && brokerUrl !== undefined && consumerThread === null && db instanceof EmbeddedStore && options.recorder === undefined
      ? new ThreadClickWriter(db, { storeRawIp: config.clicks.storeRawIp, onStored: recordStored, onRefused: (events) => metrics.clicksDropped.inc({ reason: 'refused' }, events), announce: () => options.live.wanted })
      : null;
  const consumer =
    consumes && brokerUrl !== undefined && consumerThread === null
      ? new AmqpClickConsumer({
          url: brokerUrl,
          queue: config.amqp.queue,
          prefetch: config.amqp.prefetch,
          batchSize: config.worker.batchSize,
          batchWaitMs: config.worker.batchWaitMs,
          concurrency: config.worker.concurrency,
          confirmTimeoutMs: config.amqp.confirmTimeoutMs,
          // While the database is away the worker holds its prefetch and consumes nothing
          // more; the bound is how soon after its return consumption resumes.
          retryBackoff: { minMs: 500, maxMs: 5000 },
          handle: async (events) => {
            try {
              if (storeThreadWriter !== null) await storeThreadWriter.write(events);
              else await processor.handle(events);
            } catch (error) {
              metrics.clickWriteFailures.inc();
              throw error;
            }
          },
          logger,
        })
      : null;
  if (consumer !== null) consumerStats = () => consumer.stats;
  if (config.role === 'worker' && brokerUrl === undefined) {
    logger.warn('ROLE=worker without AMQP_URL: there is no queue to consume; this worker only keeps the analytics store');
  }

  // Without a broker, the clicks this process serves are enriched and stored on a thread:
  // the embedded store's own, or on PostgreSQL a writer thread with a small pool of its own
  // (ADR 0010). Either way the HTTP thread only batches and posts.
  const storesOwnClicks = options.recorder === undefined && config.clicks.enabled && publisher === null && servesRedirects;
  const writerChannel =
    storesOwnClicks && !(db instanceof EmbeddedStore) && config.database.url !== undefined
      ? new ClickWriterChannel(
          {
            databaseUrl: config.database.url,
            poolSize: CLICK_WRITER_POOL_SIZE,
            resilience: {
              connectTimeoutMs: config.database.connectTimeoutMs,
              statementTimeoutMs: config.database.statementTimeoutMs,
              breakerThreshold: config.database.breakerThreshold,
              breakerCooldownMs: config.database.breakerCooldownMs,
            },
          },
          logger,
        )
      : null;
  const channel = !storesOwnClicks ? null : db instanceof EmbeddedStore ? db : writerChannel;
  const threadRecorder =
    channel === null
      ? null
      : new ThreadClickRecorder({
          channel,
          storeRawIp: config.clicks.storeRawIp,
          batchSize: config.worker.batchSize,
          flushIntervalMs: config.clicks.flushIntervalMs,
          maxInFlight: THREAD_MAX_IN_FLIGHT,
          spoolDir: config.clicks.spoolDir,
          spoolMaxBytes: config.clicks.spoolMaxBytes,
          closeTimeoutMs: Math.floor(config.shutdownTimeoutMs / 2),
          logger,
          onStored: recordStored,
          announce: () => options.live.wanted,
          onWriteFailure: () => metrics.clickWriteFailures.inc(),
          onRefused: (events) => metrics.clicksDropped.inc({ reason: 'refused' }, events),
        });
  if (threadRecorder !== null) publisherStats = () => threadRecorder.stats;

  const recorder: ClickRecorder = options.recorder?.(processor) ?? publisher ?? threadRecorder ?? new NoClickRecorder();

  return {
    recorder,
    upkeepIdle: () => maintenance?.idle() ?? Promise.resolve(),
    async start() {
      if (maintenance !== null) {
        // Partitions first, so the first batches land in their month and not the default partition.
        await maintenance.prepare().catch((error: unknown) => logger.warn({ err: error }, 'could not create click partitions yet'));
        maintenance.start();
      }
      consumer?.start();
      consumerThread?.start();
    },
    async close() {
      // Producer first: in ROLE=all the buffered clicks may still reach this process's consumer.
      await recorder.close();
      await writerChannel?.close();
      await consumer?.close();
      await consumerThread?.close();
      await maintenance?.close();
    },
  };
}
