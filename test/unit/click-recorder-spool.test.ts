/**
 * The in-process click queue with a real disk spool in a temporary directory and a store
 * that can be switched off: an outage longer than the memory bound loses nothing, the
 * backlog goes in oldest first when the store returns, every click is stored exactly once,
 * and what a shutdown during the outage leaves on disk is stored by the next start.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, describe, test } from 'node:test';
import { BatchingClickRecorder } from '../../src/clicks/batching-click-recorder.js';
import type { ClickEvent, IdentifiedClickEvent } from '../../src/clicks/click-event.js';
import { ClickSpool } from '../../src/pipeline/click-spool.js';

const root = mkdtempSync(join(tmpdir(), 'shunt-queue-spool-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const LINK = '42';

function click(n: number): ClickEvent {
  return { code: `c${n}`, linkId: LINK, at: new Date(1_700_000_000_000 + n), method: 'GET', referrer: null, userAgent: null, ip: null };
}

/** A store keyed by event id, as the click writer is; `down` makes every write fail. */
class Store {
  readonly rows = new Map<string, IdentifiedClickEvent>();
  readonly order: string[] = [];
  writes = 0;
  down = false;
  /** Commits the next write, then fails it, as a connection lost before the commit's answer. */
  loseNextAnswer = false;

  async write(events: readonly IdentifiedClickEvent[]): Promise<void> {
    await Promise.resolve();
    this.writes += 1;
    if (this.down) throw new Error('connect ECONNREFUSED');
    for (const event of events) {
      if (this.rows.has(event.id)) continue;
      this.rows.set(event.id, event);
      this.order.push(event.code);
    }
    if (this.loseNextAnswer) {
      this.loseNextAnswer = false;
      throw new Error('Connection terminated unexpectedly');
    }
  }
}

const open: { recorder: BatchingClickRecorder; spool: ClickSpool }[] = [];
afterEach(async () => {
  for (const { recorder, spool } of open.splice(0)) {
    await recorder.close();
    spool.close();
  }
});

function queue(store: Store, dir: string, maxBuffered = 200) {
  const spool = ClickSpool.open({ dir, maxBytes: 64 * 1024 * 1024, syncIntervalMs: 50 });
  const dropped: number[] = [];
  const recorder = new BatchingClickRecorder({
    write: (events) => store.write(events),
    flushIntervalMs: 10,
    batchSize: 50,
    maxBuffered,
    spool,
    retryDelayMs: 10,
    maxRetryDelayMs: 40,
    onError: () => {},
    onDropped: (events) => dropped.push(events),
  });
  const handle = { recorder, spool };
  open.push(handle);
  return { recorder, spool, dropped, close: async () => {
    open.splice(open.indexOf(handle), 1);
    await recorder.close();
    spool.close();
  } };
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await sleep(5);
  }
}

const codes = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `c${from + i}`);

describe('BatchingClickRecorder with a spool', () => {
  test('an outage longer than the memory bound: the spool takes the clicks, and they are stored once, oldest first', async () => {
    const store = new Store();
    const { recorder, spool, dropped } = queue(store, join(root, `dir-${dirs++}`));
    recorder.record(click(0));
    await recorder.flush();
    store.down = true;
    for (let n = 1; n <= 1000; n += 1) {
      recorder.record(click(n));
      if (n % 100 === 0) await sleep(15);
    }
    await waitFor(() => spool.stats.events === 1000, 'every click of the outage is in the spool');
    assert.ok(recorder.buffered <= 200, `memory stays bounded (${recorder.buffered} buffered)`);
    assert.equal(recorder.storeReachable, false);
    const attempts = store.writes;
    store.down = false;
    await waitFor(() => store.rows.size === 1001, 'the backlog is stored once the store is back');
    await recorder.flush();
    assert.deepEqual(dropped, [], 'nothing dropped');
    assert.deepEqual(store.order, codes(0, 1001), 'stored oldest first, each once');
    assert.equal(spool.stats.events, 0);
    assert.equal(spool.stats.bytes, 0, 'the spool file is emptied once replayed');
    assert.equal(recorder.storeReachable, true);
    assert.ok(attempts < 1000, `the outage costs write attempts per retry, not per click (${attempts})`);
  });

  test('a batch committed but not acknowledged is written again with the same ids: stored once', async () => {
    const store = new Store();
    const { recorder, dropped } = queue(store, join(root, `dir-${dirs++}`));
    store.loseNextAnswer = true;
    for (let n = 0; n < 120; n += 1) recorder.record(click(n));
    await waitFor(() => store.rows.size === 120 && recorder.storeReachable && recorder.buffered === 0, 'all stored');
    await recorder.flush();
    assert.deepEqual(store.order, codes(0, 120));
    assert.deepEqual(dropped, []);
  });

  test('clicks past the bound while the store is slow go through the spool, in order', async () => {
    const store = new Store();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = { write: async (events: readonly IdentifiedClickEvent[]) => { await gate; await store.write(events); } };
    const dir = join(root, `dir-${dirs++}`);
    const spool = ClickSpool.open({ dir, maxBytes: 64 * 1024 * 1024 });
    const recorder = new BatchingClickRecorder({ write: (events) => slow.write(events), flushIntervalMs: 10, batchSize: 50, maxBuffered: 100, spool, onError: () => {}, onDropped: () => assert.fail('nothing is dropped') });
    open.push({ recorder, spool });
    for (let n = 0; n < 600; n += 1) recorder.record(click(n));
    await waitFor(() => spool.stats.events >= 400, 'the excess is spooled while a write is out');
    assert.ok(recorder.buffered <= 100);
    release();
    await waitFor(() => store.rows.size === 600, 'all stored');
    assert.deepEqual(store.order, codes(0, 600));
  });

  test('a shutdown during the outage leaves the clicks in the spool; the next start stores them', async () => {
    const store = new Store();
    const dir = join(root, `dir-${dirs++}`);
    const first = queue(store, dir);
    store.down = true;
    for (let n = 0; n < 500; n += 1) first.recorder.record(click(n));
    await sleep(30);
    for (let n = 500; n < 530; n += 1) first.recorder.record(click(n));
    // Some still in memory at close: they go to the spool too.
    await first.close();
    assert.equal(store.rows.size, 0);
    store.down = false;
    const second = queue(store, dir);
    assert.equal(second.spool.stats.events, 530, 'the next start finds them');
    await waitFor(() => store.rows.size === 530, 'the next start stores them');
    await second.recorder.flush();
    assert.deepEqual(store.order, codes(0, 530));
    assert.equal(second.spool.stats.events, 0);
    assert.deepEqual([...first.dropped, ...second.dropped], []);
  });
});
