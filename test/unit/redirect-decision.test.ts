import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Link } from '../../src/links/link.js';
import { makeLink } from '../helpers/link-fixture.js';
import { appendQuery, decideRedirect, NO_STORE, type RedirectDecision } from '../../src/links/redirect-decision.js';

const NOW = Date.parse('2025-06-01T12:00:00Z');
const MAX_AGE = 3600;

function redirect(decision: RedirectDecision): Extract<RedirectDecision, { kind: 'redirect' }> {
  assert.equal(decision.kind, 'redirect', JSON.stringify(decision));
  if (decision.kind !== 'redirect') throw new Error('unreachable');
  return decision;
}

function decide(overrides: Partial<Link>, rawQuery = '', maxAge = MAX_AGE): RedirectDecision {
  return decideRedirect(makeLink(overrides), NOW, rawQuery, maxAge);
}

describe('decideRedirect: not found and gone', () => {
  test('no link: not_found', () => {
    assert.deepEqual(decideRedirect(null, NOW, 'a=1', MAX_AGE), { kind: 'not_found' });
  });

  test('disabled: gone, with or without a fallback', () => {
    assert.deepEqual(decide({ disabled: true }), { kind: 'gone', fallbackUrl: null });
    assert.deepEqual(decide({ disabled: true, fallbackUrl: 'https://fallback.example/' }), {
      kind: 'gone',
      fallbackUrl: 'https://fallback.example/',
    });
  });

  test('expired: gone from the instant of expiry; one ms before it still redirects', () => {
    assert.deepEqual(decide({ expiresAt: new Date(NOW - 1) }), { kind: 'gone', fallbackUrl: null });
    assert.deepEqual(decide({ expiresAt: new Date(NOW) }), { kind: 'gone', fallbackUrl: null });
    assert.deepEqual(decide({ expiresAt: new Date(NOW - 86_400_000), fallbackUrl: 'https://fb.example/x' }), {
      kind: 'gone',
      fallbackUrl: 'https://fb.example/x',
    });
    assert.equal(decide({ expiresAt: new Date(NOW + 1) }).kind, 'redirect');
  });

  test('a gone link never forwards the query to the fallback', () => {
    assert.deepEqual(decide({ disabled: true, fallbackUrl: 'https://fb.example/' }, 'utm=1'), {
      kind: 'gone',
      fallbackUrl: 'https://fb.example/',
    });
  });
});

describe('decideRedirect: redirects', () => {
  test('status is the link redirect type, location its URL', () => {
    for (const redirectType of [301, 302, 307, 308] as const) {
      const decision = redirect(decide({ redirectType }));
      assert.equal(decision.status, redirectType);
      assert.equal(decision.location, 'https://example.com/path');
    }
  });

  test('limited only when the link has maxVisits', () => {
    assert.equal(redirect(decide({})).limited, false);
    assert.equal(redirect(decide({ maxVisits: 3 })).limited, true);
  });
});

describe('decideRedirect: query forwarding', () => {
  const cases: [destination: string, rawQuery: string, expected: string][] = [
    ['https://example.com/path', 'a=1', 'https://example.com/path?a=1'],
    ['https://example.com/path', 'a=1&b=2', 'https://example.com/path?a=1&b=2'],
    ['https://example.com/path?x=9', 'a=1', 'https://example.com/path?x=9&a=1'],
    ['https://example.com/path?', 'a=1', 'https://example.com/path?a=1'],
    ['https://example.com/path?x=9&', 'a=1', 'https://example.com/path?x=9&a=1'],
    ['https://example.com/path#top', 'a=1', 'https://example.com/path?a=1#top'],
    ['https://example.com/path?x=9#top', 'a=1', 'https://example.com/path?x=9&a=1#top'],
    ['https://example.com/path?#top', 'a=1', 'https://example.com/path?a=1#top'],
    ['https://example.com/path#frag?not=query', 'a=1', 'https://example.com/path?a=1#frag?not=query'],
    ['https://example.com/', 'q=%20x&y', 'https://example.com/?q=%20x&y'],
  ];
  for (const [destination, rawQuery, expected] of cases) {
    test(`${destination} + ${rawQuery}`, () => {
      assert.equal(appendQuery(destination, rawQuery), expected);
      assert.equal(redirect(decide({ url: destination }, rawQuery)).location, expected);
    });
  }

  test('an empty query leaves the destination as it is', () => {
    assert.equal(redirect(decide({ url: 'https://example.com/p?x=1#f' }, '')).location, 'https://example.com/p?x=1#f');
  });

  test('forwardQuery false ignores the request query', () => {
    assert.equal(redirect(decide({ forwardQuery: false, url: 'https://example.com/p?x=1' }, 'a=1')).location, 'https://example.com/p?x=1');
  });
});

