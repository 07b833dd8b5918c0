/**
 * The one catalogue of errors Shunt reports. Services throw `AppError` with a code from
 * here; the HTTP layer alone turns it into problem+json. Codes are part of the public
 * contract: never rename one, add a new one instead.
 */
export const ERROR_CATALOGUE = {
  malformed_request: { status: 400, title: 'Malformed request' },
  invalid_json: { status: 400, title: 'Body is not valid JSON' },
  unauthorized: { status: 401, title: 'Missing or invalid API key' },
  forbidden: { status: 403, title: 'Not allowed' },
  csrf_failed: { status: 403, title: 'Cross-site request refused' },
  not_found: { status: 404, title: 'Not found' },
  link_not_found: { status: 404, title: 'Link not found' },
  key_not_found: { status: 404, title: 'API key not found' },
  export_not_found: { status: 404, title: 'Export not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  not_acceptable: { status: 406, title: 'Not acceptable' },
  alias_taken: { status: 409, title: 'Alias already taken' },
  last_admin_key: { status: 409, title: 'The last admin key cannot be revoked' },
  idempotency_in_progress: { status: 409, title: 'A request with this Idempotency-Key is still in progress' },
  export_not_ready: { status: 409, title: 'The export file is not ready' },
  link_gone: { status: 410, title: 'Link is no longer available' },
  precondition_failed: { status: 412, title: 'Precondition failed' },
  precondition_required: { status: 428, title: 'Precondition required' },
  payload_too_large: { status: 413, title: 'Request body too large' },
  uri_too_long: { status: 414, title: 'Request URI too long' },
  unsupported_media_type: { status: 415, title: 'Unsupported content type' },
  validation_failed: { status: 422, title: 'Request is not acceptable' },
  invalid_url: { status: 422, title: 'Destination URL is invalid' },
  url_not_allowed: { status: 422, title: 'Destination URL is not allowed' },
  alias_invalid: { status: 422, title: 'Alias is invalid' },
  alias_reserved: { status: 422, title: 'Alias is reserved' },
  idempotency_key_reused: { status: 422, title: 'Idempotency-Key was used with a different request' },
  rate_limited: { status: 429, title: 'Too many requests' },
  too_many_streams_for_key: { status: 429, title: 'This key has too many open event streams' },
  internal_error: { status: 500, title: 'Internal error' },
  dependency_unavailable: { status: 503, title: 'A dependency is unavailable' },
  shutting_down: { status: 503, title: 'Shutting down' },
  too_many_streams: { status: 503, title: 'Too many open event streams on this instance' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** One bad field of a request, as listed in a validation problem. */
export interface FieldError {
  field: string;
  message: string;
}

export interface AppErrorOptions {
  detail?: string;
  errors?: readonly FieldError[];
  headers?: Readonly<Record<string, string>>;
  cause?: unknown;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  readonly errors: readonly FieldError[] | undefined;
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: ErrorCode, options: AppErrorOptions = {}) {
    const entry = ERROR_CATALOGUE[code];
    super(options.detail ?? entry.title, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = entry.status;
    this.title = entry.title;
    this.detail = options.detail ?? entry.title;
    this.errors = options.errors;
    this.headers = options.headers ?? {};
  }
}

export function isAppError(error: unknown): error is AppError {
  return error instanceof AppError;
}
