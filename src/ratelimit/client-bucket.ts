/**
 * Whom a limit counts: an IPv4 address, or an IPv6 client's /64. One IPv6 subscriber
 * usually holds a whole /64 (often more), so counting single addresses would give it
 * 2^64 fresh budgets. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack
 * socket reports) count as the IPv4 address they carry.
 */
import ipaddr from 'ipaddr.js';

const MAPPED_V4 = '::ffff:';

export function clientBucket(ip: string): string {
  if (!ip.includes(':')) return ip;
  if (ip.startsWith(MAPPED_V4) && ip.includes('.')) return ip.slice(MAPPED_V4.length);
  const zone = ip.indexOf('%');
  const address = zone === -1 ? ip : ip.slice(0, zone);
  if (!ipaddr.IPv6.isValid(address)) return ip;
  const parts = ipaddr.IPv6.parse(address).parts;
  return `${parts.slice(0, 4).map((part) => part.toString(16)).join(':')}::/64`;
}
