// Short codes: integers leased in blocks from a shared DB sequence, pushed through a keyed
// format-preserving permutation, then base62-encoded. See docs/adr/0001-short-codes-from-leased-blocks.md.
import { BASE62_ALPHABET } from '../shared/base62.js';
import { ShortMessageHmac } from './short-message-hmac.js';

export { BASE62_ALPHABET };

const BASE = 62n;
// 12 keeps each Feistel half (36 bits) inside one 64-bit read of the HMAC digest, and inside a
// safe JS integer when it is serialised into the HMAC message.
const MAX_LENGTH = 12;
// The permutation itself works for any length (short ones let tests check the bijection
// exhaustively), but a generated-code space below 62^4 would run out in production.
const MIN_ALLOCATOR_LENGTH = 4;
const MIN_KEY_BYTES = 16;
// Six rounds: four is the Luby-Rackoff minimum for a strong PRP; two more are cheap headroom.
const ROUNDS = 6;

const DIGIT_VALUES: ReadonlyMap<string, bigint> = new Map(
  [...BASE62_ALPHABET].map((char, index) => [char, BigInt(index)]),
);

function assertLength(length: number, max: number): void {
  if (!Number.isInteger(length) || length < 1 || length > max) {
    throw new RangeError(`code length must be an integer in 1..${max}, got ${length}`);
  }
}

export function encodeBase62(value: bigint, length: number): string {
  assertLength(length, Number.MAX_SAFE_INTEGER);
  if (value < 0n) throw new RangeError(`cannot encode a negative value: ${value}`);
  const chars = new Array<string>(length).fill('0');
  let rest = value;
  for (let i = length - 1; i >= 0 && rest > 0n; i--) {
    chars[i] = BASE62_ALPHABET[Number(rest % BASE)] ?? '0';
    rest /= BASE;
  }
  if (rest > 0n) throw new RangeError(`value ${value} does not fit in ${length} base62 characters`);
  return chars.join('');
}

export function decodeBase62(code: string): bigint {
  if (code.length === 0) throw new SyntaxError('cannot decode an empty base62 string');
  let value = 0n;
  for (const char of code) {
    const digit = DIGIT_VALUES.get(char);
    if (digit === undefined) {
      throw new SyntaxError(`invalid base62 character ${JSON.stringify(char)} in ${JSON.stringify(code)}`);
    }
    value = value * BASE + digit;
  }
  return value;
}

/**
 * Keyed bijection on [0, 62^length): a balanced Feistel network over the smallest even bit width
 * that covers the domain, with cycle-walking to stay inside it. Uniqueness of codes follows from
 * it being a permutation; the key makes neighbouring integers map to unrelated codes.
 */
export class CodePermutation {
  readonly size: bigint;
  readonly #length: number;
  readonly #hmac: ShortMessageHmac;
  readonly #halfBits: bigint;
  readonly #halfMask: bigint;
  readonly #halfBytes: number;
  // Reused across rounds: permute() is synchronous, so no two rounds can interleave.
  readonly #message: Buffer;

  constructor(key: Uint8Array, length: number) {
    if (!(key instanceof Uint8Array) || key.byteLength < MIN_KEY_BYTES) {
      throw new RangeError(`permutation key must be at least ${MIN_KEY_BYTES} bytes`);
    }
    assertLength(length, MAX_LENGTH);
    this.#length = length;
    this.size = BASE ** BigInt(length);

    // A balanced Feistel needs an even width; the smallest one keeps the cycle-walk short
    // (for length 7, 2^42 / 62^7 ≈ 1.25 Feistel passes per code on average).
    let bits = 2;
    while (1n << BigInt(bits) < this.size) bits += 2;
    const halfBits = bits / 2;
    this.#halfBits = BigInt(halfBits);
    this.#halfMask = (1n << this.#halfBits) - 1n;
    this.#halfBytes = Math.ceil(halfBits / 8);
    this.#message = Buffer.alloc(1 + this.#halfBytes);
    // Keyed once here, so a caller mutating its array later cannot change codes.
    this.#hmac = new ShortMessageHmac(key);
  }

  permute(n: bigint): bigint {
    this.#assertInDomain(n);
    // Cycle-walking terminates: the Feistel cycle through n returns to n, which is in range.
    let x = this.#feistel(n);
    while (x >= this.size) x = this.#feistel(x);
    return x;
  }

  invert(n: bigint): bigint {
    this.#assertInDomain(n);
    let x = this.#feistelInverse(n);
    while (x >= this.size) x = this.#feistelInverse(x);
    return x;
  }

