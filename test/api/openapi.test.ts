/**
 * The OpenAPI document is the source of truth of the public contract, so it is checked
 * against the app itself: the same routes in both directions, the same schemas as the
 * bodies actually sent, the same media types, headers and security.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { createAjv } from '../../src/http/validation.js';
import { backendTestOptions } from '../helpers/backends.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';

type Json = Record<string, unknown>;

interface MediaType {
  schema?: Json;
}

interface ResponseObject {
  description: string;
  headers?: Record<string, unknown>;
  content?: Record<string, MediaType>;
}

interface Parameter {
  name: string;
  in: string;
  required?: boolean;
}

interface Operation {
  operationId: string;
  summary: string;
  tags: string[];
  security: Record<string, unknown>[];
  parameters: Parameter[];
  responses: Record<string, ResponseObject>;
}

interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, unknown> };
}

const METHODS = new Set(['get', 'head', 'post', 'put', 'patch', 'delete', 'options', 'trace']);

/** `/api/v1/links/{code}` -> `/api/v1/links/:code`, as Fastify spells it. */
function toFastifyPath(path: string): string {
  return path.replace(/\{([A-Za-z0-9_]+)\}/g, ':$1');
}

function toOpenApiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/**
 * Every (method, path) Fastify's router holds, read from printRoutes(): each line is a
 * tree node, indented four characters per level, its segment appended to its parent's.
 */
function routerRoutes(printed: string): Set<string> {
  const routes = new Set<string>();
  const stack: string[] = [];
  for (const line of printed.split('\n')) {
    const match = /^((?:[│ ] {3})*)[├└]── (.+?)(?: \(([A-Z, ]+)\))?(?: \{.*\})?$/.exec(line);
    if (match === null) continue;
    const depth = (match[1] ?? '').length / 4;
    const path = `${depth === 0 ? '' : (stack[depth - 1] ?? '')}${match[2] ?? ''}`;
    stack[depth] = path;
    stack.length = depth + 1;
    for (const method of (match[3] ?? '').split(',').map((m) => m.trim()).filter(Boolean)) routes.add(`${method} ${path}`);
  }
  return routes;
}

/** A response schema made strict: objects may not carry undocumented properties. */
function closed(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closed);
  if (schema === null || typeof schema !== 'object') return schema;
  const result: Json = {};
  for (const [key, value] of Object.entries(schema as Json)) {
    result[key] =
      key === 'properties'
        ? Object.fromEntries(Object.entries(value as Json).map(([name, property]) => [name, closed(property)]))
        : closed(value);
  }
  const allOf = result.allOf as Json[] | undefined;
  if (Array.isArray(allOf) && allOf.every((branch) => branch.type === 'object' && typeof branch.properties === 'object')) {
    // An intersection of objects: one object with every branch's properties.
    result.properties = Object.assign({}, ...allOf.map((branch) => branch.properties as Json)) as Json;
    result.required = [...new Set(allOf.flatMap((branch) => (branch.required as string[] | undefined) ?? []))];
    result.type = 'object';
    delete result.allOf;
  }
  if (result.type === 'object' && typeof result.properties === 'object' && result.additionalProperties === undefined) {
    result.additionalProperties = false;
  }
  return result;
}

