import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { identified, MAX_CLICK_HEADER_LENGTH, type IdentifiedClickEvent } from '../../src/clicks/click-event.js';
import {
  ClickCodecError,
  decodeClickBatch,
  decodeClickEvent,
  encodeClickBatch,
  encodeProducedClickBatch,
  encodeClickEvent,
  type ClickCodecFailure,
} from '../../src/clicks/click-event-codec.js';
import { clickFrom } from '../../src/http/click-capture.js';
import { createUuidV7Generator, isUuidV7, uuidv7, uuidV7Timestamp } from '../../src/shared/uuid-v7.js';

const AT = new Date('2025-03-01T10:00:00.000Z');
const CHROME = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';

function event(overrides: Partial<IdentifiedClickEvent> = {}): IdentifiedClickEvent {
  return {
    id: '01954e5a-4c00-7abc-8def-0123456789ab',
    code: 'abc123',
    at: AT,
    method: 'GET',
    referrer: 'https://news.example/item?id=1',
    userAgent: CHROME,
    ip: '203.0.113.7',
    ...overrides,
  };
}

/** The wire object of `event()`, to break one field at a time. */
function wire(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...(JSON.parse(encodeClickEvent(event())) as Record<string, unknown>), ...overrides };
}

function without(key: string): Record<string, unknown> {
  const value = wire();
  delete value[key];
  return value;
}

function refused(body: string | Uint8Array, reason: ClickCodecFailure, field: string | null): ClickCodecError {
  const result = decodeClickEvent(body);
  assert.equal(result.ok, false, `accepted: ${typeof body === 'string' ? body : '<bytes>'}`);
  assert.ok(!result.ok);
  assert.ok(result.error instanceof ClickCodecError);
  assert.equal(result.error.reason, reason, result.error.message);
  assert.equal(result.error.field, field, result.error.message);
  return result.error;
}

