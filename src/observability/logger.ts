import { pino, type Logger } from 'pino';
import type { Config } from '../config/config.js';

/** JSON lines on stdout: one object per event, `time` in epoch milliseconds (cheap on the hot path). */
export function createLogger(config: Pick<Config, 'logLevel'>, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level: config.logLevel,
      base: { service: 'shunt', pid: process.pid },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ sync: false }),
  );
}
