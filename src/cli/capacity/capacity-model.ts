/**
 * The growth model behind `shunt capacity` (method and formulas: docs/capacity.md). Pure
 * arithmetic: every figure comes from the inputs, so tests check it against hand-worked cases.
 */

/** A month of 30.44 days (365.25 / 12), in seconds. */
export const SECONDS_PER_MONTH = (365.25 / 12) * 86_400;
export const DAYS_PER_MONTH = 365.25 / 12;

export interface CapacityInputs {
  /** Measured per-instance (or per-worker) throughput at 100% CPU. */
  redirectsPerSecondPerInstance: number;
  createsPerSecondPerInstance: number;
  clicksPerSecondPerWorker: number;
  /** Measured storage figures. */
  bytesPerLink: number;
  bytesPerRawClick: number;
  rollupBytesPerClick: number;
  redisBytesPerLink: number;
  /** Traffic today. */
  redirectsPerMonth: number;
  createsPerMonth: number;
  linksToday: number;
  peakToAverage: number;
  /** Growth of traffic per month (0.2 = 20%). */
  monthlyGrowth: number;
  /** Share of all links that is hot (answered from Redis). */
  hotLinkShare: number;
  /** Targets. */
  cpuCeiling: number;
  /** Raw clicks kept this many days (0: forever); rollups are kept forever. */
  retentionDays: number;
  months: number;
  /** What is deployed today, to find the month each limit is hit. */
  current: {
    redirectInstances: number;
    apiInstances: number;
    workers: number;
    redisBytes: number;
    postgresBytes: number;
  };
}

export interface MonthPlan {
  month: number;
  redirectsPerMonth: number;
  peakRedirectsPerSecond: number;
  peakCreatesPerSecond: number;
  links: number;
  redirectInstances: number;
  apiInstances: number;
  workers: number;
  redisBytes: number;
  postgres: { linksBytes: number; rawClicksBytes: number; rollupBytes: number; totalBytes: number };
}

export type Limit = 'redirectInstances' | 'apiInstances' | 'workers' | 'redisBytes' | 'postgresBytes';

export interface CapacityPlan {
  months: MonthPlan[];
  /** The first month each current limit is exceeded; null: not within the horizon. */
  limitsHit: Record<Limit, number | null>;
}

/** Instances needed so that `load` keeps each under `ceiling` of its measured capacity; at least one. */
export function instancesFor(load: number, perInstance: number, ceiling: number): number {
  return Math.max(1, Math.ceil(load / (perInstance * ceiling) - 1e-9));
}

/** Sum of growth factors (1+g)^k for k in [from, to): the traffic of those months relative to month 0. */
export function growthSum(growth: number, from: number, to: number): number {
  let sum = 0;
  for (let k = from; k < to; k += 1) sum += (1 + growth) ** k;
  return sum;
}

export function monthPlan(inputs: CapacityInputs, month: number): MonthPlan {
  const g = inputs.monthlyGrowth;
  const factor = (1 + g) ** month;
  const redirectsPerMonth = inputs.redirectsPerMonth * factor;
  const createsPerMonth = inputs.createsPerMonth * factor;
  const peakRedirectsPerSecond = (redirectsPerMonth / SECONDS_PER_MONTH) * inputs.peakToAverage;
  const peakCreatesPerSecond = (createsPerMonth / SECONDS_PER_MONTH) * inputs.peakToAverage;
  // Links made before month `month`: today's plus every month's creates since.
  const links = inputs.linksToday + inputs.createsPerMonth * growthSum(g, 0, month);
  // Raw clicks within retention: the days kept, at this month's daily rate (an upper bound
  // while traffic grows); forever: every month's clicks so far, this one included.
  const rawClicks =
    inputs.retentionDays > 0
      ? (redirectsPerMonth / DAYS_PER_MONTH) * inputs.retentionDays
      : inputs.redirectsPerMonth * growthSum(g, 0, month + 1);
  // Rollups are kept forever: every month's clicks so far, this one included.
  const clicksEver = inputs.redirectsPerMonth * growthSum(g, 0, month + 1);
  const linksBytes = links * inputs.bytesPerLink;
  const rawClicksBytes = rawClicks * inputs.bytesPerRawClick;
  const rollupBytes = clicksEver * inputs.rollupBytesPerClick;
  return {
    month,
    redirectsPerMonth,
    peakRedirectsPerSecond,
    peakCreatesPerSecond,
    links,
    redirectInstances: instancesFor(peakRedirectsPerSecond, inputs.redirectsPerSecondPerInstance, inputs.cpuCeiling),
    apiInstances: instancesFor(peakCreatesPerSecond, inputs.createsPerSecondPerInstance, inputs.cpuCeiling),
    // Every redirect is a click the workers ingest.
    workers: instancesFor(peakRedirectsPerSecond, inputs.clicksPerSecondPerWorker, inputs.cpuCeiling),
    redisBytes: links * inputs.hotLinkShare * inputs.redisBytesPerLink,
    postgres: { linksBytes, rawClicksBytes, rollupBytes, totalBytes: linksBytes + rawClicksBytes + rollupBytes },
  };
}

export function capacityPlan(inputs: CapacityInputs): CapacityPlan {
  const months = Array.from({ length: inputs.months + 1 }, (_, month) => monthPlan(inputs, month));
  const first = (exceeds: (plan: MonthPlan) => boolean): number | null => months.find(exceeds)?.month ?? null;
  const { current } = inputs;
  return {
    months,
    limitsHit: {
      redirectInstances: first((m) => m.redirectInstances > current.redirectInstances),
      apiInstances: first((m) => m.apiInstances > current.apiInstances),
      workers: first((m) => m.workers > current.workers),
      redisBytes: first((m) => m.redisBytes > current.redisBytes),
      postgresBytes: first((m) => m.postgres.totalBytes > current.postgresBytes),
    },
  };
}
