/** The click a redirect hands off: built from the request as it arrived and the link it resolved, nothing looked up. */
import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import { MAX_CLICK_HEADER_LENGTH, type IdentifiedClickEvent } from '../clicks/click-event.js';
import { uuidv7 } from '../shared/uuid-v7.js';

function headerText(value: string | string[] | undefined): string | null {
  if (typeof value !== 'string' || value === '') return null;
  return value.length > MAX_CLICK_HEADER_LENGTH ? value.slice(0, MAX_CLICK_HEADER_LENGTH) : value;
}

/** A forwarded address is client input: store it only if it is an IP (zone dropped). */
function clientIp(ip: string | undefined): string | null {
  const address = ip?.split('%')[0] ?? '';
  return isIP(address) === 0 ? null : address;
}

/**
 * The id is given here, once, so every retry downstream carries the same one. `link` is the
 * link the redirect resolved: the click belongs to it, whatever later takes its code.
 */
/** What a click needs of the link it went through: its identity, and the code it was reached by. */
export interface ClickedLink {
  readonly id: string;
  readonly code: string;
}

export function clickFrom(link: ClickedLink, method: string, headers: IncomingHttpHeaders, ip: string | undefined): IdentifiedClickEvent {
  return {
    id: uuidv7(),
    linkId: link.id,
    code: link.code,
    at: new Date(),
    method: method === 'HEAD' ? 'HEAD' : 'GET',
    referrer: headerText(headers.referer),
    userAgent: headerText(headers['user-agent']),
    ip: clientIp(ip),
  };
}
