import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import ipaddr from 'ipaddr.js';
import { geoipCountries, publicAddress } from '../../src/analytics/country.js';
import { isPlainIpv4, parseIp } from '../../src/analytics/ip-address.js';
import { ClickEnricher, enrich, type EnrichContext } from '../../src/analytics/enrich.js';
import type { EnrichedClick } from '../../src/analytics/enriched-click.js';
import { referrerHost } from '../../src/analytics/referrer.js';
import { classifyUserAgent, createUserAgentClassifier, type AgentFacts } from '../../src/analytics/user-agent.js';
import {
  isSaltDayUsable,
  isUtcDay,
  MemoryVisitorSalts,
  oldestSaltDay,
  utcDay,
  visitorKey,
  type VisitorSalts,
} from '../../src/analytics/visitor.js';
import type { AttributedClickEvent } from '../../src/clicks/click-event.js';

const UA = {
  chromeWindows: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  safariIphone:
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
  safariIpad:
    'Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1',
  chromeAndroid:
    'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36',
  chromeAndroidTablet:
    'Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36',
  firefoxLinux: 'Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
  safariMac:
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
  edgeWindows:
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51',
  smartTv:
    'Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36',
  curl: 'curl/8.5.0',
  pythonRequests: 'python-requests/2.31.0',
  googlebot: 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
  googlebotSmartphone:
    'Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.118 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
  bingbot:
    'Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36',
  slackbot: 'Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)',
} as const;

const NOW = Date.parse('2025-03-01T12:00:00.000Z');
const SALT = Buffer.alloc(32, 7);

function click(overrides: Partial<AttributedClickEvent> = {}): AttributedClickEvent {
  return {
    id: '01954e5a-4c00-7abc-8def-0123456789ab',
    linkId: '7',
    code: 'abc123',
    at: new Date(NOW),
    method: 'GET',
    referrer: 'https://news.example/item?id=1',
    userAgent: UA.chromeWindows,
    ip: '8.8.8.8',
    ...overrides,
  };
}

const withSalt: EnrichContext = { saltOf: () => SALT };

describe('user agents', () => {
  const EXPECTED: [keyof typeof UA, AgentFacts][] = [
    ['chromeWindows', { browser: 'Chrome', os: 'Windows', device: 'desktop', bot: false }],
    ['safariIphone', { browser: 'Safari', os: 'iOS', device: 'mobile', bot: false }],
    ['safariIpad', { browser: 'Safari', os: 'iOS', device: 'tablet', bot: false }],
    ['chromeAndroid', { browser: 'Chrome', os: 'Android', device: 'mobile', bot: false }],
    ['chromeAndroidTablet', { browser: 'Chrome', os: 'Android', device: 'tablet', bot: false }],
    ['firefoxLinux', { browser: 'Firefox', os: 'Linux', device: 'desktop', bot: false }],
    ['safariMac', { browser: 'Safari', os: 'macOS', device: 'desktop', bot: false }],
    ['edgeWindows', { browser: 'Microsoft Edge', os: 'Windows', device: 'desktop', bot: false }],
    ['smartTv', { browser: 'Tizen', os: 'Tizen', device: 'other', bot: false }],
    ['curl', { browser: null, os: null, device: 'bot', bot: true }],
    ['pythonRequests', { browser: null, os: null, device: 'bot', bot: true }],
    ['googlebot', { browser: 'Googlebot', os: null, device: 'bot', bot: true }],
    ['googlebotSmartphone', { browser: 'Googlebot', os: 'Android', device: 'bot', bot: true }],
    ['bingbot', { browser: 'BingCrawler', os: null, device: 'bot', bot: true }],
    ['slackbot', { browser: 'SlackBot', os: null, device: 'bot', bot: true }],
  ];

  for (const [name, expected] of EXPECTED) {
    test(`${name}: ${expected.browser ?? '-'} / ${expected.os ?? '-'} / ${expected.device}${expected.bot ? ' / bot' : ''}`, () => {
      assert.deepEqual({ ...classifyUserAgent(UA[name]) }, expected);
      const enriched = enrich(click({ userAgent: UA[name] }), withSalt);
      assert.deepEqual({ browser: enriched.browser, os: enriched.os, device: enriched.device, bot: enriched.bot }, expected);
    });
  }

  test('no User-Agent at all is a bot', () => {
    const expected: AgentFacts = { browser: null, os: null, device: 'bot', bot: true };
    assert.deepEqual({ ...classifyUserAgent(null) }, expected);
    assert.deepEqual({ ...classifyUserAgent('') }, expected);
    assert.deepEqual({ ...classifyUserAgent('   ') }, expected);
    const enriched = enrich(click({ userAgent: null }), withSalt);
    assert.equal(enriched.bot, true);
    assert.equal(enriched.device, 'bot');
  });

  test('a HEAD request is a bot, whatever its agent; the device still comes from the agent', () => {
    const head = enrich(click({ method: 'HEAD', userAgent: UA.chromeWindows }), withSalt);
    assert.equal(head.bot, true);
    assert.equal(head.device, 'desktop');
    assert.equal(head.browser, 'Chrome');
    assert.equal(enrich(click({ method: 'GET', userAgent: UA.chromeWindows }), withSalt).bot, false);
  });

  test('the cached classifier answers repeats from its LRU, within its bound', () => {
    const agents = createUserAgentClassifier({ maxEntries: 2 });
    const first = agents.classify(UA.chromeWindows);
    assert.equal(agents.classify(UA.chromeWindows), first, 'a repeat is the cached object');
    assert.deepEqual(first, classifyUserAgent(UA.chromeWindows));
    agents.classify(UA.safariIphone);
    agents.classify(UA.firefoxLinux); // evicts the least recently used: Chrome
    const again = agents.classify(UA.chromeWindows);
    assert.notEqual(again, first, 'evicted, so parsed again');
    assert.deepEqual(again, first);
  });
});

