/** What a short link answers right now: a pure function of the link, the clock and the query. */
import type { Link, RedirectType } from './link.js';

export type RedirectDecision =
  | { kind: 'redirect'; status: RedirectType; location: string; cacheControl: string; limited: boolean }
  | { kind: 'gone'; fallbackUrl: string | null }
  /** Password-protected: the form, until the right password is posted. */
  | { kind: 'locked' }
  | { kind: 'not_found' };

export const NO_STORE = 'private, no-store';

/** `unlocked`: the right password came with the request. */
export function decideRedirect(link: Link | null, now: number, rawQuery: string, permanentMaxAge: number, unlocked = false): RedirectDecision {
  if (link === null) return { kind: 'not_found' };
  if (isGone(link, now)) return { kind: 'gone', fallbackUrl: link.fallbackUrl };
  if (link.passwordProtected && !unlocked) return { kind: 'locked' };
  const location = link.forwardQuery && rawQuery !== '' ? appendQuery(link.url, rawQuery) : link.url;
  return {
    kind: 'redirect',
    status: link.redirectType,
    location,
    cacheControl: cacheControlFor(link, now, permanentMaxAge),
    limited: link.maxVisits !== null,
  };
}

/** Disabled, expired or used up: the link answers nothing of itself any more (redirect, preview or QR code). */
export function isGone(link: Link, now: number): boolean {
  return link.disabled || (link.expiresAt !== null && link.expiresAt.getTime() <= now) || usedUp(link);
}

/** The visit limit is reached (as far as this copy of the link knows: the store decides). */
function usedUp(link: Link): boolean {
  return link.maxVisits !== null && link.visits >= link.maxVisits;
}

/**
 * Temporary redirects are never cached, so every click reaches us and is counted.
 * Permanent ones may be cached, but never beyond the link's expiry, and not at all when
 * visits are limited: a cached redirect would outlive the limit.
 */
function cacheControlFor(link: Link, now: number, permanentMaxAge: number): string {
  // A cached redirect of a protected link would skip the password next time.
  if (link.redirectType === 302 || link.redirectType === 307 || link.maxVisits !== null || link.passwordProtected) return NO_STORE;
  let maxAge = permanentMaxAge;
  if (link.expiresAt !== null) maxAge = Math.min(maxAge, Math.floor((link.expiresAt.getTime() - now) / 1000));
  return maxAge <= 0 ? NO_STORE : `public, max-age=${maxAge}`;
}

/** Adds the request's query to the destination's own, before any fragment. */
export function appendQuery(destination: string, rawQuery: string): string {
  const hashAt = destination.indexOf('#');
  const base = hashAt === -1 ? destination : destination.slice(0, hashAt);
  const fragment = hashAt === -1 ? '' : destination.slice(hashAt);
  const separator = base.includes('?') ? (base.endsWith('?') || base.endsWith('&') ? '' : '&') : '?';
  return `${base}${separator}${rawQuery}${fragment}`;
}
