import type { Link } from '../../src/links/link.js';

/** A complete, plain link with defaults for every field; override what a test is about. */
export function makeLink(overrides: Partial<Link> = {}): Link {
  const at = new Date('2025-01-01T00:00:00Z');
  return {
    id: '1',
    code: 'abc1234',
    customAlias: false,
    url: 'https://example.com/path',
    title: null,
    tags: [],
    ownerKeyId: null,
    expiresAt: null,
    maxVisits: null,
    visits: 0,
    redirectType: 302,
    forwardQuery: true,
    fallbackUrl: null,
    disabled: false,
    passwordProtected: false,
    version: 1,
    createdAt: at,
    updatedAt: at,
    ...overrides,
  };
}