describe('referrer host', () => {
  const CASES: [string | null, string | null][] = [
    ['https://News.Example.COM/path?q=secret#x', 'news.example.com'],
    ['http://example.com:8080/', 'example.com'],
    ['https://user:pass@example.com/', 'example.com'],
    ['https://example.com./', 'example.com'],
    ['https://bücher.example/', 'xn--bcher-kva.example'],
    ['https://[2001:DB8::1]:8443/', '[2001:db8::1]'],
    ['http://192.0.2.1/x', '192.0.2.1'],
    ['android-app://com.Google.Android.gm/', 'com.google.android.gm'],
    // Shunt's own pages (the preview page) are kept: a report can filter them.
    ['http://localhost:8080/hello+', 'localhost'],
    [null, null],
    ['not a url', null],
    ['/relative/path', null],
    ['example.com', null],
    ['about:blank', null],
    ['file:///etc/passwd', null],
    ['https://', null],
  ];
  for (const [referrer, host] of CASES) {
    test(`${JSON.stringify(referrer)} -> ${JSON.stringify(host)}`, () => {
      assert.equal(referrerHost(referrer), host);
      assert.equal(enrich(click({ referrer }), withSalt).referrerHost, host);
    });
  }
});

describe('country', () => {
  // Long-lived allocations (Google DNS, RIPE NCC, MaxMind's own test address, the
  // University of Tokyo, NIC.br), unlikely to move between data releases.
  const PUBLIC: [string, string][] = [
    ['8.8.8.8', 'US'],
    ['2001:4860:4860::8888', 'US'],
    ['::ffff:8.8.8.8', 'US'],
    ['::ffff:808:808', 'US'],
    ['193.0.6.139', 'NL'],
    ['81.2.69.160', 'GB'],
    ['133.11.0.1', 'JP'],
    ['200.160.2.3', 'BR'],
  ];
  for (const [ip, country] of PUBLIC) {
    test(`${ip} is in ${country}`, () => {
      assert.equal(geoipCountries.country(ip), country);
      assert.equal(enrich(click({ ip }), withSalt).country, country);
    });
  }

  test('private, loopback, link-local, shared, documentation and unspecified addresses have no country', () => {
    for (const ip of [
      '10.1.2.3',
      '172.16.0.1',
      '192.168.1.1',
      '127.0.0.1',
      '169.254.10.1',
      '100.64.0.1',
      '0.0.0.0',
      '255.255.255.255',
      '224.0.0.1',
      '203.0.113.7',
      '::1',
      '::',
      'fe80::1',
      'fd12:3456::1',
      '2001:db8::1',
      'ff02::1',
      '::ffff:10.0.0.1',
      '::ffff:127.0.0.1',
    ]) {
      assert.equal(publicAddress(ip), null, ip);
      assert.equal(geoipCountries.country(ip), null, ip);
    }
  });

  test('no address, or not an address, has no country', () => {
    assert.equal(geoipCountries.country(null), null);
    assert.equal(geoipCountries.country('garbage'), null);
    assert.equal(enrich(click({ ip: null }), withSalt).country, null);
  });
});

