/**
 * `shunt import`, `export`, `capacity` and `bench` as processes: on the embedded store (no
 * DATABASE_URL) and on PostgreSQL, a file imported, imported again (nothing created twice),
 * exported and imported into an empty store to the same links; --help and bad input; and a
 * load test of a running instance.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { BACKENDS, backendTestOptions, createPostgresDatabase, type Backend } from '../helpers/backends.js';
import { runShunt, startShunt } from '../helpers/process.js';

const FIXTURES = new URL('../fixtures/import/', import.meta.url).pathname;
const ADMIN = 'integration-admin-key-0123456789';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'shunt-ops-'));
  dirs.push(dir);
  return dir;
}
after(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

async function shunt(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = runShunt(args, { BASE_URL: 'http://sho.rt', ...env });
  const code = await child.exited;
  return { code, stdout: child.stdout(), stderr: child.stderr() };
}

async function store(backend: Backend): Promise<{ env: Record<string, string>; drop: () => Promise<void> }> {
  if (backend === 'embedded') return { env: { DATA_DIR: join(tempDir(), 'data') }, drop: () => Promise.resolve() };
  const database = await createPostgresDatabase();
  return { env: { DATABASE_URL: database.url }, drop: database.drop };
}

for (const backend of BACKENDS) {
  describe(`shunt import and export (${backend})`, await backendTestOptions(backend), () => {
    test('import, import again, export, import the export into an empty store', async () => {
      const source = await store(backend);
      const target = await store(backend);
      try {
        const dir = tempDir();
        const first = await shunt(['import', join(FIXTURES, 'yourls-dump.sql'), '--json', '--rejects', join(dir, 'r.csv'), '--renames', join(dir, 'n.csv')], source.env);
        assert.equal(first.code, 0, first.stderr);
        const summary = JSON.parse(first.stdout) as Record<string, unknown>;
        assert.equal(summary.format, 'YOURLS SQL dump');
        assert.deepEqual([summary.created, summary.keptCodes, summary.renamed, summary.rejected], [4, 3, 1, 0]);
        assert.match(readFileSync(join(dir, 'n.csv'), 'utf8'), /^line,original_code,code,reason\r\n23,api,[0-9A-Za-z]{7},"alias ""api"" is reserved"\r\n$/);
        assert.match(first.stderr, /^import: 100\.0% 4 rows/m, 'plain progress lines when not on a terminal');

        const again = await shunt(['import', join(FIXTURES, 'yourls-dump.sql'), '--rejects', join(dir, 'r.csv'), '--renames', join(dir, 'n.csv')], source.env);
        assert.equal(again.code, 0, again.stderr);
        assert.match(again.stdout, /created 0 links/);
        assert.match(again.stdout, /skipped 4 rows already imported/);

        const rejected = await shunt(['import', join(FIXTURES, 'plain.csv'), '--rejects', join(dir, 'r.csv'), '--renames', join(dir, 'n.csv')], source.env);
        assert.equal(rejected.code, 3, 'rows rejected: exit status 3');
        assert.equal(readFileSync(join(dir, 'r.csv'), 'utf8').trim().split('\r\n').length, 3);

        const exportFile = join(dir, 'links.jsonl');
        const exported = await shunt(['export', '--format', 'json', '--clicks', '--output', exportFile], source.env);
        assert.equal(exported.code, 0, exported.stderr);
        assert.match(exported.stderr, /Exported 7 links/);
        const back = await shunt(['import', exportFile, '--json', '--rejects', join(dir, 'r2.csv'), '--renames', join(dir, 'n2.csv')], target.env);
        assert.equal(back.code, 0, back.stderr);
        assert.equal((JSON.parse(back.stdout) as { keptCodes: number }).keptCodes, 7);
        const reexported = await shunt(['export', '--format', 'json', '--clicks'], target.env);
        const sorted = (text: string): string[] => text.trim().split('\n').sort();
        assert.deepEqual(sorted(reexported.stdout), sorted(readFileSync(exportFile, 'utf8')));
      } finally {
        await source.drop();
        await target.drop();
      }
    });
  });
}

describe('operator commands: help and bad input', () => {
  const env = (): Record<string, string> => ({ DATA_DIR: join(tempDir(), 'data') });

  test('every command has --help', async () => {
    for (const command of ['import', 'export', 'bench', 'capacity']) {
      const result = await shunt([command, '--help'], env());
      assert.equal(result.code, 0, command);
      assert.match(result.stdout, new RegExp(`^Usage: shunt ${command}`), command);
    }
  });

  test('bad input: a clear message, the usage, exit status 2, no stack trace', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'odd.csv'), 'name,value\na,b\n');
    const cases: [string[], RegExp][] = [
      [['import'], /import needs exactly one file/],
      [['import', join(dir, 'missing.csv')], /cannot read .*missing\.csv/],
      [['import', join(dir, 'odd.csv')], /header with a url column/],
      [['import', join(FIXTURES, 'plain.csv'), '--format', 'excel'], /--format must be one of/],
      [['import', join(FIXTURES, 'plain.csv'), '--owner', 'nobody'], /no active API key with id "nobody"/],
      [['import', join(FIXTURES, 'plain.csv'), '--frobnicate'], /Unknown option '--frobnicate'/],
      [['export', '--since', 'yesterday'], /--since must be an ISO 8601 date/],
      [['export', '--format', 'xml'], /--format must be csv or json/],
      [['capacity', '--redirects-per-month', '1e9'], /needs --redirects-per-month and --creates-per-month/],
      [['capacity', '--redirects-per-month', '1e9', '--creates-per-month=-5'], /--creates-per-month must be a number/],
      [['capacity', '--redirects-per-month', '1', '--creates-per-month', '1', '--bench', join(dir, 'odd.csv')], /--bench: cannot read/],
      [['bench'], /bench needs exactly one base URL/],
      [['bench', 'not a url'], /is not a URL/],
      [['bench', 'http://127.0.0.1:9', '--codes', 'a', '--rate', '0'], /--rate must be a number/],
    ];
    for (const [args, message] of cases) {
      const result = await shunt(args, env());
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message, args.join(' '));
      assert.match(result.stderr, /Usage: shunt/, args.join(' '));
      assert.doesNotMatch(result.stderr, /\n\s+at /, args.join(' '));
    }
  });

  test('capacity: a table by default, the whole plan with --json', async () => {
    const args = ['capacity', '--redirects-per-month', '6e9', '--creates-per-month', '6e8', '--months', '2'];
    const table = await shunt(args, env());
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^month +redirects\/mo/);
    const json = await shunt([...args, '--json'], env());
    const plan = JSON.parse(json.stdout) as { months: unknown[]; limitsHit: Record<string, unknown> };
    assert.equal(plan.months.length, 3);
    assert.ok('postgresBytes' in plan.limitsHit);
  });
});

describe('shunt bench against a running instance', () => {
  test('creates links, drives redirects, reports the client and the instance view; capacity reads the result', async () => {
    const server = await startShunt({ DATA_DIR: join(tempDir(), 'data'), ADMIN_API_KEY: ADMIN, BASE_URL: 'http://sho.rt', RATE_LIMIT_IP_PER_MINUTE: '10000000' });
    try {
      const result = await shunt(['bench', server.url, '--links', '5', '--duration', '2', '--connections', '4', '--rate', '200', '--json'], { DATA_DIR: join(tempDir(), 'data'), ADMIN_API_KEY: ADMIN });
      assert.equal(result.code, 0, result.stderr);
      const bench = JSON.parse(result.stdout) as {
        codes: number; throughput: { requests: number; requestsPerSecond: number }; latencyMs: Record<string, number>;
        errors: { errors: number; non2xx3xx: number }; server: { requests: number; byStatus: Record<string, number> } | null;
      };
      assert.equal(bench.codes, 5);
      assert.ok(bench.throughput.requests > 0);
      assert.ok(bench.throughput.requestsPerSecond <= 260, `asked 200/s, got ${bench.throughput.requestsPerSecond}`);
      for (const p of ['p50', 'p90', 'p99', 'p999']) assert.equal(typeof bench.latencyMs[p], 'number');
      assert.deepEqual([bench.errors.errors, bench.errors.non2xx3xx], [0, 0]);
      // The instance saw every redirect the client made (and the first scrape).
      assert.ok((bench.server?.byStatus['302'] ?? 0) >= bench.throughput.requests, JSON.stringify(bench.server));
      const file = join(tempDir(), 'bench.json');
      writeFileSync(file, result.stdout);
      const capacity = await shunt(['capacity', '--bench', file, '--redirects-per-month', '1e9', '--creates-per-month', '1e6', '--json', '--months', '0'], { DATA_DIR: join(tempDir(), 'data') });
      assert.equal(capacity.code, 0, capacity.stderr);
      assert.equal((JSON.parse(capacity.stdout) as { inputs: { redirectsPerSecondPerInstance: number } }).inputs.redirectsPerSecondPerInstance, bench.throughput.requestsPerSecond);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });
});
