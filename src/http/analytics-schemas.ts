/**
 * Schemas of the analytics API (stats, CSV export, event stream): request validation and
 * the OpenAPI document, as in schemas.ts.
 */
import { Type, type Static } from '@sinclair/typebox';
import { MAX_SERIES_POINTS, MAX_TOP } from '../analytics/stats-query.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);
const DateTime = (description?: string) => Type.String({ format: 'date-time', ...(description === undefined ? {} : { description }) });

/** Longest range whose series defaults to hourly points; longer ranges default to days. */
export const HOURLY_DEFAULT_MAX_DAYS = 31;
/** Range of stats and exports when the caller gives none. */
export const DEFAULT_RANGE_DAYS = 7;

const rangeQuery = {
  from: Type.Optional(
    DateTime(`Start of the range, inclusive: an RFC 3339 date-time with an offset (2025-03-10T00:00:00Z). Default: \`to\` minus ${DEFAULT_RANGE_DAYS} days.`),
  ),
  to: Type.Optional(DateTime('End of the range, exclusive, as `from`. Default: now.')),
};

export const StatsQuerySchema = Type.Object(
  {
    ...rangeQuery,
    interval: Type.Optional(
      Type.Union([Type.Literal('minute'), Type.Literal('hour'), Type.Literal('day')], {
        description: `Size of the series' buckets (UTC). Default: hour, or day when the range is longer than ${HOURLY_DEFAULT_MAX_DAYS} days. A range of more than ${MAX_SERIES_POINTS} buckets is refused.`,
      }),
    ),
    bots: Type.Optional(
      Type.Union([Type.Literal('exclude'), Type.Literal('include')], {
        default: 'exclude',
        description: 'Count clicks of known bot user agents, and every HEAD request, or leave them out.',
      }),
    ),
    top: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TOP, default: 10, description: 'Values listed per breakdown, most clicked first.' })),
  },
  { additionalProperties: false },
);
export type StatsQuery = Static<typeof StatsQuerySchema>;

export const ExportQuerySchema = Type.Object(rangeQuery, { additionalProperties: false });
export type ExportQuery = Static<typeof ExportQuerySchema>;

const Ranked = (what: string) =>
  Type.Array(
    Type.Object({
      value: Nullable(Type.String({ description: `The ${what}; null when unknown.` })),
      clicks: Type.Integer(),
    }),
    { description: `Most clicked ${what} values first (ties in byte order of the value), over the whole UTC days of \`days\`.` },
  );

export const LinkStatsSchema = Type.Object({
  range: Type.Object(
    {
      from: DateTime(),
      to: DateTime(),
      interval: Type.Union([Type.Literal('minute'), Type.Literal('hour'), Type.Literal('day')]),
    },
    { description: 'The range of the series and of totals.clicks: from and to widened to whole buckets.' },
  ),
  days: Type.Object(
    { from: DateTime(), to: DateTime() },
    { description: 'Breakdowns and uniques are kept per UTC day: the whole days they cover.' },
  ),
  totals: Type.Object({
    clicks: Type.Integer({ description: 'Clicks in `range`.' }),
    uniques: Type.Integer({ description: 'Sum of each day\'s unique visitors over `days` (a visitor is not followed from one day to the next).' }),
    imported: Type.Integer({
      description: 'Visits the link had in the shortener it was imported from (`shunt import`), whatever the range; not part of `clicks`. 0 for a link made in Shunt.',
    }),
  }),
  series: Type.Array(Type.Object({ t: DateTime('Start of the bucket.'), clicks: Type.Integer() }), { description: 'Every bucket of `range`, zero included.' }),
  referrers: Ranked('referrer host (null: a direct visit)'),
  countries: Ranked('country (ISO 3166-1 alpha-2)'),
  browsers: Ranked('browser'),
  os: Ranked('operating system'),
  devices: Ranked('device type (desktop, mobile, tablet, bot, other)'),
});

export const ExportIdParamsSchema = Type.Object({ id: Type.String() });

export const ExportJobSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  status: Type.Union([Type.Literal('queued'), Type.Literal('running'), Type.Literal('done'), Type.Literal('failed')]),
  href: Type.String({ description: 'This job.' }),
  fileHref: Nullable(Type.String({ description: 'The CSV file, once done.' })),
  code: Type.String(),
  from: DateTime(),
  to: DateTime(),
  rows: Nullable(Type.Integer({ description: 'Clicks in the file, once done.' })),
  bytes: Nullable(Type.Integer({ description: 'Size of the file, once done.' })),
  error: Nullable(Type.String({ description: 'Why the export failed.' })),
  createdAt: DateTime(),
  startedAt: Nullable(DateTime()),
  finishedAt: Nullable(DateTime()),
  expiresAt: DateTime('The job and its file are deleted after this instant.'),
});

export const CsvSchema = Type.String({
  description:
    'RFC 4180 CSV, UTF-8, CRLF line ends; a header row, then one row per click in time order: ' +
    'id, at, code, method, bot, device, referrer_host, country, browser, os, referrer, user_agent ' +
    '(and ip where the operator keeps raw IP addresses). Cells that a spreadsheet would take for a formula ' +
    '(starting with = + - @, tab or CR) start with an apostrophe.',
});

export const EventStreamSchema = Type.String({
  description:
    'text/event-stream. Each stored click as `event: click`, `id: <click id>`, `data: <JSON object: id, code, at, method, bot, ' +
    'country, referrerHost, browser, os, device>`; a comment (`: ping`) every 15 s; `retry:` once at the start. ' +
    'The server ends the stream with a comment when it shuts down: reconnect.',
});
