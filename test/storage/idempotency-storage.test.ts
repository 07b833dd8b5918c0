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

test('requestFingerprint leaves passwords out, at any depth, so the table holds no fast hash of one', () => {
  const plain = { url: 'https://example.com/a' };
  assert.equal(requestFingerprint('POST', '/api/v1/links', { ...plain, password: 'hunter22' }), fingerprintA);
  assert.equal(
    requestFingerprint('POST', '/api/v1/links/bulk', { links: [{ ...plain, password: 'one' }] }),
    requestFingerprint('POST', '/api/v1/links/bulk', { links: [plain] }),
  );
});

/** The token of a fresh claim; fails when the claim was not won. */
async function claimed(store: IdempotencyStore, key: string, idempotencyKey: string, fingerprint: string): Promise<string> {
  const claim = await store.claim(key, idempotencyKey, fingerprint);
  assert.equal(claim.kind, 'claimed', JSON.stringify(claim));
  return claim.kind === 'claimed' ? claim.token : '';
}

for (const backend of BACKENDS) {
  describe(`IdempotencyStore (${backend})`, await backendTestOptions(backend), () => {
    let fresh: FreshDatabase;
    let store: IdempotencyStore;
    const tokens = new Map<string, string>();
    before(async () => {
      fresh = await openFreshDatabase(backend);
      store = new IdempotencyStore(fresh.db);
    });
    after(() => fresh.close());

    test('first claim wins; a retry while processing is in_progress', async () => {
      tokens.set('k-1', await claimed(store, KEY, 'k-1', fingerprintA));
      assert.deepEqual(await store.claim(KEY, 'k-1', fingerprintA), { kind: 'in_progress' });
    });

    test('a different request with the same key is a mismatch, even while in progress', async () => {
      assert.deepEqual(await store.claim(KEY, 'k-1', fingerprintB), { kind: 'mismatch' });
    });

    test('after complete, the same request replays the stored status and body', async () => {
      const body = { code: 'abc1234', url: 'https://example.com/a', tags: ['x', 'ü'], nested: { n: 1, ok: true, none: null } };
      const headers = { location: '/api/v1/links/abc1234', etag: '"1"' };
      assert.equal(await store.complete(KEY, 'k-1', tokens.get('k-1') ?? '', { status: 201, body, headers }), true);
      assert.deepEqual(await store.claim(KEY, 'k-1', fingerprintA), { kind: 'replay', status: 201, body, headers });
      assert.deepEqual(await store.claim(KEY, 'k-1', fingerprintA), { kind: 'replay', status: 201, body, headers }, 'replays again');
      assert.deepEqual(await store.claim(KEY, 'k-1', fingerprintB), { kind: 'mismatch' });
    });

    test('an error answer is replayed too', async () => {
      const token = await claimed(store, KEY, 'k-err', fingerprintA);
      const problem = { type: 'urn:shunt:problem:alias_taken', status: 409, code: 'alias_taken' };
      await store.complete(KEY, 'k-err', token, { status: 409, body: problem });
      assert.deepEqual(await store.claim(KEY, 'k-err', fingerprintA), { kind: 'replay', status: 409, body: problem, headers: {} });
    });

    test('release frees an unfinished claim so the client may retry', async () => {
      const token = await claimed(store, KEY, 'k-2', fingerprintA);
      await store.release(KEY, 'k-2', token);
      await claimed(store, KEY, 'k-2', fingerprintB);
    });

    test('release never removes a completed record', async () => {
      const token = await claimed(store, KEY, 'k-3', fingerprintA);
      await store.complete(KEY, 'k-3', token, { status: 200, body: { ok: 1 } });
      await store.release(KEY, 'k-3', token);
      assert.deepEqual(await store.claim(KEY, 'k-3', fingerprintA), { kind: 'replay', status: 200, body: { ok: 1 }, headers: {} });
    });

    test('keys are scoped to the API key that used them', async () => {
      await claimed(store, 'key_other', 'k-1', fingerprintB);
      const own = await store.claim(KEY, 'k-1', fingerprintA);
      assert.equal(own.kind, 'replay', 'the first key still has its own record');
      assert.equal(own.kind === 'replay' ? own.status : 0, 201);
    });

    test(`a record older than ${IDEMPOTENCY_TTL_HOURS} h counts as absent`, async () => {
      await store.complete(KEY, 'k-old', await claimed(store, KEY, 'k-old', fingerprintA), { status: 201, body: { old: true }, headers: { etag: '"9"' } });
      await fresh.db.query(
        `UPDATE idempotency_keys SET created_at = now() - interval '${IDEMPOTENCY_TTL_HOURS + 1} hours' WHERE idempotency_key = 'k-old'`,
      );
      await claimed(store, KEY, 'k-old', fingerprintB);
      assert.deepEqual(await store.claim(KEY, 'k-old', fingerprintB), { kind: 'in_progress' }, 'the old answer is gone');
      const row = await fresh.db.query('SELECT response_status, response_body, response_headers FROM idempotency_keys WHERE idempotency_key = $1', ['k-old']);
      assert.deepEqual(row.rows, [{ response_status: null, response_body: null, response_headers: null }]);
    });

    test(`a record just under ${IDEMPOTENCY_TTL_HOURS} h old still replays`, async () => {
      await store.complete(KEY, 'k-young', await claimed(store, KEY, 'k-young', fingerprintA), { status: 201, body: { young: true } });
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
      await claimed(store, KEY, odd, fingerprintA);
      assert.deepEqual(await store.claim(KEY, odd, fingerprintA), { kind: 'in_progress' });
      const rows = await fresh.db.query('SELECT 1 FROM idempotency_keys WHERE idempotency_key = $1', [odd]);
      assert.equal(rows.rowCount, 1);
    });

    test('a claim left by a crashed process is taken over after the lease, by the same request only; the late holder cannot answer', async () => {
      const leased = new IdempotencyStore(fresh.db, 30);
      const crashed = await claimed(leased, KEY, 'k-lease', fingerprintA);
      assert.deepEqual(await leased.claim(KEY, 'k-lease', fingerprintA), { kind: 'in_progress' }, 'within the lease');
      await fresh.db.query(`UPDATE idempotency_keys SET created_at = now() - interval '31 seconds' WHERE idempotency_key = 'k-lease'`);
      assert.deepEqual(await leased.claim(KEY, 'k-lease', fingerprintB), { kind: 'mismatch' }, 'another request does not take it');
      const taken = await claimed(leased, KEY, 'k-lease', fingerprintA);
      assert.notEqual(taken, crashed);
      assert.equal(await leased.complete(KEY, 'k-lease', crashed, { status: 201, body: { late: true } }), false, 'the old claim is void');
      await leased.release(KEY, 'k-lease', crashed);
      assert.equal(await leased.complete(KEY, 'k-lease', taken, { status: 201, body: { ok: true } }), true);
      assert.deepEqual(await leased.claim(KEY, 'k-lease', fingerprintA), { kind: 'replay', status: 201, body: { ok: true }, headers: {} });
    });

    test('expired records are purged in bounded batches, oldest first; live ones stay', async () => {
      for (let i = 0; i < 7; i += 1) {
        await store.complete(KEY, `k-exp-${i}`, await claimed(store, KEY, `k-exp-${i}`, fingerprintA), { status: 200, body: { i } });
      }
      await fresh.db.query(`UPDATE idempotency_keys SET created_at = now() - interval '${IDEMPOTENCY_TTL_HOURS + 1} hours' WHERE idempotency_key LIKE 'k-exp-%'`);
      const live = await fresh.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM idempotency_keys WHERE created_at >= now() - interval '${IDEMPOTENCY_TTL_HOURS} hours'`);
      assert.equal(await store.purgeExpired(3, 1), 3, 'one batch of three');
      assert.equal(await store.purgeExpired(3), 4, 'the rest');
      assert.equal(await store.purgeExpired(3), 0);
      const left = await fresh.db.query<{ n: number }>('SELECT count(*)::int AS n FROM idempotency_keys');
      assert.equal(left.rows[0]?.n, live.rows[0]?.n);
    });
  });
}
