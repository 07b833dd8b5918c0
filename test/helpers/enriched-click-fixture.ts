import type { EnrichedClick } from '../../src/analytics/enriched-click.js';
import type { Queryable } from '../../src/storage/database.js';
import { uuidv7 } from '../../src/shared/uuid-v7.js';

/** A 16-byte visitor key in hex, as the enricher makes them, from a small number. */
export function visitor(n: number): string {
  return n.toString(16).padStart(32, '0');
}

const linkIds = new Map<string, string>();

/**
 * A stable link id (links.id) for a code in tests that store clicks without creating links:
 * each code gets its own id, the same every time it is asked for in the process.
 */
export function linkIdOf(code: string): string {
  let id = linkIds.get(code);
  if (id === undefined) {
    id = String(1000 + linkIds.size);
    linkIds.set(code, id);
  }
  return id;
}

/** A complete enriched click (a human on desktop Chrome, no referrer); override what a test is about. */
export function makeClick(overrides: Omit<Partial<EnrichedClick>, 'at'> & { at: Date | string }): EnrichedClick {
  const { at, ...rest } = overrides;
  const code = rest.code ?? 'stats';
  return {
    id: uuidv7(),
    linkId: linkIdOf(code),
    code,
    method: 'GET',
    referrerHost: null,
    country: null,
    browser: 'Chrome',
    os: 'Windows',
    device: 'desktop',
    bot: false,
    visitor: null,
    ip: null,
    userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0.0.0',
    referrer: null,
    ...rest,
    at: typeof at === 'string' ? new Date(at) : at,
  };
}

/** `count` clicks of one code, a millisecond apart from `start`, alternating a few values. */
export function clickRun(code: string, count: number, start = Date.parse('2025-03-10T10:00:00.000Z')): EnrichedClick[] {
  const countries = ['DE', 'US', null, 'FR'] as const;
  return Array.from({ length: count }, (_, i) =>
    makeClick({
      code,
      at: new Date(start + i),
      bot: i % 5 === 0,
      device: i % 5 === 0 ? 'bot' : 'desktop',
      country: countries[i % countries.length] ?? null,
      referrerHost: i % 3 === 0 ? null : `ref${i % 7}.example`,
      visitor: visitor(i % 50),
    }),
  );
}

/** The clicks given to the links that now have their codes, as the redirect path would give them. */
export async function ofLinks(db: Queryable, clicks: readonly EnrichedClick[]): Promise<EnrichedClick[]> {
  const codes = [...new Set(clicks.map((click) => click.code))];
  const found = await db.query<{ code: string; id: string }>('SELECT code, id::text AS id FROM links WHERE code = ANY($1::text[])', [codes]);
  const ids = new Map(found.rows.map((row) => [row.code, row.id]));
  return clicks.map((click) => {
    const linkId = ids.get(click.code);
    if (linkId === undefined) throw new Error(`no link has the code ${click.code}`);
    return { ...click, linkId };
  });
}
