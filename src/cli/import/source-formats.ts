/** Which reader a file needs: named by the user, or told from the file's first bytes. */
import { createReadStream, type ReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { csvRows } from './csv-rows.js';
import { csvFlavour, csvMapper, type CsvFlavour } from './csv-formats.js';
import { kuttLinks, shuntJsonLines } from './json-sources.js';
import { isShlinkTableHeader, shlinkTableRecords } from './shlink-table.js';
import type { SourceItem } from './source-record.js';
import { yourlsSqlRecords } from './yourls-sql.js';

export const IMPORT_FORMATS = ['auto', 'csv', 'json', 'bitly', 'shlink', 'yourls', 'kutt'] as const;
export type ImportFormat = (typeof IMPORT_FORMATS)[number];

/** The concrete layouts read; `describe` names them in the output. */
export type SourceLayout =
  | { kind: 'csv'; flavour: CsvFlavour }
  | { kind: 'yourls-sql' }
  | { kind: 'shlink-table' }
  | { kind: 'json-lines' }
  | { kind: 'kutt-json' };

export class SourceFormatError extends Error {}

const HEAD_BYTES = 64 * 1024;
const YOURLS_INSERT = /INSERT\s+(?:IGNORE\s+)?INTO\s+[`"]?\w*url[`"]?/i;

export function describeLayout(layout: SourceLayout): string {
  switch (layout.kind) {
    case 'csv':
      return { csv: 'CSV (url, alias, title, tags, expiresAt)', bitly: 'Bitly CSV export', shlink: 'Shlink CSV export', yourls: 'YOURLS CSV export' }[layout.flavour];
    case 'yourls-sql':
      return 'YOURLS SQL dump';
    case 'shlink-table':
      return 'Shlink short-url:list table';
    case 'json-lines':
      return 'Shunt JSON Lines export';
    case 'kutt-json':
      return 'Kutt API v2 link list';
  }
}

async function readHead(path: string): Promise<string> {
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await file.read(buffer, 0, HEAD_BYTES, 0);
    return buffer.subarray(0, bytesRead).toString('utf8').replace(/^\uFEFF/, '');
  } finally {
    await file.close();
  }
}

function firstLine(head: string): string {
  const end = head.search(/\r?\n/);
  return end < 0 ? head : head.slice(0, end);
}

function looksLikeJsonLines(head: string): boolean {
  try {
    const value: unknown = JSON.parse(firstLine(head));
    return typeof value === 'object' && value !== null && typeof (value as { url?: unknown }).url === 'string';
  } catch {
    return false;
  }
}

/** The CSV header's flavour (reading the header with the same parser as the rows). */
async function headerFlavour(path: string): Promise<CsvFlavour | null> {
  const stream = createReadStream(path, { end: HEAD_BYTES - 1 });
  try {
    for await (const row of csvRows(stream)) {
      return 'cells' in row ? csvFlavour(row.cells) : null;
    }
    return null;
  } finally {
    stream.destroy();
  }
}

/** The layout of `path` for the asked format; an error says why the file is not that. */
export async function resolveLayout(path: string, format: ImportFormat): Promise<SourceLayout> {
  const head = await readHead(path);
  const trimmed = head.trimStart();
  const hasTable = head.split(/\r?\n/).some(isShlinkTableHeader);
  const hasInsert = YOURLS_INSERT.test(head);
  const csvOf = async (wanted: CsvFlavour | null): Promise<SourceLayout> => {
    const flavour = await headerFlavour(path);
    if (flavour === null) throw new SourceFormatError('the first line is not a header with a url column (see `shunt import --help` for the formats read)');
    if (wanted !== null && flavour !== wanted) {
      throw new SourceFormatError(`the header looks like a ${describeLayout({ kind: 'csv', flavour })}, not a ${describeLayout({ kind: 'csv', flavour: wanted })}`);
    }
    return { kind: 'csv', flavour };
  };
  switch (format) {
    case 'auto':
      if (trimmed.startsWith('{') || trimmed.startsWith('[')) return looksLikeJsonLines(trimmed) ? { kind: 'json-lines' } : { kind: 'kutt-json' };
      if (hasInsert || trimmed.startsWith('--') || trimmed.startsWith('/*')) return { kind: 'yourls-sql' };
      if (hasTable) return { kind: 'shlink-table' };
      return csvOf(null);
    case 'csv':
      return csvOf('csv');
    case 'bitly':
      return csvOf('bitly');
    case 'shlink':
      return hasTable ? { kind: 'shlink-table' } : csvOf('shlink');
    case 'yourls':
      return hasInsert ? { kind: 'yourls-sql' } : csvOf('yourls');
    case 'json':
      if (!looksLikeJsonLines(trimmed)) throw new SourceFormatError('the first line is not a JSON object with a "url"');
      return { kind: 'json-lines' };
    case 'kutt':
      if (!trimmed.startsWith('{') && !trimmed.startsWith('[')) throw new SourceFormatError('a Kutt link list is JSON');
      return { kind: 'kutt-json' };
  }
}

/** The file's rows, read in `layout`; `stream.bytesRead` tells how far it has come. */
export function readSource(path: string, layout: SourceLayout): { stream: ReadStream; items: AsyncIterable<SourceItem> } {
  const stream = createReadStream(path, { highWaterMark: 256 * 1024 });
  switch (layout.kind) {
    case 'csv':
      return { stream, items: csvItems(stream, layout.flavour) };
    case 'yourls-sql':
      return { stream, items: yourlsSqlRecords(stream) };
    case 'shlink-table':
      return { stream, items: shlinkTableRecords(stream) };
    case 'json-lines':
      return { stream, items: shuntJsonLines(stream) };
    case 'kutt-json':
      return { stream, items: kuttLinks(stream) };
  }
}

async function* csvItems(stream: ReadStream, flavour: CsvFlavour): AsyncGenerator<SourceItem> {
  let map: ReturnType<typeof csvMapper> | null = null;
  for await (const row of csvRows(stream)) {
    if (!('cells' in row)) {
      yield { kind: 'problem', line: row.line, reason: row.problem, raw: row.raw };
      continue;
    }
    if (map === null) {
      map = csvMapper(flavour, row.cells);
      continue;
    }
    const record = map(row.cells, row.line);
    if (typeof record === 'string') yield { kind: 'problem', line: row.line, reason: record, raw: row.cells.join(',') };
    else yield record;
  }
}
