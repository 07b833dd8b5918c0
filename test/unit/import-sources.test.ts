/**
 * The import readers on files written in each product's documented export format
 * (test/fixtures/import): the layout told from the content, and every field read.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseSourceDate, toCandidate } from '../../src/cli/import/link-candidate.js';
import { readSource, resolveLayout, type ImportFormat } from '../../src/cli/import/source-formats.js';
import type { SourceItem, SourceRecord } from '../../src/cli/import/source-record.js';
import { progressLine } from '../../src/cli/import/progress.js';

const FIXTURES = new URL('../fixtures/import/', import.meta.url).pathname;

async function read(file: string, format: ImportFormat = 'auto'): Promise<{ layout: string; items: SourceItem[] }> {
  const path = file.startsWith('/') ? file : join(FIXTURES, file);
  const layout = await resolveLayout(path, format);
  const items: SourceItem[] = [];
  for await (const item of readSource(path, layout).items) items.push(item);
  return { layout: layout.kind === 'csv' ? `csv:${layout.flavour}` : layout.kind, items };
}

const records = (items: SourceItem[]): SourceRecord[] => items.filter((item): item is SourceRecord => item.kind === 'record');

function temp(name: string, content: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'shunt-import-')), name);
  writeFileSync(path, content);
  return path;
}

describe('import sources', () => {
  test('Bitly CSV: custom back-half kept as the code, tags split on commas, clicks read', async () => {
    const { layout, items } = await read('bitly-links.csv');
    assert.equal(layout, 'csv:bitly');
    const [first, second] = records(items);
    assert.deepEqual(first, {
      kind: 'record', line: 2, family: 'bitly', sourceId: 'bit.ly/3xKq9Zt', code: 'spring-sale',
      url: 'https://example.com/spring-sale?utm_source=newsletter', title: 'Spring sale, 20% off',
      tags: ['marketing', 'spring'], createdAt: '2021-03-05T18:04:11+0000', expiresAt: null, clicks: '1523',
    });
    assert.equal(second?.code, '2Yb8LmQ');
    assert.equal(records(items).length, 4);
  });

  test('Shlink CSV export: shortCode, |-separated tags, visits', async () => {
    const { layout, items } = await read('shlink-short-urls.csv');
    assert.equal(layout, 'csv:shlink');
    const [first, second] = records(items);
    assert.equal(first?.code, 'abc123');
    assert.equal(first?.sourceId, 's.example.net/abc123');
    assert.deepEqual(first?.tags, ['news', '2023']);
    assert.equal(first?.clicks, '42');
    assert.equal(second?.title, null);
    assert.equal(second?.url, 'https://example.com/b?x=1&y=2');
  });

  test('Shlink short-url:list table: rule lines and the footer are passed over', async () => {
    const { layout, items } = await read('shlink-short-url-list.txt');
    assert.equal(layout, 'shlink-table');
    const rows = records(items);
    assert.deepEqual(rows.map((row) => [row.line, row.code, row.url, row.clicks]), [
      [4, '12C1c', 'https://shlink.io/docs', '13'],
      [5, 'my-alias', 'https://example.com/page', '0'],
      [6, '4Ed9f', 'ftp://example.com/file', '7'],
    ]);
    assert.equal(rows[0]?.title, 'Shlink docs');
    assert.equal(rows[0]?.sourceId, 's.test/12C1c');
    assert.equal(rows[0]?.createdAt, '2019-03-06T21:43:10+01:00');
  });

  test('YOURLS SQL dump: only yourls_url rows, with escapes, NULLs and line numbers', async () => {
    const { layout, items } = await read('yourls-dump.sql');
    assert.equal(layout, 'yourls-sql');
    const rows = records(items);
    assert.deepEqual(rows.map((row) => [row.line, row.code, row.title, row.createdAt, row.clicks]), [
      [22, 'ozh', "Ozh's blog; words", '2018-04-01 10:00:00', '120'],
      [22, 'yourls', 'YOURLS: Your Own URL Shortener', '2018-04-01 10:05:00', '56'],
      [22, '1', null, '2018-05-01 00:00:00', '0'],
      [23, 'api', 'API docs', '2018-06-01 00:00:00', '9'],
    ]);
  });

  test('YOURLS SQL with a column list over several lines (phpMyAdmin)', async () => {
    const path = temp('pma.sql', "INSERT INTO `yourls_url` (`keyword`, `url`, `title`, `timestamp`, `ip`, `clicks`) VALUES\n('a', 'https://example.com/a', 'A -- not a comment', '2019-01-01 00:00:00', '::1', 1),\n('b', 'https://example.com/b', '', '2019-01-01 00:00:00', '::1', 2);\n");
    const { layout, items } = await read(path);
    assert.equal(layout, 'yourls-sql');
    assert.deepEqual(records(items).map((row) => [row.line, row.code, row.title]), [[2, 'a', 'A -- not a comment'], [3, 'b', null]]);
  });

  test('YOURLS CSV export', async () => {
    const { layout, items } = await read('yourls-export.csv');
    assert.equal(layout, 'csv:yourls');
    assert.equal(records(items)[1]?.title, 'YOURLS docs, the "manual"');
  });

  test('Kutt API v2 list: address, target, description, visit_count, expire_in', async () => {
    const { layout, items } = await read('kutt-links.json');
    assert.equal(layout, 'kutt-json');
    const [first] = records(items);
    assert.deepEqual(first, {
      kind: 'record', line: 1, family: 'kutt', sourceId: '5b1bcbb1-6d5b-4a4b-a2b0-3f4f1f2a9c01', code: 'h3Xk2',
      url: 'https://example.com/kutt-one', title: 'Kutt link with a description', tags: [],
      createdAt: '2024-02-10T08:00:00.000Z', expiresAt: '2099-01-01T00:00:00.000Z', clicks: '311',
    });
  });

  test('Kutt pages saved one after another are all read', async () => {
    const page = (address: string): string => JSON.stringify({ limit: 1, skip: 0, total: 2, data: [{ id: address, address, target: `https://example.com/${address}`, visit_count: 1 }] });
    const { items } = await read(temp('pages.json', `${page('p1')}\n${page('p2')}\n`), 'kutt');
    assert.deepEqual(records(items).map((row) => row.code), ['p1', 'p2']);
  });

  test('plain CSV: alias, |-separated tags, expiry', async () => {
    const { layout, items } = await read('plain.csv');
    assert.equal(layout, 'csv:csv');
    const [first, second] = records(items);
    assert.deepEqual(first?.tags, ['alpha', 'beta']);
    assert.equal(first?.expiresAt, '2099-12-31T23:59:59Z');
    assert.equal(second?.code, null);
  });

  test('a broken CSV record is a problem with its line, and reading goes on', async () => {
    const { items } = await read(temp('broken.csv', 'url,alias\nhttps://example.com/1,a\n"https://example.com/2,b\n'));
    assert.equal(items.length, 2);
    assert.equal(items[1]?.kind, 'problem');
  });

  test('a format that does not match the file is refused with the reason', async () => {
    await assert.rejects(resolveLayout(join(FIXTURES, 'plain.csv'), 'bitly'), /not a Bitly CSV export/);
    await assert.rejects(resolveLayout(join(FIXTURES, 'plain.csv'), 'kutt'), /Kutt link list is JSON/);
    await assert.rejects(resolveLayout(temp('x.csv', 'name,value\na,b\n'), 'auto'), /header with a url column/);
  });
});

describe('import rows checked against Shunt rules', () => {
  const policy = { maxUrlLength: 2048, blockedDomains: [], ownHosts: ['sho.rt'], allowPrivateAddresses: false };
  const base: SourceRecord = {
    kind: 'record', line: 2, family: 'shunt', sourceId: null, code: 'ok-code', url: 'https://example.com/', title: null, tags: [],
    createdAt: null, expiresAt: null, clicks: null,
  };

  test('dates in the formats the sources write', () => {
    assert.equal(parseSourceDate('2021-03-05T18:04:11+0000')?.toISOString(), '2021-03-05T18:04:11.000Z');
    assert.equal(parseSourceDate('2018-04-01 10:00:00')?.toISOString(), '2018-04-01T10:00:00.000Z');
    assert.equal(parseSourceDate('1600000000')?.toISOString(), '2020-09-13T12:26:40.000Z');
    assert.equal(parseSourceDate('1600000000000')?.toISOString(), '2020-09-13T12:26:40.000Z');
    assert.equal(parseSourceDate('tomorrow'), null);
  });

  test('destination policy, alias rules, counts', () => {
    assert.match(toCandidate({ ...base, url: 'https://bit.ly/x' }, policy) as string, /^url_not_allowed/);
    assert.match(toCandidate({ ...base, url: 'https://sho.rt/x' }, policy) as string, /^url_not_allowed/);
    assert.match(toCandidate({ ...base, clicks: '-1' }, policy) as string, /not a whole number/);
    const reserved = toCandidate({ ...base, code: 'Admin' }, policy);
    assert.ok(typeof reserved !== 'string');
    assert.equal(reserved.alias, null);
    assert.match(reserved.aliasRefused ?? '', /reserved/);
    const kept = toCandidate({ ...base, clicks: '1,523', title: `a\u0007b${'x'.repeat(600)}` }, policy);
    assert.ok(typeof kept !== 'string');
    assert.equal(kept.alias, 'ok-code');
    assert.equal(kept.clicks, 1523);
    assert.equal(kept.title?.length, 512);
    assert.ok(kept.title?.startsWith('a b'));
  });

  test('fingerprints: a source identity wins over content; content identifies rows without one', () => {
    const key = (record: SourceRecord): string => (toCandidate(record, policy) as { key: string }).key;
    const bitly: SourceRecord = { ...base, family: 'bitly', sourceId: 'bit.ly/abc', code: 'abc' };
    assert.equal(key(bitly), key({ ...bitly, title: 'renamed', clicks: '9' }));
    assert.notEqual(key(bitly), key({ ...bitly, family: 'shlink' }));
    const plain: SourceRecord = { ...base, code: null };
    assert.equal(key(plain), key({ ...plain }));
    assert.notEqual(key(plain), key({ ...plain, title: 'other' }));
  });

  test('progress: bar with rate and ETA on a terminal, a plain line otherwise', () => {
    const state = { bytesRead: 50, totalBytes: 100, rows: 20_000, created: 19_000 };
    assert.equal(progressLine(state, 1000, true), '[############------------] 50.0% 20,000 rows, 19,000 links, 20,000 rows/s, ETA 00:01');
    assert.equal(progressLine(state, 1000, false), 'import: 50.0% 20,000 rows, 19,000 links, 20,000 rows/s, ETA 00:01');
  });
});
