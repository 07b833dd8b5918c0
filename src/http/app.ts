/**
 * Builds the HTTP app apart from `listen()`, so tests can drive it with `inject()`.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { Type } from '@sinclair/typebox';
import Fastify, { LogController, type FastifyInstance, type FastifyRequest } from 'fastify';
import { AppError } from '../shared/errors.js';
import type { AppDeps } from './app-deps.js';
import { dashboardRoutes, loadDashboard } from './dashboard.js';
import { fastRedirect } from './fast-redirect.js';
import { gatewayHook } from './gateway.js';
import { logRequest } from './request-log.js';
import { buildOpenApiDocument, type DocumentedRoute } from './openapi.js';
import { homePage, notFoundPage } from './pages/html.js';
import { sendProblem, toAppError } from './problem.js';
import { eventRoutes } from './routes/event-routes.js';
import { exportRoutes } from './routes/export-routes.js';
import { keyRoutes } from './routes/key-routes.js';
import { linkRoutes } from './routes/link-routes.js';
import { opsRoutes } from './routes/ops-routes.js';
import { QrResponder } from './qr-responder.js';
import { RedirectResponder } from './redirect-responder.js';
import { overviewRoutes } from './routes/overview-routes.js';
import { redirectRoutes } from './routes/redirect-routes.js';
import { sessionRoutes } from './routes/session-routes.js';
import { statsRoutes } from './routes/stats-routes.js';
import { validatorCompiler } from './validation.js';

type ContentTypeParser = (request: FastifyRequest, body: string, done: (error: Error | null, body?: unknown) => void) => void;

/** Longer request targets get 414 before any routing or parsing work. */
export const MAX_URI_LENGTH = 4096;
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function noRoute(request: FastifyRequest): AppError {
  return new AppError('not_found', { detail: `No route ${request.method} ${request.url.split('?')[0] ?? ''}` });
}

export interface BuiltApp {
  app: FastifyInstance;
  /** Every documented route, as registered. */
  routes: readonly DocumentedRoute[];
  openApiDocument: () => object;
}

