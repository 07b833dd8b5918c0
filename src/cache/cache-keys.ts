/**
 * Every key and channel Shunt uses in Redis is built here, so tiers, rate limits and
 * invalidation always agree. The prefix (REDIS_KEY_PREFIX) lets several deployments share
 * one Redis; the version segment changes when the stored format does, so instances of two
 * releases never read each other's entries.
 */
export interface CacheKeys {
  link(code: string): string;
  /** Bumped by every invalidation of the code: a fill that read the store before it is refused. */
  linkGeneration(code: string): string;
  rateLimit(bucket: string, windowStart: number): string;
  /** A rendered QR code (see qr-cache.ts for what the entry key holds). */
  qr(entry: string): string;
  readonly invalidationChannel: string;
  /** Clients refused on the redirect path, announced to every instance. */
  readonly throttleChannel: string;
  /** Sorted set of `instance:linkId` members with event-stream subscribers, scored by expiry (epoch ms). */
  readonly liveWatched: string;
  /** Announces a link that just gained subscribers, so click writers start publishing it at once. */
  readonly liveWatchChannel: string;
  /** Stored clicks of one link (links.id), as JSON arrays of live clicks. */
  liveClicks(linkId: string): string;
}

export function cacheKeys(prefix: string): CacheKeys {
  const base = `${prefix}:v1`;
  return {
    // link2: links carry `passwordProtected` since then; older entries lack it.
    link: (code) => `${base}:link2:${code}`,
    linkGeneration: (code) => `${base}:link-gen:${code}`,
    rateLimit: (bucket, windowStart) => `${base}:rl:${bucket}:${windowStart}`,
    qr: (entry) => `${base}:qr:${entry}`,
    invalidationChannel: `${base}:invalidate`,
    throttleChannel: `${base}:throttle`,
    // Keyed by link id; the names differ from the previous version's, which were keyed by
    // code (a code may be all digits), so instances of both never mix them during an upgrade.
    liveWatched: `${base}:live:watched-links`,
    liveWatchChannel: `${base}:live:watch-link`,
    liveClicks: (linkId) => `${base}:live:link-clicks:${linkId}`,
  };
}