function mediaType(response: LightMyRequestResponse): string {
  return String(response.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

describe('OpenAPI document (embedded)', await backendTestOptions('embedded'), () => {
  let app: TestApp;
  let doc: OpenApiDocument;
  const ajv = createAjv('body');

  before(async () => {
    app = await startTestApp('embedded');
    const response = await app.request({ url: '/api/v1/openapi.json', key: null });
    assert.equal(response.statusCode, 200, response.body);
    doc = response.json<OpenApiDocument>();
  });
  after(() => app.close());

  function operations(): { method: string; path: string; operation: Operation }[] {
    return Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item)
        .filter(([method]) => METHODS.has(method))
        .map(([method, operation]) => ({ method: method.toUpperCase(), path, operation })),
    );
  }

  function operation(method: string, path: string): Operation {
    const found = doc.paths[path]?.[method.toLowerCase()];
    assert.ok(found !== undefined, `${method} ${path} is documented`);
    return found;
  }

  /** The documented response for a status: its own entry, its range (`4XX`), or `default` for errors. */
  function documentedResponse(method: string, path: string, status: number): ResponseObject | undefined {
    const responses = operation(method, path).responses;
    return responses[String(status)] ?? responses[`${Math.floor(status / 100)}XX`] ?? (status >= 400 ? responses.default : undefined);
  }

  /** Why a real response does not match the document ('' when it does). */
  function mismatch(method: string, path: string, response: LightMyRequestResponse): string {
    const label = `${method} ${path} -> ${response.statusCode}`;
    const documented = documentedResponse(method, path, response.statusCode);
    if (documented === undefined) return `${label}: status not documented`;
    const type = mediaType(response);
    const hasBody = response.rawPayload.length > 0 && method !== 'HEAD';
    if (!hasBody) return '';
    const content = documented.content;
    if (content === undefined) return `${label}: sends ${type} but the document declares no content`;
    const media = content[type];
    if (media === undefined) return `${label}: sends ${type} but the document declares ${Object.keys(content).join(', ')}`;
    if (type.endsWith('json') && media.schema !== undefined) {
      const validate = ajv.compile(closed(media.schema) as object);
      if (!validate(response.json())) return `${label}: body does not match the schema: ${ajv.errorsText(validate.errors)}`;
    }
    return '';
  }

  test('GET /api/v1/openapi.json needs no key and is OpenAPI 3.1.0', async () => {
    const response = await app.request({ url: '/api/v1/openapi.json', key: null });
    assert.equal(response.statusCode, 200);
    assert.equal(mediaType(response), 'application/json');
    assert.equal(doc.openapi, '3.1.0');
    assert.equal(typeof doc.info.title, 'string');
    assert.equal(typeof doc.info.version, 'string');
    assert.ok(Object.keys(doc.paths).length > 0);
    assert.deepEqual(Object.keys(doc.components.securitySchemes), ['bearerAuth', 'sessionCookie']);
    // Documented in every path item: every /api path of the contract.
    for (const path of ['/api/v1/links', '/api/v1/links/bulk', '/api/v1/links/{code}', '/api/v1/links/{code}/stats', '/api/v1/links/{code}/stats/export', '/api/v1/links/{code}/events', '/api/v1/exports/{id}', '/api/v1/exports/{id}/file', '/api/v1/keys', '/api/v1/keys/{id}', '/api/v1/session', '/api/v1/stats/overview', '/api/v1/stats/links', '/api/v1/openapi.json', '/healthz', '/readyz', '/metrics', '/{code}', '/{code}/qr']) {
      assert.ok(doc.paths[path] !== undefined, `${path} is documented`);
    }
  });

  test('every documented operation exists in the router', () => {
    const fastify = app.runtime.built.app;
    const missing = operations()
      .filter(({ method, path }) => !fastify.hasRoute({ method, url: toFastifyPath(path) }))
      .map(({ method, path }) => `${method} ${path}`);
    assert.deepEqual(missing, []);
  });

  test('the documented operations are exactly the routes the app registered with a doc', () => {
    const documented = new Set(operations().map(({ method, path }) => `${method} ${path}`));
    const registered = new Set<string>();
    for (const route of app.runtime.built.routes) {
      registered.add(`${route.method} ${toOpenApiPath(route.url)}`);
      if (route.doc.head === true) registered.add(`HEAD ${toOpenApiPath(route.url)}`);
    }
    assert.deepEqual([...registered].sort(), [...documented].sort());
  });

  test('every route in the router is documented (HEAD auto-routes and the dashboard aside)', () => {
    const printed = app.runtime.built.app.printRoutes({ commonPrefix: false });
    const inRouter = routerRoutes(printed);
    // The parser must actually understand printRoutes' output.
    assert.ok(inRouter.has('GET /healthz') && inRouter.has('PATCH /api/v1/links/:code'), `could not parse:\n${printed}`);
    const relevant = [...inRouter].filter((route) => !route.startsWith('HEAD ') && !route.startsWith('OPTIONS ') && route !== 'GET /' && route !== 'GET /assets/:name');
    const documented = new Set(operations().filter(({ method }) => method !== 'HEAD').map(({ method, path }) => `${method} ${toFastifyPath(path)}`));
    const undocumented = relevant.filter((route) => !documented.has(route));
    const notInRouter = [...documented].filter((route) => !inRouter.has(route));
    assert.deepEqual({ undocumented, notInRouter }, { undocumented: [], notInRouter: [] });
  });

  test('operationIds are unique, and every operation has a summary and a known tag', () => {
    const ids = operations().map(({ operation: op }) => op.operationId);
    assert.equal(new Set(ids).size, ids.length, `duplicate operationIds: ${ids.join(', ')}`);
    const tags = new Set(['links', 'keys', 'sessions', 'redirects', 'operations', 'meta']);
    for (const { method, path, operation: op } of operations()) {
      assert.ok(op.summary.length > 0, `${method} ${path} summary`);
      assert.ok(op.tags.length === 1 && tags.has(op.tags[0] ?? ''), `${method} ${path} tags ${op.tags.join(',')}`);
    }
  });

  test('every {parameter} of a path is declared as a path parameter', () => {
    const undeclared: string[] = [];
    for (const { method, path, operation: op } of operations()) {
      for (const [, name] of path.matchAll(/\{([A-Za-z0-9_]+)\}/g)) {
        if (!op.parameters.some((parameter) => parameter.in === 'path' && parameter.name === name && parameter.required === true)) {
          undeclared.push(`${method} ${path}: ${name ?? ''}`);
        }
      }
      for (const parameter of op.parameters.filter((p) => p.in === 'path')) {
        if (!path.includes(`{${parameter.name}}`)) undeclared.push(`${method} ${path}: declares ${parameter.name}, not in the path`);
      }
    }
    assert.deepEqual(undeclared, []);
  });

  test('every documented error response is problem+json (HTML pages only off /api)', () => {
    const wrong: string[] = [];
    for (const { method, path, operation: op } of operations()) {
      const fallback = op.responses.default?.content?.['application/problem+json']?.schema;
      const required = (fallback?.required as string[] | undefined) ?? [];
      if (fallback === undefined || !['type', 'title', 'status', 'detail', 'code'].every((field) => required.includes(field))) {
        wrong.push(`${method} ${path} default: not a problem+json schema with type, title, status, detail, code`);
      }
      for (const [status, response] of Object.entries(op.responses)) {
        if (!/^[45]/.test(status)) continue;
        const types = Object.keys(response.content ?? {});
        const allowed = path.startsWith('/api/') ? ['application/problem+json'] : ['application/problem+json', 'text/html'];
        if (types.length === 0 || !types.every((type) => allowed.includes(type))) {
          wrong.push(`${method} ${path} ${status}: content ${types.length === 0 ? 'not declared' : types.join(', ')}`);
        }
      }
    }
    assert.deepEqual(wrong, []);
  });

  test('operations with bearerAuth refuse a request without a key; the others do not ask for one', async () => {
    const created = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/security' } });
    const code = created.json<{ code: string }>().code;
    const wrong: string[] = [];
    for (const { method, path, operation: op } of operations()) {
      const url = path.replace('{code}', code).replace('{id}', 'key_doesnotexist');
      const needsKey = op.security.some((requirement) => 'bearerAuth' in requirement);
      const response = await app.request({ method: method as 'GET', url, key: null, ...(method === 'POST' || method === 'PATCH' ? { body: {} } : {}) });
      if (needsKey && response.statusCode !== 401) wrong.push(`${method} ${path}: ${response.statusCode} without a key`);
      if (!needsKey && response.statusCode === 401) wrong.push(`${method} ${path}: 401 although documented without security`);
      if (path.startsWith('/api/') && response.headers['ratelimit-limit'] === undefined) wrong.push(`${method} ${path}: no RateLimit-Limit`);
    }
    assert.deepEqual(wrong, []);
  });

  test('real JSON responses match the documented schemas exactly', async () => {
    const wrong: string[] = [];
    const check = (method: string, path: string, response: LightMyRequestResponse): void => {
      const problem = mismatch(method, path, response);
      if (problem !== '') wrong.push(problem);
    };

    const created = await app.request({
      method: 'POST',
      url: '/api/v1/links',
      body: { url: 'https://example.com/documented', title: 'Documented', tags: ['a', 'b'], maxVisits: 5, redirectType: 308, expiresAt: new Date(Date.now() + 86_400_000).toISOString() },
    });
    assert.equal(created.statusCode, 201, created.body);
    check('POST', '/api/v1/links', created);
    const code = created.json<{ code: string }>().code;
    // The Link schema itself, named in the task: the real answer validates against it.
    const linkSchema = operation('POST', '/api/v1/links').responses['201']?.content?.['application/json']?.schema;
    assert.ok(linkSchema !== undefined, 'createLink documents its 201 body');
    const validateLink = ajv.compile(closed(linkSchema) as object);
    assert.ok(validateLink(created.json()), ajv.errorsText(validateLink.errors));
    const plain = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/plain', alias: 'documented-alias' } });
    check('POST', '/api/v1/links', plain);

    check('GET', '/api/v1/links', await app.request({ url: '/api/v1/links?limit=2' }));
    const one = await app.request({ url: `/api/v1/links/${code}` });
    check('GET', '/api/v1/links/{code}', one);
    check('GET', '/api/v1/links/{code}', await app.request({ url: `/api/v1/links/${code}`, headers: { 'if-none-match': String(one.headers.etag) } }));
    check('PATCH', '/api/v1/links/{code}', await app.request({ method: 'PATCH', url: `/api/v1/links/${code}`, body: { title: null, tags: [] } }));
    check('POST', '/api/v1/links/bulk', await app.request({ method: 'POST', url: '/api/v1/links/bulk', body: { links: [{ url: 'https://example.com/bulk' }, { url: 'ftp://example.com/' }] } }));

    const key = await app.request({ method: 'POST', url: '/api/v1/keys', body: { name: 'documented', role: 'member' } });
    check('POST', '/api/v1/keys', key);
    check('GET', '/api/v1/keys', await app.request({ url: '/api/v1/keys' }));
    check('DELETE', '/api/v1/keys/{id}', await app.request({ method: 'DELETE', url: `/api/v1/keys/${key.json<{ id: string }>().id}` }));
    check('DELETE', '/api/v1/links/{code}', await app.request({ method: 'DELETE', url: '/api/v1/links/documented-alias' }));

    // Errors: the default problem+json response.
    check('GET', '/api/v1/links/{code}', await app.request({ url: '/api/v1/links/NoSuchCode' }));
    check('POST', '/api/v1/links', await app.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/', maxVisits: -1, redirectType: 303 } }));
    check('GET', '/api/v1/links', await app.request({ url: '/api/v1/links', key: 'not-a-real-key' }));

    check('GET', '/healthz', await app.request({ url: '/healthz', key: null }));
    check('GET', '/readyz', await app.request({ url: '/readyz', key: null }));
    check('GET', '/metrics', await app.request({ url: '/metrics', key: null }));
    check('GET', '/{code}', await app.request({ url: `/${code}`, key: null }));
    check('HEAD', '/{code}', await app.request({ method: 'HEAD', url: `/${code}`, key: null }));
    check('GET', '/{code}', await app.request({ url: '/NoSuchCode', key: null }));
    check('GET', '/{code}/qr', await app.request({ url: `/${code}/qr`, key: null }));
    check('GET', '/{code}/qr', await app.request({ url: `/${code}/qr?size=abc`, key: null }));
    assert.deepEqual(wrong, []);
  });

  test('every served body has its media type documented for its status', async () => {
    const created = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/media' } });
    const code = created.json<{ code: string }>().code;
    const cases: [string, string, () => Promise<LightMyRequestResponse>][] = [
      ['GET', '/api/v1/openapi.json', () => app.request({ url: '/api/v1/openapi.json', key: null })],
      ['GET', '/{code}/qr', () => app.request({ url: `/${code}/qr?format=png`, key: null })],
      ['GET', '/{code}/qr', () => app.request({ url: '/NoSuchCode/qr', key: null })],
    ];
    const wrong: string[] = [];
    for (const [method, path, run] of cases) {
      const problem = mismatch(method, path, await run());
      if (problem !== '') wrong.push(problem);
    }
    assert.deepEqual(wrong, []);
  });

  test('documented response headers are sent', async () => {
    const created = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/headers', redirectType: 301 } });
    const code = created.json<{ code: string }>().code;
    const cases: [string, string, LightMyRequestResponse][] = [
      ['POST', '/api/v1/links', created],
      ['GET', '/api/v1/links/{code}', await app.request({ url: `/api/v1/links/${code}` })],
      ['PATCH', '/api/v1/links/{code}', await app.request({ method: 'PATCH', url: `/api/v1/links/${code}`, body: { title: 't' } })],
      ['GET', '/api/v1/links', await app.request({ url: '/api/v1/links' })],
      ['GET', '/{code}', await app.request({ url: `/${code}`, key: null })],
      ['HEAD', '/{code}', await app.request({ method: 'HEAD', url: `/${code}`, key: null })],
    ];
    const missing: string[] = [];
    for (const [method, path, response] of cases) {
      const documented = documentedResponse(method, path, response.statusCode);
      assert.ok(documented !== undefined, `${method} ${path} ${response.statusCode} documented`);
      for (const header of Object.keys(documented.headers ?? {})) {
        if (response.headers[header.toLowerCase()] === undefined) missing.push(`${method} ${path} ${response.statusCode}: ${header}`);
      }
    }
    assert.deepEqual(missing, []);
  });
});
