/**
 * Request validation. Bodies are JSON and must have the right types as sent (no
 * coercion: "5" is not 5); query strings and path parameters are text, so they are
 * coerced to the schema's types.
 */
import AjvModule, { type Options } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

// ajv and ajv-formats are CommonJS with a default export.
const Ajv = AjvModule.default;
const addFormats = addFormatsModule.default;

export function createAjv(kind: 'body' | 'text'): InstanceType<typeof Ajv> {
  const options: Options = {
    allErrors: true,
    strict: false,
    useDefaults: true,
    removeAdditional: false,
    coerceTypes: kind === 'text',
  };
  const ajv = new Ajv(options);
  addFormats(ajv);
  return ajv;
}

export function validatorCompiler(): FastifySchemaCompiler<unknown> {
  const body = createAjv('body');
  const text = createAjv('text');
  return ({ schema, httpPart }) => {
    const validate = (httpPart === 'body' ? body : text).compile(schema as object);
    return (data: unknown) => (validate(data) ? { value: data } : { error: Object.assign(new Error('validation failed'), { validation: validate.errors ?? [] }) });
  };
}
