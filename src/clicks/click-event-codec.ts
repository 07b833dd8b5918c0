/**
 * The wire form of clicks between the redirect path and the workers, shared by both ends.
 *
 * Version 2 is compact JSON (UTF-8), one object per event with its keys in this order:
 *
 *   {"v":2,"id":"<UUIDv7>","linkId":"42","code":"abc123","at":"2025-03-01T10:00:00.000Z",
 *    "method":"GET","referrer":null|"…","userAgent":null|"…","ip":null|"203.0.113.7"}
 *
 * `linkId` is the link the redirect path resolved (links.id, decimal text): the click's
 * analytics belong to that link, not to the code, which a later link may take. Version 1
 * is the same without `linkId`; it is still read, for events a previous version left in a
 * queue or spool at the upgrade, and the worker gives such an event the link that has its
 * code when it is stored (src/pipeline/click-attribution.ts). An event with a `linkId` is
 * written as version 2, one without (built by older code paths) as version 1.
 *
 * and a batch (what producers publish) is a JSON array of such objects. JSON rather than a
 * binary form: a dead-lettered message must be readable by whoever inspects it, and the
 * bytes are dominated by the user agent, which no schema compresses.
 *
 * The decoder is strict: every field is checked (type, length, format) and an unknown key
 * is refused, so anything a reader cannot fully understand fails loudly instead of
 * being half-read. Adding a field therefore means a new version: deploy the workers that
 * read it before the redirect instances that write it. Failures are returned, not thrown,
 * as a `ClickCodecError` that says which field and why, for the consumer to dead-letter.
 */
import { isIP } from 'node:net';
import { isCode } from '../links/code-shape.js';
import { UUID_V7_PATTERN } from '../shared/uuid-v7.js';
import { CLICK_EVENT_VERSION, MAX_CLICK_HEADER_LENGTH, type IdentifiedClickEvent } from './click-event.js';

/** Versions this build can read. */
export const READABLE_CLICK_EVENT_VERSIONS: readonly number[] = [1, 2];

/** Longest IP text: a full IPv6 address with an embedded IPv4 one. */
const MAX_IP_LENGTH = 45;
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const V1_KEYS: ReadonlySet<string> = new Set(['v', 'id', 'code', 'at', 'method', 'referrer', 'userAgent', 'ip']);
const V2_KEYS: ReadonlySet<string> = new Set(['v', 'id', 'linkId', 'code', 'at', 'method', 'referrer', 'userAgent', 'ip']);
/** links.id as text: a positive bigint. */
const LINK_ID = /^[1-9]\d{0,18}$/;

export type ClickCodecFailure =
  /** The body is not UTF-8 JSON. */
  | 'not_json'
  /** Valid JSON, but not an event object (or, for a batch, not an array). */
  | 'not_an_event'
  /** A `v` this build cannot read (a newer producer, or garbage). */
  | 'unknown_version'
  /** A field is missing or its value is not acceptable. */
  | 'invalid_field'
  /** A key the event's version does not have. */
  | 'unknown_field';

export class ClickCodecError extends Error {
  constructor(
    readonly reason: ClickCodecFailure,
    /** The offending field (`at`, `[3].ip`), when there is one. */
    readonly field: string | null,
    message: string,
  ) {
    super(field === null ? message : `${field}: ${message}`);
    this.name = 'ClickCodecError';
  }
}

export type ClickDecodeResult = { ok: true; event: IdentifiedClickEvent } | { ok: false; error: ClickCodecError };

/** One event of a batch that could not be read, with what was there, for a dead-letter queue. */
export interface RejectedClick {
  index: number;
  error: ClickCodecError;
  raw: unknown;
}

/**
 * A batch either cannot be read at all (not JSON, not an array), or is read event by event:
 * one bad event is set aside without sinking the others.
 */
export type ClickBatchDecodeResult =
  | { ok: true; events: IdentifiedClickEvent[]; rejected: RejectedClick[] }
  | { ok: false; error: ClickCodecError };

