/**
 * The API's JSON schemas. Fastify validates requests with them and the OpenAPI document
 * is generated from them: one source, so the two cannot drift apart.
 */
import { Type, type Static } from '@sinclair/typebox';
import { CODE_PATTERN } from '../links/code-shape.js';
import { QR_DEFAULT_SIZE, QR_MAX_SIZE, QR_MIN_SIZE } from './qr.js';
import { MAX_PASSWORD_LENGTH } from '../links/password-hash.js';
import { MAX_TAG_LENGTH, MAX_TAGS, MAX_TITLE_LENGTH } from '../links/link-rules.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);

export const RedirectTypeSchema = Type.Union([Type.Literal(301), Type.Literal(302), Type.Literal(307), Type.Literal(308)], {
  description: 'HTTP status of the redirect. 301/308 are cached by browsers (bounded max-age), so later clicks may not be counted.',
});

const PASSWORD_DESCRIPTION =
  `1-${MAX_PASSWORD_LENGTH} characters. Visitors get a form and are redirected (and counted) only after posting it; ` +
  'stored as a scrypt hash, never returned (see passwordProtected).';

const linkSettings = {
  // Lengths and counts are enforced by the link rules, with the URL checks, so that one
  // answer lists every bad field; the schema checks types.
  title: Type.Optional(Nullable(Type.String({ description: `At most ${MAX_TITLE_LENGTH} characters.` }))),
  // maxItems in the schema, so a huge array is refused before any per-item work.
  tags: Type.Optional(Type.Array(Type.String(), { maxItems: MAX_TAGS, description: `At most ${MAX_TAGS} tags, each 1-${MAX_TAG_LENGTH} characters.` })),
  expiresAt: Type.Optional(Nullable(Type.String({ format: 'date-time', description: 'After this instant the link answers 410 (or redirects to fallbackUrl).' }))),
  maxVisits: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 2_147_483_647, description: 'Exact: concurrent clicks never exceed it.' }))),
  redirectType: Type.Optional(RedirectTypeSchema),
  forwardQuery: Type.Optional(Type.Boolean({ description: 'Append the short URL\'s query string to the destination. Default true.' })),
  fallbackUrl: Type.Optional(Nullable(Type.String({ description: 'Where expired, visit-limited or disabled links redirect instead of answering 410.' }))),
  disabled: Type.Optional(Type.Boolean({ description: 'A disabled link answers 410.' })),
};

export const LinkCreateSchema = Type.Object(
  {
    url: Type.String({ minLength: 1, description: 'Destination: http or https, at most 2048 characters by default.' }),
    alias: Type.Optional(Type.String({ pattern: CODE_PATTERN.source, description: 'Custom short code; reserved words are refused.' })),
    ...linkSettings,
    password: Type.Optional(Type.String({ description: PASSWORD_DESCRIPTION })),
  },
  { additionalProperties: false },
);
export type LinkCreateBody = Static<typeof LinkCreateSchema>;

export const LinkPatchSchema = Type.Object(
  {
    url: Type.Optional(Type.String({ minLength: 1 })),
    ...linkSettings,
    password: Type.Optional(Nullable(Type.String({ description: `${PASSWORD_DESCRIPTION} null removes it.` }))),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type LinkPatchBody = Static<typeof LinkPatchSchema>;

export const BulkCreateSchema = Type.Object(
  { links: Type.Array(Type.Unknown({ description: 'A LinkCreate object; each item is validated on its own.' }), { minItems: 1, maxItems: 1000 }) },
  { additionalProperties: false },
);

export const LinkSchema = Type.Object(
  {
    code: Type.String(),
    shortUrl: Type.String({ format: 'uri' }),
    url: Type.String({ format: 'uri' }),
    alias: Nullable(Type.String({ description: 'The custom alias, or null for a generated code.' })),
    title: Nullable(Type.String()),
    tags: Type.Array(Type.String()),
    expiresAt: Nullable(Type.String({ format: 'date-time' })),
    maxVisits: Nullable(Type.Integer()),
    visits: Type.Integer({ description: 'Redirects counted against maxVisits (links without a limit do not count here).' }),
    redirectType: RedirectTypeSchema,
    forwardQuery: Type.Boolean(),
    fallbackUrl: Nullable(Type.String()),
    disabled: Type.Boolean(),
    passwordProtected: Type.Boolean({ description: 'A password is set; the password itself is never returned.' }),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
);
export type LinkJson = Static<typeof LinkSchema>;

export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String({ description: 'Stable machine-readable error code.' }),
    instance: Type.Optional(Type.String()),
    requestId: Type.Optional(Type.String()),
    errors: Type.Optional(Type.Array(Type.Object({ field: Type.String(), message: Type.String() }))),
  },
);

export const LinkPageSchema = Type.Object({ items: Type.Array(LinkSchema), nextCursor: Nullable(Type.String()) });

export const BulkResultSchema = Type.Object(
  {
    items: Type.Array(
      Type.Object({ status: Type.Integer(), link: Type.Optional(LinkSchema), problem: Type.Optional(ProblemSchema) }),
    ),
  },
);

export const ListLinksQuerySchema = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
    q: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Case-insensitive search in url, code and title.' })),
    tag: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_TAG_LENGTH })),
    sort: Type.Optional(
      Type.Union([Type.Literal('newest'), Type.Literal('oldest')], {
        default: 'newest',
        description: 'Order by creation: newest first (default) or oldest first. A cursor is only valid with the sort it came from.',
      }),
    ),
  },
  { additionalProperties: false },
);
export type ListLinksQuery = Static<typeof ListLinksQuerySchema>;

export const CodeParamsSchema = Type.Object({ code: Type.String() });

export const KeyCreateSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\p{Cc}]+$' }),
    role: Type.Optional(Type.Union([Type.Literal('admin'), Type.Literal('member')], { default: 'member' })),
  },
  { additionalProperties: false },
);
export type KeyCreateBody = Static<typeof KeyCreateSchema>;

export const KeySchema = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    role: Type.Union([Type.Literal('admin'), Type.Literal('member')]),
    prefix: Type.String({ description: 'The first characters of the key, to recognise it.' }),
    createdAt: Type.String({ format: 'date-time' }),
    lastUsedAt: Nullable(Type.String({ format: 'date-time' })),
    revokedAt: Nullable(Type.String({ format: 'date-time' })),
  },
);

export const CreatedKeySchema = Type.Intersect([KeySchema, Type.Object({ key: Type.String({ description: 'The secret; shown only in this answer.' }) })]);

export const KeyListSchema = Type.Object({ items: Type.Array(KeySchema) });

export const QrQuerySchema = Type.Object(
  {
    format: Type.Optional(Type.Union([Type.Literal('svg'), Type.Literal('png')], { default: 'svg' })),
    size: Type.Optional(Type.Integer({
      minimum: QR_MIN_SIZE, maximum: QR_MAX_SIZE, default: QR_DEFAULT_SIZE,
      description: `Width in pixels (PNG) or of the drawing (SVG). At most ${QR_MAX_SIZE}: 8.7 cm at 300 dpi, enough for print.`,
    })),
  },
  { additionalProperties: false },
);
