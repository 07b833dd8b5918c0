import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setImmediate as nextTurn, setTimeout as delay } from 'node:timers/promises';

import {
  BASE62_ALPHABET,
  CodeAllocator,
  CodePermutation,
  decodeBase62,
  encodeBase62,
} from '../../src/links/short-code.js';

const KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
const OTHER_KEY = Uint8Array.from({ length: 32 }, (_, i) => 255 - i);
const CODE_7 = /^[0-9A-Za-z]{7}$/;

function randomBelow(limit: bigint): bigint {
  // 16 random bytes against a limit below 2^72 keeps the modulo bias negligible for sampling.
  return BigInt(`0x${randomBytes(16).toString('hex')}`) % limit;
}

/** An in-memory stand-in for the DB sequence: atomic increments, answers after a random delay. */
function sharedSequence(maxDelayMs = 2): { lease: () => Promise<bigint>; calls: () => number } {
  let nextBlock = 0n;
  let calls = 0;
  return {
    lease: async () => {
      calls += 1;
      const block = nextBlock;
      nextBlock += 1n;
      await delay(Math.floor(Math.random() * (maxDelayMs + 1)));
      return block;
    },
    calls: () => calls,
  };
}

/** Records unhandled rejections while `body` runs, so a leaked lease failure fails the test. */
async function withoutUnhandledRejections(body: () => Promise<void>): Promise<void> {
  const leaked: unknown[] = [];
  const onRejection = (reason: unknown): void => {
    leaked.push(reason);
  };
  process.on('unhandledRejection', onRejection);
  try {
    await body();
    // Unhandled rejections are reported after the microtask queue drains.
    await nextTurn();
    await delay(5);
    await nextTurn();
  } finally {
    process.off('unhandledRejection', onRejection);
  }
  assert.deepEqual(leaked, []);
}

void describe('base62', () => {
  void it('uses 0-9A-Za-z, in ASCII order, so fixed-length codes sort like their values', () => {
    assert.equal(BASE62_ALPHABET, '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz');
    assert.equal(new Set(BASE62_ALPHABET).size, 62);
  });

  void it('encodes with left padding to exactly the requested length', () => {
    assert.equal(encodeBase62(0n, 7), '0000000');
    assert.equal(encodeBase62(1n, 7), '0000001');
    assert.equal(encodeBase62(61n, 1), 'z');
    assert.equal(encodeBase62(62n, 2), '10');
    assert.equal(encodeBase62(62n ** 7n - 1n, 7), 'zzzzzzz');
    assert.equal(encodeBase62(62n ** 12n - 1n, 12), 'zzzzzzzzzzzz');
  });

  void it('round-trips values at every supported length', () => {
    for (let length = 1; length <= 12; length++) {
      const size = 62n ** BigInt(length);
      for (const value of [0n, size - 1n, ...Array.from({ length: 200 }, () => randomBelow(size))]) {
        const code = encodeBase62(value, length);
        assert.equal(code.length, length);
        assert.equal(decodeBase62(code), value);
      }
    }
  });

  void it('refuses values that do not fit, negative values and non-positive lengths', () => {
    assert.throws(() => encodeBase62(62n ** 7n, 7), RangeError);
    assert.throws(() => encodeBase62(62n, 1), RangeError);
    assert.throws(() => encodeBase62(-1n, 7), RangeError);
    assert.throws(() => encodeBase62(0n, 0), RangeError);
    assert.throws(() => encodeBase62(0n, 1.5), RangeError);
  });

  void it('rejects characters outside the alphabet and the empty string', () => {
    for (const bad of ['abc-def', 'abc_def', 'abc def', 'abcdéf', 'abc+/=', '', 'ab\u0000']) {
      assert.throws(() => decodeBase62(bad), SyntaxError, JSON.stringify(bad));
    }
  });
});

