/** `shunt capacity`: instances, cache memory and storage for now and each month ahead. */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { integerOption, numberOption, out, UsageError } from '../cli-io.js';
import { capacityPlan, type CapacityInputs, type CapacityPlan, type Limit } from './capacity-model.js';

/**
 * Defaults: figures measured on two cores; docs/capacity.md says where each comes from.
 * Measure your own and pass them.
 */
const DEFAULTS = {
  'redirect-rps': 26_000,
  'create-rps': 2_000,
  'worker-clicks': 24_000,
  'bytes-per-link': 398,
  'bytes-per-click': 246,
  'rollup-bytes-per-click': 513,
  'redis-bytes-per-link': 672,
  'peak-ratio': 3,
  growth: 20,
  'hot-share': 10,
  'cpu-ceiling': 60,
  'retention-days': 90,
  months: 24,
} as const;

export const CAPACITY_USAGE = `Usage: shunt capacity --redirects-per-month N --creates-per-month N [options]

A growth model: for now and each month ahead, the redirect and API instances, click
workers, Redis memory for the hot set and PostgreSQL storage the traffic needs, and the
month each current limit is hit. Method and formulas: docs/capacity.md.

Traffic today:
  --redirects-per-month N   redirects (clicks) a month
  --creates-per-month N     links created a month
  --links N                 links stored today (default 0)
  --peak-ratio R            peak-hour rate over the average (default ${DEFAULTS['peak-ratio']})
  --growth PCT              traffic growth a month, in percent (default ${DEFAULTS.growth})
  --hot-share PCT           share of all links cached in Redis (default ${DEFAULTS['hot-share']})
Targets:
  --cpu-ceiling PCT         CPU use not to exceed at peak (default ${DEFAULTS['cpu-ceiling']})
  --retention-days N        raw clicks kept; 0 forever (default ${DEFAULTS['retention-days']}); rollups are kept
  --months N                months ahead (default ${DEFAULTS.months})
Measured figures (defaults measured as docs/capacity.md describes):
  --bench FILE              a \`shunt bench --json\` result: its redirects/s per instance
  --redirect-rps N          redirects/s one redirect instance answers at full CPU (default ${DEFAULTS['redirect-rps']})
  --create-rps N            links/s one API instance creates (default ${DEFAULTS['create-rps']})
  --worker-clicks N         clicks/s one worker stores (default ${DEFAULTS['worker-clicks']})
  --bytes-per-link N        PostgreSQL bytes per link, indexes included (default ${DEFAULTS['bytes-per-link']})
  --bytes-per-click N       PostgreSQL bytes per raw click (default ${DEFAULTS['bytes-per-click']})
  --rollup-bytes-per-click N  PostgreSQL rollup bytes per click (default ${DEFAULTS['rollup-bytes-per-click']})
  --redis-bytes-per-link N  Redis bytes per cached link (default ${DEFAULTS['redis-bytes-per-link']})
Deployed today (for the month each limit is hit):
  --redirect-instances N  --api-instances N  --workers N   (default 1 each)
  --redis-memory BYTES      (default 1 GiB)      --postgres-storage BYTES   (default 100 GiB)
Output:
  --json                    the whole plan as JSON
`;

const GIB = 1024 ** 3;

const OPTIONS = {
  'redirects-per-month': { type: 'string' }, 'creates-per-month': { type: 'string' }, links: { type: 'string' },
  'peak-ratio': { type: 'string' }, growth: { type: 'string' }, 'hot-share': { type: 'string' },
  'cpu-ceiling': { type: 'string' }, 'retention-days': { type: 'string' }, months: { type: 'string' },
  bench: { type: 'string' }, 'redirect-rps': { type: 'string' }, 'create-rps': { type: 'string' }, 'worker-clicks': { type: 'string' },
  'bytes-per-link': { type: 'string' }, 'bytes-per-click': { type: 'string' }, 'rollup-bytes-per-click': { type: 'string' },
  'redis-bytes-per-link': { type: 'string' }, 'redirect-instances': { type: 'string' }, 'api-instances': { type: 'string' },
  workers: { type: 'string' }, 'redis-memory': { type: 'string' }, 'postgres-storage': { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

/** The redirects/s a `shunt bench --json` result measured. */
async function benchThroughput(path: string): Promise<number> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new UsageError(`--bench: cannot read ${path} as JSON: ${(error as Error).message}`);
  }
  const rps = (parsed as { throughput?: { requestsPerSecond?: unknown } }).throughput?.requestsPerSecond;
  if (typeof rps !== 'number' || !(rps > 0)) throw new UsageError(`--bench: ${path} is not a \`shunt bench --json\` result (no throughput.requestsPerSecond)`);
  return rps;
}

