import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  KNOWN_SHORTENERS,
  checkDestination,
  type DestinationPolicy,
  type DestinationVerdict,
} from '../../src/links/destination-policy.js';

const basePolicy: DestinationPolicy = {
  maxUrlLength: 2048,
  blockedDomains: ['evil.com', 'BadSite.org', 'bücher.example', 'xn--mnchen-3ya.example'],
  ownHosts: ['shunt.example', 'go.shunt.example'],
  allowPrivateAddresses: false,
};

function check(input: string, overrides: Partial<DestinationPolicy> = {}): DestinationVerdict {
  return checkDestination(input, { ...basePolicy, ...overrides });
}

function assertAccepted(input: string, expectedUrl: string, overrides: Partial<DestinationPolicy> = {}): void {
  assert.deepEqual(check(input, overrides), { ok: true, url: expectedUrl }, input);
}

function assertRefused(
  input: string,
  code: 'invalid_url' | 'url_not_allowed',
  overrides: Partial<DestinationPolicy> = {},
): string {
  const verdict = check(input, overrides);
  assert.equal(verdict.ok, false, `expected ${JSON.stringify(input)} to be refused`);
  if (verdict.ok) throw new Error('unreachable');
  assert.equal(verdict.code, code, `code for ${JSON.stringify(input)}: ${verdict.reason}`);
  // The reason is shown to API users, so it has to be a real sentence.
  assert.match(verdict.reason, /^[A-Z].*\.$/);
  return verdict.reason;
}

void describe('checkDestination: accepted URLs', () => {
  const cases: [input: string, expected: string][] = [
    ['https://example.com', 'https://example.com/'],
    ['http://example.com/path?q=1#frag', 'http://example.com/path?q=1#frag'],
    ['HTTP://Example.COM/Path', 'http://example.com/Path'],
    ['HtTpS://EXAMPLE.com:443/', 'https://example.com/'],
    ['https://example.com:8443/x', 'https://example.com:8443/x'],
    ['https://sub.example.co.uk/a/b', 'https://sub.example.co.uk/a/b'],
    ['https://example.com/caf%C3%A9', 'https://example.com/caf%C3%A9'],
    ['https://example.com/café', 'https://example.com/caf%C3%A9'],
    ['http://8.8.8.8/', 'http://8.8.8.8/'],
    ['http://134744072/', 'http://8.8.8.8/'],
    ['http://[2606:4700:4700::1111]/', 'http://[2606:4700:4700::1111]/'],
    ['http://[::ffff:8.8.8.8]/', 'http://[::ffff:808:808]/'],
    ['http://@example.com/', 'http://example.com/'],
  ];
  for (const [input, expected] of cases) {
    void test(`accepts ${input}`, () => assertAccepted(input, expected));
  }
});

