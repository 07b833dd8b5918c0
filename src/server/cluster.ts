/**
 * `shunt start` with more than one worker: a primary process prepares the store once,
 * forks the workers (node:cluster; they share the port), relays cache invalidations and
 * live clicks between them (when there is no Redis), replaces the ones that die, and stops them all on SIGTERM/SIGINT.
 * With one worker there is no primary: the process serves by itself.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { ClusterInvalidationBus, processChannel, relayInvalidation } from '../cache/cluster-invalidation.js';
import { KeyRepository } from '../keys/key-repository.js';
import { ClusterLiveClickFeed, relayLiveClicks } from '../live/cluster-live-click-feed.js';
import { KeyService } from '../keys/key-service.js';
import { createLogger } from '../observability/logger.js';
import { prepareStore } from './prepare-store.js';
import { openDatabase } from '../storage/database.js';
import { RestartPolicy } from './restart-policy.js';
import { leaveCluster, printCreatedAdmin, serve } from './serve.js';

type Print = (line: string) => void;

export async function start(config: Config, print: Print): Promise<void> {
  if (config.workers <= 1) return serve(config, print);
  if (cluster.isWorker) {
    // With Redis the runtime invalidates and announces clicks through it; an idle IPC bus
    // would only hold the channel open.
    const options =
      config.redis.url === undefined
        ? { invalidation: new ClusterInvalidationBus(processChannel()), liveClicks: new ClusterLiveClickFeed(processChannel()) }
        : {};
    try {
      return await serve(config, print, options);
    } catch (error) {
      leaveCluster();
      throw error;
    }
  }
  const logger = createLogger(config);
  logger.info({ workers: config.workers }, 'starting workers');
  await prepare(config, logger, print);
  new Supervisor(config, logger, new RestartPolicy()).start();
}

/**
 * Migrations and the first admin key, before any worker exists: the key is then printed
 * once, by the primary, and every worker finds it already there.
 */
async function prepare(config: Config, logger: Logger, print: Print): Promise<void> {
  const db = await openDatabase({ url: config.database.url, dataDir: config.database.dataDir, poolSize: 1, resilience: config.database });
  try {
    const applied = await prepareStore(db, config, logger);
    if (applied.length > 0) logger.info({ applied }, 'migrations applied');
    const keys = new KeyService(new KeyRepository(db), (error) => logger.warn({ err: error }, 'api key bookkeeping failed'));
    const created = await keys.ensureAdmin(config.adminApiKey);
    if (created !== null) printCreatedAdmin(print, created.secret);
  } finally {
    await db.close();
  }
}

interface Running {
  slot: number;
  startedAt: number;
  listening: boolean;
}

class Supervisor {
  private readonly running = new Map<Worker, Running>();
  private readonly restarts = new Map<number, NodeJS.Timeout>();
  private stopping: NodeJS.Signals | null = null;
  private failed = false;
  private deadline: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
    private readonly policy: RestartPolicy,
  ) {}

  start(): void {
    cluster.on('message', (_sender, message: unknown) => {
      const workers = Object.values(cluster.workers ?? {}).filter((worker) => worker !== undefined);
      if (!relayInvalidation(message, workers)) relayLiveClicks(message, workers);
    });
    cluster.on('listening', (worker) => {
      const running = this.running.get(worker);
      if (running !== undefined) running.listening = true;
    });
    cluster.on('exit', (worker, code, signal) => this.exited(worker, code, signal));
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => this.stop(signal));
    for (let slot = 0; slot < this.config.workers; slot += 1) this.fork(slot, false);
  }

  private fork(slot: number, restarted: boolean): void {
    const worker = cluster.fork();
    this.running.set(worker, { slot, startedAt: Date.now(), listening: false });
    this.logger.info({ worker: slot, workerPid: worker.process.pid, restarted }, 'worker started');
  }

  private exited(worker: Worker, code: number | null, signal: string | null): void {
    const running = this.running.get(worker);
    if (running === undefined) return;
    this.running.delete(worker);
    const { slot } = running;
    const fields = { worker: slot, workerPid: worker.process.pid, code, signal };

    if (this.stopping !== null) {
      // A worker still starting when the signal came had no handler yet and died of it: it
      // had served nothing, so nothing was lost.
      const clean = code === 0 || (signal === this.stopping && !running.listening);
      if (!clean) this.failed = true;
      if (clean) this.logger.info(fields, 'worker exited');
      else this.logger.error(fields, 'worker exited');
      this.finishIfDone();
      return;
    }

    const decision = this.policy.decide(slot, Date.now() - running.startedAt);
    if (!decision.restart) {
      this.logger.error({ ...fields, quickFailures: decision.quickFailures }, 'worker exited; it keeps dying at start: giving up');
      this.failed = true;
      this.stop('SIGTERM');
      return;
    }
    this.logger.warn({ ...fields, restartInMs: decision.delayMs }, 'worker exited; restarting');
    this.restarts.set(
      slot,
      setTimeout(() => {
        this.restarts.delete(slot);
        this.fork(slot, true);
      }, decision.delayMs),
    );
  }

  private stop(signal: NodeJS.Signals): void {
    if (this.stopping !== null) return;
    this.stopping = signal;
    this.logger.info({ signal, workers: this.running.size }, 'stopping workers');
    for (const timer of this.restarts.values()) clearTimeout(timer);
    this.restarts.clear();
    for (const worker of this.running.keys()) worker.process.kill(signal);
    this.deadline = setTimeout(() => {
      this.logger.error({ timeoutMs: this.config.shutdownTimeoutMs, workers: this.running.size }, 'workers did not stop in time; killing them');
      this.failed = true;
      for (const worker of this.running.keys()) worker.process.kill('SIGKILL');
    }, this.config.shutdownTimeoutMs);
    this.finishIfDone();
  }

  /** Once every worker is gone, nothing holds the event loop: the primary exits with this code. */
  private finishIfDone(): void {
    if (this.stopping === null || this.running.size > 0) return;
    clearTimeout(this.deadline);
    process.exitCode = this.failed ? 1 : 0;
    this.logger.info({ exitCode: process.exitCode }, 'stopped');
    this.logger.flush();
  }
}