describe('decideRedirect: Cache-Control', () => {
  test('temporary redirects are never cached', () => {
    assert.equal(NO_STORE, 'private, no-store');
    assert.equal(redirect(decide({ redirectType: 302 })).cacheControl, NO_STORE);
    assert.equal(redirect(decide({ redirectType: 307 })).cacheControl, NO_STORE);
  });

  test('permanent redirects are cached for the configured max-age', () => {
    assert.equal(redirect(decide({ redirectType: 301 })).cacheControl, 'public, max-age=3600');
    assert.equal(redirect(decide({ redirectType: 308 }, '', 120)).cacheControl, 'public, max-age=120');
  });

  test('a max-age of 0 means no-store for permanent redirects too', () => {
    assert.equal(redirect(decide({ redirectType: 301 }, '', 0)).cacheControl, NO_STORE);
  });

  test('never cached beyond the link expiry', () => {
    const soon = new Date(NOW + 100_900);
    assert.equal(redirect(decide({ redirectType: 301, expiresAt: soon })).cacheControl, 'public, max-age=100');
    const later = new Date(NOW + 7_200_000);
    assert.equal(redirect(decide({ redirectType: 308, expiresAt: later })).cacheControl, 'public, max-age=3600');
  });

  test('less than a second before expiry: no-store', () => {
    const decision = redirect(decide({ redirectType: 301, expiresAt: new Date(NOW + 999) }));
    assert.equal(decision.cacheControl, NO_STORE);
  });

  // A cached permanent redirect never reaches the server again, so a visit limit could
  // not hold (and a shared cache would serve it to everyone): limited links are no-store.
  test('a visit-limited permanent redirect is never cached', () => {
    for (const redirectType of [301, 308] as const) {
      const decision = redirect(decide({ redirectType, maxVisits: 10 }));
      assert.equal(decision.limited, true);
      assert.equal(decision.cacheControl, NO_STORE, `${redirectType} with maxVisits`);
    }
  });

  test('a temporary redirect with an expiry is still no-store', () => {
    assert.equal(redirect(decide({ redirectType: 302, expiresAt: new Date(NOW + 7_200_000) })).cacheControl, NO_STORE);
  });
});

describe('decideRedirect: used up and password-protected', () => {
  test('a link whose visits reached maxVisits is gone (its fallback kept)', () => {
    assert.deepEqual(decide({ maxVisits: 2, visits: 2, fallbackUrl: 'https://example.org/fb' }), { kind: 'gone', fallbackUrl: 'https://example.org/fb' });
    assert.equal(decide({ maxVisits: 2, visits: 1 }).kind, 'redirect');
  });

  test('a protected link is locked until unlocked, then redirects uncached; gone wins over locked', () => {
    assert.deepEqual(decide({ passwordProtected: true, redirectType: 301 }), { kind: 'locked' });
    const unlocked = redirect(decideRedirect(makeLink({ passwordProtected: true, redirectType: 301 }), NOW, '', MAX_AGE, true));
    assert.equal(unlocked.cacheControl, NO_STORE);
    assert.equal(decide({ passwordProtected: true, disabled: true }).kind, 'gone');
  });
});
