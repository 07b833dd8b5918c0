import assert from 'node:assert/strict';
import { once } from 'node:events';
import { getPriority } from 'node:os';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { threadEntry } from '../../src/shared/thread-entry.js';
import { BACKGROUND_NICE } from '../../src/shared/thread-priority.js';

const linux = process.platform === 'linux';

describe('background threads', () => {
  test('a background thread lowers its own priority and nobody else’s', { skip: linux ? false : 'per-thread nice values are a Linux feature' }, async () => {
    const mainBefore = getPriority(process.pid);
    const probe = new URL('../helpers/background-thread-probe.ts', import.meta.url).href;
    const worker = new Worker(threadEntry(probe, 'background-thread-probe'));
    try {
      const [report] = (await once(worker, 'message')) as [{ nice: number | null; tid: number }];
      assert.equal(report.nice, BACKGROUND_NICE);
      assert.notEqual(report.tid, process.pid, 'the probe runs in a thread of its own');
      assert.equal(getPriority(report.tid), BACKGROUND_NICE, 'the kernel holds the thread at the lower priority');
      assert.equal(getPriority(process.pid), mainBefore, 'the main thread keeps its priority');
    } finally {
      await worker.terminate();
    }
  });
});
