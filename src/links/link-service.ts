/** The rules of links: who may see and change which, and what a valid link is. */
import { AppError, type ErrorCode, type FieldError } from '../shared/errors.js';
import { isUniqueViolation, type Queryable } from '../storage/database.js';
import type { LinkCache } from '../cache/link-cache.js';
import { checkDestination, type DestinationPolicy } from './destination-policy.js';
import type { Actor, Link, LinkChanges, NewLink, RedirectType } from './link.js';
import type { InsertedLink, LinkRepository } from './link-repository.js';
import { aliasProblem, normaliseTags, titleProblem } from './link-rules.js';
import { hashPassword, MAX_PASSWORD_LENGTH, verifyPassword } from './password-hash.js';

export interface LinkInput {
  url: string;
  alias?: string | undefined;
  title?: string | null | undefined;
  tags?: string[] | undefined;
  expiresAt?: string | null | undefined;
  maxVisits?: number | null | undefined;
  redirectType?: RedirectType | undefined;
  forwardQuery?: boolean | undefined;
  fallbackUrl?: string | null | undefined;
  disabled?: boolean | undefined;
  /** Set a password (stored as a slow hash); null removes it. */
  password?: string | null | undefined;
}

export type LinkPatch = Partial<Omit<LinkInput, 'alias'>>;

export interface ListLinksQuery {
  limit: number;
  cursor: string | null;
  q: string | null;
  tag: string | null;
  /** Default newest. */
  sort?: 'newest' | 'oldest';
}

export interface LinkPage {
  items: Link[];
  nextCursor: string | null;
}

/** Where new codes come from; see ADR 0001. */
export interface CodeSource {
  next(): Promise<string>;
}

// Generated codes can only collide with a custom alias of the same length; a few
// attempts cover that without turning creation into a retry loop.
const MAX_GENERATED_CODE_ATTEMPTS = 8;

export class LinkService {
  constructor(
    private readonly links: LinkRepository,
    private readonly codes: CodeSource,
    private readonly cache: LinkCache,
    private readonly policy: DestinationPolicy,
    private readonly now: () => Date = () => new Date(),
    /**
     * Called after each committed change of `codes` (a bulk's at once); returns where the
     * primary's WAL stood after it (null without replicas), which travels with the invalidation.
     */
    private readonly afterWrite: (codes: readonly string[]) => Promise<string | null> = () => Promise.resolve(null),
  ) {}

  async create(input: LinkInput, actor: Actor): Promise<Link> {
    return this.created(await this.insertNew(input, actor, (link) => this.links.insert(link), () => this.codes.next()));
  }

  /**
   * Codes for up to `count` generated links created in one transaction (a bulk, or a create
   * with an Idempotency-Key), drawn before it: drawing one may need the store, which the
   * embedded store's one connection cannot give while the transaction holds it. `spares` more
   * cover collisions with custom aliases.
   */
  async reserveCodes(count: number, spares = MAX_GENERATED_CODE_ATTEMPTS): Promise<string[]> {
    const codes: string[] = [];
    for (let i = 0; i < count + spares; i += 1) codes.push(await this.codes.next());
    return codes;
  }

  /**
   * Creates a link inside `tx` (which commits it together with its stored answer, and a bulk's
   * links at once) with a code from `codes` (`reserveCodes`). Nothing else sees it until the
   * transaction commits: call `announceCreated` then.
   */
  createWithin(tx: Queryable, input: LinkInput, actor: Actor, codes: string[]): Promise<Link> {
    return this.insertNew(input, actor, (link) => this.links.insertWithin(tx, link), () => {
      const code = codes.shift();
      if (code === undefined) return Promise.reject(new AppError('internal_error', { detail: 'no reserved code left for this create' }));
      return Promise.resolve(code);
    });
  }

