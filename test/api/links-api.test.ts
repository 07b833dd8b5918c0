/**
 * The links API (/api/v1/links) driven through inject(), on PGlite and on PostgreSQL:
 * create, validation, alias races, bulk create, list and search, ETags and conditional
 * requests, change, delete, and Idempotency-Key.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import type { LinkJson } from '../../src/http/schemas.js';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';
import { assertProblemBody, expectProblem, type Problem } from '../helpers/problems.js';

interface LinkPage {
  items: LinkJson[];
  nextCursor: string | null;
}

interface BulkItem {
  status: number;
  link?: LinkJson;
  problem?: Problem;
}

const LINKS = '/api/v1/links';

/** The fields a validation problem lists. */
function fieldsOf(problem: Problem): Set<string> {
  assert.ok(Array.isArray(problem.errors), `problem has no errors list: ${JSON.stringify(problem)}`);
  for (const error of problem.errors) {
    assert.equal(typeof error.field, 'string');
    assert.equal(typeof error.message, 'string');
    assert.ok(error.message.length > 0);
  }
  return new Set(problem.errors.map((error) => error.field));
}

function assertFields(problem: Problem, expected: readonly string[]): void {
  const fields = fieldsOf(problem);
  for (const field of expected) assert.ok(fields.has(field), `expected field ${field} in ${JSON.stringify(problem.errors)}`);
}

