import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { KEY_PREFIX_LENGTH, hashKeySecret } from '../../src/keys/api-key.js';
import { KeyRepository } from '../../src/keys/key-repository.js';
import { KeyService } from '../../src/keys/key-service.js';
import { AppError } from '../../src/shared/errors.js';
import { openDatabase, type Database } from '../../src/storage/database.js';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { openFreshDatabase, type FreshDatabase } from '../helpers/fresh-database.js';

const CONFIGURED_ADMIN = 'configured-admin-key-0123456789abcdef';
const backgroundErrors: unknown[] = [];

function keyService(db: Database): KeyService {
  return new KeyService(new KeyRepository(db), (error) => backgroundErrors.push(error));
}

async function activeAdmins(db: Database): Promise<number> {
  const result = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL");
  return result.rows[0]?.n ?? -1;
}

/** Removes every key (and the links that reference them), so a test starts from a known state. */
async function resetKeys(db: Database): Promise<void> {
  await db.query('DELETE FROM links');
  await db.query('DELETE FROM api_keys');
}

for (const backend of BACKENDS) {
  describe(`API keys on the store (${backend})`, await backendTestOptions(backend), () => {
    let fresh: FreshDatabase;
    let keys: KeyService;
    before(async () => {
      fresh = await openFreshDatabase(backend);
      keys = keyService(fresh.db);
    });
    after(async () => {
      // authenticate() touches last_used_at in the background: let it land first.
      await sleep(50);
      await fresh.close();
    });

    describe('ensureAdmin', () => {
      test('with a configured key: creates one admin once, returns no secret, the key authenticates', async () => {
        await resetKeys(fresh.db);
        assert.equal(await keys.ensureAdmin(CONFIGURED_ADMIN), null);
        assert.equal(await activeAdmins(fresh.db), 1);
        assert.equal(await keys.ensureAdmin(CONFIGURED_ADMIN), null);
        assert.equal(await keys.ensureAdmin(undefined), null, 'an admin exists: nothing is generated');
        assert.equal(await activeAdmins(fresh.db), 1);
        const actor = await keys.authenticate(CONFIGURED_ADMIN);
        assert.equal(actor?.role, 'admin');
        const [listed] = await keys.list();
        assert.equal(listed?.id, actor?.keyId);
        assert.equal(listed?.name, 'admin');
        assert.equal(listed?.prefix, CONFIGURED_ADMIN.slice(0, KEY_PREFIX_LENGTH));
      });

      test('without one: a generated key is returned once, and only once', async () => {
        await resetKeys(fresh.db);
        const created = await keys.ensureAdmin(undefined);
        assert.ok(created !== null);
        assert.match(created.secret, /^shunt_[0-9A-Za-z]{40}$/);
        assert.equal(created.key.role, 'admin');
        assert.equal(created.key.revokedAt, null);
        assert.deepEqual(await keys.authenticate(created.secret), { keyId: created.key.id, role: 'admin' });
        assert.equal(await keys.ensureAdmin(undefined), null, 'the secret is never handed out again');
        assert.equal(await activeAdmins(fresh.db), 1);
      });

      test('10 concurrent ensureAdmin calls create exactly one admin', async () => {
        await resetKeys(fresh.db);
        const results = await Promise.all(Array.from({ length: 10 }, () => keys.ensureAdmin(undefined)));
        assert.equal(results.filter((result) => result !== null).length, 1);
        assert.equal(await activeAdmins(fresh.db), 1);
      });

      test('concurrent ensureAdmin with the configured key: one row', async () => {
        await resetKeys(fresh.db);
        await Promise.all(Array.from({ length: 10 }, () => keys.ensureAdmin(CONFIGURED_ADMIN)));
        assert.equal(await activeAdmins(fresh.db), 1);
        assert.equal((await fresh.db.query('SELECT 1 FROM api_keys')).rowCount, 1);
      });

      if (backend === 'postgres') {
        test('5 instances (separate pools) starting at once create exactly one admin', async () => {
          await resetKeys(fresh.db);
          assert.ok(fresh.url !== undefined);
          const url = fresh.url;
          const pools = await Promise.all(Array.from({ length: 5 }, () => openDatabase({ url, dataDir: 'memory://', poolSize: 2 })));
          try {
            const results = await Promise.all(pools.map((db) => keyService(db).ensureAdmin(undefined)));
            assert.equal(results.filter((result) => result !== null).length, 1);
            assert.equal(await activeAdmins(fresh.db), 1);
          } finally {
            await Promise.all(pools.map((db) => db.close()));
          }
        });
      }

      test('a revoked admin does not count: ensureAdmin creates a new one', async () => {
        await resetKeys(fresh.db);
        await keys.ensureAdmin(CONFIGURED_ADMIN);
        await fresh.db.query("UPDATE api_keys SET revoked_at = now() WHERE role = 'admin'");
        const created = await keys.ensureAdmin(undefined);
        assert.ok(created !== null);
        assert.equal(await activeAdmins(fresh.db), 1);
      });
    });

    describe('authenticate', () => {
      let adminSecret: string;
      before(async () => {
        await resetKeys(fresh.db);
        const created = await keys.ensureAdmin(undefined);
        assert.ok(created !== null);
        adminSecret = created.secret;
      });

      test('a created member key authenticates with its role', async () => {
        const member = await keys.create('ci bot', 'member');
        assert.deepEqual(await keys.authenticate(member.secret), { keyId: member.key.id, role: 'member' });
        assert.equal(member.key.name, 'ci bot');
        assert.notEqual(member.secret, adminSecret);
      });

      test('wrong secrets are refused: unknown, same prefix with another tail, truncated, padded, case-changed', async () => {
        const candidates = [
          'shunt_' + 'x'.repeat(40),
          adminSecret.slice(0, -1) + (adminSecret.endsWith('a') ? 'b' : 'a'),
          adminSecret.slice(0, -1),
          `${adminSecret} `,
          `${adminSecret}x`,
          adminSecret.toUpperCase() === adminSecret ? adminSecret.toLowerCase() : adminSecret.toUpperCase(),
          '',
          'short',
          'x'.repeat(300),
        ];
        for (const secret of candidates) {
          assert.equal(await keys.authenticate(secret), null, JSON.stringify(secret.slice(0, 60)));
        }
        assert.equal((await keys.authenticate(adminSecret))?.role, 'admin');
      });

      test('a revoked key no longer authenticates', async () => {
        const member = await keys.create('temp', 'member');
        assert.ok((await keys.authenticate(member.secret)) !== null);
        await keys.revoke(member.key.id);
        assert.equal(await keys.authenticate(member.secret), null);
        const [row] = (await keys.list()).filter((key) => key.id === member.key.id);
        assert.ok(row?.revokedAt instanceof Date);
      });

      test('authentication records last use', async () => {
        const member = await keys.create('used', 'member');
        assert.equal(member.key.lastUsedAt, null);
        await keys.authenticate(member.secret);
        for (let i = 0; i < 50; i += 1) {
          const [row] = (await keys.list()).filter((key) => key.id === member.key.id);
          if (row?.lastUsedAt instanceof Date) return;
          await sleep(10);
        }
        assert.fail('last_used_at was never set');
      });
    });

    describe('secrets are stored only as hashes', () => {
      test('no column of api_keys holds the secret or its hidden part', async () => {
        await resetKeys(fresh.db);
        await keys.ensureAdmin(CONFIGURED_ADMIN);
        const generated = await keys.create('generated', 'member');
        const rows = await fresh.db.query<{ row: string }>('SELECT row_to_json(k)::text AS row FROM api_keys k');
        const dump = rows.rows.map((row) => row.row).join('\n');
        assert.equal(rows.rows.length, 2);
        for (const secret of [CONFIGURED_ADMIN, generated.secret]) {
          const hidden = secret.slice(KEY_PREFIX_LENGTH);
          assert.ok(!dump.includes(secret), 'the whole secret is stored');
          assert.ok(!dump.includes(hidden), 'the part after the prefix is stored');
          assert.ok(!dump.includes(Buffer.from(secret).toString('hex')), 'the secret is stored hex-encoded');
          assert.ok(!dump.includes(Buffer.from(hidden).toString('base64')), 'the secret is stored base64-encoded');
        }
        // Column by column too, with bytea read back as bytes.
        const raw = await fresh.db.query<{ id: string; name: string; prefix: string; secret_hash: Buffer }>(
          'SELECT id, name, prefix, secret_hash FROM api_keys WHERE id = $1',
          [generated.key.id],
        );
        const row = raw.rows[0];
        assert.ok(row !== undefined);
        const hash = Buffer.from(row.secret_hash);
        assert.equal(hash.length, 32);
        assert.ok(!hash.toString('latin1').includes(generated.secret.slice(KEY_PREFIX_LENGTH)));
        assert.ok(hash.equals(hashKeySecret(generated.secret)));
        assert.equal(row.prefix, generated.secret.slice(0, KEY_PREFIX_LENGTH));
        assert.ok(!Object.values(row).some((value) => typeof value === 'string' && value.includes(generated.secret)));
      });

      test('listed keys carry no secret or hash', async () => {
        const created = await keys.create('listed', 'member');
        for (const key of await keys.list()) {
          const text = JSON.stringify(key);
          assert.ok(!text.includes(created.secret.slice(KEY_PREFIX_LENGTH)));
          assert.ok(!('secretHash' in key) && !('secret_hash' in key));
        }
      });
    });

    describe('revoke', () => {
      test('the last active admin cannot be revoked', async () => {
        await resetKeys(fresh.db);
        await keys.ensureAdmin(CONFIGURED_ADMIN);
        const admin = await keys.authenticate(CONFIGURED_ADMIN);
        assert.ok(admin !== null);
        await assert.rejects(keys.revoke(admin.keyId), (error: unknown) => {
          assert.ok(error instanceof AppError);
          assert.equal(error.code, 'last_admin_key');
          assert.equal(error.status, 409);
          return true;
        });
        assert.equal((await keys.authenticate(CONFIGURED_ADMIN))?.role, 'admin', 'still active');
      });

      test('with a second admin, one can go; then the other is the last', async () => {
        await resetKeys(fresh.db);
        await keys.ensureAdmin(CONFIGURED_ADMIN);
        const first = await keys.authenticate(CONFIGURED_ADMIN);
        const second = await keys.create('second admin', 'admin');
        assert.ok(first !== null);
        await keys.revoke(first.keyId);
        assert.equal(await keys.authenticate(CONFIGURED_ADMIN), null);
        await assert.rejects(keys.revoke(second.key.id), { code: 'last_admin_key' });
      });

      test('two admins revoking each other at once: exactly one revocation succeeds', async () => {
        await resetKeys(fresh.db);
        const a = await keys.create('admin a', 'admin');
        const b = await keys.create('admin b', 'admin');
        const settled = await Promise.allSettled([keys.revoke(a.key.id), keys.revoke(b.key.id)]);
        assert.equal(settled.filter((result) => result.status === 'fulfilled').length, 1);
        assert.equal(await activeAdmins(fresh.db), 1);
      });

      test('members can always be revoked; unknown or already revoked keys are key_not_found', async () => {
        await resetKeys(fresh.db);
        await keys.ensureAdmin(CONFIGURED_ADMIN);
        const member = await keys.create('member', 'member');
        await keys.revoke(member.key.id);
        await assert.rejects(keys.revoke(member.key.id), { code: 'key_not_found' });
        await assert.rejects(keys.revoke('key_does_not_exist'), { code: 'key_not_found' });
      });
    });
  });
}

test('no background bookkeeping error was reported', () => {
  assert.deepEqual(backgroundErrors, []);
});
