/**
 * The table `shlink short-url:list` prints (Symfony's console table): a header row naming the
 * columns (`Short Code`, `Title`, `Short URL`, `Long URL`, `Date created`, `Visits count`,
 * and `Tags` with --show-tags), rows of cells between `|` (or the box-drawing `│`), and rule
 * lines of `+---`, `─` and the like in between. Read a line at a time.
 */
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { columnReader } from './csv-rows.js';
import { splitTags, text, type SourceItem } from './source-record.js';

const CELL_SEPARATOR = /[|│┃]/;

function cellsOf(line: string): string[] | null {
  const trimmed = line.trim();
  if (!CELL_SEPARATOR.test(trimmed[0] ?? '')) return null;
  return trimmed.split(CELL_SEPARATOR).slice(1, -1).map((cell) => cell.trim());
}

/** True when a line of text looks like the header of that table. */
export function isShlinkTableHeader(line: string): boolean {
  const cells = cellsOf(line)?.map((cell) => cell.toLowerCase()) ?? [];
  return cells.includes('short code') && cells.includes('long url');
}

export async function* shlinkTableRecords(input: Readable): AsyncGenerator<SourceItem> {
  let cell: ReturnType<typeof columnReader> | null = null;
  let lineNumber = 0;
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    lineNumber += 1;
    const cells = cellsOf(line);
    // Rule lines, the page footer and the success message have no cells.
    if (cells === null || cells.every((value) => /^[-=─━+]*$/.test(value))) continue;
    if (isShlinkTableHeader(line)) {
      cell = columnReader(cells);
      continue;
    }
    if (cell === null) {
      yield { kind: 'problem', line: lineNumber, reason: 'a table row before the header row', raw: line };
      continue;
    }
    const url = text(cell(cells, 'Long URL'));
    const code = text(cell(cells, 'Short Code'));
    if (url === null) {
      yield { kind: 'problem', line: lineNumber, reason: 'Long URL is empty', raw: line };
      continue;
    }
    const shortUrl = text(cell(cells, 'Short URL'));
    yield {
      kind: 'record', line: lineNumber, family: 'shlink',
      sourceId: code === null ? null : `${shortUrl === null ? '' : hostOf(shortUrl)}/${code}`,
      code, url,
      title: text(cell(cells, 'Title')),
      tags: splitTags(text(cell(cells, 'Tags')), ','),
      createdAt: text(cell(cells, 'Date created')),
      expiresAt: null,
      clicks: text(cell(cells, 'Visits count', 'Visits')),
    };
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '';
  }
}