void describe('CodePermutation', () => {
  void it('is a bijection on [0, 62^length) for lengths small enough to check exhaustively', () => {
    for (const length of [1, 2, 3]) {
      const permutation = new CodePermutation(KEY, length);
      const size = Number(permutation.size);
      const seen = new Uint8Array(size);
      for (let n = 0; n < size; n++) {
        const image = permutation.permute(BigInt(n));
        assert.ok(image >= 0n && image < permutation.size, `length ${length}: ${n} -> ${image} out of range`);
        const slot = Number(image);
        assert.equal(seen[slot], 0, `length ${length}: ${image} produced twice`);
        seen[slot] = 1;
      }
      // size images, no duplicates, all in range: together they are exactly [0, size).
      assert.equal(
        seen.reduce((sum, flag) => sum + flag, 0),
        size,
      );
    }
  });

  void it('invert undoes permute everywhere at length 2 and on samples at lengths 7 and 12', () => {
    const small = new CodePermutation(KEY, 2);
    for (let n = 0n; n < small.size; n++) {
      assert.equal(small.invert(small.permute(n)), n);
      assert.equal(small.permute(small.invert(n)), n);
    }
    for (const length of [7, 12]) {
      const permutation = new CodePermutation(KEY, length);
      const samples = [0n, 1n, permutation.size - 1n, ...Array.from({ length: 2000 }, () => randomBelow(permutation.size))];
      for (const n of samples) {
        const image = permutation.permute(n);
        assert.ok(image < permutation.size);
        assert.equal(permutation.invert(image), n, `length ${length}: invert(permute(${n}))`);
      }
    }
  });

  void it('is deterministic for a key and different for another key', () => {
    const a = new CodePermutation(KEY, 7);
    const again = new CodePermutation(Uint8Array.from(KEY), 7);
    const b = new CodePermutation(OTHER_KEY, 7);
    let equalAcrossKeys = 0;
    for (let n = 0n; n < 1000n; n++) {
      assert.equal(again.codeFor(n), a.codeFor(n));
      if (b.codeFor(n) === a.codeFor(n)) equalAcrossKeys += 1;
    }
    assert.equal(equalAcrossKeys, 0);
  });

  void it('is not affected by later changes to the caller’s key array', () => {
    const key = Uint8Array.from(KEY);
    const permutation = new CodePermutation(key, 7);
    const before = permutation.codeFor(42n);
    key.fill(0);
    assert.equal(permutation.codeFor(42n), before);
  });

  void it('keeps producing the codes it produced before (frozen algorithm)', () => {
    // Pinned outputs. If this fails, the permutation changed, and every code issued before the
    // change can be issued again: that is a data-corrupting change, not a test to update.
    const p7 = new CodePermutation(KEY, 7);
    assert.equal(p7.codeFor(0n), 'hxJV4Bp');
    assert.equal(p7.codeFor(1n), 'SDQ3zuV');
    assert.equal(p7.codeFor(2n), 'THAd4lV');
    assert.equal(p7.codeFor(1000n), 'tX5W93c');
    assert.equal(p7.codeFor(62n ** 7n - 1n), '8cNFqwX');
    const p12 = new CodePermutation(KEY, 12);
    assert.equal(p12.codeFor(0n), 'F824AJjaDgXP');
    assert.equal(p12.codeFor(62n ** 12n - 1n), 'enGvDfJV2ucE');
    const p4 = new CodePermutation(KEY, 4);
    assert.equal(p4.codeFor(1n), 'ylI9');
  });

  void it('maps consecutive integers to unrelated, unordered codes', () => {
    const permutation = new CodePermutation(KEY, 7);
    const codes = Array.from({ length: 1001 }, (_, n) => permutation.codeFor(5_000_000n + BigInt(n)));
    let differing = 0;
    let ascending = 0;
    for (let i = 1; i < codes.length; i++) {
      const previous = codes[i - 1] ?? '';
      const current = codes[i] ?? '';
      for (let position = 0; position < 7; position++) {
        if (previous[position] !== current[position]) differing += 1;
      }
      if (current > previous) ascending += 1;
    }
    const pairs = codes.length - 1;
    // Independent random codes differ in 7 * 61/62 ≈ 6.89 positions; a counter differs in ~1.
    assert.ok(differing / pairs > 6, `average differing characters ${differing / pairs}`);
    // Random order ascends about half the time; a sorted (sequential) sequence always does.
    assert.ok(ascending / pairs > 0.4 && ascending / pairs < 0.6, `ascending fraction ${ascending / pairs}`);
    assert.notDeepEqual(codes, [...codes].sort());
  });

  void it('validates its arguments', () => {
    assert.throws(() => new CodePermutation(new Uint8Array(15), 7), RangeError);
    assert.throws(() => new CodePermutation(KEY, 0), RangeError);
    assert.throws(() => new CodePermutation(KEY, 13), RangeError);
    assert.throws(() => new CodePermutation(KEY, 6.5), RangeError);
    const permutation = new CodePermutation(KEY, 7);
    assert.equal(permutation.size, 62n ** 7n);
    assert.throws(() => permutation.permute(-1n), RangeError);
    assert.throws(() => permutation.permute(permutation.size), RangeError);
    assert.throws(() => permutation.invert(permutation.size), RangeError);
  });
});