for (const backend of BACKENDS) {
  describe(`links API (${backend})`, await backendTestOptions(backend), () => {
    let app: TestApp;
    let sequence = 0;
    /** An alias no other test uses. */
    const uniqueAlias = (prefix: string): string => `${prefix}-${(sequence += 1)}`;

    before(async () => {
      app = await startTestApp(backend, {
        env: { RATE_LIMIT_KEY_PER_MINUTE: '1000000', RATE_LIMIT_IP_PER_MINUTE: '1000000', BLOCKED_DOMAINS: 'blocked.example' },
      });
    });
    after(() => app.close());

    const create = (body: unknown, key?: string, headers?: Record<string, string>): Promise<LightMyRequestResponse> =>
      app.request({ method: 'POST', url: LINKS, body, ...(key === undefined ? {} : { key }), ...(headers === undefined ? {} : { headers }) });

    async function createLink(body: Record<string, unknown>, key?: string): Promise<{ link: LinkJson; etag: string }> {
      const response = await create(body, key);
      assert.equal(response.statusCode, 201, response.body);
      return { link: response.json<LinkJson>(), etag: String(response.headers.etag) };
    }

    async function list(query: string, key?: string): Promise<LinkPage> {
      const response = await app.request({ url: `${LINKS}${query}`, ...(key === undefined ? {} : { key }) });
      assert.equal(response.statusCode, 200, response.body);
      return response.json<LinkPage>();
    }

    const follow = (path: string): Promise<LightMyRequestResponse> => app.request({ url: path, key: null });

    describe('create', () => {
      test('all fields: 201 with the link, shortUrl on BASE_URL, Location and ETag', async () => {
        const expiresAt = new Date(Date.now() + 7 * 86_400_000);
        const body = {
          url: 'https://example.com/landing?utm=1',
          alias: 'all-fields',
          title: 'Everything set',
          tags: ['launch', 'q3'],
          expiresAt: expiresAt.toISOString(),
          maxVisits: 10,
          redirectType: 307,
          forwardQuery: false,
          fallbackUrl: 'https://example.org/sorry',
        };
        const response = await create(body);
        assert.equal(response.statusCode, 201, response.body);
        assert.match(String(response.headers['content-type']), /^application\/json/);
        const link = response.json<LinkJson>();
        assert.equal(link.code, 'all-fields');
        assert.equal(link.shortUrl, 'http://sho.rt/all-fields');
        assert.equal(link.url, 'https://example.com/landing?utm=1');
        assert.equal(link.alias, 'all-fields');
        assert.equal(link.title, 'Everything set');
        assert.deepEqual(link.tags, ['launch', 'q3']);
        assert.ok(link.expiresAt !== null);
        assert.equal(new Date(link.expiresAt).getTime(), expiresAt.getTime());
        assert.equal(link.maxVisits, 10);
        assert.equal(link.visits, 0);
        assert.equal(link.redirectType, 307);
        assert.equal(link.forwardQuery, false);
        assert.equal(link.fallbackUrl, 'https://example.org/sorry');
        assert.equal(link.disabled, false);
        assert.ok(!Number.isNaN(Date.parse(link.createdAt)));
        assert.ok(!Number.isNaN(Date.parse(link.updatedAt)));
        assert.equal(response.headers.location, '/api/v1/links/all-fields');
        const etag = String(response.headers.etag);
        assert.match(etag, /^"[^"]+"$/, 'a strong ETag');

        const fetched = await app.request({ url: `${LINKS}/all-fields` });
        assert.equal(fetched.statusCode, 200, fetched.body);
        assert.deepEqual(fetched.json(), link);
        assert.equal(fetched.headers.etag, etag);

        // The settings are live: 307, and the short URL's query is not forwarded.
        const followed = await follow('/all-fields?ref=x');
        assert.equal(followed.statusCode, 307);
        assert.equal(followed.headers.location, 'https://example.com/landing?utm=1');
      });

      test('defaults: generated code, 302, forwardQuery on, nothing else set', async () => {
        const { link, etag } = await createLink({ url: 'https://example.com/defaults' });
        assert.match(link.code, /^[0-9A-Za-z]{7}$/);
        assert.equal(link.shortUrl, `http://sho.rt/${link.code}`);
        assert.equal(link.alias, null);
        assert.equal(link.title, null);
        assert.deepEqual(link.tags, []);
        assert.equal(link.expiresAt, null);
        assert.equal(link.maxVisits, null);
        assert.equal(link.redirectType, 302);
        assert.equal(link.forwardQuery, true);
        assert.equal(link.fallbackUrl, null);
        assert.equal(link.disabled, false);
        assert.match(etag, /^"[^"]+"$/);

        const followed = await follow(`/${link.code}?ref=abc`);
        assert.equal(followed.statusCode, 302);
        assert.equal(followed.headers.location, 'https://example.com/defaults?ref=abc');
      });

      test('two links get different codes and ETags', async () => {
        const first = await createLink({ url: 'https://example.com/one' });
        const second = await createLink({ url: 'https://example.com/one' });
        assert.notEqual(first.link.code, second.link.code);
        assert.notEqual(first.etag, second.etag);
      });

      for (const redirectType of [301, 302, 307, 308] as const) {
        test(`redirectType ${redirectType} is stored and served`, async () => {
          const { link } = await createLink({ url: `https://example.com/type/${redirectType}`, redirectType });
          assert.equal(link.redirectType, redirectType);
          const followed = await follow(`/${link.code}`);
          assert.equal(followed.statusCode, redirectType);
          assert.equal(followed.headers.location, `https://example.com/type/${redirectType}`);
        });
      }

      test('the boundaries are accepted: 20 tags, a 512-character title, a 64-character alias', async () => {
        const tags = Array.from({ length: 20 }, (_, i) => `tag-${i}`);
        const title = 't'.repeat(512);
        const alias = `A${'b'.repeat(62)}9`;
        const { link } = await createLink({ url: 'https://example.com/limits', tags, title, alias });
        assert.deepEqual(link.tags, tags);
        assert.equal(link.title, title);
        assert.equal(link.code, alias);
      });
    });

    describe('create: validation', () => {
      test('wrong types: 422 listing every bad field', async () => {
        const response = await create({
          url: 42,
          alias: 12,
          title: 7,
          tags: 'news',
          expiresAt: 'tomorrow',
          maxVisits: '5',
          redirectType: 303,
          forwardQuery: 'yes',
          fallbackUrl: 5,
        });
        const problem = expectProblem(response, 422, 'validation_failed');
        assertFields(problem, ['url', 'alias', 'title', 'tags', 'expiresAt', 'maxVisits', 'redirectType', 'forwardQuery', 'fallbackUrl']);
      });

      test('missing url: 422 naming url', async () => {
        assertFields(expectProblem(await create({ title: 'no destination' }), 422, 'validation_failed'), ['url']);
      });

      test('maxVisits must be a positive integer', async () => {
        for (const maxVisits of [0, -1, 1.5]) {
          assertFields(expectProblem(await create({ url: 'https://example.com/mv', maxVisits }), 422, 'validation_failed'), ['maxVisits']);
        }
      });

      test('unknown fields: 422 naming each of them', async () => {
        const problem = expectProblem(await create({ url: 'https://example.com/', colour: 'red', owner: 'me' }), 422, 'validation_failed');
        assertFields(problem, ['colour', 'owner']);
      });

      test('more than 20 tags: 422 on tags', async () => {
        const tags = Array.from({ length: 21 }, (_, i) => `t${i}`);
        assertFields(expectProblem(await create({ url: 'https://example.com/', tags }), 422, 'validation_failed'), ['tags']);
      });

      test('an empty or over-long tag: 422 on that tag', async () => {
        const problem = expectProblem(await create({ url: 'https://example.com/', tags: ['ok', 'x'.repeat(65)] }), 422, 'validation_failed');
        assertFields(problem, ['tags[1]']);
        assertFields(expectProblem(await create({ url: 'https://example.com/', tags: [''] }), 422, 'validation_failed'), ['tags[0]']);
      });

      test('a title over 512 characters: 422 on title', async () => {
        assertFields(expectProblem(await create({ url: 'https://example.com/', title: 't'.repeat(513) }), 422, 'validation_failed'), ['title']);
      });

      test('expiresAt in the past: 422 on expiresAt', async () => {
        const past = new Date(Date.now() - 60_000).toISOString();
        assertFields(expectProblem(await create({ url: 'https://example.com/', expiresAt: past }), 422, 'validation_failed'), ['expiresAt']);
      });

      test('aliases outside [A-Za-z0-9_-]{1,64}: 422 on alias', async () => {
        for (const alias of ['has space', 'slash/inside', 'dot.ted', 'ünicode', '', 'a'.repeat(65)]) {
          const response = await create({ url: 'https://example.com/', alias });
          assert.equal(response.statusCode, 422, `alias ${JSON.stringify(alias)}: ${response.body}`);
          const problem = assertProblemBody(response.json<Problem>(), 422, response.json<Problem>().code, alias);
          assert.ok(['validation_failed', 'alias_invalid'].includes(problem.code), problem.code);
          assertFields(problem, ['alias']);
        }
      });

      test('reserved aliases, in any case: 422 alias_reserved', async () => {
        for (const alias of ['api', 'Admin', 'HEALTHZ', 'metrics', 'readyz']) {
          const problem = expectProblem(await create({ url: 'https://example.com/', alias }), 422, 'alias_reserved');
          assertFields(problem, ['alias']);
        }
        const notCreated = await app.request({ url: `${LINKS}/api` });
        expectProblem(notCreated, 404, 'link_not_found');
      });

      test('an empty or over-long password: 422 on password', async () => {
        for (const password of ['', 'p'.repeat(1025)]) {
          const problem = expectProblem(await create({ url: 'https://example.com/secret', password }), 422, 'validation_failed');
          assertFields(problem, ['password']);
        }
      });

      test('malformed URLs: 422 invalid_url', async () => {
        const bad = [
          'not a url',
          'example.com/no-scheme',
          'ftp://example.com/file',
          'javascript:alert(1)',
          'data:text/html,hi',
          'https://user:pass@example.com/',
          'https://example.com/\tpath',
          ' https://example.com/',
          `https://example.com/${'a'.repeat(2048)}`,
        ];
        for (const url of bad) {
          const response = await create({ url });
          assert.equal(response.statusCode, 422, `${JSON.stringify(url)}: ${response.body}`);
          assertFields(expectProblem(response, 422, 'invalid_url'), ['url']);
        }
      });

      test('private, own-host, shortener and blocked destinations: 422 url_not_allowed', async () => {
        const refused = [
          'http://127.0.0.1/',
          'http://10.1.2.3/admin',
          'http://192.168.0.1/',
          'http://169.254.169.254/latest/meta-data/',
          'http://[::1]/',
          'http://localhost:8080/',
          'http://sho.rt/loop',
          'https://bit.ly/abc',
          'https://blocked.example/page',
          'https://sub.blocked.example/page',
        ];
        for (const url of refused) {
          const response = await create({ url });
          assert.equal(response.statusCode, 422, `${url}: ${response.body}`);
          assertFields(expectProblem(response, 422, 'url_not_allowed'), ['url']);
        }
      });

      test('fallbackUrl is checked like url; mixed problems are listed together', async () => {
        assertFields(
          expectProblem(await create({ url: 'https://example.com/', fallbackUrl: 'http://127.0.0.1/' }), 422, 'url_not_allowed'),
          ['fallbackUrl'],
        );
        const mixed = expectProblem(
          await create({ url: 'ftp://example.com/', fallbackUrl: 'http://10.0.0.1/', expiresAt: new Date(Date.now() - 1000).toISOString() }),
          422,
          'validation_failed',
        );
        assertFields(mixed, ['url', 'fallbackUrl', 'expiresAt']);
      });

      test('type errors and destination errors in one body are listed together', async () => {
        // "Validation errors list each bad field": a too-long title must not hide the refused URL.
        const problem = expectProblem(await create({ url: 'http://127.0.0.1/', title: 'x'.repeat(600) }), 422, 'validation_failed');
        assertFields(problem, ['title', 'url']);
      });

      test('a body that is not JSON: 400 problem', async () => {
        const response = await app.request({ method: 'POST', url: LINKS, payload: '{"url": ', headers: { 'content-type': 'application/json' } });
        assert.equal(response.statusCode, 400, response.body);
        assert.match(String(response.headers['content-type']), /^application\/problem\+json/);
        const problem = response.json<Problem>();
        assertProblemBody(problem, 400, problem.code);
        assert.ok(['invalid_json', 'malformed_request'].includes(problem.code), problem.code);
      });
    });

    describe('create: alias race', () => {
      test('20 concurrent creates of one alias: one 201, nineteen 409 alias_taken', async () => {
        const alias = uniqueAlias('race');
        const responses = await Promise.all(
          Array.from({ length: 20 }, (_, i) => create({ url: `https://example.com/race/${i}`, alias })),
        );
        const created = responses.filter((response) => response.statusCode === 201);
        const conflicts = responses.filter((response) => response.statusCode === 409);
        assert.equal(created.length, 1, responses.map((r) => `${r.statusCode}`).join(','));
        assert.equal(conflicts.length, 19);
        for (const conflict of conflicts) {
          const problem = expectProblem(conflict, 409, 'alias_taken');
          assertFields(problem, ['alias']);
        }
        const winner = (created[0] as LightMyRequestResponse).json<LinkJson>();
        const fetched = await app.request({ url: `${LINKS}/${alias}` });
        assert.equal(fetched.statusCode, 200);
        assert.equal(fetched.json<LinkJson>().url, winner.url);
        // And only one link carries it.
        const found = await list(`?q=${alias}&limit=100`);
        assert.deepEqual(found.items.map((link) => link.code), [alias]);
      });

      test('an alias taken earlier: 409 alias_taken, the first link unchanged', async () => {
        const alias = uniqueAlias('taken');
        await createLink({ url: 'https://example.com/first', alias });
        expectProblem(await create({ url: 'https://example.com/second', alias }), 409, 'alias_taken');
        const fetched = await app.request({ url: `${LINKS}/${alias}` });
        assert.equal(fetched.json<LinkJson>().url, 'https://example.com/first');
      });
    });

    describe('bulk create', () => {
      const bulk = (body: unknown, headers?: Record<string, string>): Promise<LightMyRequestResponse> =>
        app.request({ method: 'POST', url: `${LINKS}/bulk`, body, ...(headers === undefined ? {} : { headers }) });

      test('mixed items: per-item statuses in input order', async () => {
        const alias = uniqueAlias('bulk');
        const input: unknown[] = [
          { url: 'https://example.com/bulk/0' },
          { url: 'ftp://example.com/bulk/1' },
          { url: 'https://example.com/bulk/2', alias },
          { url: 'https://example.com/bulk/3', alias },
          { url: 'https://example.com/bulk/4', colour: 'red' },
          'not an object',
          { url: 'https://example.com/bulk/6', alias: 'api' },
          { url: 'http://127.0.0.1/bulk/7' },
          { url: 'https://example.com/bulk/8', tags: ['b'] },
        ];
        const response = await bulk({ links: input });
        assert.equal(response.statusCode, 200, response.body);
        const { items } = response.json<{ items: BulkItem[] }>();
        assert.deepEqual(items.map((item) => item.status), [201, 422, 201, 409, 422, 422, 422, 422, 201]);

        const expectedProblems: Record<number, string> = { 1: 'invalid_url', 3: 'alias_taken', 4: 'validation_failed', 5: 'validation_failed', 6: 'alias_reserved', 7: 'url_not_allowed' };
        for (const [index, item] of items.entries()) {
          const code = expectedProblems[index];
          if (code === undefined) {
            assert.equal(item.problem, undefined);
            assert.ok(item.link !== undefined, `item ${index} has no link`);
            assert.equal(item.link.url, (input[index] as { url: string }).url);
            assert.equal(item.link.shortUrl, `http://sho.rt/${item.link.code}`);
          } else {
            assert.equal(item.link, undefined);
            assert.ok(item.problem !== undefined, `item ${index} has no problem`);
            assertProblemBody(item.problem, item.status, code, `item ${index}`);
          }
        }
        const unknownField = items[4]?.problem;
        assert.ok(unknownField !== undefined);
        assert.ok(fieldsOf(unknownField).size > 0);
        assert.ok([...fieldsOf(unknownField)].some((field) => field.endsWith('colour')), JSON.stringify(unknownField.errors));

        // The 201 items really exist; the alias belongs to item 2, not item 3.
        for (const index of [0, 2, 8]) {
          const code = items[index]?.link?.code ?? '';
          const fetched = await app.request({ url: `${LINKS}/${code}` });
          assert.equal(fetched.statusCode, 200, `item ${index}`);
        }
        const aliased = await app.request({ url: `${LINKS}/${alias}` });
        assert.equal(aliased.json<LinkJson>().url, 'https://example.com/bulk/2');
      });

      test('1000 items are accepted, in order', async () => {
        const marker = uniqueAlias('bulk1000');
        const input = Array.from({ length: 1000 }, (_, i) => ({ url: `https://example.com/${marker}/${i}` }));
        const response = await bulk({ links: input });
        assert.equal(response.statusCode, 200, response.body.slice(0, 500));
        const { items } = response.json<{ items: BulkItem[] }>();
        assert.equal(items.length, 1000);
        items.forEach((item, i) => {
          assert.equal(item.status, 201);
          assert.equal(item.link?.url, `https://example.com/${marker}/${i}`);
        });
        assert.equal(new Set(items.map((item) => item.link?.code)).size, 1000);
      });

      test('1000 items mixing valid, invalid and taken aliases: one result each, in order, each link as stored', async () => {
        const marker = uniqueAlias('bulkmix');
        // Aliases taken before the request (every tenth item asks for one of them).
        const takenBefore = Array.from({ length: 100 }, (_, n) => ({ url: `https://example.com/${marker}/before/${n}`, alias: `${marker}-t${n * 10}` }));
        assert.deepEqual((await bulk({ links: takenBefore })).json<{ items: BulkItem[] }>().items.map((item) => item.status), takenBefore.map(() => 201));
        // A code tried before it exists leaves a negative entry in the caches: the bulk must clear it.
        assert.equal((await app.request({ url: `/${marker}-a2`, key: null })).statusCode, 404);
        const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
        const input = Array.from({ length: 1000 }, (_, i): Record<string, unknown> => {
          const url = `https://example.com/${marker}/${i}`;
          switch (i % 10) {
            case 0: return { url, alias: `${marker}-t${i}` };
            case 1: return { url: `ftp://example.com/${marker}/${i}` };
            case 2: return { url, alias: `${marker}-a${i}` };
            case 3: return { url, alias: `${marker}-a${i - 1}` };
            case 4: return { url, title: `Item ${i}`, tags: ['Mixed', `n${i}`], expiresAt, maxVisits: 5, redirectType: 301, forwardQuery: false, ...(i % 500 === 4 ? { password: 'open sesame' } : {}) };
            case 5: return { url, alias: 'api' };
            default: return { url };
          }
        });
        const response = await bulk({ links: input });
        assert.equal(response.statusCode, 200, response.body.slice(0, 500));
        const { items } = response.json<{ items: BulkItem[] }>();
        assert.equal(items.length, 1000);
        const expected: Record<number, [number, string]> = { 0: [409, 'alias_taken'], 1: [422, 'invalid_url'], 3: [409, 'alias_taken'], 5: [422, 'alias_reserved'] };
        const createdCodes: string[] = [];
        for (const [i, item] of items.entries()) {
          const problem = expected[i % 10];
          if (problem !== undefined) {
            assert.equal(item.link, undefined, `item ${i}`);
            assert.ok(item.problem !== undefined, `item ${i} has no problem`);
            assertProblemBody(item.problem, problem[0], problem[1], `item ${i}`);
            assert.equal(item.status, problem[0], `item ${i}`);
            continue;
          }
          assert.equal(item.status, 201, `item ${i}`);
          assert.ok(item.link !== undefined, `item ${i} has no link`);
          assert.equal(item.link.url, `https://example.com/${marker}/${i}`);
          if (i % 10 === 2) assert.equal(item.link.code, `${marker}-a${i}`);
          createdCodes.push(item.link.code);
        }
        assert.equal(new Set(createdCodes).size, 600);
        assert.equal(items[4]?.link?.passwordProtected, true);
        assert.equal(items[14]?.link?.passwordProtected, false);
        assert.deepEqual(items[14]?.link?.tags, ['Mixed', 'n14']);
        // What the answer says is what the store holds.
        for (const i of [2, 4, 6, 14, 504, 998]) {
          const fetched = await app.request({ url: `${LINKS}/${items[i]?.link?.code ?? ''}` });
          assert.deepEqual(fetched.json<LinkJson>(), items[i]?.link, `item ${i}`);
        }
        assert.equal((await app.request({ url: `/${marker}-a2`, key: null })).statusCode, 302);
        const takenAlias = await app.request({ url: `${LINKS}/${marker}-t0` });
        assert.equal(takenAlias.json<LinkJson>().url, `https://example.com/${marker}/before/0`);
      });

      test('1001 items: 422, and nothing is created', async () => {
        const marker = uniqueAlias('toomany');
        const input = Array.from({ length: 1001 }, (_, i) => ({ url: `https://example.com/${marker}/${i}` }));
        assertFields(expectProblem(await bulk({ links: input }), 422, 'validation_failed'), ['links']);
        assert.deepEqual((await list(`?q=${marker}`)).items, []);
      });

      test('empty, missing or non-array links: 422', async () => {
        assertFields(expectProblem(await bulk({ links: [] }), 422, 'validation_failed'), ['links']);
        assertFields(expectProblem(await bulk({}), 422, 'validation_failed'), ['links']);
        assertFields(expectProblem(await bulk({ links: 'x' }), 422, 'validation_failed'), ['links']);
      });

      test('Idempotency-Key on bulk: a retry creates nothing new', async () => {
        const key = await app.createKey('member', 'bulk idempotency');
        const body = { links: [{ url: 'https://example.com/bi/0' }, { url: 'https://example.com/bi/1' }] };
        const headers = { 'idempotency-key': 'bulk-retry-1' };
        const first = await app.request({ method: 'POST', url: `${LINKS}/bulk`, body, headers, key });
        const second = await app.request({ method: 'POST', url: `${LINKS}/bulk`, body, headers, key });
        assert.equal(first.statusCode, 200, first.body);
        assert.equal(second.statusCode, 200, second.body);
        assert.equal(second.headers['idempotent-replayed'], 'true');
        assert.deepEqual(second.json(), first.json());
        assert.equal((await list('?limit=100', key)).items.length, 2);
      });
    });

    describe('list', () => {
      test('newest first; 25 links in pages of 10: three pages, none missing or repeated', async () => {
        const key = await app.createKey('member', 'pager');
        const created: string[] = [];
        for (let i = 0; i < 25; i += 1) created.push((await createLink({ url: `https://example.com/page/${i}` }, key)).link.code);
        const newestFirst = [...created].reverse();

        const pages: LinkPage[] = [];
        let cursor: string | null = null;
        do {
          const page: LinkPage = await list(`?limit=10${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`, key);
          pages.push(page);
          cursor = page.nextCursor;
          assert.ok(pages.length <= 5, 'pagination does not end');
        } while (cursor !== null);

        assert.deepEqual(pages.map((page) => page.items.length), [10, 10, 5]);
        assert.equal(typeof pages[0]?.nextCursor, 'string');
        assert.equal(typeof pages[1]?.nextCursor, 'string');
        const seen = pages.flatMap((page) => page.items.map((link) => link.code));
        assert.deepEqual(seen, newestFirst);
        assert.equal(new Set(seen).size, 25);
        const times = pages.flatMap((page) => page.items.map((link) => Date.parse(link.createdAt)));
        for (let i = 1; i < times.length; i += 1) assert.ok((times[i] as number) <= (times[i - 1] as number), 'createdAt is not descending');
      });

      test('default page size is 20; a limit equal to the count leaves no next page', async () => {
        const key = await app.createKey('member', 'default limit');
        for (let i = 0; i < 21; i += 1) await createLink({ url: `https://example.com/dl/${i}` }, key);
        const firstPage = await list('', key);
        assert.equal(firstPage.items.length, 20);
        assert.notEqual(firstPage.nextCursor, null);
        const all = await list('?limit=21', key);
        assert.equal(all.items.length, 21);
        assert.equal(all.nextCursor, null);
      });

      test('q searches url, alias and title, case-insensitively, with % and _ taken literally', async () => {
        const key = await app.createKey('member', 'searcher');
        const a = (await createLink({ url: 'https://example.com/alpha-zone', title: 'Plain' }, key)).link.code;
        const b = (await createLink({ url: 'https://example.com/b', alias: uniqueAlias('beta_x') }, key)).link.code;
        const c = (await createLink({ url: 'https://example.com/c', title: '100% Gamma' }, key)).link.code;
        const d = (await createLink({ url: 'https://example.com/d', title: 'under_score' }, key)).link.code;
        await createLink({ url: 'https://example.com/e', title: 'Nothing special' }, key);

        const codes = async (q: string): Promise<string[]> =>
          (await list(`?limit=100&q=${encodeURIComponent(q)}`, key)).items.map((link) => link.code).sort();

        assert.deepEqual(await codes('ALPHA-zone'), [a]);
        assert.deepEqual(await codes('BETA_X'), [b]);
        assert.deepEqual(await codes('gamma'), [c]);
        assert.deepEqual(await codes('%'), [c]);
        assert.deepEqual(await codes('100%'), [c]);
        assert.deepEqual(await codes('_'), [b, d].sort());
        assert.deepEqual(await codes('a_e'), []);
        assert.deepEqual(await codes('%Gam'), []);
        assert.deepEqual(await codes('no-such-text'), []);
        // Another member's links are not searched.
        assert.deepEqual((await list(`?q=alpha-zone&limit=100`, await app.createKey('member', 'other searcher'))).items, []);
      });

      test('tag filters by exact tag', async () => {
        const key = await app.createKey('member', 'tagger');
        const redBlue = (await createLink({ url: 'https://example.com/rb', tags: ['red', 'blue'] }, key)).link.code;
        const blue = (await createLink({ url: 'https://example.com/b', tags: ['blue'] }, key)).link.code;
        const green = (await createLink({ url: 'https://example.com/g', tags: ['green'] }, key)).link.code;
        await createLink({ url: 'https://example.com/none' }, key);
        const codes = async (tag: string): Promise<string[]> =>
          (await list(`?tag=${encodeURIComponent(tag)}`, key)).items.map((link) => link.code);
        assert.deepEqual(await codes('blue'), [blue, redBlue]);
        assert.deepEqual(await codes('red'), [redBlue]);
        assert.deepEqual(await codes('green'), [green]);
        assert.deepEqual(await codes('gre'), []);
        assert.deepEqual(await codes('Blue'), []);
        // q and tag combine.
        assert.deepEqual((await list('?tag=blue&q=rb', key)).items.map((link) => link.code), [redBlue]);
      });

      test('limit over 100, below 1 or not a number: 422 on limit', async () => {
        for (const limit of ['101', '0', '-5', 'ten']) {
          const response = await app.request({ url: `${LINKS}?limit=${limit}` });
          assertFields(expectProblem(response, 422, 'validation_failed'), ['limit']);
        }
        const ok = await app.request({ url: `${LINKS}?limit=100` });
        assert.equal(ok.statusCode, 200);
      });

      test('a cursor this API did not issue: 422 on cursor', async () => {
        for (const cursor of ['garbage', Buffer.from('id:abc').toString('base64url'), Buffer.from('offset:10').toString('base64url')]) {
          const response = await app.request({ url: `${LINKS}?cursor=${encodeURIComponent(cursor)}` });
          assertFields(expectProblem(response, 422, 'validation_failed'), ['cursor']);
        }
      });

      test('an unknown query parameter: 422', async () => {
        expectProblem(await app.request({ url: `${LINKS}?sort=asc` }), 422, 'validation_failed');
      });
    });

    describe('get and ETag', () => {
      test('GET answers the link with its ETag; If-None-Match with it answers 304', async () => {
        const { link, etag } = await createLink({ url: 'https://example.com/etag' });
        const fetched = await app.request({ url: `${LINKS}/${link.code}` });
        assert.equal(fetched.statusCode, 200);
        assert.equal(fetched.headers.etag, etag);
        assert.deepEqual(fetched.json(), link);

        const notModified = await app.request({ url: `${LINKS}/${link.code}`, headers: { 'if-none-match': etag } });
        assert.equal(notModified.statusCode, 304);
        assert.equal(notModified.body, '');
        assert.equal(notModified.headers.etag, etag);

        const listed = await app.request({ url: `${LINKS}/${link.code}`, headers: { 'if-none-match': `"nope", ${etag}` } });
        assert.equal(listed.statusCode, 304);

        const other = await app.request({ url: `${LINKS}/${link.code}`, headers: { 'if-none-match': '"1-999"' } });
        assert.equal(other.statusCode, 200);
        assert.deepEqual(other.json(), link);
      });

      test('If-None-Match uses weak comparison (RFC 9110 13.1.2): W/ + the ETag answers 304', async () => {
        const { link, etag } = await createLink({ url: 'https://example.com/weak' });
        const response = await app.request({ url: `${LINKS}/${link.code}`, headers: { 'if-none-match': `W/${etag}` } });
        assert.equal(response.statusCode, 304, response.body);
      });

      test('after a change the old ETag no longer answers 304', async () => {
        const { link, etag } = await createLink({ url: 'https://example.com/etag-old' });
        const patched = await app.request({ method: 'PATCH', url: `${LINKS}/${link.code}`, body: { title: 'changed' } });
        assert.equal(patched.statusCode, 200);
        const fetched = await app.request({ url: `${LINKS}/${link.code}`, headers: { 'if-none-match': etag } });
        assert.equal(fetched.statusCode, 200);
        assert.notEqual(fetched.headers.etag, etag);
        assert.equal(fetched.headers.etag, patched.headers.etag);
      });

      test('unknown codes: 404 link_not_found on get, patch and delete', async () => {
        for (const code of ['nosuchcode', 'zz_unknown_zz', 'bad%20code', 'a'.repeat(65)]) {
          expectProblem(await app.request({ url: `${LINKS}/${code}` }), 404, 'link_not_found');
          expectProblem(await app.request({ method: 'PATCH', url: `${LINKS}/${code}`, body: { title: 'x' } }), 404, 'link_not_found');
          expectProblem(await app.request({ method: 'DELETE', url: `${LINKS}/${code}` }), 404, 'link_not_found');
        }
      });
    });

    describe('patch', () => {
      const patch = (code: string, body: unknown, headers?: Record<string, string>): Promise<LightMyRequestResponse> =>
        app.request({ method: 'PATCH', url: `${LINKS}/${code}`, body, ...(headers === undefined ? {} : { headers }) });

      test('changes the destination and answers a new ETag', async () => {
        const { link, etag } = await createLink({ url: 'https://example.com/before', title: 'T', tags: ['x'] });
        const response = await patch(link.code, { url: 'https://example.com/after' });
        assert.equal(response.statusCode, 200, response.body);
        const changed = response.json<LinkJson>();
        assert.equal(changed.url, 'https://example.com/after');
        assert.equal(changed.code, link.code);
        assert.equal(changed.title, 'T');
        assert.deepEqual(changed.tags, ['x']);
        assert.equal(changed.createdAt, link.createdAt);
        assert.ok(Date.parse(changed.updatedAt) >= Date.parse(link.updatedAt));
        const newEtag = String(response.headers.etag);
        assert.match(newEtag, /^"[^"]+"$/);
        assert.notEqual(newEtag, etag);
        const fetched = await app.request({ url: `${LINKS}/${link.code}` });
        assert.equal(fetched.json<LinkJson>().url, 'https://example.com/after');
        assert.equal(fetched.headers.etag, newEtag);
      });

      test('If-Match: the current ETag 200, a stale one 412, * 200', async () => {
        const { link, etag: first } = await createLink({ url: 'https://example.com/v1' });
        const ok = await patch(link.code, { url: 'https://example.com/v2' }, { 'if-match': first });
        assert.equal(ok.statusCode, 200, ok.body);
        const second = String(ok.headers.etag);
        assert.notEqual(second, first);

        const stale = await patch(link.code, { url: 'https://example.com/v3' }, { 'if-match': first });
        expectProblem(stale, 412, 'precondition_failed');
        const unchanged = await app.request({ url: `${LINKS}/${link.code}` });
        assert.equal(unchanged.json<LinkJson>().url, 'https://example.com/v2');
        assert.equal(unchanged.headers.etag, second);

        const foreign = await patch(link.code, { url: 'https://example.com/v3' }, { 'if-match': '"not-an-etag"' });
        expectProblem(foreign, 412, 'precondition_failed');

        const any = await patch(link.code, { url: 'https://example.com/v4' }, { 'if-match': '*' });
        assert.equal(any.statusCode, 200, any.body);
        assert.equal(any.json<LinkJson>().url, 'https://example.com/v4');
        assert.notEqual(any.headers.etag, second);
      });

      test('If-Match with a list of ETags succeeds when any of them is current (RFC 9110 13.1.1)', async () => {
        const { link, etag: first } = await createLink({ url: 'https://example.com/list-v1' });
        const changed = await patch(link.code, { title: 'v2' });
        const current = String(changed.headers.etag);
        const response = await patch(link.code, { title: 'listed' }, { 'if-match': `${first}, ${current}` });
        assert.equal(response.statusCode, 200, response.body);
        assert.equal(response.json<LinkJson>().title, 'listed');
        expectProblem(await patch(link.code, { title: 'stale' }, { 'if-match': `${first}, ${current}` }), 412, 'precondition_failed');
      });

      test('the redirect serves the new destination at once', async () => {
        const { link } = await createLink({ url: 'https://example.com/old-destination' });
        const before = await follow(`/${link.code}`);
        assert.equal(before.headers.location, 'https://example.com/old-destination');
        await follow(`/${link.code}`);

        assert.equal((await patch(link.code, { url: 'https://example.com/new-destination' })).statusCode, 200);
        const after = await follow(`/${link.code}`);
        assert.equal(after.statusCode, 302);
        assert.equal(after.headers.location, 'https://example.com/new-destination');

        assert.equal((await patch(link.code, { redirectType: 301 })).statusCode, 200);
        assert.equal((await follow(`/${link.code}`)).statusCode, 301);

        assert.equal((await patch(link.code, { disabled: true })).statusCode, 200);
        const disabled = await follow(`/${link.code}`);
        assert.equal(disabled.statusCode, 410);
        assert.equal(disabled.headers.location, undefined);
      });

      test('settings can be cleared with null, and application/merge-patch+json is accepted', async () => {
        const { link } = await createLink({
          url: 'https://example.com/clear', title: 'Title', expiresAt: new Date(Date.now() + 86_400_000).toISOString(),
          maxVisits: 5, fallbackUrl: 'https://example.com/fb',
        });
        const response = await app.request({
          method: 'PATCH',
          url: `${LINKS}/${link.code}`,
          payload: JSON.stringify({ title: null, expiresAt: null, maxVisits: null, fallbackUrl: null }),
          headers: { 'content-type': 'application/merge-patch+json' },
        });
        assert.equal(response.statusCode, 200, response.body);
        const cleared = response.json<LinkJson>();
        assert.equal(cleared.title, null);
        assert.equal(cleared.expiresAt, null);
        assert.equal(cleared.maxVisits, null);
        assert.equal(cleared.fallbackUrl, null);
        assert.equal(cleared.url, 'https://example.com/clear');
      });

      test('invalid changes: 422 and the link unchanged', async () => {
        const { link, etag } = await createLink({ url: 'https://example.com/keep' });
        assertFields(expectProblem(await patch(link.code, { url: 'http://127.0.0.1/' }), 422, 'url_not_allowed'), ['url']);
        assertFields(expectProblem(await patch(link.code, { url: 'nope' }), 422, 'invalid_url'), ['url']);
        assertFields(expectProblem(await patch(link.code, { alias: 'renamed' }), 422, 'validation_failed'), ['alias']);
        assertFields(
          expectProblem(await patch(link.code, { expiresAt: new Date(Date.now() - 1000).toISOString() }), 422, 'validation_failed'),
          ['expiresAt'],
        );
        assertFields(expectProblem(await patch(link.code, { redirectType: 303, title: 5 }), 422, 'validation_failed'), ['redirectType', 'title']);
        expectProblem(await patch(link.code, {}), 422, 'validation_failed');
        const fetched = await app.request({ url: `${LINKS}/${link.code}` });
        assert.equal(fetched.json<LinkJson>().url, 'https://example.com/keep');
        assert.equal(fetched.headers.etag, etag);
      });
    });

    describe('delete', () => {
      test('204, then 404 on get and on the redirect', async () => {
        const { link } = await createLink({ url: 'https://example.com/doomed' });
        // Warm the redirect cache first: deletion must still take effect at once.
        assert.equal((await follow(`/${link.code}`)).statusCode, 302);

        const deleted = await app.request({ method: 'DELETE', url: `${LINKS}/${link.code}` });
        assert.equal(deleted.statusCode, 204);
        assert.equal(deleted.body, '');

        expectProblem(await app.request({ url: `${LINKS}/${link.code}` }), 404, 'link_not_found');
        const followed = await follow(`/${link.code}`);
        assert.equal(followed.statusCode, 404);
        assert.equal(followed.headers.location, undefined);
        expectProblem(await app.request({ method: 'DELETE', url: `${LINKS}/${link.code}` }), 404, 'link_not_found');
        const listed = await list(`?q=${link.code}`);
        assert.ok(!listed.items.some((item) => item.code === link.code));
      });

      test('a deleted alias can be reused; the old ETag does not match the new link', async () => {
        const alias = uniqueAlias('reuse');
        const { etag: oldEtag } = await createLink({ url: 'https://example.com/first-life', alias });
        assert.equal((await follow(`/${alias}`)).headers.location, 'https://example.com/first-life');
        assert.equal((await app.request({ method: 'DELETE', url: `${LINKS}/${alias}` })).statusCode, 204);
        const { etag: newEtag } = await createLink({ url: 'https://example.com/second-life', alias });
        assert.notEqual(newEtag, oldEtag);
        assert.equal((await follow(`/${alias}`)).headers.location, 'https://example.com/second-life');
        expectProblem(
          await app.request({ method: 'PATCH', url: `${LINKS}/${alias}`, body: { title: 'x' }, headers: { 'if-match': oldEtag } }),
          412,
          'precondition_failed',
        );
      });
    });

    describe('Idempotency-Key', () => {
      test('same key and body: the same link, Idempotent-Replayed, only one link created', async () => {
        const key = await app.createKey('member', 'idempotent');
        const body = { url: 'https://example.com/idem', title: 'once' };
        const headers = { 'idempotency-key': 'create-idem-1' };
        const first = await create(body, key, headers);
        assert.equal(first.statusCode, 201, first.body);
        assert.equal(first.headers['idempotent-replayed'], undefined);
        const second = await create(body, key, headers);
        assert.equal(second.statusCode, 201, second.body);
        assert.equal(second.headers['idempotent-replayed'], 'true');
        assert.deepEqual(second.json(), first.json());
        const third = await create(body, key, headers);
        assert.equal(third.statusCode, 201);
        assert.equal(third.json<LinkJson>().code, first.json<LinkJson>().code);

        const page = await list('?limit=100', key);
        assert.deepEqual(page.items.map((link) => link.code), [first.json<LinkJson>().code]);
      });

      test('a replay carries the first answer\'s Location and ETag too', async () => {
        const key = await app.createKey('member', 'idempotent headers');
        const headers = { 'idempotency-key': 'create-idem-headers' };
        const first = await create({ url: 'https://example.com/idem-h' }, key, headers);
        assert.equal(first.statusCode, 201, first.body);
        const second = await create({ url: 'https://example.com/idem-h' }, key, headers);
        assert.equal(second.headers['idempotent-replayed'], 'true');
        assert.equal(second.headers.location, first.headers.location);
        assert.equal(second.headers.etag, first.headers.etag);
      });

      test('same key, different body: 422 idempotency_key_reused, nothing created', async () => {
        const key = await app.createKey('member', 'reuser');
        const headers = { 'idempotency-key': 'create-idem-2' };
        const first = await create({ url: 'https://example.com/idem-a' }, key, headers);
        assert.equal(first.statusCode, 201);
        const reused = await create({ url: 'https://example.com/idem-b' }, key, headers);
        expectProblem(reused, 422, 'idempotency_key_reused');
        assert.equal(reused.headers['idempotent-replayed'], undefined);
        const page = await list('?limit=100', key);
        assert.deepEqual(page.items.map((link) => link.url), ['https://example.com/idem-a']);
      });

      test('keys are per API key: another key with the same Idempotency-Key creates its own link', async () => {
        const one = await app.createKey('member', 'idem one');
        const two = await app.createKey('member', 'idem two');
        const headers = { 'idempotency-key': 'shared-name' };
        const body = { url: 'https://example.com/idem-shared' };
        const a = await create(body, one, headers);
        const b = await create(body, two, headers);
        assert.equal(a.statusCode, 201);
        assert.equal(b.statusCode, 201);
        assert.equal(b.headers['idempotent-replayed'], undefined);
        assert.notEqual(a.json<LinkJson>().code, b.json<LinkJson>().code);
      });

      test('concurrent retries with one key create exactly one link', async () => {
        const key = await app.createKey('member', 'idem race');
        const headers = { 'idempotency-key': 'create-idem-race' };
        const body = { url: 'https://example.com/idem-race' };
        const responses = await Promise.all(Array.from({ length: 8 }, () => create(body, key, headers)));
        const codes = new Set<string>();
        for (const response of responses) {
          if (response.statusCode === 201) codes.add(response.json<LinkJson>().code);
          else expectProblem(response, 409, 'idempotency_in_progress');
        }
        assert.equal(codes.size, 1, responses.map((r) => r.statusCode).join(','));
        assert.equal((await list('?limit=100', key)).items.length, 1);
      });

      test('a create that fails with a key: the problem is answered, and a retry is not stuck', async () => {
        const alias = uniqueAlias('idem-taken');
        await createLink({ url: 'https://example.com/idem-taken', alias });
        const headers = { 'idempotency-key': 'create-idem-fails' };
        const body = { url: 'https://example.com/idem-taken-2', alias };
        expectProblem(await create(body, undefined, headers), 409, 'alias_taken');
        expectProblem(await create(body, undefined, headers), 409, 'alias_taken');
        // Once the alias is free, the same key and body succeed.
        assert.equal((await app.request({ method: 'DELETE', url: `${LINKS}/${alias}` })).statusCode, 204);
        const retried = await create(body, undefined, headers);
        assert.equal(retried.statusCode, 201, retried.body);
        assert.equal(retried.json<LinkJson>().url, 'https://example.com/idem-taken-2');
      });

      test('a malformed Idempotency-Key: 400', async () => {
        const response = await create({ url: 'https://example.com/idem-bad' }, undefined, { 'idempotency-key': 'x'.repeat(256) });
        expectProblem(response, 400, 'malformed_request');
      });
    });
  });
}
