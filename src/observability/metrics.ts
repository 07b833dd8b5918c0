/** Prometheus metrics. One registry per app instance, so tests can build many apps. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface MetricSources {
  cacheStats: () => { hits: number; misses: number; entries: number };
  clickBuffer: () => number;
  dbPool: () => { total: number; idle: number; waiting: number };
}

export class Metrics {
  observeRequest(method: string, route: string, status: number, seconds: number): void {
    const key = `${method} ${route} ${status}`;
    let series = this.durationSeries.get(key);
    if (series === undefined) {
      series = this.requestDuration.labels({ method, route, status: String(status) });
      this.durationSeries.set(key, series);
    }
    series.observe(seconds);
  }

  readonly registry = new Registry();
  readonly requestDuration: Histogram<'method' | 'route' | 'status'>;
  readonly clicksDropped: Counter<'reason'>;
  /** Labelled children by "method route status": label hashing once per series, not per request. */
  private readonly durationSeries = new Map<string, { observe(value: number): void }>();
  readonly clickWriteFailures: Counter;

  constructor(sources: MetricSources, options: { defaultMetrics: boolean }) {
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'shunt_' });
    this.requestDuration = new Histogram({
      name: 'shunt_http_request_duration_seconds',
      help: 'HTTP request latency by route and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [this.registry],
    });
    this.clicksDropped = new Counter({
      name: 'shunt_clicks_dropped_total',
      help: 'Click events dropped: overflow (buffer full while the store was unreachable) or refused (bad data)',
      labelNames: ['reason'],
      registers: [this.registry],
    });
    // Zero samples for every reason, so dashboards and alerts see the series before a drop.
    for (const reason of ['overflow', 'refused']) this.clicksDropped.inc({ reason }, 0);
    this.clickWriteFailures = new Counter({
      name: 'shunt_click_write_failures_total',
      help: 'Failed attempts to write a batch of click events',
      registers: [this.registry],
    });
    new Counter({
      name: 'shunt_cache_requests_total',
      help: 'Link cache lookups by tier and result',
      labelNames: ['tier', 'result'],
      registers: [this.registry],
      collect() {
        const stats = sources.cacheStats();
        this.reset();
        this.inc({ tier: 'memory', result: 'hit' }, stats.hits);
        this.inc({ tier: 'memory', result: 'miss' }, stats.misses);
      },
    });
    new Gauge({
      name: 'shunt_cache_hit_ratio',
      help: 'Share of link lookups answered by each cache tier',
      labelNames: ['tier'],
      registers: [this.registry],
      collect() {
        const stats = sources.cacheStats();
        const total = stats.hits + stats.misses;
        this.set({ tier: 'memory' }, total === 0 ? 0 : stats.hits / total);
      },
    });
    new Gauge({
      name: 'shunt_cache_entries',
      help: 'Entries held by the in-process link cache',
      registers: [this.registry],
      collect() {
        this.set(sources.cacheStats().entries);
      },
    });
    new Gauge({
      name: 'shunt_click_events_buffered',
      help: 'Click events waiting to be written',
      registers: [this.registry],
      collect() {
        this.set(sources.clickBuffer());
      },
    });
    new Gauge({
      name: 'shunt_db_pool_connections',
      help: 'Database pool connections by state',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        const pool = sources.dbPool();
        this.set({ state: 'total' }, pool.total);
        this.set({ state: 'idle' }, pool.idle);
        this.set({ state: 'waiting' }, pool.waiting);
      },
    });
  }
}
