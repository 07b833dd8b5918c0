/**
 * Where PostgreSQL without a broker enriches and stores its clicks (ADR 0010): a thread of
 * its own, at background priority, with a small pool of its own. The HTTP thread batches
 * and posts (thread-click-recorder.ts) exactly as it does to the embedded store's thread,
 * and this thread answers each batch through the same host (thread-click-host.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runAsBackgroundThread } from '../shared/thread-priority.js';
import { openDatabase } from '../storage/database.js';
import type { ClickReply, ClickRequest } from '../storage/embedded-protocol.js';
import type { ClickWriterThreadData } from './click-writer-channel.js';
import { serveClicks } from './thread-click-host.js';

type Incoming = ClickRequest | { t: 'clicks-start'; storeRawIp: boolean } | { t: 'close' };

async function main(): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('click-writer-thread.ts runs only as a worker thread');
  runAsBackgroundThread();
  const data = workerData as ClickWriterThreadData;
  const db = await openDatabase({ url: data.databaseUrl, dataDir: 'memory://', poolSize: data.poolSize, applicationName: 'shunt-click-writer', resilience: data.resilience });
  let clicks: ((request: ClickRequest) => void) | null = null;
  port.on('message', (message: Incoming) => {
    switch (message.t) {
      case 'clicks-start':
        clicks ??= serveClicks(db, { storeRawIp: message.storeRawIp }, (reply: ClickReply) => port.postMessage(reply));
        return;
      case 'clicks':
        clicks?.(message);
        return;
      case 'close':
        void db.close().finally(() => port.close());
        return;
    }
  });
  port.postMessage({ t: 'ready' });
}

main().catch((error: unknown) => {
  throw error;
});
