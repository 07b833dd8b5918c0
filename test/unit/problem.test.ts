import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import Fastify, { errorCodes } from 'fastify';
import { PROBLEM_CONTENT_TYPE, problemBody, problemType, toAppError } from '../../src/http/problem.js';
import { validatorCompiler } from '../../src/http/validation.js';
import { AppError, ERROR_CATALOGUE } from '../../src/shared/errors.js';

function validationError(issues: unknown[], validationContext?: string): Error {
  return Object.assign(new Error('validation failed'), {
    statusCode: 400,
    code: 'FST_ERR_VALIDATION',
    validation: issues,
    ...(validationContext === undefined ? {} : { validationContext }),
  });
}

describe('toAppError: AppErrors', () => {
  test('an AppError is returned as it is', () => {
    const error = new AppError('alias_taken', { detail: 'taken' });
    assert.equal(toAppError(error), error);
  });
});

describe('toAppError: validation errors become field lists', () => {
  test('instancePath becomes a dotted field with [index] for arrays', () => {
    const error = toAppError(
      validationError([
        { instancePath: '/url', keyword: 'format', params: { format: 'uri' }, message: 'must match format "uri"' },
        { instancePath: '/tags/3', keyword: 'maxLength', params: { limit: 64 }, message: 'must NOT have more than 64 characters' },
        { instancePath: '/links/0/tags/12/name', keyword: 'type', params: { type: 'string' }, message: 'must be string' },
      ], 'body'),
    );
    assert.equal(error.code, 'validation_failed');
    assert.equal(error.status, 422);
    assert.deepEqual(error.errors, [
      { field: 'url', message: 'must match format "uri"' },
      { field: 'tags[3]', message: 'must NOT have more than 64 characters' },
      { field: 'links[0].tags[12].name', message: 'must be string' },
    ]);
    assert.equal(
      error.detail,
      'url: must match format "uri"; tags[3]: must NOT have more than 64 characters; links[0].tags[12].name: must be string',
    );
  });

  test('required names the missing property, at the top level and nested', () => {
    const error = toAppError(
      validationError([
        { instancePath: '', keyword: 'required', params: { missingProperty: 'url' }, message: "must have required property 'url'" },
        { instancePath: '/links/2', keyword: 'required', params: { missingProperty: 'url' }, message: "must have required property 'url'" },
      ]),
    );
    assert.deepEqual(error.errors?.map((e) => e.field), ['url', 'links[2].url']);
  });

  test('additionalProperties names the unknown field and says so', () => {
    const error = toAppError(
      validationError([
        { instancePath: '', keyword: 'additionalProperties', params: { additionalProperty: 'colour' }, message: 'must NOT have additional properties' },
        { instancePath: '/links/1', keyword: 'additionalProperties', params: { additionalProperty: 'x' }, message: 'must NOT have additional properties' },
      ]),
    );
    assert.deepEqual(error.errors, [
      { field: 'colour', message: 'is not a known field' },
      { field: 'links[1].x', message: 'is not a known field' },
    ]);
  });

  test('a problem with the whole part is named after the part (body when unknown)', () => {
    const issue = { instancePath: '', keyword: 'type', params: { type: 'object' }, message: 'must be object' };
    assert.deepEqual(toAppError(validationError([issue], 'querystring')).errors, [{ field: 'querystring', message: 'must be object' }]);
    assert.deepEqual(toAppError(validationError([issue])).errors, [{ field: 'body', message: 'must be object' }]);
  });

  test('an issue without a message still gets one', () => {
    const error = toAppError(validationError([{ instancePath: '/a', keyword: 'x', params: {} }]));
    assert.deepEqual(error.errors, [{ field: 'a', message: 'is not valid' }]);
  });
});

