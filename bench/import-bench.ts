/**
 * `shunt import` of a generated file: rate and peak memory, into a fresh PostgreSQL
 * database (BENCH_IMPORT_STORE=embedded: a fresh PGlite directory instead).
 *   npm run bench:import                      # 1,000,000 lines
 *   BENCH_IMPORT_LINES=100000 npm run bench:import
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPostgresDatabase } from '../test/helpers/backends.js';
import { writeImportFile } from './import-file.js';

const LINES = Number(process.env.BENCH_IMPORT_LINES ?? 1_000_000);
const STORE = process.env.BENCH_IMPORT_STORE ?? 'postgres';

function runImport(file: string, env: Record<string, string>): Record<string, unknown> {
  const result = spawnSync(process.execPath, ['dist/cli/main.js', 'import', file, '--json', '--batch-size', '5000'], {
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', BASE_URL: 'http://sho.rt', ...env },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (result.status !== 0) throw new Error(`import exited with ${result.status}: ${result.stdout}`);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

const dir = mkdtempSync(join(tmpdir(), 'shunt-import-bench-'));
const file = join(dir, 'links.csv');
try {
  await writeImportFile(file, LINES);
  const database = STORE === 'postgres' ? await createPostgresDatabase() : null;
  try {
    const env: Record<string, string> = database === null ? { DATA_DIR: join(dir, 'data') } : { DATABASE_URL: database.url };
    const first = runImport(file, env);
    const again = runImport(file, env);
    const mib = (bytes: unknown): number => Math.round(Number(bytes) / 1048576);
    console.log(`store: ${STORE}, ${LINES.toLocaleString('en-US')} lines`);
    console.log(`first run: ${String(first.created)} created in ${String(first.seconds)} s = ${String(first.rowsPerSecond)} rows/s, peak RSS ${mib(first.peakRssBytes)} MiB`);
    console.log(`second run (resume): ${String(again.created)} created, ${String(again.skipped)} skipped in ${String(again.seconds)} s, peak RSS ${mib(again.peakRssBytes)} MiB`);
  } finally {
    await database?.drop();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
