/**
 * Streams source rows into links, a batch at a time: each batch is checked, fingerprinted,
 * given codes, and inserted with one multi-row statement plus one for its `link_imports`
 * rows, in one transaction. While a batch is in the database the next one is being read.
 */
import type { CodeSource } from '../../links/link-service.js';
import type { BulkLink, LinkRepository } from '../../links/link-repository.js';
import type { LinkImportRepository } from '../../links/link-import-repository.js';
import type { DestinationPolicy } from '../../links/destination-policy.js';
import type { Database, Queryable } from '../../storage/database.js';
import { toCandidate, type LinkCandidate } from './link-candidate.js';
import type { SourceItem } from './source-record.js';

export interface ImportReport {
  /** A row that became no link, with why. */
  reject(entry: { line: number; reason: string; url: string | null; originalCode: string | null; raw?: string }): Promise<void>;
  /** A row whose original code could not be kept, and the code it got instead. */
  rename(entry: { line: number; originalCode: string; code: string | null; reason: string }): Promise<void>;
}

export interface ImportCounts {
  /** Rows read from the source. */
  read: number;
  /** Links created (or, in a dry run, that would be). */
  created: number;
  /** Of those, links that kept their original code. */
  keptCodes: number;
  /** Of those, links whose original code could not be kept. */
  renamed: number;
  /** Rows an earlier run (or an identical earlier row) already imported. */
  skipped: number;
  rejected: number;
}

export interface ImporterDeps {
  db: Database;
  links: LinkRepository;
  imports: LinkImportRepository;
  codes: CodeSource;
  policy: DestinationPolicy;
  report: ImportReport;
  ownerKeyId: string | null;
  dryRun: boolean;
  batchSize: number;
  onBatch?: (counts: Readonly<ImportCounts>) => void;
}

// Codes can only collide with aliases of the same length; as in LinkService, a few tries do.
const MAX_CODE_ATTEMPTS = 8;

interface Entry {
  candidate: LinkCandidate;
  /** null in a dry run for a code that would be generated. */
  code: string | null;
  customAlias: boolean;
  renameReason: string | null;
}

export async function importLinks(items: AsyncIterable<SourceItem>, deps: ImporterDeps): Promise<ImportCounts> {
  const counts: ImportCounts = { read: 0, created: 0, keptCodes: 0, renamed: 0, skipped: 0, rejected: 0 };
  let batch: LinkCandidate[] = [];
  let inFlight: Promise<void> = Promise.resolve();
  let failure: { error: unknown } | null = null;
  const flushAsync = (candidates: LinkCandidate[]): void => {
    inFlight = inFlight
      .then(() => flush(candidates, deps, counts))
      .then(() => deps.onBatch?.(counts))
      .catch((error: unknown) => {
        failure ??= { error };
      });
  };
  for await (const item of items) {
    if (failure !== null) break;
    counts.read += 1;
    if (item.kind === 'problem') {
      counts.rejected += 1;
      await deps.report.reject({ line: item.line, reason: item.reason, url: null, originalCode: null, raw: item.raw });
      continue;
    }
    const candidate = toCandidate(item, deps.policy);
    if (typeof candidate === 'string') {
      counts.rejected += 1;
      await deps.report.reject({ line: item.line, reason: candidate, url: item.url, originalCode: item.code });
      continue;
    }
    batch.push(candidate);
    if (batch.length >= deps.batchSize) {
      // One batch in the database at a time, while the next is read.
      await inFlight;
      flushAsync(batch);
      batch = [];
    }
  }
  if (batch.length > 0) flushAsync(batch);
  await inFlight;
  if (failure !== null) throw (failure as { error: unknown }).error;
  return counts;
}

