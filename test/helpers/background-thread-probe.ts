/** A worker thread that lowers its own priority and reports what it set and its thread id. */
import { readlinkSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { runAsBackgroundThread } from '../../src/shared/thread-priority.js';

const nice = runAsBackgroundThread();
const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
parentPort?.postMessage({ nice, tid });
// Alive until terminated, so that the test can still ask the kernel about this thread.
parentPort?.on('message', () => undefined);
