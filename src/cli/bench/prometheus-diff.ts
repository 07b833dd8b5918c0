/**
 * The instance's own view of a load test: /metrics scraped before and after, the request
 * counter and latency histogram diffed, and percentiles estimated from the diffed buckets
 * the way Prometheus's histogram_quantile does (linear within a bucket).
 */

/** Samples of one scrape: `name{labels}` → value. */
export type Scrape = Map<string, number>;

export function parsePrometheus(text: string): Scrape {
  const samples: Scrape = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?)\s+(\S+)/.exec(line);
    if (match?.[1] === undefined || match[2] === undefined) continue;
    const value = Number(match[2]);
    if (!Number.isNaN(value)) samples.set(match[1], value);
  }
  return samples;
}

function label(series: string, name: string): string | undefined {
  return new RegExp(`[{,]${name}="([^"]*)"`).exec(series)?.[1];
}

export interface ServerView {
  requests: number;
  /** Requests by status code. */
  byStatus: Record<string, number>;
  meanLatencyMs: number | null;
  latencyMs: { p50: number | null; p90: number | null; p99: number | null; p999: number | null };
}

/** Quantile q of a histogram given as cumulative counts per upper bound (seconds), in ms. */
export function histogramQuantile(q: number, buckets: readonly { le: number; count: number }[]): number | null {
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  const total = sorted.at(-1)?.count ?? 0;
  if (total === 0) return null;
  const rank = q * total;
  let previousLe = 0;
  let previousCount = 0;
  for (const bucket of sorted) {
    if (bucket.count >= rank) {
      // Above the highest finite bound nothing is known: the bound itself, as Prometheus answers.
      if (!Number.isFinite(bucket.le)) return previousLe * 1000;
      const inBucket = bucket.count - previousCount;
      const fraction = inBucket === 0 ? 0 : (rank - previousCount) / inBucket;
      return (previousLe + (bucket.le - previousLe) * fraction) * 1000;
    }
    previousLe = bucket.le;
    previousCount = bucket.count;
  }
  return previousLe * 1000;
}

/** What `histogram` saw between two scrapes, over every route and method. */
export function serverView(before: Scrape, after: Scrape, histogram = 'shunt_http_request_duration_seconds'): ServerView {
  const delta = (series: string): number => (after.get(series) ?? 0) - (before.get(series) ?? 0);
  let requests = 0;
  let sum = 0;
  const byStatus: Record<string, number> = {};
  const buckets = new Map<number, number>();
  for (const series of after.keys()) {
    if (series.startsWith(`${histogram}_count`)) {
      const count = delta(series);
      requests += count;
      const status = label(series, 'status') ?? 'unknown';
      if (count > 0) byStatus[status] = (byStatus[status] ?? 0) + count;
    } else if (series.startsWith(`${histogram}_sum`)) sum += delta(series);
    else if (series.startsWith(`${histogram}_bucket`)) {
      const le = label(series, 'le');
      if (le === undefined) continue;
      const bound = le === '+Inf' ? Infinity : Number(le);
      buckets.set(bound, (buckets.get(bound) ?? 0) + delta(series));
    }
  }
  const list = [...buckets].map(([le, count]) => ({ le, count }));
  return {
    requests,
    byStatus,
    meanLatencyMs: requests > 0 ? (sum / requests) * 1000 : null,
    latencyMs: {
      p50: histogramQuantile(0.5, list),
      p90: histogramQuantile(0.9, list),
      p99: histogramQuantile(0.99, list),
      p999: histogramQuantile(0.999, list),
    },
  };
}
