import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Database, Queryable } from '../../src/storage/database.js';
import { ReplicaRouter } from '../../src/storage/replica-router.js';

/** A store that answers the WAL questions from `state` and names itself for any other query. */
function fakeStore(name: string, state: { lsn: string | null; fail?: boolean }) {
  const queries: string[] = [];
  const db = {
    kind: 'postgres',
    query: (text: string) => {
      queries.push(text);
      if (state.fail === true) return Promise.reject(new Error(`${name} down`));
      if (text.includes('pg_current_wal_insert_lsn') || text.includes('pg_last_wal_replay_lsn')) {
        return Promise.resolve({ rows: [{ lsn: state.lsn }] });
      }
      return Promise.resolve({ rows: [{ from: name }] });
    },
  } as unknown as Database;
  return { db, queries, state };
}

const whoAnswers = (from: Queryable): Promise<string> =>
  from.query<{ from: string }>('SELECT who').then((result) => result.rows[0]?.from ?? '?');

async function setup(primaryLsn: string, replicaLsns: string[]) {
  const primary = fakeStore('primary', { lsn: primaryLsn });
  const replicas = replicaLsns.map((lsn, index) => fakeStore(`replica${index}`, { lsn }));
  const clock = { now: 0 };
  const router = await ReplicaRouter.create(primary.db, replicas.map((r) => r.db), { retryMs: 1000, now: () => clock.now });
  return { primary, replicas, router, clock };
}

describe('ReplicaRouter', () => {
  test('unfenced reads go round robin over the replicas once they passed the start floor', async () => {
    const { router } = await setup('0/100', ['0/200', '0/200']);
    const answers = [];
    for (let i = 0; i < 4; i += 1) answers.push(await router.read('abc', whoAnswers));
    assert.deepEqual(answers, ['replica0', 'replica1', 'replica0', 'replica1']);
  });

  test('a replica behind the start floor is not trusted', async () => {
    const { router } = await setup('0/300', ['0/200']);
    assert.equal(await router.read('abc', whoAnswers), 'primary');
  });

  test('a fenced code is read from the primary until the replica has replayed past the fence', async () => {
    const { router, replicas } = await setup('0/100', ['0/100']);
    router.noteWrite('abc', '0/500');
    assert.equal(await router.read('abc', whoAnswers), 'primary');
    assert.equal(await router.read('other', whoAnswers), 'replica0', 'other codes are not held back');
    replicas[0]!.state.lsn = '0/500';
    assert.equal(await router.read('abc', whoAnswers), 'replica0');
  });

  test('an older fence never lowers a newer one', async () => {
    const { router, replicas } = await setup('0/100', ['0/300']);
    router.noteWrite('abc', '0/400');
    router.noteWrite('abc', '0/200');
    assert.equal(await router.read('abc', whoAnswers), 'primary');
    replicas[0]!.state.lsn = '0/400';
    assert.equal(await router.read('abc', whoAnswers), 'replica0');
  });

  test('evicted fences raise the floor for every code', async () => {
    const primary = fakeStore('primary', { lsn: '0/1' });
    const replica = fakeStore('replica0', { lsn: '0/10' });
    const router = await ReplicaRouter.create(primary.db, [replica.db], { maxFences: 1 });
    router.noteWrite('a', '0/50');
    router.noteWrite('b', '0/60');
    assert.equal(await router.read('zzz', whoAnswers), 'primary', 'the evicted fence of a now guards everything');
  });

  test('a failing replica is rested and the primary answers, then it is tried again', async () => {
    const { router, replicas, clock } = await setup('0/1', ['0/10']);
    replicas[0]!.state.fail = true;
    assert.equal(await router.read('abc', whoAnswers), 'primary');
    replicas[0]!.state.fail = false;
    assert.equal(await router.read('abc', whoAnswers), 'primary', 'still resting');
    clock.now = 1000;
    assert.equal(await router.read('abc', whoAnswers), 'replica0');
  });

  test('an answer the caller does not trust is asked of the primary', async () => {
    const { router } = await setup('0/1', ['0/10']);
    assert.equal(await router.read('abc', whoAnswers, (answer) => answer !== 'replica0'), 'primary');
  });
});
