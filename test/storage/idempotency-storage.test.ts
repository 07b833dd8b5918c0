import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { IDEMPOTENCY_TTL_HOURS, IdempotencyStore, requestFingerprint } from '../../src/http/idempotency-store.js';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { openFreshDatabase, type FreshDatabase } from '../helpers/fresh-database.js';

const KEY = 'key_idem_owner';
const fingerprintA = requestFingerprint('POST', '/api/v1/links', { url: 'https://example.com/a' });
const fingerprintB = requestFingerprint('POST', '/api/v1/links', { url: 'https://example.com/b' });

test('requestFingerprint is stable and sensitive to method, path and body', () => {
  assert.equal(fingerprintA, requestFingerprint('POST', '/api/v1/links', { url: 'https://example.com/a' }));
  assert.match(fingerprintA, /^[0-9a-f]{64}$/);
  assert.notEqual(fingerprintA, fingerprintB);
  assert.notEqual(fingerprintA, requestFingerprint('PUT', '/api/v1/links', { url: 'https://example.com/a' }));
  assert.notEqual(fingerprintA, requestFingerprint('POST', '/api/v1/links/bulk', { url: 'https://example.com/a' }));
  assert.equal(requestFingerprint('POST', '/x', undefined), requestFingerprint('POST', '/x', null));
});

for (const backend of BACKENDS) {
  describe(`IdempotencyStore (${backend})`, await backendTestOptions(backend), () => {
    let fresh: FreshDatabase;
    let store: IdempotencyStore;
    before(async () => {
      fresh = await openFreshDatabase(backend);
      store = new IdempotencyStore(fresh.db);
    });
    after(() => fresh.close());

    test('first claim wins; a retry while processing is in_progress', async () => {
      assert.deepEqual(await store.claim(KEY, 'k-1', fingerprintA), { kind: 'claimed' });
      assert.deepEqual(await store.claim(KEY, 'k-1', fingerprintA), { kind: 'in_progress' });
    });

    test('a different request with the same key is a mismatch, even while in progress', async () => {
      assert.deepEqual(await store.claim(KEY, 'k-1', fingerprintB), { kind: 'mismatch' });
    });

    test('after complete, the same request replays the stored status and body', async () => {
      const body = { code: 'abc1234', url: 'https://example.com/a', tags: ['x', 'ü'], nested: { n: 1, ok: true, none: null } };
      const headers = { location: '/api/v1/links/abc1234', etag: '"1"' };
      await store.complete(KEY, 'k-1', { status: 201, body, headers });
      assert.deepEqual(await store.claim(KEY, 'k-1', fingerprintA), { kind: 'replay', status: 201, body, headers });
      assert.deepEqual(await store.claim(KEY, 'k-1', fingerprintA), { kind: 'replay', status: 201, body, headers }, 'replays again');
      assert.deepEqual(await store.claim(KEY, 'k-1', fingerprintB), { kind: 'mismatch' });
    });

    test('an error answer is replayed too', async () => {
      await store.claim(KEY, 'k-err', fingerprintA);
      const problem = { type: 'urn:shunt:problem:alias_taken', status: 409, code: 'alias_taken' };
      await store.complete(KEY, 'k-err', { status: 409, body: problem });
      assert.deepEqual(await store.claim(KEY, 'k-err', fingerprintA), { kind: 'replay', status: 409, body: problem, headers: {} });
    });

    test('release frees an unfinished claim so the client may retry', async () => {
      assert.deepEqual(await store.claim(KEY, 'k-2', fingerprintA), { kind: 'claimed' });
      await store.release(KEY, 'k-2');
      assert.deepEqual(await store.claim(KEY, 'k-2', fingerprintB), { kind: 'claimed' }, 'after release any request may claim');
    });

    test('release never removes a completed record', async () => {
      await store.claim(KEY, 'k-3', fingerprintA);
      await store.complete(KEY, 'k-3', { status: 200, body: { ok: 1 } });
      await store.release(KEY, 'k-3');
      assert.deepEqual(await store.claim(KEY, 'k-3', fingerprintA), { kind: 'replay', status: 200, body: { ok: 1 }, headers: {} });
    });

    test('keys are scoped to the API key that used them', async () => {
      assert.deepEqual(await store.claim('key_other', 'k-1', fingerprintB), { kind: 'claimed' });
      const own = await store.claim(KEY, 'k-1', fingerprintA);
      assert.equal(own.kind, 'replay', 'the first key still has its own record');
      assert.equal(own.kind === 'replay' ? own.status : 0, 201);
    });

    test(`a record older than ${IDEMPOTENCY_TTL_HOURS} h counts as absent`, async () => {
      await store.claim(KEY, 'k-old', fingerprintA);
      await store.complete(KEY, 'k-old', { status: 201, body: { old: true }, headers: { etag: '"9"' } });
      await fresh.db.query(
        `UPDATE idempotency_keys SET created_at = now() - interval '${IDEMPOTENCY_TTL_HOURS + 1} hours' WHERE idempotency_key = 'k-old'`,
      );
      assert.deepEqual(await store.claim(KEY, 'k-old', fingerprintB), { kind: 'claimed' });
      assert.deepEqual(await store.claim(KEY, 'k-old', fingerprintB), { kind: 'in_progress' }, 'the old answer is gone');
      const row = await fresh.db.query('SELECT response_status, response_body, response_headers FROM idempotency_keys WHERE idempotency_key = $1', ['k-old']);
      assert.deepEqual(row.rows, [{ response_status: null, response_body: null, response_headers: null }]);
    });

    test(`a record just under ${IDEMPOTENCY_TTL_HOURS} h old still replays`, async () => {
      await store.claim(KEY, 'k-young', fingerprintA);
      await store.complete(KEY, 'k-young', { status: 201, body: { young: true } });
      await fresh.db.query(
        `UPDATE idempotency_keys SET created_at = now() - interval '${IDEMPOTENCY_TTL_HOURS} hours' + interval '1 minute' WHERE idempotency_key = 'k-young'`,
      );
      assert.deepEqual(await store.claim(KEY, 'k-young', fingerprintA), { kind: 'replay', status: 201, body: { young: true }, headers: {} });
    });

    test('20 concurrent claims of one key: exactly one claimed, the rest in_progress', async () => {
      const results = await Promise.all(Array.from({ length: 20 }, () => store.claim(KEY, 'k-race', fingerprintA)));
      assert.equal(results.filter((result) => result.kind === 'claimed').length, 1);
      assert.equal(results.filter((result) => result.kind === 'in_progress').length, 19);
    });

    test('odd but valid idempotency keys are stored verbatim', async () => {
      const odd = `!"#$%&'()*+,-./:;<=>?@[\\]^_\`{|}~${'z'.repeat(200)}`;
      assert.deepEqual(await store.claim(KEY, odd, fingerprintA), { kind: 'claimed' });
      assert.deepEqual(await store.claim(KEY, odd, fingerprintA), { kind: 'in_progress' });
      const rows = await fresh.db.query('SELECT 1 FROM idempotency_keys WHERE idempotency_key = $1', [odd]);
      assert.equal(rows.rowCount, 1);
    });
  });
}
