/** The link aggregate: what a short code points to and how it redirects. */

export const REDIRECT_TYPES = [301, 302, 307, 308] as const;
export type RedirectType = (typeof REDIRECT_TYPES)[number];

/** What a caller may set when creating a link (already validated). */
export interface NewLink {
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

export interface Link extends NewLink {
  id: string;
  /** Redirects counted against `maxVisits`; only links with a limit count them here. */
  visits: number;
  /** Bumped on every change; the ETag of the link. */
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

export type LinkChanges = Partial<
  Pick<NewLink, 'url' | 'title' | 'tags' | 'expiresAt' | 'maxVisits' | 'redirectType' | 'forwardQuery' | 'fallbackUrl' | 'disabled'>
>;

/** Who is acting: the API key behind a request. */
export interface Actor {
  keyId: string;
  role: 'admin' | 'member';
}
