/**
 * Request validation. Bodies are JSON and must have the right types as sent (no
 * coercion: "5" is not 5); query strings and path parameters are text, so they are
 * coerced to the schema's types.
 */
import AjvModule, { type ErrorObject, type Options, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

// ajv and ajv-formats are CommonJS with a default export.
const Ajv = AjvModule.default;
const addFormats = addFormatsModule.default;

export function createAjv(kind: 'body' | 'text', allErrors = true): InstanceType<typeof Ajv> {
  const options: Options = {
    allErrors,
    strict: false,
    useDefaults: true,
    removeAdditional: false,
    coerceTypes: kind === 'text',
  };
  const ajv = new Ajv(options);
  addFormats(ajv);
  return ajv;
}

/** Keywords that bound a size: beyond one, the input is refused as it is, without more work. */
const SIZE_LIMITS: ReadonlySet<string> = new Set(['maxItems', 'maxLength', 'maxProperties']);

export type BodyValidator = (data: unknown) => ErrorObject[] | null;

/**
 * A body validator that lists every bad field, except for oversized input: a first pass
 * stops at the first error (ajv checks an array's maxItems before its items), and only
 * when that error is not a size limit does a second pass collect every error. 400,000
 * tags cost one length check, not 400,000 item checks and as many error objects.
 */
export function bodyValidator(schema: object, ajvs = { first: createAjv('body', false), all: createAjv('body') }): BodyValidator {
  const first = ajvs.first.compile(schema);
  const all = ajvs.all.compile(schema);
  return (data) => {
    if (first(data)) return null;
    const error = first.errors?.[0];
    if (error !== undefined && SIZE_LIMITS.has(error.keyword)) return [error];
    return all(data) ? null : (all.errors ?? []);
  };
}

export function validatorCompiler(): FastifySchemaCompiler<unknown> {
  const body = { first: createAjv('body', false), all: createAjv('body') };
  const text = createAjv('text');
  return ({ schema, httpPart }) => {
    const validate = httpPart === 'body' ? bodyValidator(schema as object, body) : toBodyValidator(text.compile(schema as object));
    return (data: unknown) => {
      const errors = validate(data);
      return errors === null ? { value: data } : { error: Object.assign(new Error('validation failed'), { validation: errors }) };
    };
  };
}

function toBodyValidator(validate: ValidateFunction): BodyValidator {
  return (data) => (validate(data) ? null : (validate.errors ?? []));
}
