/**
 * The click work of the embedded store's thread (ADR 0010): batches posted by the HTTP
 * thread (thread-click-recorder.ts) are decoded, enriched and stored here, one batch at a
 * time between the other queries, and each is answered: stored (with the clicks to
 * announce), or failed and to be sent again. Events the store refuses as data are set
 * aside one by one and counted, so one bad event cannot hold the rest back.
 */
import { decodeClickBatch } from '../clicks/click-event-codec.js';
import type { IdentifiedClickEvent } from '../clicks/click-event.js';
import { DatabaseVisitorSalts } from '../analytics/database-visitor-salts.js';
import { ClickEnricher } from '../analytics/enrich.js';
import type { EnrichedClick } from '../analytics/enriched-click.js';
import { isDataError, type Database } from '../storage/database.js';
import { toWireError, type ClickReply, type ClickRequest } from '../storage/embedded-protocol.js';
import { ClickProcessor } from './click-processor.js';

interface Outcome {
  inserted: number;
  duplicates: number;
  refused: number;
  stored: EnrichedClick[];
}

export function serveClicks(db: Database, options: { storeRawIp: boolean }, reply: (message: ClickReply) => void): (request: ClickRequest) => void {
  const enricher = new ClickEnricher({ salts: new DatabaseVisitorSalts(db), storeRawIp: options.storeRawIp });
  const processor = new ClickProcessor({ db, enricher });
  let tail: Promise<void> = Promise.resolve();

  const handle = async (request: ClickRequest): Promise<void> => {
    try {
      const decoded = decodeClickBatch(request.payload);
      // A batch the HTTP thread encoded itself is readable; anything else is refused whole.
      const outcome = decoded.ok ? await store(processor, decoded.events) : { inserted: 0, duplicates: 0, refused: request.events, stored: [] };
      if (decoded.ok) outcome.refused += decoded.rejected.length;
      const now = Date.now();
      reply({
        t: 'clicks-done',
        batch: request.batch,
        ...outcome,
        lagSeconds: outcome.stored.map((click) => Math.max(0, now - click.at.getTime()) / 1000),
        // Cloning 500 enriched clicks costs the receiving thread about a millisecond and a half:
        // sent only when someone may be watching.
        stored: request.announce ? outcome.stored : [],
      });
    } catch (error) {
      reply({ t: 'clicks-failed', batch: request.batch, error: toWireError(error) });
    }
  };
  return (request) => {
    tail = tail.then(() => handle(request));
  };
}

async function store(processor: ClickProcessor, events: readonly IdentifiedClickEvent[]): Promise<Outcome> {
  try {
    const result = await processor.handle(events);
    return { inserted: result.inserted, duplicates: result.duplicates, refused: 0, stored: [...result.stored] };
  } catch (error) {
    if (!isDataError(error)) throw error;
  }
  const outcome: Outcome = { inserted: 0, duplicates: 0, refused: 0, stored: [] };
  for (const event of events) {
    try {
      const result = await processor.handle([event]);
      outcome.inserted += result.inserted;
      outcome.duplicates += result.duplicates;
      outcome.stored.push(...result.stored);
    } catch (error) {
      if (!isDataError(error)) throw error;
      outcome.refused += 1;
    }
  }
  return outcome;
}
