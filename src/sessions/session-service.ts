/**
 * Dashboard sessions: an API key is exchanged once for a random token that lives in an
 * HttpOnly cookie, so page scripts never hold the key. The token is stored only as its
 * hash; the CSRF token is derived from it, so it is bound to the session and needs no row.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { AppError } from '../shared/errors.js';
import type { KeyService } from '../keys/key-service.js';
import type { Actor } from '../links/link.js';
import type { SessionRepository } from './session-repository.js';

export const SESSION_COOKIE = 'shunt_session';
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export interface Session {
  actor: Actor;
  expiresAt: Date;
  csrfToken: string;
}

export interface NewSession extends Session {
  /** Goes into the cookie and nowhere else. */
  token: string;
}

function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export function csrfTokenFor(token: string): string {
  return createHash('sha256').update(`csrf\0${token}`, 'utf8').digest('base64url');
}

export function csrfMatches(token: string, presented: string): boolean {
  const expected = Buffer.from(csrfTokenFor(token));
  const given = Buffer.from(presented);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export class SessionService {
  constructor(
    private readonly sessions: SessionRepository,
    private readonly keys: KeyService,
    private readonly ttlMs: number,
    private readonly onBackgroundError: (error: unknown) => void,
  ) {}

  async signIn(secret: string): Promise<NewSession> {
    const actor = await this.keys.authenticate(secret);
    if (actor === null) throw new AppError('unauthorized', { detail: 'The API key is not valid or has been revoked' });
    const token = randomBytes(32).toString('base64url');
    const expiresAt = new Date(Date.now() + this.ttlMs);
    await this.sessions.insert(hashToken(token), actor.keyId, expiresAt);
    // Sign-ins are rare: a good moment to reclaim the rows of sessions that ran out.
    this.sessions.deleteExpired().catch(this.onBackgroundError);
    return { token, actor, expiresAt, csrfToken: csrfTokenFor(token) };
  }

  /** The session behind a cookie value, or null when it is malformed, expired, signed out or its key revoked. */
  async resolve(token: string): Promise<Session | null> {
    if (!TOKEN_PATTERN.test(token)) return null;
    const stored = await this.sessions.findLive(hashToken(token));
    if (stored === null) return null;
    return { actor: { keyId: stored.keyId, role: stored.role }, expiresAt: stored.expiresAt, csrfToken: csrfTokenFor(token) };
  }

  async signOut(token: string): Promise<void> {
    if (TOKEN_PATTERN.test(token)) await this.sessions.delete(hashToken(token));
  }
}

/** The value of one cookie in a Cookie header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const index = part.indexOf('=');
    if (index > 0 && part.slice(0, index).trim() === name) return part.slice(index + 1).trim();
  }
  return undefined;
}
