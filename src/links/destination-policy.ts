import { domainToASCII } from 'node:url';
import ipaddr from 'ipaddr.js';

export interface DestinationPolicy {
  maxUrlLength: number;
  blockedDomains: readonly string[];
  ownHosts: readonly string[];
  allowPrivateAddresses: boolean;
}

/** The policy an installation applies: its configured limits, and its own host refused (links to it would loop). */
export function installationPolicy(
  destinations: { maxUrlLength: number; blockedDomains: readonly string[]; allowPrivateAddresses: boolean },
  baseUrl: URL,
): DestinationPolicy {
  return {
    maxUrlLength: destinations.maxUrlLength,
    blockedDomains: destinations.blockedDomains,
    ownHosts: [baseUrl.hostname],
    allowPrivateAddresses: destinations.allowPrivateAddresses,
  };
}

export type DestinationVerdict =
  | { ok: true; url: string }
  | { ok: false; code: 'invalid_url' | 'url_not_allowed'; reason: string };

// Redirecting to another shortener hides the real destination from our checks
// and lets links be chained, so these are refused along with their subdomains.
// First-party short domains (youtu.be, amzn.to) are left out on purpose: each
// only leads to its own site, and refusing them would reject everyday links.
export const KNOWN_SHORTENERS: readonly string[] = [
  'bit.ly',
  'bitly.com',
  'bit.do',
  'bl.ink',
  'buff.ly',
  'clck.ru',
  'cutt.ly',
  'dub.sh',
  'goo.gl',
  'is.gd',
  'lnkd.in',
  'ow.ly',
  'rb.gy',
  'rebrand.ly',
  's.id',
  'short.gy',
  'shorturl.at',
  't.co',
  't.ly',
  'tiny.cc',
  'tinyurl.com',
  'v.gd',
];

// The control range covers C0, DEL and C1 (\p{Cc}); \s adds every Unicode
// space, including NBSP and the line/paragraph separators.
const CONTROL_OR_SPACE = /[\p{Cc}\s]/u;

// Names that can only ever resolve to this machine or a private network.
const NON_PUBLIC_SUFFIXES = ['localhost', 'local', 'internal', 'home.arpa'];

const PRIVATE_ADDRESS_REASON = 'Links to private, loopback or reserved IP addresses are not allowed.';

const DOTTED_QUAD = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

const ALLOWED_PROTOCOLS = new Set(['http:', 'https:']);

function invalid(reason: string): DestinationVerdict {
  return { ok: false, code: 'invalid_url', reason };
}

function notAllowed(reason: string): DestinationVerdict {
  return { ok: false, code: 'url_not_allowed', reason };
}

// A trailing dot names the same DNS host, so `evil.com.` must not slip past `evil.com`.
function withoutTrailingDots(host: string): string {
  return host.replace(/\.+$/, '');
}

// List entries come from configuration and may be written in Unicode or upper case;
// bring them to the same punycode form the URL parser gives hostnames.
function normaliseListEntry(entry: string): string {
  return withoutTrailingDots(domainToASCII(entry.trim()));
}

function isWithinDomain(host: string, domain: string): boolean {
  return domain !== '' && (host === domain || host.endsWith(`.${domain}`));
}

function isPublicIPv4(address: ipaddr.IPv4): boolean {
  return address.range() === 'unicast';
}

function isPublicIPv6(address: ipaddr.IPv6): boolean {
  // A mapped address is really the IPv4 host it embeds.
  if (address.isIPv4MappedAddress()) return isPublicIPv4(address.toIPv4Address());
  // IPv4-compatible addresses (::a.b.c.d) are deprecated and never routed publicly,
  // yet ipaddr.js classes them as unicast. 6to4, Teredo and NAT64 have ranges of
  // their own, so they are refused below without decoding the embedded IPv4.
  if (address.parts.slice(0, 6).every((part) => part === 0)) return false;
  if (NON_PUBLIC_IPV6.some(([range, bits]) => address.match(range, bits))) return false;
  return address.range() === 'unicast';
}

/**
 * Ranges ipaddr.js classes as unicast that are never public: site-local (fec0::/10,
 * deprecated by RFC 3879 but still routed inside some networks) and the local-use NAT64
 * prefix (64:ff9b:1::/48, RFC 8215), which reaches whatever IPv4 the local translator maps.
 */
const NON_PUBLIC_IPV6: readonly [ipaddr.IPv6, number][] = [
  [ipaddr.IPv6.parse('fec0::'), 10],
  [ipaddr.IPv6.parse('64:ff9b:1::'), 48],
];

// Returns undefined for public hosts, or why the host cannot be public.
function nonPublicHostReason(host: string): string | undefined {
  if (host.startsWith('[')) {
    const address = ipaddr.IPv6.parse(host.slice(1, -1));
    return isPublicIPv6(address) ? undefined : PRIVATE_ADDRESS_REASON;
  }
  // The URL parser has already rewritten every IPv4 spelling (decimal, hex, octal, short) to dotted quads.
  // The regex first: ipaddr.js finds a name invalid by throwing, which costs more than the rest
  // of this check for every ordinary host name (bulk import checks millions).
  if (DOTTED_QUAD.test(host) && ipaddr.IPv4.isValidFourPartDecimal(host)) {
    return isPublicIPv4(ipaddr.IPv4.parse(host)) ? undefined : PRIVATE_ADDRESS_REASON;
  }
  if (NON_PUBLIC_SUFFIXES.some((suffix) => isWithinDomain(host, suffix))) {
    return 'Links to local or internal host names are not allowed.';
  }
  return undefined;
}

export function checkDestination(input: string, policy: DestinationPolicy): DestinationVerdict {
  if (input === '') return invalid('The URL is empty.');
  if (input.length > policy.maxUrlLength) {
    return invalid(`The URL is longer than the maximum of ${policy.maxUrlLength} characters.`);
  }
  // Checked before parsing because the URL parser silently strips or encodes these,
  // which would store something other than what the user sent.
  if (CONTROL_OR_SPACE.test(input)) return invalid('The URL must not contain spaces or control characters.');

  let parsed: URL;
  try {
    parsed = new URL(input);
  } catch {
    return invalid('The URL could not be parsed; it must be an absolute http or https URL.');
  }

  if (!ALLOWED_PROTOCOLS.has(parsed.protocol)) return invalid('Only http and https URLs are allowed.');
  if (parsed.hostname === '') return invalid('The URL must include a host name.');
  if (parsed.username !== '' || parsed.password !== '') {
    return invalid('The URL must not contain a user name or password.');
  }

  const host = withoutTrailingDots(parsed.hostname);

  if (policy.ownHosts.some((own) => normaliseListEntry(own) === host)) {
    return notAllowed('Links to this service itself are not allowed because they would loop.');
  }
  if (KNOWN_SHORTENERS.some((domain) => isWithinDomain(host, domain))) {
    return notAllowed('Links to other URL shorteners are not allowed; use the final destination instead.');
  }
  if (policy.blockedDomains.some((domain) => isWithinDomain(host, normaliseListEntry(domain)))) {
    return notAllowed('Links to this domain are blocked.');
  }
  if (!policy.allowPrivateAddresses) {
    const reason = nonPublicHostReason(host);
    if (reason !== undefined) return notAllowed(reason);
  }

  return { ok: true, url: parsed.href };
}