async function flush(batch: LinkCandidate[], deps: ImporterDeps, counts: ImportCounts): Promise<void> {
  const unique = new Map<string, LinkCandidate>();
  for (const candidate of batch) {
    if (unique.has(candidate.key)) counts.skipped += 1;
    else unique.set(candidate.key, candidate);
  }
  const done = await deps.imports.existingKeys([...unique.keys()]);
  counts.skipped += done.size;
  let entries: Entry[] = [];
  for (const candidate of unique.values()) {
    if (done.has(candidate.key)) continue;
    const code = candidate.alias ?? (deps.dryRun ? null : await deps.codes.next());
    entries.push({ candidate, code, customAlias: candidate.alias !== null, renameReason: candidate.aliasRefused });
  }
  for (let attempt = 1; entries.length > 0 && attempt <= MAX_CODE_ATTEMPTS; attempt += 1) {
    const { created, taken } = deps.dryRun ? await checkCodes(entries, deps) : await insert(entries, deps, counts);
    for (const entry of created) await settled(entry, deps, counts);
    for (const entry of taken) {
      if (entry.customAlias) entry.renameReason = `alias "${entry.code ?? ''}" is already in use`;
      entry.customAlias = false;
      entry.code = deps.dryRun ? null : await deps.codes.next();
    }
    entries = taken;
  }
  for (const entry of entries) {
    counts.rejected += 1;
    await deps.report.reject({
      line: entry.candidate.line,
      reason: `no free short code after ${MAX_CODE_ATTEMPTS} attempts`,
      url: entry.candidate.url,
      originalCode: entry.candidate.originalCode,
    });
  }
}

async function settled(entry: Entry, deps: ImporterDeps, counts: ImportCounts): Promise<void> {
  counts.created += 1;
  const { originalCode } = entry.candidate;
  if (originalCode === null) return;
  if (entry.customAlias) {
    counts.keptCodes += 1;
    return;
  }
  counts.renamed += 1;
  await deps.report.rename({
    line: entry.candidate.line,
    originalCode,
    code: entry.code,
    reason: entry.renameReason ?? 'the original code could not be kept',
  });
}

function toBulkLink(entry: Entry, ownerKeyId: string | null): BulkLink {
  const { candidate } = entry;
  return {
    code: entry.code ?? '',
    customAlias: entry.customAlias,
    url: candidate.url,
    title: candidate.title,
    tags: candidate.tags,
    ownerKeyId,
    expiresAt: candidate.expiresAt,
    maxVisits: null,
    redirectType: 302,
    forwardQuery: true,
    fallbackUrl: null,
    disabled: false,
    createdAt: candidate.createdAt,
  };
}

/** One transaction: rows another import committed meanwhile are skipped; taken codes come back. */
async function insert(entries: Entry[], deps: ImporterDeps, counts: ImportCounts): Promise<{ created: Entry[]; taken: Entry[] }> {
  return deps.db.transaction(async (tx: Queryable) => {
    await deps.imports.lock(tx);
    const already = await deps.imports.existingKeys(entries.map((entry) => entry.candidate.key), tx);
    counts.skipped += already.size;
    const fresh = entries.filter((entry) => !already.has(entry.candidate.key));
    const inserted = await deps.links.insertMany(fresh.map((entry) => toBulkLink(entry, deps.ownerKeyId)), tx);
    // Rows go in in order, so of two entries with one code the first one has it.
    const ids = new Map(inserted.map((row) => [row.code, row.id]));
    const created: (Entry & { id: string })[] = [];
    const taken: Entry[] = [];
    for (const entry of fresh) {
      const id = entry.code === null ? undefined : ids.get(entry.code);
      if (id === undefined) taken.push(entry);
      else {
        ids.delete(entry.code as string);
        created.push({ ...entry, id });
      }
    }
    await deps.imports.record(
      created.map((entry) => ({
        linkId: entry.id,
        sourceKey: entry.candidate.key,
        sourceFormat: entry.candidate.family,
        originalCode: entry.candidate.originalCode,
        importedClicks: entry.candidate.clicks,
      })),
      tx,
    );
    return { created, taken };
  });
}

/** A dry run inserts nothing: it only finds the aliases already in use. */
async function checkCodes(entries: Entry[], deps: ImporterDeps): Promise<{ created: Entry[]; taken: Entry[] }> {
  const codes = entries.flatMap((entry) => (entry.code === null ? [] : [entry.code]));
  const inUse = await deps.links.existingCodes(codes);
  const created: Entry[] = [];
  const taken: Entry[] = [];
  for (const entry of entries) {
    if (entry.code !== null && inUse.has(entry.code)) taken.push(entry);
    else {
      if (entry.code !== null) inUse.add(entry.code);
      created.push(entry);
    }
  }
  return { created, taken };
}
