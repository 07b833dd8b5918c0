/**
 * Calls to /api/v1 with the session cookie (never the API key, which the page does not
 * keep). State-changing calls carry the session's CSRF token. GETs revalidate with the
 * server through the browser's HTTP cache (the API answers `private, no-cache` with an
 * ETag), so a repeat visit costs a 304.
 */
export interface FieldError {
  field: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly errors: FieldError[] = [],
  ) {
    super(detail);
  }
}

export interface SessionInfo {
  keyId: string;
  role: 'admin' | 'member';
  expiresAt: string;
  csrfToken: string;
}

let csrfToken: string | null = null;

export function setSession(session: SessionInfo | null): void {
  csrfToken = session?.csrfToken ?? null;
}

async function toError(response: Response): Promise<ApiError> {
  try {
    const problem = (await response.json()) as { code?: string; detail?: string; title?: string; errors?: FieldError[] };
    return new ApiError(response.status, problem.code ?? 'error', problem.detail ?? problem.title ?? response.statusText, problem.errors ?? []);
  } catch {
    return new ApiError(response.status, 'error', `The server answered ${response.status}`);
  }
}

export interface CallOptions {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/** The raw response, for callers that need its headers (ETag, Location) or status (202). */
export async function request(path: string, options: CallOptions = {}): Promise<Response> {
  const method = options.method ?? 'GET';
  const headers: Record<string, string> = { Accept: 'application/json', ...options.headers };
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrfToken !== null) headers['X-CSRF-Token'] = csrfToken;
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: 'same-origin',
    body: options.body === undefined ? null : JSON.stringify(options.body),
  });
  if (!response.ok) throw await toError(response);
  return response;
}

export async function call<T>(path: string, options: CallOptions = {}): Promise<T> {
  const response = await request(path, options);
  return (response.status === 204 ? undefined : await response.json()) as T;
}

export function query(params: Record<string, string | number | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== null && value !== undefined && value !== '') search.set(name, String(value));
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
}

export interface Link {
  code: string;
  shortUrl: string;
  url: string;
  alias: string | null;
  title: string | null;
  tags: string[];
  expiresAt: string | null;
  maxVisits: number | null;
  visits: number;
  redirectType: 301 | 302 | 307 | 308;
  forwardQuery: boolean;
  fallbackUrl: string | null;
  disabled: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface LinkPage {
  items: Link[];
  nextCursor: string | null;
}

export interface Ranked {
  value: string | null;
  clicks: number;
}

export interface Stats {
  range: { from: string; to: string; interval: 'minute' | 'hour' | 'day' };
  totals: { clicks: number; uniques: number };
  series: { t: string; clicks: number }[];
  referrers: Ranked[];
  countries: Ranked[];
  browsers: Ranked[];
  os: Ranked[];
  devices: Ranked[];
}
