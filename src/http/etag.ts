/**
 * ETags for computed answers (link lists, stats): a hash of the JSON body, so a browser that
 * revalidates (Cache-Control: no-cache) gets a 304 with no body when nothing changed. The
 * query still runs; what is saved is the transfer and the client's re-rendering.
 */
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

export function bodyEtag(json: string): string {
  return `W/"${createHash('sha256').update(json).digest('base64url').slice(0, 27)}"`;
}

function matches(header: string, etag: string): boolean {
  const bare = etag.replace(/^W\//, '');
  return header.split(',').some((tag) => {
    const trimmed = tag.trim();
    return trimmed === '*' || trimmed.replace(/^W\//, '') === bare;
  });
}

/** Sends `body` as JSON with an ETag, or a 304 when the client's copy is current. */
export function sendRevalidated(request: FastifyRequest, reply: FastifyReply, body: unknown): FastifyReply {
  const json = JSON.stringify(body);
  const etag = bodyEtag(json);
  // Private to the caller; the browser may keep it but must ask again before using it.
  void reply.header('Cache-Control', 'private, no-cache');
  void reply.header('ETag', etag);
  void reply.header('Vary', 'Authorization, Cookie');
  const ifNoneMatch = request.headers['if-none-match'];
  if (ifNoneMatch !== undefined && matches(ifNoneMatch, etag)) return reply.code(304).send();
  return reply.type('application/json; charset=utf-8').send(json);
}
