/**
 * UUIDv7 (RFC 9562): a 48-bit Unix millisecond timestamp, then random bits, so ids sort by
 * creation time and index well. Within one millisecond a 42-bit counter (RFC 9562 section
 * 6.2, method 1, in the 12 bits of rand_a and the top 30 of rand_b) keeps the ids of one
 * process strictly increasing; it starts each millisecond at a random value below 2^41, so
 * other processes cannot guess it and a burst still has 2^41 steps of room. The last 32 bits
 * are random for every id. No package: node:crypto is all it needs and it sits on the
 * redirect path, so it draws randomness from a pooled buffer rather than per call.
 */
import { randomFillSync } from 'node:crypto';

const HEX: readonly string[] = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));
const TWO_POW_32 = 0x1_0000_0000;
const COUNTER_MAX = 2 ** 42 - 1;
const MAX_TIMESTAMP = 2 ** 48 - 1;

export const UUID_V7_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export interface UuidV7Options {
  /** Milliseconds since the Unix epoch. */
  now?: () => number;
  /** Fills the array with random bytes. */
  randomFill?: (bytes: Uint8Array) => void;
}

/** Serves random bytes from a refilled pool: one randomFillSync per 512 ids instead of one per id. */
function pooledRandom(fill: (bytes: Uint8Array) => void, size = 4096): () => number {
  const pool = new Uint8Array(size);
  let offset = size;
  return () => {
    if (offset === size) {
      fill(pool);
      offset = 0;
    }
    return pool[offset++] as number;
  };
}

/** A generator with its own clock and counter state; ids from one generator strictly increase. */
export function createUuidV7Generator(options: UuidV7Options = {}): () => string {
  const now = options.now ?? Date.now;
  const byte = pooledRandom(options.randomFill ?? ((bytes) => randomFillSync(bytes)));
  let lastMs = -1;
  let counter = 0;

  // The top bit stays clear so the counter can count at least 2^41 times before it overflows.
  const freshCounter = (): number => {
    const high = ((byte() << 8) | byte()) & 0x1ff;
    const low = ((byte() << 24) | (byte() << 16) | (byte() << 8) | byte()) >>> 0;
    return high * TWO_POW_32 + low;
  };

  return function uuidv7(): string {
    const ms = now();
    if (!Number.isSafeInteger(ms) || ms < 0 || ms > MAX_TIMESTAMP) throw new RangeError(`clock out of UUIDv7 range: ${ms}`);
    if (ms > lastMs) {
      lastMs = ms;
      counter = freshCounter();
    } else if (counter < COUNTER_MAX) {
      // Same millisecond, or the clock went back: keep the last timestamp and count on, so
      // ids never go backwards even when the system clock does.
      counter += 1;
    } else {
      // 2^41+ ids in one millisecond: borrow the next millisecond rather than repeat.
      lastMs += 1;
      counter = freshCounter();
    }
    const msHigh = Math.floor(lastMs / TWO_POW_32);
    const msLow = lastMs >>> 0;
    const counterHigh = Math.floor(counter / TWO_POW_32); // bits 41..32
    const counterLow = counter >>> 0; // bits 31..0
    return (
      HEX[(msHigh >>> 8) & 0xff]! +
      HEX[msHigh & 0xff]! +
      HEX[msLow >>> 24]! +
      HEX[(msLow >>> 16) & 0xff]! +
      '-' +
      HEX[(msLow >>> 8) & 0xff]! +
      HEX[msLow & 0xff]! +
      '-' +
      HEX[0x70 | (counterHigh >>> 6)]! +
      HEX[((counterHigh & 0x3f) << 2) | (counterLow >>> 30)]! +
      '-' +
      HEX[0x80 | ((counterLow >>> 24) & 0x3f)]! +
      HEX[(counterLow >>> 16) & 0xff]! +
      '-' +
      HEX[(counterLow >>> 8) & 0xff]! +
      HEX[counterLow & 0xff]! +
      HEX[byte()]! +
      HEX[byte()]! +
      HEX[byte()]! +
      HEX[byte()]!
    );
  };
}

/** The process-wide generator: one counter, so every id this process makes is ordered. */
export const uuidv7: () => string = createUuidV7Generator();

export function isUuidV7(value: string): boolean {
  return UUID_V7_PATTERN.test(value);
}

/** The millisecond timestamp an id carries. */
export function uuidV7Timestamp(id: string): number {
  if (!isUuidV7(id)) throw new TypeError(`not a UUIDv7: ${JSON.stringify(id)}`);
  return Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
