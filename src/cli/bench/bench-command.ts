/** `shunt bench <base-url>`: a load test of a running instance's redirects, with its own /metrics view. */
import autocannon from 'autocannon';
import { parseArgs } from 'node:util';
import type { Config } from '../../config/config.js';
import { integerOption, numberOption, out, UsageError } from '../cli-io.js';
import { parsePrometheus, serverView, type Scrape, type ServerView } from './prometheus-diff.js';

export const BENCH_USAGE = `Usage: shunt bench <base-url> [options]

Drives redirects of a running Shunt at full speed (or at --rate) with autocannon and prints
throughput, latency percentiles and errors as the client saw them, next to the instance's
own /metrics view of the same interval.

Options:
  --codes a,b,c        short codes to request (default: create --links links first)
  --links N            links to create through the API when no --codes (default 100)
  --api-key KEY        the key that creates them (default: ADMIN_API_KEY)
  --duration S         seconds of load (default 10)
  --connections N      concurrent connections (default 50)
  --rate R             requests per second in all (default: as fast as it answers)
  --json               the result as JSON (\`shunt capacity --bench FILE\` reads it)
`;

export interface BenchResult {
  target: string;
  durationSeconds: number;
  connections: number;
  rate: number | null;
  codes: number;
  throughput: { requests: number; requestsPerSecond: number };
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number };
  /** Connection errors and timeouts, and answers that were neither 2xx nor 3xx. */
  errors: { errors: number; timeouts: number; non2xx3xx: number };
  /** The instance's own /metrics over the same interval (the first scrape counts as one 200); null when it has none. */
  server: ServerView | null;
}

async function scrape(base: URL): Promise<Scrape | null> {
  try {
    const response = await fetch(new URL('/metrics', base));
    return response.ok ? parsePrometheus(await response.text()) : null;
  } catch {
    return null;
  }
}

async function createLinks(base: URL, key: string, count: number): Promise<string[]> {
  const codes: string[] = [];
  const tag = `bench-${Date.now().toString(36)}`;
  for (let i = 0; i < count; i += 1) {
    let response: Response;
    try {
      response = await fetch(new URL('/api/v1/links', base), {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ url: `https://example.com/${tag}/${i}`, tags: ['bench'] }),
      });
    } catch (error) {
      const cause = (error as { cause?: { message?: string } }).cause?.message ?? (error as Error).message;
      throw new UsageError(`cannot reach ${base.origin}: ${cause}`);
    }
    const body = (await response.json().catch(() => ({}))) as { code?: string; detail?: string };
    if (response.status !== 201 || typeof body.code !== 'string') {
      throw new UsageError(`creating links at ${base.origin} failed: ${response.status} ${body.detail ?? ''}`.trim());
    }
    codes.push(body.code);
  }
  return codes;
}

export async function benchCommand(config: Config, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      codes: { type: 'string' }, links: { type: 'string' }, 'api-key': { type: 'string' }, duration: { type: 'string' },
      connections: { type: 'string' }, rate: { type: 'string' }, json: { type: 'boolean', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  const [target, ...extra] = positionals;
  if (target === undefined || extra.length > 0) throw new UsageError('bench needs exactly one base URL');
  let base: URL;
  try {
    base = new URL(target);
  } catch {
    throw new UsageError(`"${target}" is not a URL`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new UsageError(`"${target}" is not an http(s) URL`);
  const duration = integerOption('duration', values.duration, 10, 1, 86_400);
  const connections = integerOption('connections', values.connections, 50, 1, 10_000);
  const rate = values.rate === undefined ? null : numberOption('rate', values.rate, 0, 1, 10_000_000);
  let codes: string[];
  if (values.codes !== undefined) {
    codes = values.codes.split(',').map((code) => code.trim()).filter((code) => code !== '');
    if (codes.length === 0) throw new UsageError('--codes lists no code');
  } else {
    const key = values['api-key'] ?? config.adminApiKey;
    if (key === undefined) throw new UsageError('give --codes, or --api-key (or ADMIN_API_KEY) to create links');
    codes = await createLinks(base, key, integerOption('links', values.links, 100, 1, 100_000));
  }

  const before = await scrape(base);
  let next = 0;
  const result = await autocannon({
    url: base.origin,
    connections,
    duration,
    ...(rate === null ? {} : { overallRate: rate }),
    // Codes in turn, so every link is asked for about as often.
    requests: [{ setupRequest: (request) => ({ ...request, path: `${base.pathname.replace(/\/$/, '')}/${codes[next++ % codes.length] ?? ''}` }) }],
  });
  const after = await scrape(base);

  const bench: BenchResult = {
    target: base.origin,
    durationSeconds: duration,
    connections,
    rate,
    codes: codes.length,
    throughput: { requests: result.requests.total, requestsPerSecond: Math.round(result.requests.average) },
    latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, p999: result.latency.p99_9, max: result.latency.max },
    errors: { errors: result.errors, timeouts: result.timeouts, non2xx3xx: result.non2xx - (result['3xx'] ?? 0) },
    server: before === null || after === null ? null : serverView(before, after),
  };
  if (values.json) out(JSON.stringify(bench));
  else printBench(bench);
  return 0;
}

function printBench(b: BenchResult): void {
  const ms = (value: number | null): string => (value === null ? 'n/a' : `${value.toFixed(value < 10 ? 2 : 1)} ms`);
  out(`${b.target}: ${b.codes} codes, ${b.connections} connections, ${b.durationSeconds} s${b.rate === null ? ', full speed' : `, ${b.rate} req/s asked`}`);
  out(`client: ${b.throughput.requests.toLocaleString('en-US')} requests, ${b.throughput.requestsPerSecond.toLocaleString('en-US')} req/s`);
  out(`  latency p50 ${ms(b.latencyMs.p50)}, p90 ${ms(b.latencyMs.p90)}, p99 ${ms(b.latencyMs.p99)}, p99.9 ${ms(b.latencyMs.p999)}, max ${ms(b.latencyMs.max)}`);
  out(`  errors ${b.errors.errors}, timeouts ${b.errors.timeouts}, answers neither 2xx nor 3xx ${b.errors.non2xx3xx}`);
  if (b.server === null) {
    out('server: no /metrics view (the instance did not answer /metrics)');
    return;
  }
  const s = b.server;
  const statuses = Object.entries(s.byStatus).map(([status, n]) => `${status}: ${n.toLocaleString('en-US')}`).join(', ');
  out(`server (/metrics, same interval): ${s.requests.toLocaleString('en-US')} requests (${statuses}), mean ${ms(s.meanLatencyMs)}`);
  out(`  latency from histogram buckets p50 ${ms(s.latencyMs.p50)}, p90 ${ms(s.latencyMs.p90)}, p99 ${ms(s.latencyMs.p99)}, p99.9 ${ms(s.latencyMs.p999)}`);
}
