/** Links in SQL. The same statements run on PGlite and PostgreSQL. */
import type { Database, Queryable } from '../storage/database.js';
import type { Link, LinkChanges, NewLink, RedirectType } from './link.js';

/** A link to insert in bulk: `createdAt` keeps the creation date a link had elsewhere. */
/** Imported links: never password-protected (no source exports a usable password). */
export interface BulkLink extends Omit<NewLink, 'passwordHash'> {
  createdAt?: Date | null | undefined;
}

/** Where an inserted link landed; links whose code was taken are simply absent. */
export interface InsertedLink {
  id: string;
  code: string;
  createdAt: Date;
}

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
  password_protected: boolean;
  version: number;
  created_at: Date;
  updated_at: Date;
  [column: string]: unknown;
}

const COLUMNS = `id::text AS id, code, custom_alias, url, title, tags, owner_key_id, expires_at, max_visits,
  visits::text AS visits, redirect_type, forward_query, fallback_url, disabled, password_hash IS NOT NULL AS password_protected,
  version, created_at, updated_at`;

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
    passwordProtected: row.password_protected,
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
  /** Oldest first, from the link after `afterId` (the cursor of the previous page) on. */
  oldestFirst?: boolean;
  afterId?: string | null;
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
  passwordHash: 'password_hash',
};

export class LinkRepository {
  constructor(private readonly db: Database) {}

  async insert(link: NewLink, tx: Queryable = this.db): Promise<Link> {
    const result = await tx.query<LinkRow>(
      `INSERT INTO links (code, custom_alias, url, title, tags, owner_key_id, expires_at, max_visits,
         redirect_type, forward_query, fallback_url, disabled, password_hash)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
       RETURNING ${COLUMNS}`,
      [
        link.code, link.customAlias, link.url, link.title, link.tags, link.ownerKeyId, link.expiresAt,
        link.maxVisits, link.redirectType, link.forwardQuery, link.fallbackUrl, link.disabled, link.passwordHash,
      ],
    );
    return toLink(result.rows[0] as LinkRow);
  }

  /**
   * Inserts many links in one statement, in the given order. A link whose code is already
   * taken is skipped, not an error: the caller sees which codes went in and decides what to
   * do with the others (another code, a rejection).
   */
  async insertMany(links: readonly (BulkLink & { passwordHash?: string | null })[], tx: Queryable = this.db): Promise<InsertedLink[]> {
    if (links.length === 0) return [];
    // One JSON parameter instead of thirteen per row: no limit on rows per statement, and
    // ragged arrays (tags) travel as they are.
    const rows = links.map((link, ord) => ({
      ord,
      code: link.code,
      custom_alias: link.customAlias,
      url: link.url,
      title: link.title,
      tags: link.tags,
      owner_key_id: link.ownerKeyId,
      expires_at: link.expiresAt?.toISOString() ?? null,
      max_visits: link.maxVisits,
      redirect_type: link.redirectType,
      forward_query: link.forwardQuery,
      fallback_url: link.fallbackUrl,
      disabled: link.disabled,
      password_hash: link.passwordHash ?? null,
      created_at: link.createdAt?.toISOString() ?? null,
    }));
    const result = await tx.query<{ id: string; code: string; created_at: Date }>(
      `INSERT INTO links (code, custom_alias, url, title, tags, owner_key_id, expires_at, max_visits,
         redirect_type, forward_query, fallback_url, disabled, password_hash, created_at)
       SELECT r.code, r.custom_alias, r.url, r.title, ARRAY(SELECT json_array_elements_text(r.tags)), r.owner_key_id,
         r.expires_at, r.max_visits, r.redirect_type, r.forward_query, r.fallback_url, r.disabled, r.password_hash,
         coalesce(r.created_at, now())
       FROM json_to_recordset($1::json) AS r(ord integer, code text, custom_alias boolean, url text, title text, tags json,
         owner_key_id text, expires_at timestamptz, max_visits integer, redirect_type smallint, forward_query boolean,
         fallback_url text, disabled boolean, password_hash text, created_at timestamptz)
       ORDER BY r.ord
       ON CONFLICT (code) DO NOTHING
       RETURNING id::text AS id, code, created_at`,
      [JSON.stringify(rows)],
    );
    return result.rows.map((row) => ({ id: row.id, code: row.code, createdAt: row.created_at }));
  }

  /** `insertMany` by code (codes must be distinct): links made here, which may carry a password hash. */
  async insertManyByCode(links: readonly NewLink[], tx: Queryable = this.db): Promise<Map<string, InsertedLink>> {
    return new Map((await this.insertMany(links, tx)).map((row) => [row.code, row]));
  }

  /** The codes among `codes` that links already have. */
  async existingCodes(codes: readonly string[], from: Queryable = this.db): Promise<Set<string>> {
    if (codes.length === 0) return new Set();
    const result = await from.query<{ code: string }>('SELECT code FROM links WHERE code = ANY($1::text[])', [codes]);
    return new Set(result.rows.map((row) => row.code));
  }

