import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  MAX_TAGS, MAX_TAG_LENGTH, MAX_TITLE_LENGTH, RESERVED_ALIASES,
  aliasProblem, normaliseTags, titleProblem,
} from '../../src/links/link-rules.js';
import { isCode } from '../../src/links/code-shape.js';

describe('aliasProblem', () => {
  test('letters, digits, _ and - from 1 to 64 characters are accepted', () => {
    for (const alias of ['a', 'Z', '0', 'my-link', 'My_Link_2025', 'x'.repeat(64), 'apis', 'admin2', 'my-api']) {
      assert.equal(aliasProblem(alias), null, alias);
      assert.ok(isCode(alias));
    }
  });

  test('anything else is alias_invalid', () => {
    const bad = ['', 'x'.repeat(65), 'a b', 'a/b', 'a.b', 'a?b', 'a#b', 'a%20b', 'café', 'a\nb', 'emoji😀', 'a+b', '../x'];
    for (const alias of bad) {
      const problem = aliasProblem(alias);
      assert.equal(problem?.code, 'alias_invalid', JSON.stringify(alias));
      assert.match(problem?.message ?? '', /1-64 characters/);
    }
  });

  test('the pattern is anchored: no trailing newline sneaks through', () => {
    assert.equal(aliasProblem('abc\n')?.code, 'alias_invalid');
  });

  test('reserved words are refused whatever their case', () => {
    for (const alias of ['api', 'API', 'Api', 'admin', 'ADMIN', 'Admin', 'healthz', 'HealthZ', 'readyz', 'metrics', 'METRICS', 'docs', 'openapi', 'well-known', '_', '-', 'login', 'Static']) {
      const problem = aliasProblem(alias);
      assert.equal(problem?.code, 'alias_reserved', alias);
      assert.ok(problem?.message.includes(alias), problem?.message);
    }
  });

  test('every reserved word that fits the pattern is refused as reserved', () => {
    for (const word of RESERVED_ALIASES) {
      const expected = isCode(word) ? 'alias_reserved' : 'alias_invalid';
      assert.equal(aliasProblem(word)?.code, expected, word);
      assert.equal(aliasProblem(word.toUpperCase())?.code, expected, word.toUpperCase());
    }
  });

  test('the routes Shunt serves at the root are all reserved', () => {
    for (const route of ['api', 'healthz', 'readyz', 'metrics', 'docs', 'openapi']) assert.ok(RESERVED_ALIASES.has(route), route);
  });
});

describe('normaliseTags', () => {
  test('trims and drops duplicates, keeping first-seen order', () => {
    assert.deepEqual(normaliseTags([' news ', 'news', 'Sport', 'sport', '  tech']), {
      tags: ['news', 'Sport', 'sport', 'tech'],
      errors: [],
    });
  });

  test('no tags is fine', () => {
    assert.deepEqual(normaliseTags([]), { tags: [], errors: [] });
  });

  test(`at most ${MAX_TAGS} distinct tags (duplicates do not count)`, () => {
    const twenty = Array.from({ length: MAX_TAGS }, (_, i) => `t${i}`);
    assert.deepEqual(normaliseTags([...twenty, ...twenty, ' t0 ']).errors, []);
    const result = normaliseTags([...twenty, 'one-more']);
    assert.deepEqual(result.errors, [{ field: 'tags', message: `at most ${MAX_TAGS} tags` }]);
  });

  test('empty (after trimming), over-long and control-character tags are reported by index', () => {
    const long = 'x'.repeat(MAX_TAG_LENGTH + 1);
    const result = normaliseTags(['ok', '   ', long, 'bad\u0007bell', 'x'.repeat(MAX_TAG_LENGTH)]);
    assert.deepEqual(result.errors, [
      { field: 'tags[1]', message: `each tag must be 1-${MAX_TAG_LENGTH} characters` },
      { field: 'tags[2]', message: `each tag must be 1-${MAX_TAG_LENGTH} characters` },
      { field: 'tags[3]', message: 'tags must not contain control characters' },
    ]);
  });

  test('the field name is used in error paths', () => {
    assert.deepEqual(normaliseTags([''], 'links[3].tags').errors, [
      { field: 'links[3].tags[0]', message: `each tag must be 1-${MAX_TAG_LENGTH} characters` },
    ]);
  });

  test('unicode tags are fine', () => {
    assert.deepEqual(normaliseTags(['café', '日本', 'emoji😀']).errors, []);
  });
});

describe('titleProblem', () => {
  test(`up to ${MAX_TITLE_LENGTH} characters, unicode allowed`, () => {
    assert.equal(titleProblem(''), null);
    assert.equal(titleProblem('Launch — été 2025 🚀'), null);
    assert.equal(titleProblem('x'.repeat(MAX_TITLE_LENGTH)), null);
    assert.equal(titleProblem('x'.repeat(MAX_TITLE_LENGTH + 1)), `title must be at most ${MAX_TITLE_LENGTH} characters`);
  });

  test('control characters are refused', () => {
    for (const title of ['line\nbreak', 'tab\there', 'nul\u0000', 'del\u007f', 'c1\u0085']) {
      assert.equal(titleProblem(title), 'title must not contain control characters', JSON.stringify(title));
    }
  });
});
