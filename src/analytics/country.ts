/**
 * Country of an IP address from the GeoLite2 Country data that the `geoip-country` package
 * ships (nothing is downloaded at run time). The data is MaxMind's, under the GeoLite2 EULA
 * and CC BY-SA 4.0: Shunt must credit it ("This product includes GeoLite2 Data created by
 * MaxMind, available from https://www.maxmind.com/") and keep the package up to date (the
 * EULA asks that a release older than 30 days past its successor be replaced).
 *
 * The package reads about 8 MB into memory when it is first required, so it is loaded on
 * the first lookup (or `preload()`), and only by processes that enrich clicks.
 */
import { createRequire } from 'node:module';
import ipaddr from 'ipaddr.js';
import { parseIp } from './ip-address.js';

export interface CountryLookup {
  /** ISO 3166-1 alpha-2, or null when the address is not public or not in the data. */
  country(ip: string | null): string | null;
}

type GeoipModule = { lookup(ip: string): { country: string } | null };

const require = createRequire(import.meta.url);
let geoip: GeoipModule | undefined;

function loadGeoip(): GeoipModule {
  return (geoip ??= require('geoip-country') as GeoipModule);
}

const ISO_ALPHA2 = /^[A-Z]{2}$/;

/**
 * The address to look up, or null for one that belongs to no country: private, loopback,
 * link-local, carrier-grade NAT, documentation and other special ranges. An IPv4-mapped
 * IPv6 address is looked up as the IPv4 address it carries.
 */
export function publicAddress(ip: string): string | null {
  let address: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    address = parseIp(ip);
  } catch {
    return null;
  }
  if (address instanceof ipaddr.IPv6 && address.isIPv4MappedAddress()) address = address.toIPv4Address();
  return address.range() === 'unicast' ? address.toString() : null;
}

export const geoipCountries: CountryLookup & { preload(): void } = {
  country(ip) {
    if (ip === null) return null;
    const address = publicAddress(ip);
    if (address === null) return null;
    const code = loadGeoip().lookup(address)?.country;
    return code !== undefined && ISO_ALPHA2.test(code) ? code : null;
  },
  preload() {
    loadGeoip();
  },
};
