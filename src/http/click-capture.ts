/** The click a redirect hands off: built from the request as it arrived, nothing looked up. */
import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import type { ClickEvent } from '../clicks/click-event.js';

const MAX_HEADER_KEPT = 1024;

function headerText(value: string | string[] | undefined): string | null {
  if (typeof value !== 'string' || value === '') return null;
  return value.length > MAX_HEADER_KEPT ? value.slice(0, MAX_HEADER_KEPT) : value;
}

/** A forwarded address is client input: store it only if it is an IP (zone dropped). */
function clientIp(ip: string | undefined): string | null {
  const address = ip?.split('%')[0] ?? '';
  return isIP(address) === 0 ? null : address;
}

export function clickFrom(code: string, method: string, headers: IncomingHttpHeaders, ip: string | undefined): ClickEvent {
  return {
    code,
    at: new Date(),
    method: method === 'HEAD' ? 'HEAD' : 'GET',
    referrer: headerText(headers.referer),
    userAgent: headerText(headers['user-agent']),
    ip: clientIp(ip),
  };
}
