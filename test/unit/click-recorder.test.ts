import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, test } from 'node:test';
import { BatchingClickRecorder, type BatchingClickRecorderOptions } from '../../src/clicks/batching-click-recorder.js';
import type { ClickEvent } from '../../src/clicks/click-event.js';

function click(n: number): ClickEvent {
  return { code: `c${n}`, at: new Date(1_700_000_000_000 + n), method: 'GET', referrer: null, userAgent: null, ip: null };
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A harness around the recorder: what was written, what failed, what was dropped. */
function harness(options: Partial<BatchingClickRecorderOptions> & { writeImpl?: (events: readonly ClickEvent[]) => Promise<void> } = {}) {
  const written: ClickEvent[] = [];
  const batches: number[] = [];
  const errors: { error: unknown; events: number }[] = [];
  const dropped: number[] = [];
  const writeImpl = options.writeImpl ?? (() => Promise.resolve());
  const recorder = new BatchingClickRecorder({
    write: async (events) => {
      // Copy: the recorder must not depend on the writer keeping its array intact.
      const copy = [...events];
      await writeImpl(copy);
      written.push(...copy);
      batches.push(copy.length);
    },
    flushIntervalMs: options.flushIntervalMs ?? 60_000,
    batchSize: options.batchSize ?? 100,
    maxBuffered: options.maxBuffered ?? 10_000,
    ...(options.isPermanent === undefined ? {} : { isPermanent: options.isPermanent }),
    ...(options.retryDelayMs === undefined ? {} : { retryDelayMs: options.retryDelayMs }),
    ...(options.maxRetryDelayMs === undefined ? {} : { maxRetryDelayMs: options.maxRetryDelayMs }),
    ...(options.now === undefined ? {} : { now: options.now }),
    onError: (error, events) => errors.push({ error, events }),
    onDropped: (events) => dropped.push(events),
  });
  recorders.push(recorder);
  const codes = (): string[] => written.map((event) => event.code);
  return { recorder, written, batches, errors, dropped, codes };
}

const recorders: BatchingClickRecorder[] = [];
afterEach(async () => {
  for (const recorder of recorders.splice(0)) await recorder.close();
});

function range(from: number, to: number): string[] {
  return Array.from({ length: to - from + 1 }, (_, i) => `c${from + i}`);
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<number> {
  const started = performance.now();
  while (!condition()) {
    if (performance.now() - started > timeoutMs) assert.fail(`condition not met within ${timeoutMs} ms`);
    await sleep(2);
  }
  return performance.now() - started;
}

describe('BatchingClickRecorder: when it writes', () => {
  test('record() never writes synchronously below the batch size', () => {
    const h = harness({ batchSize: 10 });
    for (let i = 1; i <= 9; i += 1) h.recorder.record(click(i));
    assert.equal(h.recorder.buffered, 9);
    assert.deepEqual(h.written, []);
  });

  test('flushes on the timer, within flushIntervalMs', async () => {
    const h = harness({ flushIntervalMs: 40, batchSize: 1000 });
    h.recorder.record(click(1));
    h.recorder.record(click(2));
    const elapsed = await waitFor(() => h.written.length === 2, 400);
    assert.ok(elapsed < 40 * 3, `flushed after ${elapsed.toFixed(0)} ms`);
    assert.deepEqual(h.codes(), ['c1', 'c2']);
    assert.equal(h.recorder.buffered, 0);
    // Nothing new: further ticks write nothing.
    await sleep(100);
    assert.deepEqual(h.batches, [2]);
  });

  test('flushes as soon as a batch is full, without waiting for the timer', async () => {
    const h = harness({ flushIntervalMs: 60_000, batchSize: 5 });
    for (let i = 1; i <= 5; i += 1) h.recorder.record(click(i));
    await waitFor(() => h.written.length === 5, 200);
    assert.deepEqual(h.batches, [5]);
    assert.deepEqual(h.codes(), range(1, 5));
  });

  test('writes in batches of at most batchSize, in order', async () => {
    const h = harness({ batchSize: 3 });
    for (let i = 1; i <= 10; i += 1) h.recorder.record(click(i));
    await h.recorder.flush();
    assert.ok(h.batches.every((size) => size <= 3), `batches ${h.batches.join(',')}`);
    assert.deepEqual(h.codes(), range(1, 10));
  });

  test('close() writes everything left, then stops the timer', async () => {
    const h = harness({ flushIntervalMs: 60_000, batchSize: 4 });
    for (let i = 1; i <= 10; i += 1) h.recorder.record(click(i));
    await h.recorder.close();
    assert.deepEqual(h.codes(), range(1, 10));
    assert.equal(h.recorder.buffered, 0);
    await h.recorder.close();
    assert.equal(h.written.length, 10, 'a second close writes nothing twice');
  });

  test('close() waits for a write in progress and writes what came in meanwhile', async () => {
    const gate = deferred();
    let first = true;
    const h = harness({
      batchSize: 2,
      writeImpl: () => {
        if (!first) return Promise.resolve();
        first = false;
        return gate.promise;
      },
    });
    h.recorder.record(click(1));
    h.recorder.record(click(2));
    h.recorder.record(click(3));
    const closing = h.recorder.close();
    setTimeout(() => gate.resolve(), 20);
    await closing;
    assert.deepEqual(h.codes(), ['c1', 'c2', 'c3']);
  });

  test('flush() with nothing buffered writes nothing', async () => {
    const h = harness();
    await h.recorder.flush();
    assert.deepEqual(h.batches, []);
  });
});

describe('BatchingClickRecorder: failures lose nothing and duplicate nothing', () => {
  test('a failing write keeps the events; the next flush writes each exactly once', async () => {
    let failures = 1;
    const h = harness({
      batchSize: 100,
      writeImpl: () => {
        if (failures > 0) {
          failures -= 1;
          return Promise.reject(new Error('db down'));
        }
        return Promise.resolve();
      },
    });
    for (let i = 1; i <= 5; i += 1) h.recorder.record(click(i));
    await h.recorder.flush();
    assert.deepEqual(h.written, []);
    assert.equal(h.errors.length, 1);
    assert.equal(h.errors[0]?.events, 5);
    assert.match(String(h.errors[0]?.error), /db down/);
    assert.equal(h.recorder.buffered, 5);
    await h.recorder.flush();
    assert.deepEqual(h.codes(), range(1, 5));
    assert.equal(h.recorder.buffered, 0);
  });

  test('a failure in the middle of several batches: written batches are not written again', async () => {
    let call = 0;
    const h = harness({
      batchSize: 2,
      writeImpl: () => {
        call += 1;
        return call === 2 ? Promise.reject(new Error('flaky')) : Promise.resolve();
      },
    });
    h.recorder.record(click(1));
    h.recorder.record(click(2));
    for (let i = 3; i <= 6; i += 1) h.recorder.record(click(i));
    await h.recorder.flush();
    await h.recorder.flush();
    assert.deepEqual(h.codes(), range(1, 6));
    assert.equal(new Set(h.codes()).size, 6);
    assert.equal(h.errors.length, 1);
  });

  test('the timer retries after a failure, and the store coming back drains the buffer', async () => {
    let down = true;
    const h = harness({
      flushIntervalMs: 20,
      batchSize: 1000,
      writeImpl: () => (down ? Promise.reject(new Error('down')) : Promise.resolve()),
    });
    for (let i = 1; i <= 20; i += 1) h.recorder.record(click(i));
    await waitFor(() => h.errors.length >= 2, 500);
    assert.deepEqual(h.written, []);
    down = false;
    await waitFor(() => h.written.length === 20, 500);
    assert.deepEqual(h.codes(), range(1, 20));
  });

  test('after a failed write, full batches wait for the retry delay, which doubles up to its bound', async () => {
    let down = true;
    let clock = 1_000;
    let attempts = 0;
    const h = harness({
      batchSize: 2,
      retryDelayMs: 100,
      maxRetryDelayMs: 300,
      now: () => clock,
      writeImpl: () => {
        attempts += 1;
        return down ? Promise.reject(new Error('down')) : Promise.resolve();
      },
    });
    const recordMany = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i += 1) h.recorder.record(click(i));
      await sleep(5);
    };
    await recordMany(2);
    assert.equal(attempts, 1);
    await recordMany(50);
    assert.equal(attempts, 1, 'no write attempt per click while backing off');
    clock += 100;
    await recordMany(2);
    assert.equal(attempts, 2, 'one attempt once the delay has passed');
    clock += 199;
    await recordMany(2);
    assert.equal(attempts, 2, 'the second delay is twice the first');
    clock += 1;
    await recordMany(2);
    assert.equal(attempts, 3);
    clock += 300;
    down = false;
    await recordMany(2);
    assert.equal(h.written.length, 60, 'the delay is bounded, and the store coming back drains everything');
    attempts = 0;
    await recordMany(2);
    assert.equal(attempts, 1, 'after a success, full batches are written at once again');
  });

  test('flush() never rejects when the writer throws', async () => {
    const h = harness({
      writeImpl: () => {
        throw new Error('sync throw');
      },
    });
    h.recorder.record(click(1));
    await h.recorder.flush();
    assert.equal(h.errors.length, 1);
    assert.equal(h.recorder.buffered, 1);
  });
});