describe('click event codec: version 2 carries the link', () => {
  const linked = (overrides: Partial<IdentifiedClickEvent> = {}): IdentifiedClickEvent => event({ linkId: '42', ...overrides });

  test('an event with its link is written as v2, linkId after id', () => {
    assert.equal(
      encodeClickEvent(linked()),
      `{"v":2,"id":"01954e5a-4c00-7abc-8def-0123456789ab","linkId":"42","code":"abc123","at":"2025-03-01T10:00:00.000Z","method":"GET",` +
        `"referrer":"https://news.example/item?id=1","userAgent":${JSON.stringify(CHROME)},"ip":"203.0.113.7"}`,
    );
    const decoded = decodeClickEvent(encodeClickEvent(linked()));
    assert.ok(decoded.ok);
    assert.deepEqual(decoded.event, linked());
  });

  test('v1 events (left in a queue or spool by the version before) are still read, without a link', () => {
    const decoded = decodeClickEvent(encodeClickEvent(event()));
    assert.ok(decoded.ok);
    assert.equal(decoded.event.linkId, undefined);
    assert.equal('linkId' in decoded.event, false);
  });

  test('v2 requires a well-formed linkId; v1 refuses one', () => {
    const v2 = JSON.parse(encodeClickEvent(linked())) as Record<string, unknown>;
    for (const linkId of [undefined, null, 42, '0', '-1', '01', '1.5', '12345678901234567890', 'abc']) {
      const body = { ...v2, linkId };
      if (linkId === undefined) delete body.linkId;
      refused(JSON.stringify(body), 'invalid_field', 'linkId');
    }
    refused(JSON.stringify(wire({ linkId: '42' })), 'unknown_field', 'linkId');
  });

  test('a batch may mix versions', () => {
    const body = `[${encodeClickEvent(event())},${encodeClickEvent(linked({ id: '01954e5a-4c00-7abc-8def-0123456789ac' }))}]`;
    const decoded = decodeClickBatch(body);
    assert.ok(decoded.ok);
    assert.deepEqual(decoded.events.map((e) => e.linkId), [undefined, '42']);
    assert.equal(decoded.rejected.length, 0);
  });

  test('the redirect path writes the link it resolved', () => {
    const click = clickFrom({ id: '7', code: 'promo' }, 'GET', {}, undefined);
    assert.equal(click.linkId, '7');
    assert.equal(click.code, 'promo');
    assert.match(encodeClickEvent(click), /^\{"v":2,/);
  });
});

describe('click event codec: round trips', () => {
  test('the v1 wire form is compact JSON with a fixed key order', () => {
    assert.equal(
      encodeClickEvent(event()),
      `{"v":1,"id":"01954e5a-4c00-7abc-8def-0123456789ab","code":"abc123","at":"2025-03-01T10:00:00.000Z","method":"GET",` +
        `"referrer":"https://news.example/item?id=1","userAgent":${JSON.stringify(CHROME)},"ip":"203.0.113.7"}`,
    );
  });

  test('an event decodes to what was encoded, Date included', () => {
    const original = event();
    const result = decodeClickEvent(encodeClickEvent(original));
    assert.ok(result.ok, result.ok ? '' : result.error.message);
    assert.deepEqual(result.event, original);
    assert.ok(result.event.at instanceof Date);
  });

  test('a batch round trips every kind of value, from a string or from bytes', () => {
    const events = [
      event(),
      event({ id: uuidv7(), method: 'HEAD', referrer: null, userAgent: null, ip: null }),
      event({ id: uuidv7(), code: 'A_b-9', ip: '2001:db8::1', userAgent: 'Agent (ünïcode; ✓) {"json":1}\t"quoted"' }),
      event({ id: uuidv7(), ip: '::ffff:192.0.2.1', referrer: 'r'.repeat(MAX_CLICK_HEADER_LENGTH), userAgent: 'u'.repeat(MAX_CLICK_HEADER_LENGTH) }),
      event({ id: uuidv7(), code: 'x'.repeat(64), at: new Date('1999-12-31T23:59:59.999Z') }),
    ];
    const body = encodeClickBatch(events);
    for (const input of [body, Buffer.from(body, 'utf8')]) {
      const result = decodeClickBatch(input);
      assert.ok(result.ok);
      assert.deepEqual(result.rejected, []);
      assert.deepEqual(result.events, events);
    }
  });

  test('an empty batch is an empty array', () => {
    assert.equal(encodeClickBatch([]), '[]');
    assert.deepEqual(decodeClickBatch('[]'), { ok: true, events: [], rejected: [] });
  });
});

describe('click event codec: strict decoding', () => {
  test('a body that is not UTF-8 JSON', () => {
    refused('', 'not_json', null);
    refused('{"v":1,', 'not_json', null);
    refused('undefined', 'not_json', null);
    const error = refused(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), 'not_json', null);
    assert.match(error.message, /UTF-8/);
  });

  test('JSON that is not an event object', () => {
    for (const body of ['null', '1', '"event"', 'true', '[]', `[${encodeClickEvent(event())}]`]) refused(body, 'not_an_event', null);
  });

  test('a missing version is malformed; any version but 1 and 2 is unknown', () => {
    assert.match(refused(JSON.stringify(without('v')), 'invalid_field', 'v').message, /missing/);
    for (const v of [3, 0, -1, 1.5, '1', null, true, [1]]) {
      const error = refused(JSON.stringify(wire({ v })), 'unknown_version', 'v');
      assert.match(error.message, /not one this build reads/);
    }
  });

  test('an unknown version is refused before its fields are judged', () => {
    // A v3 event may legitimately have fields v2 does not know: it is dead-lettered as
    // unknown_version, to be replayed by a newer worker, not as malformed.
    refused(JSON.stringify({ v: 3, id: 'whatever', country: 'NL' }), 'unknown_version', 'v');
  });

  test('a key version 1 does not have', () => {
    refused(JSON.stringify(wire({ country: 'NL' })), 'unknown_field', 'country');
    refused('{"__proto__":{},"v":1}', 'unknown_field', '__proto__');
  });

  test('every field is required, null standing for absent', () => {
    for (const key of ['id', 'code', 'at', 'method', 'referrer', 'userAgent', 'ip']) {
      assert.match(refused(JSON.stringify(without(key)), 'invalid_field', key).message, /missing/);
    }
  });

  const INVALID: Record<string, readonly unknown[]> = {
    id: [
      null,
      42,
      '',
      'not-a-uuid',
      '01954E5A-4C00-7ABC-8DEF-0123456789AB', // upper case
      '01954e5a-4c00-4abc-8def-0123456789ab', // version 4
      '01954e5a-4c00-7abc-cdef-0123456789ab', // variant 110
      '01954e5a4c007abc8def0123456789ab', // no hyphens
      '{01954e5a-4c00-7abc-8def-0123456789ab}',
    ],
    code: [null, 7, '', 'a b', 'x'.repeat(65), 'ab/c', 'ab%20', 'é'],
    at: [
      null,
      1_740_823_200_000,
      '',
      '2025-03-01',
      '2025-03-01T10:00:00Z',
      '2025-03-01T10:00:00.000+01:00',
      '2025-03-01 10:00:00.000Z',
      '2025-02-30T10:00:00.000Z',
      '2025-03-01T24:00:00.000Z',
      '2025-13-01T10:00:00.000Z',
      '+012025-03-01T10:00:00.000Z',
    ],
    method: [null, 'POST', 'get', '', 1],
    referrer: ['', 'r'.repeat(MAX_CLICK_HEADER_LENGTH + 1), 1, {}, ['https://a.example/']],
    userAgent: ['', 'u'.repeat(MAX_CLICK_HEADER_LENGTH + 1), false, {}],
    ip: ['', '1.2.3', '256.1.1.1', 'example.com', 'fe80::1%eth0', '::1%lo', ' 1.2.3.4', '1.2.3.4/32', 1234, {}, '1:2:3:4:5:6:7:8:9'],
  };

  for (const [field, values] of Object.entries(INVALID)) {
    test(`every malformed ${field} is refused, naming the field`, () => {
      for (const value of values) {
        const error = refused(JSON.stringify(wire({ [field]: value })), 'invalid_field', field);
        assert.ok(error.message.startsWith(`${field}: `), error.message);
      }
    });
  }

  test('the extremes that are valid are accepted', () => {
    for (const overrides of [
      { referrer: null, userAgent: null, ip: null },
      { ip: '::' },
      { ip: '0.0.0.0' },
      { ip: 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255' },
      { code: 'a' },
      { method: 'HEAD' },
      { at: '2024-02-29T23:59:59.999Z' },
    ]) {
      const result = decodeClickEvent(JSON.stringify(wire(overrides)));
      assert.ok(result.ok, `${JSON.stringify(overrides)}: ${result.ok ? '' : result.error.message}`);
    }
  });
});

describe('click event codec: batches', () => {
  test('a body that is not an array of events is refused whole', () => {
    for (const body of ['{}', encodeClickEvent(event()), 'null', '"[]"']) {
      const result = decodeClickBatch(body);
      assert.ok(!result.ok);
      assert.equal(result.error.reason, 'not_an_event');
    }
    const notJson = decodeClickBatch('[{"v":1');
    assert.ok(!notJson.ok);
    assert.equal(notJson.error.reason, 'not_json');
  });

  test('bad events are set aside with their index, error and raw value; the good ones are kept', () => {
    const good = [event({ id: uuidv7() }), event({ id: uuidv7() }), event({ id: uuidv7() })];
    const wires = good.map((each) => JSON.parse(encodeClickEvent(each)) as Record<string, unknown>);
    const badTime = { ...wires[1], at: 'yesterday' };
    const body = JSON.stringify([wires[0], badTime, 'oops', { v: 9 }, wires[2]]);
    const result = decodeClickBatch(body);
    assert.ok(result.ok);
    assert.deepEqual(result.events, [good[0], good[2]]);
    assert.deepEqual(
      result.rejected.map((each) => ({ index: each.index, reason: each.error.reason, field: each.error.field })),
      [
        { index: 1, reason: 'invalid_field', field: '[1].at' },
        { index: 2, reason: 'not_an_event', field: '[2]' },
        { index: 3, reason: 'unknown_version', field: '[3].v' },
      ],
    );
    assert.deepEqual(result.rejected[0]?.raw, badTime);
    assert.equal(result.rejected[1]?.raw, 'oops');
    assert.match(result.rejected[0]?.error.message ?? '', /^\[1\]\.at: /);
  });
});

describe('click event codec: encoding refuses what it could not decode', () => {
  test('an invalid event throws a ClickCodecError naming the field', () => {
    const cases: [Partial<IdentifiedClickEvent>, string][] = [
      [{ at: new Date(Number.NaN) }, 'at'],
      [{ id: 'nope' }, 'id'],
      [{ code: '' }, 'code'],
      [{ userAgent: 'u'.repeat(MAX_CLICK_HEADER_LENGTH + 1) }, 'userAgent'],
      [{ ip: 'fe80::1%eth0' }, 'ip'],
    ];
    for (const [overrides, field] of cases) {
      assert.throws(
        () => encodeClickEvent(event(overrides)),
        (error: unknown) => error instanceof ClickCodecError && error.field === field && error.reason === 'invalid_field',
        field,
      );
    }
  });

  test("the producer's unchecked encoding reads back the same; a bad event in it is set aside alone by the reader", () => {
    const good = [event(), event({ referrer: 'https://news.example/', ip: '2001:db8::1' })];
    const read = decodeClickBatch(encodeProducedClickBatch([good[0] as IdentifiedClickEvent, event({ referrer: '' }), good[1] as IdentifiedClickEvent]));
    assert.ok(read.ok);
    assert.deepEqual(read.events, good);
    assert.deepEqual(read.rejected.map((rejected) => [rejected.index, rejected.error.field]), [[1, '[1].referrer']]);
  });

  test('in a batch the error names the event', () => {
    assert.throws(
      () => encodeClickBatch([event(), event({ method: 'POST' as 'GET' })]),
      (error: unknown) => error instanceof ClickCodecError && error.field === '[1].method',
    );
  });
});

describe('ids of click events', () => {
  test('the redirect path gives every click its own UUIDv7 when it builds it', () => {
    const before = Date.now();
    const clicks = Array.from({ length: 1000 }, () => clickFrom({ id: '1', code: 'abc' }, 'GET', { 'user-agent': CHROME }, '203.0.113.7'));
    const after = Date.now();
    const ids = clicks.map((click) => click.id);
    assert.equal(new Set(ids).size, ids.length);
    for (const id of ids) {
      assert.ok(isUuidV7(id), id);
      const time = uuidV7Timestamp(id);
      assert.ok(time >= before && time <= after, `${id} carries ${time}, outside ${before}..${after}`);
    }
    assert.deepEqual(ids, [...ids].sort(), 'ids made in order sort in order');
    const encoded = decodeClickBatch(encodeClickBatch(clicks));
    assert.ok(encoded.ok);
    assert.deepEqual(encoded.events, clicks);
  });

  test('identified() gives an id to an event without one, and keeps one that has it', () => {
    const bare = { code: 'abc', at: AT, method: 'GET' as const, referrer: null, userAgent: null, ip: null };
    const given = identified(bare);
    assert.ok(isUuidV7(given.id));
    assert.equal('id' in bare, false, 'the original is not changed');
    const kept = event();
    assert.equal(identified(kept), kept);
  });
});

describe('UUIDv7', () => {
  const zeros = (bytes: Uint8Array): void => {
    bytes.fill(0);
  };
  const ones = (bytes: Uint8Array): void => {
    bytes.fill(0xff);
  };

  test('layout: 48-bit timestamp, version 7, variant 10, counter, random tail', () => {
    const ms = 0x0123_4567_89ab;
    const zero = createUuidV7Generator({ now: () => ms, randomFill: zeros });
    assert.equal(zero(), '01234567-89ab-7000-8000-000000000000');
    assert.equal(zero(), '01234567-89ab-7000-8000-000100000000', 'the counter counts in the same millisecond');
    // The counter starts with its top bit clear, leaving room to count 2^41 times.
    const full = createUuidV7Generator({ now: () => ms, randomFill: ones });
    assert.equal(full(), '01234567-89ab-77ff-bfff-ffffffffffff');
    assert.equal(full(), '01234567-89ab-7800-8000-0000ffffffff', 'the carry crosses from rand_b into rand_a');
  });

  test('format, version and variant bits of real ids; the RFC 9562 example parses', () => {
    for (let i = 0; i < 1000; i += 1) {
      const id = uuidv7();
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const bytes = Buffer.from(id.replaceAll('-', ''), 'hex');
      assert.equal(bytes[6]! >> 4, 7);
      assert.equal(bytes[8]! >> 6, 0b10);
    }
    // RFC 9562 appendix A.6: 2022-02-22T19:22:22Z.
    const example = '017f22e2-79b0-7cc3-98c4-dc0c0c07398f';
    assert.ok(isUuidV7(example));
    assert.equal(uuidV7Timestamp(example), Date.parse('2022-02-22T19:22:22.000Z'));
    assert.throws(() => uuidV7Timestamp('017f22e2-79b0-4cc3-98c4-dc0c0c07398f'), TypeError);
  });

  test('ids carry their time and sort by it', () => {
    let now = Date.parse('2025-03-01T10:00:00.000Z');
    const next = createUuidV7Generator({ now: () => now });
    const ids: string[] = [];
    for (let i = 0; i < 200; i += 1) {
      now += i % 3; // some milliseconds repeat, some advance
      ids.push(next());
      assert.equal(uuidV7Timestamp(ids.at(-1)!), now);
    }
    for (let i = 1; i < ids.length; i += 1) assert.ok(ids[i - 1]! < ids[i]!, `${ids[i - 1]} !< ${ids[i]}`);
  });

  test('monotonic within one millisecond, and when the clock goes back', () => {
    let now = 1_740_823_200_000;
    const next = createUuidV7Generator({ now: () => now });
    const ids: string[] = [];
    for (let i = 0; i < 10_000; i += 1) ids.push(next());
    now -= 5_000; // an NTP step backwards
    for (let i = 0; i < 100; i += 1) ids.push(next());
    now += 10_000;
    ids.push(next());
    for (let i = 1; i < ids.length; i += 1) assert.ok(ids[i - 1]! < ids[i]!, `id ${i} is not after id ${i - 1}`);
    assert.equal(new Set(ids).size, ids.length);
    assert.equal(uuidV7Timestamp(ids[10_050]!), 1_740_823_200_000, 'the timestamp does not go back with the clock');
    assert.equal(uuidV7Timestamp(ids.at(-1)!), 1_740_823_205_000);
  });

  test('ids of one process are unique and increasing', () => {
    const ids = Array.from({ length: 100_000 }, () => uuidv7());
    assert.equal(new Set(ids).size, ids.length);
    for (let i = 1; i < ids.length; i += 1) assert.ok(ids[i - 1]! < ids[i]!);
  });

  test('a clock outside the 48-bit range is refused', () => {
    for (const bad of [-1, 2 ** 48, Number.NaN, 1.5]) {
      assert.throws(() => createUuidV7Generator({ now: () => bad })(), RangeError);
    }
  });
});
