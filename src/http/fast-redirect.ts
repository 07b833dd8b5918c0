/**
 * The redirect hot path, ahead of the framework. A GET or HEAD of `/{code}` whose link is
 * in the in-process cache is answered here through the same responder as the `/:code`
 * route (status, headers, click), with the same log line and metrics, without building the
 * framework's request and reply. Everything else (a cache miss, a visit-limited link, a
 * throttled client, an odd URL, draining) returns false and goes through the framework's
 * route, which is the reference.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import proxyAddr from '@fastify/proxy-addr';
import { codeInPath } from '../links/code-shape.js';
import { decideRedirect } from '../links/redirect-decision.js';
import type { AppDeps } from './app-deps.js';
import { INVALID_HEADER_CHAR, type RedirectResponder } from './redirect-responder.js';
import { logRequest } from './request-log.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_FAST_URL = 2048;
const ROUTE = '/:code';

export type FastRedirect = (request: IncomingMessage, response: ServerResponse) => boolean;

export function fastRedirect(deps: AppDeps, responder: RedirectResponder): FastRedirect {
  const { links, config, metrics, logger, notFoundThrottle, readiness } = deps;
  const maxAge = config.http.permanentRedirectMaxAge;
  const trust = config.trustedProxies.length > 0 ? proxyAddr.compile([...config.trustedProxies]) : null;

  return function fast(request, response) {
    const { method, url } = request;
    if ((method !== 'GET' && method !== 'HEAD') || url === undefined || url.length > MAX_FAST_URL) return false;
    const code = codeInPath(url);
    if (code === null || url.includes('%00') || readiness.draining) return false;
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
    const status = responder.answer(request, response, reqId, ip, link, decision);
    logRequest(logger, metrics, reqId, method, url, ROUTE, status, performance.now() - started, ip);
    return true;
  };
}
