/**
 * Rows in PostgreSQL's COPY text format: fields separated by tabs, rows ended by newlines,
 * \N for null. A backslash, tab, newline or carriage return inside a value is escaped, so
 * that no value (a user agent, a referrer: chosen by whoever clicks) can end its field or
 * row early, or read as null or as the end-of-data marker.
 */
export type CopyValue = string | number | boolean | null;

const SPECIAL = /[\\\t\n\r]/;
const SPECIALS = /[\\\t\n\r]/g;
const ESCAPES: Readonly<Record<string, string>> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

export function copyField(value: CopyValue): string {
  if (value === null) return '\\N';
  if (typeof value === 'boolean') return value ? 't' : 'f';
  const text = String(value);
  return SPECIAL.test(text) ? text.replace(SPECIALS, (special) => ESCAPES[special] ?? special) : text;
}

/** One row, its newline included. */
export function copyRow(values: readonly CopyValue[]): string {
  let row = '';
  for (let i = 0; i < values.length; i += 1) row += (i === 0 ? '' : '\t') + copyField(values[i] ?? null);
  return `${row}\n`;
}
