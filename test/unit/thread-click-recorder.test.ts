/**
 * The recorder that hands clicks to a store's or writer's thread, against a channel that
 * stands in for the thread: it stores (remembering event ids, as the store does) or fails
 * every batch while "down". An outage's clicks wait on disk, not in memory; nothing is
 * lost or counted twice; a close during the outage leaves them for the next start.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import pino from 'pino';
import { decodeClickBatch } from '../../src/clicks/click-event-codec.js';
import { ThreadClickRecorder } from '../../src/pipeline/thread-click-recorder.js';
import type { ClickReply, ClickRequest } from '../../src/storage/embedded-protocol.js';
import type { ClickChannel } from '../../src/storage/embedded-store.js';

/** A thread stand-in: answers each batch on the next turn of the loop. */
class FakeChannel implements ClickChannel {
  readonly alive = true;
  down = false;
  readonly stored = new Set<string>();
  duplicates = 0;
  private listener: (reply: ClickReply) => void = () => undefined;

  startClicks(): void {}
  onRestart(): void {}
  onClickReply(listener: (reply: ClickReply) => void): void {
    this.listener = listener;
  }

  postClicks(request: ClickRequest): void {
    setImmediate(() => {
      if (this.down) {
        this.listener({ t: 'clicks-failed', batch: request.batch, error: { message: 'database unavailable', name: 'Error', stack: undefined, props: {} } });
        return;
      }
      const decoded = decodeClickBatch(request.payload);
      assert.ok(decoded.ok);
      let inserted = 0;
      for (const event of decoded.events) {
        if (this.stored.has(event.id)) this.duplicates += 1;
        else {
          this.stored.add(event.id);
          inserted += 1;
        }
      }
      this.listener({ t: 'clicks-done', batch: request.batch, inserted, duplicates: decoded.events.length - inserted, refused: 0, stored: [], lagSeconds: [] });
    });
  }
}

const click = (n: number) => ({ linkId: '1', code: `c${n}`, at: new Date(), method: 'GET' as const, referrer: null, userAgent: null, ip: null });

describe('ThreadClickRecorder', () => {
  let dir: string;
  const open: ThreadClickRecorder[] = [];
  const recorder = (channel: FakeChannel): ThreadClickRecorder => {
    const created = new ThreadClickRecorder({
      channel,
      storeRawIp: false,
      batchSize: 10,
      flushIntervalMs: 10,
      maxInFlight: 1000,
      spoolDir: dir,
      spoolMaxBytes: 10 * 1024 * 1024,
      closeTimeoutMs: 500,
      retryDelayMs: 20,
      logger: pino({ level: 'silent' }),
      onStored: () => undefined,
      announce: () => false,
      onWriteFailure: () => undefined,
      onRefused: () => assert.fail('nothing is refused'),
    });
    open.push(created);
    return created;
  };
  const until = async (condition: () => boolean, what: string): Promise<void> => {
    const deadline = Date.now() + 5000;
    while (!condition()) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'shunt-thread-recorder-'));
  });
  afterEach(async () => {
    for (const created of open.splice(0)) await created.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('stores every click once, in batches', async () => {
    const channel = new FakeChannel();
    const clicks = recorder(channel);
    for (let n = 0; n < 95; n += 1) clicks.record(click(n));
    await clicks.flush();
    assert.equal(channel.stored.size, 95);
    assert.equal(clicks.buffered, 0);
  });

  test('during an outage the clicks wait in the spool, not in memory, and are stored once when it ends', async () => {
    const channel = new FakeChannel();
    const clicks = recorder(channel);
    channel.down = true;
    for (let n = 0; n < 200; n += 1) clicks.record(click(n));
    await clicks.flush();
    await until(() => clicks.stats.spooledEvents === 200, 'the outage to reach the spool');
    // Beyond the spool, memory holds only the copies of the frames the replay is retrying.
    assert.ok(clicks.buffered <= 4 * 10, `in memory: ${clicks.buffered}`);
    assert.equal(channel.stored.size, 0);

    channel.down = false;
    await until(() => channel.stored.size === 200 && clicks.stats.spooledEvents === 0, 'the spool to drain');
    assert.equal(channel.duplicates, 0);
  });

  test('a close during the outage leaves the clicks on disk; the next start stores them', async () => {
    const channel = new FakeChannel();
    channel.down = true;
    const first = recorder(channel);
    for (let n = 0; n < 50; n += 1) first.record(click(n));
    await first.flush();
    await first.close();

    channel.down = false;
    const second = recorder(channel);
    await until(() => channel.stored.size === 50 && second.stats.spooledEvents === 0, 'the next start to store the spool');
  });
});
