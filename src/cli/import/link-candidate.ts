/** A source record checked against Shunt's rules: a link ready to insert, or why it cannot be one. */
import { createHash } from 'node:crypto';
import { checkDestination, type DestinationPolicy } from '../../links/destination-policy.js';
import { aliasProblem, MAX_TITLE_LENGTH, normaliseTags } from '../../links/link-rules.js';
import type { SourceFamily, SourceRecord } from './source-record.js';

export interface LinkCandidate {
  line: number;
  /** The row's fingerprint (ADR 0015): the same source row gives the same key on every run. */
  key: string;
  family: SourceFamily;
  originalCode: string | null;
  /** The original code when Shunt's alias rules allow it. */
  alias: string | null;
  /** Why the original code was not kept, when there was one. */
  aliasRefused: string | null;
  url: string;
  title: string | null;
  tags: string[];
  createdAt: Date | null;
  expiresAt: Date | null;
  clicks: number;
}

const NAIVE_DATE_TIME = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)$/;

/**
 * ISO 8601 / RFC 3339 dates, `YYYY-MM-DD HH:MM:SS` without a zone (YOURLS, MySQL: read as
 * UTC), a bare date, and Unix timestamps in seconds or milliseconds.
 */
export function parseSourceDate(value: string): Date | null {
  let date: Date;
  if (/^\d{9,11}$/.test(value)) date = new Date(Number(value) * 1000);
  else if (/^\d{12,14}$/.test(value)) date = new Date(Number(value));
  else {
    const naive = NAIVE_DATE_TIME.exec(value);
    // "+0000" (Bitly) is ISO 8601's basic offset; Date wants "+00:00".
    const normalised = naive === null ? value.replace(/([+-]\d{2})(\d{2})$/, '$1:$2') : `${naive[1]}T${naive[2]}Z`;
    date = new Date(normalised);
  }
  return Number.isNaN(date.getTime()) ? null : date;
}

function fingerprint(record: SourceRecord): string {
  // A row with an identity in its source system is that identity: the same link exported
  // again (with more visits, a new title) is still the same link. A row without one is its
  // content.
  const identity =
    record.sourceId !== null || record.code !== null
      ? [record.family, 'id', record.sourceId ?? record.code]
      : [record.family, 'row', record.url, record.title, record.tags, record.createdAt, record.expiresAt];
  return createHash('sha256').update(JSON.stringify(identity)).digest('base64url').slice(0, 32);
}

/** Titles from elsewhere can be longer than Shunt keeps, or carry control characters: kept, made fit. */
function fitTitle(title: string | null): string | null {
  if (title === null) return null;
  const clean = title.replace(/\p{Cc}+/gu, ' ').trim().slice(0, MAX_TITLE_LENGTH);
  return clean === '' ? null : clean;
}

export function toCandidate(record: SourceRecord, policy: DestinationPolicy): LinkCandidate | string {
  const destination = checkDestination(record.url, policy);
  if (!destination.ok) return `${destination.code}: ${destination.reason}`;
  const { tags, errors } = normaliseTags(record.tags);
  if (errors.length > 0) return `tags: ${errors.map((error) => `${error.field} ${error.message}`).join('; ')}`;
  const createdAt = record.createdAt === null ? null : parseSourceDate(record.createdAt);
  if (record.createdAt !== null && createdAt === null) return `creation date "${record.createdAt}" is not a date`;
  const expiresAt = record.expiresAt === null ? null : parseSourceDate(record.expiresAt);
  if (record.expiresAt !== null && expiresAt === null) return `expiry "${record.expiresAt}" is not a date`;
  let clicks = 0;
  if (record.clicks !== null) {
    const digits = record.clicks.replace(/[,_\s]/g, '');
    if (!/^\d{1,15}$/.test(digits)) return `visit count "${record.clicks}" is not a whole number`;
    clicks = Number(digits);
  }
  const refused = record.code === null ? null : aliasProblem(record.code);
  return {
    line: record.line,
    key: fingerprint(record),
    family: record.family,
    originalCode: record.code,
    alias: refused === null ? record.code : null,
    aliasRefused: refused?.message ?? null,
    url: destination.url,
    title: fitTitle(record.title),
    tags,
    createdAt,
    expiresAt,
    clicks,
  };
}
