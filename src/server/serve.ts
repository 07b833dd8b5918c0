/** Runs Shunt until SIGTERM/SIGINT, then drains and exits 0. */
import type { Config } from '../config/config.js';
import { createRuntime } from './runtime.js';

export async function serve(config: Config, print: (line: string) => void): Promise<void> {
  const runtime = await createRuntime(config);
  const { logger } = runtime;
  if (runtime.createdAdmin !== null) {
    print(
      `\nAn admin API key was created. It is shown only this once; store it now:\n\n  ${runtime.createdAdmin.secret}\n\n` +
        `Use it as: Authorization: Bearer <key>\n`,
    );
  }
  const address = await runtime.built.app.listen({ host: config.host, port: config.port });
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
    runtime.close().then(
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
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