describe('address parsing', () => {
  test('plain dotted decimal is read without ipaddr.js, to the same address; every other form goes to it', () => {
    const plain = ['0.0.0.0', '1.2.3.4', '9.99.199.255', '203.0.113.7', '255.255.255.255', '100.64.0.1'];
    for (const ip of plain) {
      assert.ok(isPlainIpv4(ip), ip);
      assert.deepEqual(parseIp(ip).toByteArray(), ipaddr.parse(ip).toByteArray(), ip);
      assert.equal(parseIp(ip).toString(), ip, 'plain is what ipaddr.js prints');
    }
    for (const ip of ['010.0.0.1', '0x7f.0.0.1', '127.1', '256.1.1.1', '1.2.3.4 ', '1.2.3', '::1', '::ffff:1.2.3.4', '01.2.3.4']) {
      assert.equal(isPlainIpv4(ip), false, ip);
      if (ipaddr.isValid(ip)) assert.equal(parseIp(ip).toString(), ipaddr.parse(ip).toString(), ip);
      else assert.throws(() => parseIp(ip), ip);
    }
  });

  test('the country of an octal or short form is that of its plain form', () => {
    assert.equal(publicAddress('010.0.0.1'), '8.0.0.1');
    assert.equal(geoipCountries.country('010.0.0.1'), geoipCountries.country('8.0.0.1'));
    assert.equal(publicAddress('0x7f.1'), null, 'loopback');
  });
});

describe('unique-visitor key', () => {
  test('HMAC-SHA256 of "ip\\nuser agent" under the day salt, first 16 bytes in hex', () => {
    assert.equal(visitorKey(SALT, '203.0.113.7', 'Mozilla/5.0'), 'ea9ad4cddcc4f8512312d0a15363b0f1');
  });

  test('stable within a day, different across days, addresses and agents', async () => {
    const salts = new MemoryVisitorSalts();
    const enricher = new ClickEnricher({ salts, now: () => NOW });
    const morning = new Date('2025-03-01T00:00:00.000Z');
    const evening = new Date('2025-03-01T23:59:59.999Z');
    const nextDay = new Date('2025-03-02T00:00:00.000Z');
    const [a, b, c, d, e, f] = await enricher.enrichBatch([
      click({ at: morning }),
      click({ at: evening, referrer: null, method: 'HEAD' }),
      click({ at: nextDay }),
      click({ at: morning, ip: '8.8.4.4' }),
      click({ at: morning, userAgent: UA.firefoxLinux }),
      click({ at: morning, userAgent: null }),
    ]);
    assert.match(a?.visitor ?? '', /^[0-9a-f]{32}$/);
    assert.equal(b?.visitor, a?.visitor, 'same visitor, same day');
    const keys = [a, c, d, e, f].map((each) => each?.visitor);
    assert.equal(new Set(keys).size, keys.length, `keys must differ: ${JSON.stringify(keys)}`);
    assert.equal(a?.visitor, visitorKey(await salts.saltFor('2025-03-01'), '8.8.8.8', UA.chromeWindows));
    assert.equal(c?.visitor, visitorKey(await salts.saltFor('2025-03-02'), '8.8.8.8', UA.chromeWindows));
  });

  test('the same bytes as createHmac, for any salt and any agent text', () => {
    const agents = [null, 'x', UA.chromeWindows, 'agent with ünïcödé and 😀', 'a'.repeat(300)];
    for (let round = 0; round < 50; round += 1) {
      const salt = randomBytes(32);
      for (const agent of agents) {
        const ip = `${round}.${round * 3}.7.${255 - round}`;
        const expected = createHmac('sha256', salt).update(`${ip}\n${agent ?? ''}`).digest().subarray(0, 16).toString('hex');
        assert.equal(visitorKey(salt, ip, agent), expected, `${ip} ${agent}`);
      }
    }
  });

  test('an address ipaddr.js reads in another form (octal, hex, short) is the same visitor as its plain form', () => {
    assert.equal(visitorKey(SALT, '010.0.0.1', 'x'), visitorKey(SALT, '8.0.0.1', 'x'));
    assert.equal(visitorKey(SALT, '0x7f.1', 'x'), visitorKey(SALT, '127.0.0.1', 'x'));
  });

  test('an IPv4 address and its IPv4-mapped IPv6 form are one visitor', () => {
    assert.equal(visitorKey(SALT, '::ffff:192.0.2.1', 'x'), visitorKey(SALT, '192.0.2.1', 'x'));
    assert.equal(visitorKey(SALT, '2001:DB8:0::1', 'x'), visitorKey(SALT, '2001:db8::1', 'x'));
  });

  test('no address, no visitor key', () => {
    assert.equal(enrich(click({ ip: null }), withSalt).visitor, null);
  });

  test('salts are asked once per day of the batch, and never for days outside the window', async () => {
    const asked: string[] = [];
    const memory = new MemoryVisitorSalts();
    const salts: VisitorSalts = {
      saltFor: (day) => {
        asked.push(day);
        return memory.saltFor(day);
      },
    };
    const enricher = new ClickEnricher({ salts, now: () => NOW });
    const enriched = await enricher.enrichBatch([
      click({ at: new Date('2025-03-01T08:00:00.000Z') }),
      click({ at: new Date('2025-03-01T09:00:00.000Z') }),
      click({ at: new Date('2025-02-27T09:00:00.000Z') }), // two days back: still kept
      click({ at: new Date('2025-02-26T23:59:59.999Z') }), // three days back: salt deleted
      click({ at: new Date('2025-03-02T01:00:00.000Z') }), // tomorrow: a clock ahead
      click({ at: new Date('2025-03-03T00:00:00.000Z') }), // too far ahead
      click({ at: new Date('2025-03-01T10:00:00.000Z'), ip: null }),
    ]);
    assert.deepEqual(asked.sort(), ['2025-02-27', '2025-03-01', '2025-03-02']);
    assert.deepEqual(
      enriched.map((each) => each.visitor !== null),
      [true, true, true, false, true, false, false],
    );
  });

  test('the salt window runs from two days back to tomorrow', () => {
    assert.equal(oldestSaltDay(NOW), '2025-02-27');
    assert.equal(isSaltDayUsable('2025-02-26', NOW), false);
    assert.equal(isSaltDayUsable('2025-02-27', NOW), true);
    assert.equal(isSaltDayUsable('2025-03-01', NOW), true);
    assert.equal(isSaltDayUsable('2025-03-02', NOW), true);
    assert.equal(isSaltDayUsable('2025-03-03', NOW), false);
    assert.equal(utcDay(new Date('2025-03-01T23:59:59.999Z')), '2025-03-01');
    assert.equal(utcDay(new Date('2025-03-01T23:59:59.999-01:00')), '2025-03-02');
    for (const day of ['2025-03-01', '2024-02-29']) assert.equal(isUtcDay(day), true, day);
    for (const day of ['2025-02-30', '2025-3-1', '2025-03-01T00:00:00Z', '', 'today', '2023-02-29']) assert.equal(isUtcDay(day), false, day);
  });

  test('a salt that cannot be read fails the batch, to be retried', async () => {
    const enricher = new ClickEnricher({ salts: { saltFor: () => Promise.reject(new Error('database down')) }, now: () => NOW });
    await assert.rejects(enricher.enrichBatch([click()]), /database down/);
  });

  test('the in-memory salts are 32 random bytes per day, the same on every ask', async () => {
    const salts = new MemoryVisitorSalts();
    const first = await salts.saltFor('2025-03-01');
    assert.equal(first.length, 32);
    assert.equal(await salts.saltFor('2025-03-01'), first);
    assert.notDeepEqual(await salts.saltFor('2025-03-02'), first);
    await assert.rejects(salts.saltFor('yesterday'), RangeError);
  });
});

