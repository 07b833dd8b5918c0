/**
 * Sends the redirect path's lookups to read replicas, and keeps read-your-writes while
 * they lag. Every change leaves a fence: the primary's WAL position after it, for its
 * code. A fenced code is read from a replica only after that replica reports having
 * replayed past the fence (asked in a statement of its own, before the lookup: replay
 * only moves forward, so the lookup then sees the change); otherwise from the primary.
 * A replica that fails is skipped for a while and the primary answers instead.
 */
import type { Database, Queryable } from './database.js';
import { currentWalLsn, parseLsn } from './wal.js';

/** Beyond any WAL position: what a server that is not a standby has "replayed". */
const CURRENT = 2n ** 64n;

export interface ReplicaRouterOptions {
  /** Fences kept; beyond it the oldest raise a floor that applies to every code. */
  maxFences?: number;
  /** How long a failed replica is left alone. */
  retryMs?: number;
  now?: () => number;
  onReplicaError?: (error: unknown, replica: number) => void;
}

export interface ReplicaRouterStats {
  replicaReads: number;
  primaryReads: number;
  fencedReads: number;
}

export class ReplicaRouter {
  readonly stats: ReplicaRouterStats = { replicaReads: 0, primaryReads: 0, fencedReads: 0 };
  private readonly fences = new Map<string, bigint>();
  /** Applies to every code: the start position, and evicted fences. */
  private floor: bigint;
  private readonly downUntil: number[];
  /** The highest replay position each replica has reported. */
  private readonly replayed: bigint[];
  private next = 0;
  private readonly now: () => number;

  private constructor(
    private readonly primary: Database,
    private readonly replicas: readonly Database[],
    private readonly options: ReplicaRouterOptions,
    floor: bigint,
  ) {
    this.floor = floor;
    this.downUntil = replicas.map(() => 0);
    this.replayed = replicas.map(() => 0n);
    this.now = options.now ?? Date.now;
  }

  /**
   * The floor starts at the primary's current position: changes made just before this
   * instance started left fences elsewhere, never here.
   */
  static async create(primary: Database, replicas: readonly Database[], options: ReplicaRouterOptions = {}): Promise<ReplicaRouter> {
    const start = await currentWalLsn(primary);
    return new ReplicaRouter(primary, replicas, options, start === null ? 0n : parseLsn(start));
  }

  /** Records a change to `code` that the primary had written by `lsn`. */
  noteWrite(code: string, lsn: string | null): void {
    if (lsn === null) return;
    const position = parseLsn(lsn);
    if ((this.fences.get(code) ?? 0n) >= position) return;
    this.fences.delete(code);
    this.fences.set(code, position);
    const max = this.options.maxFences ?? 100_000;
    while (this.fences.size > max) {
      const oldest = this.fences.entries().next();
      if (oldest.done === true) break;
      this.fences.delete(oldest.value[0]);
      if (oldest.value[1] > this.floor) this.floor = oldest.value[1];
    }
  }

  /**
   * `trust`: whether a replica's answer may stand. An answer it refuses is asked of the
   * primary; the redirect path refuses "unknown" answers, since another instance's new
   * link may reach this one before its fence does.
   */
  async read<T>(code: string, work: (db: Queryable) => Promise<T>, trust: (result: T) => boolean = () => true): Promise<T> {
    const index = this.pickReplica();
    const replica = index === null ? undefined : this.replicas[index];
    if (index === null || replica === undefined) return this.fromPrimary(work);
    const codeFence = this.fences.get(code) ?? 0n;
    const fence = codeFence > this.floor ? codeFence : this.floor;
    let answer: { result: T } | null;
    try {
      answer = await this.fromReplica(replica, index, code, codeFence, fence, work);
    } catch (error) {
      this.downUntil[index] = this.now() + (this.options.retryMs ?? 5000);
      this.options.onReplicaError?.(error, index);
      answer = null;
    }
    // Outside the replica's try: a primary error is the caller's, not the replica's fault.
    return answer !== null && trust(answer.result) ? answer.result : this.fromPrimary(work);
  }

  /** The replica's answer, or null when it is behind the fence. */
  private async fromReplica<T>(
    replica: Database,
    index: number,
    code: string,
    codeFence: bigint,
    fence: bigint,
    work: (db: Queryable) => Promise<T>,
  ): Promise<{ result: T } | null> {
    if (fence > 0n) {
      this.stats.fencedReads += 1;
      const replayed = await this.replayPosition(replica, index);
      this.forgetPassedFences(code, codeFence);
      if (replayed < fence) return null;
    }
    const result = await work(replica);
    this.stats.replicaReads += 1;
    return { result };
  }

  private fromPrimary<T>(work: (db: Queryable) => Promise<T>): Promise<T> {
    this.stats.primaryReads += 1;
    return work(this.primary);
  }

  /** Round robin over the replicas that are not resting after a failure. */
  private pickReplica(): number | null {
    const now = this.now();
    for (let tried = 0; tried < this.replicas.length; tried += 1) {
      const index = this.next;
      this.next = (this.next + 1) % this.replicas.length;
      if ((this.downUntil[index] ?? 0) <= now) return index;
    }
    return null;
  }

  private async replayPosition(replica: Database, index: number): Promise<bigint> {
    const result = await replica.query<{ lsn: string | null }>('SELECT pg_last_wal_replay_lsn()::text AS lsn');
    const text = result.rows[0]?.lsn ?? null;
    // Null: not a standby (a promoted or misconfigured "replica"), whose data is current.
    const position = text === null ? CURRENT : parseLsn(text);
    if (position > (this.replayed[index] ?? 0n)) this.replayed[index] = position;
    return position;
  }

  /** Once every replica has replayed past a fence, it protects nothing. */
  private forgetPassedFences(code: string, codeFence: bigint): void {
    let slowest = this.replayed[0] ?? 0n;
    for (const position of this.replayed) if (position < slowest) slowest = position;
    if (codeFence > 0n && slowest >= codeFence && this.fences.get(code) === codeFence) this.fences.delete(code);
    if (this.floor > 0n && slowest >= this.floor) this.floor = 0n;
  }
}
