/**
 * A batch at a time into a click thread, awaited: what the broker consumer of an embedded
 * `ROLE=all` with AMQP_URL hands its deliveries to, so that decoding, enrichment and the
 * writes run in the store's thread (ADR 0010) and the delivery is acknowledged only once
 * they are committed. It shares the channel with thread-click-recorder.ts: batch numbers of
 * its own (from 2^40 up) keep each one's answers apart.
 */
import { encodeProducedClickBatch } from '../clicks/click-event-codec.js';
import type { IdentifiedClickEvent } from '../clicks/click-event.js';
import type { EnrichedClick } from '../analytics/enriched-click.js';
import { fromWireError, type ClickReply } from '../storage/embedded-protocol.js';
import type { ClickChannel } from '../storage/embedded-store.js';

const FIRST_BATCH = 2 ** 40;

type Stored = (stored: readonly EnrichedClick[], counts: { inserted: number; duplicates: number }, lagSeconds: readonly number[]) => void;

interface Waiting {
  resolve: () => void;
  reject: (error: Error) => void;
}

export class ThreadClickWriter {
  private nextBatch = FIRST_BATCH;
  private readonly waiting = new Map<number, Waiting>();

  constructor(
    private readonly channel: ClickChannel,
    private readonly options: { storeRawIp: boolean; onStored: Stored; onRefused: (events: number) => void; announce: () => boolean },
  ) {
    channel.onClickReply((reply) => this.answered(reply));
    // A new thread knows nothing of what the old one was given: the consumer tries again.
    channel.onRestart(() => this.failAll(new Error('the store thread restarted before it answered')));
    channel.startClicks({ storeRawIp: options.storeRawIp });
  }

  /** Resolves once the thread has committed the batch (or found it all stored already). */
  write(events: readonly IdentifiedClickEvent[]): Promise<void> {
    if (!this.channel.alive) return Promise.reject(new Error('the store thread is not running'));
    const batch = this.nextBatch++;
    const payload = Buffer.from(encodeProducedClickBatch(events));
    return new Promise<void>((resolve, reject) => {
      this.waiting.set(batch, { resolve, reject });
      this.channel.postClicks({ t: 'clicks', batch, payload, events: events.length, announce: this.options.announce() });
    });
  }

  private answered(reply: ClickReply): void {
    const waiting = this.waiting.get(reply.batch);
    if (waiting === undefined) return;
    this.waiting.delete(reply.batch);
    if (reply.t === 'clicks-failed') {
      waiting.reject(fromWireError(reply.error));
      return;
    }
    // Events the store refused as data were set aside one by one in the thread: acknowledged
    // with the rest, and counted as dropped.
    if (reply.refused > 0) this.options.onRefused(reply.refused);
    this.options.onStored(reply.stored as EnrichedClick[], reply, reply.lagSeconds);
    waiting.resolve();
  }

  private failAll(error: Error): void {
    for (const waiting of this.waiting.values()) waiting.reject(error);
    this.waiting.clear();
  }
}
