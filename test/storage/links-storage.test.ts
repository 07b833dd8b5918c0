import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { LinkCache } from '../../src/cache/link-cache.js';
import { hashKeySecret } from '../../src/keys/api-key.js';
import { KeyRepository } from '../../src/keys/key-repository.js';
import type { Actor, Link, NewLink } from '../../src/links/link.js';
import { LinkRepository, type LinkListQuery } from '../../src/links/link-repository.js';
import { LinkService, type CodeSource } from '../../src/links/link-service.js';
import { AppError } from '../../src/shared/errors.js';
import { type Database } from '../../src/storage/database.js';
import { BACKENDS, backendTestOptions, type Backend } from '../helpers/backends.js';
import { openFreshDatabase, type FreshDatabase } from '../helpers/fresh-database.js';

/** A migrated, empty store of the backend. */
/** Fails instead of hanging when a broken store never finishes closing (keeps later suites running). */
async function withinMs<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const OWNER_A = 'key_owner_a_000000';
const OWNER_B = 'key_owner_b_000000';

function newLink(code: string, overrides: Partial<NewLink> = {}): NewLink {
  return {
    code,
    customAlias: false,
    url: `https://example.com/${code}`,
    title: null,
    tags: [],
    ownerKeyId: OWNER_A,
    expiresAt: null,
    maxVisits: null,
    redirectType: 302,
    forwardQuery: true,
    fallbackUrl: null,
    disabled: false,
    passwordHash: null,
    ...overrides,
  };
}

function listQuery(overrides: Partial<LinkListQuery> = {}): LinkListQuery {
  return { ownerKeyId: null, limit: 100, beforeId: null, search: null, tag: null, ...overrides };
}

const codesOf = (links: Link[]): string[] => links.map((link) => link.code);

/** Codes handed out in order, for the service tests. */
function codeQueue(codes: string[]): CodeSource & { taken: number } {
  const source = {
    taken: 0,
    next(): Promise<string> {
      const code = codes[source.taken];
      source.taken += 1;
      return code === undefined ? Promise.reject(new Error('code queue empty')) : Promise.resolve(code);
    },
  };
  return source;
}

function service(db: Database, codes: CodeSource): LinkService {
  const repository = new LinkRepository(db);
  const cache = new LinkCache({ load: (code) => repository.findByCode(code), maxEntries: 1000, ttlMs: 60_000 });
  return new LinkService(repository, codes, cache, {
    maxUrlLength: 2048,
    blockedDomains: [],
    ownHosts: ['sho.rt'],
    allowPrivateAddresses: false,
  });
}

// PostgreSQL first: should the embedded store wedge (a hung query leaves nothing for the
// event loop to wait on, which cancels every later suite in the file), its results stand.
const ORDER: readonly Backend[] = [...BACKENDS].sort((a) => (a === 'postgres' ? -1 : 1));

