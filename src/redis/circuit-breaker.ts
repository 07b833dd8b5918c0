/**
 * Stops paying a timeout on every request while a dependency is down: after `threshold`
 * consecutive failures the circuit opens and calls fail at once; after `cooldownMs` one
 * call is let through as a probe, and its outcome closes or re-opens the circuit.
 */
export type BreakerState = 'closed' | 'open' | 'half-open';

export class CircuitOpenError extends Error {
  constructor(name: string) {
    super(`${name} is unavailable (circuit open)`);
    this.name = 'CircuitOpenError';
  }
}

export interface CircuitBreakerOptions {
  name: string;
  threshold: number;
  cooldownMs: number;
  /** Which errors say the dependency is down; default: all. Others count as answers. */
  isFailure?: (error: unknown) => boolean;
  now?: () => number;
  onStateChange?: (state: BreakerState) => void;
}

export class CircuitBreaker {
  private failures = 0;
  private openedAt = 0;
  private probing = false;
  private current: BreakerState = 'closed';
  private readonly now: () => number;

  constructor(private readonly options: CircuitBreakerOptions) {
    this.now = options.now ?? Date.now;
  }

  get state(): BreakerState {
    return this.current;
  }

  /** True when a call would be attempted now (closed, or a probe is due). */
  get allows(): boolean {
    if (this.current === 'closed') return true;
    return !this.probing && this.now() - this.openedAt >= this.options.cooldownMs;
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.current !== 'closed') {
      if (!this.allows) throw new CircuitOpenError(this.options.name);
      this.probing = true;
      this.setState('half-open');
    }
    try {
      const result = await work();
      this.succeeded();
      return result;
    } catch (error) {
      if (this.options.isFailure?.(error) === false) this.succeeded();
      else this.failed();
      throw error;
    }
  }

  /** Outside signals (a dropped connection) count like failed calls. */
  failed(): void {
    this.probing = false;
    this.failures += 1;
    if (this.current === 'half-open' || this.failures >= this.options.threshold) {
      this.openedAt = this.now();
      this.setState('open');
    }
  }

  succeeded(): void {
    this.probing = false;
    this.failures = 0;
    this.setState('closed');
  }

  private setState(state: BreakerState): void {
    if (state === this.current) return;
    this.current = state;
    this.options.onStateChange?.(state);
  }
}
