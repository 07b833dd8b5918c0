/**
 * The public short links: the hot path. Resolve (cache first), answer, hand the click
 * to the recorder; nothing else happens before the response.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { AppError } from '../../shared/errors.js';
import type { Link } from '../../links/link.js';
import { ALIAS_PATTERN } from '../../links/link-rules.js';
import { decideRedirect, NO_STORE } from '../../links/redirect-decision.js';
import type { AppDeps } from '../app-deps.js';
import { clickFrom } from '../click-capture.js';
import { gonePage, notFoundPage, previewPage, tooManyNotFoundPage } from '../pages/html.js';
import { renderQr, type QrFormat } from '../qr.js';
import { QrQuerySchema } from '../schemas.js';
import { shortUrlFor } from './link-json.js';

const HTML = 'text/html; charset=utf-8';
/** What Node refuses in a header value. */
export const INVALID_HEADER_CHAR = /[^\t\x20-\x7e\x80-\xff]/;

/** Expired, visit limit reached or disabled: the fallback URL when the link has one, else 410. */
function sendGone(reply: FastifyReply, fallbackUrl: string | null): void {
  if (fallbackUrl !== null) {
    void reply.code(302).header('Location', fallbackUrl).header('Cache-Control', NO_STORE).send();
    return;
  }
  void reply.code(410).type(HTML).header('Cache-Control', NO_STORE).send(gonePage());
}

function sendNotFound(reply: FastifyReply): void {
  void reply.code(404).type(HTML).header('Cache-Control', NO_STORE).send(notFoundPage());
}

export function redirectRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { links, clicks, config, notFoundThrottle } = deps;
  const maxAge = config.http.permanentRedirectMaxAge;

  function record(request: FastifyRequest, link: Link | null): void {
    if (link !== null) clicks.record(clickFrom(link, request.method, request.headers, request.ip));
  }

  function answer(request: FastifyRequest, reply: FastifyReply, code: string, link: Link | null): Promise<void> | void {
    const queryAt = request.url.indexOf('?');
    const rawQuery = queryAt === -1 ? '' : request.url.slice(queryAt + 1);
    const decision = decideRedirect(link, Date.now(), rawQuery, maxAge);
    switch (decision.kind) {
      case 'not_found':
        notFoundThrottle.notFound(request.ip);
        return sendNotFound(reply);
      case 'gone':
        return sendGone(reply, decision.fallbackUrl);
      case 'redirect': {
        if (INVALID_HEADER_CHAR.test(decision.location)) {
          throw new AppError('malformed_request', { detail: 'The query string cannot be forwarded in a Location header' });
        }
        const send = (): void => {
          // The hot path writes its empty 30x itself: Fastify's send pipeline (onSend hooks,
          // serialisers) has nothing to add here. onResponse hooks still run on 'finish'.
          reply.hijack();
          reply.raw.writeHead(decision.status, {
            location: decision.location,
            'cache-control': decision.cacheControl,
            'x-request-id': request.id,
            'content-length': '0',
          });
          reply.raw.end();
          record(request, link);
        };
        // Only visit-limited links pay a write: the limit must hold exactly under concurrency.
        if (decision.limited && link !== null) {
          return links.consumeVisit(link).then((allowed) => (allowed ? send() : sendGone(reply, link.fallbackUrl)));
        }
        return send();
      }
    }
  }

  app.get<{ Params: { code: string } }>('/:code', {
    config: {
      doc: {
        operationId: 'followLink',
        summary: 'Follow a short link',
        description: 'Redirects with the link\'s status. `/{code}+` (a trailing plus) shows a preview page instead, and records no click.',
        tag: 'redirects', auth: false, head: true,
        responses: {
          301: { description: 'Permanent redirect', headers: ['Location', 'Cache-Control'] },
          302: { description: 'Temporary redirect (default)', headers: ['Location', 'Cache-Control'] },
          307: { description: 'Temporary redirect, method kept', headers: ['Location', 'Cache-Control'] },
          308: { description: 'Permanent redirect, method kept', headers: ['Location', 'Cache-Control'] },
          404: { description: 'Unknown code (HTML page, no Location)', contentType: 'text/html', schema: Type.String() },
          410: { description: 'Expired, visit limit reached or disabled (HTML page)', contentType: 'text/html', schema: Type.String() },
          429: {
            description: 'The client drew too many unknown codes (RATE_LIMIT_404_PER_MINUTE): every redirect is refused until the window ends',
            contentType: 'text/html', schema: Type.String(), headers: ['Retry-After'],
          },
        },
      },
    },
  }, (request, reply) => {
    const { code } = request.params;
    const wait = notFoundThrottle.retryAfter(request.ip);
    if (wait > 0) {
      void reply.code(429).type(HTML).header('Retry-After', String(wait)).header('Cache-Control', NO_STORE).send(tooManyNotFoundPage());
      return;
    }
    if (code.endsWith('+')) return preview(reply, code.slice(0, -1));
    if (!ALIAS_PATTERN.test(code)) {
      notFoundThrottle.notFound(request.ip);
      return sendNotFound(reply);
    }
    const cached = links.peek(code);
    if (cached !== undefined) return answer(request, reply, code, cached);
    return links.resolve(code).then((link) => answer(request, reply, code, link));
  });

  async function preview(reply: FastifyReply, code: string): Promise<void> {
    if (!ALIAS_PATTERN.test(code)) return sendNotFound(reply);
    const link = await links.resolve(code);
    const decision = decideRedirect(link, Date.now(), '', maxAge);
    if (link === null || decision.kind === 'not_found') return sendNotFound(reply);
    if (decision.kind === 'gone') return sendGone(reply, null);
    const shortUrl = shortUrlFor(config.baseUrl, code);
    const qr = await renderQr(shortUrl, 'svg', 192);
    void reply
      .type(HTML)
      .header('Cache-Control', NO_STORE)
      .send(previewPage({ shortUrl, destination: link.url, title: link.title, qrSvg: String(qr.body) }));
  }

  app.get<{ Params: { code: string }; Querystring: { format?: QrFormat; size?: number } }>('/:code/qr', {
    schema: { querystring: QrQuerySchema },
    config: {
      doc: {
        operationId: 'linkQrCode', summary: 'QR code of the short URL', tag: 'redirects', auth: false,
        responses: {
          200: { description: 'The QR code as SVG (default) or PNG', contentType: ['image/svg+xml', 'image/png'], schema: Type.String() },
          404: { description: 'Unknown code (HTML page)', contentType: 'text/html', schema: Type.String() },
        },
      },
    },
  }, async (request, reply) => {
    const { code } = request.params;
    if (!ALIAS_PATTERN.test(code) || (await links.resolve(code)) === null) return sendNotFound(reply);
    const qr = await renderQr(shortUrlFor(config.baseUrl, code), request.query.format ?? 'svg', request.query.size ?? 256);
    return reply.type(qr.contentType).header('Cache-Control', 'public, max-age=86400').send(qr.body);
  });
}
