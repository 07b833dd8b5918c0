import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';

for (const backend of BACKENDS) {
  describe(`create and follow a link (${backend})`, await backendTestOptions(backend), () => {
    let app: TestApp;
    before(async () => {
      app = await startTestApp(backend);
    });
    after(() => app.close());

    test('a created link redirects with 302 and no-store', async () => {
      const created = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/' } });
      assert.equal(created.statusCode, 201, created.body);
      const { code } = created.json<{ code: string }>();
      const followed = await app.request({ url: `/${code}`, key: null });
      assert.equal(followed.statusCode, 302);
      assert.equal(followed.headers.location, 'https://example.com/');
      assert.equal(followed.headers['cache-control'], 'private, no-store');
    });
  });
}
