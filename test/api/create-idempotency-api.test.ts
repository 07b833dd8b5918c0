/**
 * A single create with an Idempotency-Key commits its link with its stored answer, or
 * neither: a failure after the link is written but before its answer is stored leaves no
 * link, and the retry creates it exactly once. On PGlite (one connection: the transaction
 * must not wait on it) and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';

for (const backend of BACKENDS) {
  describe(`create with an Idempotency-Key (${backend})`, await backendTestOptions(backend), () => {
    let app: TestApp;
    before(async () => {
      app = await startTestApp(backend, { env: { RATE_LIMIT_KEY_PER_MINUTE: '1000000', RATE_LIMIT_IP_PER_MINUTE: '1000000' } });
    });
    after(() => app.close());

    const create = (key: string, body: Record<string, unknown>) =>
      app.request({ method: 'POST', url: '/api/v1/links', body, headers: { 'idempotency-key': key } });
    const count = async (url: string): Promise<number> =>
      (await app.runtime.db.query<{ n: number }>('SELECT count(*)::int AS n FROM links WHERE url = $1', [url])).rows[0]?.n ?? -1;

    for (const [name, key, body] of [
      ['a generated code', 'single-generated', { url: 'https://example.com/single-generated' }],
      ['an alias', 'single-alias', { url: 'https://example.com/single-alias', alias: 'single-idem' }],
    ] as const) {
      test(`with ${name}: a failure between the insert and the stored answer leaves no link; the retry creates it once`, async () => {
        // Storing the answer fails inside the store, after the link was written.
        await app.runtime.db.query(`CREATE FUNCTION refuse_answer() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN IF NEW.response_status IS NOT NULL THEN RAISE EXCEPTION 'simulated crash'; END IF; RETURN NEW; END $$`);
        await app.runtime.db.query('CREATE TRIGGER refuse_answer BEFORE UPDATE ON idempotency_keys FOR EACH ROW EXECUTE FUNCTION refuse_answer()');
        try {
          const failed = await create(key, body);
          assert.equal(failed.statusCode, 500, failed.body);
          assert.equal(await count(body.url), 0, 'the link was not committed without its answer');
        } finally {
          await app.runtime.db.query('DROP TRIGGER refuse_answer ON idempotency_keys');
          await app.runtime.db.query('DROP FUNCTION refuse_answer()');
        }

        const retried = await create(key, body);
        assert.equal(retried.statusCode, 201, retried.body);
        const link = retried.json<{ code: string; url: string }>();
        assert.equal(await count(body.url), 1, 'created once');
        assert.equal(retried.headers.location, `/api/v1/links/${link.code}`);
        // Visible at once: the caches learnt of it after the commit.
        const redirect = await app.request({ url: `/${link.code}`, key: null });
        assert.equal(redirect.statusCode, 302);

        const replayed = await create(key, body);
        assert.equal(replayed.statusCode, 201);
        assert.equal(replayed.headers['idempotent-replayed'], 'true');
        assert.deepEqual(replayed.json(), link, 'the committed answer');
        assert.equal(replayed.headers.etag, retried.headers.etag);
        assert.equal(await count(body.url), 1);
      });
    }

    test('an alias already taken is refused with a key, and the key is free for a corrected retry', async () => {
      const taken = await create('single-taken', { url: 'https://example.com/single-taken', alias: 'single-idem' });
      assert.equal(taken.statusCode, 409, taken.body);
      const corrected = await create('single-taken', { url: 'https://example.com/single-taken', alias: 'single-idem-2' });
      assert.equal(corrected.statusCode, 201, corrected.body);
      assert.equal(await count('https://example.com/single-taken'), 1);
    });

    test('many keyed creates at once each commit one link (the embedded store does not deadlock)', async () => {
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => create(`single-many-${i}`, { url: 'https://example.com/single-many', ...(i % 4 === 0 ? { password: 'correct horse' } : {}) })),
      );
      assert.deepEqual(answers.map((answer) => answer.statusCode), Array(20).fill(201));
      assert.equal(new Set(answers.map((answer) => answer.json<{ code: string }>().code)).size, 20);
      assert.equal(await count('https://example.com/single-many'), 20);
    });

    test('without a key a create still answers 201 with its Location and ETag', async () => {
      const plain = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/single-plain' } });
      assert.equal(plain.statusCode, 201, plain.body);
      assert.equal(plain.headers.location, `/api/v1/links/${plain.json<{ code: string }>().code}`);
      assert.ok(plain.headers.etag);
    });
  });
}
