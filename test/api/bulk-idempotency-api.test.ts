/**
 * A bulk create with an Idempotency-Key commits all its items with its stored answer, or
 * nothing: a retry after a failure part-way creates every item once (no duplicates), and a
 * retry after success replays exactly what was committed. On PGlite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';

interface BulkItem {
  status: number;
  link?: { code: string; url: string };
}

for (const backend of BACKENDS) {
  describe(`bulk create with an Idempotency-Key (${backend})`, await backendTestOptions(backend), () => {
    let app: TestApp;
    before(async () => {
      app = await startTestApp(backend, { env: { RATE_LIMIT_KEY_PER_MINUTE: '1000000', RATE_LIMIT_IP_PER_MINUTE: '1000000' } });
    });
    after(() => app.close());

    const body = {
      links: [
        { url: 'https://example.com/1', alias: 'bulk-idem-1' },
        { url: 'https://example.com/2' },
        { url: 'https://example.com/fails-here' },
        { url: 'https://example.com/4', alias: 'bulk-idem-4' },
      ],
    };
    const bulk = (key: string) => app.request({ method: 'POST', url: '/api/v1/links/bulk', body, headers: { 'idempotency-key': key } });
    const count = async (): Promise<number> =>
      (await app.runtime.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM links WHERE url LIKE 'https://example.com/%'`)).rows[0]?.n ?? -1;

    test('a failure part-way commits none of the items; the retry creates each once', async () => {
      // The third item fails inside the store, after the first two were written.
      await app.runtime.db.query(`CREATE FUNCTION refuse_bulk() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.url = 'https://example.com/fails-here' THEN RAISE EXCEPTION 'simulated crash'; END IF; RETURN NEW; END $$`);
      await app.runtime.db.query('CREATE TRIGGER refuse_bulk BEFORE INSERT ON links FOR EACH ROW EXECUTE FUNCTION refuse_bulk()');
      const failed = await bulk('bulk-key-1');
      assert.equal(failed.statusCode, 500, failed.body);
      assert.equal(await count(), 0, 'nothing of the failed attempt is committed');
      await app.runtime.db.query('DROP TRIGGER refuse_bulk ON links');

      const retried = await bulk('bulk-key-1');
      assert.equal(retried.statusCode, 200, retried.body);
      const items = retried.json<{ items: BulkItem[] }>().items;
      assert.deepEqual(items.map((item) => item.status), [201, 201, 201, 201]);
      assert.equal(await count(), 4, 'each item once');
      // The links are visible at once (caches learnt of them after the commit).
      const alias = await app.request({ url: '/bulk-idem-1', key: null });
      assert.equal(alias.statusCode, 302);

      const replayed = await bulk('bulk-key-1');
      assert.equal(replayed.statusCode, 200);
      assert.equal(replayed.headers['idempotent-replayed'], 'true');
      assert.deepEqual(replayed.json<{ items: BulkItem[] }>().items, items, 'exactly what was committed');
      assert.equal(await count(), 4);
    });

    test('two bulks taking the same aliases in opposite orders both answer; each alias is created once', async () => {
      // Each insert locks its aliases in input order, so these two wait on each other: the
      // store picks one to fail, and that one must run again, not answer 500.
      const send = (aliases: readonly string[]) =>
        app.request({ method: 'POST', url: '/api/v1/links/bulk', body: { links: aliases.map((alias) => ({ url: `https://example.org/${alias}`, alias })) } });
      for (let round = 0; round < 4; round += 1) {
        const aliases = Array.from({ length: 400 }, (_, i) => `opposite-${round}-${i}`);
        const answers = await Promise.all([send(aliases), send([...aliases].reverse())]);
        for (const answer of answers) assert.equal(answer.statusCode, 200, answer.body.slice(0, 300));
        const items = answers.flatMap((answer) => answer.json<{ items: BulkItem[] }>().items);
        assert.equal(items.filter((item) => item.status === 201).length, aliases.length, 'each alias created by one of the two');
        assert.equal(items.filter((item) => item.status === 409).length, aliases.length, 'and refused to the other');
      }
    });

    test('an item refused on its own (alias taken) does not sink the others, and is replayed as refused', async () => {
      const again = await app.request({
        method: 'POST',
        url: '/api/v1/links/bulk',
        body: { links: [{ url: 'https://example.com/5', alias: 'bulk-idem-1' }, { url: 'https://example.com/6', alias: 'bulk-idem-6' }] },
        headers: { 'idempotency-key': 'bulk-key-2' },
      });
      assert.equal(again.statusCode, 200, again.body);
      assert.deepEqual(again.json<{ items: BulkItem[] }>().items.map((item) => item.status), [409, 201]);
      assert.equal(await count(), 5);
    });
  });
}
