import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { backendTestOptions, createPostgresDatabase } from '../helpers/backends.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';

// Roles share one database, as separate Deployments would; each serves only its part.
describe('ROLE picks what an instance serves', await backendTestOptions('postgres'), () => {
  let database: Awaited<ReturnType<typeof createPostgresDatabase>>;
  const apps: Partial<Record<'api' | 'redirect' | 'worker', TestApp>> = {};
  before(async () => {
    database = await createPostgresDatabase();
    for (const role of ['api', 'redirect', 'worker'] as const) {
      apps[role] = await startTestApp('postgres', { databaseUrl: database.url, env: { ROLE: role } });
    }
  });
  after(async () => {
    for (const app of Object.values(apps)) await app.close();
    await database.drop();
  });

  test('api serves the API but not redirects; redirect serves redirects but not the API; worker serves neither', async () => {
    const api = apps.api as TestApp;
    const redirect = apps.redirect as TestApp;
    const worker = apps.worker as TestApp;
    const created = await api.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/roles' } });
    assert.equal(created.statusCode, 201, created.body);
    const { code } = created.json<{ code: string }>();

    assert.equal((await api.request({ url: `/${code}`, key: null })).statusCode, 404);
    const followed = await redirect.request({ url: `/${code}`, key: null });
    assert.equal(followed.statusCode, 302);
    assert.equal(followed.headers.location, 'https://example.com/roles');

    const viaRedirectRole = await redirect.request({ url: `/api/v1/links/${code}` });
    assert.equal(viaRedirectRole.statusCode, 404);
    assert.equal((await worker.request({ url: `/${code}`, key: null })).statusCode, 404);
    assert.equal((await worker.request({ url: '/api/v1/links' })).statusCode, 404);

    for (const app of [api, redirect, worker]) {
      assert.equal((await app.request({ url: '/healthz', key: null })).statusCode, 200);
      assert.equal((await app.request({ url: '/readyz', key: null })).statusCode, 200);
    }
  });
});
