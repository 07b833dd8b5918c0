/**
 * The embedded default after a stop that left clicks in the disk spool (the store thread
 * had not answered them, or the store failed them): the next start replays the spool into
 * the store at once, every event counted once. The replay starts in the same tick as the
 * store thread's click host, so it also checks that no batch posted while that host loads
 * goes unanswered.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { encodeProducedClickBatch } from '../../src/clicks/click-event-codec.js';
import { identified } from '../../src/clicks/click-event.js';
import { ClickSpool } from '../../src/pipeline/click-spool.js';
import { eventually } from '../helpers/amqp.js';
import { startTestApp } from '../helpers/test-app.js';

// A browser's: rollups count people, not bots.
const BROWSER = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';

describe('the embedded store with clicks left in the spool', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shunt-embedded-spool-'));
  const env = { DATA_DIR: join(dir, 'data'), CLICKS_SPOOL_DIR: join(dir, 'spool') };
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('the next start stores them all, once', { timeout: 120_000 }, async () => {
    const first = await startTestApp('embedded', { env });
    let linkId: string;
    try {
      const created = await first.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/spooled', alias: 'spooled' } });
      assert.equal(created.statusCode, 201, created.body);
      linkId = created.json<{ id: string }>().id;
    } finally {
      await first.close();
    }

    // What a run that stopped with its batches unanswered leaves behind, one frame per batch.
    const spool = ClickSpool.open({ dir: env.CLICKS_SPOOL_DIR, maxBytes: 1 << 26, onProblem: (problem) => assert.fail(problem.kind) });
    const at = new Date();
    for (let batch = 0; batch < 6; batch += 1) {
      const events = Array.from({ length: 10 }, () => identified({ linkId, code: 'spooled', at, method: 'GET', referrer: null, userAgent: BROWSER, ip: '203.0.113.7' }));
      assert.ok(spool.append(Buffer.from(encodeProducedClickBatch(events)), events.length));
    }
    spool.close();

    const second = await startTestApp('embedded', { env });
    try {
      const count = async (): Promise<number> => (await second.runtime.db.query<{ n: number }>('SELECT count(*)::int AS n FROM click_events')).rows[0]?.n ?? 0;
      await eventually('60 spooled clicks stored', async () => (await count()) >= 60, 60_000);
      assert.equal(await count(), 60);
      await eventually('nothing left in flight or in the spool', () => second.runtime.deps.clicks.buffered === 0, 10_000);
      const stats = await second.request({ url: '/api/v1/links/spooled/stats' });
      assert.equal(stats.statusCode, 200, stats.body);
      assert.equal(stats.json<{ totals: { clicks: number } }>().totals.clicks, 60);
    } finally {
      await second.close();
    }
  });
});
