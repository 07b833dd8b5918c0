/** Links as the shared cache stores them: JSON, with dates restored on the way back. */
import type { Link } from '../links/link.js';

/** A negative entry: the code was looked up and is unknown. */
const UNKNOWN = '-';

export function encodeCachedLink(link: Link | null): string {
  return link === null ? UNKNOWN : JSON.stringify(link);
}

export function decodeCachedLink(text: string): Link | null {
  if (text === UNKNOWN) return null;
  const raw = JSON.parse(text) as Omit<Link, 'expiresAt' | 'createdAt' | 'updatedAt'> & {
    expiresAt: string | null;
    createdAt: string;
    updatedAt: string;
  };
  return {
    ...raw,
    expiresAt: raw.expiresAt === null ? null : new Date(raw.expiresAt),
    createdAt: new Date(raw.createdAt),
    updatedAt: new Date(raw.updatedAt),
  };
}
