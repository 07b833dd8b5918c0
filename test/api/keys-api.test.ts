/**
 * The keys API (/api/v1/keys) and what keys may do, driven through inject(), on PGlite
 * and on PostgreSQL: admin and member roles, tenant isolation of links, revocation,
 * missing and malformed credentials, and the last admin key.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import type { LinkJson } from '../../src/http/schemas.js';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/test-app.js';
import { expectProblem, type Problem } from '../helpers/problems.js';

interface KeyJson {
  id: string;
  name: string;
  role: 'admin' | 'member';
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

interface CreatedKeyJson extends KeyJson {
  key: string;
}

const KEYS = '/api/v1/keys';
const LINKS = '/api/v1/links';

function assertFields(problem: Problem, expected: readonly string[]): void {
  assert.ok(Array.isArray(problem.errors), `problem has no errors list: ${JSON.stringify(problem)}`);
  const fields = new Set(problem.errors.map((error) => error.field));
  for (const field of expected) assert.ok(fields.has(field), `expected field ${field} in ${JSON.stringify(problem.errors)}`);
}

for (const backend of BACKENDS) {
  describe(`keys API (${backend})`, await backendTestOptions(backend), () => {
    let app: TestApp;
    /** The admin secret the tests use; the last test may leave a different admin standing. */
    let admin = ADMIN_KEY;

    before(async () => {
      app = await startTestApp(backend, { env: { RATE_LIMIT_KEY_PER_MINUTE: '1000000', RATE_LIMIT_IP_PER_MINUTE: '1000000' } });
    });
    after(() => app.close());

    async function createKey(body: Record<string, unknown>, key = admin): Promise<CreatedKeyJson> {
      const response = await app.request({ method: 'POST', url: KEYS, body, key });
      assert.equal(response.statusCode, 201, response.body);
      return response.json<CreatedKeyJson>();
    }

    async function listKeys(key = admin): Promise<KeyJson[]> {
      const response = await app.request({ url: KEYS, key });
      assert.equal(response.statusCode, 200, response.body);
      return response.json<{ items: KeyJson[] }>().items;
    }

    async function createLink(url: string, key: string): Promise<LinkJson> {
      const response = await app.request({ method: 'POST', url: LINKS, body: { url }, key });
      assert.equal(response.statusCode, 201, response.body);
      return response.json<LinkJson>();
    }

    async function listCodes(key: string): Promise<string[]> {
      const codes: string[] = [];
      let cursor: string | null = null;
      do {
        const query: string = cursor === null ? '?limit=100' : `?limit=100&cursor=${encodeURIComponent(cursor)}`;
        const response = await app.request({ url: `${LINKS}${query}`, key });
        assert.equal(response.statusCode, 200, response.body);
        const page = response.json<{ items: LinkJson[]; nextCursor: string | null }>();
        codes.push(...page.items.map((link) => link.code));
        cursor = page.nextCursor;
      } while (cursor !== null);
      return codes;
    }

    const revoke = (id: string, key = admin): Promise<LightMyRequestResponse> =>
      app.request({ method: 'DELETE', url: `${KEYS}/${encodeURIComponent(id)}`, key });

    describe('admin manages keys', () => {
      test('creates a member key: 201, the secret once as key, and it works', async () => {
        const created = await createKey({ name: 'ci robot', role: 'member' });
        assert.match(created.id, /^key_[A-Za-z0-9]+$/);
        assert.equal(created.name, 'ci robot');
        assert.equal(created.role, 'member');
        assert.equal(typeof created.key, 'string');
        assert.ok(created.key.length >= 24, 'the secret is long');
        assert.ok(created.key.startsWith(created.prefix), 'the prefix is the start of the secret');
        assert.ok(created.prefix.length < created.key.length, 'the prefix is not the whole secret');
        assert.ok(!Number.isNaN(Date.parse(created.createdAt)));
        assert.equal(created.revokedAt, null);

        const used = await app.request({ url: LINKS, key: created.key });
        assert.equal(used.statusCode, 200, used.body);
      });

      test('role defaults to member', async () => {
        const created = await createKey({ name: 'no role given' });
        assert.equal(created.role, 'member');
        expectProblem(await app.request({ url: KEYS, key: created.key }), 403, 'forbidden');
      });

      test('creates an admin key that can itself manage keys', async () => {
        const created = await createKey({ name: 'second admin', role: 'admin' });
        assert.equal(created.role, 'admin');
        const listed = await listKeys(created.key);
        assert.ok(listed.some((key) => key.id === created.id));
        const child = await createKey({ name: 'made by second admin' }, created.key);
        assert.equal(child.role, 'member');
      });

      test('two keys get different ids and secrets', async () => {
        const one = await createKey({ name: 'twin' });
        const two = await createKey({ name: 'twin' });
        assert.notEqual(one.id, two.id);
        assert.notEqual(one.key, two.key);
      });

      test('GET /keys lists keys but never a secret', async () => {
        const created = await createKey({ name: 'listed key', role: 'member' });
        const response = await app.request({ url: KEYS, key: admin });
        assert.equal(response.statusCode, 200, response.body);
        assert.ok(!response.body.includes(created.key), 'the secret appears in GET /keys');
        assert.ok(!response.body.includes(ADMIN_KEY), 'the admin secret appears in GET /keys');
        const items = response.json<{ items: (KeyJson & { key?: unknown; secret?: unknown; secretHash?: unknown })[] }>().items;
        const entry = items.find((key) => key.id === created.id);
        assert.ok(entry !== undefined, 'the new key is listed');
        assert.equal(entry.name, 'listed key');
        assert.equal(entry.role, 'member');
        assert.equal(entry.prefix, created.prefix);
        assert.equal(entry.revokedAt, null);
        for (const item of items) {
          assert.equal(item.key, undefined);
          assert.equal(item.secret, undefined);
          assert.equal(item.secretHash, undefined);
        }
      });

      test('invalid key bodies: 422 naming the field', async () => {
        assertFields(expectProblem(await app.request({ method: 'POST', url: KEYS, body: { name: 'x', role: 'root' } }), 422, 'validation_failed'), ['role']);
        assertFields(expectProblem(await app.request({ method: 'POST', url: KEYS, body: { role: 'member' } }), 422, 'validation_failed'), ['name']);
        assertFields(expectProblem(await app.request({ method: 'POST', url: KEYS, body: { name: '' } }), 422, 'validation_failed'), ['name']);
        assertFields(expectProblem(await app.request({ method: 'POST', url: KEYS, body: { name: 'n'.repeat(101) } }), 422, 'validation_failed'), ['name']);
        assertFields(expectProblem(await app.request({ method: 'POST', url: KEYS, body: { name: 'x', scopes: ['all'] } }), 422, 'validation_failed'), ['scopes']);
      });
    });

    describe('members', () => {
      test('a member cannot manage keys: 403 forbidden', async () => {
        const member = await createKey({ name: 'plain member', role: 'member' });
        expectProblem(await app.request({ method: 'POST', url: KEYS, body: { name: 'escalate', role: 'admin' }, key: member.key }), 403, 'forbidden');
        expectProblem(await app.request({ url: KEYS, key: member.key }), 403, 'forbidden');
        expectProblem(await revoke(member.id, member.key), 403, 'forbidden');
        // Nothing happened: no new admin, and the member is still active.
        const keys = await listKeys();
        assert.ok(!keys.some((key) => key.name === 'escalate'));
        assert.equal(keys.find((key) => key.id === member.id)?.revokedAt, null);
      });

      test('a member sees only its own links; another member gets 404; an admin sees all', async () => {
        const alice = (await createKey({ name: 'alice', role: 'member' })).key;
        const bob = (await createKey({ name: 'bob', role: 'member' })).key;
        const aliceLink = await createLink('https://example.com/alice', alice);
        const bobLink = await createLink('https://example.com/bob', bob);
        const adminLink = await createLink('https://example.com/admin-own', admin);

        // Bob cannot read, change or delete Alice's link: it does not exist for him.
        const asBob = `${LINKS}/${aliceLink.code}`;
        expectProblem(await app.request({ url: asBob, key: bob }), 404, 'link_not_found');
        expectProblem(await app.request({ method: 'PATCH', url: asBob, body: { url: 'https://example.com/hijack' }, key: bob }), 404, 'link_not_found');
        expectProblem(
          await app.request({ method: 'PATCH', url: asBob, body: { title: 'x' }, headers: { 'if-match': '*' }, key: bob }),
          404,
          'link_not_found',
        );
        expectProblem(await app.request({ method: 'DELETE', url: asBob, key: bob }), 404, 'link_not_found');
        // Nor the admin's.
        expectProblem(await app.request({ url: `${LINKS}/${adminLink.code}`, key: bob }), 404, 'link_not_found');

        // Alice's link is untouched and still redirects to her destination.
        const aliceView = await app.request({ url: asBob, key: alice });
        assert.equal(aliceView.statusCode, 200);
        assert.equal(aliceView.json<LinkJson>().url, 'https://example.com/alice');
        const followed = await app.request({ url: `/${aliceLink.code}`, key: null });
        assert.equal(followed.headers.location, 'https://example.com/alice');

        assert.deepEqual(await listCodes(alice), [aliceLink.code]);
        assert.deepEqual(await listCodes(bob), [bobLink.code]);
        const searched = await app.request({ url: `${LINKS}?q=alice`, key: bob });
        assert.deepEqual(searched.json<{ items: LinkJson[] }>().items, []);

        const all = await listCodes(admin);
        for (const code of [aliceLink.code, bobLink.code, adminLink.code]) assert.ok(all.includes(code), `admin list misses ${code}`);
        const adminView = await app.request({ url: `${LINKS}/${aliceLink.code}`, key: admin });
        assert.equal(adminView.statusCode, 200);

        // An admin may change and delete a member's link.
        const patched = await app.request({ method: 'PATCH', url: `${LINKS}/${bobLink.code}`, body: { title: 'by admin' }, key: admin });
        assert.equal(patched.statusCode, 200, patched.body);
        assert.equal((await app.request({ method: 'DELETE', url: `${LINKS}/${bobLink.code}`, key: admin })).statusCode, 204);
        assert.deepEqual(await listCodes(bob), []);
      });

      test('a member\'s custom alias is still unique across members: 409 alias_taken', async () => {
        const carol = (await createKey({ name: 'carol' })).key;
        const dave = (await createKey({ name: 'dave' })).key;
        const first = await app.request({ method: 'POST', url: LINKS, body: { url: 'https://example.com/c', alias: 'carols-alias' }, key: carol });
        assert.equal(first.statusCode, 201);
        expectProblem(
          await app.request({ method: 'POST', url: LINKS, body: { url: 'https://example.com/d', alias: 'carols-alias' }, key: dave }),
          409,
          'alias_taken',
        );
      });
    });

    describe('authentication', () => {
      test('no key: 401 with WWW-Authenticate on every authenticated endpoint', async () => {
        const requests: { method: 'GET' | 'POST' | 'PATCH' | 'DELETE'; url: string; body?: unknown }[] = [
          { method: 'GET', url: LINKS },
          { method: 'POST', url: LINKS, body: { url: 'https://example.com/anon' } },
          { method: 'POST', url: `${LINKS}/bulk`, body: { links: [{ url: 'https://example.com/anon' }] } },
          { method: 'GET', url: `${LINKS}/whatever` },
          { method: 'PATCH', url: `${LINKS}/whatever`, body: { title: 'x' } },
          { method: 'DELETE', url: `${LINKS}/whatever` },
          { method: 'GET', url: KEYS },
          { method: 'POST', url: KEYS, body: { name: 'anon', role: 'admin' } },
          { method: 'DELETE', url: `${KEYS}/key_abc` },
        ];
        for (const request of requests) {
          const response = await app.request({ ...request, key: null });
          expectProblem(response, 401, 'unauthorized');
          assert.match(String(response.headers['www-authenticate']), /^Bearer\b/, `${request.method} ${request.url}`);
        }
        // No key was created by the anonymous POST.
        assert.ok(!(await listKeys()).some((key) => key.name === 'anon'));
      });

      test('an unknown key: 401 invalid_token', async () => {
        const response = await app.request({ url: LINKS, key: 'shunt_ThisKeyWasNeverIssuedByTheServer000' });
        expectProblem(response, 401, 'unauthorized');
        assert.match(String(response.headers['www-authenticate']), /^Bearer\b.*invalid_token/);
      });

      test('a malformed Authorization header: 401', async () => {
        const headers = [
          `Basic ${Buffer.from(`user:${ADMIN_KEY}`).toString('base64')}`,
          'Bearer',
          'Bearer ',
          `Token ${ADMIN_KEY}`,
          `Bearer ${ADMIN_KEY} extra`,
          `Bearer${ADMIN_KEY}`,
          'Bearer short',
          '',
        ];
        for (const authorization of headers) {
          const response = await app.request({ url: LINKS, key: null, headers: { authorization } });
          assert.equal(response.statusCode, 401, `${JSON.stringify(authorization)}: ${response.body}`);
          expectProblem(response, 401, 'unauthorized');
          assert.match(String(response.headers['www-authenticate']), /^Bearer\b/);
        }
        // The scheme is case-insensitive (RFC 9110 11.1).
        const lower = await app.request({ url: LINKS, key: null, headers: { authorization: `bearer ${ADMIN_KEY}` } });
        assert.equal(lower.statusCode, 200, lower.body);
      });

      test('a revoked key: 204 on revoke, then 401; listed with revokedAt; revoking again 404', async () => {
        const member = await createKey({ name: 'to revoke', role: 'member' });
        const link = await createLink('https://example.com/revoked-owner', member.key);
        assert.equal((await app.request({ url: LINKS, key: member.key })).statusCode, 200);

        const revoked = await revoke(member.id);
        assert.equal(revoked.statusCode, 204, revoked.body);
        assert.equal(revoked.body, '');

        const refused = await app.request({ url: LINKS, key: member.key });
        expectProblem(refused, 401, 'unauthorized');
        assert.match(String(refused.headers['www-authenticate']), /^Bearer\b/);
        expectProblem(await app.request({ method: 'POST', url: LINKS, body: { url: 'https://example.com/after' }, key: member.key }), 401, 'unauthorized');

        const entry = (await listKeys()).find((key) => key.id === member.id);
        assert.ok(entry !== undefined);
        assert.ok(entry.revokedAt !== null && !Number.isNaN(Date.parse(entry.revokedAt)));

        expectProblem(await revoke(member.id), 404, 'key_not_found');
        // Its links live on and still redirect.
        assert.equal((await app.request({ url: `/${link.code}`, key: null })).headers.location, 'https://example.com/revoked-owner');
      });

      test('a revoked admin key loses admin rights at once', async () => {
        const second = await createKey({ name: 'short-lived admin', role: 'admin' });
        assert.equal((await revoke(second.id)).statusCode, 204);
        expectProblem(await app.request({ url: KEYS, key: second.key }), 401, 'unauthorized');
        expectProblem(await app.request({ method: 'POST', url: KEYS, body: { name: 'late' }, key: second.key }), 401, 'unauthorized');
      });
    });

    describe('revocation rules', () => {
      test('unknown or malformed key ids: 404 key_not_found', async () => {
        for (const id of ['key_doesNotExist0000', 'key_', 'nope', 'key-with-dash', 'x'.repeat(64)]) {
          expectProblem(await revoke(id), 404, 'key_not_found');
        }
      });

      test('the last admin key cannot be revoked: 409 last_admin_key', async () => {
        // Leave exactly one active admin: the test admin key.
        const adminId = (await listKeys()).find((key) => key.prefix !== '' && ADMIN_KEY.startsWith(key.prefix) && key.revokedAt === null)?.id;
        assert.ok(adminId !== undefined, 'the configured admin key is listed');
        for (const key of await listKeys()) {
          if (key.role === 'admin' && key.revokedAt === null && key.id !== adminId) assert.equal((await revoke(key.id)).statusCode, 204);
        }
        const activeAdmins = (await listKeys()).filter((key) => key.role === 'admin' && key.revokedAt === null);
        assert.deepEqual(activeAdmins.map((key) => key.id), [adminId]);

        expectProblem(await revoke(adminId), 409, 'last_admin_key');
        // Still an admin.
        assert.equal((await app.request({ url: KEYS, key: ADMIN_KEY })).statusCode, 200);

        // With a second admin, the first may go; then the second is the last one.
        const second = await createKey({ name: 'successor', role: 'admin' });
        assert.equal((await revoke(adminId, second.key)).statusCode, 204);
        admin = second.key;
        expectProblem(await app.request({ url: KEYS, key: ADMIN_KEY }), 401, 'unauthorized');
        expectProblem(await revoke(second.id), 409, 'last_admin_key');
        assert.equal((await app.request({ url: KEYS, key: second.key })).statusCode, 200);
      });

      test('two admins revoking each other at once: exactly one succeeds, one admin remains', async () => {
        const activeAdmins = (await listKeys()).filter((key) => key.role === 'admin' && key.revokedAt === null);
        assert.equal(activeAdmins.length, 1, 'the previous test leaves one admin');
        const current = { id: (activeAdmins[0] as KeyJson).id, key: admin };
        const other = await createKey({ name: 'rival', role: 'admin' });

        const [first, second] = await Promise.all([revoke(other.id, current.key), revoke(current.id, other.key)]);
        const statuses = [first.statusCode, second.statusCode].sort();
        assert.deepEqual(statuses, [204, 409], `${first.body} ${second.body}`);
        const loser = first.statusCode === 409 ? first : second;
        expectProblem(loser, 409, 'last_admin_key');

        const survivor = first.statusCode === 204 ? current.key : other.key;
        admin = survivor;
        const remaining = (await listKeys(survivor)).filter((key) => key.role === 'admin' && key.revokedAt === null);
        assert.equal(remaining.length, 1);
      });
    });
  });
}
