/**
 * The click transport against the real RabbitMQ of this machine (a queue of its own per
 * test, deleted afterwards): every event published arrives, bad input is dead-lettered, a
 * failing store loses nothing, and a publisher cut from the broker (through a TCP proxy)
 * spools and then delivers everything. Locally the suite is skipped without RabbitMQ; under
 * CI=true it fails instead.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import amqp from 'amqplib';
import type { IdentifiedClickEvent } from '../../src/clicks/click-event.js';
import { encodeClickEvent } from '../../src/clicks/click-event-codec.js';
import { AmqpClickConsumer, type AmqpClickConsumerOptions } from '../../src/pipeline/amqp-click-consumer.js';
import { AmqpClickPublisher, type AmqpClickPublisherOptions } from '../../src/pipeline/amqp-click-publisher.js';
import { assertClickTopology, clickTopologyNames } from '../../src/pipeline/amqp-topology.js';
import {
  amqpPort,
  amqpReachable,
  amqpUrlVia,
  click,
  deleteClickTopology,
  eventually,
  readyMessages,
  SHARED_AMQP_URL,
  testLogger,
  uniqueQueue,
  withChannel,
} from '../helpers/amqp.js';
import { IN_CI } from '../helpers/backends.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const reachable = await amqpReachable();
const options = !reachable && !IN_CI ? { skip: `RabbitMQ not reachable at ${new URL(SHARED_AMQP_URL).host}` } : {};
const N = 20_000;

/** What a consumer's handle saw: every id, and how often. */
class Received {
  readonly counts = new Map<string, number>();
  total = 0;

  add(events: readonly IdentifiedClickEvent[]): void {
    for (const event of events) this.counts.set(event.id, (this.counts.get(event.id) ?? 0) + 1);
    this.total += events.length;
  }

  get distinct(): number {
    return this.counts.size;
  }

  missing(ids: readonly string[]): string[] {
    return ids.filter((id) => !this.counts.has(id));
  }
}

