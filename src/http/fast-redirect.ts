/**
 * The short-link hot paths, ahead of the framework. A GET or HEAD of `/{code}` whose link is
 * in the in-process cache, and a GET or HEAD of `/{code}/qr` whose link and image both are,
 * are answered here through the same responders as the `/:code` and `/:code/qr` routes
 * (status, headers, click), with the same log line and metrics, without building the
 * framework's request and reply. Everything else (a cache miss, a visit-limited link, a
 * throttled client, an odd URL or query, draining) returns false and goes through the
 * framework's route, which is the reference.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import proxyAddr from '@fastify/proxy-addr';
import { codeInPath, codeInQrPath } from '../links/code-shape.js';
import { decideRedirect } from '../links/redirect-decision.js';
import type { AppDeps } from './app-deps.js';
import type { QrResponder } from './qr-responder.js';
import { INVALID_HEADER_CHAR, type RedirectResponder } from './redirect-responder.js';
import { logRequest } from './request-log.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_FAST_URL = 2048;
const ROUTE = '/:code';
const QR_ROUTE = '/:code/qr';

export type FastRedirect = (request: IncomingMessage, response: ServerResponse) => boolean;

export function fastRedirect(deps: AppDeps, responder: RedirectResponder, qr: QrResponder): FastRedirect {
  const { links, config, metrics, logger, notFoundThrottle, readiness, qrCodes } = deps;
  const maxAge = config.http.permanentRedirectMaxAge;
  const trust = config.trustedProxies.length > 0 ? proxyAddr.compile([...config.trustedProxies]) : null;

  function requestId(request: IncomingMessage): string {
    const incoming = request.headers['x-request-id'];
    return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
  }

  /** A cached QR code (true), or false for the route to answer. */
  function qrCode(request: IncomingMessage, response: ServerResponse, method: string, url: string, code: string, ip: string): boolean {
    const queryAt = url.indexOf('?');
    const query = qr.plainQuery(queryAt === -1 ? '' : url.slice(queryAt + 1));
    if (query === null) return false;
    const link = links.peek(code);
    if (link === undefined) return false;
    const started = performance.now();
    const answer = qr.decide(link, query, request.headers['if-none-match']);
    const reqId = requestId(request);
    let status: number;
    if (answer.kind === 'image') {
      // Not rendered yet, or only in Redis: the route waits for it.
      const body = qrCodes.peek(answer.link, answer.format, answer.size);
      if (body === undefined) return false;
      status = qr.image(request, response, reqId, answer, body);
    } else {
      status = qr.refuse(request, response, reqId, ip, answer);
    }
    logRequest(logger, metrics, reqId, method, url, QR_ROUTE, status, performance.now() - started, ip);
    return true;
  }

  return function fast(request, response) {
    const { method, url } = request;
    if ((method !== 'GET' && method !== 'HEAD') || url === undefined || url.length > MAX_FAST_URL) return false;
    const code = codeInPath(url);
    const qrOf = code === null ? codeInQrPath(url) : null;
    if ((code === null && qrOf === null) || url.includes('%00') || readiness.draining) return false;
    const ip = trust === null ? (request.socket.remoteAddress ?? '') : proxyAddr(request, trust);
    if (notFoundThrottle.retryAfter(ip) > 0) return false;
    if (qrOf !== null) return qrCode(request, response, method, url, qrOf, ip);
    if (code === null) return false;
    const link = links.peek(code);
    // Visit-limited links need a write before answering: the route does that.
    if (link === undefined || (link !== null && link.maxVisits !== null)) return false;

    const started = performance.now();
    const queryAt = url.indexOf('?');
    const decision = decideRedirect(link, Date.now(), queryAt === -1 ? '' : url.slice(queryAt + 1), maxAge);
    if (decision.kind === 'redirect' && INVALID_HEADER_CHAR.test(decision.location)) return false;

    const reqId = requestId(request);
    const status = responder.answer(request, response, reqId, ip, link, decision);
    logRequest(logger, metrics, reqId, method, url, ROUTE, status, performance.now() - started, ip);
    return true;
  };
}
