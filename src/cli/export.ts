/** `shunt export`: every link, as a file `shunt import` reads back to the same links. */
import { createWriteStream } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Config } from '../config/config.js';
import { exportedLinks, type ExportedLink } from '../links/link-export-reader.js';
import { err, UsageError, withDatabase } from './cli-io.js';
import { csvLine } from './csv-line.js';
import { LineWriter } from './line-writer.js';

export const EXPORT_USAGE = `Usage: shunt export [options]

Writes every link (code, destination, title, tags, expiry, creation date) in a format
\`shunt import\` reads back to the same links.

Options:
  --format csv|json  CSV with a header (url, alias, title, tags separated by |, expiresAt,
                     createdAt[, clicks]), or JSON Lines, one link a line (default csv)
  --since DATE       only links created at or after DATE (ISO 8601, e.g. 2024-01-31)
  --clicks           add each link's click total: visits imported from elsewhere plus Shunt's own
  --output PATH      write to PATH instead of standard output
`;

const PAGE_SIZE = 5000;

function csvRecord(link: ExportedLink, withClicks: boolean): string {
  const cells = [link.url, link.code, link.title, link.tags.join('|'), link.expiresAt?.toISOString() ?? null, link.createdAt.toISOString()];
  return csvLine(withClicks ? [...cells, total(link)] : cells);
}

function jsonRecord(link: ExportedLink, withClicks: boolean): string {
  const record: Record<string, unknown> = {
    url: link.url,
    alias: link.code,
    title: link.title,
    tags: link.tags,
    expiresAt: link.expiresAt?.toISOString() ?? null,
    createdAt: link.createdAt.toISOString(),
  };
  if (withClicks) record.clicks = total(link);
  return `${JSON.stringify(record)}\n`;
}

function total(link: ExportedLink): number {
  return link.importedClicks + (link.clicks ?? 0);
}

export type ExportFormat = 'csv' | 'json';

/** The first line of an export (CSV only), or null. */
export function exportHeader(format: ExportFormat, withClicks: boolean): string | null {
  if (format === 'json') return null;
  const header = ['url', 'alias', 'title', 'tags', 'expiresAt', 'createdAt'];
  return csvLine(withClicks ? [...header, 'clicks'] : header);
}

/** One link of an export, line end included. */
export function exportRecord(format: ExportFormat, link: ExportedLink, withClicks: boolean): string {
  return format === 'csv' ? csvRecord(link, withClicks) : jsonRecord(link, withClicks);
}

export async function exportCommand(config: Config, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      format: { type: 'string', default: 'csv' },
      since: { type: 'string' },
      clicks: { type: 'boolean', default: false },
      output: { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length > 0) throw new UsageError(`export takes no arguments, got "${positionals.join(' ')}"`);
  const format = values.format;
  if (format !== 'csv' && format !== 'json') throw new UsageError(`--format must be csv or json, got "${format}"`);
  let since: Date | null = null;
  if (values.since !== undefined) {
    since = /^\d{4}-\d{2}-\d{2}/.test(values.since) ? new Date(values.since) : new Date(NaN);
    if (Number.isNaN(since.getTime())) throw new UsageError(`--since must be an ISO 8601 date, got "${values.since}"`);
  }
  const withClicks = values.clicks;
  return withDatabase(config, async (db) => {
    const stream = values.output === undefined ? process.stdout : createWriteStream(values.output);
    const writer = new LineWriter(stream);
    const header = exportHeader(format, withClicks);
    if (header !== null) await writer.write(header);
    let count = 0;
    for await (const link of exportedLinks(db, { since, withClicks, pageSize: PAGE_SIZE })) {
      await writer.write(exportRecord(format, link, withClicks));
      count += 1;
    }
    if (values.output !== undefined) await writer.end();
    err(`Exported ${count.toLocaleString('en-US')} links${values.output === undefined ? '' : ` to ${values.output}`}`);
    return 0;
  });
}