describe('RabbitMQ click transport', options, () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  let queue: string;

  before(() => {
    assert.ok(reachable, `RabbitMQ is not reachable at ${new URL(SHARED_AMQP_URL).host} (CI=true needs it)`);
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  after(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  const newQueue = (): string => {
    const name = uniqueQueue();
    cleanups.push(() => deleteClickTopology(name));
    return name;
  };
  const spoolDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'shunt-amqp-spool-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  };
  const publisher = (overrides: Partial<AmqpClickPublisherOptions> = {}): AmqpClickPublisher => {
    const created = new AmqpClickPublisher({
      url: SHARED_AMQP_URL,
      queue,
      confirmTimeoutMs: 2000,
      flushIntervalMs: 50,
      batchSize: 500,
      spoolDir: spoolDir(),
      spoolMaxBytes: 256 * 1024 * 1024,
      logger: testLogger('publisher'),
      reconnectBackoff: { minMs: 50, maxMs: 500 },
      ...overrides,
    });
    cleanups.push(() => created.close());
    return created;
  };
  const consumer = (received: Received, overrides: Partial<AmqpClickConsumerOptions> = {}): AmqpClickConsumer => {
    const created = new AmqpClickConsumer({
      url: SHARED_AMQP_URL,
      queue,
      prefetch: 64,
      batchSize: 5000,
      batchWaitMs: 50,
      handle: (events) => {
        received.add(events);
        return Promise.resolve();
      },
      logger: testLogger('consumer'),
      queueDepthIntervalMs: 200,
      retryBackoff: { minMs: 50, maxMs: 200 },
      reconnectBackoff: { minMs: 50, maxMs: 500 },
      ...overrides,
    });
    cleanups.push(() => created.close());
    created.start();
    return created;
  };
  const proxy = async (): Promise<TcpProxy> => {
    const started = await startTcpProxy(amqpPort(SHARED_AMQP_URL));
    cleanups.push(() => started.close());
    return started;
  };
  /** Waits until every id arrived, the queue is empty and nothing is waiting in the publisher. */
  const allDelivered = async (received: Received, ids: readonly string[], target: AmqpClickConsumer, ms = 40_000): Promise<void> => {
    await eventually(`${ids.length} distinct events (have ${received.distinct})`, () => received.distinct >= ids.length, ms);
    assert.deepEqual(received.missing(ids), []);
    assert.equal(received.distinct, ids.length);
    await eventually('the queue to be empty', async () => (await readyMessages(queue)) === 0 && target.stats.queueDepth === 0);
  };

  test(`${N} events published by one process all arrive, once each`, async () => {
    queue = newQueue();
    const received = new Received();
    const target = consumer(received);
    const source = publisher();
    await eventually('the publisher to connect', () => source.stats.connected);
    const events = Array.from({ length: N }, (_, n) => click(n));
    const started = Date.now();
    for (const event of events) source.record(event);
    await source.flush();
    const publishedIn = Date.now() - started;
    assert.equal(source.stats.published, N);
    await allDelivered(received, events.map((event) => event.id), target);
    const deliveredIn = Date.now() - started;
    console.log(`# ${N} events: published and confirmed in ${publishedIn} ms (${Math.round(N / (publishedIn / 1000))}/s), consumed in ${deliveredIn} ms`);
    assert.equal(received.total, N, 'no duplicates without faults');
    assert.equal(source.stats.publishFailures, 0);
    assert.equal(source.stats.spooledEvents, 0);
    assert.ok(target.stats.connected);
    assert.equal(target.stats.consumedEvents, N);
    assert.equal(target.stats.deadLettered, 0);
  });

  test('an unreadable message and a bad event go to the dead-letter queue; the good events are handled', async () => {
    queue = newQueue();
    const names = clickTopologyNames(queue);
    const received = new Received();
    const target = consumer(received);
    await eventually('the consumer to connect', () => target.stats.connected);
    const good = [click(1), click(2), click(3)];
    const bad = { ...JSON.parse(encodeClickEvent(click(4))), ip: 'not-an-ip' } as unknown;
    const batch = `[${encodeClickEvent(good[0]!)},${JSON.stringify(bad)},${encodeClickEvent(good[1]!)}]`;
    await withChannel(async (channel) => {
      channel.sendToQueue(queue, Buffer.from('this is not JSON'), { persistent: true });
      channel.sendToQueue(queue, Buffer.from(batch), { persistent: true, contentType: 'application/json' });
      channel.sendToQueue(queue, Buffer.from(`[${encodeClickEvent(good[2]!)}]`), { persistent: true });
      await sleep(50);
    });
    await eventually('the good events', () => received.distinct === 3);
    assert.deepEqual(received.missing(good.map((event) => event.id)), []);
    await eventually('two dead letters', async () => (await readyMessages(names.deadLetterQueue)) === 2);
    assert.equal(target.stats.deadLettered, 2);

    const dead = await withChannel(async (channel) => {
      const messages = [];
      for (let message = await channel.get(names.deadLetterQueue, { noAck: true }); message !== false; message = await channel.get(names.deadLetterQueue, { noAck: true })) {
        messages.push({ body: message.content.toString('utf8'), headers: message.properties.headers ?? {} });
      }
      return messages;
    });
    const unreadable = dead.find((message) => message.body === 'this is not JSON');
    assert.ok(unreadable !== undefined, 'the unreadable message is dead-lettered as it was');
    assert.ok(Array.isArray(unreadable.headers['x-death']), 'the broker dead-lettered it (x-death)');
    const event = dead.find((message) => message.body !== 'this is not JSON');
    assert.ok(event !== undefined);
    assert.deepEqual(JSON.parse(event.body), bad);
    assert.equal(event.headers['x-shunt-reason'], 'invalid_field');
    assert.equal(event.headers['x-shunt-field'], '[1].ip');
    assert.equal(event.headers['x-shunt-source-queue'], queue);
    await eventually('the queue to be empty', async () => (await readyMessages(queue)) === 0);
  });

  test('a store that fails twice loses nothing: the same batch is retried until it commits', async () => {
    queue = newQueue();
    const received = new Received();
    let calls = 0;
    const target = consumer(received, {
      batchSize: 1000,
      handle: (events) => {
        calls += 1;
        if (calls <= 2) return Promise.reject(new Error(`store down (call ${calls})`));
        received.add(events);
        return Promise.resolve();
      },
    });
    const source = publisher();
    const events = Array.from({ length: 5000 }, (_, n) => click(n));
    for (const event of events) source.record(event);
    await source.flush();
    await allDelivered(received, events.map((event) => event.id), target);
    assert.equal(target.stats.handleFailures, 2);
    assert.equal(received.total, events.length, 'each event committed exactly once');
    assert.ok([...received.counts.values()].every((count) => count === 1));
  });

  test('a publisher cut from the broker mid-stream spools, reconnects and delivers everything', async () => {
    queue = newQueue();
    const received = new Received();
    const target = consumer(received);
    const cable = await proxy();
    const source = publisher({ url: amqpUrlVia(SHARED_AMQP_URL, cable.port) });
    await eventually('the publisher to connect', () => source.stats.connected);
    const events = Array.from({ length: N }, (_, n) => click(n));
    let peakSpooled = 0;
    const watch = setInterval(() => {
      peakSpooled = Math.max(peakSpooled, source.stats.spooledEvents);
    }, 5);
    cleanups.push(() => clearInterval(watch));
    let inFlightAtCut = 0;
    for (let start = 0; start < N; start += 1000) {
      for (const event of events.slice(start, start + 1000)) source.record(event);
      if (start === 8000) {
        // Cut while these batches are out and unconfirmed: they go out on the next turn of
        // the event loop, and their confirms need at least one more.
        for (let turn = 0; turn < 10 && source.stats.inFlight === 0; turn += 1) await new Promise(setImmediate);
        inFlightAtCut = source.stats.inFlight;
        cable.cut();
      }
      if (start === 14_000) cable.restore();
      await sleep(20);
    }
    await source.flush();
    await allDelivered(received, events.map((event) => event.id), target);
    await eventually('the spool to drain', () => source.stats.spooledEvents === 0 && source.stats.spoolBytes === 0);
    clearInterval(watch);
    assert.ok(source.stats.publishFailures > 0, 'some batches failed to publish');
    assert.ok(peakSpooled > 0, 'the spool was used');
    assert.equal(source.stats.droppedEvents, 0);
    assert.ok(source.stats.connected);
    assert.ok(inFlightAtCut > 0);
    console.log(`# cut with ${inFlightAtCut} events unconfirmed: ${received.total - received.distinct} duplicates, spool peaked at ${peakSpooled} events, ${source.stats.publishFailures} failed publishes`);
  });

  test('with the broker unreachable from the start, events wait in the spool and arrive once it is reachable', async () => {
    queue = newQueue();
    const received = new Received();
    const target = consumer(received);
    const cable = await proxy();
    cable.cut();
    const source = publisher({ url: amqpUrlVia(SHARED_AMQP_URL, cable.port) });
    const events = Array.from({ length: 5000 }, (_, n) => click(n));
    for (const event of events) source.record(event);
    await source.flush();
    assert.equal(source.stats.connected, false);
    assert.equal(source.stats.spooledEvents, events.length);
    assert.equal(source.stats.buffered, 0);
    assert.equal(received.distinct, 0);
    cable.restore();
    await allDelivered(received, events.map((event) => event.id), target);
    await eventually('the spool to drain', () => source.stats.spooledEvents === 0 && source.stats.spoolBytes === 0);
    assert.equal(source.stats.published, events.length);
  });

  test('close() with the broker unreachable keeps the events in the spool; the next publisher delivers them', async () => {
    queue = newQueue();
    const received = new Received();
    const target = consumer(received);
    const cable = await proxy();
    cable.cut();
    const dir = spoolDir();
    const first = publisher({ url: amqpUrlVia(SHARED_AMQP_URL, cable.port), spoolDir: dir });
    const events = Array.from({ length: 3000 }, (_, n) => click(n));
    for (const event of events) first.record(event);
    const closing = Date.now();
    await first.close();
    assert.ok(Date.now() - closing < 5000, 'close does not wait on an unreachable broker beyond its bound');
    assert.equal(first.stats.spooledEvents, events.length);
    assert.equal(first.stats.droppedEvents, 0);

    const second = publisher({ spoolDir: dir });
    assert.equal(second.stats.spooledEvents, events.length, 'the new publisher picked up the spool');
    await allDelivered(received, events.map((event) => event.id), target);
    await eventually('the spool to drain', () => second.stats.spooledEvents === 0);
  });

  test('the topology is a quorum queue with its dead-letter queue; an existing classic queue is kept, not fought', async () => {
    queue = newQueue();
    const classic = newQueue();
    const connection = await amqp.connect(SHARED_AMQP_URL);
    connection.on('error', () => undefined);
    try {
      const fresh = await assertClickTopology(connection, queue);
      assert.deepEqual(fresh, { ...clickTopologyNames(queue), queueType: 'quorum' });
      assert.deepEqual(await assertClickTopology(connection, queue), fresh, 'declaring again changes nothing');
      await withChannel((channel) => channel.assertQueue(classic, { durable: true, arguments: { 'x-dead-letter-exchange': `${classic}.dlx` } }));
      assert.equal((await assertClickTopology(connection, classic)).queueType, 'classic');
    } finally {
      await connection.close();
    }
  });

  test('close() finishes the batch under way: its events are handled and acknowledged, not redelivered', async () => {
    queue = newQueue();
    const received = new Received();
    let started!: () => void;
    const handling = new Promise<void>((resolve) => (started = resolve));
    const target = consumer(received, {
      batchSize: 10_000,
      handle: async (events) => {
        started();
        await sleep(300);
        received.add(events);
      },
    });
    const source = publisher();
    await eventually('the publisher to connect', () => source.stats.connected);
    const events = Array.from({ length: 1000 }, (_, n) => click(n));
    for (const event of events) source.record(event);
    await source.flush();
    await handling;
    await target.close();
    assert.equal(received.distinct, events.length);
    assert.equal(target.stats.consumedEvents, events.length);
    assert.equal(await readyMessages(queue), 0, 'nothing went back to the queue');
  });

  test('batches handled at once are acknowledged each on its own: a stuck one is not settled by later ones', async () => {
    queue = newQueue();
    const received = new Received();
    let calls = 0;
    let running = 0;
    let peak = 0;
    const never = new Promise<void>(() => undefined);
    const target = consumer(received, {
      batchSize: 500,
      concurrency: 2,
      closeTimeoutMs: 300,
      handle: async (events) => {
        calls += 1;
        running += 1;
        peak = Math.max(peak, running);
        // The first batch hangs (a stuck transaction) while the other slot carries on.
        if (calls === 1) await never;
        await sleep(10);
        received.add(events);
        running -= 1;
      },
    });
    const source = publisher({ batchSize: 500 });
    await eventually('the publisher to connect', () => source.stats.connected);
    const events = Array.from({ length: 3000 }, (_, n) => click(n));
    for (const event of events) source.record(event);
    await source.flush();
    await eventually(`2500 distinct events (have ${received.distinct})`, () => received.distinct === 2500);
    assert.equal(peak, 2, 'two batches were handled at once');
    await target.close();
    // The stuck batch's message was never acknowledged, so it is back in the queue.
    await eventually('the stuck message back in the queue', async () => (await readyMessages(queue)) === 1);
  });

  test('two consumers on one queue share the work and see every event once between them', async () => {
    queue = newQueue();
    const received = new Received();
    const a = consumer(received, { prefetch: 4 });
    const b = consumer(received, { prefetch: 4 });
    const source = publisher({ batchSize: 100 });
    const events = Array.from({ length: 5000 }, (_, n) => click(n));
    for (const event of events) source.record(event);
    await source.flush();
    await eventually(`5000 distinct events (have ${received.distinct})`, () => received.distinct === events.length);
    assert.equal(received.total, events.length);
    assert.ok(a.stats.consumedEvents > 0 && b.stats.consumedEvents > 0, `both worked: ${a.stats.consumedEvents} + ${b.stats.consumedEvents}`);
  });
});
