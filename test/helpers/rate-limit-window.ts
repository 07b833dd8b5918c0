/**
 * Rate-limit windows are fixed minutes: a sequence of requests that straddled a minute
 * boundary would see its counter reset half-way. Tests start each sequence well inside one.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { RATE_LIMIT_WINDOW_MS } from '../../src/ratelimit/rate-limiter.js';

/** Milliseconds left in the current window, by this process's clock. */
export function msLeftInWindow(): number {
  return RATE_LIMIT_WINDOW_MS - (Date.now() % RATE_LIMIT_WINDOW_MS);
}

/** Waits for the next window when fewer than `neededMs` are left in this one. */
export async function freshWindow(neededMs: number): Promise<void> {
  const left = msLeftInWindow();
  if (left < neededMs) await sleep(left + 200);
}
