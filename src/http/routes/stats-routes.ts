/** GET /api/v1/links/{code}/stats: a link's clicks over time and by referrer, country, browser, OS and device. */
import type { FastifyInstance } from 'fastify';
import { planStats, StatsQueryError, type LinkStatsOptions, type StatsInterval } from '../../analytics/stats-query.js';
import type { AppDeps } from '../app-deps.js';
import { HOURLY_DEFAULT_MAX_DAYS, LinkStatsSchema, StatsQuerySchema, type StatsQuery } from '../analytics-schemas.js';
import { sendRevalidated } from '../etag.js';
import { requireActor } from '../gateway.js';
import { resolveRange, validationFailed } from '../query-range.js';
import { CodeParamsSchema } from '../schemas.js';
import { ownedLink } from './owned-link.js';

const DAY_MS = 86_400_000;

/** The field a refused stats query is about. */
const FIELD: Readonly<Record<StatsQueryError['reason'], string>> = {
  invalid_range: 'from',
  too_many_points: 'interval',
  invalid_top: 'top',
  invalid_interval: 'interval',
};

function statsOptions(query: StatsQuery, now: number): LinkStatsOptions {
  const { from, to } = resolveRange(query, now);
  const interval: StatsInterval = query.interval ?? (to.getTime() - from.getTime() > HOURLY_DEFAULT_MAX_DAYS * DAY_MS ? 'day' : 'hour');
  const options: LinkStatsOptions = { from, to, interval, bots: query.bots ?? 'exclude', top: query.top ?? 10 };
  try {
    // Checked before the link is looked up: a bad query is refused without touching the store.
    planStats(options);
  } catch (error) {
    if (!(error instanceof StatsQueryError)) throw error;
    const message = error.reason === 'too_many_points' ? `${error.message}: choose a longer interval or a shorter range` : error.message;
    throw validationFailed([{ field: FIELD[error.reason], message }]);
  }
  return options;
}

export function statsRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { links, analytics } = deps;

  app.get<{ Params: { code: string }; Querystring: StatsQuery }>('/links/:code/stats', {
    schema: { params: CodeParamsSchema, querystring: StatsQuerySchema },
    config: {
      doc: {
        operationId: 'getLinkStats',
        summary: 'Click statistics of a link over a time range',
        description:
          'Answered from rollups kept per minute, hour and UTC day, never from raw clicks. The series covers `range` (the asked ' +
          'range widened to whole buckets); breakdowns and uniques cover the whole UTC days in `days`. Bots (known bot user ' +
          'agents, and every HEAD request) are left out unless `bots=include`. Clicks appear here once the click pipeline has ' +
          'stored them (normally within a second or two).',
        tag: 'links',
        auth: true,
        responses: {
          200: { description: 'The statistics', schema: LinkStatsSchema, headers: ['Cache-Control', 'ETag'] },
          304: { description: 'Not modified (If-None-Match)' },
        },
        requestHeaders: [{ name: 'If-None-Match', description: 'Answer 304 when the ETag still matches' }],
      },
    },
  }, async (request, reply) => {
    const actor = requireActor(request);
    const options = statsOptions(request.query, Date.now());
    const link = await ownedLink(links, request.params.code, actor);
    return sendRevalidated(request, reply, await analytics.service.linkStats(link.id, options));
  });
}
