/**
 * What the click publisher and consumer both declare on the broker, idempotently, on every
 * (re)connect. For `AMQP_QUEUE=shunt.clicks` (the default):
 *
 *   shunt.clicks       durable quorum queue of click batches (classic durable where the
 *                      broker refuses quorum), with x-dead-letter-exchange shunt.clicks.dlx;
 *   shunt.clicks.dlx   durable fanout exchange: where dead letters go;
 *   shunt.clicks.dead  durable queue bound to it: messages no worker can read (rejected by
 *                      the consumer, which the broker dead-letters with an `x-death` header),
 *                      and single events a worker set aside from a readable batch
 *                      (republished with `x-shunt-reason`, `x-shunt-field`, `x-shunt-error`).
 *
 * Nothing reads the dead-letter queue: it is for people (JSON, readable in the management
 * UI) and for replaying by hand once a fix is deployed.
 */
import type { Channel, ChannelModel, Options } from 'amqplib';

/** AMQP `type` of a click batch message; the schema version travels in `x-schema-version`. */
export const CLICK_BATCH_MESSAGE_TYPE = 'shunt.click-batch';
export const SCHEMA_VERSION_HEADER = 'x-schema-version';

export interface ClickTopologyNames {
  queue: string;
  deadLetterExchange: string;
  deadLetterQueue: string;
}

export interface ClickTopology extends ClickTopologyNames {
  /** What the main queue is; classic only on a broker that refused quorum. */
  queueType: 'quorum' | 'classic';
}

export function clickTopologyNames(queue: string): ClickTopologyNames {
  return { queue, deadLetterExchange: `${queue}.dlx`, deadLetterQueue: `${queue}.dead` };
}

/** Reply codes of a broker that cannot or will not make a quorum queue (or holds a classic one by that name). */
const QUORUM_REFUSED = new Set([
  406, // PRECONDITION_FAILED: the queue exists as classic ("inequivalent arg 'x-queue-type'")
  530, // NOT_ALLOWED
  540, // NOT_IMPLEMENTED: a broker before 3.8
]);

/**
 * A server-side refusal closes the channel it came on, so every declaration gets a channel
 * of its own.
 */
async function onFreshChannel<T>(connection: ChannelModel, work: (channel: Channel) => Promise<T>): Promise<T> {
  const channel = await connection.createChannel();
  // The refusal also arrives as an 'error' event, which would crash the process unheard.
  channel.on('error', () => undefined);
  const result = await work(channel);
  await channel.close().catch(() => undefined);
  return result;
}

async function assertDurableQueue(connection: ChannelModel, name: string, args: Record<string, unknown>): Promise<'quorum' | 'classic'> {
  const declare = (options: Options.AssertQueue): Promise<unknown> => onFreshChannel(connection, (channel) => channel.assertQueue(name, options));
  try {
    await declare({ durable: true, arguments: { ...args, 'x-queue-type': 'quorum' } });
    return 'quorum';
  } catch (error) {
    if (!QUORUM_REFUSED.has((error as { code?: unknown }).code as number)) throw error;
  }
  // Either no quorum queues here, or an older deployment declared a classic queue: keep it.
  await declare({ durable: true, arguments: args });
  return 'classic';
}

/** Declares the click queue, its dead-letter exchange and queue, and their binding. */
export async function assertClickTopology(connection: ChannelModel, queue: string): Promise<ClickTopology> {
  const names = clickTopologyNames(queue);
  await onFreshChannel(connection, (channel) => channel.assertExchange(names.deadLetterExchange, 'fanout', { durable: true }));
  const queueType = await assertDurableQueue(connection, names.queue, { 'x-dead-letter-exchange': names.deadLetterExchange });
  await assertDurableQueue(connection, names.deadLetterQueue, {});
  await onFreshChannel(connection, (channel) => channel.bindQueue(names.deadLetterQueue, names.deadLetterExchange, ''));
  return { ...names, queueType };
}
