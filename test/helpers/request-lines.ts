/** The request log lines an app wrote with a request id, once it has written one (lines are written after the answer). */
import { setTimeout as sleep } from 'node:timers/promises';
import type { TestApp } from './test-app.js';

const LOG_WAIT_MS = 5000;

export async function requestLines(app: TestApp, requestId: string): Promise<Record<string, unknown>[]> {
  const find = (): Record<string, unknown>[] => app.logs.filter((line) => line.reqId === requestId && line.msg === 'request');
  const deadline = Date.now() + LOG_WAIT_MS;
  while (find().length === 0 && Date.now() < deadline) await sleep(10);
  return find();
}