describe('BatchingClickRecorder: bounded memory', () => {
  test('beyond maxBuffered the oldest are dropped and reported via onDropped', async () => {
    const h = harness({ maxBuffered: 5, batchSize: 1000 });
    for (let i = 1; i <= 8; i += 1) h.recorder.record(click(i));
    assert.equal(h.recorder.buffered, 5);
    assert.equal(h.dropped.reduce((a, b) => a + b, 0), 3);
    await h.recorder.flush();
    assert.deepEqual(h.codes(), range(4, 8), 'the newest survive');
  });

  test('while the store is down, the buffer stays bounded and every drop is counted', async () => {
    let down = true;
    const h = harness({
      maxBuffered: 50,
      batchSize: 10,
      writeImpl: () => (down ? Promise.reject(new Error('down')) : Promise.resolve()),
    });
    for (let i = 1; i <= 500; i += 1) {
      h.recorder.record(click(i));
      assert.ok(h.recorder.buffered <= 50);
      if (i % 25 === 0) await h.recorder.flush();
    }
    down = false;
    await h.recorder.flush();
    const droppedTotal = h.dropped.reduce((a, b) => a + b, 0);
    assert.equal(h.written.length + droppedTotal, 500, 'every click is either written or reported dropped');
    assert.deepEqual(h.codes(), range(451, 500));
  });

  test('an overflow while a batch is being written keeps the newest clicks (no silent loss)', async () => {
    const gate = deferred();
    let first = true;
    const h = harness({
      maxBuffered: 3,
      batchSize: 3,
      writeImpl: () => {
        if (!first) return Promise.resolve();
        first = false;
        return gate.promise;
      },
    });
    // c1..c3 fill a batch: its write starts and hangs.
    for (let i = 1; i <= 3; i += 1) h.recorder.record(click(i));
    // Two more overflow the buffer while c1..c3 are being written.
    h.recorder.record(click(4));
    h.recorder.record(click(5));
    gate.resolve();
    await h.recorder.flush();
    const droppedTotal = h.dropped.reduce((a, b) => a + b, 0);
    const codes = h.codes();
    assert.equal(new Set(codes).size, codes.length, `duplicates written: ${codes.join(',')}`);
    assert.ok(codes.includes('c4') && codes.includes('c5'), `the newest clicks were lost silently; written ${codes.join(',')}, reported dropped ${droppedTotal}`);
    assert.equal(codes.length + droppedTotal, 5, `written ${codes.join(',')} + dropped ${droppedTotal} must account for all 5`);
  });
});

