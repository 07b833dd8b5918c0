/**
 * The proof that generated codes are unique across instances (ADR 0001): several runtimes,
 * each with its own pool and code allocator, share one database and create links as fast
 * as they can; the database then holds exactly as many distinct codes as links.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import pg from 'pg';
import type { Actor } from '../../src/links/link.js';
import type { CodeSource } from '../../src/links/link-service.js';
import type { Runtime } from '../../src/server/runtime.js';
import { backendTestOptions, createPostgresDatabase } from '../helpers/backends.js';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/test-app.js';

const CODE_PATTERN = '^[0-9A-Za-z]{7}$';
const ENV = { CODE_LENGTH: '7', LOG_LEVEL: 'warn' };

async function adminActor(runtime: Runtime): Promise<Actor> {
  const actor = await runtime.deps.keys.authenticate(ADMIN_KEY);
  assert.ok(actor !== null, 'the configured admin key authenticates');
  return actor;
}

/**
 * Records every code the runtime's allocator hands out. The unique constraint plus the
 * service's retry on a collision would hide a duplicate from a count of rows, so the
 * proof is on the codes drawn: as many as links, and all distinct.
 */
function recordDrawnCodes(runtime: Runtime, drawn: string[]): void {
  const service = runtime.deps.links as unknown as { codes: CodeSource };
  const allocator = service.codes;
  assert.equal(typeof allocator.next, 'function', 'LinkService keeps its code source in `codes`');
  service.codes = {
    next: async () => {
      const code = await allocator.next();
      drawn.push(code);
      return code;
    },
  };
}

/** Creates `total` links through the service with `concurrency` callers in flight. */
async function createLinks(runtime: Runtime, label: string, total: number, concurrency: number): Promise<void> {
  const actor = await adminActor(runtime);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next;
      next += 1;
      if (i >= total) return;
      await runtime.deps.links.create({ url: `https://example.com/${label}/${i}` }, actor);
      // The embedded store answers within microtasks: without a turn of the event loop
      // here, its callers would starve the PostgreSQL case running alongside (its pool's
      // connect timers fire before the sockets are read). Requests from a socket get that
      // turn anyway.
      await yieldToEventLoop();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
}

type Counts = {
  total: number;
  distinct: number;
  wellFormed: number;
  generated: number;
};

async function counts(runtime: Runtime): Promise<Counts> {
  const result = await runtime.db.query<Counts>(
    `SELECT count(*)::int AS total, count(DISTINCT code)::int AS distinct,
            (count(*) FILTER (WHERE code ~ $1))::int AS "wellFormed",
            (count(*) FILTER (WHERE NOT custom_alias))::int AS generated
     FROM links`,
    [CODE_PATTERN],
  );
  const row = result.rows[0];
  assert.ok(row !== undefined);
  return row;
}

function report(label: string, links: number, startedAt: number): void {
  const seconds = (performance.now() - startedAt) / 1000;
  console.log(`# ${label}: ${links} links in ${seconds.toFixed(1)} s (${Math.round(links / seconds)} links/s)`);
}

/** Durability is not under test: no WAL flush per commit keeps the run short. */
async function relaxDurability(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`ALTER DATABASE "${new URL(url).pathname.slice(1)}" SET synchronous_commit = off`);
  } finally {
    await client.end();
  }
}

// Both cases run side by side (each spends much of its time waiting on its store). The
// embedded store starts first: compiling PGlite blocks the event loop for seconds, which
// would time out PostgreSQL connections being opened at the same moment.
describe('code uniqueness', { concurrency: 2 }, async () => {
  const postgresOptions = await backendTestOptions('postgres');
  let embedded: TestApp | undefined;
  let instances: TestApp[] = [];
  let dropDatabase: (() => Promise<void>) | undefined;

  before(async () => {
    embedded = await startTestApp('embedded', { env: ENV });
    if (postgresOptions.skip !== undefined) return;
    const database = await createPostgresDatabase();
    dropDatabase = database.drop;
    await relaxDurability(database.url);
    // Both instances start at once, as in a rolling deploy: migrations, the admin key and
    // the permutation key are all created concurrently.
    instances = await Promise.all([
      startTestApp('postgres', { databaseUrl: database.url, env: ENV }),
      startTestApp('postgres', { databaseUrl: database.url, env: ENV }),
    ]);
  });

  after(async () => {
    await Promise.all([embedded?.close(), ...instances.map((app) => app.close())]);
    await dropDatabase?.();
  });

  test('postgres: two runtimes on one database create 100,000 links → 100,000 distinct 7-character codes', { ...postgresOptions, timeout: 240_000 }, async () => {
    const [first, second] = instances;
    assert.ok(first !== undefined && second !== undefined);
    assert.notEqual(first.runtime.db, second.runtime.db, 'two pools');
    assert.notEqual(first.runtime.deps.links, second.runtime.deps.links, 'two services, two code allocators');

    const drawn: string[] = [];
    recordDrawnCodes(first.runtime, drawn);
    recordDrawnCodes(second.runtime, drawn);
    const startedAt = performance.now();
    await Promise.all([
      createLinks(first.runtime, 'one', 50_000, 16),
      createLinks(second.runtime, 'two', 50_000, 16),
    ]);
    report('postgres, 2 runtimes', 100_000, startedAt);

    const result = await counts(first.runtime);
    assert.equal(result.total, 100_000);
    assert.equal(result.distinct, 100_000);
    assert.equal(result.wellFormed, 100_000, `every code matches ${CODE_PATTERN}`);
    assert.equal(result.generated, 100_000);
    assert.equal(drawn.length, 100_000, 'no code was retried after a collision');
    assert.equal(new Set(drawn).size, 100_000, 'the two allocators never handed out the same code');
    const admins = await first.runtime.db.query("SELECT 1 FROM api_keys WHERE role = 'admin'");
    assert.equal(admins.rowCount, 1, 'one admin key for both instances');
  });

  test('embedded: one runtime creates 20,000 links → all codes distinct and 7 characters', { timeout: 240_000 }, async () => {
    assert.ok(embedded !== undefined);
    const drawn: string[] = [];
    recordDrawnCodes(embedded.runtime, drawn);
    const startedAt = performance.now();
    await createLinks(embedded.runtime, 'embedded', 20_000, 16);
    report('embedded, 1 runtime', 20_000, startedAt);
    const result = await counts(embedded.runtime);
    assert.deepEqual(result, { total: 20_000, distinct: 20_000, wellFormed: 20_000, generated: 20_000 });
    assert.equal(drawn.length, 20_000, 'no code was retried after a collision');
    assert.equal(new Set(drawn).size, 20_000);
  });
});
