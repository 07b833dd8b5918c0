/**
 * A quick look at an address before ipaddr.js parses it: most clicks come from an IPv4
 * address in plain dotted decimal, which can be read without it. ipaddr.js also reads
 * octal, hex and shortened forms (`010.1`, `0x7f.1`); those take its slower path.
 */
import ipaddr from 'ipaddr.js';

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const PLAIN_IPV4 = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

/** Four decimal octets without leading zeros: the form ipaddr.js prints, so already canonical. */
export function isPlainIpv4(ip: string): boolean {
  return PLAIN_IPV4.test(ip);
}

/** As ipaddr.parse; throws the same way on an address it cannot read. */
export function parseIp(ip: string): ipaddr.IPv4 | ipaddr.IPv6 {
  if (!isPlainIpv4(ip)) return ipaddr.parse(ip);
  const octets = ip.split('.').map(Number);
  return new ipaddr.IPv4(octets);
}