void describe('checkDestination: invalid_url', () => {
  void test('refuses empty input', () => {
    assertRefused('', 'invalid_url');
  });

  void describe('control characters and whitespace anywhere are refused before parsing', () => {
    const characters: [name: string, char: string][] = [
      ['NUL', '\u0000'],
      ['tab', '\t'],
      ['line feed', '\n'],
      ['carriage return', '\r'],
      ['unit separator', '\u001f'],
      ['DEL', '\u007f'],
      ['C1 start', '\u0080'],
      ['NEL', '\u0085'],
      ['C1 end', '\u009f'],
      ['space', ' '],
      ['no-break space', '\u00a0'],
      ['ogham space', '\u1680'],
      ['em space', '\u2003'],
      ['line separator', '\u2028'],
      ['paragraph separator', '\u2029'],
      ['narrow no-break space', '\u202f'],
      ['ideographic space', '\u3000'],
      ['byte order mark', '\ufeff'],
    ];
    for (const [name, char] of characters) {
      void test(`${name} (U+${char.charCodeAt(0).toString(16).padStart(4, '0')})`, () => {
        // The URL parser would strip leading/trailing C0 and whitespace and remove tabs
        // and newlines anywhere, so every position must be refused on its own.
        assertRefused(`${char}https://example.com/`, 'invalid_url');
        assertRefused(`https://example.com/${char}`, 'invalid_url');
        assertRefused(`https://exa${char}mple.com/`, 'invalid_url');
        assertRefused(`https://example.com/a${char}b`, 'invalid_url');
      });
    }
  });

  void describe('length limit applies to the raw input', () => {
    const prefix = 'https://example.com/';
    const atLimit = prefix + 'a'.repeat(2048 - prefix.length);

    void test('exactly at the limit is accepted', () => {
      assert.equal(atLimit.length, 2048);
      assertAccepted(atLimit, atLimit);
    });

    void test('one character over the limit is refused', () => {
      const reason = assertRefused(atLimit + 'a', 'invalid_url');
      assert.match(reason, /2048/);
    });

    void test('the configured limit is used, not a hard-coded one', () => {
      assertAccepted('https://example.com/', 'https://example.com/', { maxUrlLength: 20 });
      assertRefused('https://example.com/a', 'invalid_url', { maxUrlLength: 20 });
    });

    void test('the raw input is measured, not the normalised URL', () => {
      // 21 characters as typed; normalisation would shorten it to 20.
      assertRefused('HTTPS://EXAMPLE.COM:443', 'invalid_url', { maxUrlLength: 20 });
    });
  });

  void describe('unparseable input', () => {
    for (const input of [
      'example.com',
      '/relative/path',
      '//example.com/',
      'http://',
      'https://exa%mple.com/',
      'http://[::1/',
      'http://1.2.3.4.5/',
      'http://example.com:99999/',
      'not a url',
    ]) {
      void test(`refuses ${JSON.stringify(input)}`, () => {
        assertRefused(input, 'invalid_url');
      });
    }
  });

  void describe('schemes other than http and https', () => {
    for (const input of [
      'javascript:alert(1)',
      'JavaScript:alert(1)',
      'data:text/html,<script>alert(1)</script>',
      'file:///etc/passwd',
      'ftp://example.com/file',
      'ws://example.com/',
      'wss://example.com/',
      'mailto:someone@example.com',
      'blob:https://example.com/uuid',
      'httpx://example.com/',
      'https+evil://example.com/',
    ]) {
      void test(`refuses ${input}`, () => {
        const reason = assertRefused(input, 'invalid_url');
        if (input.includes('//')) assert.match(reason, /http/);
      });
    }
  });

  void test('refuses credentials in the URL', () => {
    for (const input of [
      'https://user@example.com/',
      'https://user:pass@example.com/',
      'https://:pass@example.com/',
      'https://example.com@evil.net/',
    ]) {
      assertRefused(input, 'invalid_url');
    }
  });
});

