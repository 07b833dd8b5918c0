import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encodeProducedClickBatch } from '../../src/clicks/click-event-codec.js';
import { identified } from '../../src/clicks/click-event.js';
import { AppError } from '../../src/shared/errors.js';
import { isDataError, isUniqueViolation } from '../../src/storage/database.js';
import { EmbeddedStore } from '../../src/storage/embedded-store.js';
import { migrate } from '../../src/storage/migrate.js';

describe('the embedded store thread', () => {
  let db: EmbeddedStore;
  before(async () => {
    db = await EmbeddedStore.open('memory://');
    await db.query('CREATE TABLE t (id int PRIMARY KEY, note text CONSTRAINT t_note_key UNIQUE, n numeric, b bytea, j jsonb, at timestamptz, tags text[])');
  });
  after(() => db.close());

  test('values cross both ways as pg parses them on the HTTP thread', async () => {
    const at = new Date('2025-03-01T10:00:00.123Z');
    const bytes = Buffer.from([0, 1, 2, 255]);
    await db.query('INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6, $7)', [1, 'one', '12345678901234567890.5', bytes, { a: [1, 'x', null] }, at, ['a', 'b,c']]);
    const { rows, rowCount, command, fields } = await db.query('SELECT *, 9007199254740993::int8 AS big, NULL::text AS nothing FROM t WHERE id = $1', [1]);
    assert.equal(command, 'SELECT');
    assert.equal(rowCount, 1);
    assert.deepEqual(
      fields.map((field) => field.name),
      ['id', 'note', 'n', 'b', 'j', 'at', 'tags', 'big', 'nothing'],
    );
    const row = rows[0] as Record<string, unknown>;
    assert.equal(row.id, 1);
    assert.equal(row.n, '12345678901234567890.5', 'numeric stays an exact string');
    assert.equal(row.big, '9007199254740993', 'int8 stays an exact string');
    assert.ok(Buffer.isBuffer(row.b), 'bytea is a Buffer again');
    assert.deepEqual(row.b, bytes);
    assert.deepEqual(row.j, { a: [1, 'x', null] });
    assert.ok(row.at instanceof Date);
    assert.equal((row.at).toISOString(), at.toISOString());
    assert.deepEqual(row.tags, ['a', 'b,c']);
    assert.equal(row.nothing, null);
  });

  test('a text of several statements answers one result per statement', async () => {
    const results = (await db.query('SELECT 1 AS a; SELECT 2 AS b')) as unknown as { rows: unknown[] }[];
    assert.ok(Array.isArray(results));
    assert.deepEqual(
      results.map((result) => result.rows),
      [[{ a: 1 }], [{ b: 2 }]],
    );
  });

  test('errors keep their SQLSTATE, constraint and detail', async () => {
    await db.query("INSERT INTO t (id, note) VALUES (2, 'dup')");
    const unique = await db.query("INSERT INTO t (id, note) VALUES (3, 'dup')").catch((error: unknown) => error);
    assert.ok(unique instanceof Error);
    assert.ok(isUniqueViolation(unique, 't_note_key'), `not a unique violation on t_note_key: ${JSON.stringify(unique)}`);
    assert.match(String((unique as { detail?: unknown }).detail), /already exists/);
    const data = await db.query("SELECT 'x'::int").catch((error: unknown) => error);
    assert.ok(isDataError(data));
    assert.equal((data as { code?: unknown }).code, '22P02');
    const ok = await db.query('SELECT 1 AS one');
    assert.deepEqual(ok.rows, [{ one: 1 }], 'the store carries on after an error');
  });

  test('a transaction commits on return and rolls back when its work throws', async () => {
    const value = await db.transaction(async (tx) => {
      await tx.query("INSERT INTO t (id, note) VALUES (10, 'ten')");
      return (await tx.query<{ n: string }>('SELECT count(*) AS n FROM t WHERE id = 10')).rows[0]?.n;
    });
    assert.equal(value, '1');
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query("INSERT INTO t (id, note) VALUES (11, 'eleven')");
        throw new Error('changed my mind');
      }),
      /changed my mind/,
    );
    const failed = await db
      .transaction(async (tx) => {
        await tx.query("INSERT INTO t (id, note) VALUES (12, 'twelve')");
        await tx.query("INSERT INTO t (id, note) VALUES (13, 'twelve')");
      })
      .catch((error: unknown) => error);
    assert.ok(isUniqueViolation(failed), 'the error inside a transaction keeps its code');
    const { rows } = await db.query<{ id: number }>('SELECT id FROM t WHERE id >= 10 ORDER BY id');
    assert.deepEqual(
      rows.map((row) => row.id),
      [10],
    );
  });

  test('queries and transactions from many callers at once each run whole', async () => {
    await db.query('CREATE TABLE counter (n int NOT NULL)');
    await db.query('INSERT INTO counter VALUES (0)');
    await Promise.all(
      Array.from({ length: 20 }, () =>
        db.transaction(async (tx) => {
          const { rows } = await tx.query<{ n: number }>('SELECT n FROM counter');
          await tx.query('UPDATE counter SET n = $1', [(rows[0]?.n ?? 0) + 1]);
        }),
      ),
    );
    const { rows } = await db.query<{ n: number }>('SELECT n FROM counter');
    assert.equal(rows[0]?.n, 20, 'no transaction saw another half done');
  });
});

