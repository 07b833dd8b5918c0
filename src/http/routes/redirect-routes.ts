/**
 * The public short links: `/{code}` (the hot path), `/{code}+` (preview), `/{code}/qr` and
 * the password form's POST. Every short-link answer (30x, gone, not found, throttled,
 * password form) is written by the one responder the fast path uses too; the click is
 * handed over there, after the 30x, and nowhere else. QR answers likewise go through the
 * QR responder the fast path shares.
 *
 * Unknown codes count toward the client's unknown-code budget on all three GET paths,
 * and a client over it is refused on all of them: probing aliases through the preview or
 * the QR code is throttled like following them.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { AppError } from '../../shared/errors.js';
import type { Link } from '../../links/link.js';
import { isCode } from '../../links/code-shape.js';
import { decideRedirect, NO_STORE, type RedirectDecision } from '../../links/redirect-decision.js';
import { clientBucket } from '../../ratelimit/client-bucket.js';
import type { AppDeps } from '../app-deps.js';
import { previewPage } from '../pages/html.js';
import type { QrFormat } from '../qr.js';
import type { QrResponder } from '../qr-responder.js';
import { INVALID_HEADER_CHAR, type RedirectResponder } from '../redirect-responder.js';
import { QrQuerySchema } from '../schemas.js';
import { shortUrlFor } from './link-json.js';

const HTML = 'text/html; charset=utf-8';
const PREVIEW_QR_SIZE = 192;
/** A form post carries one short field. */
const FORM_BODY_LIMIT = 4096;
const HtmlPage = Type.String();

const GONE_DOC = { description: 'Expired, visit limit reached or disabled (HTML page; reveals nothing about the link)', contentType: 'text/html', schema: HtmlPage };
const NOT_FOUND_DOC = { description: 'Unknown code (HTML page), counted toward RATE_LIMIT_404_PER_MINUTE', contentType: 'text/html', schema: HtmlPage };
const THROTTLED_DOC = {
  description: 'The client drew too many unknown codes (RATE_LIMIT_404_PER_MINUTE): every redirect, preview and QR code is refused until the window ends',
  contentType: 'text/html', schema: HtmlPage, headers: ['Retry-After'],
};

function queryOf(url: string): string {
  const queryAt = url.indexOf('?');
  return queryAt === -1 ? '' : url.slice(queryAt + 1);
}