  codeFor(n: bigint): string {
    return encodeBase62(this.permute(n), this.#length);
  }

  #assertInDomain(n: bigint): void {
    if (n < 0n || n >= this.size) {
      throw new RangeError(`${n} is outside the code space [0, ${this.size})`);
    }
  }

  #feistel(x: bigint): bigint {
    let left = x >> this.#halfBits;
    let right = x & this.#halfMask;
    for (let round = 0; round < ROUNDS; round++) {
      const next = left ^ this.#roundFunction(round, right);
      left = right;
      right = next;
    }
    return (left << this.#halfBits) | right;
  }

  #feistelInverse(x: bigint): bigint {
    let left = x >> this.#halfBits;
    let right = x & this.#halfMask;
    for (let round = ROUNDS - 1; round >= 0; round--) {
      const previous = right ^ this.#roundFunction(round, left);
      right = left;
      left = previous;
    }
    return (left << this.#halfBits) | right;
  }

  #roundFunction(round: number, half: bigint): bigint {
    this.#message[0] = round;
    this.#message.writeUIntBE(Number(half), 1, this.#halfBytes);
    return this.#hmac.first64Bits(this.#message) & this.#halfMask;
  }
}

export interface CodeAllocatorOptions {
  permutation: CodePermutation;
  blockSize: number;
  leaseBlock: () => Promise<bigint>;
}

function ignore(): void {
  // A failed prefetch has no caller to tell; the next refill leases again and reports it.
}

/**
 * Hands out codes from a locally held block of integers. Only leasing a block touches the
 * database, and the next block is fetched in the background once half of the current one is
 * used, so most calls do no I/O.
 */
export class CodeAllocator {
  readonly #permutation: CodePermutation;
  readonly #blockSize: bigint;
  readonly #leaseBlock: () => Promise<bigint>;

  #cursor = 0n;
  #blockStart = 0n;
  #blockEnd = 0n;
  #spare: bigint | null = null;
  // At most one lease in flight: every waiter (and the prefetch) shares it, so a burst of callers
  // costs one DB round trip, and a failure rejects exactly the callers that were waiting on it.
  #pending: Promise<void> | null = null;
  #exhausted = false;

  constructor(options: CodeAllocatorOptions) {
    const { permutation, blockSize, leaseBlock } = options;
    if (permutation.size < BASE ** BigInt(MIN_ALLOCATOR_LENGTH)) {
      throw new RangeError(`generated codes must be at least ${MIN_ALLOCATOR_LENGTH} characters long`);
    }
    if (!Number.isSafeInteger(blockSize) || blockSize < 1) {
      throw new RangeError(`blockSize must be a positive integer, got ${blockSize}`);
    }
    this.#permutation = permutation;
    this.#blockSize = BigInt(blockSize);
    this.#leaseBlock = leaseBlock;
  }

  async next(): Promise<string> {
    for (;;) {
      if (this.#exhausted) throw exhaustedError(this.#permutation.size);
      // Taking the number happens synchronously, before any await, so concurrent callers on
      // this instance can never read the same cursor value.
      if (this.#cursor < this.#blockEnd) {
        const n = this.#cursor;
        this.#cursor += 1n;
        this.#maybePrefetch();
        return this.#permutation.codeFor(n);
      }
      if (this.#spare !== null) {
        this.#install(this.#spare);
        continue;
      }
      await this.#lease();
    }
  }

  #maybePrefetch(): void {
    if (this.#spare !== null || this.#pending !== null) return;
    if ((this.#cursor - this.#blockStart) * 2n < this.#blockSize) return;
    this.#lease().catch(ignore);
  }

  #lease(): Promise<void> {
    this.#pending ??= this.#runLease();
    return this.#pending;
  }

  async #runLease(): Promise<void> {
    try {
      const block: unknown = await this.#leaseBlock();
      // Drivers commonly return int8 columns as strings; refuse rather than mis-compute ranges.
      if (typeof block !== 'bigint' || block < 0n) {
        throw new TypeError(`leaseBlock must resolve to a non-negative bigint, got ${String(block)}`);
      }
      // Leases are only started while no spare is held, so this never discards a block.
      this.#spare = block;
    } finally {
      this.#pending = null;
    }
  }

  #install(block: bigint): void {
    this.#spare = null;
    const start = block * this.#blockSize;
    const size = this.#permutation.size;
    if (start >= size) {
      // The shared sequence only grows, so every later block is out of range as well.
      this.#exhausted = true;
      throw exhaustedError(size);
    }
    const end = start + this.#blockSize;
    this.#blockStart = start;
    this.#cursor = start;
    this.#blockEnd = end < size ? end : size;
  }
}

function exhaustedError(size: bigint): Error {
  return new Error(`short code space exhausted: all ${size} codes of this length have been allocated`);
}
