/**
 * The one rule for what can be a short code: 1-64 characters of A-Z, a-z, 0-9, `_` and `-`.
 * Generated codes and aliases both fit it; anything else (control characters, NUL, `%`, an
 * over-long segment) is refused before any lookup, wherever a code arrives: a path, a click
 * event, a message between instances.
 */
export const CODE_MAX_LENGTH = 64;
/** For JSON schemas (the OpenAPI document shows it); code should call isCode(). */
export const CODE_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** True for a character code of A-Z, a-z, 0-9, `_` or `-`. */
function isCodeChar(char: number): boolean {
  return (char >= 97 && char <= 122) || (char >= 65 && char <= 90) || (char >= 48 && char <= 57) || char === 95 || char === 45;
}

/** Length of the run of code characters in `text` from `start`, stopping past the maximum. */
function codeRun(text: string, start: number): number {
  let end = start;
  const limit = Math.min(text.length, start + CODE_MAX_LENGTH + 1);
  while (end < limit && isCodeChar(text.charCodeAt(end))) end += 1;
  return end - start;
}

export function isCode(text: string): boolean {
  const length = text.length;
  return length > 0 && length <= CODE_MAX_LENGTH && codeRun(text, 0) === length;
}

/**
 * The code named by a request target of the form `/{code}{suffix}` or `/{code}{suffix}?query`,
 * or null for any other target. A character scan: the hot paths call it on every request.
 */
function codeBefore(url: string, suffix: string): string | null {
  if (url.charCodeAt(0) !== 47 /* / */) return null;
  const run = codeRun(url, 1);
  if (run === 0 || run > CODE_MAX_LENGTH) return null;
  const codeEnd = 1 + run;
  const end = codeEnd + suffix.length;
  if (suffix !== '' && !url.startsWith(suffix, codeEnd)) return null;
  if (end !== url.length && url.charCodeAt(end) !== 63 /* ? */) return null;
  return url.slice(1, codeEnd);
}

/** The code of a short link's own target, `/{code}` or `/{code}?query`. */
export function codeInPath(url: string): string | null {
  return codeBefore(url, '');
}

/** The code of a QR code's target, `/{code}/qr` or `/{code}/qr?query`. */
export function codeInQrPath(url: string): string | null {
  return codeBefore(url, '/qr');
}
