/**
 * Hostile and malformed input: every case is a 4xx (never a 500), answered as
 * application/problem+json on /api paths. NUL and encoding cases run on both backends,
 * since PostgreSQL text cannot hold NUL; the rest on the embedded store.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import type { LightMyRequestResponse } from 'fastify';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';
import { type Problem } from '../helpers/problems.js';

type Method = 'GET' | 'HEAD' | 'POST' | 'PATCH' | 'DELETE' | 'PUT' | 'OPTIONS';

const LONG = 'a'.repeat(10_000);

function describeResponse(response: LightMyRequestResponse): string {
  return `${response.statusCode} ${String(response.headers['content-type'])} ${response.body.slice(0, 300)}`;
}

function assertClientError(response: LightMyRequestResponse, label: string): void {
  assert.ok(response.statusCode >= 400 && response.statusCode < 500, `${label}: expected a 4xx, got ${describeResponse(response)}`);
}

function assertProblem(response: LightMyRequestResponse, status: number, code?: string, field?: string, label = ''): Problem {
  assert.equal(response.statusCode, status, `${label} ${describeResponse(response)}`);
  assert.match(String(response.headers['content-type']), /^application\/problem\+json/, `${label} content type`);
  const problem = response.json<Problem>();
  assert.equal(problem.status, status);
  assert.equal(typeof problem.type, 'string');
  assert.equal(typeof problem.title, 'string');
  assert.equal(typeof problem.detail, 'string');
  if (code !== undefined) assert.equal(problem.code, code, `${label} ${response.body}`);
  if (field !== undefined) {
    assert.ok(problem.errors?.some((error) => error.field === field), `${label} errors should list "${field}": ${response.body}`);
  }
  return problem;
}

/** A 4xx; problem+json whenever the path is under /api. */
function assertRefused(response: LightMyRequestResponse, url: string): void {
  assertClientError(response, url);
  if (url.startsWith('/api/')) {
    assert.match(String(response.headers['content-type']), /^application\/problem\+json/, `${url}: ${describeResponse(response)}`);
  }
}

function assertNoInjectedHeader(response: LightMyRequestResponse, label: string): void {
  assert.equal(response.headers['set-cookie'], undefined, `${label}: Set-Cookie injected`);
  for (const [name, value] of Object.entries(response.headers)) {
    assert.doesNotMatch(`${name}: ${String(value)}`, /[\r\n]/, `${label}: header ${name} carries CR/LF`);
  }
}

