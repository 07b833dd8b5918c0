/**
 * The CSV files other shorteners export, and Shunt's own. Columns are found by name, so
 * their order and spelling (`Long URL`, `long_url`) do not matter.
 *
 * - Shunt (plain): url, alias, title, tags (separated by `|`), expiresAt, createdAt, clicks.
 * - Bitly (link export / `links_list`): id, link, long_url, title, created_at, archived,
 *   tags (comma-separated), custom_bitlinks, and a clicks column when metrics are included.
 * - Shlink (web client's "Export"): createdAt, domain, shortCode, shortUrl, longUrl, title,
 *   tags (separated by `|`), visits.
 * - YOURLS (export plugins write the `yourls_url` columns): keyword, url, title, timestamp, ip, clicks.
 */
import { columnKey, columnReader } from './csv-rows.js';
import { codeOfShortLink, splitTags, text, type SourceRecord } from './source-record.js';

export type CsvFlavour = 'csv' | 'bitly' | 'shlink' | 'yourls';

/** Which product wrote a CSV file with this header, or null when none did. */
export function csvFlavour(header: readonly string[]): CsvFlavour | null {
  const keys = new Set(header.map(columnKey));
  if (keys.has('shortcode') && keys.has('longurl')) return 'shlink';
  if (keys.has('longurl') && (keys.has('link') || keys.has('bitlink') || keys.has('id'))) return 'bitly';
  if (keys.has('keyword') && keys.has('url')) return 'yourls';
  if (keys.has('url')) return 'csv';
  return null;
}

export type RowMapper = (cells: readonly string[], line: number) => SourceRecord | string;

/** A mapper from one row of `flavour` to a record, or the reason the row cannot be read. */
export function csvMapper(flavour: CsvFlavour, header: readonly string[]): RowMapper {
  const cell = columnReader(header);
  const base = { kind: 'record' as const };
  switch (flavour) {
    case 'csv':
      return (cells, line) => {
        const url = text(cell(cells, 'url'));
        if (url === null) return 'url is empty';
        const alias = text(cell(cells, 'alias', 'code'));
        return {
          ...base, line, family: 'shunt', sourceId: null, code: alias, url,
          title: text(cell(cells, 'title')),
          tags: splitTags(text(cell(cells, 'tags')), '|'),
          createdAt: text(cell(cells, 'createdAt')),
          expiresAt: text(cell(cells, 'expiresAt')),
          clicks: text(cell(cells, 'clicks')),
        };
      };
    case 'bitly':
      return (cells, line) => {
        const url = text(cell(cells, 'long_url', 'longUrl'));
        if (url === null) return 'long_url is empty';
        const link = text(cell(cells, 'link', 'bitlink', 'id'));
        // A custom back-half is the code people actually share, so it is the one kept.
        const custom = splitTags(text(cell(cells, 'custom_bitlinks')), /[,\s]+/)[0] ?? null;
        return {
          ...base, line, family: 'bitly',
          sourceId: link === null ? null : link.replace(/^https?:\/\//i, ''),
          code: codeOfShortLink(custom ?? link), url,
          title: text(cell(cells, 'title')),
          tags: splitTags(text(cell(cells, 'tags')), ','),
          createdAt: text(cell(cells, 'created_at', 'created')),
          expiresAt: null,
          clicks: text(cell(cells, 'clicks', 'total_clicks', 'engagements')),
        };
      };
    case 'shlink':
      return (cells, line) => {
        const url = text(cell(cells, 'longUrl'));
        if (url === null) return 'longUrl is empty';
        const code = text(cell(cells, 'shortCode')) ?? codeOfShortLink(text(cell(cells, 'shortUrl')));
        const domain = text(cell(cells, 'domain'));
        return {
          ...base, line, family: 'shlink',
          sourceId: code === null ? null : `${domain ?? ''}/${code}`,
          code, url,
          title: text(cell(cells, 'title')),
          tags: splitTags(text(cell(cells, 'tags')), '|'),
          createdAt: text(cell(cells, 'createdAt', 'dateCreated')),
          expiresAt: text(cell(cells, 'validUntil')),
          clicks: text(cell(cells, 'visits', 'visitsCount')),
        };
      };
    case 'yourls':
      return (cells, line) => yourlsRecord(line, {
        keyword: cell(cells, 'keyword'),
        url: cell(cells, 'url'),
        title: cell(cells, 'title'),
        timestamp: cell(cells, 'timestamp'),
        clicks: cell(cells, 'clicks'),
      });
  }
}

/** One `yourls_url` row, whether it came from a CSV export or the SQL dump. */
export function yourlsRecord(
  line: number,
  row: { keyword: string | undefined; url: string | undefined; title: string | undefined; timestamp: string | undefined; clicks: string | undefined },
): SourceRecord | string {
  const url = text(row.url);
  if (url === null) return 'url is empty';
  const keyword = text(row.keyword);
  return {
    kind: 'record', line, family: 'yourls', sourceId: keyword, code: keyword, url,
    title: text(row.title),
    tags: [],
    createdAt: text(row.timestamp),
    expiresAt: null,
    clicks: text(row.clicks),
  };
}