interface WireClick {
  v: 1 | 2;
  id: string;
  linkId?: string;
  code: string;
  at: string;
  method: 'GET' | 'HEAD';
  referrer: string | null;
  userAgent: string | null;
  ip: string | null;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

// Clicks of one millisecond share their time's text: at tens of thousands of clicks a
// second, formatting each was most of the cost of encoding a batch.
let lastAtMs = Number.NaN;
let lastAtText = 'Invalid Date';

function wireTime(at: Date): string {
  const ms = at.getTime();
  if (ms !== lastAtMs) {
    if (Number.isNaN(ms)) return 'Invalid Date';
    lastAtText = at.toISOString();
    lastAtMs = ms;
  }
  return lastAtText;
}

function toWire(event: IdentifiedClickEvent): WireClick {
  if (event.linkId === undefined) {
    return { v: 1, id: event.id, code: event.code, at: wireTime(event.at), method: event.method, referrer: event.referrer, userAgent: event.userAgent, ip: event.ip };
  }
  return {
    v: CLICK_EVENT_VERSION,
    id: event.id,
    linkId: event.linkId,
    code: event.code,
    at: wireTime(event.at),
    method: event.method,
    referrer: event.referrer,
    userAgent: event.userAgent,
    ip: event.ip,
  };
}

function isHeaderText(value: unknown): value is string | null {
  return value === null || (typeof value === 'string' && value.length > 0 && value.length <= MAX_CLICK_HEADER_LENGTH);
}

function isClientIp(value: unknown): value is string | null {
  // isIP accepts a zone (`fe80::1%eth0`); the redirect path drops zones, so one here is not ours.
  return value === null || (typeof value === 'string' && value.length <= MAX_IP_LENGTH && !value.includes('%') && isIP(value) !== 0);
}

/** Checks a JSON value against its version; `prefix` (`[3]`) places the event inside a batch. */
function fromWire(value: unknown, prefix = ''): ClickDecodeResult {
  const fail = (reason: ClickCodecFailure, field: string | null, message: string): ClickDecodeResult => {
    const where = field === null ? prefix || null : prefix === '' ? field : `${prefix}.${field}`;
    return { ok: false, error: new ClickCodecError(reason, where, message) };
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail('not_an_event', null, 'a click event must be a JSON object');
  }
  const record = value as Record<string, unknown>;
  const version = record.v;
  if (version === undefined) return fail('invalid_field', 'v', 'missing (the schema version)');
  if (typeof version !== 'number' || !READABLE_CLICK_EVENT_VERSIONS.includes(version)) {
    return fail('unknown_version', 'v', `version ${JSON.stringify(version)} is not one this build reads (${READABLE_CLICK_EVENT_VERSIONS.join(', ')})`);
  }
  const keys = version === 1 ? V1_KEYS : V2_KEYS;
  for (const key of Object.keys(record)) {
    if (!keys.has(key)) return fail('unknown_field', key, `not a field of version ${version}`);
  }
  for (const key of keys) {
    if (!(key in record)) return fail('invalid_field', key, 'missing (null when absent)');
  }

  const { id, linkId, code, at, method, referrer, userAgent, ip } = record;
  if (typeof id !== 'string' || !UUID_V7_PATTERN.test(id)) {
    return fail('invalid_field', 'id', 'must be a lower-case UUIDv7 string');
  }
  if (version === 2 && (typeof linkId !== 'string' || !LINK_ID.test(linkId))) {
    return fail('invalid_field', 'linkId', 'must be a link id: a positive integer as decimal text');
  }
  if (typeof code !== 'string' || !isCode(code)) {
    return fail('invalid_field', 'code', 'must be 1-64 characters of A-Z, a-z, 0-9, _ and -');
  }
  if (typeof at !== 'string' || !ISO_INSTANT.test(at)) {
    return fail('invalid_field', 'at', 'must be an ISO 8601 UTC time like 2025-03-01T10:00:00.000Z');
  }
  const time = new Date(at);
  // Date accepts 2025-02-30 and rolls it over; a real instant prints back the same.
  if (Number.isNaN(time.getTime()) || time.toISOString() !== at) {
    return fail('invalid_field', 'at', 'is not a real date and time');
  }
  if (method !== 'GET' && method !== 'HEAD') return fail('invalid_field', 'method', 'must be "GET" or "HEAD"');
  const headerRule = `must be null or a string of 1-${MAX_CLICK_HEADER_LENGTH} characters`;
  if (!isHeaderText(referrer)) return fail('invalid_field', 'referrer', headerRule);
  if (!isHeaderText(userAgent)) return fail('invalid_field', 'userAgent', headerRule);
  if (!isClientIp(ip)) return fail('invalid_field', 'ip', 'must be null or an IPv4 or IPv6 address (no zone)');
  const event: IdentifiedClickEvent = { id, code, at: time, method, referrer, userAgent, ip };
  if (typeof linkId === 'string') event.linkId = linkId;
  return { ok: true, event };
}

function parseBody(body: string | Uint8Array): { ok: true; value: unknown } | { ok: false; error: ClickCodecError } {
  let text: string;
  try {
    text = typeof body === 'string' ? body : utf8.decode(body);
  } catch {
    return { ok: false, error: new ClickCodecError('not_json', null, 'body is not valid UTF-8') };
  }
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    return { ok: false, error: new ClickCodecError('not_json', null, `body is not JSON (${(error as Error).message})`) };
  }
}

/**
 * Checks before writing, so a producer bug fails where it is made rather than in a worker.
 * Throws `ClickCodecError`.
 */
function checkedWire(event: IdentifiedClickEvent, prefix = ''): WireClick {
  const wire = toWire(event);
  const checked = fromWire(wire, prefix);
  if (!checked.ok) throw checked.error;
  return wire;
}

export function encodeClickEvent(event: IdentifiedClickEvent): string {
  return JSON.stringify(checkedWire(event));
}

/** One message body for many events. Throws `ClickCodecError` if any event is not valid. */
export function encodeClickBatch(events: readonly IdentifiedClickEvent[]): string {
  return JSON.stringify(events.map((event, index) => checkedWire(event, `[${index}]`)));
}

/**
 * One message body for events built by the redirect path (click-capture.ts), which makes
 * them valid by construction. It skips the per-field check of `encodeClickBatch`, which cost
 * as much as the rest of publishing together on the redirect path: a bad event from a
 * producer bug is still found, one by one, by the worker's decoder, which sets it aside in
 * the dead-letter queue without sinking the rest of the batch.
 */
export function encodeProducedClickBatch(events: readonly IdentifiedClickEvent[]): string {
  return JSON.stringify(events.map(toWire));
}

export function decodeClickEvent(body: string | Uint8Array): ClickDecodeResult {
  const parsed = parseBody(body);
  return parsed.ok ? fromWire(parsed.value) : parsed;
}

export function decodeClickBatch(body: string | Uint8Array): ClickBatchDecodeResult {
  const parsed = parseBody(body);
  if (!parsed.ok) return parsed;
  if (!Array.isArray(parsed.value)) {
    return { ok: false, error: new ClickCodecError('not_an_event', null, 'a click batch must be a JSON array of events') };
  }
  const events: IdentifiedClickEvent[] = [];
  const rejected: RejectedClick[] = [];
  parsed.value.forEach((raw: unknown, index) => {
    const result = fromWire(raw, `[${index}]`);
    if (result.ok) events.push(result.event);
    else rejected.push({ index, error: result.error, raw });
  });
  return { ok: true, events, rejected };
}
