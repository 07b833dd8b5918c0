/**
 * HMAC-SHA256 under one fixed key, for messages of one block (at most 55 bytes), in plain
 * JavaScript: the Feistel rounds of short-code.ts need eight bytes of it per round, seven or
 * so times per code, and Node's createHmac costs ~3 µs a call in object set-up alone. Here the
 * key's inner and outer states are computed once, so a call is two SHA-256 compressions
 * (about 1 µs). Same bytes as createHmac('sha256', key): the tests compare the two.
 */
import { createHash } from 'node:crypto';

const MAX_MESSAGE_BYTES = 55;
const BLOCK_BYTES = 64;

const K = Int32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be,
  0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa,
  0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85,
  0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
  0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f,
  0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
].map((word) => word | 0));
const INITIAL_STATE = Int32Array.from([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19].map((word) => word | 0));

/** One SHA-256 compression of the block in `w[0..15]` into `state` (`w` is scratch space of 64 words). */
function compress(state: Int32Array, w: Int32Array): void {
  for (let i = 16; i < 64; i += 1) {
    const x = w[i - 15] ?? 0;
    const y = w[i - 2] ?? 0;
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[i] = ((w[i - 16] ?? 0) + s0 + (w[i - 7] ?? 0) + s1) | 0;
  }
  let a = state[0] ?? 0;
  let b = state[1] ?? 0;
  let c = state[2] ?? 0;
  let d = state[3] ?? 0;
  let e = state[4] ?? 0;
  let f = state[5] ?? 0;
  let g = state[6] ?? 0;
  let h = state[7] ?? 0;
  for (let i = 0; i < 64; i += 1) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + s1 + ((e & f) ^ (~e & g)) + (K[i] ?? 0) + (w[i] ?? 0)) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  state[0] = ((state[0] ?? 0) + a) | 0;
  state[1] = ((state[1] ?? 0) + b) | 0;
  state[2] = ((state[2] ?? 0) + c) | 0;
  state[3] = ((state[3] ?? 0) + d) | 0;
  state[4] = ((state[4] ?? 0) + e) | 0;
  state[5] = ((state[5] ?? 0) + f) | 0;
  state[6] = ((state[6] ?? 0) + g) | 0;
  state[7] = ((state[7] ?? 0) + h) | 0;
}

/** The state after one block of the key XOR `pad` (HMAC's inner or outer prefix). */
function keyedState(key: Uint8Array, pad: number, w: Int32Array): Int32Array {
  for (let word = 0; word < 16; word += 1) {
    let value = 0;
    for (let byte = 0; byte < 4; byte += 1) value = (value << 8) | ((key[word * 4 + byte] ?? 0) ^ pad);
    w[word] = value;
  }
  const state = Int32Array.from(INITIAL_STATE);
  compress(state, w);
  return state;
}

export class ShortMessageHmac {
  readonly #inner: Int32Array;
  readonly #outer: Int32Array;
  readonly #state = new Int32Array(8);
  // Reused by every call: `first64Bits` is synchronous, so no two calls can interleave.
  readonly #w = new Int32Array(64);

  constructor(key: Uint8Array) {
    const block = key.byteLength > BLOCK_BYTES ? createHash('sha256').update(key).digest() : key;
    this.#inner = keyedState(block, 0x36, this.#w);
    this.#outer = keyedState(block, 0x5c, this.#w);
  }

  /** The first eight bytes of HMAC-SHA256(key, message), big-endian, as an unsigned integer. */
  first64Bits(message: Uint8Array): bigint {
    const length = message.byteLength;
    if (length > MAX_MESSAGE_BYTES) throw new RangeError(`message must be at most ${MAX_MESSAGE_BYTES} bytes, got ${length}`);
    const w = this.#w;
    const state = this.#state;
    w.fill(0, 0, 16);
    for (let i = 0; i < length; i += 1) w[i >> 2] = (w[i >> 2] ?? 0) | ((message[i] ?? 0) << (24 - 8 * (i & 3)));
    w[length >> 2] = (w[length >> 2] ?? 0) | (0x80 << (24 - 8 * (length & 3)));
    w[15] = (BLOCK_BYTES + length) * 8;
    state.set(this.#inner);
    compress(state, w);
    // The outer hash's one block: the inner digest, then padding for 64 + 32 bytes.
    for (let i = 0; i < 8; i += 1) w[i] = state[i] ?? 0;
    w.fill(0, 8, 16);
    w[8] = 0x80000000 | 0;
    w[15] = (BLOCK_BYTES + 32) * 8;
    state.set(this.#outer);
    compress(state, w);
    return (BigInt((state[0] ?? 0) >>> 0) << 32n) | BigInt((state[1] ?? 0) >>> 0);
  }
}
