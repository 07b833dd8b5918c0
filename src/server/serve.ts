/** Runs Shunt until SIGTERM/SIGINT, then drains and exits 0. */
import cluster from 'node:cluster';
import type { Config } from '../config/config.js';
import { createRuntime, type Runtime, type RuntimeOptions } from './runtime.js';

export function printCreatedAdmin(print: (line: string) => void, secret: string): void {
  print(
    `\nAn admin API key was created. It is shown only this once; store it now:\n\n  ${secret}\n\n` +
      `Use it as: Authorization: Bearer <key>\n`,
  );
}

/**
 * A cluster worker's IPC channel keeps it alive: once drained (or failed), it lets go, so
 * that it exits with its exit code like a lone process, and its primary sees a planned exit.
 */
export function leaveCluster(): void {
  if (cluster.isWorker && cluster.worker?.isConnected() === true) cluster.worker.disconnect();
}

export async function serve(config: Config, print: (line: string) => void, options: RuntimeOptions = {}): Promise<void> {
  // The runtime closes only a bus or feed it used (Redis wins over a given one), and an
  // unclosed cluster bus or feed keeps its IPC channel, and so the process, alive.
  const closeGivenBus = async (): Promise<void> => {
    await options.invalidation?.close();
    await options.liveClicks?.close();
  };
  let runtime: Runtime;
  try {
    runtime = await createRuntime(config, options);
  } catch (error) {
    await closeGivenBus();
    throw error;
  }
  const { logger } = runtime;
  if (runtime.createdAdmin !== null) printCreatedAdmin(print, runtime.createdAdmin.secret);
  let address: string;
  try {
    address = await runtime.built.app.listen({ host: config.host, port: config.port });
  } catch (error) {
    // An open pool and timers would keep a process that cannot serve alive for no one.
    await runtime.close().catch(() => undefined);
    await closeGivenBus();
    throw error;
  }
  logger.info({ address, role: config.role, store: runtime.db.kind, baseUrl: config.baseUrl.href }, 'shunt listening');

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining');
    const deadline = setTimeout(() => {
      logger.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown took too long; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    deadline.unref();
    // Closing the server closes the keep-alive connections idle at that moment only: one
    // busy then would, once its response is sent, stay open for KEEP_ALIVE_TIMEOUT_MS (a load
    // balancer keeps it pooled) and hold the drain past the deadline. Node reads this value
    // as each response finishes, so those connections now close right after their response.
    const server = runtime.built.app.server;
    server.keepAliveTimeout = 1;
    // Belt and braces: a connection that goes idle during the drain by any other path
    // (a request that arrived as the listener closed) is closed as soon as it is idle.
    const sweep = setInterval(() => server.closeIdleConnections(), 100);
    sweep.unref();
    // A connection still busy halfway between the readiness delay and the deadline holds a request that will not finish
    // (a redirect takes milliseconds): cut it, so that the clicks are still flushed and the
    // process exits cleanly. A load balancer retries an idempotent request that was cut.
    const cutoff = setTimeout(() => {
      logger.warn('drain: closing connections that are still busy');
      server.closeAllConnections();
    }, config.shutdownDelayMs + Math.max(0, Math.floor((config.shutdownTimeoutMs - config.shutdownDelayMs) / 2)));
    cutoff.unref();
    runtime
      .close()
      .finally(() => {
        clearInterval(sweep);
        clearTimeout(cutoff);
      })
      .then(closeGivenBus)
      .then(
      () => {
        logger.info('stopped');
        logger.flush();
        process.exitCode = 0;
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        logger.flush();
        process.exitCode = 1;
      },
    ).finally(leaveCluster);
  };
  // A cluster worker can get the same signal twice (from the terminal's process group and
  // from the primary that forwards it): the second must not kill it mid-drain.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    if (cluster.isWorker) process.on(signal, () => stop(signal));
    else process.once(signal, () => stop(signal));
  }
}
