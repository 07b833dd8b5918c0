import { uuidv7 } from '../shared/uuid-v7.js';

/** One redirect served: the small fact the redirect path hands off and forgets. */
export interface ClickEvent {
  /**
   * UUIDv7 given by the redirect path when it builds the event: the idempotency key of the
   * whole pipeline, so a batch published twice is counted once. Optional only so that
   * events built before ids existed still type-check; see `identified`.
   */
  id?: string;
  /**
   * The link the redirect path resolved (links.id), which the click's analytics belong to.
   * Absent only on events written by a version before analytics were keyed by link (wire
   * version 1); the worker gives those the link that has the code (click-attribution.ts).
   */
  linkId?: string;
  code: string;
  at: Date;
  method: 'GET' | 'HEAD';
  referrer: string | null;
  userAgent: string | null;
  /** A syntactically valid IPv4 or IPv6 address, or null. */
  ip: string | null;
}

/** A click that carries its id: what travels on the queue and what the worker enriches. */
export type IdentifiedClickEvent = ClickEvent & { id: string };

/** A click that knows its link: what the worker enriches and stores. */
export type AttributedClickEvent = IdentifiedClickEvent & { linkId: string };

/** The wire schema version this build writes; see click-event-codec.ts. */
export const CLICK_EVENT_VERSION = 2;

/** Longest Referer and User-Agent kept; longer headers are cut to this many UTF-16 units. */
export const MAX_CLICK_HEADER_LENGTH = 1024;

/**
 * The event with an id. An event that has one is returned as it is: an id must be given
 * once, before the event is buffered, or a retried publish would count it twice.
 */
export function identified(event: ClickEvent): IdentifiedClickEvent {
  return event.id === undefined ? { ...event, id: uuidv7() } : (event as IdentifiedClickEvent);
}

/** Where the redirect path sends clicks. `record` never blocks and never throws. */
export interface ClickRecorder {
  record(event: ClickEvent): void;
  /** Writes what is buffered; resolves when it is stored (or failed and kept for retry). */
  flush(): Promise<void>;
  /** Stops the timer and writes everything that is left. */
  close(): Promise<void>;
  readonly buffered: number;
}
