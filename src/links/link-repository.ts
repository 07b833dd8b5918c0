/** Links in SQL. The same statements run on PGlite and PostgreSQL. */
import type { Database, Queryable } from '../storage/database.js';
import type { Link, LinkChanges, NewLink, RedirectType } from './link.js';

interface LinkRow {
  id: string;
  code: string;
  custom_alias: boolean;
  url: string;
  title: string | null;
  tags: string[];
  owner_key_id: string | null;
  expires_at: Date | null;
  max_visits: number | null;
  visits: string;
  redirect_type: number;
  forward_query: boolean;
  fallback_url: string | null;
  disabled: boolean;
  version: number;
  created_at: Date;
  updated_at: Date;
  [column: string]: unknown;
}

const COLUMNS = `id::text AS id, code, custom_alias, url, title, tags, owner_key_id, expires_at, max_visits,
  visits::text AS visits, redirect_type, forward_query, fallback_url, disabled, version, created_at, updated_at`;

function toLink(row: LinkRow): Link {
  return {
    id: row.id,
    code: row.code,
    customAlias: row.custom_alias,
    url: row.url,
    title: row.title,
    tags: row.tags,
    ownerKeyId: row.owner_key_id,
    expiresAt: row.expires_at,
    maxVisits: row.max_visits,
    visits: Number(row.visits),
    redirectType: row.redirect_type as RedirectType,
    forwardQuery: row.forward_query,
    fallbackUrl: row.fallback_url,
    disabled: row.disabled,
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export interface LinkListQuery {
  ownerKeyId: string | null;
  limit: number;
  /** Only links with an id below this one (the cursor of the previous page). */
  beforeId: string | null;
  search: string | null;
  tag: string | null;
}

/** Column names for each changeable field; the only place a name reaches SQL text. */
const CHANGE_COLUMNS: Record<keyof LinkChanges, string> = {
  url: 'url',
  title: 'title',
  tags: 'tags',
  expiresAt: 'expires_at',
  maxVisits: 'max_visits',
  redirectType: 'redirect_type',
  forwardQuery: 'forward_query',
  fallbackUrl: 'fallback_url',
  disabled: 'disabled',
};

export class LinkRepository {
  constructor(private readonly db: Database) {}

  async insert(link: NewLink, tx: Queryable = this.db): Promise<Link> {
    const result = await tx.query<LinkRow>(
      `INSERT INTO links (code, custom_alias, url, title, tags, owner_key_id, expires_at, max_visits,
         redirect_type, forward_query, fallback_url, disabled)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
       RETURNING ${COLUMNS}`,
      [
        link.code, link.customAlias, link.url, link.title, link.tags, link.ownerKeyId, link.expiresAt,
        link.maxVisits, link.redirectType, link.forwardQuery, link.fallbackUrl, link.disabled,
      ],
    );
    return toLink(result.rows[0] as LinkRow);
  }

  /** `from`: where to read; a read replica on the redirect path. */
  async findByCode(code: string, from: Queryable = this.db): Promise<Link | null> {
    const result = await from.query<LinkRow>(`SELECT ${COLUMNS} FROM links WHERE code = $1`, [code]);
    const row = result.rows[0];
    return row === undefined ? null : toLink(row);
  }

  async list(query: LinkListQuery): Promise<Link[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const param = (value: unknown): string => {
      params.push(value);
      return `$${params.length}`;
    };
    if (query.ownerKeyId !== null) where.push(`owner_key_id = ${param(query.ownerKeyId)}`);
    if (query.beforeId !== null) where.push(`id < ${param(query.beforeId)}::bigint`);
    if (query.tag !== null) where.push(`tags @> ARRAY[${param(query.tag)}]::text[]`);
    if (query.search !== null) {
      const pattern = param(`%${escapeLike(query.search)}%`);
      where.push(`(url ILIKE ${pattern} OR code ILIKE ${pattern} OR title ILIKE ${pattern})`);
    }
    const result = await this.db.query<LinkRow>(
      `SELECT ${COLUMNS} FROM links ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY links.id DESC LIMIT ${param(query.limit)}`,
      params,
    );
    return result.rows.map(toLink);
  }

  /**
   * Applies `changes` when the link still has `expectedVersion` (or any version when it
   * is null). Returns null when no row matched: the caller tells "gone" from "changed".
   */
  async update(code: string, changes: LinkChanges, expectedVersion: number | null): Promise<Link | null> {
    const params: unknown[] = [code];
    const sets = ['version = version + 1', 'updated_at = now()'];
    for (const [field, column] of Object.entries(CHANGE_COLUMNS) as [keyof LinkChanges, string][]) {
      if (changes[field] === undefined) continue;
      params.push(changes[field]);
      sets.push(`${column} = $${params.length}`);
    }
    let condition = 'code = $1';
    if (expectedVersion !== null) {
      params.push(expectedVersion);
      condition += ` AND version = $${params.length}`;
    }
    const result = await this.db.query<LinkRow>(
      `UPDATE links SET ${sets.join(', ')} WHERE ${condition} RETURNING ${COLUMNS}`,
      params,
    );
    const row = result.rows[0];
    return row === undefined ? null : toLink(row);
  }

  async delete(code: string): Promise<boolean> {
    const result = await this.db.query('DELETE FROM links WHERE code = $1', [code]);
    return (result.rowCount ?? 0) > 0;
  }

  /**
   * Counts one redirect against the link's limit, atomically: concurrent redirects can
   * never overshoot `max_visits`. False when the limit is already reached.
   */
  async consumeVisit(id: string): Promise<boolean> {
    const result = await this.db.query(
      'UPDATE links SET visits = visits + 1 WHERE id = $1 AND (max_visits IS NULL OR visits < max_visits)',
      [id],
    );
    return (result.rowCount ?? 0) > 0;
  }
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (char) => `\\${char}`);
}
