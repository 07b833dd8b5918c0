/**
 * Automatic failover (ADR 0017): Shunt (ROLE=all, in-process click queue) reaches a
 * Patroni cluster through HAProxy, as deploy/patroni ships it. Under redirects, creates and
 * clicks, the primary's postgres is killed with SIGKILL. Patroni must promote the replica;
 * Shunt must reconnect through HAProxy without a restart, create again within 30 s, never
 * fail a cached redirect, and store every click exactly once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { eventually } from '../helpers/amqp.js';
import { IN_CI } from '../helpers/backends.js';
import { createLinks, OutageLoad, outageEnv, storedClicks } from '../helpers/outage-load.js';
import { patroniMissing, startPatroniCluster, type PatroniCluster } from '../helpers/patroni-cluster.js';
import { startShunt, type ShuntProcess } from '../helpers/process.js';

const missing = patroniMissing();
const options = missing !== null && !IN_CI ? { skip: missing } : {};
const ADMIN = 'failover-admin-key-0123456789abcdef';

describe('failover on Patroni', options, () => {
  let cluster: PatroniCluster;
  let shunt: ShuntProcess;
  let dir: string;
  let url: string;

  before(async () => {
    assert.equal(missing, null, 'Patroni, etcd, HAProxy and PostgreSQL are needed (CI=true)');
    dir = mkdtempSync(join(tmpdir(), 'shunt-failover-'));
    cluster = await startPatroniCluster();
    url = await cluster.createDatabase('shunt_failover');
    shunt = await startShunt({ ...outageEnv(url, ADMIN), ROLE: 'all', CLICKS_SPOOL_DIR: join(dir, 'spool') });
  });

  after(async () => {
    if (shunt !== undefined) {
      shunt.child.kill('SIGKILL');
      await shunt.exited;
    }
    await cluster?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  test('SIGKILL to the primary’s postgres: the replica is promoted and Shunt carries on', async () => {
    const codes = await createLinks(shunt.url, ADMIN, 20, 'failover');
    let served = 0;
    for (const code of [...codes, ...codes]) {
      const response = await fetch(`${shunt.url}/${code}`, { redirect: 'manual' });
      await response.arrayBuffer();
      assert.equal(response.status, 302);
      served += 1;
    }

    const old = await cluster.primary();
    assert.ok(old !== null, 'a primary before the kill');
    const load = new OutageLoad({ redirects: [shunt.url], codes, api: [shunt.url], apiKey: ADMIN }, { redirect: 4, create: 2 });
    await sleep(2000);
    // Under load the replica may trail; Patroni rightly keeps a crashed primary that no replica
    // is close enough to replace. Kill once the replica qualifies, as it does in steady state.
    await cluster.replicasCaughtUp(old, 256 * 1024, 30_000);
    const createdBefore = load.result.created;
    cluster.killPostgres(old);
    const killedAt = performance.now();
    const promoted = async (): Promise<boolean> => {
      const primary = await cluster.primary();
      return primary !== null && primary.name !== old.name;
    };
    await eventually('Patroni promotes the replica', promoted, 60_000).catch((error: unknown) => {
      throw new Error(`${String(error)}; Patroni's decisions:\n${cluster.decisions()}`);
    });
    await eventually('a create succeeds after the kill', () => load.result.createdAt.some((at) => at > killedAt), 60_000);
    const recovered = (load.result.createdAt.find((at) => at > killedAt) ?? NaN) - killedAt;
    await sleep(2000);
    const result = await load.stop();
    served += result.redirectsServed;
    const now = await cluster.primary();

    console.log(
      `failover: ${old.name} -> ${now?.name ?? 'none'}; first create ${Math.round(recovered)} ms after the kill; ` +
        `${result.redirectsServed} redirects (${result.redirectFailures.length} failed, p99 ${result.redirectP99Ms.toFixed(1)} ms); ` +
        `${result.created} creates (${result.created - createdBefore} after the kill began), ${result.unavailable} answered 503`,
    );
    assert.equal(shunt.child.exitCode, null, `Shunt died: ${shunt.stderr().slice(-2000)}`);
    assert.ok(now !== null && now.name !== old.name, `the replica was promoted (primary now: ${now?.name ?? 'none'}); Patroni's decisions:\n${cluster.decisions()}`);
    assert.ok(recovered <= 30_000, `creates succeed again within 30 s of the kill (took ${Math.round(recovered)} ms)`);
    assert.deepEqual(result.redirectFailures.slice(0, 5), [], 'no cached redirect failed');
    assert.deepEqual(result.createFailures.slice(0, 5), [], 'creates answered 201, or 503 with Retry-After within 1 s');

    const sql = new pg.Pool({ connectionString: url, max: 1 });
    sql.on('error', () => undefined);
    try {
      const stored = (): Promise<{ raw: number; rollup: number }> => storedClicks(sql);
      await eventually(`${served} clicks stored`, async () => (await stored().catch(() => ({ raw: -1 }))).raw >= served, 60_000);
      await sleep(2000);
      const final = await stored();
      console.log(`failover: clicks served ${served}, stored ${final.raw} (lost ${Math.max(0, served - final.raw)}, doubled ${Math.max(0, final.raw - served)})`);
      assert.deepEqual(final, { raw: served, rollup: served }, 'every click stored exactly once');
    } finally {
      await sql.end();
    }
  });
});
