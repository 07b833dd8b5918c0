/**
 * Raw clicks as CSV (RFC 4180: CRLF line ends, fields with a comma, quote or line break
 * quoted, quotes doubled). Referrers and user agents are whatever a visitor sent, and the
 * file is made to be opened in a spreadsheet, so a cell that a spreadsheet would read as
 * a formula (starting with = + - @, tab or CR) gets a leading apostrophe: it is shown as
 * text instead of being evaluated (OWASP, "CSV injection").
 */
import type { EnrichedClick } from './enriched-click.js';

const COLUMNS = ['id', 'at', 'code', 'method', 'bot', 'device', 'referrer_host', 'country', 'browser', 'os', 'referrer', 'user_agent'] as const;

const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]/;

export function csvCell(value: string | null): string {
  if (value === null || value === '') return '';
  const text = FORMULA_START.test(value) ? `'${value}` : value;
  return NEEDS_QUOTES.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** The columns of an export; `ip` only where the operator keeps raw IP addresses. */
export function csvColumns(includeIp: boolean): readonly string[] {
  return includeIp ? [...COLUMNS, 'ip'] : COLUMNS;
}

export function csvHeader(includeIp: boolean): string {
  return `${csvColumns(includeIp).join(',')}\r\n`;
}

export function csvRows(clicks: readonly EnrichedClick[], includeIp: boolean): string {
  let text = '';
  for (const click of clicks) {
    const cells = [
      click.id,
      click.at.toISOString(),
      click.code,
      click.method,
      click.bot ? 'true' : 'false',
      click.device,
      click.referrerHost,
      click.country,
      click.browser,
      click.os,
      click.referrer,
      click.userAgent,
    ];
    if (includeIp) cells.push(click.ip);
    text += `${cells.map(csvCell).join(',')}\r\n`;
  }
  return text;
}

/** `shunt-<code>-<from>-<to>.csv`, times compact (no colons, which some file systems refuse). */
export function csvFileName(code: string, from: Date, to: Date): string {
  const compact = (date: Date): string => date.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `shunt-${code}-${compact(from)}-${compact(to)}.csv`;
}
