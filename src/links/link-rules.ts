/** Rules on a link's own fields (aliases, tags, titles) that need no storage. */
import type { FieldError } from '../shared/errors.js';
import { isCode } from './code-shape.js';

export const MAX_TAGS = 20;
export const MAX_TAG_LENGTH = 64;
export const MAX_TITLE_LENGTH = 512;

/**
 * Words that would shadow a route or confuse a reader. Compared case-insensitively, so
 * `API` and `Admin` are refused too.
 */
export const RESERVED_ALIASES: ReadonlySet<string> = new Set([
  'api', 'admin', 'health', 'healthz', 'ready', 'readyz', 'live', 'livez', 'metrics', 'status',
  'static', 'assets', 'dashboard', 'app', 'login', 'logout', 'auth', 'docs', 'openapi',
  'favicon.ico', 'robots.txt', 'sitemap.xml', 'well-known', '_', '-',
]);

export function aliasProblem(alias: string): { code: 'alias_invalid' | 'alias_reserved'; message: string } | null {
  if (!isCode(alias)) {
    return { code: 'alias_invalid', message: 'alias must be 1-64 characters of A-Z, a-z, 0-9, _ and -' };
  }
  if (RESERVED_ALIASES.has(alias.toLowerCase())) {
    return { code: 'alias_reserved', message: `alias "${alias}" is reserved` };
  }
  return null;
}

/** Trims, drops duplicates and checks the count and lengths. */
export function normaliseTags(tags: readonly string[], field = 'tags'): { tags: string[]; errors: FieldError[] } {
  const errors: FieldError[] = [];
  const unique = [...new Set(tags.map((tag) => tag.trim()))];
  if (unique.length > MAX_TAGS) errors.push({ field, message: `at most ${MAX_TAGS} tags` });
  unique.forEach((tag, index) => {
    if (tag.length === 0 || tag.length > MAX_TAG_LENGTH) {
      errors.push({ field: `${field}[${index}]`, message: `each tag must be 1-${MAX_TAG_LENGTH} characters` });
    } else if (/\p{Cc}/u.test(tag)) {
      errors.push({ field: `${field}[${index}]`, message: 'tags must not contain control characters' });
    }
  });
  return { tags: unique, errors };
}

export function titleProblem(title: string): string | null {
  if (title.length > MAX_TITLE_LENGTH) return `title must be at most ${MAX_TITLE_LENGTH} characters`;
  if (/\p{Cc}/u.test(title)) return 'title must not contain control characters';
  return null;
}