for (const backend of ORDER) {
  describe(`links storage (${backend})`, await backendTestOptions(backend), () => {
    let fresh: FreshDatabase;
    let links: LinkRepository;
    const actorA: Actor = { keyId: OWNER_A, role: 'member' };
    const admin: Actor = { keyId: OWNER_B, role: 'admin' };

    before(async () => {
      fresh = await openFreshDatabase(backend);
      links = new LinkRepository(fresh.db);
      const keys = new KeyRepository(fresh.db);
      for (const id of [OWNER_A, OWNER_B]) {
        await keys.insert({ id, name: id, role: 'member', prefix: `shunt_${id.slice(-8)}`, secretHash: hashKeySecret(id) });
      }
    });
    after(() => withinMs(fresh.close(), 10_000, `closing the ${backend} store`));

    // Every alias race and generated-code collision ends in a unique violation: the store
    // must stay usable after one, and each query must get its own answer.
    test('a failed statement leaves the store usable; each query gets its own result', async () => {
      await links.insert(newLink('err0001'));
      await assert.rejects(links.insert(newLink('err0001')), { code: '23505' });
      const after = await fresh.db.query<{ marker: string }>(`SELECT 'after-error' AS marker`);
      assert.deepEqual(after.rows, [{ marker: 'after-error' }]);
      await assert.rejects(fresh.db.query('SELECT no_such_column FROM links'), { code: '42703' });
      assert.equal((await links.findByCode('err0001'))?.code, 'err0001');
      assert.deepEqual((await fresh.db.query<{ n: number }>('SELECT 42::int AS n')).rows, [{ n: 42 }]);
    });

    describe('LinkRepository insert and find', () => {
      test('a password hash is stored but never read back: the link only says it is protected', async () => {
        const stored = await links.insert(newLink('pw00001', { passwordHash: 'scrypt$14$8$1$c2FsdA$aGFzaA' }));
        assert.equal(stored.passwordProtected, true);
        assert.ok(!JSON.stringify(await links.findByCode('pw00001')).includes('scrypt'));
        assert.equal(await links.passwordHash(stored.id), 'scrypt$14$8$1$c2FsdA$aGFzaA');
        const cleared = await links.update('pw00001', { passwordHash: null }, null, null);
        assert.equal(cleared?.passwordProtected, false);
        assert.equal(await links.passwordHash(stored.id), null);
      });

      test('findByCodes reads the links of many codes in one query, the same as findByCode; unknown codes are absent', async () => {
        await links.insert(newLink('many001'));
        await links.insert(newLink('many002', { title: 'second', tags: ['x'] }));
        const found = await links.findByCodes(['many002', 'nosuch1', 'many001']);
        assert.deepEqual(codesOf(found).sort(), ['many001', 'many002']);
        for (const link of found) assert.deepEqual(link, await links.findByCode(link.code));
        assert.deepEqual(await links.findByCodes(['nosuch1']), []);
      });

      test('insert returns the stored link with every field; findByCode reads it back', async () => {
        const expiresAt = new Date(Date.now() + 86_400_000);
        const input = newLink('rt00001', {
          customAlias: true,
          url: 'https://example.com/a?b=c#d',
          title: 'Tïtle — ✓',
          tags: ['one', 'two words', 'Ünï'],
          expiresAt,
          maxVisits: 7,
          redirectType: 308,
          forwardQuery: false,
          fallbackUrl: 'https://fallback.example/',
          disabled: true,
        });
        const stored = await links.insert(input);
        assert.match(stored.id, /^\d+$/);
        assert.equal(stored.version, 1);
        assert.equal(stored.visits, 0);
        assert.ok(stored.createdAt instanceof Date);
        assert.ok(stored.updatedAt instanceof Date);
        assert.ok(Math.abs(stored.createdAt.getTime() - Date.now()) < 60_000);
        const { id: _id, version: _v, visits: _vis, createdAt: _c, updatedAt: _u, passwordProtected, ...fields } = stored;
        const { passwordHash: _p, ...settings } = input;
        assert.deepEqual(fields, settings);
        assert.equal(passwordProtected, false);
        assert.equal(stored.expiresAt?.getTime(), expiresAt.getTime());
        assert.deepEqual(await links.findByCode('rt00001'), stored);
      });

      test('defaults: nulls stay null, empty tags stay empty', async () => {
        const stored = await links.insert(newLink('rt00002', { ownerKeyId: null }));
        assert.equal(stored.title, null);
        assert.deepEqual(stored.tags, []);
        assert.equal(stored.ownerKeyId, null);
        assert.equal(stored.expiresAt, null);
        assert.equal(stored.maxVisits, null);
        assert.equal(stored.fallbackUrl, null);
      });

      test('codes are unique and case-sensitive', async () => {
        await links.insert(newLink('CaseX'));
        await links.insert(newLink('casex'));
        assert.equal((await links.findByCode('CaseX'))?.code, 'CaseX');
        assert.equal((await links.findByCode('casex'))?.code, 'casex');
        assert.equal(await links.findByCode('CASEX'), null);
        await assert.rejects(links.insert(newLink('CaseX')), (error: unknown) => {
          assert.equal((error as { code?: string }).code, '23505');
          return true;
        });
      });

      test('an unknown code is null', async () => {
        assert.equal(await links.findByCode('nope-nope'), null);
      });

      test('ids grow with insertion order', async () => {
        const first = await links.insert(newLink('ord0001'));
        const second = await links.insert(newLink('ord0002'));
        assert.ok(BigInt(second.id) > BigInt(first.id));
      });
    });

    describe('LinkRepository list', () => {
      let owned: Link[];
      before(async () => {
        await fresh.db.query('DELETE FROM links');
        // Ids 98..103 cross a digit boundary: ordering must be numeric, not textual.
        await fresh.db.query(`SELECT setval(pg_get_serial_sequence('links', 'id'), 97)`);
        owned = [];
        owned.push(await links.insert(newLink('ls00001', { title: 'Save 50% now', tags: ['promo'] })));
        owned.push(await links.insert(newLink('ls00002', { title: 'Save 500 now', tags: ['promo', 'big'] })));
        owned.push(await links.insert(newLink('ls00003', { title: 'snake_case', ownerKeyId: OWNER_B, tags: ['dev'] })));
        owned.push(await links.insert(newLink('ls00004', { title: 'snakeXcase', ownerKeyId: OWNER_B })));
        owned.push(await links.insert(newLink('ls00005', { title: 'back\\slash', url: 'https://EXAMPLE.org/Path' })));
        owned.push(await links.insert(newLink('ls00006', { title: 'backslash' })));
      });

      test('ids are numeric and cross 99 → 100 in this fixture', () => {
        assert.deepEqual(owned.map((link) => link.id), ['98', '99', '100', '101', '102', '103']);
      });

      test('newest first (by numeric id); everything without filters', async () => {
        assert.deepEqual(codesOf(await links.list(listQuery())), ['ls00006', 'ls00005', 'ls00004', 'ls00003', 'ls00002', 'ls00001']);
      });

      test('owner filter', async () => {
        assert.deepEqual(codesOf(await links.list(listQuery({ ownerKeyId: OWNER_B }))), ['ls00004', 'ls00003']);
        assert.deepEqual(codesOf(await links.list(listQuery({ ownerKeyId: 'key_nobody' }))), []);
      });

      test('tag filter matches a whole tag, combined with owner', async () => {
        assert.deepEqual(codesOf(await links.list(listQuery({ tag: 'promo' }))), ['ls00002', 'ls00001']);
        assert.deepEqual(codesOf(await links.list(listQuery({ tag: 'big' }))), ['ls00002']);
        assert.deepEqual(codesOf(await links.list(listQuery({ tag: 'pro' }))), []);
        assert.deepEqual(codesOf(await links.list(listQuery({ tag: 'dev', ownerKeyId: OWNER_A }))), []);
        assert.deepEqual(codesOf(await links.list(listQuery({ tag: 'dev', ownerKeyId: OWNER_B }))), ['ls00003']);
      });

      test('search is case-insensitive over url, code and title', async () => {
        assert.deepEqual(codesOf(await links.list(listQuery({ search: 'example.ORG/path' }))), ['ls00005']);
        assert.deepEqual(codesOf(await links.list(listQuery({ search: 'LS00003' }))), ['ls00003']);
        assert.deepEqual(codesOf(await links.list(listQuery({ search: 'SAVE' }))), ['ls00002', 'ls00001']);
      });

      test('LIKE metacharacters in a search are literal: %, _ and \\', async () => {
        assert.deepEqual(codesOf(await links.list(listQuery({ search: '50%' }))), ['ls00001']);
        assert.deepEqual(codesOf(await links.list(listQuery({ search: '%' }))), ['ls00001']);
        assert.deepEqual(codesOf(await links.list(listQuery({ search: 'snake_case' }))), ['ls00003']);
        assert.deepEqual(codesOf(await links.list(listQuery({ search: '_' }))), ['ls00003']);
        assert.deepEqual(codesOf(await links.list(listQuery({ search: 'back\\slash' }))), ['ls00005']);
        assert.deepEqual(codesOf(await links.list(listQuery({ search: '\\' }))), ['ls00005']);
        assert.deepEqual(codesOf(await links.list(listQuery({ search: "'; DROP TABLE links; --" }))), []);
        assert.equal((await links.list(listQuery())).length, 6);
      });

      test('beforeId pages backwards; limit bounds the page', async () => {
        const [first, second, third] = owned;
        assert.ok(first && second && third);
        assert.deepEqual(codesOf(await links.list(listQuery({ beforeId: third.id }))), ['ls00002', 'ls00001']);
        assert.deepEqual(codesOf(await links.list(listQuery({ beforeId: first.id }))), []);
        assert.deepEqual(codesOf(await links.list(listQuery({ limit: 2 }))), ['ls00006', 'ls00005']);
        assert.deepEqual(codesOf(await links.list(listQuery({ limit: 2, beforeId: third.id, ownerKeyId: OWNER_A }))), ['ls00002', 'ls00001']);
        assert.deepEqual(codesOf(await links.list(listQuery({ beforeId: '9223372036854775807' }))).length, 6);
      });

      test('LinkService.list: cursor pages cover every link once', async () => {
        const svc = service(fresh.db, codeQueue([]));
        const seen: string[] = [];
        let cursor: string | null = null;
        for (let page = 0; page < 10; page += 1) {
          const result = await svc.list({ limit: 4, cursor, q: null, tag: null }, admin);
          seen.push(...codesOf(result.items));
          cursor = result.nextCursor;
          if (cursor === null) break;
        }
        assert.deepEqual(seen, ['ls00006', 'ls00005', 'ls00004', 'ls00003', 'ls00002', 'ls00001']);
        const member = await svc.list({ limit: 10, cursor: null, q: null, tag: null }, actorA);
        assert.deepEqual(codesOf(member.items), ['ls00006', 'ls00005', 'ls00002', 'ls00001'], 'a member sees only its own');
        assert.equal(member.nextCursor, null);
      });
    });

    describe('LinkRepository update and delete', () => {
      test('update without an expected version applies and bumps the version', async () => {
        const created = await links.insert(newLink('up00001', { title: 'old', tags: ['a'] }));
        const updated = await links.update('up00001', { title: 'new', tags: ['b', 'c'], redirectType: 301 }, null, null);
        assert.ok(updated !== null);
        assert.equal(updated.version, created.version + 1);
        assert.equal(updated.title, 'new');
        assert.deepEqual(updated.tags, ['b', 'c']);
        assert.equal(updated.redirectType, 301);
        assert.equal(updated.url, created.url, 'untouched fields are kept');
        assert.ok(updated.updatedAt.getTime() >= created.updatedAt.getTime());
        assert.deepEqual(await links.findByCode('up00001'), updated);
      });

      test('fields can be set back to null', async () => {
        await links.insert(newLink('up00002', { title: 't', expiresAt: new Date(Date.now() + 60_000), maxVisits: 3, fallbackUrl: 'https://f.example/' }));
        const updated = await links.update('up00002', { title: null, expiresAt: null, maxVisits: null, fallbackUrl: null }, null, null);
        assert.equal(updated?.title, null);
        assert.equal(updated?.expiresAt, null);
        assert.equal(updated?.maxVisits, null);
        assert.equal(updated?.fallbackUrl, null);
      });

      test('update with the current version applies; with a stale one matches nothing', async () => {
        const created = await links.insert(newLink('up00003'));
        const updated = await links.update('up00003', { disabled: true }, created.version, null);
        assert.equal(updated?.version, created.version + 1);
        assert.equal(updated?.disabled, true);
        assert.equal(await links.update('up00003', { disabled: false }, created.version, null), null);
        assert.equal((await links.findByCode('up00003'))?.disabled, true, 'the stale update changed nothing');
      });

      test('concurrent updates with one expected version: exactly one wins', async () => {
        const created = await links.insert(newLink('up00004'));
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) => links.update('up00004', { title: `writer ${i}` }, created.version, null)),
        );
        assert.equal(results.filter((result) => result !== null).length, 1);
        assert.equal((await links.findByCode('up00004'))?.version, created.version + 1);
      });

      test('update of an unknown code is null', async () => {
        assert.equal(await links.update('no-such', { title: 'x' }, null, null), null);
      });

      test('delete removes once, and records the link for the purge of its analytics', async () => {
        const created = await links.insert(newLink('del0001'));
        assert.equal(await links.delete('del0001', null), created.id);
        assert.equal(await links.findByCode('del0001'), null);
        assert.equal(await links.delete('del0001', null), null);
        const recorded = await fresh.db.query<{ code: string }>('SELECT code FROM deleted_links WHERE link_id = $1', [created.id]);
        assert.deepEqual(recorded.rows, [{ code: 'del0001' }]);
      });

      test('update and delete with an owner touch only that owner\'s link, in the statement that checks it', async () => {
        const created = await links.insert(newLink('own0001', { ownerKeyId: null }));
        assert.equal(await links.update('own0001', { title: 'x' }, null, 'someone-else'), null);
        assert.equal(await links.delete('own0001', 'someone-else'), null);
        assert.equal((await links.findByCode('own0001'))?.id, created.id, 'the link of another owner is untouched');
      });
    });

    describe('consumeVisit', () => {
      const allowed = (visit: Promise<{ allowed: boolean }>): Promise<boolean> => visit.then((result) => result.allowed);

      test('says when the visit used the limit up', async () => {
        const link = await links.insert(newLink('cv00005', { maxVisits: 2 }));
        assert.deepEqual(await links.consumeVisit(link.id), { allowed: true, usedUp: false });
        assert.deepEqual(await links.consumeVisit(link.id), { allowed: true, usedUp: true });
        assert.deepEqual(await links.consumeVisit(link.id), { allowed: false, usedUp: true });
      });

      test('maxVisits 10: 40 concurrent consumeVisit → exactly 10 true', async () => {
        const link = await links.insert(newLink('cv00001', { maxVisits: 10 }));
        const results = await Promise.all(Array.from({ length: 40 }, () => allowed(links.consumeVisit(link.id))));
        assert.equal(results.filter(Boolean).length, 10);
        assert.equal((await links.findByCode('cv00001'))?.visits, 10);
        assert.equal(await allowed(links.consumeVisit(link.id)), false);
        assert.equal((await links.findByCode('cv00001'))?.visits, 10, 'refused visits are not counted');
      });

      test('maxVisits 1: only the first', async () => {
        const link = await links.insert(newLink('cv00002', { maxVisits: 1 }));
        assert.deepEqual(await Promise.all([allowed(links.consumeVisit(link.id)), allowed(links.consumeVisit(link.id))]).then((r) => r.sort()), [false, true]);
      });

      test('no limit: always true, and counted', async () => {
        const link = await links.insert(newLink('cv00003'));
        const results = await Promise.all(Array.from({ length: 25 }, () => allowed(links.consumeVisit(link.id))));
        assert.ok(results.every(Boolean));
        assert.equal((await links.findByCode('cv00003'))?.visits, 25);
      });

      test('raising the limit allows more visits', async () => {
        const link = await links.insert(newLink('cv00004', { maxVisits: 2 }));
        await allowed(links.consumeVisit(link.id));
        await allowed(links.consumeVisit(link.id));
        assert.equal(await allowed(links.consumeVisit(link.id)), false);
        await links.update('cv00004', { maxVisits: 3 }, null, null);
        assert.equal(await allowed(links.consumeVisit(link.id)), true);
        assert.equal(await allowed(links.consumeVisit(link.id)), false);
      });

      test('an unknown id is false', async () => {
        assert.equal(await allowed(links.consumeVisit('999999999')), false);
      });
    });

    describe('LinkService on the store', () => {
      test('alias race: 20 concurrent creates of one alias → 1 success, 19 alias_taken', async () => {
        const svc = service(fresh.db, codeQueue([]));
        const settled = await Promise.allSettled(
          Array.from({ length: 20 }, (_, i) => svc.create({ url: `https://example.com/race/${i}`, alias: 'race-alias' }, actorA)),
        );
        const won = settled.filter((result): result is PromiseFulfilledResult<Link> => result.status === 'fulfilled');
        const lost = settled.filter((result): result is PromiseRejectedResult => result.status === 'rejected');
        assert.equal(won.length, 1);
        assert.equal(lost.length, 19);
        for (const { reason } of lost) {
          assert.ok(reason instanceof AppError, String(reason));
          assert.equal(reason.code, 'alias_taken');
          assert.equal(reason.status, 409);
          assert.deepEqual(reason.errors, [{ field: 'alias', message: 'already in use' }]);
        }
        const stored = await links.findByCode('race-alias');
        assert.equal(stored?.url, won[0]?.value.url);
        assert.equal(stored?.customAlias, true);
        assert.equal(stored?.ownerKeyId, OWNER_A);
      });

      test('aliases are case-sensitive: Race-Alias is a different link', async () => {
        const svc = service(fresh.db, codeQueue([]));
        const link = await svc.create({ url: 'https://example.com/other', alias: 'Race-Alias' }, actorA);
        assert.equal(link.code, 'Race-Alias');
      });

      test('a generated code that hits an existing alias is skipped', async () => {
        await links.insert(newLink('gen0001', { customAlias: true }));
        const codes = codeQueue(['gen0001', 'gen0002']);
        const svc = service(fresh.db, codes);
        const link = await svc.create({ url: 'https://example.com/generated' }, actorA);
        assert.equal(link.code, 'gen0002');
        assert.equal(link.customAlias, false);
        assert.equal(codes.taken, 2);
      });

      test('a reserved or invalid alias never reaches the store', async () => {
        const svc = service(fresh.db, codeQueue([]));
        await assert.rejects(svc.create({ url: 'https://example.com/', alias: 'API' }, actorA), { code: 'alias_reserved' });
        await assert.rejects(svc.create({ url: 'https://example.com/', alias: 'a b' }, actorA), { code: 'alias_invalid' });
        assert.equal(await links.findByCode('API'), null);
      });

      test('a member cannot see or change another owner\'s link; an admin can', async () => {
        const svc = service(fresh.db, codeQueue([]));
        await svc.create({ url: 'https://example.com/mine', alias: 'owned-by-a' }, actorA);
        const other: Actor = { keyId: OWNER_B, role: 'member' };
        await assert.rejects(svc.get('owned-by-a', other), { code: 'link_not_found' });
        await assert.rejects(svc.update('owned-by-a', { title: 'x' }, other, null), { code: 'link_not_found' });
        await assert.rejects(svc.delete('owned-by-a', other), { code: 'link_not_found' });
        assert.equal((await svc.get('owned-by-a', admin)).code, 'owned-by-a');
      });

      test('update with a stale version is precondition_failed; resolve sees the change at once', async () => {
        const svc = service(fresh.db, codeQueue([]));
        const created = await svc.create({ url: 'https://example.com/v1', alias: 'versioned' }, actorA);
        assert.equal((await svc.resolve('versioned'))?.url, 'https://example.com/v1');
        const updated = await svc.update('versioned', { url: 'https://example.com/v2' }, actorA, created.version);
        assert.equal(updated.version, created.version + 1);
        assert.equal((await svc.resolve('versioned'))?.url, 'https://example.com/v2', 'the cache was invalidated');
        await assert.rejects(svc.update('versioned', { title: 'late' }, actorA, created.version), { code: 'precondition_failed' });
        await svc.delete('versioned', actorA);
        assert.equal(await svc.resolve('versioned'), null);
      });

      test('a negative cache entry does not hide a link created afterwards', async () => {
        const svc = service(fresh.db, codeQueue([]));
        assert.equal(await svc.resolve('late-comer'), null);
        await svc.create({ url: 'https://example.com/late', alias: 'late-comer' }, actorA);
        assert.equal((await svc.resolve('late-comer'))?.url, 'https://example.com/late');
      });
    });
  });
}
