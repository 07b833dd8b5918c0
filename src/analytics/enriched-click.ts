/**
 * A click after the worker has enriched it: what the analytics store keeps. Derived
 * fields only; the raw IP is kept only when the operator asks for it.
 */
export type DeviceType = 'desktop' | 'mobile' | 'tablet' | 'bot' | 'other';

export interface EnrichedClick {
  /** The event's id (UUIDv7, time-ordered): the idempotency key of the whole pipeline. */
  id: string;
  /** The link clicked (links.id), which its analytics belong to. */
  linkId: string;
  /** The code it was reached by, as the raw export shows it. */
  code: string;
  at: Date;
  method: 'GET' | 'HEAD';
  /** Lower-cased host of the Referer, or null (direct). */
  referrerHost: string | null;
  /** ISO 3166-1 alpha-2, or null when unknown. */
  country: string | null;
  browser: string | null;
  os: string | null;
  device: DeviceType;
  /** Known bot user agent, or a HEAD request. */
  bot: boolean;
  /** Hash of (daily salt, IP, user agent): counts unique visitors without keeping the IP. */
  visitor: string | null;
  /** Only when raw IP storage is switched on. */
  ip: string | null;
  userAgent: string | null;
  referrer: string | null;
}
