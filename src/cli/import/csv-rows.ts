/** Streams the rows of a CSV file with csv-parse; a malformed record becomes a problem, not the end of the import. */
import type { Readable } from 'node:stream';
import { parse } from 'csv-parse';

export interface CsvRow {
  line: number;
  cells: string[];
}

export type CsvItem = CsvRow | { line: number; problem: string; raw: string };

export async function* csvRows(input: Readable): AsyncGenerator<CsvItem> {
  const skipped: { line: number; problem: string; raw: string }[] = [];
  const parser = parse({
    bom: true,
    info: true,
    relax_column_count: true,
    skip_empty_lines: true,
    skip_records_with_error: true,
    on_skip: (error, raw) => {
      const line: unknown = error?.lines;
      skipped.push({ line: typeof line === 'number' ? line : 0, problem: error?.message ?? 'unreadable CSV record', raw: raw ?? '' });
      return undefined;
    },
  });
  input.on('error', (error) => parser.destroy(error));
  input.pipe(parser);
  for await (const item of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
    while (skipped.length > 0) yield skipped.shift() as CsvItem;
    yield { line: item.info.lines, cells: item.record };
  }
  while (skipped.length > 0) yield skipped.shift() as CsvItem;
}

/** Header names compared without case, spaces or punctuation: `Long URL`, `long_url` and `longUrl` are one column. */
export function columnKey(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/** Reads cells by column name; a missing column reads as undefined. */
export function columnReader(header: readonly string[]): (cells: readonly string[], ...names: string[]) => string | undefined {
  const index = new Map<string, number>();
  header.forEach((name, i) => {
    const key = columnKey(name);
    if (!index.has(key)) index.set(key, i);
  });
  // The same few names are asked for on every row: each is normalised once.
  const byName = new Map<string, number | undefined>();
  const find = (name: string): number | undefined => {
    if (!byName.has(name)) byName.set(name, index.get(columnKey(name)));
    return byName.get(name);
  };
  return (cells, ...names) => {
    for (const name of names) {
      const i = find(name);
      if (i !== undefined) return cells[i];
    }
    return undefined;
  };
}