describe('toAppError: real Fastify validation errors', () => {
  test('errors from the app validator map onto fields', async () => {
    const app = Fastify({ logger: false });
    app.setValidatorCompiler(validatorCompiler());
    let seen: AppError | undefined;
    app.setErrorHandler((error, _request, reply) => {
      seen = toAppError(error);
      return reply.code(seen.status).send(problemBody(seen));
    });
    app.post(
      '/links',
      {
        schema: {
          body: {
            type: 'object',
            required: ['url'],
            additionalProperties: false,
            properties: {
              url: { type: 'string', format: 'uri' },
              tags: { type: 'array', items: { type: 'string', maxLength: 3 } },
              maxVisits: { type: 'integer', minimum: 1 },
            },
          },
        },
      },
      () => ({ ok: true }),
    );
    try {
      const response = await app.inject({
        method: 'POST',
        url: '/links',
        payload: { tags: ['ok', 'toolong'], maxVisits: '5', colour: 'red' },
      });
      assert.equal(response.statusCode, 422);
      assert.ok(seen !== undefined);
      assert.equal(seen.code, 'validation_failed');
      const fields = (seen.errors ?? []).map((e) => e.field).sort();
      assert.deepEqual(fields, ['colour', 'maxVisits', 'tags[1]', 'url']);
      assert.equal(seen.errors?.find((e) => e.field === 'colour')?.message, 'is not a known field');
    } finally {
      await app.close();
    }
  });
});

describe('toAppError: Fastify content-type and body errors', () => {
  const cases: [name: string, error: Error, code: keyof typeof ERROR_CATALOGUE, status: number][] = [
    ['FST_ERR_CTP_INVALID_MEDIA_TYPE', new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE(), 'unsupported_media_type', 415],
    ['FST_ERR_CTP_BODY_TOO_LARGE', new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE(), 'payload_too_large', 413],
    ['FST_ERR_CTP_INVALID_CONTENT_LENGTH', new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH(), 'malformed_request', 400],
    ['FST_ERR_CTP_EMPTY_JSON_BODY', new errorCodes.FST_ERR_CTP_EMPTY_JSON_BODY(), 'malformed_request', 400],
    ['FST_ERR_CTP_INVALID_JSON_BODY', new errorCodes.FST_ERR_CTP_INVALID_JSON_BODY(), 'invalid_json', 400],
  ];
  for (const [name, error, code, status] of cases) {
    test(`${name} → ${code} (${status})`, () => {
      const mapped = toAppError(error);
      assert.ok(mapped instanceof AppError);
      assert.equal(mapped.code, code);
      assert.equal(mapped.status, status);
      assert.equal(mapped.detail, error.message);
    });
  }

  test('real requests: bad JSON, empty JSON, unknown media type, too large', async () => {
    const app = Fastify({ logger: false, bodyLimit: 1024 });
    const seen: string[] = [];
    app.setErrorHandler((error, _request, reply) => {
      const problem = toAppError(error);
      seen.push(problem.code);
      return reply.code(problem.status).send(problemBody(problem));
    });
    app.post('/echo', (request) => request.body);
    try {
      const json = { 'content-type': 'application/json' };
      assert.equal((await app.inject({ method: 'POST', url: '/echo', headers: json, payload: '{"a":' })).statusCode, 400);
      assert.equal((await app.inject({ method: 'POST', url: '/echo', headers: json, payload: '' })).statusCode, 400);
      assert.equal((await app.inject({ method: 'POST', url: '/echo', headers: { 'content-type': 'text/csv' }, payload: 'a,b' })).statusCode, 415);
      assert.equal((await app.inject({ method: 'POST', url: '/echo', headers: json, payload: JSON.stringify({ a: 'x'.repeat(2000) }) })).statusCode, 413);
      assert.deepEqual(seen, ['invalid_json', 'malformed_request', 'unsupported_media_type', 'payload_too_large']);
    } finally {
      await app.close();
    }
  });
});