describe('enriched click', () => {
  test('every field, with the raw IP left out by default', () => {
    const event = click({ referrer: 'https://News.Example/a?b', userAgent: UA.safariIphone, ip: '193.0.6.139' });
    const expected: EnrichedClick = {
      id: event.id,
      linkId: '7',
      code: 'abc123',
      at: event.at,
      method: 'GET',
      referrerHost: 'news.example',
      country: 'NL',
      browser: 'Safari',
      os: 'iOS',
      device: 'mobile',
      bot: false,
      visitor: visitorKey(SALT, '193.0.6.139', UA.safariIphone),
      ip: null,
      userAgent: UA.safariIphone,
      referrer: 'https://News.Example/a?b',
    };
    assert.deepEqual(enrich(event, withSalt), expected);
    assert.deepEqual(enrich(event, { ...withSalt, storeRawIp: false }), expected);
  });

  test('the raw IP is kept only when storeRawIp is true', async () => {
    assert.equal(enrich(click(), { ...withSalt, storeRawIp: true }).ip, '8.8.8.8');
    const salts = new MemoryVisitorSalts();
    const [off] = await new ClickEnricher({ salts, now: () => NOW }).enrichBatch([click()]);
    const [on] = await new ClickEnricher({ salts, now: () => NOW, storeRawIp: true }).enrichBatch([click()]);
    assert.equal(off?.ip, null);
    assert.equal(on?.ip, '8.8.8.8');
    assert.equal(on?.visitor, off?.visitor);
  });

  test('a batch keeps its order and its ids', async () => {
    const events = Array.from({ length: 50 }, (_, i) =>
      click({ id: `01954e5a-4c00-7abc-8def-${i.toString(16).padStart(12, '0')}`, userAgent: Object.values(UA)[i % 15] ?? null }),
    );
    const enriched = await new ClickEnricher({ salts: new MemoryVisitorSalts(), now: () => NOW }).enrichBatch(events);
    assert.deepEqual(
      enriched.map((each) => each.id),
      events.map((each) => each.id),
    );
  });
});
