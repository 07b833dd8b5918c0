/**
 * Unique visitors without keeping who they are. The key of a click is
 * HMAC-SHA256(salt of its UTC day, IP + user agent), cut to 16 bytes: equal for the same
 * visitor within a day, unrelated across days, and not reversible by anyone once the day's
 * salt is deleted, since the IP space is small enough to try every address against a known
 * salt. Salts live a few days (late events still need theirs) and are then deleted.
 */
import { hash, randomBytes } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { isPlainIpv4 } from './ip-address.js';

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

// The days formatted lately: this runs for every event, and for the bounds of the usable
// salts beside it, so one remembered day would be formatted again at every call.
const dayTexts = new Map<number, string>();

export function utcDay(at: Date | number): string {
  const ms = typeof at === 'number' ? at : at.getTime();
  const dayNumber = Math.floor(ms / DAY_MS);
  let day = dayTexts.get(dayNumber);
  if (day === undefined) {
    day = new Date(dayNumber * DAY_MS).toISOString().slice(0, 10);
    if (dayTexts.size >= 64) dayTexts.clear();
    dayTexts.set(dayNumber, day);
  }
  return day;
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
  // Most clicks come from an IPv4 address already written the one way ipaddr.js prints it.
  if (isPlainIpv4(ip)) return ip;
  try {
    return ipaddr.process(ip).toString();
  } catch {
    return ip;
  }
}

const SHA256_BLOCK_BYTES = 64;

/** A salt's HMAC pads (RFC 2104): the key XOR 0x36 and XOR 0x5c, to a whole block. */
interface HmacPads {
  inner: Buffer;
  outer: Buffer;
}

const padsOfSalt = new WeakMap<Buffer, HmacPads>();

function hmacPads(salt: Buffer): HmacPads {
  let pads = padsOfSalt.get(salt);
  if (pads === undefined) {
    // A salt is shorter than a block, so the key is the salt itself, zero-padded.
    if (salt.length > SHA256_BLOCK_BYTES) throw new RangeError(`a visitor salt is at most ${SHA256_BLOCK_BYTES} bytes`);
    const inner = Buffer.alloc(SHA256_BLOCK_BYTES, 0x36);
    const outer = Buffer.alloc(SHA256_BLOCK_BYTES, 0x5c);
    for (let i = 0; i < salt.length; i += 1) {
      inner[i] = (inner[i] as number) ^ (salt[i] as number);
      outer[i] = (outer[i] as number) ^ (salt[i] as number);
    }
    pads = { inner, outer };
    padsOfSalt.set(salt, pads);
  }
  return pads;
}

/**
 * HMAC-SHA256 spelt out as its two hashes, with the salt's pads computed once: the same bytes
 * as createHmac, at about two thirds of its cost, which showed in the worker's profile (one
 * key per click).
 */
function hmacSha256(salt: Buffer, message: string): string {
  const pads = hmacPads(salt);
  const inner = hash('sha256', Buffer.concat([pads.inner, Buffer.from(message, 'utf8')]), 'buffer');
  return hash('sha256', Buffer.concat([pads.outer, inner]), 'hex');
}

export function visitorKey(salt: Buffer, ip: string, userAgent: string | null): string {
  // A newline cannot occur in an IP address, so no two (ip, agent) pairs give one message.
  return hmacSha256(salt, `${canonicalIp(ip)}\n${userAgent ?? ''}`).slice(0, 2 * VISITOR_KEY_BYTES);
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