void describe('checkDestination: url_not_allowed', () => {
  void describe('own hosts would loop back to this service', () => {
    for (const input of [
      'https://shunt.example/abc',
      'http://SHUNT.EXAMPLE/abc',
      'https://shunt.example./abc',
      'https://go.shunt.example:8080/abc',
    ]) {
      void test(`refuses ${input}`, () => {
        assertRefused(input, 'url_not_allowed');
      });
    }

    void test('other hosts under the same parent are not own hosts', () => {
      assertAccepted('https://www.shunt.example/', 'https://www.shunt.example/');
      assertAccepted('https://notshunt.example/', 'https://notshunt.example/');
    });

    void test('own hosts are matched whatever their case or trailing dot in configuration', () => {
      assertRefused('https://s.example.net/x', 'url_not_allowed', { ownHosts: ['S.Example.NET.'] });
    });
  });

  void describe('known shorteners', () => {
    void test('the list contains the common shorteners, in lower case', () => {
      for (const domain of ['bit.ly', 'tinyurl.com', 't.co', 'goo.gl', 'ow.ly', 'is.gd', 'rb.gy', 's.id']) {
        assert.ok(KNOWN_SHORTENERS.includes(domain), domain);
      }
      for (const domain of KNOWN_SHORTENERS) assert.equal(domain, domain.toLowerCase());
    });

    for (const domain of KNOWN_SHORTENERS) {
      void test(`refuses ${domain}`, () => {
        assertRefused(`https://${domain}/abc`, 'url_not_allowed');
      });
    }

    void test('refuses shortener subdomains, upper case and trailing dots', () => {
      assertRefused('https://www.bit.ly/abc', 'url_not_allowed');
      assertRefused('https://BIT.LY/abc', 'url_not_allowed');
      assertRefused('https://t.co./abc', 'url_not_allowed');
    });

    void test('does not refuse domains that merely end with the same letters', () => {
      assertAccepted('https://rabbit.ly/abc', 'https://rabbit.ly/abc');
      assertAccepted('https://microsoft.co/', 'https://microsoft.co/');
      assertAccepted('https://bit.ly.example.com/', 'https://bit.ly.example.com/');
    });
  });

  void describe('blocked domains', () => {
    const blocked = [
      'http://evil.com/',
      'https://evil.com/path',
      'https://a.evil.com/',
      'https://deep.a.evil.com/',
      'https://EVIL.COM/',
      'https://Www.Evil.Com/',
      'https://evil.com./',
      'https://a.evil.com./',
      'https://evil.com../',
      'https://evil.com:8443/',
      'https://badsite.org/',
      'https://x.BADSITE.org/',
    ];
    for (const input of blocked) {
      void test(`refuses ${input}`, () => {
        assertRefused(input, 'url_not_allowed');
      });
    }

    const notBlocked = [
      ['https://notevil.com/', 'https://notevil.com/'],
      ['https://evil.com.example.org/', 'https://evil.com.example.org/'],
      ['https://evil.co/', 'https://evil.co/'],
      ['https://example.com/evil.com', 'https://example.com/evil.com'],
      ['https://example.com/?u=https://evil.com/', 'https://example.com/?u=https://evil.com/'],
    ] as const;
    for (const [input, expected] of notBlocked) {
      void test(`does not refuse ${input}`, () => {
        assertAccepted(input, expected);
      });
    }

    void test('an empty blocklist blocks nothing', () => {
      assertAccepted('https://evil.com/', 'https://evil.com/', { blockedDomains: [] });
    });

    void test('configured entries are matched whatever their case or trailing dot', () => {
      assertRefused('https://spam.net/', 'url_not_allowed', { blockedDomains: ['SPAM.Net.'] });
    });
  });

  void describe('IDN hosts', () => {
    void test('returns the punycode form of a Unicode host', () => {
      assertAccepted('https://bücher.de/', 'https://xn--bcher-kva.de/');
      assertAccepted('https://BÜCHER.de/x', 'https://xn--bcher-kva.de/x');
    });

    void test('a Unicode blocklist entry blocks both spellings', () => {
      assertRefused('https://bücher.example/', 'url_not_allowed');
      assertRefused('https://xn--bcher-kva.example/', 'url_not_allowed');
      assertRefused('https://shop.bücher.example/', 'url_not_allowed');
      assertRefused('https://BÜCHER.example./', 'url_not_allowed');
    });

    void test('a punycode blocklist entry blocks both spellings', () => {
      assertRefused('https://münchen.example/', 'url_not_allowed');
      assertRefused('https://xn--mnchen-3ya.example/', 'url_not_allowed');
    });

    void test('a similar-looking but different IDN is not blocked', () => {
      assertAccepted('https://bucher.example/', 'https://bucher.example/');
    });
  });

  void describe('literal IP addresses that are not public unicast', () => {
    const refused: [input: string, why: string][] = [
      ['http://127.0.0.1/', 'IPv4 loopback'],
      ['http://127.255.255.254/', 'IPv4 loopback, end of /8'],
      ['http://2130706433/', 'decimal loopback'],
      ['http://0x7f000001/', 'hex loopback'],
      ['http://0x7F.0x0.0x0.0x1/', 'dotted hex loopback'],
      ['http://0177.0.0.1/', 'octal loopback'],
      ['http://017700000001/', 'single octal loopback'],
      ['http://127.1/', 'short loopback'],
      ['http://127.0.1/', 'three-part loopback'],
      ['http://127.0.0.1./', 'loopback with trailing dot'],
      ['http://127.0.0.1:8080/admin', 'loopback with port'],
      ['http://10.0.0.1/', 'private 10/8'],
      ['http://10.255.255.255/', 'private 10/8, end'],
      ['http://172.16.0.1/', 'private 172.16/12, start'],
      ['http://172.31.255.254/', 'private 172.16/12, end'],
      ['http://192.168.1.1/', 'private 192.168/16'],
      ['http://3232235777/', 'decimal 192.168.1.1'],
      ['http://169.254.169.254/latest/meta-data/', 'link-local (cloud metadata)'],
      ['http://0.0.0.0/', 'unspecified'],
      ['http://0/', 'unspecified, short'],
      ['http://100.64.0.1/', 'carrier-grade NAT'],
      ['http://100.127.255.254/', 'carrier-grade NAT, end'],
      ['http://224.0.0.1/', 'multicast'],
      ['http://239.255.255.250/', 'multicast'],
      ['http://255.255.255.255/', 'broadcast'],
      ['http://240.0.0.1/', 'reserved'],
      ['http://192.0.2.1/', 'documentation'],
      ['http://198.18.0.1/', 'benchmarking'],
      ['http://[::1]/', 'IPv6 loopback'],
      ['http://[0:0:0:0:0:0:0:1]/', 'IPv6 loopback, long form'],
      ['http://[::]/', 'IPv6 unspecified'],
      ['http://[fe80::1]/', 'IPv6 link-local'],
      ['http://[FEBF::1]/', 'IPv6 link-local, end of fe80::/10'],
      ['http://[fc00::1]/', 'IPv6 unique-local'],
      ['http://[fd12:3456:789a::1]/', 'IPv6 unique-local'],
      ['http://[ff02::1]/', 'IPv6 multicast'],
      ['http://[::ffff:127.0.0.1]/', 'IPv4-mapped loopback, dotted'],
      ['http://[::ffff:7f00:1]/', 'IPv4-mapped loopback, hex'],
      ['http://[0:0:0:0:0:ffff:7f00:1]/', 'IPv4-mapped loopback, long form'],
      ['http://[::ffff:10.0.0.1]/', 'IPv4-mapped private'],
      ['http://[::ffff:169.254.169.254]/', 'IPv4-mapped link-local'],
      ['http://[::127.0.0.1]/', 'IPv4-compatible loopback'],
      ['http://[::8.8.8.8]/', 'IPv4-compatible (deprecated, never public)'],
      ['http://[2002:7f00:1::]/', '6to4 embedding loopback'],
      ['http://[2002:c0a8:101::1]/', '6to4 embedding 192.168.1.1'],
      ['http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/', 'Teredo'],
      ['http://[64:ff9b::7f00:1]/', 'NAT64 embedding loopback'],
      ['http://[fec0::1]/', 'IPv6 site-local (deprecated)'],
      ['http://[feff:ffff::1]/', 'IPv6 site-local, end of fec0::/10'],
      ['http://[64:ff9b:1::808:808]/', 'local-use NAT64 (RFC 8215)'],
      ['http://[64:ff9b:1:ffff:ffff:ffff:ffff:ffff]/', 'local-use NAT64, end of the /48'],
      ['http://[2001:db8::1]/', 'IPv6 documentation'],
    ];
    for (const [input, why] of refused) {
      void test(`refuses ${input} (${why})`, () => {
        const reason = assertRefused(input, 'url_not_allowed');
        assert.match(reason, /IP address/);
      });
    }

    const publicAddresses: [input: string, expected: string][] = [
      ['http://1.1.1.1/', 'http://1.1.1.1/'],
      ['http://172.15.255.255/', 'http://172.15.255.255/'],
      ['http://172.32.0.1/', 'http://172.32.0.1/'],
      ['http://100.63.255.255/', 'http://100.63.255.255/'],
      ['http://100.128.0.1/', 'http://100.128.0.1/'],
      ['http://11.0.0.1/', 'http://11.0.0.1/'],
      ['http://0x08080808/', 'http://8.8.8.8/'],
      ['http://[2001:4860:4860::8888]/', 'http://[2001:4860:4860::8888]/'],
      ['http://[64:ff9b:2::1]/', 'http://[64:ff9b:2::1]/'],
      ['http://[::ffff:1.1.1.1]/', 'http://[::ffff:101:101]/'],
    ];
    for (const [input, expected] of publicAddresses) {
      void test(`accepts public ${input}`, () => {
        assertAccepted(input, expected);
      });
    }
  });

  void describe('host names that cannot be public', () => {
    for (const input of [
      'http://localhost/',
      'http://LOCALHOST:3000/',
      'http://localhost./',
      'http://api.localhost/',
      'http://printer.local/',
      'http://Printer.Local./',
      'http://db.internal/',
      'http://metadata.google.internal/computeMetadata/v1/',
      'http://router.home.arpa/',
    ]) {
      void test(`refuses ${input}`, () => {
        assertRefused(input, 'url_not_allowed');
      });
    }

    void test('names that only contain those words are public', () => {
      assertAccepted('https://localhost.example.com/', 'https://localhost.example.com/');
      assertAccepted('https://mylocalhost.com/', 'https://mylocalhost.com/');
      assertAccepted('https://local.example/', 'https://local.example/');
      assertAccepted('https://internal.example/', 'https://internal.example/');
      assertAccepted('https://notlocal/', 'https://notlocal/');
    });
  });

  void describe('allowPrivateAddresses', () => {
    const allow = { allowPrivateAddresses: true };
    const cases: [input: string, expected: string][] = [
      ['http://127.0.0.1/', 'http://127.0.0.1/'],
      ['http://2130706433/', 'http://127.0.0.1/'],
      ['http://10.0.0.1:8080/x', 'http://10.0.0.1:8080/x'],
      ['http://[::1]/', 'http://[::1]/'],
      ['http://[::ffff:127.0.0.1]/', 'http://[::ffff:7f00:1]/'],
      ['http://localhost:3000/', 'http://localhost:3000/'],
      ['http://printer.local/', 'http://printer.local/'],
    ];
    for (const [input, expected] of cases) {
      void test(`lets ${input} through when true`, () => {
        assertAccepted(input, expected, allow);
      });
    }

    void test('still applies every other rule when true', () => {
      assertRefused('http://user@127.0.0.1/', 'invalid_url', allow);
      assertRefused('file:///etc/passwd', 'invalid_url', allow);
      assertRefused('http://evil.com/', 'url_not_allowed', allow);
      assertRefused('http://bit.ly/x', 'url_not_allowed', allow);
      assertRefused('http://shunt.example/x', 'url_not_allowed', allow);
      assertRefused('http://localhost/', 'url_not_allowed', { ...allow, ownHosts: ['localhost'] });
    });
  });
});

void describe('checkDestination: reasons', () => {
  void test('each refusal explains itself differently', () => {
    const reasons = new Set([
      assertRefused('', 'invalid_url'),
      assertRefused('ftp://example.com/', 'invalid_url'),
      assertRefused('https://u:p@example.com/', 'invalid_url'),
      assertRefused('https://example.com/ x', 'invalid_url'),
      assertRefused('https://shunt.example/', 'url_not_allowed'),
      assertRefused('https://bit.ly/', 'url_not_allowed'),
      assertRefused('https://evil.com/', 'url_not_allowed'),
      assertRefused('http://127.0.0.1/', 'url_not_allowed'),
      assertRefused('http://localhost/', 'url_not_allowed'),
    ]);
    assert.equal(reasons.size, 9);
  });
});
