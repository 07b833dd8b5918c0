/** Messages between the HTTP thread and the click consumer's thread (consumer-thread.ts, ADR 0010). */
import type { ConsumerStats } from '../observability/pipeline-metrics.js';

/** What the thread is started with: plain values, since a Config does not cross threads. */
export interface ConsumerThreadData {
  databaseUrl: string;
  poolSize: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  storeRawIp: boolean;
  amqp: { url: string; queue: string; prefetch: number; confirmTimeoutMs: number };
  worker: { batchSize: number; batchWaitMs: number; concurrency: number };
  closeTimeoutMs: number;
}

export type ConsumerThreadRequest = { t: 'close' };

export type ConsumerThreadReport =
  | { t: 'ready' }
  /** A committed batch: counts, lag, and the clicks to announce (EnrichedClick, cloned). */
  | { t: 'stored'; inserted: number; duplicates: number; lagSeconds: number[]; stored: unknown[] }
  | { t: 'write-failure' }
  | { t: 'stats'; stats: ConsumerStats }
  | { t: 'closed' };
