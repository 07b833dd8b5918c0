/** Prometheus metrics. One registry per app instance, so tests can build many apps. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface MetricSources {
  cacheStats: () => { hits: number; misses: number; loads: number; refreshes: number; entries: number };
  /** Null when there is no Redis tier. */
  redisTierStats: () => { hits: number; misses: number; errors: number; pendingInvalidations: number; droppedInvalidations: number } | null;
  redisStats: () => { failures: number; shortCircuited: number; state: 'closed' | 'open' | 'half-open' } | null;
  /** Null without read replicas. */
  replicaStats: () => { replicaReads: number; primaryReads: number; fencedReads: number } | null;
  clickBuffer: () => number;
  dbPool: () => { total: number; idle: number; waiting: number; max: number };
  /** Null for the embedded store, which has no circuit. */
  dbBreaker: () => 'closed' | 'open' | 'half-open' | null;
}

/**
 * prom-client's default gauges that end in `_total`, a suffix Prometheus keeps for counters
 * (`promtool check metrics` flags them). Each has a sibling broken down by `type` whose sum
 * is the same figure, so dropping them loses nothing.
 */
const MISNAMED_DEFAULT_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

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
    if (options.defaultMetrics) {
      collectDefaultMetrics({ register: this.registry, prefix: 'shunt_' });
      for (const name of MISNAMED_DEFAULT_GAUGES) this.registry.removeSingleMetric(`shunt_${name}`);
    }
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
        const redis = sources.redisTierStats();
        this.reset();
        this.inc({ tier: 'memory', result: 'hit' }, stats.hits);
        this.inc({ tier: 'memory', result: 'miss' }, stats.misses);
        if (redis !== null) {
          this.inc({ tier: 'redis', result: 'hit' }, redis.hits);
          this.inc({ tier: 'redis', result: 'miss' }, redis.misses);
          this.inc({ tier: 'redis', result: 'error' }, redis.errors);
        }
        // The store is the last tier: every lookup that reaches it is answered there.
        this.inc({ tier: 'store', result: 'hit' }, stats.loads);
      },
    });
    new Counter({
      name: 'shunt_cache_refreshes_total',
      help: 'Background refreshes of in-process entries read near the end of their life',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(sources.cacheStats().refreshes);
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
        const redis = sources.redisTierStats();
        if (redis !== null) {
          const asked = redis.hits + redis.misses + redis.errors;
          this.set({ tier: 'redis' }, asked === 0 ? 0 : redis.hits / asked);
        }
      },
    });
    // Only with Redis: an unlabelled gauge always has a sample, and a 0 here would read as an
    // open circuit on an instance that has no Redis at all.
    if (sources.redisStats() !== null) new Gauge({
      name: 'shunt_redis_up',
      help: 'Redis circuit: 1 closed (in use), 0.5 probing, 0 open (falling back)',
      registers: [this.registry],
      collect() {
        const redis = sources.redisStats();
        if (redis !== null) this.set(redis.state === 'closed' ? 1 : redis.state === 'half-open' ? 0.5 : 0);
      },
    });
    new Counter({
      name: 'shunt_redis_failures_total',
      help: 'Redis commands that failed or timed out, and calls skipped while the circuit was open',
      labelNames: ['kind'],
      registers: [this.registry],
      collect() {
        const redis = sources.redisStats();
        this.reset();
        if (redis === null) return;
        this.inc({ kind: 'failed' }, redis.failures);
        this.inc({ kind: 'short_circuited' }, redis.shortCircuited);
      },
    });
    new Counter({
      name: 'shunt_link_reads_total',
      help: 'Link lookups of the redirect path by where they were answered, with read replicas configured',
      labelNames: ['target'],
      registers: [this.registry],
      collect() {
        const stats = sources.replicaStats();
        this.reset();
        if (stats === null) return;
        this.inc({ target: 'replica' }, stats.replicaReads);
        this.inc({ target: 'primary' }, stats.primaryReads);
        this.inc({ target: 'fence_checked' }, stats.fencedReads);
      },
    });
    new Gauge({
      name: 'shunt_cache_pending_invalidations',
      help: 'Invalidations waiting for Redis to come back',
      registers: [this.registry],
      collect() {
        this.set(sources.redisTierStats()?.pendingInvalidations ?? 0);
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
      name: 'shunt_database_up',
      help: 'Database circuit: 1 closed (in use), 0.5 probing, 0 open (requests needing the database answer 503)',
      registers: [this.registry],
      collect() {
        const state = sources.dbBreaker();
        if (state !== null) this.set(state === 'closed' ? 1 : state === 'half-open' ? 0.5 : 0);
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
    new Gauge({
      name: 'shunt_db_pool_max_connections',
      help: 'Connections the database pool may open at most',
      registers: [this.registry],
      collect() {
        this.set(sources.dbPool().max);
      },
    });
  }
}