for (const backend of BACKENDS) {
  describe(`hostile input (${backend})`, await backendTestOptions(backend), () => {
    let app: TestApp;
    before(async () => {
      app = await startTestApp(backend);
    });
    after(() => app.close());

    function send(method: Method, url: string, options: { body?: unknown; payload?: string; headers?: Record<string, string>; key?: string | null } = {}) {
      return app.request({ method, url, ...options });
    }

    function createWith(body: unknown): Promise<LightMyRequestResponse> {
      return send('POST', '/api/v1/links', { body });
    }

    async function createdCode(): Promise<string> {
      const response = await createWith({ url: 'https://example.com/target' });
      assert.equal(response.statusCode, 201, response.body);
      return response.json<{ code: string }>().code;
    }

    describe('NUL and encoding', () => {
      test('an encoded NUL in the path is a 4xx, problem+json on /api paths', async () => {
        const code = await createdCode();
        const cases: [Method, string][] = [
          ['GET', '/%00'],
          ['HEAD', '/%00'],
          ['GET', '/%00+'],
          ['GET', '/ab%00cd'],
          ['GET', '/ab%00cd/qr'],
          ['GET', '/api/v1/links/%00'],
          ['PATCH', '/api/v1/links/%00'],
          ['DELETE', '/api/v1/links/%00'],
          ['DELETE', '/api/v1/keys/%00'],
          ['GET', `/api/v1/links/${code}%00`],
          ['GET', '/api/v1/links?q=%00'],
          ['GET', '/api/v1/links?tag=a%00b'],
          ['GET', '/api/v1/links?cursor=%00'],
          ['GET', `/${code}?a=%00`],
        ];
        for (const [method, url] of cases) {
          const response = await send(method, url, method === 'PATCH' ? { body: { title: 'x' } } : {});
          assertRefused(response, `${method} ${url}`);
          assert.equal(response.headers.location, undefined, `${method} ${url} must not redirect`);
        }
      });

      test('NUL in a JSON field is refused with a 422 naming the field', async () => {
        const cases: [Record<string, unknown>, string, string?][] = [
          [{ url: 'https://example.com/a\u0000b' }, 'url', 'invalid_url'],
          [{ url: '\u0000https://example.com/' }, 'url', 'invalid_url'],
          [{ url: 'https://example.com/', fallbackUrl: 'https://example.org/\u0000' }, 'fallbackUrl', 'invalid_url'],
          [{ url: 'https://example.com/', title: 'a\u0000b' }, 'title'],
          [{ url: 'https://example.com/', tags: ['ok', 'a\u0000b'] }, 'tags[1]'],
          [{ url: 'https://example.com/', alias: 'ab\u0000cd' }, 'alias'],
          [{ url: 'https://example.com/', expiresAt: '2099-01-01T00:00:00Z\u0000' }, 'expiresAt'],
          [{ url: 'https://example.com/', '\u0000': 1 }, '\u0000'],
        ];
        for (const [body, field, code] of cases) {
          assertProblem(await createWith(body), 422, code, field, JSON.stringify(body));
        }
        const code = await createdCode();
        assertProblem(await send('PATCH', `/api/v1/links/${code}`, { body: { title: '\u0000' } }), 422, undefined, 'title');
        assertProblem(await send('PATCH', `/api/v1/links/${code}`, { body: { url: 'https://example.com/\u0000' } }), 422, 'invalid_url', 'url');
        assertProblem(await send('POST', '/api/v1/keys', { body: { name: 'evil\u0000key' } }), 422, undefined, 'name');

        const bulk = await send('POST', '/api/v1/links/bulk', {
          body: { links: [{ url: 'https://example.com/\u0000' }, { url: 'https://example.com/', title: '\u0000' }, { url: 'https://example.com/fine' }] },
        });
        assert.equal(bulk.statusCode, 200, bulk.body);
        const items = bulk.json<{ items: { status: number; problem?: Problem }[] }>().items;
        assert.deepEqual(items.map((item) => item.status), [422, 422, 201]);
        assert.equal(items[0]?.problem?.code, 'invalid_url');
      });

      test('a bad percent-encoding in the path is a 4xx', async () => {
        for (const url of ['/%zz', '/%', '/abc%2', '/%C0%80', '/%FF', '/%E2%82', '/%zz/qr', '/%zz+']) {
          const response = await send('GET', url, { key: null });
          assertClientError(response, url);
          assert.equal(response.headers.location, undefined);
        }
      });

      test('a bad percent-encoding on an /api path is a problem+json 400', async () => {
        for (const url of ['/api/v1/links/%zz', '/api/v1/links/%C0%80', '/api/v1/keys/%FF']) {
          const method: Method = url.startsWith('/api/v1/keys') ? 'DELETE' : 'GET';
          assertProblem(await send(method, url), 400, undefined, undefined, url);
        }
      });

      test('unicode and odd encodings in codes, queries and bodies are never a 500', async () => {
        assertProblem(await send('GET', '/api/v1/links/%F0%9F%98%80'), 404, 'link_not_found');
        assertProblem(await send('GET', `/api/v1/links/${encodeURIComponent('caf\u00e9')}`), 404, 'link_not_found');
        assert.equal((await send('GET', '/%F0%9F%98%80', { key: null })).statusCode, 404);
        assert.equal((await send('GET', '/%F0%9F%98%80+', { key: null })).statusCode, 404);

        const emojiSearch = await send('GET', `/api/v1/links?q=${encodeURIComponent('\u{1F600}')}`);
        assert.equal(emojiSearch.statusCode, 200, emojiSearch.body);
        const oddSearch = await send('GET', '/api/v1/links?q=%FF%FE&tag=%E2%82');
        assert.ok(oddSearch.statusCode < 500, describeResponse(oddSearch));

        // A lone surrogate cannot be stored as UTF-8: refused or replaced, never a crash.
        for (const body of [
          { url: 'https://example.com/', title: 'x\ud800y' },
          { url: 'https://example.com/', tags: ['\udfff'] },
          { url: 'https://example.com/\ud800' },
        ]) {
          const response = await createWith(body);
          assert.ok([201, 422].includes(response.statusCode), `${JSON.stringify(body)}: ${describeResponse(response)}`);
        }

        const title = 'Caf\u00e9 \u{1F600} \u4e2d\u6587 \u202e';
        const created = await createWith({ url: 'https://m\u00fcnchen.example/\u00fc?q=\u00e4', title, tags: ['\u{1F600}'] });
        assert.equal(created.statusCode, 201, created.body);
        const link = created.json<{ code: string; url: string; title: string; tags: string[] }>();
        assert.equal(link.url, 'https://xn--mnchen-3ya.example/%C3%BC?q=%C3%A4');
        const fetched = await send('GET', `/api/v1/links/${link.code}`);
        assert.equal(fetched.json<{ title: string }>().title, title);
        const byTag = await send('GET', `/api/v1/links?tag=${encodeURIComponent('\u{1F600}')}`);
        assert.ok(byTag.json<{ items: { code: string }[] }>().items.some((item) => item.code === link.code));
      });
    });

    if (backend !== 'embedded') return;

    describe('bodies', () => {
      test('a body that is not valid JSON is a 400 invalid_json', async () => {
        for (const payload of ['{"url":', '{url: "https://example.com"}', "{'url':'https://example.com'}", '{"url":"https://example.com",}', 'nope', '\u0000']) {
          const response = await send('POST', '/api/v1/links', { payload, headers: { 'content-type': 'application/json' } });
          assertProblem(response, 400, 'invalid_json', undefined, JSON.stringify(payload));
        }
        const code = await createdCode();
        assertProblem(
          await send('PATCH', `/api/v1/links/${code}`, { payload: '{"title":', headers: { 'content-type': 'application/json' } }),
          400,
          'invalid_json',
        );
      });

      test('an empty body with a JSON content type is a 400 in our words where a body is needed', async () => {
        const json = { 'content-type': 'application/json' };
        const code = await createdCode();
        for (const [method, url] of [['POST', '/api/v1/links'], ['PATCH', `/api/v1/links/${code}`], ['POST', '/api/v1/links/bulk'], ['POST', '/api/v1/keys']] as const) {
          for (const headers of [json, { 'content-type': 'application/merge-patch+json' }]) {
            const problem = assertProblem(await send(method, url, { payload: '', headers }), 400, 'malformed_request', undefined, `${method} ${url}`);
            assert.equal(problem.detail, 'This request needs a JSON body');
          }
        }
      });

      test('an empty body with a JSON content type is no body where none is taken (DELETE, GET)', async () => {
        const json = { 'content-type': 'application/json' };
        const code = await createdCode();
        assert.equal((await send('GET', `/api/v1/links/${code}`, { payload: '', headers: json })).statusCode, 200);
        const deleted = await send('DELETE', `/api/v1/links/${code}`, { payload: '', headers: json });
        assert.equal(deleted.statusCode, 204, deleted.body);
        const key = (await send('POST', '/api/v1/keys', { body: { name: 'to revoke' } })).json<{ id: string }>();
        assert.equal((await send('DELETE', `/api/v1/keys/${key.id}`, { payload: '', headers: json })).statusCode, 204);
      });

      test('400,000 tags (duplicates or not even strings) are refused by the schema, in a short answer', async () => {
        for (const item of ['"a"', '1']) {
          const payload = `{"url":"https://example.com/","tags":[${Array.from({ length: 400_000 }, () => item).join(',')}]}`;
          const response = await send('POST', '/api/v1/links', { payload, headers: { 'content-type': 'application/json' } });
          assertProblem(response, 422, 'validation_failed', 'tags', item);
          assert.ok(response.body.length < 10_000, `the answer lists ${response.body.length} bytes of errors`);
        }
        const document = (await send('GET', '/api/v1/openapi.json', { key: null })).json<{
          paths: Record<string, { post?: { requestBody: { content: Record<string, { schema: { properties: Record<string, { maxItems?: number }> } }> } } }>;
        }>();
        const bodyOf = (path: string) => document.paths[path]?.post?.requestBody.content['application/json']?.schema.properties;
        assert.equal(bodyOf('/api/v1/links')?.tags?.maxItems, 20);
        assert.equal(bodyOf('/api/v1/links/bulk')?.links?.maxItems, 1000);
      });

      test('JSON that is not an object is a 422', async () => {
        for (const payload of ['"https://example.com"', '["https://example.com"]', '42', 'null', 'true', '{}']) {
          const response = await send('POST', '/api/v1/links', { payload, headers: { 'content-type': 'application/json' } });
          assertProblem(response, 422, 'validation_failed', undefined, payload);
        }
        const bulk = await send('POST', '/api/v1/links/bulk', { payload: '[{"url":"https://example.com"}]', headers: { 'content-type': 'application/json' } });
        assertProblem(bulk, 422, 'validation_failed');
      });

      test('a body that is not JSON (text/plain) is a 415 unsupported_media_type', async () => {
        const response = await send('POST', '/api/v1/links', { payload: 'https://example.com/', headers: { 'content-type': 'text/plain' } });
        assertProblem(response, 415, 'unsupported_media_type');
      });

      test('other content types, or none, are a 415 unsupported_media_type', async () => {
        for (const contentType of ['application/xml', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'image/png']) {
          const response = await send('POST', '/api/v1/links', { payload: '{"url":"https://example.com/"}', headers: { 'content-type': contentType } });
          assertProblem(response, 415, 'unsupported_media_type', undefined, contentType);
        }
        const none = await send('POST', '/api/v1/links', { payload: '{"url":"https://example.com/"}' });
        assertProblem(none, 415, 'unsupported_media_type');
      });

      test('a 10 MB body is a 413 payload_too_large, and the server still answers afterwards', async () => {
        const huge = JSON.stringify({ url: 'https://example.com/', title: 'x'.repeat(10 * 1024 * 1024) });
        assertProblem(await send('POST', '/api/v1/links', { payload: huge, headers: { 'content-type': 'application/json' } }), 413, 'payload_too_large');
        const code = await createdCode();
        assertProblem(await send('PATCH', `/api/v1/links/${code}`, { payload: huge, headers: { 'content-type': 'application/json' } }), 413, 'payload_too_large');

        assert.equal((await send('GET', '/healthz', { key: null })).statusCode, 200);
        assert.equal((await send('GET', `/${code}`, { key: null })).statusCode, 302);
        assert.equal((await createWith({ url: 'https://example.com/after-413' })).statusCode, 201);
      });

      test('__proto__ and constructor payloads are refused and pollute nothing', async () => {
        const payloads = [
          '{"url":"https://example.com/","__proto__":{"polluted":"yes"}}',
          '{"__proto__":{"polluted":"yes"},"url":"https://example.com/"}',
          '{"url":"https://example.com/","constructor":{"prototype":{"polluted":"yes"}}}',
          '{"url":"https://example.com/","tags":[{"__proto__":{"polluted":"yes"}}]}',
          '{"links":[{"url":"https://example.com/","__proto__":{"polluted":"yes"}}]}',
        ];
        for (const payload of payloads) {
          const url = payload.startsWith('{"links"') ? '/api/v1/links/bulk' : '/api/v1/links';
          const response = await send('POST', url, { payload, headers: { 'content-type': 'application/json' } });
          assert.ok([400, 422].includes(response.statusCode), `${payload}: ${describeResponse(response)}`);
          assert.match(String(response.headers['content-type']), /^application\/problem\+json/);
        }
        for (const body of [{ url: 'https://example.com/', constructor: 1 }, { url: 'https://example.com/', prototype: {} }]) {
          assertProblem(await createWith(body), 422, 'validation_failed', Object.keys(body)[1]);
        }
        assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined);
        assert.equal(({} as Record<string, unknown>).polluted, undefined);
      });

      test('out-of-range and mistyped fields are a 422 listing each field', async () => {
        const cases: [string, string][] = [
          ['{"url":"https://example.com/","maxVisits":1e400}', 'maxVisits'],
          ['{"url":"https://example.com/","maxVisits":2147483648}', 'maxVisits'],
          ['{"url":"https://example.com/","maxVisits":9007199254740993}', 'maxVisits'],
          ['{"url":"https://example.com/","maxVisits":1.5}', 'maxVisits'],
          ['{"url":"https://example.com/","maxVisits":-1}', 'maxVisits'],
          ['{"url":"https://example.com/","maxVisits":0}', 'maxVisits'],
          ['{"url":"https://example.com/","maxVisits":"10"}', 'maxVisits'],
          ['{"url":"https://example.com/","redirectType":303}', 'redirectType'],
          ['{"url":"https://example.com/","redirectType":"301"}', 'redirectType'],
          ['{"url":"https://example.com/","tags":"a,b"}', 'tags'],
          ['{"url":"https://example.com/","tags":[1]}', 'tags[0]'],
          ['{"url":"https://example.com/","tags":[""]}', 'tags[0]'],
          [`{"url":"https://example.com/","tags":${JSON.stringify(Array.from({ length: 21 }, (_, i) => `t${i}`))}}`, 'tags'],
          ['{"url":"https://example.com/","forwardQuery":"yes"}', 'forwardQuery'],
          ['{"url":"https://example.com/","expiresAt":"tomorrow"}', 'expiresAt'],
          ['{"url":"https://example.com/","expiresAt":"2001-01-01T00:00:00Z"}', 'expiresAt'],
          ['{"url":{"href":"https://example.com/"}}', 'url'],
          ['{"url":["https://example.com/"]}', 'url'],
          ['{"url":42}', 'url'],
          ['{"title":"no url"}', 'url'],
          ['{"url":"https://example.com/","title":{"a":{"b":{"c":1}}}}', 'title'],
          [`{"url":"https://example.com/","title":"${'t'.repeat(513)}"}`, 'title'],
          ['{"url":"https://example.com/","alias":{"x":1}}', 'alias'],
          ['{"url":"https://example.com/","unknownField":1}', 'unknownField'],
          [`{"url":"https://example.com/","title":${'['.repeat(5000)}${']'.repeat(5000)}}`, 'title'],
        ];
        for (const [payload, field] of cases) {
          const response = await send('POST', '/api/v1/links', { payload, headers: { 'content-type': 'application/json' } });
          assertProblem(response, 422, undefined, field, payload.slice(0, 120));
        }
        // Several bad fields: each one is listed.
        const many = await createWith({ url: 'https://example.com/', maxVisits: -5, redirectType: 303, tags: 'x' });
        const problem = assertProblem(many, 422, 'validation_failed');
        for (const field of ['maxVisits', 'redirectType', 'tags']) {
          assert.ok(problem.errors?.some((error) => error.field === field), `${field} listed: ${many.body}`);
        }
      });

      test('control characters and whitespace anywhere in url are a 422 invalid_url', async () => {
        const urls = [
          'https://exa mple.com/',
          ' https://example.com/',
          'https://example.com/ ',
          'https://example.com/\t',
          'https://example.com/a\nb',
          'https://example.com/a\r\nSet-Cookie: x=1',
          'https://example.com/\u0007',
          'https://example.com/\u007f',
          'https://example.com/\u0085',
          'https://example.com/\u00a0',
          'https://example.com/\u2028',
          'https://example.com/\u3000',
          'https://example.com/\u000b',
        ];
        for (const url of urls) assertProblem(await createWith({ url }), 422, 'invalid_url', 'url', JSON.stringify(url));
        assertProblem(await createWith({ url: 'https://example.com/', fallbackUrl: 'https://example.org/\t' }), 422, 'invalid_url', 'fallbackUrl');
      });

      test('unicode, emoji and other non-[A-Za-z0-9_-] aliases are a 422', async () => {
        const aliases = ['caf\u00e9', '\u{1F600}', 'smile\u{1F600}', '\uff41\uff42\uff43', 'abc\u200b', 'a b', 'a/b', 'a.b', 'a+', '', 'a'.repeat(65), '..', '%41'];
        for (const alias of aliases) {
          assertProblem(await createWith({ url: 'https://example.com/', alias }), 422, undefined, 'alias', JSON.stringify(alias));
        }
      });
    });

    describe('request targets', () => {
      test('a 10,000-character request target is a 414 uri_too_long', async () => {
        const targets = [`/${LONG}`, `/api/v1/links/${LONG}`, `/api/v1/${LONG}`, `/${LONG}/qr`, `/?q=${LONG}`, `/api/v1/links?q=${LONG}`];
        const wrong: string[] = [];
        for (const url of targets) {
          const response = await send('GET', url);
          const ok =
            response.statusCode === 414 &&
            String(response.headers['content-type']).startsWith('application/problem+json') &&
            response.json<Problem>().code === 'uri_too_long';
          if (!ok) wrong.push(`${url.slice(0, 30)}…: ${describeResponse(response).slice(0, 160)}`);
        }
        assert.deepEqual(wrong, []);
        assert.equal((await send('GET', '/healthz')).statusCode, 200);
      });

      test('CR/LF in the path is a 4xx and injects no header', async () => {
        const cases: [Method, string][] = [
          ['GET', '/%0d%0aSet-Cookie:x'],
          ['HEAD', '/%0d%0aSet-Cookie:x'],
          ['GET', '/%0d%0aSet-Cookie:x+'],
          ['GET', '/%0d%0aSet-Cookie:x/qr'],
          ['GET', '/%0aLocation:%20https://evil.example/'],
          ['GET', '/api/v1/links/a%0d%0ab'],
          ['PATCH', '/api/v1/links/a%0d%0ab'],
          ['DELETE', '/api/v1/links/a%0d%0ab'],
          ['DELETE', '/api/v1/keys/a%0d%0aSet-Cookie:x'],
        ];
        for (const [method, url] of cases) {
          const response = await send(method, url, method === 'PATCH' ? { body: { title: 'x' } } : {});
          assertRefused(response, url);
          assertNoInjectedHeader(response, `${method} ${url}`);
          assert.equal(response.headers.location, undefined, url);
        }
        // A search for CR/LF is a fine search; it just cannot smuggle a header.
        const search = await send('GET', '/api/v1/links?q=%0d%0aSet-Cookie:x');
        assert.equal(search.statusCode, 200, search.body);
        assertNoInjectedHeader(search, 'search');
        // The query of a real link is forwarded, but cannot smuggle a header either.
        const code = await createdCode();
        const forwarded = await send('GET', `/${code}?a=%0d%0aSet-Cookie:x`, { key: null });
        assertNoInjectedHeader(forwarded, 'forwarded query');
      });

      test('assorted odd requests are 4xx problems on /api paths', async () => {
        const cases: [Method, string, Record<string, string>?][] = [
          ['PUT', '/api/v1/links'],
          ['DELETE', '/api/v1/links'],
          ['GET', '/api/v1/nothing-here'],
          ['GET', '/api/v1/links?limit=abc'],
          ['GET', '/api/v1/links?limit=1000'],
          ['GET', '/api/v1/links?limit=-1'],
          ['GET', '/api/v1/links?cursor=garbage'],
          ['GET', `/api/v1/links?cursor=${'x'.repeat(300)}`],
          ['GET', '/api/v1/links?unknown=1'],
          ['GET', `/api/v1/links/${'a'.repeat(65)}`],
          ['DELETE', `/api/v1/keys/${'k'.repeat(100)}`],
          ['GET', '/api/v1/links', { authorization: 'Basic dXNlcjpwYXNz' }],
          ['GET', '/api/v1/links', { authorization: 'Bearer' }],
          ['GET', '/api/v1/links', { authorization: `Bearer ${'x'.repeat(5000)}` }],
        ];
        for (const [method, url, headers] of cases) {
          const options = headers === undefined ? {} : { headers, key: null };
          assertRefused(await send(method, url, options), `${method} ${url}`);
        }
        const badIdempotencyKey = await send('POST', '/api/v1/links', { body: { url: 'https://example.com/' }, headers: { 'idempotency-key': 'k'.repeat(300) } });
        assertProblem(badIdempotencyKey, 400);
      });
    });

    describe('request ids and logs', () => {
      async function logLinesFor(requestId: string): Promise<Record<string, unknown>[]> {
        // The log line is written when the response finishes; give it a few turns.
        for (let attempt = 0; attempt < 50; attempt += 1) {
          if (app.logs.some((line) => line.reqId === requestId)) break;
          await tick();
        }
        await tick();
        return app.logs.filter((line) => line.reqId === requestId);
      }

      const ORDINARY: [Method, string, { payload?: string; headers?: Record<string, string> }?][] = [
        ['GET', '/healthz'],
        ['GET', '/api/v1/links'],
        ['HEAD', '/api/v1/links'],
        ['GET', '/NoSuchCode'],
        ['HEAD', '/NoSuchCode'],
        ['GET', '/api/v1/links/NoSuchCode'],
        ['GET', '/api/v1/nothing-here'],
        ['GET', '/%00'],
        ['POST', '/api/v1/links', { payload: '{"url":', headers: { 'content-type': 'application/json' } }],
        ['POST', '/api/v1/links', { payload: '{"url":1}', headers: { 'content-type': 'application/json' } }],
        ['POST', '/api/v1/links', { payload: 'x'.repeat(5 * 1024 * 1024), headers: { 'content-type': 'application/json' } }],
        ['POST', '/api/v1/links', { payload: '<a/>', headers: { 'content-type': 'application/xml' } }],
        ['GET', `/api/v1/${LONG}`],
        ['GET', '/%0d%0aSet-Cookie:x'],
      ];
      const FRAMEWORK_LEVEL: [Method, string][] = [
        ['GET', '/%zz'],
        ['GET', '/api/v1/links/%zz'],
        ['GET', `/${LONG}`],
        ['GET', `/api/v1/links/${LONG}`],
      ];

      test('every response carries an X-Request-Id', async () => {
        const code = await createdCode();
        const missing: string[] = [];
        for (const [method, url, options] of [...ORDINARY, ['GET', `/${code}`], ['HEAD', `/${code}`], ['GET', `/${code}+`], ['GET', `/${code}/qr`]] as typeof ORDINARY) {
          const response = await send(method, url, options ?? {});
          if (typeof response.headers['x-request-id'] !== 'string' || response.headers['x-request-id'] === '') missing.push(`${method} ${url.slice(0, 40)} (${response.statusCode})`);
        }
        assert.deepEqual(missing, []);
      });

      test('framework-level errors (bad encoding, over-long parameter) carry an X-Request-Id too', async () => {
        const missing: string[] = [];
        for (const [method, url] of FRAMEWORK_LEVEL) {
          const response = await send(method, url);
          assertClientError(response, url.slice(0, 40));
          if (typeof response.headers['x-request-id'] !== 'string') missing.push(`${method} ${url.slice(0, 40)} (${response.statusCode})`);
        }
        assert.deepEqual(missing, []);
      });

      test('a valid incoming X-Request-Id is echoed back; an invalid one is replaced', async () => {
        for (const id of ['abc-123.x:y_z', 'a', 'R'.repeat(128), '0f8fad5b-d9cb-469f-a165-70867728950e']) {
          const ok = await send('GET', '/healthz', { headers: { 'x-request-id': id } });
          assert.equal(ok.headers['x-request-id'], id);
          const error = await send('GET', '/api/v1/links/NoSuchCode', { headers: { 'x-request-id': id } });
          assert.equal(error.headers['x-request-id'], id);
          assert.equal(error.json<Problem>().requestId, id);
        }
        for (const id of ['has space', 'R'.repeat(129), 'a;b', 'a,b', '<script>', '']) {
          const response = await send('GET', '/healthz', { headers: { 'x-request-id': id } });
          const echoed = String(response.headers['x-request-id']);
          assert.notEqual(echoed, id);
          assert.match(echoed, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
        }
      });

      test('one JSON log line per request, with its reqId, status and method', async () => {
        const code = await createdCode();
        const requests = [...ORDINARY, ['GET', `/${code}`], ['HEAD', `/${code}`], ['GET', `/${code}+`]] as typeof ORDINARY;
        for (const [index, [method, url, options]] of requests.entries()) {
          const requestId = `log-test-${index}`;
          const response = await send(method, url, { ...options, headers: { ...options?.headers, 'x-request-id': requestId } });
          assert.equal(response.headers['x-request-id'], requestId);
          const lines = await logLinesFor(requestId);
          assert.equal(lines.length, 1, `${method} ${url.slice(0, 40)}: ${JSON.stringify(lines).slice(0, 500)}`);
          const [line] = lines;
          assert.equal(line?.status, response.statusCode, `${method} ${url.slice(0, 40)}`);
          assert.equal(line?.method, method);
          assert.equal(typeof line?.time, 'number');
          assert.ok(String(line?.url).length <= 520, 'long URLs are truncated in the log');
        }
      });

      test('framework-level errors are logged once with their request id too', async () => {
        const unlogged: string[] = [];
        for (const [index, [method, url]] of FRAMEWORK_LEVEL.entries()) {
          const requestId = `framework-log-${index}`;
          const response = await send(method, url, { headers: { 'x-request-id': requestId } });
          const lines = await logLinesFor(requestId);
          if (lines.length !== 1 || lines[0]?.status !== response.statusCode) unlogged.push(`${method} ${url.slice(0, 40)}: ${lines.length} lines`);
        }
        assert.deepEqual(unlogged, []);
      });
    });
  });
}
