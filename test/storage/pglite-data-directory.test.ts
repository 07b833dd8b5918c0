/**
 * A new embedded data directory: initdb runs in a thread that ends (embedded-pglite.ts), so
 * the memory PGlite's initdb instance holds (about 450 MB, never collected) leaves with it.
 * Each open runs in a process of its own, so no other PGlite of this file is counted.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const pgliteModule = new URL('../../src/storage/embedded-pglite.ts', import.meta.url).href;

/** Opens `dataDir` in a new Node process, runs `sql`, and reports its rows and the process's memory outside V8's heap. */
async function openInChild(dataDir: string, sql: string): Promise<{ rows: unknown[]; externalMb: number }> {
  const script = `
    const { openPglite } = await import(${JSON.stringify(pgliteModule)});
    const db = await openPglite(${JSON.stringify(dataDir)});
    const { rows } = await db.query(${JSON.stringify(sql)});
    const externalMb = process.memoryUsage().external / 1048576;
    await db.close();
    console.log(JSON.stringify({ rows, externalMb }));`;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { timeout: 120_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { rows: unknown[]; externalMb: number };
}

describe('a new embedded data directory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shunt-pgdata-'));
  const dataDir = join(dir, 'data');
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('is created and opened without keeping initdb in memory; the next start finds its data', { timeout: 240_000 }, async () => {
    const created = await openInChild(dataDir, "CREATE TABLE kept AS SELECT 'still here' AS note");
    assert.ok(existsSync(join(dataDir, 'PG_VERSION')), 'the directory holds a cluster');
    // Opening an existing directory holds about 200 MB outside the heap; with initdb's
    // instance still referenced, a new one held about 630 MB.
    assert.ok(created.externalMb < 400, `${Math.round(created.externalMb)} MB outside the V8 heap after creating the directory`);
    const reopened = await openInChild(dataDir, 'SELECT note FROM kept');
    assert.deepEqual(reopened.rows, [{ note: 'still here' }]);
    assert.ok(reopened.externalMb < 400, `${Math.round(reopened.externalMb)} MB outside the V8 heap on reopening`);
  });
});
