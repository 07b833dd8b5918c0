import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeCachedLink, encodeCachedLink } from '../../src/cache/link-codec.js';
import { makeLink } from '../helpers/link-fixture.js';

describe('link codec for the shared cache', () => {
  test('a link survives the round trip, dates included', () => {
    const link = makeLink({ code: 'abc', expiresAt: new Date('2030-01-02T03:04:05.678Z'), tags: ['a', 'b'], maxVisits: 5 });
    const back = decodeCachedLink(encodeCachedLink(link));
    assert.deepEqual(back, link);
    assert.ok(back?.createdAt instanceof Date);
  });

  test('a null expiry stays null, and a negative entry stays negative', () => {
    const link = makeLink({ code: 'n', expiresAt: null });
    assert.equal(decodeCachedLink(encodeCachedLink(link))?.expiresAt, null);
    assert.equal(decodeCachedLink(encodeCachedLink(null)), null);
  });
});
