/** The link aggregate: what a short code points to and how it redirects. */

export const REDIRECT_TYPES = [301, 302, 307, 308] as const;
export type RedirectType = (typeof REDIRECT_TYPES)[number];

/** A link's own settings, as stored and as read. */
interface LinkFields {
  code: string;
  customAlias: boolean;
  url: string;
  title: string | null;
  tags: string[];
  ownerKeyId: string | null;
  expiresAt: Date | null;
  maxVisits: number | null;
  redirectType: RedirectType;
  forwardQuery: boolean;
  fallbackUrl: string | null;
  disabled: boolean;
}

/** What a caller may set when creating a link (already validated). */
export interface NewLink extends LinkFields {
  /** A slow hash (see password-hash.ts), never the password; null for an open link. */
  passwordHash: string | null;
}

/**
 * A link as read: the password hash itself stays in the store (only the password check
 * reads it), so caches, clicks and API answers can never carry it.
 */
export interface Link extends LinkFields {
  id: string;
  passwordProtected: boolean;
  /** Redirects counted against `maxVisits`; only links with a limit count them here. */
  visits: number;
  /** Bumped on every change; the ETag of the link. */
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

export type LinkChanges = Partial<
  Pick<NewLink, 'url' | 'title' | 'tags' | 'expiresAt' | 'maxVisits' | 'redirectType' | 'forwardQuery' | 'fallbackUrl' | 'disabled' | 'passwordHash'>
>;

/** Who is acting: the API key behind a request. */
export interface Actor {
  keyId: string;
  role: 'admin' | 'member';
}
