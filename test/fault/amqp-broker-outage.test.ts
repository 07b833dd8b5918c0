/**
 * The click transport against a broker that stops and crashes: a private RabbitMQ node of
 * this test's own (test/helpers/rabbitmq-node.ts), stopped with `rabbitmqctl stop_app`
 * and killed with SIGKILL while clicks flow. The publisher spools while the broker is
 * away, the consumer reconnects, and every event arrives: confirmed messages survive the
 * crash in the quorum queue, unconfirmed ones are replayed from the spool.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { IdentifiedClickEvent } from '../../src/clicks/click-event.js';
import { AmqpClickConsumer } from '../../src/pipeline/amqp-click-consumer.js';
import { AmqpClickPublisher } from '../../src/pipeline/amqp-click-publisher.js';
import { click, eventually, readyMessages, testLogger, uniqueQueue } from '../helpers/amqp.js';
import { IN_CI } from '../helpers/backends.js';
import { rabbitmqServerMissing, startPrivateRabbitMq, type PrivateRabbitMq } from '../helpers/rabbitmq-node.js';

const missing = rabbitmqServerMissing();
const options = missing !== null && !IN_CI ? { skip: missing } : {};

describe('RabbitMQ outages under the click transport', options, () => {
  let broker: PrivateRabbitMq;
  let dir: string;
  const closers: (() => Promise<void>)[] = [];

  before(async () => {
    assert.equal(missing, null, 'rabbitmq-server is needed (CI=true)');
    broker = await startPrivateRabbitMq();
    console.log(`# private RabbitMQ ${broker.nodeName} started in ${broker.startedInMs} ms`);
    dir = mkdtempSync(join(tmpdir(), 'shunt-amqp-outage-'));
  });
  after(async () => {
    for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
    await broker?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** A publisher and a consumer on a fresh queue, connected; `seen` counts what was handled. */
  async function pipeline(name: string) {
    const queue = uniqueQueue();
    const seen = new Map<string, number>();
    const consumer = new AmqpClickConsumer({
      url: broker.url,
      queue,
      prefetch: 32,
      batchSize: 2000,
      batchWaitMs: 20,
      handle: (events: readonly IdentifiedClickEvent[]) => {
        for (const event of events) seen.set(event.id, (seen.get(event.id) ?? 0) + 1);
        return Promise.resolve();
      },
      logger: testLogger(`${name} consumer`),
      queueDepthIntervalMs: 200,
      reconnectBackoff: { minMs: 50, maxMs: 500 },
    });
    const publisher = new AmqpClickPublisher({
      url: broker.url,
      queue,
      confirmTimeoutMs: 1000,
      flushIntervalMs: 20,
      batchSize: 250,
      spoolDir: join(dir, name),
      spoolMaxBytes: 64 * 1024 * 1024,
      logger: testLogger(`${name} publisher`),
      closeTimeoutMs: 1000,
      reconnectBackoff: { minMs: 50, maxMs: 500 },
    });
    closers.push(() => consumer.close(), () => publisher.close());
    consumer.start();
    await eventually('both sides to connect', () => consumer.stats.connected && publisher.stats.connected);
    return { queue, seen, consumer, publisher };
  }

  /** Records `total` clicks in steps of 500, running `during(step)` between steps. */
  async function stream(publisher: AmqpClickPublisher, total: number, during: (step: number) => Promise<void>): Promise<string[]> {
    const ids: string[] = [];
    for (let step = 0; step * 500 < total; step += 1) {
      for (let n = step * 500; n < Math.min(total, (step + 1) * 500); n += 1) {
        const event = click(n);
        ids.push(event.id);
        publisher.record(event);
      }
      await during(step);
      await sleep(10);
    }
    return ids;
  }

  test('stop_app while clicks flow: the publisher spools, both sides reconnect, nothing is lost', async () => {
    const { queue, seen, consumer, publisher } = await pipeline('stop-app');
    let spooledWhileDown = 0;
    const ids = await stream(publisher, 10_000, async (step) => {
      if (step === 6) await broker.stopApp();
      if (step === 10) spooledWhileDown = publisher.stats.spooledEvents;
      if (step === 12) await broker.startApp();
    });
    await publisher.flush();
    await eventually(`all ${ids.length} events (have ${seen.size})`, () => seen.size === ids.length, 40_000);
    assert.deepEqual(ids.filter((id) => !seen.has(id)), []);
    assert.ok(spooledWhileDown > 0, 'events waited in the spool while the broker was stopped');
    await eventually('the spool to drain', () => publisher.stats.spooledEvents === 0);
    await eventually('the queue to be empty', async () => (await readyMessages(queue, broker.url)) === 0);
    assert.equal(publisher.stats.droppedEvents, 0);
    assert.ok(consumer.stats.connected);
  });

  test('a memory alarm blocks publishing: batches wait in the spool and go out once it clears', async () => {
    const { seen, publisher } = await pipeline('alarm');
    let blocked = false;
    let spooledWhileBlocked = 0;
    const ids = await stream(publisher, 5000, async (step) => {
      if (step === 2) await broker.ctl('set_vm_memory_high_watermark', '0');
      if (step === 6) {
        await eventually('the broker to block the publisher', () => publisher.stats.blocked, 10_000);
        blocked = true;
      }
      if (step === 8) {
        spooledWhileBlocked = publisher.stats.spooledEvents;
        await broker.ctl('set_vm_memory_high_watermark', '0.4');
      }
    });
    await publisher.flush();
    await eventually(`all ${ids.length} events (have ${seen.size})`, () => seen.size === ids.length, 30_000);
    assert.ok(blocked);
    assert.ok(spooledWhileBlocked > 0, 'events waited in the spool while the broker was blocked');
    await eventually('the publisher to be unblocked and the spool drained', () => !publisher.stats.blocked && publisher.stats.spooledEvents === 0);
  });

  test('a broker crash (SIGKILL) and restart: confirmed messages survive in the quorum queue, the rest comes from the spool', async () => {
    const { queue, seen, publisher } = await pipeline('kill');
    const ids = await stream(publisher, 10_000, async (step) => {
      if (step === 8) await broker.kill();
      if (step === 12) await broker.restart();
    });
    await publisher.flush();
    await eventually(`all ${ids.length} events (have ${seen.size})`, () => seen.size === ids.length, 40_000);
    assert.deepEqual(ids.filter((id) => !seen.has(id)), []);
    assert.ok(publisher.stats.publishFailures > 0);
    await eventually('the spool to drain', () => publisher.stats.spooledEvents === 0);
    await eventually('the queue to be empty', async () => (await readyMessages(queue, broker.url)) === 0);
    const duplicates = [...seen.values()].reduce((sum, count) => sum + count - 1, 0);
    console.log(`# crash: ${duplicates} duplicate deliveries, ${publisher.stats.publishFailures} failed publishes`);
  });
});