  /**
   * Creates the links of a bulk inside `tx` in as few statements as the codes allow (one,
   * unless a generated code meets a custom alias), with codes from `codes` (`reserveCodes`).
   * One outcome per input, in order: the link, or why it was not created (invalid, alias
   * taken; a later item asking for an alias an earlier one has gets alias_taken, as it would
   * have one at a time). Call `announceCreated` once `tx` commits.
   */
  async createManyWithin(tx: Queryable, inputs: readonly LinkInput[], actor: Actor, codes: string[]): Promise<(Link | AppError)[]> {
    const outcomes: (Link | AppError)[] = [];
    const pending: { index: number; link: NewLink }[] = [];
    const aliases = new Set<string>();
    for (const [index, input] of inputs.entries()) {
      let link: NewLink;
      try {
        link = this.validateNew(input, actor);
      } catch (error) {
        if (!(error instanceof AppError)) throw error;
        outcomes[index] = error;
        continue;
      }
      if (input.password !== undefined) link.passwordHash = (await passwordHashFor(input.password)) ?? null;
      if (input.alias === undefined) pending.push({ index, link });
      else if (aliases.has(input.alias)) outcomes[index] = aliasTaken(input.alias);
      else {
        aliases.add(input.alias);
        pending.push({ index, link });
      }
    }
    // Outcomes are matched to rows by code, so no generated code may equal an alias of the same request.
    const nextCode = (): string => {
      for (let code = codes.shift(); code !== undefined; code = codes.shift()) if (!aliases.has(code)) return code;
      throw new AppError('internal_error', { detail: 'no reserved code left for this bulk' });
    };
    for (const item of pending) if (!item.link.customAlias) item.link.code = nextCode();
    let batch = pending;
    for (let attempt = 1; batch.length > 0; attempt += 1) {
      const inserted = await this.links.insertManyByCode(batch.map((item) => item.link), tx);
      const again: typeof batch = [];
      for (const item of batch) {
        const row = inserted.get(item.link.code);
        if (row !== undefined) outcomes[item.index] = insertedLink(item.link, row);
        else if (item.link.customAlias) outcomes[item.index] = aliasTaken(item.link.code);
        else if (attempt >= MAX_GENERATED_CODE_ATTEMPTS) throw new AppError('internal_error', { detail: 'generated codes kept colliding' });
        else {
          item.link.code = nextCode();
          again.push(item);
        }
      }
      batch = again;
    }
    return outcomes;
  }

  /** After `createWithin`'s or `createManyWithin`'s transaction committed: the caches learn of its links. */
  async announceCreated(links: readonly Link[]): Promise<void> {
    if (links.length === 0) return;
    // One WAL position for them all: they committed together.
    const lsn = await this.afterWrite(links.map((link) => link.code));
    for (const link of links) this.cache.invalidate(link.code, lsn);
  }

  private async insertNew(input: LinkInput, actor: Actor, insert: (link: NewLink) => Promise<Link>, nextCode: () => Promise<string>): Promise<Link> {
    const link = { ...this.validateNew(input, actor), passwordHash: (await passwordHashFor(input.password)) ?? null };
    if (input.alias !== undefined) {
      try {
        return await insert({ ...link, code: input.alias, customAlias: true });
      } catch (error) {
        if (isUniqueViolation(error)) throw aliasTaken(input.alias);
        throw error;
      }
    }
    for (let attempt = 1; ; attempt += 1) {
      const code = await nextCode();
      try {
        return await insert({ ...link, code, customAlias: false });
      } catch (error) {
        if (!isUniqueViolation(error) || attempt >= MAX_GENERATED_CODE_ATTEMPTS) throw error;
      }
    }
  }

  async get(code: string, actor: Actor): Promise<Link> {
    const link = await this.links.findByCode(code);
    if (link === null || !canSee(actor, link)) throw linkNotFound(code);
    return link;
  }

  async list(query: ListLinksQuery, actor: Actor): Promise<LinkPage> {
    const cursorId = query.cursor === null ? null : decodeCursor(query.cursor);
    const oldestFirst = query.sort === 'oldest';
    const items = await this.links.list({
      ownerKeyId: actor.role === 'admin' ? null : actor.keyId,
      limit: query.limit + 1,
      beforeId: oldestFirst ? null : cursorId,
      afterId: oldestFirst ? cursorId : null,
      oldestFirst,
      search: query.q,
      tag: query.tag,
    });
    const page = items.slice(0, query.limit);
    const last = page[page.length - 1];
    return { items: page, nextCursor: items.length > query.limit && last !== undefined ? encodeCursor(last.id) : null };
  }

