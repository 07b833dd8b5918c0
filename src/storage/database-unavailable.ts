/**
 * Telling "the database is away" from "the database said no". The first is worth retrying
 * (a restart, a failover, a terminated connection, a full server), answers 503 with
 * Retry-After, and opens the database circuit; the second is the caller's error.
 */

export class DatabaseUnavailableError extends Error {
  /** Always true: the same work may simply run again once the database is back. */
  readonly retryable = true;

  constructor(
    readonly retryAfterSeconds: number,
    cause?: unknown,
  ) {
    super('The database is unavailable', cause === undefined ? undefined : { cause });
    this.name = 'DatabaseUnavailableError';
  }
}

export function isDatabaseUnavailable(error: unknown): error is DatabaseUnavailableError {
  return error instanceof DatabaseUnavailableError;
}

/**
 * SQLSTATEs of a server that is going, gone or not taking work: class 08 (connection
 * exception), 57P01-57P03 (terminated by an administrator, crash, still starting), 53300
 * (too many connections), 57014 (statement timeout: a stuck server), 25006 (a read-only
 * transaction: connected to a former primary that is now a standby).
 */
const UNAVAILABLE_STATE = /^(08[0-9A-Z]{3}|57P0[123]|53300|57014|25006)$/;

/** Node socket errors: refused, reset, unreachable, timed out. */
const UNAVAILABLE_ERRNO: ReadonlySet<string> = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
]);

/** What pg and pg-pool throw, as text only, when a connection ends or never comes. */
const UNAVAILABLE_MESSAGE = /Connection terminated|connection timeout|timeout exceeded when trying to connect|Query read timeout|not queryable|Client was closed/i;

export function isConnectionFailure(error: unknown): boolean {
  if (error instanceof DatabaseUnavailableError) return true;
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (UNAVAILABLE_STATE.test(code) || UNAVAILABLE_ERRNO.has(code))) return true;
  // Several addresses tried at once (localhost as ::1 and 127.0.0.1) fail as one AggregateError.
  if (error instanceof AggregateError) return error.errors.some(isConnectionFailure);
  return typeof message === 'string' && UNAVAILABLE_MESSAGE.test(message);
}