describe('toAppError: other errors', () => {
  test('a 4xx status maps through the status table', () => {
    const withStatus = (statusCode: number): Error => Object.assign(new Error(`status ${statusCode}`), { statusCode });
    assert.equal(toAppError(withStatus(404)).code, 'not_found');
    assert.equal(toAppError(withStatus(405)).code, 'method_not_allowed');
    assert.equal(toAppError(withStatus(414)).code, 'uri_too_long');
    assert.equal(toAppError(withStatus(429)).code, 'rate_limited');
    assert.equal(toAppError(withStatus(418)).code, 'malformed_request', 'unknown 4xx');
    assert.equal(toAppError(withStatus(418)).status, 400);
  });

  test('an unknown error is a 500 internal_error that leaks nothing', () => {
    const secret = new Error('connect ECONNREFUSED 10.1.2.3:5432 password=hunter2');
    const mapped = toAppError(secret);
    assert.equal(mapped.code, 'internal_error');
    assert.equal(mapped.status, 500);
    assert.equal(mapped.title, 'Internal error');
    assert.ok(!mapped.detail.includes('hunter2'));
    assert.ok(!mapped.detail.includes('ECONNREFUSED'));
    assert.ok(!JSON.stringify(problemBody(mapped, 'req-1')).includes('hunter2'));
    assert.equal(mapped.cause, secret, 'kept as the cause, for the log');
  });

  test('a 5xx error with a message is still internal_error without the message', () => {
    const mapped = toAppError(Object.assign(new Error('pool exhausted at db-7'), { statusCode: 500 }));
    assert.equal(mapped.code, 'internal_error');
    assert.ok(!mapped.detail.includes('db-7'));
  });

  test('non-Error values are internal errors too', () => {
    for (const value of ['boom', 42, { weird: true }, Symbol('s')]) {
      const mapped = toAppError(value);
      assert.equal(mapped.code, 'internal_error', typeof value);
      assert.equal(mapped.status, 500);
    }
  });

  // `throw null` / `Promise.reject()` reach the error handler as null / undefined; the
  // signature takes `unknown`, so it must not itself throw a TypeError.
  test('null and undefined are internal errors, not a crash', () => {
    for (const value of [null, undefined]) {
      const mapped = toAppError(value);
      assert.equal(mapped.code, 'internal_error', String(value));
      assert.equal(mapped.status, 500);
    }
  });
});

describe('problemBody', () => {
  test('the RFC 9457 members plus code, without optional ones when absent', () => {
    const body = problemBody(new AppError('link_not_found', { detail: 'No link with code "abc"' }));
    assert.deepEqual(body, {
      type: 'urn:shunt:problem:link_not_found',
      title: 'Link not found',
      status: 404,
      detail: 'No link with code "abc"',
      code: 'link_not_found',
    });
    assert.deepEqual(Object.keys(body), ['type', 'title', 'status', 'detail', 'code']);
  });

  test('requestId and errors are included when present', () => {
    const errors = [{ field: 'url', message: 'is required' }];
    const body = problemBody(new AppError('validation_failed', { detail: 'url: is required', errors }), 'req-42');
    assert.deepEqual(body, {
      type: 'urn:shunt:problem:validation_failed',
      title: 'Request is not acceptable',
      status: 422,
      detail: 'url: is required',
      code: 'validation_failed',
      requestId: 'req-42',
      errors,
    });
  });

  test('detail defaults to the title; status and title come from the catalogue', () => {
    for (const code of Object.keys(ERROR_CATALOGUE) as (keyof typeof ERROR_CATALOGUE)[]) {
      const body = problemBody(new AppError(code));
      assert.equal(body.status, ERROR_CATALOGUE[code].status, code);
      assert.equal(body.title, ERROR_CATALOGUE[code].title, code);
      assert.equal(body.detail, ERROR_CATALOGUE[code].title, code);
      assert.equal(body.type, problemType(code));
      assert.equal(body.code, code);
    }
  });

  test('the body is JSON-serialisable as it is and the media type is problem+json', () => {
    const body = problemBody(new AppError('rate_limited'), 'r');
    assert.deepEqual(JSON.parse(JSON.stringify(body)), body);
    assert.equal(PROBLEM_CONTENT_TYPE, 'application/problem+json');
  });
});