  /** `expectedVersion`: from If-Match; null changes the link whatever its version. */
  async update(code: string, patch: LinkPatch, actor: Actor, expectedVersion: number | null): Promise<Link> {
    const changes = this.validateChanges(patch);
    const passwordHash = await passwordHashFor(patch.password);
    if (passwordHash !== undefined) changes.passwordHash = passwordHash;
    // Checked and written in one statement: ownership is never decided on a read that
    // another link of the same code could have replaced by the time of the write.
    const updated = await this.links.update(code, changes, expectedVersion, ownerFilter(actor));
    if (updated === null) {
      // Only to word the refusal; nothing is written on the strength of this read.
      const current = await this.links.findByCode(code);
      if (current === null || !canSee(actor, current) || expectedVersion === null) throw linkNotFound(code);
      throw new AppError('precondition_failed', {
        detail: `The link has changed since version ${expectedVersion}; fetch it again`,
      });
    }
    this.cache.invalidate(code, await this.afterWrite([code]));
    return updated;
  }

  /** The link's analytics stay with its id, out of reach of any later link of the code, until purged. */
  async delete(code: string, actor: Actor): Promise<void> {
    if ((await this.links.delete(code, ownerFilter(actor))) === null) throw linkNotFound(code);
    this.cache.invalidate(code, await this.afterWrite([code]));
  }

  /** A cached answer with no I/O (undefined on a miss): the redirect path's fast lane. */
  peek(code: string): Link | null | undefined {
    return this.cache.peek(code);
  }

  /** The redirect path's lookup: cached, and never an exception for an unknown code. */
  resolve(code: string): Promise<Link | null> {
    return this.cache.get(code);
  }

  /**
   * Counts one visit of a visit-limited link; false when its limit was already reached.
   * Once the limit is reached, cached copies are dropped everywhere, so previews, QR codes
   * and redirects answer 410 from the cache instead of each paying a write.
   */
  async consumeVisit(link: Link): Promise<boolean> {
    const { allowed, usedUp } = await this.links.consumeVisit(link.id);
    if (usedUp) this.cache.invalidate(link.code, await this.afterWrite([link.code]));
    return allowed;
  }

  /** Checks a password against the link's stored hash (read from the store, never cached). */
  async passwordMatches(link: Link, password: string): Promise<boolean> {
    if (!link.passwordProtected || password.length === 0 || password.length > MAX_PASSWORD_LENGTH) return false;
    const stored = await this.links.passwordHash(link.id);
    return stored !== null && verifyPassword(password, stored);
  }

  private async created(link: Link): Promise<Link> {
    // Clears a negative entry left by someone who tried the code before it existed.
    this.cache.invalidate(link.code, await this.afterWrite([link.code]));
    return link;
  }

  /** The link `input` asks for, with no password hash yet (hashing is slow: only once it is valid). */
  private validateNew(input: LinkInput, actor: Actor): NewLink {
    const problems = new ProblemList();
    if (input.alias !== undefined) {
      const problem = aliasProblem(input.alias);
      if (problem !== null) problems.add(problem.code, 'alias', problem.message);
    }
    const changes = this.checkFields({ ...input }, problems);
    problems.throwIfAny();
    return {
      code: input.alias ?? '',
      customAlias: input.alias !== undefined,
      passwordHash: null,
      url: changes.url ?? input.url,
      title: changes.title ?? null,
      tags: changes.tags ?? [],
      ownerKeyId: actor.keyId,
      expiresAt: changes.expiresAt ?? null,
      maxVisits: changes.maxVisits ?? null,
      redirectType: changes.redirectType ?? 302,
      forwardQuery: changes.forwardQuery ?? true,
      fallbackUrl: changes.fallbackUrl ?? null,
      disabled: changes.disabled ?? false,
    };
  }

  private validateChanges(patch: LinkPatch): LinkChanges {
    const problems = new ProblemList();
    const changes = this.checkFields(patch, problems);
    problems.throwIfAny();
    return changes;
  }

