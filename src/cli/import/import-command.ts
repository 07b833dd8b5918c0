/** `shunt import <file>`: links from another shortener's export, or from `shunt export`. */
import { createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { Config } from '../../config/config.js';
import { KeyRepository } from '../../keys/key-repository.js';
import { codeAllocator } from '../../links/code-key.js';
import { installationPolicy } from '../../links/destination-policy.js';
import { LinkImportRepository } from '../../links/link-import-repository.js';
import { LinkRepository } from '../../links/link-repository.js';
import { csvLine } from '../csv-line.js';
import { integerOption, out, UsageError, withDatabase } from '../cli-io.js';
import { LineWriter } from '../line-writer.js';
import { importLinks, type ImportCounts } from './link-importer.js';
import { Progress } from './progress.js';
import { describeLayout, IMPORT_FORMATS, readSource, resolveLayout, SourceFormatError, type ImportFormat } from './source-formats.js';

export const IMPORT_USAGE = `Usage: shunt import <file> [options]

Creates links from another shortener's export, or from \`shunt export\`.

Formats (--format, default auto: told from the file's content):
  csv      CSV with a header: url, alias, title, tags (separated by |), expiresAt[, createdAt, clicks]
  json     JSON Lines written by \`shunt export --format json\`
  bitly    Bitly's CSV link export (long_url, link, title, created_at, tags, custom_bitlinks[, clicks])
  shlink   Shlink's CSV export, or the table printed by \`shlink short-url:list\`
  yourls   a SQL dump of YOURLS's yourls_url table (INSERT statements), or its CSV export
  kutt     Kutt's API v2 link list (GET /api/v2/links), one page or several

Options:
  --format F         auto|csv|json|bitly|shlink|yourls|kutt (default auto)
  --dry-run          check every row and report; create nothing
  --owner KEY_ID     the API key that owns the links (default: none, admin-only links)
  --rejects PATH     rejected rows and why (default <file>.rejects.csv)
  --renames PATH     original codes that could not be kept, and the new ones (default <file>.renames.csv)
  --batch-size N     rows per INSERT statement (default 2000)
  --json             print the summary as JSON

Original short codes are kept as aliases when they fit Shunt's alias rules and are free;
other links get a generated code, listed in the renames file. Visit counts are kept as
imported totals (totals.imported in the stats API). Importing a file again creates nothing
twice. Exit status: 0 done, 3 done but some rows were rejected, 2 bad usage.
`;

interface Summary extends ImportCounts {
  file: string;
  format: string;
  dryRun: boolean;
  seconds: number;
  rowsPerSecond: number;
  peakRssBytes: number;
  /** User and system CPU of this process: a rate a busy machine does not distort. */
  cpuSeconds: number;
  rejectsFile: string;
  renamesFile: string;
}

export async function importCommand(config: Config, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      format: { type: 'string', default: 'auto' },
      'dry-run': { type: 'boolean', default: false },
      owner: { type: 'string' },
      rejects: { type: 'string' },
      renames: { type: 'string' },
      'batch-size': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  const file = positionals[0];
  if (file === undefined || positionals.length > 1) throw new UsageError('import needs exactly one file');
  if (!(IMPORT_FORMATS as readonly string[]).includes(values.format)) {
    throw new UsageError(`--format must be one of ${IMPORT_FORMATS.join(', ')}, got "${values.format}"`);
  }
  const batchSize = integerOption('batch-size', values['batch-size'], 2000, 1, 50_000);
  let totalBytes: number;
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new UsageError(`${file} is not a file`);
    totalBytes = info.size;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
  }
  let layout;
  try {
    layout = await resolveLayout(file, values.format as ImportFormat);
  } catch (error) {
    if (error instanceof SourceFormatError) throw new UsageError(`${file}: ${error.message}`);
    throw error;
  }

  return withDatabase(config, async (db) => {
    const ownerKeyId = values.owner ?? null;
    if (ownerKeyId !== null) {
      const key = await new KeyRepository(db).findById(ownerKeyId);
      if (key === null || key.revokedAt !== null) throw new UsageError(`--owner: no active API key with id "${ownerKeyId}"`);
    }
    const rejectsFile = values.rejects ?? `${file}.rejects.csv`;
    const renamesFile = values.renames ?? `${file}.renames.csv`;
    const rejects = new LineWriter(createWriteStream(rejectsFile));
    const renames = new LineWriter(createWriteStream(renamesFile));
    await rejects.write(csvLine(['line', 'reason', 'url', 'original_code', 'raw']));
    await renames.write(csvLine(['line', 'original_code', 'code', 'reason']));

    const tty = process.stderr.isTTY;
    const progress = new Progress((text) => void process.stderr.write(text), tty);
    const { stream, items } = readSource(file, layout);
    const started = performance.now();
    let counts: ImportCounts;
    try {
      counts = await importLinks(items, {
        db,
        links: new LinkRepository(db),
        imports: new LinkImportRepository(db),
        codes: await codeAllocator(db, config.codes),
        policy: installationPolicy(config.destinations, config.baseUrl),
        ownerKeyId,
        dryRun: values['dry-run'],
        batchSize,
        report: {
          reject: (entry) => rejects.write(csvLine([entry.line, entry.reason, entry.url, entry.originalCode, entry.raw ?? null])),
          rename: (entry) => renames.write(csvLine([entry.line, entry.originalCode, entry.code ?? '(generated)', entry.reason])),
        },
        onBatch: (now) => progress.update({ bytesRead: stream.bytesRead, totalBytes, rows: now.read, created: now.created }),
      });
    } finally {
      stream.destroy();
      await rejects.end();
      await renames.end();
    }
    progress.done({ bytesRead: totalBytes, totalBytes, rows: counts.read, created: counts.created });
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage();
    const summary: Summary = {
      file,
      format: describeLayout(layout),
      dryRun: values['dry-run'],
      ...counts,
      seconds: Number(seconds.toFixed(3)),
      rowsPerSecond: Math.round(counts.read / Math.max(seconds, 0.001)),
      // maxRSS is in kilobytes.
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      cpuSeconds: Number(((cpu.user + cpu.system) / 1e6).toFixed(3)),
      rejectsFile,
      renamesFile,
    };
    if (values.json) out(JSON.stringify(summary));
    else printSummary(summary);
    return counts.rejected > 0 ? 3 : 0;
  });
}

function printSummary(s: Summary): void {
  const n = (value: number): string => value.toLocaleString('en-US');
  out(`${s.dryRun ? 'Dry run: read' : 'Read'} ${n(s.read)} rows of ${s.file} (${s.format}) in ${s.seconds.toFixed(1)} s, ${n(s.rowsPerSecond)} rows/s; peak RSS ${Math.round(s.peakRssBytes / 1048576)} MiB`);
  out(`  ${s.dryRun ? 'would create' : 'created'} ${n(s.created)} links: ${n(s.keptCodes)} kept their original code, ${n(s.renamed)} got a new code${s.renamed > 0 ? ` (see ${s.renamesFile})` : ''}`);
  out(`  skipped ${n(s.skipped)} rows already imported`);
  out(`  rejected ${n(s.rejected)} rows${s.rejected > 0 ? ` (reasons in ${s.rejectsFile})` : ''}`);
}
