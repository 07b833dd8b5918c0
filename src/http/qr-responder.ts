/**
 * Every answer `/{code}/qr` gives, decided and written once: 404 for an unknown code
 * (counted by the unknown-code throttle), 410 for a link that is gone (never its fallback:
 * a QR code reveals nothing of such a link), 304 when the client's copy is current, else the
 * image with its ETag. The fast path (fast-redirect.ts) and the framework's route
 * (routes/redirect-routes.ts) both decide and write through it, on the raw response, so
 * they cannot drift apart. The QR code carries the short URL, never the destination, so a
 * password-protected link shows it like any other.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { qrEtag } from '../cache/qr-cache.js';
import type { Link } from '../links/link.js';
import { isGone } from '../links/redirect-decision.js';
import { QR_DEFAULT_SIZE, qrContentType, type QrFormat } from './qr.js';
import type { RedirectResponder } from './redirect-responder.js';
import { QrQuerySchema } from './schemas.js';
import { createAjv } from './validation.js';

/** Short-lived and revalidated: a link that is disabled or expires must stop being served. */
const CACHE_CONTROL = 'public, max-age=300, must-revalidate';
/** What the fast path reads itself; anything else in a query is left to the route and its validation. */
const PLAIN_QUERY = /^[A-Za-z0-9=&]*$/;

export interface QrQuery {
  format: QrFormat;
  size: number;
}

export interface ImageAnswer {
  kind: 'image';
  link: Link;
  format: QrFormat;
  size: number;
  etag: string;
}

export type QrAnswer = { kind: 'not_found' } | { kind: 'gone' } | { kind: 'not_modified'; etag: string } | ImageAnswer;

const NOT_FOUND: QrAnswer = { kind: 'not_found' };
const GONE: QrAnswer = { kind: 'gone' };

function matchesEtag(ifNoneMatch: string, etag: string): boolean {
  return ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}

export class QrResponder {
  // The route's own query schema, coerced and defaulted the way the framework does it.
  private readonly validQuery = createAjv('text').compile<Partial<QrQuery>>(QrQuerySchema);

  constructor(private readonly responder: RedirectResponder) {}

  /**
   * The query of a plain target (`format=png&size=512`), defaults filled in; null for
   * anything else, valid or not, which the route then answers (422 problems included).
   */
  plainQuery(rawQuery: string): QrQuery | null {
    if (!PLAIN_QUERY.test(rawQuery)) return null;
    const fields: Record<string, string> = {};
    if (rawQuery !== '') {
      for (const field of rawQuery.split('&')) {
        const equals = field.indexOf('=');
        if (equals <= 0) return null;
        const name = field.slice(0, equals);
        if (Object.hasOwn(fields, name)) return null;
        fields[name] = field.slice(equals + 1);
      }
    }
    const query: unknown = fields;
    if (!this.validQuery(query)) return null;
    return this.withDefaults(query);
  }

  /** `query` as the route's validation left it: fields it defaults may still be absent. */
  withDefaults(query: Partial<QrQuery>): QrQuery {
    return { format: query.format ?? 'svg', size: query.size ?? QR_DEFAULT_SIZE };
  }

  /** Pure: what the QR code of `link` answers now. */
  decide(link: Link | null, query: QrQuery, ifNoneMatch: string | undefined, now = Date.now()): QrAnswer {
    if (link === null) return NOT_FOUND;
    if (isGone(link, now)) return GONE;
    const etag = qrEtag(link, query.format, query.size);
    if (ifNoneMatch !== undefined && matchesEtag(ifNoneMatch, etag)) return { kind: 'not_modified', etag };
    return { kind: 'image', link, format: query.format, size: query.size, etag };
  }

  /** Writes an answer other than the image. Returns the status written. */
  refuse(request: IncomingMessage, response: ServerResponse, reqId: string, ip: string, answer: Exclude<QrAnswer, ImageAnswer>): number {
    switch (answer.kind) {
      case 'not_found':
        return this.responder.notFound(request, response, reqId, ip);
      case 'gone':
        return this.responder.gone(request, response, reqId, null);
      case 'not_modified':
        response.writeHead(304, { etag: answer.etag, 'cache-control': CACHE_CONTROL, 'x-request-id': reqId });
        response.end();
        return 304;
    }
  }

  image(request: IncomingMessage, response: ServerResponse, reqId: string, answer: ImageAnswer, body: Buffer): number {
    response.writeHead(200, {
      'content-type': qrContentType(answer.format),
      'content-length': String(body.byteLength),
      etag: answer.etag,
      'cache-control': CACHE_CONTROL,
      'x-request-id': reqId,
    });
    response.end(request.method === 'HEAD' ? undefined : body);
    return 200;
  }
}
