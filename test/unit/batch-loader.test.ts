import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Link } from '../../src/links/link.js';
import { BatchLoader } from '../../src/shared/batch-loader.js';
import { makeLink } from '../helpers/link-fixture.js';

/** A store of links by code (null for an unknown one) that records each query's codes and can hold its answers. */
function store(codes: readonly string[]) {
  const links = new Map(codes.map((code) => [code, makeLink({ id: code, code, url: `https://example.com/${code}` })]));
  const queries: string[][] = [];
  const held: (() => void)[] = [];
  let hold = false;
  let fail: Error | null = null;
  const loadMany = (asked: readonly string[]): Promise<(Link | null)[]> => {
    queries.push([...asked]);
    const answer = (): (Link | null)[] => {
      if (fail !== null) throw fail;
      return asked.map((code) => links.get(code) ?? null);
    };
    if (!hold) return Promise.resolve().then(answer);
    return new Promise((resolve) => held.push(() => resolve(Promise.resolve().then(answer))));
  };
  return {
    loadMany,
    queries,
    held,
    holdAnswers: () => (hold = true),
    failWith: (error: Error) => (fail = error),
  };
}

describe('BatchLoader', () => {
  test('codes asked for in one turn go out as one query; each caller gets its own link or null', async () => {
    const db = store(['a', 'b', 'c']);
    const loader = new BatchLoader<Link | null>({ loadMany: db.loadMany, maxInFlight: 4 });
    const answers = await Promise.all(['a', 'b', 'zz', 'c'].map((code) => loader.load(code)));
    assert.deepEqual(
      answers.map((link) => link?.code ?? null),
      ['a', 'b', null, 'c'],
    );
    assert.deepEqual(db.queries, [['a', 'b', 'zz', 'c']]);
  });

  test('a code asked for twice in a turn is queried once and answers both callers', async () => {
    const db = store(['a']);
    const loader = new BatchLoader<Link | null>({ loadMany: db.loadMany, maxInFlight: 4 });
    const [first, second] = await Promise.all([loader.load('a'), loader.load('a')]);
    assert.equal(first?.code, 'a');
    assert.equal(second, first);
    assert.deepEqual(db.queries, [['a']]);
  });

  test('codes asked for while every query slot is busy wait and join one next query', async () => {
    const db = store(['a', 'b', 'c', 'd']);
    db.holdAnswers();
    const loader = new BatchLoader<Link | null>({ loadMany: db.loadMany, maxInFlight: 1 });
    const first = loader.load('a');
    await nextTurn();
    const later = [loader.load('b'), loader.load('c')];
    await nextTurn();
    const last = loader.load('d');
    await nextTurn();
    assert.deepEqual(db.queries, [['a']]);
    db.held.shift()?.();
    assert.equal((await first)?.code, 'a');
    await nextTurn();
    assert.deepEqual(db.queries, [['a'], ['b', 'c', 'd']]);
    db.held.shift()?.();
    assert.deepEqual(
      (await Promise.all([...later, last])).map((link) => link?.code),
      ['b', 'c', 'd'],
    );
  });

  test('a batch beyond maxBatch is split into queries of at most maxBatch codes', async () => {
    const codes = Array.from({ length: 7 }, (_, i) => `c${i}`);
    const db = store(codes);
    const loader = new BatchLoader<Link | null>({ loadMany: db.loadMany, maxInFlight: 10, maxBatch: 3 });
    const answers = await Promise.all(codes.map((code) => loader.load(code)));
    assert.deepEqual(
      answers.map((link) => link?.code),
      codes,
    );
    assert.deepEqual(
      db.queries.map((query) => query.length),
      [3, 3, 1],
    );
  });

  test('a failed query rejects every caller in it, and the next query runs', async () => {
    const db = store(['a']);
    const loader = new BatchLoader<Link | null>({ loadMany: db.loadMany, maxInFlight: 1 });
    const failure = new Error('connection reset');
    db.failWith(failure);
    const results = await Promise.allSettled([loader.load('a'), loader.load('b')]);
    assert.deepEqual(
      results.map((result) => (result.status === 'rejected' ? (result.reason as unknown) : 'ok')),
      [failure, failure],
    );
    assert.equal(db.queries.length, 1);
  });

  test('an answer that does not match the keys one for one rejects every caller instead of misattributing', async () => {
    const loader = new BatchLoader<string>({ loadMany: () => Promise.resolve(['only one']), maxInFlight: 1 });
    const results = await Promise.allSettled([loader.load('a'), loader.load('b')]);
    assert.deepEqual(
      results.map((result) => result.status),
      ['rejected', 'rejected'],
    );
  });
});