export function redirectRoutes(app: FastifyInstance, deps: AppDeps, responder: RedirectResponder, qr: QrResponder): void {
  const { links, config, notFoundThrottle, rateLimiter, qrCodes } = deps;
  const maxAge = config.http.permanentRedirectMaxAge;

  /** The framework steps aside: the responder writes on the raw response. */
  function raw(reply: FastifyReply): FastifyReply['raw'] {
    reply.hijack();
    return reply.raw;
  }

  /** Refuses a throttled client (true), else false. */
  function throttled(request: FastifyRequest, reply: FastifyReply): boolean {
    const wait = notFoundThrottle.retryAfter(request.ip);
    if (wait === 0) return false;
    responder.throttled(request.raw, raw(reply), request.id, wait);
    return true;
  }

  function notFound(request: FastifyRequest, reply: FastifyReply): void {
    responder.notFound(request.raw, raw(reply), request.id, request.ip);
  }

  /** Writes a decision; consumes the visit of a visit-limited link first. */
  function answer(request: FastifyRequest, reply: FastifyReply, code: string, link: Link | null, decision: RedirectDecision, status?: number): Promise<void> | void {
    if (decision.kind !== 'redirect') {
      responder.answer(request.raw, raw(reply), request.id, request.ip, link, decision);
      return;
    }
    if (INVALID_HEADER_CHAR.test(decision.location)) {
      throw new AppError('malformed_request', { detail: 'The query string cannot be forwarded in a Location header' });
    }
    const send = (): void => {
      responder.redirect(request.raw, raw(reply), request.id, request.ip, link, status ?? decision.status, decision.location, status === undefined ? decision.cacheControl : NO_STORE);
    };
    // Only visit-limited links pay a write: the limit must hold exactly under concurrency.
    if (decision.limited && link !== null) {
      return links.consumeVisit(link).then((allowed) => {
        if (allowed) send();
        else responder.gone(request.raw, raw(reply), request.id, link.fallbackUrl);
      });
    }
    send();
  }

  function follow(request: FastifyRequest, reply: FastifyReply, code: string, link: Link | null): Promise<void> | void {
    return answer(request, reply, code, link, decideRedirect(link, Date.now(), queryOf(request.url), maxAge));
  }

  app.get<{ Params: { code: string } }>('/:code', {
    config: {
      doc: {
        operationId: 'followLink',
        summary: 'Follow a short link',
        description:
          'Redirects with the link\'s status. `/{code}+` (a trailing plus) shows a preview page instead, and records no click. ' +
          'A password-protected link answers a form (200) that posts the password to this same path.',
        tag: 'redirects', auth: false, head: true,
        responses: {
          200: { description: 'Password-protected link: the password form (HTML; nothing about the destination)', contentType: 'text/html', schema: HtmlPage },
          301: { description: 'Permanent redirect', headers: ['Location', 'Cache-Control'] },
          302: { description: 'Temporary redirect (default)', headers: ['Location', 'Cache-Control'] },
          307: { description: 'Temporary redirect, method kept', headers: ['Location', 'Cache-Control'] },
          308: { description: 'Permanent redirect, method kept', headers: ['Location', 'Cache-Control'] },
          404: NOT_FOUND_DOC,
          410: GONE_DOC,
          429: THROTTLED_DOC,
        },
      },
    },
  }, (request, reply) => {
    if (throttled(request, reply)) return;
    const { code } = request.params;
    if (code.endsWith('+')) return preview(request, reply, code.slice(0, -1));
    if (!isCode(code)) return notFound(request, reply);
    const cached = links.peek(code);
    if (cached !== undefined) return follow(request, reply, code, cached);
    return links.resolve(code).then((link) => follow(request, reply, code, link));
  });

  async function preview(request: FastifyRequest, reply: FastifyReply, code: string): Promise<void> {
    if (!isCode(code)) return notFound(request, reply);
    const link = await links.resolve(code);
    const decision = decideRedirect(link, Date.now(), '', maxAge);
    if (link === null || decision.kind === 'not_found') return notFound(request, reply);
    // Gone links reveal nothing here, not even their fallback.
    if (decision.kind === 'gone') return void responder.gone(request.raw, raw(reply), request.id, null);
    const shortUrl = shortUrlFor(config.baseUrl, code);
    const qrSvg = await qrCodes.get(link, 'svg', PREVIEW_QR_SIZE);
    void reply
      .type(HTML)
      .header('Cache-Control', NO_STORE)
      .send(previewPage({ shortUrl, destination: link.passwordProtected ? null : link.url, title: link.title, qrSvg: qrSvg.toString('utf8') }));
  }

  app.get<{ Params: { code: string }; Querystring: { format?: QrFormat; size?: number } }>('/:code/qr', {
    schema: { querystring: QrQuerySchema },
    config: {
      doc: {
        operationId: 'linkQrCode', summary: 'QR code of the short URL', tag: 'redirects', auth: false,
        description: 'Rendered once per link version, format and size, then served from cache. The QR code carries the short URL, never the destination.',
        requestHeaders: [{ name: 'If-None-Match', description: 'Answer 304 when the ETag still matches' }],
        responses: {
          200: { description: 'The QR code as SVG (default) or PNG', contentType: ['image/svg+xml', 'image/png'], schema: Type.String(), headers: ['ETag', 'Cache-Control'] },
          304: { description: 'Not modified', headers: ['ETag'] },
          404: NOT_FOUND_DOC,
          410: GONE_DOC,
          429: THROTTLED_DOC,
        },
      },
    },
  }, async (request, reply) => {
    if (throttled(request, reply)) return;
    const { code } = request.params;
    if (!isCode(code)) return notFound(request, reply);
    const link = await links.resolve(code);
    const answer = qr.decide(link, qr.withDefaults(request.query), request.headers['if-none-match']);
    if (answer.kind !== 'image') return void qr.refuse(request.raw, raw(reply), request.id, request.ip, answer);
    // Fetched before the framework steps aside: a refused render is still its 503 problem.
    const body = await qrCodes.get(answer.link, answer.format, answer.size);
    qr.image(request.raw, raw(reply), request.id, answer, body);
  });

  // The password form's answer, in a scope of its own: only here is a form body parsed.
  void app.register((scope, _options, done) => {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_BODY_LIMIT }, (_request, body, parsed) => {
      parsed(null, Object.fromEntries(new URLSearchParams(String(body))));
    });
    scope.post<{ Params: { code: string }; Body: unknown }>('/:code', {
      bodyLimit: FORM_BODY_LIMIT,
      config: {
        doc: {
          operationId: 'unlockLink', summary: 'Post the password of a protected link', tag: 'redirects', auth: false,
          description:
            'The form of a password-protected link posts here (`password`, form-encoded or JSON). The right password gets 303 to the ' +
            'destination and counts the click. Attempts are limited per link and per client (RATE_LIMIT_PASSWORD_PER_LINK_PER_MINUTE, ' +
            'RATE_LIMIT_PASSWORD_PER_IP_PER_MINUTE).',
          requestBody: {
            contentType: 'application/x-www-form-urlencoded',
            schema: Type.Object({ password: Type.String({ maxLength: 1024 }) }),
          },
          responses: {
            303: { description: 'Right password: to the destination (no-store)', headers: ['Location', 'Cache-Control'] },
            401: { description: 'Wrong password: the form again', contentType: 'text/html', schema: HtmlPage },
            404: NOT_FOUND_DOC,
            410: GONE_DOC,
            429: { description: 'Too many attempts on this link or from this client, or too many unknown codes', contentType: 'text/html', schema: HtmlPage, headers: ['Retry-After'] },
          },
        },
      },
    }, async (request, reply) => {
      if (throttled(request, reply)) return;
      const { code } = request.params;
      if (!isCode(code)) return notFound(request, reply);
      const link = await links.resolve(code);
      if (link === null || !link.passwordProtected) return notFound(request, reply);
      const decision = decideRedirect(link, Date.now(), queryOf(request.url), maxAge, true);
      if (decision.kind !== 'redirect') return answer(request, reply, code, link, decision);
      const [perLink, perClient] = await Promise.all([
        rateLimiter.consume(`pw-link:${link.id}`, config.rateLimits.passwordPerLinkPerMinute),
        rateLimiter.consume(`pw-ip:${clientBucket(request.ip)}`, config.rateLimits.passwordPerIpPerMinute),
      ]);
      if (!perLink.allowed || !perClient.allowed) {
        const wait = Math.max(perLink.allowed ? 0 : perLink.resetSeconds, perClient.allowed ? 0 : perClient.resetSeconds);
        return void responder.passwordForm(request.raw, raw(reply), request.id, 'too_many', wait);
      }
      const body = request.body as { password?: unknown } | null | undefined;
      const password = typeof body?.password === 'string' ? body.password : '';
      if (!(await links.passwordMatches(link, password))) return void responder.passwordForm(request.raw, raw(reply), request.id, 'wrong');
      // 303: the browser follows with a GET, so the password is never posted to the destination.
      return answer(request, reply, code, link, decision, 303);
    });
    done();
  });
}