void describe('CodeAllocator', () => {
  const permutation = new CodePermutation(KEY, 7);

  // The timeout turns a per-code lease regression (minutes of fake I/O) into a failure.
  void it('hands out 100,000 unique codes from two instances sharing one sequence, leasing per block', { timeout: 60_000 }, async () => {
    const TOTAL = 100_000;
    const BLOCK = 1000;
    const WORKERS_PER_ALLOCATOR = 50;
    const sequence = sharedSequence();
    const allocators = [0, 1].map(() => new CodeAllocator({ permutation, blockSize: BLOCK, leaseBlock: sequence.lease }));
    const perWorker = TOTAL / (allocators.length * WORKERS_PER_ALLOCATOR);

    const codes: string[] = [];
    const workers = allocators.flatMap((allocator) =>
      Array.from({ length: WORKERS_PER_ALLOCATOR }, async () => {
        for (let i = 0; i < perWorker; i++) codes.push(await allocator.next());
      }),
    );
    // Plus a burst of simultaneous calls that all find the instance without a block.
    const burst = allocators.map((allocator) => allocator.next());
    await Promise.all(workers);
    codes.push(...(await Promise.all(burst)));

    assert.equal(codes.length, TOTAL + allocators.length);
    assert.equal(new Set(codes).size, codes.length, 'duplicate codes');
    for (const code of codes) assert.match(code, CODE_7);

    // 50,001 codes per instance need 51 blocks each; at most one more per instance may have been
    // prefetched and left unused. A per-code lease would show ~100,000 calls here.
    const minimum = allocators.length * Math.ceil((TOTAL / allocators.length + 1) / BLOCK);
    assert.ok(sequence.calls() >= minimum, `leaseBlock calls ${sequence.calls()}`);
    assert.ok(sequence.calls() <= minimum + allocators.length, `leaseBlock calls ${sequence.calls()}`);

    // Every code traces back to an integer inside a block the sequence handed out.
    for (const code of codes.slice(0, 2000)) {
      const block = permutation.invert(decodeBase62(code)) / BigInt(BLOCK);
      assert.ok(block < BigInt(sequence.calls()), `code ${code} is from unleased block ${block}`);
    }
  });

  void it('leases the first block on demand and prefetches the next once half the block is used', async () => {
    const sequence = sharedSequence(0);
    const allocator = new CodeAllocator({ permutation, blockSize: 10, leaseBlock: sequence.lease });
    assert.equal(sequence.calls(), 0, 'no lease before the first call');

    for (let i = 0; i < 4; i++) await allocator.next();
    assert.equal(sequence.calls(), 1);
    await allocator.next();
    assert.equal(sequence.calls(), 2, 'prefetch starts when half of the block is used');

    await delay(5);
    for (let i = 0; i < 6; i++) await allocator.next();
    assert.equal(sequence.calls(), 2, 'moving to the prefetched block needs no lease');
    for (let i = 0; i < 4; i++) await allocator.next();
    assert.equal(sequence.calls(), 3, 'and the block after that is prefetched at its halfway point');
  });

  void it('shares one lease between simultaneous waiters', async () => {
    const sequence = sharedSequence(2);
    const allocator = new CodeAllocator({ permutation, blockSize: 100, leaseBlock: sequence.lease });
    const codes = await Promise.all(Array.from({ length: 40 }, () => allocator.next()));
    assert.equal(new Set(codes).size, 40);
    assert.equal(sequence.calls(), 1);
  });

  void it('rejects the callers waiting on a failed lease, and a later call retries', async () => {
    await withoutUnhandledRejections(async () => {
      const sequence = sharedSequence(1);
      let failing = true;
      let attempts = 0;
      const allocator = new CodeAllocator({
        permutation,
        blockSize: 10,
        leaseBlock: async () => {
          attempts += 1;
          if (failing) {
            await delay(1);
            throw new Error('database unavailable');
          }
          return sequence.lease();
        },
      });

      const outcomes = await Promise.allSettled([allocator.next(), allocator.next(), allocator.next()]);
      for (const outcome of outcomes) {
        assert.equal(outcome.status, 'rejected');
        assert.match(String(outcome.status === 'rejected' ? outcome.reason : ''), /database unavailable/);
      }
      assert.equal(attempts, 1, 'the waiters shared one failed lease');

      failing = false;
      assert.match(await allocator.next(), CODE_7);
      assert.equal(attempts, 2);
    });
  });

  void it('survives a failed background prefetch and reports the failure only to a caller that needs a block', async () => {
    await withoutUnhandledRejections(async () => {
      const sequence = sharedSequence(0);
      let failing = false;
      const allocator = new CodeAllocator({
        permutation,
        blockSize: 10,
        leaseBlock: async () => {
          if (failing) throw new Error('database unavailable');
          return sequence.lease();
        },
      });

      const codes: string[] = [await allocator.next()];
      failing = true;
      // The prefetch at the halfway point fails; the current block still serves its 10 codes.
      for (let i = 1; i < 10; i++) codes.push(await allocator.next());
      await assert.rejects(allocator.next(), /database unavailable/);

      failing = false;
      codes.push(await allocator.next());
      assert.equal(new Set(codes).size, codes.length);
    });
  });

  void it('rejects when leaseBlock throws synchronously or resolves to something that is not a block number', async () => {
    await withoutUnhandledRejections(async () => {
      const throwing = new CodeAllocator({
        permutation,
        blockSize: 10,
        leaseBlock: () => {
          throw new Error('driver bug');
        },
      });
      await assert.rejects(throwing.next(), /driver bug/);

      // pg returns int8 as a string unless told otherwise.
      const stringly = new CodeAllocator({ permutation, blockSize: 10, leaseBlock: () => Promise.resolve('5' as unknown as bigint) });
      await assert.rejects(stringly.next(), TypeError);
      const negative = new CodeAllocator({ permutation, blockSize: 10, leaseBlock: () => Promise.resolve(-1n) });
      await assert.rejects(negative.next(), TypeError);
    });
  });

  void it('uses the tail of the last block and then fails clearly once the code space is exhausted', async () => {
    const short = new CodePermutation(KEY, 4);
    const lastBlock = short.size / 1000n; // covers [14,776,000, 14,777,000), of which 336 exist
    let block = lastBlock;
    let calls = 0;
    const allocator = new CodeAllocator({
      permutation: short,
      blockSize: 1000,
      leaseBlock: () => {
        calls += 1;
        const leased = block;
        block += 1n;
        return Promise.resolve(leased);
      },
    });

    const codes: string[] = [];
    for (let i = 0; i < Number(short.size % 1000n); i++) codes.push(await allocator.next());
    assert.equal(new Set(codes).size, 336);
    await assert.rejects(allocator.next(), /code space exhausted/);
    const callsAtExhaustion = calls;
    await assert.rejects(allocator.next(), /code space exhausted/);
    assert.equal(calls, callsAtExhaustion, 'an exhausted allocator stops leasing');
  });

  void it('validates its options', () => {
    const leaseBlock = (): Promise<bigint> => Promise.resolve(0n);
    assert.throws(() => new CodeAllocator({ permutation, blockSize: 0, leaseBlock }), RangeError);
    assert.throws(() => new CodeAllocator({ permutation, blockSize: 1.5, leaseBlock }), RangeError);
    assert.throws(() => new CodeAllocator({ permutation: new CodePermutation(KEY, 3), blockSize: 10, leaseBlock }), RangeError);
  });
});
