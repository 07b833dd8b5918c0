/**
 * CPU cost of `shunt import`, which a loaded machine does not distort the way it does
 * wall-clock rates: CPU seconds per 100,000 rows in the importer process and in the
 * PostgreSQL backends serving it (their /proc/<pid>/stat, sampled while they live, so the
 * server must be on this machine).
 *   npm run bench:import-cpu                          # 100,000 lines
 *   BENCH_IMPORT_LINES=300000 BENCH_IMPORT_PROFILE=/tmp/prof npm run bench:import-cpu
 * BENCH_IMPORT_PROFILE writes the importer's --cpu-prof profile into that directory.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createPostgresDatabase } from '../test/helpers/backends.js';
import { writeImportFile } from './import-file.js';
import { procStat } from '../test/helpers/proc-stat.js';

const LINES = Number(process.env.BENCH_IMPORT_LINES ?? 100_000);
const BATCH = process.env.BENCH_IMPORT_BATCH ?? '5000';
const PROFILE = process.env.BENCH_IMPORT_PROFILE;

interface Run {
  summary: Record<string, unknown>;
  backendSeconds: number;
}

async function runImport(file: string, databaseUrl: string, name: string): Promise<Run> {
  const watcher = new pg.Client({ connectionString: databaseUrl });
  await watcher.connect();
  // The last reading of each backend: one that exits takes its CPU with it.
  const cpuMs = new Map<number, number>();
  let sampling = true;
  const sample = async (): Promise<void> => {
    while (sampling) {
      const result = await watcher.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
      for (const { pid } of result.rows) {
        const now = procStat(`/proc/${pid}/stat`);
        if (now !== null) cpuMs.set(pid, now.ms);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const sampler = sample();
  const args = [...(PROFILE === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', PROFILE]), 'dist/cli/main.js', 'import', file, '--json', '--batch-size', BATCH];
  const child = spawn(process.execPath, args, {
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', BASE_URL: 'http://sho.rt', DATABASE_URL: databaseUrl },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  const [code] = (await once(child, 'exit')) as [number | null];
  sampling = false;
  await sampler;
  await watcher.end();
  if (code !== 0) throw new Error(`import exited with ${String(code)}: ${stdout}`);
  let total = 0;
  for (const value of cpuMs.values()) total += value;
  return { summary: JSON.parse(stdout) as Record<string, unknown>, backendSeconds: total / 1000 };
}

const dir = mkdtempSync(join(tmpdir(), 'shunt-import-cpu-'));
const file = join(dir, 'links.csv');
try {
  await writeImportFile(file, LINES);
  const database = await createPostgresDatabase();
  try {
    const name = new URL(database.url).pathname.slice(1);
    const per100k = (seconds: number): string => ((seconds * 100_000) / LINES).toFixed(2);
    console.log(`${LINES.toLocaleString('en-US')} lines, batches of ${BATCH}`);
    for (const label of ['first run', 'second run (all skipped)']) {
      const { summary, backendSeconds } = await runImport(file, database.url, name);
      const importer = Number(summary.cpuSeconds);
      console.log(
        `${label}: ${String(summary.created)} created in ${String(summary.seconds)} s wall; CPU per 100k rows: importer ${per100k(importer)} s, PostgreSQL ${per100k(backendSeconds)} s` +
          `; peak RSS ${Math.round(Number(summary.peakRssBytes) / 1048576)} MiB`,
      );
      if (label === 'first run') {
        const bound = Math.max(importer, backendSeconds) / LINES;
        console.log(`  estimate with a core for each side: ${Math.round(1 / bound).toLocaleString('en-US')} rows/s`);
      }
    }
  } finally {
    await database.drop();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
