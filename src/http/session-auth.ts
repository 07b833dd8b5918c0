/**
 * The session cookie as a way to call the API, and the CSRF defence that comes with it: a
 * browser sends cookies on requests other sites start, so every state-changing request that
 * rides on the cookie must carry the session's CSRF token (a header no other site can set
 * or know) and, when the browser names it, come from this origin.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../shared/errors.js';
import type { Actor } from '../links/link.js';
import { cookieValue, csrfMatches, SESSION_COOKIE } from '../sessions/session-service.js';
import type { AppDeps } from './app-deps.js';

export const CSRF_HEADER = 'x-csrf-token';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function sessionToken(request: FastifyRequest): string | undefined {
  return cookieValue(request.headers.cookie, SESSION_COOKIE);
}

/** Refuses a request whose Origin header names another site. */
export function assertSameOrigin(deps: AppDeps, request: FastifyRequest): void {
  const origin = request.headers.origin;
  if (origin === undefined) return;
  const own = new Set([deps.config.baseUrl.origin, `${request.protocol}://${request.host}`]);
  if (!own.has(origin)) throw new AppError('csrf_failed', { detail: 'The request comes from another origin' });
}

export async function sessionActor(deps: AppDeps, request: FastifyRequest): Promise<Actor | null> {
  const token = sessionToken(request);
  if (token === undefined) return null;
  const session = await deps.sessions.resolve(token);
  if (session === null) return null;
  if (!SAFE_METHODS.has(request.method)) {
    assertSameOrigin(deps, request);
    const presented = request.headers[CSRF_HEADER];
    if (typeof presented !== 'string' || !csrfMatches(token, presented)) {
      throw new AppError('csrf_failed', { detail: `A request signed in by cookie must carry the session's ${CSRF_HEADER} header` });
    }
  }
  return session.actor;
}

/** Secure when the dashboard is served over https, directly or behind a trusted proxy. */
function secure(deps: AppDeps, request: FastifyRequest): boolean {
  return deps.config.baseUrl.protocol === 'https:' || request.protocol === 'https';
}

export function setSessionCookie(deps: AppDeps, request: FastifyRequest, reply: FastifyReply, token: string, expiresAt: Date): void {
  const maxAge = Math.max(0, Math.floor((expiresAt.getTime() - Date.now()) / 1000));
  const attributes = [`${SESSION_COOKIE}=${token}`, 'Path=/', `Max-Age=${maxAge}`, 'HttpOnly', 'SameSite=Strict'];
  if (secure(deps, request)) attributes.push('Secure');
  void reply.header('Set-Cookie', attributes.join('; '));
}

export function clearSessionCookie(deps: AppDeps, request: FastifyRequest, reply: FastifyReply): void {
  const attributes = [`${SESSION_COOKIE}=`, 'Path=/', 'Max-Age=0', 'HttpOnly', 'SameSite=Strict'];
  if (secure(deps, request)) attributes.push('Secure');
  void reply.header('Set-Cookie', attributes.join('; '));
}
