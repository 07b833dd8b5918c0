import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { ClusterInvalidationBus, readEnvelope, relayInvalidation, type RelayTarget, type WorkerChannel } from '../../src/cache/cluster-invalidation.js';
import type { Invalidation } from '../../src/cache/invalidation.js';

/** What IPC does to a message: serialised, and delivered on a later turn. */
const overIpc = (message: unknown): unknown => JSON.parse(JSON.stringify(message)) as unknown;

/** A worker's channel and the primary's handle on that worker, joined like node:cluster joins them. */
class FakeWorker implements WorkerChannel, RelayTarget {
  connected = true;
  readonly toPrimary: unknown[] = [];
  private readonly events = new EventEmitter();

  constructor(private readonly primary?: FakePrimary) {}

  // The worker's side.
  send(message: unknown, callback: (error: Error | null) => void): void {
    if (this.primary === undefined) this.toPrimary.push(message);
    else this.primary.receive(overIpc(message));
    callback(null);
  }
  on(event: 'message', listener: (message: unknown) => void): void {
    this.events.on(event, listener);
  }
  off(event: 'message', listener: (message: unknown) => void): void {
    this.events.off(event, listener);
  }
  get listeners(): number {
    return this.events.listenerCount('message');
  }

  // The primary's side.
  isConnected(): boolean {
    return this.connected;
  }
  deliver(message: unknown): void {
    const copy = overIpc(message);
    setImmediate(() => this.events.emit('message', copy));
  }
}

class FakePrimary {
  readonly workers: FakeWorker[] = [];
  readonly ignored: unknown[] = [];

  receive(message: unknown): void {
    const targets = this.workers.map((worker) => ({ isConnected: () => worker.isConnected(), send: (m: unknown, cb: (e: Error | null) => void) => (worker.deliver(m), cb(null)) }));
    if (!relayInvalidation(message, targets)) this.ignored.push(message);
  }
}

function recordingBus(channel: WorkerChannel): { bus: ClusterInvalidationBus; seen: Invalidation[] } {
  const bus = new ClusterInvalidationBus(channel);
  const seen: Invalidation[] = [];
  bus.onMessage((message) => seen.push(message));
  return { bus, seen };
}

describe('ClusterInvalidationBus through the primary relay', () => {
  test("a worker's message reaches every worker once, the sender included", async () => {
    const primary = new FakePrimary();
    const workers = [new FakeWorker(primary), new FakeWorker(primary), new FakeWorker(primary)];
    primary.workers.push(...workers);
    const buses = workers.map((worker) => recordingBus(worker));

    buses[1]?.bus.publish({ code: 'abc', lsn: '0/16B3748' });
    buses[2]?.bus.publish({ code: 'xyz', lsn: null });
    await nextTurn();

    for (const { seen } of buses) {
      assert.deepEqual(seen, [{ code: 'abc', lsn: '0/16B3748' }, { code: 'xyz', lsn: null }]);
    }
  });

  test('a worker that is not connected is skipped; the others still get the message', async () => {
    const primary = new FakePrimary();
    const workers = [new FakeWorker(primary), new FakeWorker(primary)];
    primary.workers.push(...workers);
    const [live, gone] = workers.map((worker) => recordingBus(worker));
    assert.ok(live !== undefined && gone !== undefined);
    const goneWorker = workers[1];
    assert.ok(goneWorker !== undefined);
    goneWorker.connected = false;

    live.bus.publish({ code: 'abc', lsn: null });
    await nextTurn();

    assert.deepEqual(live.seen, [{ code: 'abc', lsn: null }]);
    assert.deepEqual(gone.seen, []);
  });

  test('a disconnected worker publishes nothing and does not throw', () => {
    const worker = new FakeWorker();
    worker.connected = false;
    const bus = new ClusterInvalidationBus(worker);
    bus.publish({ code: 'abc', lsn: null });
    assert.deepEqual(worker.toPrimary, []);
  });

  test('messages that are not invalidations are left alone by the worker', async () => {
    const worker = new FakeWorker();
    const { seen } = recordingBus(worker);
    worker.deliver({ cmd: 'something else' });
    worker.deliver('text');
    worker.deliver({ kind: 'shunt:invalidate', message: { code: 42, lsn: null } });
    worker.deliver({ kind: 'shunt:invalidate', message: { code: 'ok', lsn: null } });
    await nextTurn();
    assert.deepEqual(seen, [{ code: 'ok', lsn: null }]);
  });

  test('close stops delivery, lets go of the channel, makes publish a no-op and may be repeated', async () => {
    const worker = new FakeWorker();
    const { bus, seen } = recordingBus(worker);
    assert.equal(worker.listeners, 1);
    await bus.close();
    await bus.close();
    assert.equal(worker.listeners, 0, 'a listener left behind would keep the IPC channel, and the worker, alive');
    worker.deliver({ kind: 'shunt:invalidate', message: { code: 'abc', lsn: null } });
    bus.publish({ code: 'abc', lsn: null });
    await nextTurn();
    assert.deepEqual(seen, []);
    assert.deepEqual(worker.toPrimary, []);
  });
});

describe('relayInvalidation', () => {
  const target = (connected = true, fail = false): RelayTarget & { got: unknown[] } => {
    const got: unknown[] = [];
    return {
      got,
      isConnected: () => connected,
      send: (message, callback) => {
        got.push(message);
        callback(fail ? new Error('channel closed') : null);
      },
    };
  };

  test('relays only well-formed invalidations, rebuilt without extra fields', () => {
    const targets = [target(), target()];
    const sent = { kind: 'shunt:invalidate', message: { code: 'abc', lsn: null, extra: 'x' }, more: 1 };
    assert.equal(relayInvalidation(sent, targets), true);
    for (const { got } of targets) assert.deepEqual(got, [{ kind: 'shunt:invalidate', message: { code: 'abc', lsn: null } }]);
  });

  test('ignores everything else', () => {
    const t = target();
    const others: unknown[] = [
      null,
      undefined,
      'shunt:invalidate',
      { kind: 'shunt:invalidate' },
      { kind: 'shunt:invalidate', message: null },
      { kind: 'shunt:invalidate', message: { lsn: null } },
      { kind: 'shunt:invalidate', message: { code: 'abc' } },
      { kind: 'shunt:invalidate', message: { code: 'abc', lsn: 7 } },
      { kind: 'other', message: { code: 'abc', lsn: null } },
    ];
    for (const other of others) {
      assert.equal(relayInvalidation(other, [t]), false, JSON.stringify(other));
      assert.equal(readEnvelope(other), null);
    }
    assert.deepEqual(t.got, []);
  });

  test('a failed send to one worker does not stop the others', () => {
    const targets = [target(true, true), target(false), target()];
    assert.equal(relayInvalidation({ kind: 'shunt:invalidate', message: { code: 'abc', lsn: null } }, targets), true);
    assert.equal(targets[0]?.got.length, 1);
    assert.equal(targets[1]?.got.length, 0, 'not sent to a disconnected worker');
    assert.equal(targets[2]?.got.length, 1);
  });
});