  /**
   * `insert` inside a transaction that goes on if this one fails (a bulk create): a failed
   * insert (alias taken) rolls back to a savepoint, not the whole transaction.
   */
  async insertWithin(tx: Queryable, link: NewLink): Promise<Link> {
    await tx.query('SAVEPOINT link_insert');
    try {
      const inserted = await this.insert(link, tx);
      await tx.query('RELEASE SAVEPOINT link_insert');
      return inserted;
    } catch (error) {
      await tx.query('ROLLBACK TO SAVEPOINT link_insert');
      throw error;
    }
  }

  /** `from`: where to read; a read replica on the redirect path. */
  async findByCode(code: string, from: Queryable = this.db): Promise<Link | null> {
    const result = await from.query<LinkRow>(`SELECT ${COLUMNS} FROM links WHERE code = $1`, [code]);
    const row = result.rows[0];
    return row === undefined ? null : toLink(row);
  }

  /** The links that have one of `codes`, in no particular order; unknown codes are absent. */
  async findByCodes(codes: readonly string[], from: Queryable = this.db): Promise<Link[]> {
    const result = await from.query<LinkRow>(`SELECT ${COLUMNS} FROM links WHERE code = ANY($1::text[])`, [codes]);
    return result.rows.map(toLink);
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
    if (query.afterId !== undefined && query.afterId !== null) where.push(`id > ${param(query.afterId)}::bigint`);
    if (query.tag !== null) where.push(`tags @> ARRAY[${param(query.tag)}]::text[]`);
    if (query.search !== null) {
      const pattern = param(`%${escapeLike(query.search)}%`);
      where.push(`(url ILIKE ${pattern} OR code ILIKE ${pattern} OR title ILIKE ${pattern})`);
    }
    const result = await this.db.query<LinkRow>(
      `SELECT ${COLUMNS} FROM links ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY links.id ${query.oldestFirst === true ? 'ASC' : 'DESC'} LIMIT ${param(query.limit)}`,
      params,
    );
    return result.rows.map(toLink);
  }

  /**
   * Applies `changes` to the link that has `code`, if it belongs to `ownerKeyId` (any owner
   * when null: an admin) and still has `expectedVersion` (any version when null). One
   * statement: no other link can take the code between a check and the write. Returns null
   * when no row matched: the caller tells "not yours or gone" from "changed".
   */
  async update(code: string, changes: LinkChanges, expectedVersion: number | null, ownerKeyId: string | null): Promise<Link | null> {
    const params: unknown[] = [code, ownerKeyId];
    const sets = ['version = version + 1', 'updated_at = now()'];
    for (const [field, column] of Object.entries(CHANGE_COLUMNS) as [keyof LinkChanges, string][]) {
      if (changes[field] === undefined) continue;
      params.push(changes[field]);
      sets.push(`${column} = $${params.length}`);
    }
    let condition = 'code = $1 AND ($2::text IS NULL OR owner_key_id = $2::text)';
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

  /**
   * Deletes the link that has `code` if it belongs to `ownerKeyId` (any owner when null), and
   * records it for the purge of its analytics, in one statement. Returns the deleted link's
   * id, or null when there was no such link.
   */
  async delete(code: string, ownerKeyId: string | null): Promise<string | null> {
    const result = await this.db.query<{ link_id: string }>(
      `WITH gone AS (
         DELETE FROM links WHERE code = $1 AND ($2::text IS NULL OR owner_key_id = $2::text) RETURNING id, code
       )
       INSERT INTO deleted_links (link_id, code) SELECT id, code FROM gone RETURNING link_id::text AS link_id`,
      [code, ownerKeyId],
    );
    return result.rows[0]?.link_id ?? null;
  }

  /** The stored password hash of a link (null for an open one): read only to check a password. */
  async passwordHash(id: string): Promise<string | null> {
    const result = await this.db.query<{ password_hash: string | null }>('SELECT password_hash FROM links WHERE id = $1', [id]);
    return result.rows[0]?.password_hash ?? null;
  }

  /**
   * Counts one redirect against the link's limit, atomically: concurrent redirects can
   * never overshoot `max_visits`. `allowed` is false when the limit was already reached;
   * `usedUp` says the limit is reached now (by this visit or before).
   */
  async consumeVisit(id: string): Promise<{ allowed: boolean; usedUp: boolean }> {
    const result = await this.db.query<{ used_up: boolean }>(
      `UPDATE links SET visits = visits + 1 WHERE id = $1 AND (max_visits IS NULL OR visits < max_visits)
       RETURNING max_visits IS NOT NULL AND visits >= max_visits AS used_up`,
      [id],
    );
    const row = result.rows[0];
    return row === undefined ? { allowed: false, usedUp: true } : { allowed: true, usedUp: row.used_up };
  }
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (char) => `\\${char}`);
}
