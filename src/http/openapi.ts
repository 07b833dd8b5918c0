/**
 * The OpenAPI 3.1 document, built from the routes as registered: their request schemas
 * (the same objects Fastify validates with) and the `doc` each route carries.
 */
import type { TSchema } from '@sinclair/typebox';
import type { RouteOptions } from 'fastify';
import { ProblemSchema } from './schemas.js';

export interface RouteResponseDoc {
  description: string;
  schema?: TSchema;
  /** One media type, or several that share the schema. Default application/json. */
  contentType?: string | readonly string[];
  headers?: readonly string[];
}

export interface RouteDoc {
  operationId: string;
  summary: string;
  description?: string;
  tag: 'links' | 'keys' | 'sessions' | 'redirects' | 'operations' | 'meta';
  /** Needs a Bearer API key (or the dashboard's session cookie). */
  auth: boolean;
  /** Also document the automatic HEAD route. */
  head?: boolean;
  responses: Readonly<Record<number, RouteResponseDoc>>;
  /** A body the route parses itself (not JSON-validated by a schema). */
  requestBody?: { contentType: string; schema: TSchema };
  /** Documented request headers besides Authorization. */
  requestHeaders?: readonly { name: string; description: string; required?: boolean }[];
}

export interface DocumentedRoute {
  method: string;
  url: string;
  schema: RouteOptions['schema'];
  doc: RouteDoc;
}

/** `/api/v1/links/:code` -> `/api/v1/links/{code}` */
export function toOpenApiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

const HEADER_DOCS: Readonly<Record<string, { description: string; schema: object }>> = {
  'RateLimit-Limit': { description: 'Requests allowed in the current one-minute window', schema: { type: 'integer' } },
  'RateLimit-Remaining': { description: 'Requests left in the current window', schema: { type: 'integer' } },
  'RateLimit-Reset': { description: 'Seconds until the window resets', schema: { type: 'integer' } },
  'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'integer' } },
  ETag: { description: 'Version of the link, for If-None-Match and If-Match', schema: { type: 'string' } },
  Location: { description: 'Where the short link leads; on the API, the resource created', schema: { type: 'string' } },
  'Cache-Control': {
    description: 'Redirects: private, no-store for 302/307, a bounded max-age for 301/308. API: private, never kept by shared caches',
    schema: { type: 'string' },
  },
  'Content-Disposition': { description: 'attachment, with a file name', schema: { type: 'string' } },
  'Set-Cookie': { description: 'The session cookie: HttpOnly, SameSite=Strict, Secure over https', schema: { type: 'string' } },
};

/** Plain JSON Schema: TypeBox's symbol keys vanish through JSON. */
function plain(schema: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
}

function parameters(schema: unknown, location: 'path' | 'query'): object[] {
  if (schema === undefined) return [];
  const properties = (plain(schema).properties ?? {}) as Record<string, Record<string, unknown>>;
  const required = new Set((plain(schema).required ?? []) as string[]);
  return Object.entries(properties).map(([name, property]) => ({
    name,
    in: location,
    required: location === 'path' || required.has(name),
    ...(typeof property.description === 'string' ? { description: property.description } : {}),
    schema: property,
  }));
}

/** Routes without a params schema still declare every `:name` of their URL. */
function pathParameters(url: string): object[] {
  return [...url.matchAll(/:([A-Za-z0-9_]+)/g)].map((match) => ({ name: match[1], in: 'path', required: true, schema: { type: 'string' } }));
}

/** `serverUrl` may be relative (`/`): the document then describes whichever host serves it. */
export function buildOpenApiDocument(routes: readonly DocumentedRoute[], serverUrl: string): object {
  const paths: Record<string, Record<string, object>> = {};
  for (const route of routes) {
    const path = toOpenApiPath(route.url);
    const schema = (route.schema ?? {}) as { params?: unknown; querystring?: unknown; body?: unknown };
    const responses: Record<string, object> = {};
    const rateLimited = route.url.startsWith('/api/');
    for (const [status, response] of Object.entries(route.doc.responses)) {
      const headerNames = [...(response.headers ?? []), ...(rateLimited ? ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'] : [])];
      const headers = Object.fromEntries(headerNames.map((name) => [name, HEADER_DOCS[name] ?? { schema: { type: 'string' } }]));
      responses[status] = {
        description: response.description,
        ...(headerNames.length > 0 ? { headers } : {}),
        ...(response.schema === undefined
          ? {}
          : { content: Object.fromEntries([response.contentType ?? 'application/json'].flat().map((type) => [type, { schema: plain(response.schema) }])) }),
      };
    }
    // Any route can refuse a request (414, 400, 429 on the API...), always as problem+json.
    responses['4XX'] = {
      description: 'A client error, as RFC 9457 problem details with a stable `code`',
      content: { 'application/problem+json': { schema: plain(ProblemSchema) } },
    };
    responses.default = {
      description: 'An error, as RFC 9457 problem details with a stable `code`',
      content: { 'application/problem+json': { schema: plain(ProblemSchema) } },
    };
    const operation = {
      operationId: route.doc.operationId,
      summary: route.doc.summary,
      ...(route.doc.description === undefined ? {} : { description: route.doc.description }),
      tags: [route.doc.tag],
      security: route.doc.auth ? [{ bearerAuth: [] }, { sessionCookie: [] }] : [],
      parameters: [
        ...(schema.params === undefined ? pathParameters(route.url) : parameters(schema.params, 'path')),
        ...parameters(schema.querystring, 'query'),
        ...(route.doc.requestHeaders ?? []).map((header) => ({
          name: header.name,
          in: 'header',
          required: header.required ?? false,
          description: header.description,
          schema: { type: 'string' },
        })),
      ],
      ...(schema.body === undefined
        ? {}
        : { requestBody: { required: true, content: { 'application/json': { schema: plain(schema.body) } } } }),
      ...(route.doc.requestBody === undefined
        ? {}
        : { requestBody: { required: true, content: { [route.doc.requestBody.contentType]: { schema: plain(route.doc.requestBody.schema) } } } }),
      responses,
    };
    const methods = (paths[path] ??= {});
    methods[route.method.toLowerCase()] = operation;
    if (route.doc.head === true) {
      methods.head = { ...operation, operationId: `${route.doc.operationId}Head`, summary: `${route.doc.summary} (headers only)` };
    }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Shunt API',
      version: '1.0.0',
      description:
        'Shunt: URL shortener with click analytics. Errors are application/problem+json with a stable `code`. ' +
        'Every /api/v1 response carries RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset; a 429 carries Retry-After, ' +
          'and so does a 503 (a dependency the request needs, such as the database, is unavailable).',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: serverUrl }],
    tags: [
      { name: 'links', description: 'Create and manage short links' },
      { name: 'keys', description: 'API keys (admin only)' },
      { name: 'sessions', description: 'Dashboard sign-in: an API key exchanged for a session cookie' },
      { name: 'redirects', description: 'The public short links' },
      { name: 'operations', description: 'Health, readiness and metrics' },
      { name: 'meta', description: 'This document' },
    ],
    components: {
      securitySchemes: {
        bearerAuth: { type: 'http', scheme: 'bearer', description: 'An API key, e.g. shunt_…' },
        sessionCookie: {
          type: 'apiKey',
          in: 'cookie',
          name: 'shunt_session',
          description:
            'The dashboard session from POST /api/v1/session. Requests other than GET/HEAD/OPTIONS made with it must also send ' +
            'X-CSRF-Token (the csrfToken of the session) and, if they send Origin, this origin; else 403 csrf_failed.',
        },
      },
    },
    paths,
  };
}