describe('BatchingClickRecorder: concurrency', () => {
  test('events recorded during a write are not lost and not written twice', async () => {
    const gates: Deferred[] = [];
    const h = harness({
      batchSize: 4,
      writeImpl: () => {
        const gate = deferred();
        gates.push(gate);
        return gate.promise;
      },
    });
    for (let i = 1; i <= 4; i += 1) h.recorder.record(click(i));
    assert.equal(gates.length, 1, 'the full batch started a write');
    for (let i = 5; i <= 11; i += 1) h.recorder.record(click(i));
    assert.equal(gates.length, 1, 'no second concurrent write');
    const flushing = h.recorder.flush();
    while (h.written.length < 11) {
      const gate = gates.shift();
      if (gate === undefined) {
        await sleep(1);
        continue;
      }
      gate.resolve();
      await sleep(1);
    }
    await flushing;
    assert.deepEqual(h.codes(), range(1, 11));
    assert.equal(h.recorder.buffered, 0);
  });

  test('never more than one write at a time, under a steady stream', async () => {
    let active = 0;
    let maxActive = 0;
    const h = harness({
      flushIntervalMs: 10,
      batchSize: 7,
      writeImpl: async () => {
        active += 1;
        maxActive = Math.max(maxActive, active);
        await sleep(3);
        active -= 1;
      },
    });
    for (let i = 1; i <= 300; i += 1) {
      h.recorder.record(click(i));
      if (i % 20 === 0) await sleep(1);
    }
    const flushes = [h.recorder.flush(), h.recorder.flush(), h.recorder.flush()];
    await Promise.all(flushes);
    await h.recorder.close();
    assert.equal(maxActive, 1);
    assert.deepEqual(h.codes(), range(1, 300));
  });
});

describe('BatchingClickRecorder: data the store refuses', () => {
  test('a batch refused for its data is split: only the bad event is dropped and reported', async () => {
    const refused = Object.assign(new Error('invalid input syntax for type inet'), { permanent: true });
    const h = harness({
      batchSize: 10,
      writeImpl: (events) => (events.some((event) => event.code === 'c3') ? Promise.reject(refused) : Promise.resolve()),
      isPermanent: (error) => error === refused,
    });
    for (let i = 1; i <= 6; i += 1) h.recorder.record(click(i));
    await h.recorder.flush();
    assert.deepEqual(h.codes(), ['c1', 'c2', 'c4', 'c5', 'c6']);
    assert.deepEqual(h.dropped, [1]);
    assert.equal(h.recorder.buffered, 0);
    // Later clicks are not blocked behind the bad one.
    h.recorder.record(click(7));
    await h.recorder.flush();
    assert.deepEqual(h.codes().slice(-1), ['c7']);
  });

  test('a transient failure keeps the whole batch for the next attempt', async () => {
    let down = true;
    const h = harness({
      batchSize: 10,
      writeImpl: () => (down ? Promise.reject(new Error('connection refused')) : Promise.resolve()),
      isPermanent: () => false,
    });
    for (let i = 1; i <= 4; i += 1) h.recorder.record(click(i));
    await h.recorder.flush();
    assert.equal(h.written.length, 0);
    assert.equal(h.recorder.buffered, 4);
    down = false;
    await h.recorder.flush();
    assert.deepEqual(h.codes(), range(1, 4));
    assert.deepEqual(h.dropped, []);
  });
});
