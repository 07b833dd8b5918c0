import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../shared/errors.js';
import type { Actor } from '../links/link.js';
import type { Queryable } from '../storage/database.js';
import { IDEMPOTENCY_KEY_PATTERN, requestFingerprint, type IdempotencyStore } from './idempotency-store.js';

export interface ProducedResponse {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** A claimed key (its token), or null when the request has none; throws or replays otherwise. */
async function claimKey(store: IdempotencyStore, actor: Actor, request: FastifyRequest, reply: FastifyReply): Promise<{ key: string; token: string } | null | 'replayed'> {
  const key = request.headers['idempotency-key'];
  if (key === undefined) return null;
  if (typeof key !== 'string' || !IDEMPOTENCY_KEY_PATTERN.test(key)) {
    throw new AppError('malformed_request', { detail: 'Idempotency-Key must be 1-255 visible ASCII characters' });
  }
  const fingerprint = requestFingerprint(request.method, request.routeOptions.url ?? request.url, request.body);
  const claim = await store.claim(actor.keyId, key, fingerprint);
  switch (claim.kind) {
    case 'replay':
      void reply.header('Idempotent-Replayed', 'true');
      send(reply, { status: claim.status, body: claim.body, headers: claim.headers });
      return 'replayed';
    case 'mismatch':
      throw new AppError('idempotency_key_reused', { detail: 'This Idempotency-Key was used for a different request' });
    case 'in_progress':
      throw new AppError('idempotency_in_progress', { headers: { 'Retry-After': '1' } });
    case 'claimed':
      return { key, token: claim.token };
  }
}

/**
 * Runs the work at most once per Idempotency-Key: a retry of the same request gets the first
 * answer again (marked `Idempotent-Replayed: true`). The work (a create, a bulk) and its
 * stored answer commit in one transaction, so a retry either replays exactly what was
 * committed or, when the first attempt failed or died before committing, runs it again from
 * the start. Never a created link without its answer, which a retry would create again.
 * `afterCommit` runs once the work is committed (cache invalidation), whether or not there
 * was a key.
 */
export async function respondIdempotentlyInTransaction(
  store: IdempotencyStore,
  actor: Actor,
  request: FastifyRequest,
  reply: FastifyReply,
  work: { produce: (tx: Queryable) => Promise<ProducedResponse>; afterCommit: () => Promise<void> },
): Promise<FastifyReply> {
  const claimed = await claimKey(store, actor, request, reply);
  if (claimed === 'replayed') return reply;
  let produced: ProducedResponse;
  try {
    produced = await store.transaction(async (tx) => {
      const answer = await work.produce(tx);
      if (claimed !== null && !(await store.complete(actor.keyId, claimed.key, claimed.token, answer, tx))) {
        // The claim's lease ran out and another attempt holds the key now: this one commits nothing.
        throw new AppError('idempotency_in_progress', { headers: { 'Retry-After': '1' } });
      }
      return answer;
    });
  } catch (error) {
    if (claimed !== null) await store.release(actor.keyId, claimed.key, claimed.token);
    throw error;
  }
  await work.afterCommit();
  return send(reply, produced);
}

function send(reply: FastifyReply, produced: ProducedResponse): FastifyReply {
  for (const [name, value] of Object.entries(produced.headers ?? {})) void reply.header(name, value);
  return reply.code(produced.status).send(produced.body);
}
