/** The /metrics diff of `shunt bench`: counts per status and percentiles from diffed buckets, by hand. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { histogramQuantile, parsePrometheus, serverView } from '../../src/cli/bench/prometheus-diff.js';

const H = 'shunt_http_request_duration_seconds';

function scrape(redirects: [number, number, number], notFound: number, sum: number): string {
  const [fast, medium, slow] = redirects;
  return [
    `# HELP ${H} HTTP request latency by route and status`,
    `# TYPE ${H} histogram`,
    `${H}_bucket{le="0.001",method="GET",route="/:code",status="302"} ${fast}`,
    `${H}_bucket{le="0.01",method="GET",route="/:code",status="302"} ${fast + medium}`,
    `${H}_bucket{le="+Inf",method="GET",route="/:code",status="302"} ${fast + medium + slow}`,
    `${H}_sum{method="GET",route="/:code",status="302"} ${sum}`,
    `${H}_count{method="GET",route="/:code",status="302"} ${fast + medium + slow}`,
    `${H}_bucket{le="0.001",method="GET",route="/:code",status="404"} ${notFound}`,
    `${H}_bucket{le="0.01",method="GET",route="/:code",status="404"} ${notFound}`,
    `${H}_bucket{le="+Inf",method="GET",route="/:code",status="404"} ${notFound}`,
    `${H}_sum{method="GET",route="/:code",status="404"} 0`,
    `${H}_count{method="GET",route="/:code",status="404"} ${notFound}`,
    'shunt_process_cpu_seconds_total 12.5',
    '',
  ].join('\n');
}

describe('bench /metrics view', () => {
  test('parses samples, skips comments', () => {
    const samples = parsePrometheus(scrape([1, 2, 3], 4, 0.5));
    assert.equal(samples.get('shunt_process_cpu_seconds_total'), 12.5);
    assert.equal(samples.get(`${H}_count{method="GET",route="/:code",status="404"}`), 4);
  });

  test('quantiles interpolate within a bucket, like histogram_quantile', () => {
    const buckets = [{ le: 0.001, count: 50 }, { le: 0.01, count: 100 }, { le: Infinity, count: 100 }];
    assert.equal(histogramQuantile(0.5, buckets), 1);
    // rank 75 is halfway through the second bucket: 1 ms + 9 ms × 0.5.
    assert.equal(Number(histogramQuantile(0.75, buckets)?.toFixed(9)), 5.5);
    assert.equal(histogramQuantile(0.5, []), null);
  });

  test('the interval between two scrapes: requests by status, mean, percentiles', () => {
    // Between the scrapes: 600 redirects under 1 ms, 300 more under 10 ms, 100 above; 10 not found.
    const view = serverView(parsePrometheus(scrape([100, 0, 0], 0, 0.05)), parsePrometheus(scrape([700, 300, 100], 10, 1.06)));
    assert.equal(view.requests, 1010);
    assert.deepEqual(view.byStatus, { '302': 1000, '404': 10 });
    assert.equal(Number(view.meanLatencyMs?.toFixed(3)), 1);
    // 610 of 1010 under 1 ms: p50 (rank 505) at 505/610 of the first bucket.
    assert.equal(Number(view.latencyMs.p50?.toFixed(4)), Number((505 / 610).toFixed(4)));
    // p90 at rank 909: 299 into the 300 of the second bucket.
    assert.equal(Number(view.latencyMs.p90?.toFixed(3)), Number((1 + 9 * (299 / 300)).toFixed(3)));
    // p99 lies above the last finite bound: that bound.
    assert.equal(view.latencyMs.p99, 10);
  });
});
