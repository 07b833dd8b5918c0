/** /api/v1/links: create, bulk create, list, get, change, delete. */
import type { FastifyInstance } from 'fastify';
import { AppError } from '../../shared/errors.js';
import { isCode } from '../../links/code-shape.js';
import type { AppDeps } from '../app-deps.js';
import { requireActor } from '../gateway.js';
import type { Link } from '../../links/link.js';
import { sendRevalidated } from '../etag.js';
import { respondIdempotentlyInTransaction, type ProducedResponse } from '../idempotency.js';
import { problemBody, toAppError } from '../problem.js';
import {
  BulkCreateSchema, BulkResultSchema, CodeParamsSchema, LinkCreateSchema, LinkPageSchema, LinkPatchSchema, LinkSchema,
  ListLinksQuerySchema, type LinkCreateBody, type LinkPatchBody, type ListLinksQuery,
} from '../schemas.js';
import { bodyValidator } from '../validation.js';
import { etagFor, ifNoneMatchHits, toLinkJson, versionFromIfMatch } from './link-json.js';

const IDEMPOTENCY_HEADER = {
  name: 'Idempotency-Key',
  description:
    'Retries with the same key and body get the first answer again (24 h). A create commits its link (a bulk: all its items) with ' +
    'its answer, or nothing: a retry after a failure creates each link once. A request that never answered (its server died) frees its key after ' +
    'IDEMPOTENCY_CLAIM_LEASE_SECONDS; until then a retry gets 409 `idempotency_in_progress`.',
};

// A single create draws its code before its transaction (see LinkService.reserveCodes); a
// collision with a custom alias is rare, so two spares rather than a bulk's eight.
const SINGLE_CREATE_SPARE_CODES = 2;

function problemItem(problem: AppError): { status: number; problem: unknown } {
  return { status: problem.status, problem: problemBody(problem) };
}

function assertCode(code: string): void {
  // Anything that cannot be a code (control characters, NUL, over-long) is simply not found.
  if (!isCode(code)) throw new AppError('link_not_found', { detail: 'No link with that code' });
}

