/** Every cache key Shunt uses is built here, so tiers and invalidation always agree. */
export const cacheKeys = {
  link: (code: string): string => `link:${code}`,
} as const;
