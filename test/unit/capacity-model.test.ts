/** The capacity model's arithmetic against cases worked out by hand (figures chosen to divide evenly). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { capacityInputs, capacityTable } from '../../src/cli/capacity/capacity-command.js';
import { capacityPlan, growthSum, instancesFor, monthPlan, SECONDS_PER_MONTH, type CapacityInputs } from '../../src/cli/capacity/capacity-model.js';

// 30.4375 days × 86,400 s = 2,629,800 s: 2,629,800,000 redirects a month are 1,000/s on average.
const MONTH = 2_629_800;

const BASE: CapacityInputs = {
  redirectsPerSecondPerInstance: 1000,
  createsPerSecondPerInstance: 1,
  clicksPerSecondPerWorker: 2000,
  bytesPerLink: 100,
  bytesPerRawClick: 10,
  rollupBytesPerClick: 2,
  redisBytesPerLink: 500,
  redirectsPerMonth: 1000 * MONTH,
  createsPerMonth: MONTH,
  linksToday: 1000,
  peakToAverage: 3,
  monthlyGrowth: 0.5,
  hotLinkShare: 0.1,
  cpuCeiling: 0.5,
  retentionDays: 10,
  months: 2,
  current: { redirectInstances: 6, apiInstances: 10, workers: 3, redisBytes: 1e9, postgresBytes: 2e10 },
};

describe('capacity model', () => {
  test('a month is 2,629,800 s', () => {
    assert.equal(SECONDS_PER_MONTH, MONTH);
  });

  test('instances: ceil(load / (capacity × ceiling)), never fewer than one', () => {
    assert.equal(instancesFor(3000, 1000, 0.5), 6);
    assert.equal(instancesFor(3001, 1000, 0.5), 7);
    assert.equal(instancesFor(0, 1000, 0.5), 1);
    assert.equal(growthSum(0.5, 0, 3), 1 + 1.5 + 2.25);
  });

  test('month 0: peak 3,000 redirects/s → 6 redirect instances, 3 workers; 3 creates/s → 6 API instances', () => {
    const m = monthPlan(BASE, 0);
    assert.equal(Math.round(m.peakRedirectsPerSecond), 3000);
    assert.equal(m.redirectInstances, 6);
    assert.equal(m.workers, 3);
    assert.equal(m.apiInstances, 6);
    assert.equal(m.links, 1000);
    assert.equal(m.redisBytes, 1000 * 0.1 * 500);
    // 10 days at 86.4 M clicks a day, 10 bytes each.
    assert.equal(Math.round(m.postgres.rawClicksBytes), 8_640_000_000);
    // This month's clicks, 2 rollup bytes each.
    assert.equal(m.postgres.rollupBytes, 2 * 1000 * MONTH);
  });

  test('month 1 at 50% growth: 4,500/s peak → 9 redirect instances, 5 workers', () => {
    const m = monthPlan(BASE, 1);
    assert.equal(m.redirectInstances, 9);
    assert.equal(m.workers, 5);
    assert.equal(m.links, 1000 + MONTH);
  });

  test('month 2: links, Redis, storage', () => {
    const m = monthPlan(BASE, 2);
    assert.equal(m.links, 6_575_500);
    assert.equal(m.postgres.linksBytes, 657_550_000);
    assert.equal(Math.round(m.redisBytes), 328_775_000);
    // Rollups of months 0, 1 and 2: 1000·MONTH·(1 + 1.5 + 2.25) clicks, 2 bytes each.
    assert.equal(Math.round(m.postgres.rollupBytes), 2 * 1000 * MONTH * 4.75);
    assert.equal(m.postgres.totalBytes, m.postgres.linksBytes + m.postgres.rawClicksBytes + m.postgres.rollupBytes);
  });

  test('raw clicks kept forever: every month so far', () => {
    const m = monthPlan({ ...BASE, retentionDays: 0 }, 1);
    assert.equal(m.postgres.rawClicksBytes, 10 * 1000 * MONTH * 2.5);
  });

  test("the month each current limit is hit (storage: 1.39e10 bytes in month 0, 2.64e10 in month 1, against 2e10)", () => {
    const plan = capacityPlan(BASE);
    assert.equal(plan.months.length, 3);
    assert.deepEqual(plan.limitsHit, { redirectInstances: 1, apiInstances: 2, workers: 1, redisBytes: null, postgresBytes: 1 });
  });

  test('flags: defaults, percentages, bad values refused', async () => {
    const { inputs } = await capacityInputs(['--redirects-per-month', '6e9', '--creates-per-month', '600000000', '--growth', '10']);
    assert.equal(inputs.monthlyGrowth, 0.1);
    assert.equal(inputs.months, 24);
    assert.equal(inputs.cpuCeiling, 0.6);
    await assert.rejects(capacityInputs(['--creates-per-month', '1']), /needs --redirects-per-month/);
    await assert.rejects(capacityInputs(['--redirects-per-month', 'lots', '--creates-per-month', '1']), /--redirects-per-month must be a number/);
    await assert.rejects(capacityInputs(['--redirects-per-month', '1', '--creates-per-month', '1', '--months', '2.5']), /--months must be a whole number/);
  });

  test('the table has a row per month and a line per limit', () => {
    const lines = capacityTable(capacityPlan(BASE));
    assert.equal(lines.length, 1 + 3 + 1 + 5);
    assert.match(lines.at(-1) ?? '', /^PostgreSQL storage: exceeded in month 1$/);
  });
});