export async function capacityInputs(args: string[]): Promise<{ inputs: CapacityInputs; json: boolean }> {
  const { values: v, positionals } = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  if (positionals.length > 0) throw new UsageError(`capacity takes no arguments, got "${positionals.join(' ')}"`);
  if (v['redirects-per-month'] === undefined || v['creates-per-month'] === undefined) {
    throw new UsageError('capacity needs --redirects-per-month and --creates-per-month');
  }
  const num = (name: keyof typeof OPTIONS, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number =>
    numberOption(name, v[name] as string | undefined, fallback, min, max);
  const measuredRps = v.bench === undefined ? null : await benchThroughput(v.bench);
  if (measuredRps !== null && v['redirect-rps'] !== undefined) throw new UsageError('give --bench or --redirect-rps, not both');
  const inputs: CapacityInputs = {
    redirectsPerSecondPerInstance: measuredRps ?? num('redirect-rps', DEFAULTS['redirect-rps'], 1),
    createsPerSecondPerInstance: num('create-rps', DEFAULTS['create-rps'], 1),
    clicksPerSecondPerWorker: num('worker-clicks', DEFAULTS['worker-clicks'], 1),
    bytesPerLink: num('bytes-per-link', DEFAULTS['bytes-per-link']),
    bytesPerRawClick: num('bytes-per-click', DEFAULTS['bytes-per-click']),
    rollupBytesPerClick: num('rollup-bytes-per-click', DEFAULTS['rollup-bytes-per-click']),
    redisBytesPerLink: num('redis-bytes-per-link', DEFAULTS['redis-bytes-per-link']),
    redirectsPerMonth: num('redirects-per-month', 0),
    createsPerMonth: num('creates-per-month', 0),
    linksToday: num('links', 0),
    peakToAverage: num('peak-ratio', DEFAULTS['peak-ratio'], 1, 1000),
    monthlyGrowth: num('growth', DEFAULTS.growth, -99, 1000) / 100,
    hotLinkShare: num('hot-share', DEFAULTS['hot-share'], 0, 100) / 100,
    cpuCeiling: num('cpu-ceiling', DEFAULTS['cpu-ceiling'], 1, 100) / 100,
    retentionDays: integerOption('retention-days', v['retention-days'], DEFAULTS['retention-days'], 0, 100_000),
    months: integerOption('months', v.months, DEFAULTS.months, 0, 240),
    current: {
      redirectInstances: integerOption('redirect-instances', v['redirect-instances'], 1, 1, 1_000_000),
      apiInstances: integerOption('api-instances', v['api-instances'], 1, 1, 1_000_000),
      workers: integerOption('workers', v.workers, 1, 1, 1_000_000),
      redisBytes: num('redis-memory', GIB, 1),
      postgresBytes: num('postgres-storage', 100 * GIB, 1),
    },
  };
  return { inputs, json: v.json };
}

/** Binary units, three significant figures. */
export function bytes(value: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let n = value;
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit += 1;
  }
  return `${n >= 100 || unit === 0 ? Math.round(n) : n.toPrecision(3)} ${units[unit] ?? ''}`;
}

const LIMIT_NAMES: Record<Limit, string> = {
  redirectInstances: 'redirect instances',
  apiInstances: 'API instances',
  workers: 'click workers',
  redisBytes: 'Redis memory',
  postgresBytes: 'PostgreSQL storage',
};

export function capacityTable(plan: CapacityPlan): string[] {
  const header = ['month', 'redirects/mo', 'peak rps', 'links', 'redirect', 'api', 'workers', 'redis', 'pg links', 'pg raw clicks', 'pg rollups', 'pg total'];
  const rows = plan.months.map((m) => [
    String(m.month),
    Math.round(m.redirectsPerMonth).toExponential(2),
    Math.round(m.peakRedirectsPerSecond).toLocaleString('en-US'),
    Math.round(m.links).toExponential(2),
    String(m.redirectInstances),
    String(m.apiInstances),
    String(m.workers),
    bytes(m.redisBytes),
    bytes(m.postgres.linksBytes),
    bytes(m.postgres.rawClicksBytes),
    bytes(m.postgres.rollupBytes),
    bytes(m.postgres.totalBytes),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i] ?? 0)).join('  ');
  const lines = [line(header), ...rows.map(line), ''];
  for (const [limit, month] of Object.entries(plan.limitsHit) as [Limit, number | null][]) {
    lines.push(`${LIMIT_NAMES[limit]}: ${month === null ? `enough for the ${plan.months.length - 1} months shown` : month === 0 ? 'exceeded now' : `exceeded in month ${month}`}`);
  }
  return lines;
}

export async function capacityCommand(args: string[]): Promise<number> {
  const { inputs, json } = await capacityInputs(args);
  const plan = capacityPlan(inputs);
  if (json) out(JSON.stringify({ inputs, ...plan }));
  else for (const line of capacityTable(plan)) out(line);
  return 0;
}
