/** Assertions for RFC 9457 problem answers, shared by the API tests. */
import assert from 'node:assert/strict';
import type { LightMyRequestResponse } from 'fastify';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  requestId?: string;
  errors?: { field: string; message: string }[];
}

/** Checks the shape of a problem object, wherever it came from (a response, a bulk item). */
export function assertProblemBody(body: Problem, status: number, code: string, context = ''): Problem {
  assert.equal(typeof body.type, 'string', context);
  assert.ok(body.type.length > 0, `${context}: type is empty`);
  assert.equal(typeof body.title, 'string', context);
  assert.ok(body.title.length > 0, `${context}: title is empty`);
  assert.equal(body.status, status, context);
  assert.equal(typeof body.detail, 'string', context);
  assert.ok(body.detail.length > 0, `${context}: detail is empty`);
  assert.equal(body.code, code, `${context}: ${body.detail}`);
  return body;
}

/** Asserts an error answer: status, problem+json content type, and the problem body. */
export function expectProblem(response: LightMyRequestResponse, status: number, code: string): Problem {
  assert.equal(response.statusCode, status, response.body);
  assert.match(String(response.headers['content-type']), /^application\/problem\+json/);
  return assertProblemBody(response.json<Problem>(), status, code, response.body);
}
