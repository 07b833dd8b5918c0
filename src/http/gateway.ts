/**
 * The API gateway hook: who is calling (Bearer API key, or the dashboard's session cookie),
 * and may they call again (rate limits per key, or per client IP without a valid key).
 * Every API answer carries the RateLimit-* headers, errors included.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../shared/errors.js';
import type { Actor } from '../links/link.js';
import { BlockedClients } from '../ratelimit/blocked-clients.js';
import { clientBucket } from '../ratelimit/client-bucket.js';
import type { AppDeps } from './app-deps.js';
import { sessionActor } from './session-auth.js';

const BEARER = /^Bearer[ \t]+([\x21-\x7e]+)[ \t]*$/i;

function rateLimited(limit: number, resetSeconds: number): AppError {
  return new AppError('rate_limited', {
    detail: `Rate limit of ${limit} requests per minute reached; retry in ${resetSeconds} s`,
    headers: { 'Retry-After': String(resetSeconds) },
  });
}

export function gatewayHook(deps: AppDeps) {
  const { keys, rateLimiter, config } = deps;
  // Client IPs whose own budget ran out, known here so that their next requests (bogus
  // keys included) are refused before any key lookup reaches the store. A valid key behind
  // such an address waits for the window too: the IP limit applies first.
  const refusedIps = new BlockedClients();
  return async function gateway(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const header = request.headers.authorization;
    const ipBucket = clientBucket(request.ip);
    const wait = refusedIps.retryAfter(ipBucket);
    if (wait > 0) {
      const limit = config.rateLimits.ipPerMinute;
      void reply.header('RateLimit-Limit', String(limit));
      void reply.header('RateLimit-Remaining', '0');
      void reply.header('RateLimit-Reset', String(wait));
      throw rateLimited(limit, wait);
    }
    let actor: Actor | null = null;
    let badKey = false;
    if (header !== undefined) {
      const secret = BEARER.exec(header)?.[1];
      actor = secret === undefined ? null : await keys.authenticate(secret);
      badKey = actor === null;
    } else {
      // A cookie that no longer names a live session is no key at all: the caller is anonymous.
      actor = await sessionActor(deps, request);
    }
    const verdict =
      actor === null
        ? await rateLimiter.consume(`ip:${ipBucket}`, config.rateLimits.ipPerMinute)
        : await rateLimiter.consume(`key:${actor.keyId}`, config.rateLimits.keyPerMinute);
    void reply.header('RateLimit-Limit', String(verdict.limit));
    void reply.header('RateLimit-Remaining', String(verdict.remaining));
    void reply.header('RateLimit-Reset', String(verdict.resetSeconds));
    if (!verdict.allowed) {
      // Until the window's end exactly: `resetSeconds` is rounded up, and blocking for it
      // would announce a reset up to a second after the shared window has reopened.
      if (actor === null) refusedIps.block(ipBucket, verdict.resetAtMs);
      throw rateLimited(verdict.limit, verdict.resetSeconds);
    }
    if (badKey) {
      throw new AppError('unauthorized', {
        detail: 'The API key is not valid or has been revoked',
        headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"' },
      });
    }
    request.actor = actor;
    if (request.routeOptions.config.doc?.auth === true && actor === null) {
      throw new AppError('unauthorized', {
        detail: 'This endpoint needs an API key: Authorization: Bearer <key>',
        headers: { 'WWW-Authenticate': 'Bearer' },
      });
    }
  };
}

export function requireActor(request: FastifyRequest): Actor {
  if (request.actor === null) throw new AppError('unauthorized');
  return request.actor;
}

export function requireAdmin(request: FastifyRequest): Actor {
  const actor = requireActor(request);
  if (actor.role !== 'admin') throw new AppError('forbidden', { detail: 'Only admin keys may manage API keys' });
  return actor;
}
