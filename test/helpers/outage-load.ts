/**
 * Drives a Shunt deployment while a test breaks its database: cached redirects, creates
 * and the clicks they make, with every answer checked against what an outage may bring.
 * A redirect of a cached link must always be 302; a create is 201, or 503 problem+json
 * with Retry-After answered within 1 s; nothing else is allowed (no 500, no hang).
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

const BROWSER = 'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0';

export interface OutageLoadTargets {
  /** Instances that serve redirects, and the cached codes to ask them for. */
  redirects: readonly string[];
  codes: readonly string[];
  /** Instances that serve the API, and the key to create with. */
  api: readonly string[];
  apiKey: string;
}

export interface OutageLoadResult {
  redirectsServed: number;
  redirectFailures: string[];
  redirectP99Ms: number;
  created: number;
  unavailable: number;
  createFailures: string[];
  /** performance.now() at which each successful create was sent, to time the recovery. */
  createdAt: number[];
}

export class OutageLoad {
  private stopped = false;
  private readonly latencies: number[] = [];
  readonly result: OutageLoadResult = { redirectsServed: 0, redirectFailures: [], redirectP99Ms: 0, created: 0, unavailable: 0, createFailures: [], createdAt: [] };
  private readonly lanes: Promise<void>[] = [];
  private serial = 0;

  constructor(private readonly targets: OutageLoadTargets, lanes: { redirect: number; create: number }) {
    for (let i = 0; i < lanes.redirect && targets.redirects.length > 0; i += 1) this.lanes.push(this.redirectLane(i));
    for (let i = 0; i < lanes.create && targets.api.length > 0; i += 1) this.lanes.push(this.createLane(i));
  }

  async stop(): Promise<OutageLoadResult> {
    this.stopped = true;
    await Promise.all(this.lanes);
    const sorted = [...this.latencies].sort((a, b) => a - b);
    this.result.redirectP99Ms = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0;
    return this.result;
  }

  private async redirectLane(lane: number): Promise<void> {
    const { redirects, codes } = this.targets;
    for (let n = lane; !this.stopped; n += 1) {
      const base = redirects[n % redirects.length] ?? '';
      const code = codes[n % codes.length] ?? '';
      const started = performance.now();
      try {
        const response = await fetch(`${base}/${code}`, { redirect: 'manual', headers: { 'user-agent': BROWSER }, signal: AbortSignal.timeout(5000) });
        await response.arrayBuffer();
        this.latencies.push(performance.now() - started);
        if (response.status === 302) this.result.redirectsServed += 1;
        else this.result.redirectFailures.push(`${base}/${code}: ${response.status}`);
      } catch (error) {
        this.result.redirectFailures.push(`${base}/${code}: ${String(error)}`);
        await sleep(50);
      }
    }
  }

  private async createLane(lane: number): Promise<void> {
    const { api, apiKey } = this.targets;
    for (let n = lane; !this.stopped; n += 1) {
      const base = api[n % api.length] ?? '';
      this.serial += 1;
      const started = performance.now();
      try {
        const response = await fetch(`${base}/api/v1/links`, {
          method: 'POST',
          headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ url: `https://example.com/outage/${lane}/${this.serial}` }),
          signal: AbortSignal.timeout(5000),
        });
        const body = await response.text();
        const took = performance.now() - started;
        if (response.status === 201) {
          this.result.created += 1;
          this.result.createdAt.push(started);
        } else if (response.status === 503 && took <= 1000 && response.headers.get('retry-after') !== null && response.headers.get('content-type')?.startsWith('application/problem+json') === true) {
          this.result.unavailable += 1;
          // A client honouring Retry-After would wait longer; a short pause keeps the lane probing.
          await sleep(100);
        } else {
          this.result.createFailures.push(`${base}: ${response.status} in ${Math.round(took)} ms, Retry-After ${response.headers.get('retry-after')}: ${body.slice(0, 200)}`);
          await sleep(100);
        }
      } catch (error) {
        this.result.createFailures.push(`${base}: ${String(error)}`);
        await sleep(100);
      }
    }
  }
}

/** Environment of a Shunt process under an outage test: no rate limits, links cached for an hour, quick click flushes. */
export function outageEnv(databaseUrl: string, adminKey: string): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    ADMIN_API_KEY: adminKey,
    NODE_ENV: 'production',
    WORKERS: '1',
    LOG_LEVEL: 'fatal',
    RATE_LIMIT_IP_PER_MINUTE: '10000000',
    RATE_LIMIT_KEY_PER_MINUTE: '10000000',
    CACHE_TTL_SECONDS: '3600',
    CLICK_FLUSH_INTERVAL_MS: '100',
  };
}

/** Creates `count` links through the API; their codes. */
export async function createLinks(base: string, apiKey: string, count: number, path: string): Promise<string[]> {
  const codes: string[] = [];
  for (let i = 0; i < count; i += 1) {
    const response = await fetch(`${base}/api/v1/links`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: `https://example.com/${path}/${i}` }),
    });
    const body = await response.text();
    if (response.status !== 201) throw new Error(`create answered ${response.status}: ${body}`);
    codes.push((JSON.parse(body) as { code: string }).code);
  }
  return codes;
}

/** Raw click events and the daily rollup's total: equal to the redirects served when nothing was lost or doubled. */
export async function storedClicks(sql: { query: (text: string) => Promise<{ rows: unknown[] }> }): Promise<{ raw: number; rollup: number }> {
  const result = await sql.query(
    `SELECT (SELECT count(*)::int FROM click_events) AS raw,
            (SELECT coalesce(sum(human + bot), 0)::int FROM link_clicks_day) AS rollup`,
  );
  return (result.rows[0] as { raw: number; rollup: number } | undefined) ?? { raw: -1, rollup: -1 };
}