export function linkRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { links, config, idempotency } = deps;
  const validateItem = bodyValidator(LinkCreateSchema);

  app.post<{ Body: LinkCreateBody }>('/links', {
    schema: { body: LinkCreateSchema },
    config: {
      doc: {
        operationId: 'createLink', summary: 'Create a short link', tag: 'links', auth: true,
        requestHeaders: [IDEMPOTENCY_HEADER],
        responses: { 201: { description: 'Created', schema: LinkSchema, headers: ['Location', 'ETag'] } },
      },
    },
  }, async (request, reply) => {
    const actor = requireActor(request);
    const answer = (link: Link): ProducedResponse & { headers: Record<string, string> } => ({
      status: 201,
      body: toLinkJson(link, config.baseUrl),
      headers: { Location: `/api/v1/links/${link.code}`, ETag: etagFor(link) },
    });
    if (request.headers['idempotency-key'] === undefined) {
      const produced = answer(await links.create(request.body, actor));
      return reply.code(produced.status).headers(produced.headers).send(produced.body);
    }
    // The link and its stored answer commit together: a process that dies in between leaves
    // neither, so the retry (once the claim's lease runs out) creates the link once.
    const codes = request.body.alias === undefined ? await links.reserveCodes(1, SINGLE_CREATE_SPARE_CODES) : [];
    let created: Link | null = null;
    return respondIdempotentlyInTransaction(idempotency, actor, request, reply, {
      produce: async (tx) => {
        // A copy, as in the bulk below: a transaction that lost a deadlock runs this again.
        created = await links.createWithin(tx, request.body, actor, [...codes]);
        return answer(created);
      },
      afterCommit: () => links.announceCreated(created === null ? [] : [created]),
    });
  });

  app.post<{ Body: { links: unknown[] } }>('/links/bulk', {
    schema: { body: BulkCreateSchema },
    config: {
      doc: {
        operationId: 'createLinks', summary: 'Create up to 1000 links; one result per item, in input order', tag: 'links', auth: true,
        requestHeaders: [IDEMPOTENCY_HEADER],
        responses: { 200: { description: 'One result per item: 201 with the link, or a 4xx problem', schema: BulkResultSchema } },
      },
    },
  }, async (request, reply) => {
    const actor = requireActor(request);
    const codes = await links.reserveCodes(request.body.links.filter((item) => (item as { alias?: unknown }).alias === undefined).length);
    const created: Link[] = [];
    // All the items and the stored answer commit together: a retry after a failure part-way
    // (nothing committed) creates them again once, a retry after success replays them.
    return respondIdempotentlyInTransaction(idempotency, actor, request, reply, {
      produce: async (tx) => {
        // Every item is checked here first; the valid ones then go in together (few statements,
        // however many items), and each result lands at its item's place.
        const items: unknown[] = [];
        const valid: { index: number; input: LinkCreateBody }[] = [];
        for (const [index, item] of request.body.links.entries()) {
          const invalid = validateItem(item);
          if (invalid === null) valid.push({ index, input: item as LinkCreateBody });
          else items[index] = problemItem(toAppError(Object.assign(new Error('validation failed'), { validation: invalid, validationContext: `links[${index}]` })));
        }
        // A copy: createManyWithin takes codes off it, and a transaction that lost a deadlock
        // (two bulks taking the same aliases in opposite orders) runs this again.
        const outcomes = await links.createManyWithin(tx, valid.map((item) => item.input), actor, [...codes]);
        created.length = 0;
        for (const [position, outcome] of outcomes.entries()) {
          const index = valid[position]?.index ?? position;
          if (outcome instanceof AppError) items[index] = problemItem(outcome);
          else {
            created.push(outcome);
            items[index] = { status: 201, link: toLinkJson(outcome, config.baseUrl) };
          }
        }
        return { status: 200, body: { items } };
      },
      afterCommit: () => links.announceCreated(created),
    });
  });

  app.get<{ Querystring: ListLinksQuery }>('/links', {
    schema: { querystring: ListLinksQuerySchema },
    config: {
      doc: {
        operationId: 'listLinks', summary: 'List links, newest first unless `sort=oldest` (a member sees its own)', tag: 'links', auth: true,
        requestHeaders: [{ name: 'If-None-Match', description: 'Answer 304 when the ETag still matches' }],
        responses: {
          200: { description: 'A page of links', schema: LinkPageSchema, headers: ['ETag', 'Cache-Control'] },
          304: { description: 'Not modified' },
        },
      },
    },
  }, async (request, reply) => {
    const actor = requireActor(request);
    const { query } = request;
    const page = await links.list(
      { limit: query.limit ?? 20, cursor: query.cursor ?? null, q: query.q ?? null, tag: query.tag ?? null, sort: query.sort ?? 'newest' },
      actor,
    );
    return sendRevalidated(request, reply, { items: page.items.map((link) => toLinkJson(link, config.baseUrl)), nextCursor: page.nextCursor });
  });

  app.get<{ Params: { code: string } }>('/links/:code', {
    schema: { params: CodeParamsSchema },
    config: {
      doc: {
        operationId: 'getLink', summary: 'Get one link', tag: 'links', auth: true,
        requestHeaders: [{ name: 'If-None-Match', description: 'Answer 304 when the ETag still matches' }],
        responses: { 200: { description: 'The link', schema: LinkSchema, headers: ['ETag'] }, 304: { description: 'Not modified' } },
      },
    },
  }, async (request, reply) => {
    assertCode(request.params.code);
    const link = await links.get(request.params.code, requireActor(request));
    const etag = etagFor(link);
    void reply.header('ETag', etag);
    const ifNoneMatch = request.headers['if-none-match'];
    if (ifNoneMatch !== undefined && ifNoneMatchHits(ifNoneMatch, link)) {
      return reply.code(304).send();
    }
    return toLinkJson(link, config.baseUrl);
  });

  app.patch<{ Params: { code: string }; Body: LinkPatchBody }>('/links/:code', {
    schema: { params: CodeParamsSchema, body: LinkPatchSchema },
    config: {
      doc: {
        operationId: 'updateLink', summary: 'Change a link; takes effect at once', tag: 'links', auth: true,
        requestHeaders: [{ name: 'If-Match', description: 'Only change the link if its ETag still matches (else 412)' }],
        responses: { 200: { description: 'The changed link', schema: LinkSchema, headers: ['ETag'] } },
      },
    },
  }, async (request, reply) => {
    assertCode(request.params.code);
    const actor = requireActor(request);
    let expectedVersion: number | null = null;
    const ifMatch = request.headers['if-match'];
    if (ifMatch !== undefined) {
      const current = await links.get(request.params.code, actor);
      const version = versionFromIfMatch(ifMatch, current);
      if (version === false) throw new AppError('precondition_failed', { detail: `If-Match does not match the link's ETag ${etagFor(current)}` });
      expectedVersion = version;
    }
    const link = await links.update(request.params.code, request.body, actor, expectedVersion);
    void reply.header('ETag', etagFor(link));
    return toLinkJson(link, config.baseUrl);
  });

  app.delete<{ Params: { code: string } }>('/links/:code', {
    schema: { params: CodeParamsSchema },
    config: {
      doc: { operationId: 'deleteLink', summary: 'Delete a link; its short URL stops at once', tag: 'links', auth: true, responses: { 204: { description: 'Deleted' } } },
    },
  }, async (request, reply) => {
    assertCode(request.params.code);
    await links.delete(request.params.code, requireActor(request));
    return reply.code(204).send();
  });
}
