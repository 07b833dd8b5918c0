/**
 * CSV exports of raw clicks: GET /api/v1/links/{code}/stats/export answers the file at once
 * for a small range and otherwise queues a job (202) that a worker writes into the store;
 * GET /api/v1/exports/{id} reports the job and GET /api/v1/exports/{id}/file serves it.
 */
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { csvFileName } from '../../analytics/click-csv.js';
import type { ExportJob } from '../../analytics/export-jobs.js';
import type { Actor } from '../../links/link.js';
import { AppError } from '../../shared/errors.js';
import type { AppDeps } from '../app-deps.js';
import { CsvSchema, ExportIdParamsSchema, ExportJobSchema, ExportQuerySchema, type ExportQuery } from '../analytics-schemas.js';
import { requireActor } from '../gateway.js';
import { PROBLEM_CONTENT_TYPE } from '../problem.js';
import { resolveRange } from '../query-range.js';
import { CodeParamsSchema, ProblemSchema } from '../schemas.js';
import { ownedLink } from './owned-link.js';

const CSV_TYPE = 'text/csv; charset=utf-8';
/** Each job reads every raw click of its range: one key may not queue without bound. */
export const MAX_UNFINISHED_EXPORTS_PER_KEY = 10;

function jobJson(job: ExportJob): Record<string, unknown> {
  const href = `/api/v1/exports/${job.id}`;
  const iso = (date: Date | null): string | null => date?.toISOString() ?? null;
  return {
    id: job.id,
    status: job.status,
    href,
    fileHref: job.status === 'done' ? `${href}/file` : null,
    code: job.code,
    from: job.from.toISOString(),
    to: job.to.toISOString(),
    rows: job.rows,
    bytes: job.bytes,
    error: job.error,
    createdAt: job.createdAt.toISOString(),
    startedAt: iso(job.startedAt),
    finishedAt: iso(job.finishedAt),
    expiresAt: job.expiresAt.toISOString(),
  };
}

/** Jobs are seen by the key that asked for them and by admins, as links are. */
function visible(job: ExportJob | null, actor: Actor): job is ExportJob {
  return job !== null && (actor.role === 'admin' || job.ownerKeyId === actor.keyId);
}

const attachment = (name: string): string => `attachment; filename="${name}"`;

export function exportRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { links, analytics, config } = deps;

  app.get<{ Params: { code: string }; Querystring: ExportQuery }>('/links/:code/stats/export', {
    schema: { params: CodeParamsSchema, querystring: ExportQuerySchema },
    // A HEAD would run the export, or queue a job: not something a HEAD may do.
    exposeHeadRoute: false,
    config: {
      doc: {
        operationId: 'exportLinkClicks',
        summary: 'The raw clicks of a link as CSV: at once for a small range, else as a job (202)',
        description:
          `A range whose clicks may exceed EXPORT_SYNC_MAX_ROWS (${config.exports.syncMaxRows} on this server; estimated from the daily counts ` +
          'of the whole days the range touches) is not answered at once: a job is queued (202, `Location` names it), a worker ' +
          'writes the file, and `GET /api/v1/exports/{id}` tells when `fileHref` can be fetched. Files are kept EXPORT_TTL_HOURS ' +
          `(${config.exports.ttlHours} on this server). A key may have ${MAX_UNFINISHED_EXPORTS_PER_KEY} jobs waiting or running; more are refused with 429.`,
        tag: 'links',
        auth: true,
        responses: {
          200: { description: 'The CSV file', schema: CsvSchema, contentType: 'text/csv', headers: ['Content-Disposition', 'Cache-Control'] },
          202: { description: 'Too many clicks to answer at once: the export job', schema: ExportJobSchema, headers: ['Location'] },
        },
      },
    },
  }, async (request, reply) => {
    const actor = requireActor(request);
    const { from, to } = resolveRange(request.query, Date.now());
    const link = await ownedLink(links, request.params.code, actor);
    void reply.header('Cache-Control', 'private, no-store');
    const plan = await analytics.service.planExport(link.id, from, to);
    if (plan.mode === 'queue') {
      if ((await analytics.exports.countUnfinished(actor.keyId)) >= MAX_UNFINISHED_EXPORTS_PER_KEY) {
        throw new AppError('rate_limited', {
          detail: `This key has ${MAX_UNFINISHED_EXPORTS_PER_KEY} exports waiting or running; ask again once one is done`,
          headers: { 'Retry-After': '10' },
        });
      }
      const job = await analytics.exports.create({ linkId: link.id, code: link.code, ownerKeyId: actor.keyId, from, to });
      return reply.code(202).header('Location', `/api/v1/exports/${job.id}`).send(jobJson(job));
    }
    // Streamed page by page: a failure before the first page is still a problem answer.
    return reply
      .type(CSV_TYPE)
      .header('Content-Disposition', attachment(csvFileName(link.code, from, to)))
      .send(Readable.from(plan.file, { objectMode: false }));
  });

  app.get<{ Params: { id: string } }>('/exports/:id', {
    schema: { params: ExportIdParamsSchema },
    config: {
      doc: {
        operationId: 'getExport',
        summary: 'An export job: its status, and its file once done',
        description: 'Visible to the key that asked for the export, and to admin keys.',
        tag: 'links',
        auth: true,
        responses: { 200: { description: 'The export job', schema: ExportJobSchema, headers: ['Cache-Control'] } },
      },
    },
  }, async (request, reply) => {
    const actor = requireActor(request);
    const job = await analytics.exports.find(request.params.id);
    if (!visible(job, actor)) throw new AppError('export_not_found', { detail: 'No export with that id (it may have expired)' });
    void reply.header('Cache-Control', 'private, no-store');
    return jobJson(job);
  });

  app.get<{ Params: { id: string } }>('/exports/:id/file', {
    schema: { params: ExportIdParamsSchema },
    exposeHeadRoute: false,
    config: {
      doc: {
        operationId: 'getExportFile',
        summary: 'The CSV file of a finished export job',
        description: 'Answers 409 `export_not_ready` (with Retry-After while the job is queued or running) until the job is done, and 404 once it has expired.',
        tag: 'links',
        auth: true,
        responses: {
          200: { description: 'The CSV file', schema: CsvSchema, contentType: 'text/csv', headers: ['Content-Disposition', 'Cache-Control'] },
          409: { description: 'The job is not done (queued, running or failed)', schema: ProblemSchema, contentType: PROBLEM_CONTENT_TYPE, headers: ['Retry-After'] },
        },
      },
    },
  }, async (request, reply) => {
    const actor = requireActor(request);
    const job = await analytics.exports.find(request.params.id);
    if (!visible(job, actor)) throw new AppError('export_not_found', { detail: 'No export with that id (it may have expired)' });
    if (job.status !== 'done') {
      const failed = job.status === 'failed';
      throw new AppError('export_not_ready', {
        detail: failed ? `The export failed: ${job.error ?? 'unknown error'}; ask for it again` : `The export is ${job.status}; try again shortly`,
        headers: failed ? {} : { 'Retry-After': '2' },
      });
    }
    const file = analytics.exports.file(job.id);
    return reply
      .type(CSV_TYPE)
      .header('Content-Disposition', attachment(csvFileName(job.code, job.from, job.to)))
      .header('Content-Length', String(job.bytes ?? 0))
      .header('Cache-Control', 'private, no-store')
      .send(Readable.from(file, { objectMode: false }));
  });
}
