/**
 * The click consumer of `ROLE=all` on PostgreSQL, in a thread of its own (ADR 0010): it
 * takes batches off the broker, enriches and stores them with its own pool, so none of that
 * runs on the event loop that answers redirects. Stored clicks and counters are reported
 * to the HTTP thread (consumer-thread-client.ts), which announces and counts them.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { DatabaseVisitorSalts } from '../analytics/database-visitor-salts.js';
import { ClickEnricher } from '../analytics/enrich.js';
import { createLogger } from '../observability/logger.js';
import { runAsBackgroundThread } from '../shared/thread-priority.js';
import { openDatabase } from '../storage/database.js';
import { AmqpClickConsumer } from './amqp-click-consumer.js';
import { ClickProcessor } from './click-processor.js';
import type { ConsumerThreadData, ConsumerThreadReport, ConsumerThreadRequest } from './consumer-thread-protocol.js';

/** How often counters reach the HTTP thread, for /metrics. */
const STATS_INTERVAL_MS = 1000;

async function main(): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('consumer-thread.ts runs only as a worker thread');
  const data = workerData as ConsumerThreadData;
  runAsBackgroundThread();
  const report = (message: ConsumerThreadReport): void => port.postMessage(message);
  const logger = createLogger({ logLevel: data.logLevel }).child({ thread: 'click-consumer' });
  const db = await openDatabase({ url: data.databaseUrl, dataDir: 'memory://', poolSize: data.poolSize, applicationName: 'shunt-click-consumer' });
  const processor = new ClickProcessor({
    db,
    enricher: new ClickEnricher({ salts: new DatabaseVisitorSalts(db), storeRawIp: data.storeRawIp }),
    onStored: (result, lagSeconds) =>
      report({ t: 'stored', inserted: result.inserted, duplicates: result.duplicates, lagSeconds: [...lagSeconds], stored: [...result.stored] }),
    onRetry: (error, attempt) => logger.warn({ err: error, attempt }, 'click batch lost a lock race; retrying'),
  });
  const consumer = new AmqpClickConsumer({
    url: data.amqp.url,
    queue: data.amqp.queue,
    prefetch: data.amqp.prefetch,
    batchSize: data.worker.batchSize,
    batchWaitMs: data.worker.batchWaitMs,
    concurrency: data.worker.concurrency,
    confirmTimeoutMs: data.amqp.confirmTimeoutMs,
    closeTimeoutMs: data.closeTimeoutMs,
    handle: async (events) => {
      try {
        await processor.handle(events);
      } catch (error) {
        report({ t: 'write-failure' });
        throw error;
      }
    },
    logger,
  });
  const stats = setInterval(() => report({ t: 'stats', stats: consumer.stats }), STATS_INTERVAL_MS);
  port.on('message', (message: ConsumerThreadRequest) => {
    if (message.t !== 'close') return;
    clearInterval(stats);
    void (async () => {
      await consumer.close();
      report({ t: 'stats', stats: consumer.stats });
      await db.close();
      report({ t: 'closed' });
      port.close();
    })();
  });
  consumer.start();
  report({ t: 'ready' });
}

// Thrown out of the thread: the HTTP thread sees its 'error' and exit.
main().catch((error: unknown) => {
  throw error;
});
