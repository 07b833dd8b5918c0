/**
 * Rendered QR codes: an in-process LRU bounded in bytes, then Redis (shared by every
 * instance, a day), then the renderer. Entries are keyed by code, link id and version,
 * format and size: a changed or re-created link never gets an image cached for another,
 * and old entries simply age out. One render per key runs at a time in a process.
 */
import { LRUCache } from 'lru-cache';
import type { Link } from '../links/link.js';
import type { RedisConnection } from '../redis/redis-connection.js';
import type { CacheKeys } from './cache-keys.js';

export type QrImageFormat = 'svg' | 'png';

export interface QrRendering {
  render(text: string, format: QrImageFormat, size: number): Promise<Buffer>;
}

export interface QrCacheOptions {
  renderer: QrRendering;
  /** The text a link's QR code carries: its short URL. */
  textFor: (code: string) => string;
  maxBytes: number;
  redis?: { connection: RedisConnection; keys: CacheKeys; ttlMs: number };
  onRemoteError?: (error: unknown) => void;
}

export interface QrCacheStats {
  hits: number;
  remoteHits: number;
  renders: number;
}

/** Strong ETag of a link's QR code in one format and size. */
export function qrEtag(link: Link, format: QrImageFormat, size: number): string {
  return `"qr-${link.id}-${link.version}-${format}-${size}"`;
}

function localKey(link: Link, format: QrImageFormat, size: number): string {
  return `${link.code}:${link.id}.${link.version}:${format}:${size}`;
}

export class QrCache {
  private readonly local: LRUCache<string, Buffer>;
  private readonly inflight = new Map<string, Promise<Buffer>>();
  readonly stats: QrCacheStats = { hits: 0, remoteHits: 0, renders: 0 };

  constructor(private readonly options: QrCacheOptions) {
    this.local = new LRUCache<string, Buffer>({ maxSize: options.maxBytes, sizeCalculation: (body) => Math.max(1, body.byteLength) });
  }

  /** The image when this process holds it, without I/O: the hot path's lane. */
  peek(link: Link, format: QrImageFormat, size: number): Buffer | undefined {
    return this.localHit(localKey(link, format, size));
  }

  get(link: Link, format: QrImageFormat, size: number): Promise<Buffer> {
    const key = localKey(link, format, size);
    const cached = this.localHit(key);
    if (cached !== undefined) return Promise.resolve(cached);
    let pending = this.inflight.get(key);
    if (pending === undefined) {
      pending = this.load(key, link.code, format, size).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return pending;
  }

  private localHit(key: string): Buffer | undefined {
    const cached = this.local.get(key);
    if (cached !== undefined) this.stats.hits += 1;
    return cached;
  }

  private async load(key: string, code: string, format: QrImageFormat, size: number): Promise<Buffer> {
    const remote = this.options.redis;
    const remoteKey = remote?.keys.qr(key);
    if (remote !== undefined && remoteKey !== undefined) {
      try {
        const body = await remote.connection.run((redis) => redis.getBuffer(remoteKey));
        if (body !== null) {
          this.stats.remoteHits += 1;
          this.local.set(key, body);
          return body;
        }
      } catch (error) {
        this.options.onRemoteError?.(error);
      }
    }
    this.stats.renders += 1;
    const body = await this.options.renderer.render(this.options.textFor(code), format, size);
    this.local.set(key, body);
    if (remote !== undefined && remoteKey !== undefined) {
      remote.connection.run((redis) => redis.set(remoteKey, body, 'PX', remote.ttlMs)).catch((error: unknown) => this.options.onRemoteError?.(error));
    }
    return body;
  }
}
