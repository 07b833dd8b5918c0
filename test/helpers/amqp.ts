/**
 * Shared pieces of the click transport tests: the shared RabbitMQ, unique queues that are
 * deleted afterwards, click fixtures, and a logger that keeps what it was told (printed
 * when SHUNT_TEST_LOGS=1).
 */
import { randomBytes } from 'node:crypto';
import amqp from 'amqplib';
import type { ClickEvent } from '../../src/clicks/click-event.js';
import type { TransportLogger } from '../../src/pipeline/amqp-connection.js';
import { clickTopologyNames } from '../../src/pipeline/amqp-topology.js';
import { uuidv7 } from '../../src/shared/uuid-v7.js';

export const SHARED_AMQP_URL = process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

export function amqpPort(url: string): number {
  const parsed = new URL(url);
  return parsed.port === '' ? 5672 : Number(parsed.port);
}

/** The URL with `host:port` replaced: how a client is sent through a proxy. */
export function amqpUrlVia(url: string, port: number): string {
  const parsed = new URL(url);
  parsed.hostname = '127.0.0.1';
  parsed.port = String(port);
  return parsed.href;
}

export async function amqpReachable(url = SHARED_AMQP_URL): Promise<boolean> {
  try {
    const connection = await amqp.connect(url, { timeout: 2000 });
    connection.on('error', () => undefined);
    await connection.close();
    return true;
  } catch {
    return false;
  }
}

export function uniqueQueue(): string {
  return `shunt.test.${randomBytes(5).toString('hex')}`;
}

/** Runs `work` on a short-lived channel of its own. */
export async function withChannel<T>(work: (channel: amqp.Channel) => Promise<T>, url = SHARED_AMQP_URL): Promise<T> {
  const connection = await amqp.connect(url, { timeout: 5000 });
  connection.on('error', () => undefined);
  try {
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    return await work(channel);
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/** Messages ready in a queue. */
export function readyMessages(queue: string, url = SHARED_AMQP_URL): Promise<number> {
  return withChannel(async (channel) => (await channel.checkQueue(queue)).messageCount, url);
}

/** Deletes the click queue, its dead-letter queue and exchange. */
export async function deleteClickTopology(queue: string, url = SHARED_AMQP_URL): Promise<void> {
  const names = clickTopologyNames(queue);
  for (const remove of [
    (channel: amqp.Channel) => channel.deleteQueue(names.queue),
    (channel: amqp.Channel) => channel.deleteQueue(names.deadLetterQueue),
    (channel: amqp.Channel) => channel.deleteExchange(names.deadLetterExchange),
  ]) {
    await withChannel(remove, url).catch(() => undefined);
  }
}

/** A click with its id given, so a test knows every id it should see. */
export function click(n: number): ClickEvent & { id: string } {
  return {
    id: uuidv7(),
    code: `c${n % 1000}`,
    at: new Date(1_750_000_000_000 + n),
    method: 'GET',
    referrer: n % 3 === 0 ? 'https://example.com/' : null,
    userAgent: 'Mozilla/5.0 (X11; Linux x86_64) shunt-test',
    ip: `203.0.113.${n % 250}`,
  };
}

export interface TestLogger extends TransportLogger {
  lines: { level: string; message: string; object: object }[];
}

export function testLogger(name: string): TestLogger {
  const lines: TestLogger['lines'] = [];
  const at =
    (level: string) =>
    (object: object, message: string): void => {
      lines.push({ level, message, object });
      if (process.env.SHUNT_TEST_LOGS === '1') console.log(`[${name}] ${level}: ${message}`, JSON.stringify(object, (key, value: unknown) => (value instanceof Error ? value.message : value)));
    };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export async function eventually(what: string, check: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
