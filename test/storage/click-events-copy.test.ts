import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { writeBatch } from '../../src/analytics/analytics-writer.js';
import type { EnrichedClick } from '../../src/analytics/enriched-click.js';
import { isDataError, type Database, type Queryable } from '../../src/storage/database.js';
import { openPglite } from '../../src/storage/embedded-pglite.js';
import { migrate } from '../../src/storage/migrate.js';
import { BACKENDS, backendTestOptions, type Backend } from '../helpers/backends.js';
import { makeClick } from '../helpers/enriched-click-fixture.js';
import { openFreshDatabase } from '../helpers/fresh-database.js';

/**
 * The raw events go in by COPY on the connection that the click writers use: PGlite itself
 * in the store thread, a pooled connection on PostgreSQL. These values must come back as they
 * were sent, whatever a user agent or referrer holds.
 */
const NASTY = [
  'tab\there',
  'newline\nthere',
  'carriage\r\nreturn',
  'back\\slash \\N \\. \\t',
  '\\',
  '\\.',
  'ünïcode ✓ 日本語 😀',
  'quotes "double" \'single\' , comma ; semicolon',
  '\ttrailing tab\t',
  '\n',
  '',
];

async function openStore(backend: Backend): Promise<{ db: Database; close: () => Promise<void> }> {
  if (backend === 'postgres') return openFreshDatabase(backend);
  const db = await openPglite('memory://');
  await migrate(db);
  return { db, close: () => db.close() };
}

async function stored(db: Queryable, code: string): Promise<{ id: string; user_agent: string | null; referrer: string | null; browser: string | null }[]> {
  const result = await db.query<{ id: string; user_agent: string | null; referrer: string | null; browser: string | null }>(
    'SELECT id::text, user_agent, referrer, browser FROM click_events WHERE code = $1 ORDER BY id',
    [code],
  );
  return result.rows;
}

const expected = (clicks: readonly EnrichedClick[]): { id: string; user_agent: string | null; referrer: string | null; browser: string | null }[] =>
  clicks.map((click) => ({ id: click.id, user_agent: click.userAgent, referrer: click.referrer, browser: click.browser }));

for (const backend of BACKENDS) {
  describe(`raw click events by COPY (${backend})`, await backendTestOptions(backend), () => {
    let store: { db: Database; close: () => Promise<void> };
    before(async () => {
      store = await openStore(backend);
    });
    after(() => store.close());

    test('the writers’ transactions can COPY', async () => {
      const copies = await store.db.transaction((tx) => Promise.resolve(tx.copyIn !== undefined));
      assert.equal(copies, true);
    });

    test('tabs, newlines, backslashes, unicode and nulls come back as they were', async () => {
      const at = '2025-03-10T10:00:00.000Z';
      const clicks = [
        ...NASTY.map((text) => makeClick({ code: 'copy-nasty', at, userAgent: text, referrer: `https://x.example/${text}`, browser: text })),
        makeClick({ code: 'copy-nasty', at, userAgent: null, referrer: null, browser: null }),
      ];
      const result = await writeBatch(store.db, clicks);
      assert.equal(result.inserted, clicks.length);
      const sorted = [...clicks].sort((a, b) => (a.id < b.id ? -1 : 1));
      assert.deepEqual(await stored(store.db, 'copy-nasty'), expected(sorted));
    });

    test('a second batch on the same connection reuses the stage, which held only the first batch’s rows', async () => {
      const at = '2025-03-11T10:00:00.000Z';
      const first = [makeClick({ code: 'copy-again', at }), makeClick({ code: 'copy-again', at })];
      const second = [makeClick({ code: 'copy-again', at }), ...first];
      assert.equal((await writeBatch(store.db, first)).inserted, 2);
      const again = await writeBatch(store.db, second);
      assert.deepEqual({ inserted: again.inserted, duplicates: again.duplicates }, { inserted: 1, duplicates: 2 });
      assert.equal((await stored(store.db, 'copy-again')).length, 3);
    });

    test('a value the store cannot hold (NUL) fails the batch as a data error, and the connection copies on', async () => {
      const at = '2025-03-13T10:00:00.000Z';
      await assert.rejects(writeBatch(store.db, [makeClick({ code: 'copy-nul', at }), makeClick({ code: 'copy-nul', at, userAgent: 'nul\u0000here' })]), isDataError);
      assert.equal((await stored(store.db, 'copy-nul')).length, 0);
      assert.equal((await writeBatch(store.db, [makeClick({ code: 'copy-nul', at })])).inserted, 1);
    });

    test('without COPY (a transaction proxied from another thread) the same values are stored', async () => {
      const at = '2025-03-12T10:00:00.000Z';
      const clicks = NASTY.map((text) => makeClick({ code: 'copy-json', at, userAgent: text, referrer: null, browser: text }));
      const proxied: Database = { ...store.db, transaction: (work) => store.db.transaction((tx) => work({ query: (text, params) => tx.query(text, params) })) };
      assert.equal((await writeBatch(proxied, clicks)).inserted, clicks.length);
      assert.deepEqual(await stored(store.db, 'copy-json'), expected([...clicks].sort((a, b) => (a.id < b.id ? -1 : 1))));
    });
  });
}
