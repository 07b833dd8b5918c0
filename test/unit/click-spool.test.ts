import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { ClickSpool, encodeSpoolFrame, type ClickSpoolOptions, type ClickSpoolProblem } from '../../src/pipeline/click-spool.js';

const payload = (n: number, size = 40): Buffer => Buffer.from(JSON.stringify({ n, pad: 'x'.repeat(size) }));
const number = (bytes: Buffer): number => (JSON.parse(bytes.toString('utf8')) as { n: number }).n;

describe('ClickSpool', () => {
  let dir: string;
  const open: ClickSpool[] = [];
  const problems: ClickSpoolProblem[] = [];

  const spool = (options: Partial<ClickSpoolOptions> = {}): ClickSpool => {
    const created = ClickSpool.open({ dir, maxBytes: 1024 * 1024, onProblem: (problem) => problems.push(problem), ...options });
    open.push(created);
    return created;
  };
  /** Replays everything, returning the payload numbers in the order they were published. */
  const drain = async (target: ClickSpool, window = 4): Promise<number[]> => {
    const seen: number[] = [];
    const result = await target.replay(
      (bytes) => {
        seen.push(number(bytes));
        return Promise.resolve();
      },
      { window },
    );
    assert.equal(result.complete, true);
    return seen;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'shunt-spool-'));
    problems.length = 0;
  });
  afterEach(() => {
    for (const item of open.splice(0)) item.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an empty directory opens empty, and an empty file too', async () => {
    const first = spool();
    assert.deepEqual(first.stats, { bytes: 0, pendingBytes: 0, batches: 0, events: 0, dropped: 0, corrupt: 0 });
    assert.deepEqual(await drain(first), []);
    first.close();
    writeFileSync(join(dir, 'clicks-0.spool'), '');
    writeFileSync(join(dir, 'clicks-0.offset'), 'not json');
    const second = spool();
    assert.deepEqual(second.stats, { bytes: 0, pendingBytes: 0, batches: 0, events: 0, dropped: 0, corrupt: 0 });
  });

  test('replays in order, counts events per frame, and resets the file once everything is done', async () => {
    const target = spool();
    for (let n = 0; n < 10; n += 1) assert.equal(target.append(payload(n), n + 1), true);
    assert.equal(target.stats.batches, 10);
    assert.equal(target.stats.events, 55);
    assert.ok(target.stats.bytes > 0);
    assert.equal(target.stats.pendingBytes, target.stats.bytes);
    assert.deepEqual(await drain(target, 3), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(target.stats, { bytes: 0, pendingBytes: 0, batches: 0, events: 0, dropped: 0, corrupt: 0 });
    assert.equal(statSync(target.path).size, 0);
    // Appends after a reset start a fresh file.
    target.append(payload(42), 1);
    assert.deepEqual(await drain(target), [42]);
  });

  test('a failed publish stops the replay; what was confirmed is not replayed again, even after reopening', async () => {
    const first = spool();
    for (let n = 0; n < 6; n += 1) first.append(payload(n), 1);
    const seen: number[] = [];
    const result = await first.replay(
      (bytes) => {
        const n = number(bytes);
        seen.push(n);
        return n === 3 ? Promise.reject(new Error('nacked')) : Promise.resolve();
      },
      { window: 1 },
    );
    assert.equal(result.complete, false);
    assert.equal(result.batches, 3);
    assert.equal((result.error as Error).message, 'nacked');
    assert.deepEqual(seen, [0, 1, 2, 3]);
    assert.equal(first.stats.batches, 3);
    first.close();

    const second = spool();
    assert.equal(second.stats.batches, 3);
    assert.equal(second.stats.events, 3);
    assert.deepEqual(await drain(second), [3, 4, 5]);
  });

  test('with several frames out, only the confirmed prefix is marked done', async () => {
    const target = spool();
    for (let n = 0; n < 5; n += 1) target.append(payload(n), 1);
    const result = await target.replay((bytes) => (number(bytes) === 1 ? Promise.reject(new Error('timeout')) : Promise.resolve()), { window: 5 });
    // 0 is done; 1 failed, so 2-4 stay even though the broker took them (they go again: duplicates, not losses).
    assert.equal(result.batches, 1);
    assert.deepEqual(await drain(target), [1, 2, 3, 4]);
  });

  test('shouldContinue stops a replay between frames', async () => {
    const target = spool();
    for (let n = 0; n < 5; n += 1) target.append(payload(n), 1);
    let calls = 0;
    const result = await target.replay(() => {
      calls += 1;
      return Promise.resolve();
    }, { window: 1, shouldContinue: () => calls < 2 });
    assert.equal(result.batches, 2);
    assert.equal(target.stats.batches, 3);
  });

  test('a full spool refuses appends and counts the dropped events', () => {
    const frameBytes = encodeSpoolFrame(payload(0), 1).length;
    const target = spool({ maxBytes: frameBytes * 3 + 1 });
    assert.equal(target.append(payload(0), 10), true);
    assert.equal(target.append(payload(1), 10), true);
    assert.equal(target.append(payload(2), 10), true);
    assert.equal(target.append(payload(3), 7), false);
    assert.equal(target.append(payload(4), 5), false);
    assert.equal(target.stats.events, 30);
    assert.equal(target.stats.dropped, 12);
    assert.ok(target.stats.bytes <= frameBytes * 3 + 1);
    assert.equal(problems.filter((problem) => problem.kind === 'full').length, 2);
  });

  test('a torn tail frame (crash mid-write) is skipped, counted and cut off; new frames follow the last good one', async () => {
    const first = spool();
    first.append(payload(0), 1);
    first.append(payload(1), 1);
    first.close();
    const torn = encodeSpoolFrame(payload(2), 1);
    appendFileSync(join(dir, 'clicks-0.spool'), torn.subarray(0, torn.length - 5));

    const second = spool();
    assert.equal(second.stats.batches, 2);
    assert.equal(second.stats.corrupt, 1);
    assert.ok(problems.some((problem) => problem.kind === 'torn_tail'));
    second.append(payload(3), 1);
    assert.deepEqual(await drain(second), [0, 1, 3]);
  });

  test('a torn header (a few bytes) at the end is handled too', async () => {
    const first = spool();
    first.append(payload(0), 1);
    first.close();
    appendFileSync(join(dir, 'clicks-0.spool'), Buffer.from([0xf5, 0x53]));
    const second = spool();
    assert.equal(second.stats.corrupt, 1);
    assert.deepEqual(await drain(second), [0]);
  });

  test('a damaged frame in the middle is skipped and the frames after it are replayed', async () => {
    const first = spool();
    for (let n = 0; n < 5; n += 1) first.append(payload(n), 1);
    first.close();
    const file = join(dir, 'clicks-0.spool');
    const bytes = readFileSync(file);
    const frameBytes = encodeSpoolFrame(payload(0), 1).length;
    // Flip a payload byte of frame 1 (CRC), and the length of frame 3 (a length that would swallow the rest).
    bytes[frameBytes + 20] = (bytes[frameBytes + 20] as number) ^ 0xff;
    bytes.writeUInt32BE(10_000, frameBytes * 3 + 4);
    writeFileSync(file, bytes);

    const second = spool();
    assert.equal(second.stats.batches, 3);
    assert.equal(second.stats.corrupt, 2);
    assert.deepEqual(await drain(second), [0, 2, 4]);
  });

  test('garbage in front of good frames is skipped', async () => {
    writeFileSync(join(dir, 'clicks-0.spool'), Buffer.concat([Buffer.from('garbage\u00f5SC'), encodeSpoolFrame(payload(7), 2)]));
    const target = spool();
    assert.equal(target.stats.corrupt, 1);
    assert.equal(target.stats.events, 2);
    assert.deepEqual(await drain(target), [7]);
  });

  test('an offset beyond the file (crash between reset and offset write) starts from the beginning', async () => {
    writeFileSync(join(dir, 'clicks-0.spool'), encodeSpoolFrame(payload(5), 1));
    writeFileSync(join(dir, 'clicks-0.offset'), JSON.stringify({ offset: 1_000_000 }));
    const target = spool();
    assert.deepEqual(await drain(target), [5]);
  });

  test('two spools in one directory take different slots; a released slot is taken again with its backlog', async () => {
    const a = spool();
    const b = spool();
    assert.notEqual(a.path, b.path);
    a.append(payload(1), 1);
    a.close();
    const c = spool();
    assert.equal(c.path, a.path);
    assert.deepEqual(await drain(c), [1]);
  });

  test('a lock left by a dead process is taken over', () => {
    writeFileSync(join(dir, 'clicks-0.lock'), '999999999');
    const target = spool();
    assert.equal(target.path, join(dir, 'clicks-0.spool'));
    target.close();
    assert.equal(existsSync(join(dir, 'clicks-0.lock')), false);
  });

  test('append after close is refused and counted, never thrown', () => {
    const target = spool();
    target.close();
    assert.equal(target.append(payload(1), 3), false);
    assert.equal(target.stats.dropped, 3);
  });
});
