/** GET /api/v1/links/{code}/events: a link's clicks as they are stored, as Server-Sent Events. */
import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { Gauge } from 'prom-client';
import { AppError } from '../../shared/errors.js';
import type { AppDeps } from '../app-deps.js';
import { EventStreamSchema } from '../analytics-schemas.js';
import { EventStreams } from '../event-streams.js';
import { publicLiveClick } from '../../live/live-click-feed.js';
import { requireActor } from '../gateway.js';
import { PROBLEM_CONTENT_TYPE } from '../problem.js';
import { CodeParamsSchema, ProblemSchema } from '../schemas.js';
import { ownedLink } from './owned-link.js';

export function eventRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { links, analytics, readiness, metrics, logger } = deps;
  const streams = new EventStreams(analytics.events, { grants: analytics.service, logger });
  new Gauge({
    name: 'shunt_event_streams',
    help: 'Open event streams (GET /api/v1/links/{code}/events) on this instance',
    registers: [metrics.registry],
    collect() {
      this.set(streams.size);
    },
  });
  // Before the server waits for its connections: an open stream would otherwise hold the
  // drain until it is cut. Ended with a comment, clients reconnect, to another instance.
  app.addHook('preClose', (done) => {
    streams.endAll('server shutting down; reconnect');
    done();
  });

  app.get<{ Params: { code: string } }>('/links/:code/events', {
    schema: { params: CodeParamsSchema },
    // A HEAD would open a stream that sends nothing and never ends.
    exposeHeadRoute: false,
    config: {
      doc: {
        operationId: 'streamLinkEvents',
        summary: 'The clicks of a link as they are stored (Server-Sent Events)',
        description:
          'Each click is sent once the click pipeline has stored it, so the stream never shows a click the stats will not count. ' +
          'Authentication is the `Authorization: Bearer` header, as everywhere: a browser\'s `EventSource` cannot send it, so use a ' +
          'fetch-based client (fetch() and a ReadableStream reader, or a library built on them). Keys are never accepted in the URL, ' +
          'where proxies and access logs would keep them. The stream starts at the moment of connection: `Last-Event-ID` is not ' +
          `replayed (the stats count every click). A key may hold ${analytics.events.maxStreamsPerKey} streams on an instance ` +
          '(EVENTS_MAX_STREAMS_PER_KEY); past that it is answered 429 `too_many_streams_for_key` until one of them closes. Each instance ' +
          `holds at most ${analytics.events.maxStreams} streams (EVENTS_MAX_STREAMS); past that it answers 503 \`too_many_streams\` with ` +
          'Retry-After. The stream ends (with a comment) within a few seconds of its key being revoked or its link being deleted or ' +
          'given to another owner, whichever instance made the change. A proxy in front must not buffer the response (nginx: proxy_buffering off, ' +
          'or the X-Accel-Buffering: no header this answer carries).',
        tag: 'links',
        auth: true,
        responses: {
          200: { description: 'The event stream; it ends only when the client or the server closes it', schema: EventStreamSchema, contentType: 'text/event-stream', headers: ['Cache-Control'] },
          429: { description: 'This key holds as many streams on this instance as it may', schema: ProblemSchema, contentType: PROBLEM_CONTENT_TYPE, headers: ['Retry-After'] },
          503: { description: 'Too many open streams on this instance, or it is shutting down', schema: ProblemSchema, contentType: PROBLEM_CONTENT_TYPE, headers: ['Retry-After'] },
        },
      },
    },
  }, async (request, reply) => {
    const actor = requireActor(request);
    if (readiness.draining) throw new AppError('shutting_down', { detail: 'This instance is shutting down; reconnect', headers: { 'Retry-After': '1' } });
    const link = await ownedLink(links, request.params.code, actor);
    if (streams.fullFor(actor.keyId)) {
      throw new AppError('too_many_streams_for_key', {
        detail: `This key holds ${analytics.events.maxStreamsPerKey} event streams on this instance already; close one first`,
        headers: { 'Retry-After': '5' },
      });
    }
    if (streams.full) {
      throw new AppError('too_many_streams', {
        detail: `This instance holds ${analytics.events.maxStreams} event streams already; retry, another instance may take it`,
        headers: { 'Retry-After': '5' },
      });
    }
    // From here on the response is written by hand; the headers Fastify holds for it
    // (request id, rate limits) go out with the head.
    void reply.hijack();
    const headers: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) headers[name] = value;
    reply.raw.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      // no-transform: a proxy must not compress or otherwise hold back the events.
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
    });
    const stream = streams.start(reply.raw, { keyId: actor.keyId, linkId: link.id });
    if (!stream.open) return;
    stream.onEnd(analytics.liveClicks.subscribe(link.id, (click) => stream.send('click', click.id, JSON.stringify(publicLiveClick(click)))));
  });
}
