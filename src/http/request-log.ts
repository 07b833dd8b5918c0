/** The one line (and the one latency observation) each answered request leaves. */
import type { FastifyBaseLogger } from 'fastify';
import type { Metrics } from '../observability/metrics.js';

const MAX_LOGGED_URL = 512;

export function logRequest(
  logger: FastifyBaseLogger,
  metrics: Metrics,
  reqId: string, method: string, url: string, route: string, status: number, ms: number, ip: string,
): void {
  metrics.observeRequest(method, route, status, ms / 1000);
  const line = {
    reqId,
    method,
    url: url.length > MAX_LOGGED_URL ? `${url.slice(0, MAX_LOGGED_URL)}…` : url,
    route,
    status,
    ms: Math.round(ms * 100) / 100,
    ip,
  };
  if (status >= 500) logger.error(line, 'request');
  else logger.info(line, 'request');
}
