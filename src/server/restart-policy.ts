/**
 * When a worker dies, whether and how soon to start another in its place. A worker that
 * dies soon after it started is likely to do so again (bad port, bad host, a crash on
 * start): each such death in a row doubles the wait, and after a few the primary gives up
 * instead of spinning. A worker that ran for a while resets its slot's count.
 */
export interface RestartPolicyOptions {
  /** A worker that lived less than this died "at once". */
  stableAfterMs: number;
  /** Wait before restarting a worker that had been running well. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Deaths at once in a row, in one slot, after which the primary gives up. */
  maxQuickFailures: number;
}

export type RestartDecision = { restart: true; delayMs: number } | { restart: false; quickFailures: number };

export const DEFAULT_RESTART_POLICY: RestartPolicyOptions = {
  stableAfterMs: 10_000,
  baseDelayMs: 250,
  maxDelayMs: 8_000,
  maxQuickFailures: 5,
};

export class RestartPolicy {
  private readonly quickFailures = new Map<number, number>();

  constructor(private readonly options: RestartPolicyOptions = DEFAULT_RESTART_POLICY) {}

  decide(slot: number, livedMs: number): RestartDecision {
    const { stableAfterMs, baseDelayMs, maxDelayMs, maxQuickFailures } = this.options;
    if (livedMs >= stableAfterMs) {
      this.quickFailures.set(slot, 0);
      return { restart: true, delayMs: baseDelayMs };
    }
    const failures = (this.quickFailures.get(slot) ?? 0) + 1;
    this.quickFailures.set(slot, failures);
    if (failures >= maxQuickFailures) return { restart: false, quickFailures: failures };
    return { restart: true, delayMs: Math.min(baseDelayMs * 2 ** (failures - 1), maxDelayMs) };
  }
}
