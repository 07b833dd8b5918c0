/**
 * Checks a real answer against what the served OpenAPI document says of it: the status is
 * documented, the media type is, and a JSON body matches the schema made strict (no
 * undocumented properties), as test/api/openapi.test.ts does for the core routes.
 */
import type { LightMyRequestResponse } from 'fastify';
import { createAjv } from '../../src/http/validation.js';
import type { TestApp } from './test-app.js';

type Json = Record<string, unknown>;

interface ResponseObject {
  content?: Record<string, { schema?: Json }>;
  headers?: Record<string, unknown>;
}

/** A schema whose objects may not carry undocumented properties. */
function closed(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closed);
  if (schema === null || typeof schema !== 'object') return schema;
  const result: Json = {};
  for (const [key, value] of Object.entries(schema as Json)) {
    result[key] = key === 'properties' ? Object.fromEntries(Object.entries(value as Json).map(([name, property]) => [name, closed(property)])) : closed(value);
  }
  if (result.type === 'object' && typeof result.properties === 'object' && result.additionalProperties === undefined) result.additionalProperties = false;
  return result;
}

const documents = new WeakMap<TestApp, Promise<{ paths: Record<string, Record<string, { responses: Record<string, ResponseObject> }>> }>>();

/** Why the answer does not match the document; '' when it does. */
export async function documentMismatch(app: TestApp, method: string, path: string, response: LightMyRequestResponse): Promise<string> {
  let loading = documents.get(app);
  if (loading === undefined) {
    loading = app.request({ url: '/api/v1/openapi.json', key: null }).then((answer) => answer.json());
    documents.set(app, loading);
  }
  const doc = await loading;
  const label = `${method} ${path} -> ${response.statusCode}`;
  const responses = doc.paths[path]?.[method.toLowerCase()]?.responses;
  if (responses === undefined) return `${label}: operation not documented`;
  const status = response.statusCode;
  const documented = responses[String(status)] ?? responses[`${Math.floor(status / 100)}XX`] ?? (status >= 400 ? responses.default : undefined);
  if (documented === undefined) return `${label}: status not documented`;
  for (const header of Object.keys(documented.headers ?? {})) {
    if (response.headers[header.toLowerCase()] === undefined) return `${label}: documented header ${header} not sent`;
  }
  if (response.rawPayload.length === 0) return '';
  const type = String(response.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
  const media = documented.content?.[type];
  if (media === undefined) return `${label}: sends ${type}, documented ${Object.keys(documented.content ?? {}).join(', ')}`;
  if (type.endsWith('json') && media.schema !== undefined) {
    const ajv = createAjv('body');
    const validate = ajv.compile(closed(media.schema) as object);
    if (!validate(response.json())) return `${label}: ${ajv.errorsText(validate.errors)}`;
  }
  return '';
}