export async function buildApp(deps: AppDeps): Promise<BuiltApp> {
  const { config } = deps;
  // One image, one role per deployment: each role serves only its part (ops endpoints always).
  const servesApi = config.role === 'all' || config.role === 'api';
  const servesRedirects = config.role === 'all' || config.role === 'redirect';
  // One responder for every short-link answer, on the fast path and the routes alike.
  const responder = new RedirectResponder(config.clicks.enabled ? deps.clicks : null, deps.notFoundThrottle);
  const qr = new QrResponder(responder);
  const app = Fastify({
    // Cached redirects are answered before the framework; see fast-redirect.ts.
    serverFactory: (handler) => {
      const fast = servesRedirects ? fastRedirect(deps, responder, qr) : null;
      const server = createServer((request, response) => {
        if (fast === null || !fast(request, response)) handler(request, response);
      });
      server.keepAliveTimeout = config.http.keepAliveTimeoutMs;
      return server;
    },
    loggerInstance: deps.logger,
    // One log line per request, written by our onResponse hook.
    logController: new LogController({ disableRequestLogging: true }),
    // Every line we write names its reqId itself, so requests share the root logger
    // instead of paying for a child logger each (measurable on the redirect path).
    childLoggerFactory: (logger) => logger,
    bodyLimit: config.http.bodyLimitBytes,
    trustProxy: config.trustedProxies.length > 0 ? [...config.trustedProxies] : false,
    keepAliveTimeout: config.http.keepAliveTimeoutMs,
    return503OnClosing: true,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    genReqId: (request) => {
      const incoming = request.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    },
    // Long parameters are left to our own 414 check, which answers problem+json.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 65_536 },
    // Errors the router raises before any hook (bad percent-encoding) still get a problem.
    frameworkErrors: (error, request, reply) => {
      void reply.header('X-Request-Id', request.id);
      const problem = new AppError(error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'uri_too_long' : 'malformed_request', { detail: error.message });
      request.log.info({ reqId: request.id, method: request.method, status: problem.status, err: error.code }, 'request refused');
      void sendProblem(request, reply, problem);
    },
  });
  app.setValidatorCompiler(validatorCompiler());
  // The API speaks JSON only: a text/plain body is a 415, not a string to validate.
  app.removeContentTypeParser('text/plain');
  app.decorateRequest('actor', null);
  // Many HTTP client wrappers send `Content-Type: application/json` on every call, DELETE
  // included: an empty body is no body. A route that needs one says so in our own words.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  const jsonOrNothing: ContentTypeParser = (request, body, done) => {
    if (body !== '') {
      void parseJson(request, body, done);
      return;
    }
    if (request.routeOptions.schema?.body === undefined) {
      done(null, undefined);
      return;
    }
    done(new AppError('malformed_request', { detail: 'This request needs a JSON body' }), undefined);
  };
  app.removeContentTypeParser('application/json');
  for (const type of ['application/json', 'application/merge-patch+json']) app.addContentTypeParser(type, { parseAs: 'string' }, jsonOrNothing);

  const routes: DocumentedRoute[] = [];
  app.addHook('onRoute', (route) => {
    const doc = route.config?.doc;
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (doc === undefined) return;
    for (const method of methods) {
      if (method === 'HEAD') continue;
      routes.push({ method, url: route.url, schema: route.schema, doc });
    }
  });

  app.addHook('onRequest', (request, reply, done) => {
    void reply.header('X-Request-Id', request.id);
    if (request.url.length > MAX_URI_LENGTH) {
      done(new AppError('uri_too_long', { detail: `The request target is longer than ${MAX_URI_LENGTH} characters` }));
      return;
    }
    // NUL can never be part of a valid code, query or body field, and PostgreSQL text cannot hold it.
    if (/%00/.test(request.url)) {
      done(new AppError('malformed_request', { detail: 'The request target contains an encoded NUL' }));
      return;
    }
    done();
  });

  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? '<unmatched>';
    logRequest(request.log, deps.metrics, request.id, request.method, request.url, route, reply.statusCode, reply.elapsedTime, request.ip);
    done();
  });

  app.setErrorHandler((error, request, reply) => {
    const problem = toAppError(error);
    // An outage is logged where the circuit opens, not once per request it turns away.
    if (problem.status >= 500 && problem.code !== 'dependency_unavailable') request.log.error({ err: error, reqId: request.id }, 'request failed');
    return sendProblem(request, reply, problem);
  });

  app.setNotFoundHandler((request, reply) => {
    if (request.url.startsWith('/api/')) return sendProblem(request, reply, noRoute(request));
    return reply.code(404).type('text/html; charset=utf-8').send(notFoundPage());
  });

  if (servesApi) await app.register((api, _options, done) => {
    api.addHook('onRequest', gatewayHook(deps));
    // Inside the API scope, so probing for endpoints is authenticated and rate limited too.
    api.setNotFoundHandler((request, reply) => sendProblem(request, reply, noRoute(request)));
    linkRoutes(api, deps);
    statsRoutes(api, deps);
    exportRoutes(api, deps);
    eventRoutes(api, deps);
    keyRoutes(api, deps);
    sessionRoutes(api, deps);
    overviewRoutes(api, deps);
    api.get('/openapi.json', {
      config: {
        doc: {
          operationId: 'openApiDocument', summary: 'This OpenAPI 3.1 document', tag: 'meta', auth: false,
          responses: { 200: { description: 'The OpenAPI document', schema: Type.Object({ openapi: Type.String() }, { additionalProperties: true }) } },
        },
      },
    }, () => openApiDocument());
    done();
  }, { prefix: '/api/v1' });

  opsRoutes(app, deps);
  // The dashboard lives wherever the API does; a redirect-only instance keeps its one-line page.
  const dashboard = servesApi ? loadDashboard() : null;
  if (servesApi && dashboard === null) deps.logger.warn('the dashboard is not built (npm run build:web); / shows the plain home page');
  if (dashboard !== null) dashboardRoutes(app, dashboard);
  else if (servesRedirects || servesApi) app.get('/', (_request: FastifyRequest, reply) => reply.type('text/html; charset=utf-8').send(homePage()));
  if (servesRedirects) redirectRoutes(app, deps, responder, qr);

  let cachedDocument: object | null = null;
  const openApiDocument = (): object => (cachedDocument ??= buildOpenApiDocument(routes, '/'));

  await app.ready();
  return { app, routes, openApiDocument };
}