describe('when the store thread dies', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shunt-thread-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a store on disk fails what waited with a retryable 503, then opens again with its data', async () => {
    const db = await EmbeddedStore.open(join(dir, 'data'));
    try {
      await db.query('CREATE TABLE kept (v text)');
      await db.query("INSERT INTO kept VALUES ('before')");
      const restarted = new Promise<void>((resolve) => db.onRestart(resolve));
      const waiting = db.query('SELECT pg_sleep(2)');
      await db.killThread();
      const error = await waiting.catch((caught: unknown) => caught);
      assert.ok(error instanceof AppError, `not an AppError: ${String(error)}`);
      assert.equal(error.code, 'dependency_unavailable');
      assert.equal(error.status, 503);
      await assert.rejects(db.ping(), AppError, 'no request waits on a dead thread');
      await restarted;
      const { rows } = await db.query<{ v: string }>('SELECT v FROM kept');
      assert.deepEqual(rows, [{ v: 'before' }]);
    } finally {
      await db.close();
    }
  });

  test('an in-memory store is not restarted: every request fails at once instead of hanging', async () => {
    const db = await EmbeddedStore.open('memory://');
    try {
      await db.killThread();
      await new Promise((resolve) => setTimeout(resolve, 50));
      await assert.rejects(db.query('SELECT 1'), (error: unknown) => error instanceof AppError && error.code === 'dependency_unavailable');
      assert.equal(db.alive, false);
    } finally {
      await db.close();
    }
  });
});

describe('clicks on the store thread', () => {
  test('batches posted in the same tick as clicks-start are each answered, in order', { timeout: 60_000 }, async () => {
    const db = await EmbeddedStore.open('memory://');
    try {
      await migrate(db);
      const { rows } = await db.query<{ id: string }>("INSERT INTO links (code, url) VALUES ('thread1', 'https://example.com/') RETURNING id");
      const linkId = rows[0]?.id ?? '';
      const answers: { t: string; batch: number }[] = [];
      const all = new Promise<void>((resolve) =>
        db.onClickReply((reply) => {
          answers.push({ t: reply.t, batch: reply.batch });
          if (answers.length === 3) resolve();
        }),
      );
      // The click host loads on the first clicks-start; nothing posted meanwhile may be dropped.
      db.startClicks({ storeRawIp: false });
      for (const batch of [1, 2, 3]) {
        const events = [identified({ linkId, code: 'thread1', at: new Date(), method: 'GET', referrer: null, userAgent: null, ip: null })];
        db.postClicks({ t: 'clicks', batch, payload: Buffer.from(encodeProducedClickBatch(events)), events: 1, announce: false });
      }
      await all;
      assert.deepEqual(answers, [1, 2, 3].map((batch) => ({ t: 'clicks-done', batch })));
      const stored = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM click_events');
      assert.equal(stored.rows[0]?.n, 3);
    } finally {
      await db.close();
    }
  });
});
