/**
 * Whether open event streams are still allowed: a stream is authorized once, when it
 * opens, and its key may be revoked, its link deleted or given to another owner while it
 * is open. Every instance re-checks its own streams against the store every couple of
 * seconds (one query for all of them), so a stream ends within a few seconds of the change
 * whichever instance made it, with or without Redis.
 */
import type { Queryable } from '../storage/database.js';

/** What a stream was opened with: the key (links.owner_key_id space) and the link (links.id). */
export interface StreamGrant {
  keyId: string;
  linkId: string;
}

/** Answers which open streams must end; the event streams ask it every few seconds. */
export interface StreamGrantCheck {
  revokedGrants(grants: readonly StreamGrant[]): Promise<Set<string>>;
}

export const grantKey = (grant: StreamGrant): string => `${grant.keyId} ${grant.linkId}`;

/**
 * The grants that no longer hold (as `grantKey`s): the key is revoked or gone, the link is
 * gone (a later link with the same code is another link), or a member key no longer owns it.
 */
export async function revokedGrants(db: Queryable, grants: readonly StreamGrant[]): Promise<Set<string>> {
  if (grants.length === 0) return new Set();
  const result = await db.query<{ key_id: string; link_id: string }>(
    `SELECT g.key_id, g.link_id::text AS link_id
     FROM unnest($1::text[], $2::bigint[]) AS g(key_id, link_id)
       LEFT JOIN api_keys AS k ON k.id = g.key_id AND k.revoked_at IS NULL
       LEFT JOIN links AS l ON l.id = g.link_id
     WHERE k.id IS NULL OR l.id IS NULL OR (k.role <> 'admin' AND l.owner_key_id IS DISTINCT FROM k.id)`,
    [grants.map((grant) => grant.keyId), grants.map((grant) => grant.linkId)],
  );
  return new Set(result.rows.map((row) => grantKey({ keyId: row.key_id, linkId: row.link_id })));
}
