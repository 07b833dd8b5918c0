import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../shared/errors.js';
import type { Actor } from '../links/link.js';
import { IDEMPOTENCY_KEY_PATTERN, requestFingerprint, type IdempotencyStore } from './idempotency-store.js';

export interface ProducedResponse {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/**
 * Runs `produce` at most once per Idempotency-Key: a retry of the same request gets
 * the first answer again (marked `Idempotent-Replayed: true`).
 */
export async function respondIdempotently(
  store: IdempotencyStore,
  actor: Actor,
  request: FastifyRequest,
  reply: FastifyReply,
  produce: () => Promise<ProducedResponse>,
): Promise<FastifyReply> {
  const key = request.headers['idempotency-key'];
  if (key === undefined) return send(reply, await produce());
  if (typeof key !== 'string' || !IDEMPOTENCY_KEY_PATTERN.test(key)) {
    throw new AppError('malformed_request', { detail: 'Idempotency-Key must be 1-255 visible ASCII characters' });
  }
  const fingerprint = requestFingerprint(request.method, request.routeOptions.url ?? request.url, request.body);
  const claim = await store.claim(actor.keyId, key, fingerprint);
  switch (claim.kind) {
    case 'replay':
      void reply.header('Idempotent-Replayed', 'true');
      return send(reply, { status: claim.status, body: claim.body, headers: claim.headers });
    case 'mismatch':
      throw new AppError('idempotency_key_reused', { detail: 'This Idempotency-Key was used for a different request' });
    case 'in_progress':
      throw new AppError('idempotency_in_progress', { headers: { 'Retry-After': '1' } });
    case 'claimed':
      break;
  }
  let produced: ProducedResponse;
  try {
    produced = await produce();
  } catch (error) {
    await store.release(actor.keyId, key);
    throw error;
  }
  await store.complete(actor.keyId, key, produced);
  return send(reply, produced);
}

function send(reply: FastifyReply, produced: ProducedResponse): FastifyReply {
  for (const [name, value] of Object.entries(produced.headers ?? {})) void reply.header(name, value);
  return reply.code(produced.status).send(produced.body);
}
