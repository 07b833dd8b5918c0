/**
 * The redirect hot path, ahead of the framework. A GET or HEAD of `/{code}` whose link is
 * in the in-process cache is answered here with the same status, headers, click, log line
 * and metrics as the `/:code` route, without building the framework's request and reply.
 * Everything else (a cache miss, a visit-limited link, a throttled client, an odd URL,
 * draining) returns false and goes through the framework's route, which is the reference.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import proxyAddr from '@fastify/proxy-addr';
import { decideRedirect, NO_STORE } from '../links/redirect-decision.js';
import type { AppDeps } from './app-deps.js';
import { clickFrom } from './click-capture.js';
import { gonePage, notFoundPage } from './pages/html.js';
import { INVALID_HEADER_CHAR } from './routes/redirect-routes.js';

const CODE_PATH = /^\/([A-Za-z0-9_-]{1,64})(?:\?|$)/;
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_FAST_URL = 2048;
const ROUTE = '/:code';
const HTML = 'text/html; charset=utf-8';

export type FastRedirect = (request: IncomingMessage, response: ServerResponse) => boolean;

export function fastRedirect(deps: AppDeps): FastRedirect {
  const { links, clicks, config, metrics, logger, notFoundThrottle, readiness } = deps;
  const maxAge = config.http.permanentRedirectMaxAge;
  const trust = config.trustedProxies.length > 0 ? proxyAddr.compile([...config.trustedProxies]) : null;
  const notFoundBody = notFoundPage();
  const goneBody = gonePage();

  return function fast(request, response) {
    const { method, url } = request;
    if ((method !== 'GET' && method !== 'HEAD') || url === undefined || url.length > MAX_FAST_URL) return false;
    const match = CODE_PATH.exec(url);
    if (match === null || url.includes('%00') || readiness.draining) return false;
    const code = match[1] as string;
    const ip = trust === null ? (request.socket.remoteAddress ?? '') : proxyAddr(request, trust);
    if (notFoundThrottle.retryAfter(ip) > 0) return false;
    const link = links.peek(code);
    // Visit-limited links need a write before answering: the route does that.
    if (link === undefined || (link !== null && link.maxVisits !== null)) return false;

    const started = performance.now();
    const queryAt = url.indexOf('?');
    const decision = decideRedirect(link, Date.now(), queryAt === -1 ? '' : url.slice(queryAt + 1), maxAge);
    if (decision.kind === 'redirect' && INVALID_HEADER_CHAR.test(decision.location)) return false;

    const incomingId = request.headers['x-request-id'];
    const reqId = typeof incomingId === 'string' && REQUEST_ID.test(incomingId) ? incomingId : randomUUID();
    let status: number;
    switch (decision.kind) {
      case 'redirect':
        status = decision.status;
        response.writeHead(status, {
          location: decision.location,
          'cache-control': decision.cacheControl,
          'x-request-id': reqId,
          'content-length': '0',
        });
        response.end();
        if (link !== null) clicks.record(clickFrom(link, method, request.headers, ip));
        break;
      case 'gone':
        if (decision.fallbackUrl !== null) {
          status = 302;
          response.writeHead(status, { location: decision.fallbackUrl, 'cache-control': NO_STORE, 'x-request-id': reqId, 'content-length': '0' });
          response.end();
        } else {
          status = 410;
          sendHtml(response, status, reqId, goneBody, method);
        }
        break;
      case 'not_found':
        status = 404;
        notFoundThrottle.notFound(ip);
        sendHtml(response, status, reqId, notFoundBody, method);
        break;
    }
    const ms = performance.now() - started;
    metrics.observeRequest(method, ROUTE, status, ms / 1000);
    logger.info({ reqId, method, url: url.length > 512 ? `${url.slice(0, 512)}…` : url, route: ROUTE, status, ms: Math.round(ms * 100) / 100, ip }, 'request');
    return true;
  };
}

function sendHtml(response: ServerResponse, status: number, reqId: string, body: string, method: string): void {
  response.writeHead(status, {
    'content-type': HTML,
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': NO_STORE,
    'x-request-id': reqId,
  });
  response.end(method === 'HEAD' ? undefined : body);
}
