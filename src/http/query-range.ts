/**
 * The time range of a stats or export request, from its `from` and `to` (already checked
 * to be RFC 3339 date-times by the schema), with the defaults: `to` now, `from` a week
 * before `to`. Anything the store could not take is a 422 naming the field.
 */
import { AppError, type FieldError } from '../shared/errors.js';
import { DEFAULT_RANGE_DAYS } from './analytics-schemas.js';

const DAY_MS = 86_400_000;
// A day inside the years 1 to 9999 on either side, so that rounding out to whole days stays
// a time PostgreSQL reads back (the same bounds as the stats query's).
const MIN_TIME = Date.parse('0001-01-02T00:00:00.000Z');
const MAX_TIME = Date.parse('9999-12-30T00:00:00.000Z');

export interface TimeRange {
  from: Date;
  to: Date;
}

export function validationFailed(errors: FieldError[]): AppError {
  return new AppError('validation_failed', { detail: errors.map((e) => `${e.field}: ${e.message}`).join('; '), errors });
}

export function resolveRange(query: { from?: string | undefined; to?: string | undefined }, now: number): TimeRange {
  const errors: FieldError[] = [];
  const parse = (field: 'from' | 'to', text: string | undefined, fallback: () => number): number => {
    // Date.parse refuses some RFC 3339 times the format allows (a leap second, 23:59:60).
    const ms = text === undefined ? fallback() : Date.parse(text);
    // A default made from a bad `to` is not a second mistake of the caller's.
    if (Number.isNaN(ms)) {
      if (text !== undefined) errors.push({ field, message: 'is not a time this server can read' });
    } else if (ms < MIN_TIME || ms > MAX_TIME) errors.push({ field, message: 'must be between 0001-01-02 and 9999-12-30' });
    return ms;
  };
  const to = parse('to', query.to, () => now);
  const from = parse('from', query.from, () => to - DEFAULT_RANGE_DAYS * DAY_MS);
  if (errors.length === 0 && from >= to) errors.push({ field: 'from', message: `must be before to (${new Date(to).toISOString()})` });
  if (errors.length > 0) throw validationFailed(errors);
  return { from: new Date(from), to: new Date(to) };
}
