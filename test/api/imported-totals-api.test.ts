/** Visits counted before a link was imported show in its stats as totals.imported, apart from Shunt's own clicks. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { importLinks } from '../../src/cli/import/link-importer.js';
import { readSource, resolveLayout } from '../../src/cli/import/source-formats.js';
import { writeBatch } from '../../src/analytics/analytics-writer.js';
import type { LinkStats } from '../../src/analytics/stats-query.js';
import { codeAllocator } from '../../src/links/code-key.js';
import { installationPolicy } from '../../src/links/destination-policy.js';
import { LinkImportRepository } from '../../src/links/link-import-repository.js';
import { LinkRepository } from '../../src/links/link-repository.js';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { documentMismatch } from '../helpers/documented-response.js';
import { makeClick, ofLinks } from '../helpers/enriched-click-fixture.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';

const BITLY = new URL('../fixtures/import/bitly-links.csv', import.meta.url).pathname;

for (const backend of BACKENDS) {
  describe(`imported visit totals in stats (${backend})`, await backendTestOptions(backend), () => {
    let app: TestApp;
    before(async () => {
      app = await startTestApp(backend);
      const db = app.runtime.db;
      const ignore = (): Promise<void> => Promise.resolve();
      await importLinks(readSource(BITLY, await resolveLayout(BITLY, 'auto')).items, {
        db,
        links: new LinkRepository(db),
        imports: new LinkImportRepository(db),
        codes: await codeAllocator(db, app.config.codes),
        policy: installationPolicy(app.config.destinations, app.config.baseUrl),
        report: { reject: ignore, rename: ignore },
        ownerKeyId: null,
        dryRun: false,
        batchSize: 100,
      });
      await writeBatch(db, await ofLinks(db, [makeClick({ code: 'spring-sale', at: '2025-03-10T10:00:00.000Z' })]));
    });
    after(() => app.close());

    async function stats(code: string): Promise<LinkStats & { totals: { imported: number } }> {
      const response = await app.request({ url: `/api/v1/links/${code}/stats?from=2025-03-10T00:00:00Z&to=2025-03-11T00:00:00Z` });
      assert.equal(response.statusCode, 200, response.body);
      assert.equal(await documentMismatch(app, 'GET', '/api/v1/links/{code}/stats', response), '');
      return response.json();
    }

    test('an imported link: its visits elsewhere beside its own clicks', async () => {
      assert.deepEqual((await stats('spring-sale')).totals, { clicks: 1, uniques: 0, imported: 1523 });
    });

    test('a link made in Shunt: imported is 0', async () => {
      const created = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/native', alias: 'native' } });
      assert.equal(created.statusCode, 201, created.body);
      assert.equal((await stats('native')).totals.imported, 0);
    });
  });
}
