/**
 * JSON sources.
 * - Shunt's own export: JSON Lines, one link a line ({url, alias, title, tags, expiresAt,
 *   createdAt, clicks}); streamed a line at a time.
 * - Kutt's API v2 link list (`GET /api/v2/links`): `{limit, skip, total, data: [link]}`
 *   where a link has `id`, `address` (its code), `target`, `description`, `visit_count`,
 *   `created_at`, `expire_in`; pages saved one after another, or as a JSON array of pages
 *   or of links, are read too. Kutt answers at most a few dozen links a page, so each page
 *   is read whole.
 */
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { text, type SourceItem } from './source-record.js';

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

function stringOf(value: unknown): string | null {
  if (typeof value === 'string') return text(value);
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return null;
}

export async function* shuntJsonLines(input: Readable): AsyncGenerator<SourceItem> {
  let line = 0;
  for await (const raw of createInterface({ input, crlfDelay: Infinity })) {
    line += 1;
    if (raw.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      yield { kind: 'problem', line, reason: 'not a JSON object', raw };
      continue;
    }
    const url = isObject(value) ? stringOf(value.url) : null;
    if (!isObject(value) || url === null) {
      yield { kind: 'problem', line, reason: 'a link needs a "url"', raw };
      continue;
    }
    const tags = Array.isArray(value.tags) ? value.tags.filter((tag): tag is string => typeof tag === 'string') : [];
    yield {
      kind: 'record', line, family: 'shunt', sourceId: null, code: stringOf(value.alias), url,
      title: stringOf(value.title), tags,
      createdAt: stringOf(value.createdAt), expiresAt: stringOf(value.expiresAt), clicks: stringOf(value.clicks),
    };
  }
}

async function readAll(input: Readable): Promise<string> {
  input.setEncoding('utf8');
  let all = '';
  for await (const chunk of input as AsyncIterable<string>) all += chunk;
  return all;
}

/** The values of a text holding one JSON value or several one after another (saved pages). */
function jsonValues(all: string): unknown[] | string {
  const values: unknown[] = [];
  let depth = 0;
  let inString = false;
  let escaped = false;
  let start = -1;
  for (let i = 0; i < all.length; i += 1) {
    const char = all[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (char === '\\') escaped = true;
      else if (char === '"') inString = false;
      continue;
    }
    if (char === '"') inString = true;
    else if (char === '{' || char === '[') {
      if (depth === 0) start = i;
      depth += 1;
    } else if (char === '}' || char === ']') {
      depth -= 1;
      if (depth < 0) return 'the file is not JSON';
      if (depth === 0) {
        try {
          values.push(JSON.parse(all.slice(start, i + 1)));
        } catch {
          return 'the file is not JSON';
        }
      }
    } else if (depth === 0 && !/\s/.test(char ?? '')) return 'the file is not JSON';
  }
  return depth === 0 ? values : 'the file is not JSON (it ends inside a value)';
}

export async function* kuttLinks(input: Readable): AsyncGenerator<SourceItem> {
  const values = jsonValues(await readAll(input));
  if (typeof values === 'string') {
    yield { kind: 'problem', line: 1, reason: values, raw: '' };
    return;
  }
  const links: unknown[] = [];
  const collect = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(collect);
    else if (isObject(value) && Array.isArray(value.data)) value.data.forEach(collect);
    else links.push(value);
  };
  values.forEach(collect);
  let index = 0;
  for (const link of links) {
    index += 1;
    const url = isObject(link) ? stringOf(link.target) : null;
    if (!isObject(link) || url === null) {
      yield { kind: 'problem', line: index, reason: 'a Kutt link needs a "target"', raw: JSON.stringify(link).slice(0, 200) };
      continue;
    }
    const address = stringOf(link.address);
    const domain = stringOf(link.domain);
    yield {
      // Kutt links have no line of their own: `line` counts links in the file.
      kind: 'record', line: index, family: 'kutt',
      sourceId: stringOf(link.id) ?? (address === null ? null : `${domain ?? ''}/${address}`),
      code: address, url,
      title: stringOf(link.description),
      tags: [],
      createdAt: stringOf(link.created_at),
      expiresAt: stringOf(link.expire_in),
      clicks: stringOf(link.visit_count),
    };
  }
}
