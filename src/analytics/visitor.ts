/**
 * Unique visitors without keeping who they are. The key of a click is
 * HMAC-SHA256(salt of its UTC day, IP + user agent), cut to 16 bytes: equal for the same
 * visitor within a day, unrelated across days, and not reversible by anyone once the day's
 * salt is deleted, since the IP space is small enough to try every address against a known
 * salt. Salts live a few days (late events still need theirs) and are then deleted.
 */
import { createHmac, randomBytes } from 'node:crypto';
import ipaddr from 'ipaddr.js';

/** The daily salts every worker shares; `day` is a UTC date, `YYYY-MM-DD`. */
export interface VisitorSalts {
  saltFor(day: string): Promise<Buffer>;
}

export const VISITOR_SALT_BYTES = 32;
const VISITOR_KEY_BYTES = 16;
const DAY_MS = 86_400_000;
/** Days before today whose salt is still kept and used, for events that arrive late. */
export const VISITOR_SALT_PAST_DAYS = 2;
const DAY_PATTERN = /^\d{4}-\d{2}-\d{2}$/;

// The last day formatted: a batch's events almost all fall on one day, and this runs per event.
let lastDayNumber = Number.NaN;
let lastDay = '';

export function utcDay(at: Date | number): string {
  const ms = typeof at === 'number' ? at : at.getTime();
  const dayNumber = Math.floor(ms / DAY_MS);
  if (dayNumber !== lastDayNumber) {
    lastDay = new Date(dayNumber * DAY_MS).toISOString().slice(0, 10);
    lastDayNumber = dayNumber;
  }
  return lastDay;
}

export function isUtcDay(day: string): boolean {
  return DAY_PATTERN.test(day) && !Number.isNaN(Date.parse(day)) && utcDay(Date.parse(day)) === day;
}

/** The oldest day whose salt may exist at `now`; older salts are deleted. */
export function oldestSaltDay(now: number): string {
  return utcDay(now - VISITOR_SALT_PAST_DAYS * DAY_MS);
}

/**
 * Whether a day's salt may be used (and so created) at `now`: from two days back, so events
 * delayed by a backlog keep their key, to tomorrow, for a producer whose clock runs ahead
 * over midnight. Outside it the visitor is unknown: an old salt must not come back to life.
 */
export function isSaltDayUsable(day: string, now: number): boolean {
  return day >= oldestSaltDay(now) && day <= utcDay(now + DAY_MS);
}

/** One text form per address, so `::ffff:192.0.2.1` and `192.0.2.1` are one visitor. */
function canonicalIp(ip: string): string {
  try {
    return ipaddr.process(ip).toString();
  } catch {
    return ip;
  }
}

export function visitorKey(salt: Buffer, ip: string, userAgent: string | null): string {
  // A newline cannot occur in an IP address, so no two (ip, agent) pairs give one message.
  return createHmac('sha256', salt)
    .update(`${canonicalIp(ip)}\n${userAgent ?? ''}`)
    .digest()
    .subarray(0, VISITOR_KEY_BYTES)
    .toString('hex');
}

/** Salts held by this process only, for tests: other workers would not share them. */
export class MemoryVisitorSalts implements VisitorSalts {
  private readonly salts = new Map<string, Buffer>();

  saltFor(day: string): Promise<Buffer> {
    if (!isUtcDay(day)) return Promise.reject(new RangeError(`not a UTC day: ${JSON.stringify(day)}`));
    let salt = this.salts.get(day);
    if (salt === undefined) {
      salt = randomBytes(VISITOR_SALT_BYTES);
      this.salts.set(day, salt);
    }
    return Promise.resolve(salt);
  }
}
