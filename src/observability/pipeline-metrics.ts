/**
 * Metrics of the click pipeline, on the app's registry: the producer side (publishes,
 * failures, the spool), the broker queue as a worker sees it, and the consumer side
 * (events stored, duplicates skipped, dead letters, and the lag from click to commit).
 * Transport counters are read from the transports' own stats at scrape time.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface PublisherStats {
  connected: boolean;
  blocked: boolean;
  published: number;
  publishFailures: number;
  spooledEvents: number;
  spoolBytes: number;
  spoolMaxBytes: number;
  droppedEvents: number;
}

export interface ConsumerStats {
  connected: boolean;
  consumedEvents: number;
  deadLettered: number;
  handleFailures: number;
  /** Messages ready in the broker queue at the last check; null before the first. */
  queueDepth: number | null;
}

export interface PipelineStatsSource {
  publisher: () => PublisherStats | null;
  consumer: () => ConsumerStats | null;
}

export class PipelineMetrics {
  readonly stored: Counter;
  readonly duplicates: Counter;
  readonly lag: Histogram;

  constructor(registry: Registry, source: PipelineStatsSource) {
    const registers = [registry];
    this.stored = new Counter({ name: 'shunt_clicks_stored_total', help: 'Click events stored and counted in the rollups', registers });
    this.duplicates = new Counter({
      name: 'shunt_click_duplicates_total',
      help: 'Click events delivered again and skipped because they were already stored',
      registers,
    });
    this.lag = new Histogram({
      name: 'shunt_click_event_lag_seconds',
      help: 'Time from a click to the commit that stored it',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300, 3600],
      registers,
    });
    new Gauge({
      name: 'shunt_click_queue_depth',
      help: 'Click messages (batches of events) ready in the broker queue, as last seen by this worker',
      registers,
      collect() {
        const depth = source.consumer()?.queueDepth;
        if (depth !== undefined && depth !== null) this.set(depth);
      },
    });
    new Gauge({
      name: 'shunt_click_spool_bytes',
      help: 'Size of the on-disk spool of click batches waiting for the broker or the store',
      registers,
      collect() {
        this.set(source.publisher()?.spoolBytes ?? 0);
      },
    });
    new Gauge({
      name: 'shunt_click_spool_max_bytes',
      help: 'Bound of the on-disk spool (CLICKS_SPOOL_MAX_BYTES): past it, click batches are dropped',
      registers,
      collect() {
        const publisher = source.publisher();
        if (publisher !== null) this.set(publisher.spoolMaxBytes);
      },
    });
    new Gauge({
      name: 'shunt_click_spool_events',
      help: 'Click events in the on-disk spool, waiting for the broker or the store',
      registers,
      collect() {
        this.set(source.publisher()?.spooledEvents ?? 0);
      },
    });
    new Gauge({
      name: 'shunt_broker_connected',
      help: 'Connection to RabbitMQ by side: 1 connected (and, for the publisher, not blocked), 0 not',
      labelNames: ['side'],
      registers,
      collect() {
        const publisher = source.publisher();
        const consumer = source.consumer();
        if (publisher !== null) this.set({ side: 'publisher' }, publisher.connected && !publisher.blocked ? 1 : 0);
        if (consumer !== null) this.set({ side: 'consumer' }, consumer.connected ? 1 : 0);
      },
    });
    new Counter({
      name: 'shunt_clicks_published_total',
      help: 'Click events published to the broker and confirmed by it',
      registers,
      collect() {
        this.reset();
        this.inc(source.publisher()?.published ?? 0);
      },
    });
    new Counter({
      name: 'shunt_click_publish_failures_total',
      help: 'Click batches the broker did not take (down, blocked, nacked or too slow); they went to the spool',
      registers,
      collect() {
        this.reset();
        this.inc(source.publisher()?.publishFailures ?? 0);
      },
    });
    new Counter({
      name: 'shunt_click_spool_dropped_total',
      help: 'Click events dropped because the spool was full (or the disk failed) while the broker or the store was unreachable',
      registers,
      collect() {
        this.reset();
        this.inc(source.publisher()?.droppedEvents ?? 0);
      },
    });
    new Counter({
      name: 'shunt_clicks_consumed_total',
      help: 'Click events taken from the broker by this worker and committed',
      registers,
      collect() {
        this.reset();
        this.inc(source.consumer()?.consumedEvents ?? 0);
      },
    });
    new Counter({
      name: 'shunt_clicks_dead_lettered_total',
      help: 'Click events or messages the worker could not read, moved to the dead-letter queue',
      registers,
      collect() {
        this.reset();
        this.inc(source.consumer()?.deadLettered ?? 0);
      },
    });
  }
}
