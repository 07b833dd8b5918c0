/**
 * The consumer's work on one batch of click events, whichever transport delivered it (the
 * broker, or the in-process queue of the embedded default): enrich, store raw events and
 * rollups in one transaction, then announce the clicks that were new. A batch that
 * rejects was not committed and must be delivered again; since the store is idempotent by
 * event id, a batch delivered twice is counted once.
 */
import type { IdentifiedClickEvent } from '../clicks/click-event.js';
import { writeBatch, type WriteBatchResult } from '../analytics/analytics-writer.js';
import type { ClickEnricher } from '../analytics/enrich.js';
import type { Database } from '../storage/database.js';
import type { LiveClickFeed } from '../live/live-click-feed.js';
import { attributeClicks } from './click-attribution.js';

export interface ClickProcessorOptions {
  db: Database;
  enricher: ClickEnricher;
  /** Told of every stored click; optional because a worker may run without subscribers anywhere. */
  live?: LiveClickFeed;
  /** After each committed batch: counts, and the lag of each stored event (seconds since its click). */
  onStored?: (result: WriteBatchResult, lagSeconds: readonly number[]) => void;
  /** A lost deadlock race that is being retried. */
  onRetry?: (error: unknown, attempt: number) => void;
  now?: () => number;
}

export class ClickProcessor {
  private readonly now: () => number;

  constructor(private readonly options: ClickProcessorOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Resolves once the batch is committed; rejects (nothing committed) when it must be retried. */
  async handle(events: readonly IdentifiedClickEvent[]): Promise<WriteBatchResult> {
    if (events.length === 0) return { inserted: 0, duplicates: 0, stored: [] };
    const attributed = await attributeClicks(this.options.db, events);
    const enriched = await this.options.enricher.enrichBatch(attributed.events);
    const written = await writeBatch(this.options.db, enriched, this.options.onRetry === undefined ? {} : { onRetry: this.options.onRetry });
    // Clicks of a link deleted meanwhile count as duplicates: handled, and stored nowhere.
    const result: WriteBatchResult = { ...written, duplicates: written.duplicates + attributed.orphaned };
    if (result.stored.length > 0) this.options.live?.publish(result.stored);
    if (this.options.onStored !== undefined) {
      const now = this.now();
      this.options.onStored(
        result,
        result.stored.map((click) => Math.max(0, now - click.at.getTime()) / 1000),
      );
    }
    return result;
  }
}
