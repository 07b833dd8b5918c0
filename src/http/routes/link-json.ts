import type { Link } from '../../links/link.js';
import type { LinkJson } from '../schemas.js';

export function shortUrlFor(baseUrl: URL, code: string): string {
  const base = baseUrl.href.endsWith('/') ? baseUrl.href : `${baseUrl.href}/`;
  return `${base}${code}`;
}

export function toLinkJson(link: Link, baseUrl: URL): LinkJson {
  return {
    code: link.code,
    shortUrl: shortUrlFor(baseUrl, link.code),
    url: link.url,
    alias: link.customAlias ? link.code : null,
    title: link.title,
    tags: link.tags,
    expiresAt: link.expiresAt?.toISOString() ?? null,
    maxVisits: link.maxVisits,
    visits: link.visits,
    redirectType: link.redirectType,
    forwardQuery: link.forwardQuery,
    fallbackUrl: link.fallbackUrl,
    disabled: link.disabled,
    passwordProtected: link.passwordProtected,
    createdAt: link.createdAt.toISOString(),
    updatedAt: link.updatedAt.toISOString(),
  };
}

/** Strong ETag: the row id and its version, so a re-created alias never matches an old tag. */
export function etagFor(link: Link): string {
  return `"${link.id}-${link.version}"`;
}

/**
 * The version an If-Match header allows, `null` for `*`, or `false` when it cannot match
 * this link (a weak or foreign tag): the caller answers 412.
 */
/** The entity tags listed in an If-Match or If-None-Match header. */
function listedTags(header: string): string[] {
  return header.split(',').map((tag) => tag.trim());
}

export function versionFromIfMatch(header: string, link: Link): number | null | false {
  const tags = listedTags(header);
  if (tags.includes('*')) return null;
  // Strong comparison (RFC 9110 13.1.1): any listed tag may be the current one.
  return tags.includes(etagFor(link)) ? link.version : false;
}

/** Weak comparison (RFC 9110 13.1.2): proxies that compress may turn tags weak. */
export function ifNoneMatchHits(header: string, link: Link): boolean {
  const current = etagFor(link);
  return listedTags(header).some((tag) => tag === '*' || tag.replace(/^W\//, '') === current);
}
