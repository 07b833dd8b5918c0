import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { clientBucket } from '../../src/ratelimit/client-bucket.js';

describe('clientBucket', () => {
  test('an IPv4 address is its own bucket, mapped or not', () => {
    assert.equal(clientBucket('192.0.2.7'), '192.0.2.7');
    assert.equal(clientBucket('::ffff:192.0.2.7'), '192.0.2.7');
  });

  test('an IPv6 address counts by its /64, however it is written', () => {
    const bucket = clientBucket('2001:db8:aa:bb::1');
    assert.equal(bucket, '2001:db8:aa:bb::/64');
    for (const address of ['2001:0db8:00aa:00bb:ffff:ffff:ffff:ffff', '2001:db8:aa:bb:1:2:3:4', '2001:DB8:AA:BB::9', 'fe80::1%eth0'.replace('fe80::1', '2001:db8:aa:bb::2')]) {
      assert.equal(clientBucket(address), bucket, address);
    }
    assert.notEqual(clientBucket('2001:db8:aa:bc::1'), bucket);
    assert.equal(clientBucket('::1'), '0:0:0:0::/64');
  });

  test('what is not an address is left as it is', () => {
    assert.equal(clientBucket(''), '');
    assert.equal(clientBucket('not:an:address:at:all'), 'not:an:address:at:all');
  });
});
