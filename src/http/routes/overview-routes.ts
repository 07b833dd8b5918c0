/** /api/v1/stats/overview and /api/v1/stats/links: account-wide numbers for the dashboard. */
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { MAX_OVERVIEW_DAYS, overviewDays } from '../../analytics/overview-query.js';
import { isCode } from '../../links/code-shape.js';
import type { AppDeps } from '../app-deps.js';
import { sendRevalidated } from '../etag.js';
import { requireActor } from '../gateway.js';
import { resolveRange, validationFailed } from '../query-range.js';

const Bots = Type.Optional(Type.Union([Type.Literal('exclude'), Type.Literal('include')], { default: 'exclude', description: 'Count clicks of known bots (and HEAD requests) too.' }));

const OverviewQuerySchema = Type.Object(
  {
    from: Type.Optional(Type.String({ format: 'date-time', description: 'Start of the range (widened to its UTC day). Default: `to` minus 7 days.' })),
    to: Type.Optional(Type.String({ format: 'date-time', description: 'End of the range, exclusive (widened to a whole UTC day). Default: now.' })),
    bots: Bots,
    top: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 10, description: 'Links listed in topLinks.' })),
  },
  { additionalProperties: false },
);

const OverviewSchema = Type.Object({
  days: Type.Object({ from: Type.String({ format: 'date-time' }), to: Type.String({ format: 'date-time' }) }, { description: 'The whole UTC days covered.' }),
  totals: Type.Object({ clicks: Type.Integer({ description: 'Clicks in `days`.' }), links: Type.Integer({ description: 'Links of the key (all links for an admin).' }) }),
  series: Type.Array(Type.Object({ t: Type.String({ format: 'date-time' }), clicks: Type.Integer() }), { description: 'One point per UTC day, zeros included.' }),
  topLinks: Type.Array(Type.Object({ code: Type.String(), title: Type.Union([Type.String(), Type.Null()]), clicks: Type.Integer() }), { description: 'Most clicked first.' }),
});

const TotalsQuerySchema = Type.Object(
  {
    codes: Type.String({ minLength: 1, maxLength: 6600, description: 'Up to 100 link codes, separated by commas.' }),
    bots: Bots,
  },
  { additionalProperties: false },
);

const TotalsSchema = Type.Object({
  items: Type.Array(Type.Object({ code: Type.String(), clicks: Type.Integer({ description: 'All-time clicks.' }) }), {
    description: 'One item per code the key may see; codes of other keys and unknown codes are left out.',
  }),
});

const REVALIDATE = { name: 'If-None-Match', description: 'Answer 304 when the ETag still matches' };

export function overviewRoutes(app: FastifyInstance, deps: AppDeps): void {
  app.get<{ Querystring: Static<typeof OverviewQuerySchema> }>('/stats/overview', {
    schema: { querystring: OverviewQuerySchema },
    config: {
      doc: {
        operationId: 'getOverview', summary: 'Clicks per day over all links of the key (all links for an admin), and the top links', tag: 'links', auth: true,
        requestHeaders: [REVALIDATE],
        responses: { 200: { description: 'The overview', schema: OverviewSchema, headers: ['ETag', 'Cache-Control'] }, 304: { description: 'Not modified' } },
      },
    },
  }, async (request, reply) => {
    const actor = requireActor(request);
    const range = resolveRange(request.query, Date.now());
    if (overviewDays(range.from, range.to).points > MAX_OVERVIEW_DAYS) {
      throw validationFailed([{ field: 'from', message: `the range may cover at most ${MAX_OVERVIEW_DAYS} days` }]);
    }
    const overview = await deps.analytics.service.overview({
      ...range, bots: request.query.bots ?? 'exclude', top: request.query.top ?? 10, ownerKeyId: actor.role === 'admin' ? null : actor.keyId,
    });
    return sendRevalidated(request, reply, overview);
  });

  app.get<{ Querystring: Static<typeof TotalsQuerySchema> }>('/stats/links', {
    schema: { querystring: TotalsQuerySchema },
    config: {
      doc: {
        operationId: 'getLinkTotals', summary: 'All-time clicks of several links at once (the per-row numbers of a list)', tag: 'links', auth: true,
        requestHeaders: [REVALIDATE],
        responses: { 200: { description: 'Totals', schema: TotalsSchema, headers: ['ETag', 'Cache-Control'] }, 304: { description: 'Not modified' } },
      },
    },
  }, async (request, reply) => {
    const actor = requireActor(request);
    const codes = [...new Set(request.query.codes.split(',').map((code) => code.trim()).filter((code) => code !== ''))];
    if (codes.length > 100) throw validationFailed([{ field: 'codes', message: 'at most 100 codes' }]);
    const valid = codes.filter(isCode);
    const items = await deps.analytics.service.linkTotals(valid, actor.role === 'admin' ? null : actor.keyId, request.query.bots ?? 'exclude');
    return sendRevalidated(request, reply, { items });
  });
}
