import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { ShortMessageHmac } from '../../src/links/short-message-hmac.js';

void describe('ShortMessageHmac', () => {
  void it('gives the first eight bytes of createHmac("sha256") for every message length and key sizes around the block', () => {
    for (const keyBytes of [16, 32, 63, 64, 65, 200]) {
      const key = randomBytes(keyBytes);
      const hmac = new ShortMessageHmac(key);
      for (let length = 0; length <= 55; length += 1) {
        for (let sample = 0; sample < 8; sample += 1) {
          const message = randomBytes(length);
          assert.equal(hmac.first64Bits(message), createHmac('sha256', key).update(message).digest().readBigUInt64BE(0), `key ${keyBytes} B, message ${length} B`);
        }
      }
    }
  });

  void it('refuses a message longer than one block can carry', () => {
    assert.throws(() => new ShortMessageHmac(randomBytes(32)).first64Bits(new Uint8Array(56)), RangeError);
  });
});
