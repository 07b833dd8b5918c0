/**
 * Importing links on PGlite and PostgreSQL: codes kept or replaced (and reported), every
 * rejected row reported, nothing created twice when a file is imported again, a dry run
 * that writes nothing, and an export that imports back to the same links.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { exportHeader, exportRecord } from '../../src/cli/export.js';
import { importLinks, type ImportCounts, type ImportReport } from '../../src/cli/import/link-importer.js';
import { readSource, resolveLayout } from '../../src/cli/import/source-formats.js';
import { codeAllocator } from '../../src/links/code-key.js';
import { exportedLinks } from '../../src/links/link-export-reader.js';
import { LinkImportRepository } from '../../src/links/link-import-repository.js';
import { LinkRepository } from '../../src/links/link-repository.js';
import type { Database } from '../../src/storage/database.js';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { openFreshDatabase, type FreshDatabase } from '../helpers/fresh-database.js';

const FIXTURES = new URL('../fixtures/import/', import.meta.url).pathname;
const POLICY = { maxUrlLength: 2048, blockedDomains: [], ownHosts: ['sho.rt'], allowPrivateAddresses: false };

interface Run {
  counts: ImportCounts;
  rejects: { line: number; reason: string }[];
  renames: { line: number; originalCode: string; code: string | null; reason: string }[];
}

async function runImport(db: Database, path: string, options: { dryRun?: boolean; batchSize?: number } = {}): Promise<Run> {
  const rejects: Run['rejects'] = [];
  const renames: Run['renames'] = [];
  const report: ImportReport = {
    reject: (entry) => {
      rejects.push({ line: entry.line, reason: entry.reason });
      return Promise.resolve();
    },
    rename: (entry) => {
      renames.push(entry);
      return Promise.resolve();
    },
  };
  const layout = await resolveLayout(path, 'auto');
  const counts = await importLinks(readSource(path, layout).items, {
    db,
    links: new LinkRepository(db),
    imports: new LinkImportRepository(db),
    codes: await codeAllocator(db, { length: 7, blockSize: 100 }),
    policy: POLICY,
    report,
    ownerKeyId: null,
    dryRun: options.dryRun ?? false,
    batchSize: options.batchSize ?? 2,
  });
  return { counts, rejects, renames };
}

async function linkCount(db: Database): Promise<number> {
  const result = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM links');
  return Number(result.rows[0]?.n);
}

function temp(name: string, content: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'shunt-import-')), name);
  writeFileSync(path, content);
  return path;
}

for (const backend of BACKENDS) {
  describe(`link import (${backend})`, await backendTestOptions(backend), () => {
    let store: FreshDatabase;
    before(async () => {
      store = await openFreshDatabase(backend);
    });
    after(() => store.close());

    test('Bitly export: codes kept, a reserved one replaced and reported, a refused URL rejected', async () => {
      const run = await runImport(store.db, join(FIXTURES, 'bitly-links.csv'));
      assert.deepEqual(run.counts, { read: 4, created: 3, keptCodes: 2, renamed: 1, skipped: 0, rejected: 1 });
      assert.deepEqual(run.rejects.map((r) => r.line), [4]);
      assert.match(run.rejects[0]?.reason ?? '', /^url_not_allowed/);
      assert.equal(run.renames[0]?.originalCode, 'admin');
      assert.match(run.renames[0]?.code ?? '', /^[0-9A-Za-z]{7}$/);
      const links = new LinkRepository(store.db);
      const sale = await links.findByCode('spring-sale');
      assert.equal(sale?.url, 'https://example.com/spring-sale?utm_source=newsletter');
      assert.equal(sale?.title, 'Spring sale, 20% off');
      assert.deepEqual(sale?.tags, ['marketing', 'spring']);
      assert.equal(sale?.createdAt.toISOString(), '2021-03-05T18:04:11.000Z');
      assert.equal(await new LinkImportRepository(store.db).importedClicks(sale?.id ?? ''), 1523);
      const renamed = await links.findByCode(run.renames[0]?.code ?? '');
      assert.equal(renamed?.url, 'https://example.com/admin-help');
    });

    test('importing the same file again creates nothing', async () => {
      const before = await linkCount(store.db);
      const run = await runImport(store.db, join(FIXTURES, 'bitly-links.csv'));
      assert.deepEqual(run.counts, { read: 4, created: 0, keptCodes: 0, renamed: 0, skipped: 3, rejected: 1 });
      assert.equal(await linkCount(store.db), before);
    });

    test('an alias another link already has: a generated code, reported', async () => {
      const path = temp('taken.csv', 'url,alias,title\nhttps://example.com/other,spring-sale,Taken\n');
      const run = await runImport(store.db, path);
      assert.equal(run.counts.created, 1);
      assert.equal(run.renames[0]?.reason, 'alias "spring-sale" is already in use');
      assert.equal((await new LinkRepository(store.db).findByCode('spring-sale'))?.title, 'Spring sale, 20% off');
    });

    test('every fixture format imports; expiry and visit counts kept', async () => {
      for (const file of ['shlink-short-urls.csv', 'shlink-short-url-list.txt', 'yourls-dump.sql', 'kutt-links.json', 'plain.csv']) {
        const run = await runImport(store.db, join(FIXTURES, file));
        assert.ok(run.counts.created > 0, file);
        assert.equal(run.counts.read, run.counts.created + run.counts.skipped + run.counts.rejected, file);
        assert.equal(run.rejects.length, run.counts.rejected, file);
      }
      const links = new LinkRepository(store.db);
      const kutt = await links.findByCode('h3Xk2');
      assert.equal(kutt?.expiresAt?.toISOString(), '2099-01-01T00:00:00.000Z');
      assert.equal(await new LinkImportRepository(store.db).importedClicks(kutt?.id ?? ''), 311);
      assert.equal((await links.findByCode('ozh'))?.title, "Ozh's blog; words");
      assert.deepEqual((await links.findByCode('plain-one'))?.tags, ['alpha', 'beta']);
    });

    test('a dry run reports but creates nothing', async () => {
      const fresh = await openFreshDatabase(backend);
      try {
        const run = await runImport(fresh.db, join(FIXTURES, 'yourls-dump.sql'), { dryRun: true });
        assert.deepEqual(run.counts, { read: 4, created: 4, keptCodes: 3, renamed: 1, skipped: 0, rejected: 0 });
        assert.equal(await linkCount(fresh.db), 0);
      } finally {
        await fresh.close();
      }
    });

    test('export, then import into an empty store: the same links', async () => {
      const target = await openFreshDatabase(backend);
      try {
        for (const format of ['csv', 'json'] as const) {
          let file = exportHeader(format, true) ?? '';
          const source = await snapshot(store.db);
          for await (const link of exportedLinks(store.db, { since: null, withClicks: true, pageSize: 3 })) file += exportRecord(format, link, true);
          await target.db.query('TRUNCATE links, link_imports');
          const run = await runImport(target.db, temp(`export.${format}`, file), { batchSize: 4 });
          assert.equal(run.counts.rejected, 0, JSON.stringify(run.rejects));
          assert.equal(run.counts.renamed, 0);
          assert.deepEqual(await snapshot(target.db), source, format);
        }
      } finally {
        await target.close();
      }
    });

    test('--since: only links created from that date', async () => {
      const codes: string[] = [];
      for await (const link of exportedLinks(store.db, { since: new Date('2024-01-01T00:00:00Z'), withClicks: false, pageSize: 100 })) codes.push(link.code);
      assert.ok(codes.includes('h3Xk2'));
      assert.ok(!codes.includes('ozh'));
    });
  });
}

/** What an export must carry over: each link's code, destination, title, tags, dates and visits. */
async function snapshot(db: Database): Promise<unknown[]> {
  const result = await db.query(
    `SELECT l.code, l.url, l.title, l.tags, l.expires_at, l.created_at, coalesce(i.imported_clicks, 0)::text AS clicks
     FROM links l LEFT JOIN link_imports i ON i.link_id = l.id ORDER BY l.code COLLATE "C"`,
  );
  return result.rows;
}
