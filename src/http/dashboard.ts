/**
 * Serves the built dashboard (web/, built by Vite into dist/web/) from memory: the HTML
 * entry is revalidated on every load, the content-hashed assets are cached for a year.
 * Both are gzip-compressed once, at start.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** From src/http/ and from dist/http/ alike: the build output at the repository's root. */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../dist/web/', import.meta.url));
/** The one path prefix the dashboard's files live under (reserved as an alias). */
export const ASSET_PREFIX = '/assets/';

const TYPES: Readonly<Record<string, string>> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
};

/**
 * No inline script or style anywhere; data: and blob: images are the QR PNG made in the page.
 * connect-src 'self' covers the API and the live event stream.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "font-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

interface StaticFile {
  body: Buffer;
  gzipped: Buffer;
  type: string;
  etag: string;
}

function load(body: Buffer, type: string): StaticFile {
  return { body, gzipped: gzipSync(body, { level: 9 }), type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

export interface DashboardFiles {
  index: StaticFile;
  assets: ReadonlyMap<string, StaticFile>;
}

/** The built dashboard, or null when it has not been built (`npm run build:web`). */
export function loadDashboard(dir = DASHBOARD_DIR): DashboardFiles | null {
  const indexPath = join(dir, 'index.html');
  if (!existsSync(indexPath)) return null;
  const assets = new Map<string, StaticFile>();
  const assetDir = join(dir, 'assets');
  if (existsSync(assetDir)) {
    for (const name of readdirSync(assetDir)) {
      const type = TYPES[extname(name)];
      if (type !== undefined) assets.set(name, load(readFileSync(join(assetDir, name)), type));
    }
  }
  return { index: load(readFileSync(indexPath), 'text/html; charset=utf-8'), assets };
}

function securityHeaders(reply: FastifyReply): void {
  void reply.header('Content-Security-Policy', DASHBOARD_CSP);
  void reply.header('X-Content-Type-Options', 'nosniff');
  void reply.header('X-Frame-Options', 'DENY');
  void reply.header('Referrer-Policy', 'same-origin');
  void reply.header('Cross-Origin-Opener-Policy', 'same-origin');
}

function send(request: FastifyRequest, reply: FastifyReply, file: StaticFile, cacheControl: string) {
  securityHeaders(reply);
  void reply.header('Cache-Control', cacheControl);
  void reply.header('ETag', file.etag);
  void reply.header('Vary', 'Accept-Encoding');
  void reply.type(file.type);
  const ifNoneMatch = request.headers['if-none-match'];
  if (ifNoneMatch !== undefined && ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === file.etag)) {
    return reply.code(304).send();
  }
  const accepts = request.headers['accept-encoding'];
  if (typeof accepts === 'string' && /\bgzip\b/.test(accepts)) {
    void reply.header('Content-Encoding', 'gzip');
    return reply.send(file.gzipped);
  }
  return reply.send(file.body);
}

/** `/` and `/assets/*`. Pages are hash routes (`/#/links`), so no other path is taken from aliases. */
export function dashboardRoutes(app: FastifyInstance, files: DashboardFiles): void {
  app.get('/', (request, reply) => send(request, reply, files.index, 'no-cache'));
  // The dashboard's files are not part of the API, so not in the OpenAPI document (as `/` is not).
  app.get<{ Params: { name: string } }>(`${ASSET_PREFIX}:name`, (request, reply) => {
    const file = files.assets.get(request.params.name);
    if (file === undefined) {
      securityHeaders(reply);
      return reply.code(404).type('text/plain; charset=utf-8').send('Not found');
    }
    return send(request, reply, file, 'public, max-age=31536000, immutable');
  });
}
