/** /api/v1/session: the dashboard signs in with an API key, reads its session, signs out. */
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { AppError } from '../../shared/errors.js';
import type { Session } from '../../sessions/session-service.js';
import type { AppDeps } from '../app-deps.js';
import { requireActor } from '../gateway.js';
import { assertSameOrigin, clearSessionCookie, sessionToken, setSessionCookie } from '../session-auth.js';

const SignInSchema = Type.Object(
  { key: Type.String({ minLength: 1, maxLength: 256, description: 'An API key. Sent in the body only, never in a URL.' }) },
  { additionalProperties: false },
);

const SessionSchema = Type.Object({
  keyId: Type.String(),
  role: Type.Union([Type.Literal('admin'), Type.Literal('member')]),
  expiresAt: Type.String({ format: 'date-time' }),
  csrfToken: Type.String({ description: 'Send it as X-CSRF-Token on every state-changing request made with the cookie' }),
});

function toSessionJson(session: Session) {
  return { keyId: session.actor.keyId, role: session.actor.role, expiresAt: session.expiresAt.toISOString(), csrfToken: session.csrfToken };
}

export function sessionRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { sessions } = deps;

  app.post<{ Body: Static<typeof SignInSchema> }>('/session', {
    schema: { body: SignInSchema },
    config: {
      doc: {
        operationId: 'signIn', summary: 'Exchange an API key for a dashboard session cookie', tag: 'sessions', auth: false,
        responses: { 201: { description: 'Signed in; the cookie is set', schema: SessionSchema, headers: ['Set-Cookie', 'Cache-Control'] } },
      },
    },
  }, async (request, reply) => {
    // A form on another site must not sign the browser in with the attacker's key.
    assertSameOrigin(deps, request);
    const session = await sessions.signIn(request.body.key);
    setSessionCookie(deps, request, reply, session.token, session.expiresAt);
    void reply.header('Cache-Control', 'no-store');
    return reply.code(201).send(toSessionJson(session));
  });

  app.get('/session', {
    config: {
      doc: {
        operationId: 'getSession', summary: 'The current dashboard session and its CSRF token', tag: 'sessions', auth: true,
        responses: { 200: { description: 'The session', schema: SessionSchema, headers: ['Cache-Control'] } },
      },
    },
  }, async (request, reply) => {
    requireActor(request);
    const token = sessionToken(request);
    const session = token === undefined ? null : await sessions.resolve(token);
    void reply.header('Cache-Control', 'no-store');
    if (session === null) throw new AppError('not_found', { detail: 'No session: this request was made with a Bearer key' });
    return toSessionJson(session);
  });

  app.delete('/session', {
    config: {
      doc: {
        operationId: 'signOut', summary: 'Sign out: the session ends on every instance', tag: 'sessions', auth: true,
        responses: { 204: { description: 'Signed out; the cookie is cleared', headers: ['Set-Cookie'] } },
      },
    },
  }, async (request, reply) => {
    requireActor(request);
    const token = sessionToken(request);
    if (token !== undefined) await sessions.signOut(token);
    clearSessionCookie(deps, request, reply);
    return reply.code(204).send();
  });
}
