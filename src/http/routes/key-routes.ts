/** /api/v1/keys: admin-only management of API keys. */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { AppError } from '../../shared/errors.js';
import type { ApiKey } from '../../keys/api-key.js';
import type { AppDeps } from '../app-deps.js';
import { requireAdmin } from '../gateway.js';
import { CreatedKeySchema, KeyCreateSchema, KeyListSchema, type KeyCreateBody } from '../schemas.js';

function toKeyJson(key: ApiKey) {
  return {
    id: key.id,
    name: key.name,
    role: key.role,
    prefix: key.prefix,
    createdAt: key.createdAt.toISOString(),
    lastUsedAt: key.lastUsedAt?.toISOString() ?? null,
    revokedAt: key.revokedAt?.toISOString() ?? null,
  };
}

export function keyRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { keys } = deps;

  app.post<{ Body: KeyCreateBody }>('/keys', {
    schema: { body: KeyCreateSchema },
    config: {
      doc: {
        operationId: 'createKey', summary: 'Create an API key; the secret is in this answer only', tag: 'keys', auth: true,
        responses: { 201: { description: 'Created', schema: CreatedKeySchema } },
      },
    },
  }, async (request, reply) => {
    requireAdmin(request);
    const created = await keys.create(request.body.name, request.body.role ?? 'member');
    return reply.code(201).send({ ...toKeyJson(created.key), key: created.secret });
  });

  app.get('/keys', {
    config: {
      doc: { operationId: 'listKeys', summary: 'List API keys (never their secrets)', tag: 'keys', auth: true, responses: { 200: { description: 'Keys', schema: KeyListSchema } } },
    },
  }, async (request) => {
    requireAdmin(request);
    return { items: (await keys.list()).map(toKeyJson) };
  });

  app.delete<{ Params: { id: string } }>('/keys/:id', {
    schema: { params: Type.Object({ id: Type.String({ maxLength: 64 }) }) },
    config: {
      doc: { operationId: 'revokeKey', summary: 'Revoke an API key (the last admin key cannot be revoked)', tag: 'keys', auth: true, responses: { 204: { description: 'Revoked' } } },
    },
  }, async (request, reply) => {
    requireAdmin(request);
    if (!/^key_[A-Za-z0-9]{1,60}$/.test(request.params.id)) {
      throw new AppError('key_not_found', { detail: `No active API key with id "${request.params.id.slice(0, 64)}"` });
    }
    await keys.revoke(request.params.id);
    return reply.code(204).send();
  });
}