  private checkFields(input: LinkPatch, problems: ProblemList): LinkChanges {
    const changes: LinkChanges = {};
    if (input.url !== undefined) {
      const verdict = checkDestination(input.url, this.policy);
      if (verdict.ok) changes.url = verdict.url;
      else problems.add(verdict.code, 'url', verdict.reason);
    }
    if (input.fallbackUrl !== undefined) {
      if (input.fallbackUrl === null) changes.fallbackUrl = null;
      else {
        const verdict = checkDestination(input.fallbackUrl, this.policy);
        if (verdict.ok) changes.fallbackUrl = verdict.url;
        else problems.add(verdict.code, 'fallbackUrl', verdict.reason);
      }
    }
    if (input.title !== undefined) {
      const problem = input.title === null ? null : titleProblem(input.title);
      if (problem === null) changes.title = input.title;
      else problems.add('validation_failed', 'title', problem);
    }
    if (input.tags !== undefined) {
      const { tags, errors } = normaliseTags(input.tags);
      for (const error of errors) problems.add('validation_failed', error.field, error.message);
      changes.tags = tags;
    }
    if (input.expiresAt !== undefined) {
      if (input.expiresAt === null) changes.expiresAt = null;
      else {
        const expiresAt = new Date(input.expiresAt);
        if (Number.isNaN(expiresAt.getTime())) problems.add('validation_failed', 'expiresAt', 'must be an RFC 3339 date-time');
        else if (expiresAt.getTime() <= this.now().getTime()) problems.add('validation_failed', 'expiresAt', 'must be in the future');
        else changes.expiresAt = expiresAt;
      }
    }
    if (input.maxVisits !== undefined) changes.maxVisits = input.maxVisits;
    if (input.redirectType !== undefined) changes.redirectType = input.redirectType;
    if (input.forwardQuery !== undefined) changes.forwardQuery = input.forwardQuery;
    if (input.disabled !== undefined) changes.disabled = input.disabled;
    if (typeof input.password === 'string' && (input.password.length === 0 || input.password.length > MAX_PASSWORD_LENGTH)) {
      problems.add('validation_failed', 'password', `must be 1-${MAX_PASSWORD_LENGTH} characters`);
    }
    return changes;
  }
}

/** Collects field errors; one kind of error keeps its own code, a mix becomes validation_failed. */
class ProblemList {
  private readonly errors: FieldError[] = [];
  private readonly codes = new Set<ErrorCode>();

  add(code: ErrorCode, field: string, message: string): void {
    this.codes.add(code);
    this.errors.push({ field, message });
  }

  throwIfAny(): void {
    if (this.errors.length === 0) return;
    const code = this.codes.size === 1 ? [...this.codes][0] ?? 'validation_failed' : 'validation_failed';
    throw new AppError(code, {
      detail: this.errors.map((error) => `${error.field}: ${error.message}`).join('; '),
      errors: this.errors,
    });
  }
}

/** undefined: the password is not being changed; null: removed. Call after validation. */
async function passwordHashFor(password: string | null | undefined): Promise<string | null | undefined> {
  if (password === undefined || password === null) return password;
  return hashPassword(password);
}

function canSee(actor: Actor, link: Link): boolean {
  return actor.role === 'admin' || link.ownerKeyId === actor.keyId;
}

/** The owner a write must match: an admin may change any link. */
function ownerFilter(actor: Actor): string | null {
  return actor.role === 'admin' ? null : actor.keyId;
}

/** A link as `createManyWithin` inserted it: what was sent, and what the store assigned. */
function insertedLink(link: NewLink, row: InsertedLink): Link {
  return {
    id: row.id,
    code: link.code,
    customAlias: link.customAlias,
    url: link.url,
    title: link.title,
    tags: link.tags,
    ownerKeyId: link.ownerKeyId,
    expiresAt: link.expiresAt,
    maxVisits: link.maxVisits,
    visits: 0,
    redirectType: link.redirectType,
    forwardQuery: link.forwardQuery,
    fallbackUrl: link.fallbackUrl,
    disabled: link.disabled,
    passwordProtected: link.passwordHash !== null,
    version: 1,
    createdAt: row.createdAt,
    updatedAt: row.createdAt,
  };
}

function aliasTaken(alias: string): AppError {
  return new AppError('alias_taken', {
    detail: `The alias "${alias}" is already in use`,
    errors: [{ field: 'alias', message: 'already in use' }],
  });
}

function linkNotFound(code: string): AppError {
  return new AppError('link_not_found', { detail: `No link with code "${code}"` });
}

function encodeCursor(id: string): string {
  return Buffer.from(`id:${id}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string {
  const decoded = Buffer.from(cursor, 'base64url').toString('utf8');
  const match = /^id:(\d{1,19})$/.exec(decoded);
  if (match?.[1] === undefined) {
    throw new AppError('validation_failed', { detail: 'cursor is not valid', errors: [{ field: 'cursor', message: 'not a cursor from this API' }] });
  }
  return match[1];
}
