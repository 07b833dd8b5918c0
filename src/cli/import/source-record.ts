/** What every source format is read into, before any of Shunt's rules are applied. */

/** The families of sources; a row's fingerprint (ADR 0015) is namespaced by its family. */
export type SourceFamily = 'shunt' | 'bitly' | 'shlink' | 'yourls' | 'kutt';

export interface SourceRecord {
  kind: 'record';
  /** Where the row starts in the file (1-based line), for the reject file. */
  line: number;
  family: SourceFamily;
  /** The link's identity in the source system (`bit.ly/3xYz`, a Kutt id), if it has one. */
  sourceId: string | null;
  /** The short code the link had there: kept as the alias when Shunt's rules allow it. */
  code: string | null;
  url: string;
  title: string | null;
  tags: string[];
  /** Dates and counts as the source wrote them; validated in one place (link-candidate.ts). */
  createdAt: string | null;
  expiresAt: string | null;
  clicks: string | null;
}

/** A row the reader could not make sense of at all (a broken CSV record, an unreadable SQL tuple). */
export interface SourceProblem {
  kind: 'problem';
  line: number;
  reason: string;
  raw: string;
}

export type SourceItem = SourceRecord | SourceProblem;

/** Empty cells are absent values. */
export function text(value: string | undefined | null): string | null {
  if (value === undefined || value === null) return null;
  const trimmed = value.trim();
  return trimmed === '' ? null : trimmed;
}

/** The last path segment of a short link (`https://bit.ly/3xYz` → `3xYz`), or the text itself. */
export function codeOfShortLink(link: string | null): string | null {
  if (link === null) return null;
  const path = link.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').replace(/[?#].*$/, '').replace(/\/+$/, '');
  const slash = path.lastIndexOf('/');
  return text(slash < 0 ? path : path.slice(slash + 1));
}

export function splitTags(cell: string | null, separator: string | RegExp): string[] {
  if (cell === null) return [];
  return cell.split(separator).map((tag) => tag.trim()).filter((tag) => tag !== '');
}
