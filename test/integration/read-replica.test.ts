/**
 * Read replicas with read-your-writes, against a real streaming standby that replays
 * two seconds behind its primary.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { IN_CI } from '../helpers/backends.js';
import { startReplicaCluster, replicaToolsMissing, type ReplicaCluster } from '../helpers/replica-cluster.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';

const missing = replicaToolsMissing();
const options = missing !== null && !IN_CI ? { skip: missing } : {};

/** The link's destination as the standby has it now, or null. */
async function onStandby(url: string, code: string): Promise<string | null> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const result = await client.query<{ url: string }>('SELECT url FROM links WHERE code = $1', [code]);
    return result.rows[0]?.url ?? null;
  } finally {
    await client.end();
  }
}

async function standbyHas(url: string, code: string): Promise<boolean> {
  return (await onStandby(url, code)) !== null;
}

async function untilStandbyHas(url: string, code: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await standbyHas(url, code))) {
    assert.ok(Date.now() < deadline, 'the standby never replayed the link');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function readCounts(metrics: string): { replica: number; primary: number } {
  const value = (target: string): number => Number(new RegExp(`^shunt_link_reads_total\\{target="${target}"\\} (\\d+)`, 'm').exec(metrics)?.[1] ?? NaN);
  return { replica: value('replica'), primary: value('primary') };
}

describe('read replicas', options, () => {
  let cluster: ReplicaCluster;
  let app: TestApp;

  before(async () => {
    if (missing !== null) throw new Error(missing);
    cluster = await startReplicaCluster({ applyDelay: '2s', database: 'shunt' });
    app = await startTestApp('postgres', {
      databaseUrl: cluster.primaryUrl,
      // The in-process cache is off so that every redirect is a lookup on a store.
      env: { DATABASE_REPLICA_URLS: cluster.standbyUrl, CACHE_MAX_ENTRIES: '0' },
    });
    // The schema reaches the standby after the apply delay, like everything else.
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        await standbyHas(cluster.standbyUrl, 'none');
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  });

  after(async () => {
    await app?.close();
    cluster?.close();
  });

  const follow = async (code: string): Promise<{ status: number; location: string | undefined }> => {
    const response = await app.request({ url: `/${code}`, key: null });
    return { status: response.statusCode, location: response.headers.location };
  };

  test('a new link is served at once while the standby does not have it yet', async () => {
    const created = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/v1' } });
    assert.equal(created.statusCode, 201);
    const { code } = created.json<{ code: string }>();
    assert.deepEqual(await follow(code), { status: 302, location: 'https://example.com/v1' });
    assert.equal(await standbyHas(cluster.standbyUrl, code), false, 'the standby lags: the answer came from the primary');
  });

  test('a change and a deletion are served at once, while the standby still has the old row', async () => {
    const created = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/before' } });
    const { code } = created.json<{ code: string }>();
    await untilStandbyHas(cluster.standbyUrl, code);
    const patched = await app.request({ method: 'PATCH', url: `/api/v1/links/${code}`, body: { url: 'https://example.com/after' } });
    assert.equal(patched.statusCode, 200);
    assert.deepEqual(await follow(code), { status: 302, location: 'https://example.com/after' });
    assert.equal(await onStandby(cluster.standbyUrl, code), 'https://example.com/before', 'the standby still serves the old row');
    const deadline = Date.now() + 30_000;
    while ((await onStandby(cluster.standbyUrl, code)) !== 'https://example.com/after') {
      assert.ok(Date.now() < deadline, 'the standby never replayed the change');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal((await app.request({ method: 'DELETE', url: `/api/v1/links/${code}` })).statusCode, 204);
    assert.equal((await follow(code)).status, 404);
    assert.equal(await onStandby(cluster.standbyUrl, code), 'https://example.com/after', 'the standby still has the deleted row');
  });

  test('lookups of links the standby has caught up with are answered by the standby', async () => {
    const created = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/settled' } });
    const { code } = created.json<{ code: string }>();
    await untilStandbyHas(cluster.standbyUrl, code);
    // The fence may lie a little past the row's commit record (the insert position): wait
    // until the standby answers for the link at all, then count.
    const settle = Date.now() + 30_000;
    for (;;) {
      const counts = readCounts((await app.request({ url: '/metrics', key: null })).body);
      await follow(code);
      if (readCounts((await app.request({ url: '/metrics', key: null })).body).replica > counts.replica) break;
      assert.ok(Date.now() < settle, 'the standby never answered for the link');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const before = readCounts((await app.request({ url: '/metrics', key: null })).body);
    for (let i = 0; i < 10; i += 1) assert.deepEqual(await follow(code), { status: 302, location: 'https://example.com/settled' });
    const afterwards = readCounts((await app.request({ url: '/metrics', key: null })).body);
    assert.equal(afterwards.replica - before.replica, 10, 'every lookup went to the standby');
    assert.equal(afterwards.primary - before.primary, 0, 'none to the primary');
  });

  test('with the standby down, redirects are answered by the primary', async () => {
    const created = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/fallback' } });
    const { code } = created.json<{ code: string }>();
    cluster.stopStandby();
    try {
      for (let i = 0; i < 5; i += 1) assert.deepEqual(await follow(code), { status: 302, location: 'https://example.com/fallback' });
    } finally {
      cluster.startStandby();
    }
  });
});
