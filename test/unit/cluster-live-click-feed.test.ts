import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WorkerChannel } from '../../src/cache/cluster-invalidation.js';
import { ClusterLiveClickFeed, readLiveMessage, relayLiveClicks } from '../../src/live/cluster-live-click-feed.js';
import type { LiveClick } from '../../src/live/live-click-feed.js';
import { linkIdOf, makeClick } from '../helpers/enriched-click-fixture.js';

/** Worker channels joined by a primary that relays what this feed sends, synchronously. */
function cluster(count: number): { channels: WorkerChannel[]; sent: unknown[] } {
  const listeners = Array.from({ length: count }, () => new Set<(message: unknown) => void>());
  const sent: unknown[] = [];
  const targets = listeners.map((set) => ({
    isConnected: () => true,
    send: (message: unknown, callback: (error: Error | null) => void) => {
      for (const listener of set) listener(structuredClone(message));
      callback(null);
    },
  }));
  const channels = listeners.map<WorkerChannel>((set) => ({
    connected: true,
    send: (message, callback) => {
      sent.push(message);
      relayLiveClicks(message, targets);
      callback(null);
    },
    on: (_event, listener) => void set.add(listener),
    off: (_event, listener) => void set.delete(listener),
  }));
  return { channels, sent };
}

test('a click stored by one process reaches the streams of another, and only for watched links', async () => {
  let now = 1_000_000;
  const { channels, sent } = cluster(2);
  const [a, b] = channels.map((channel, i) => new ClusterLiveClickFeed(channel, { pid: 100 + i, now: () => now, watchTtlMs: 30_000 }));
  assert.ok(a !== undefined && b !== undefined);
  const seen: LiveClick[] = [];
  const stop = a.subscribe(linkIdOf('watched'), (click) => seen.push(click));

  b.publish([makeClick({ code: 'watched', at: new Date(now) }), makeClick({ code: 'nobody', at: new Date(now) })]);
  assert.deepEqual(seen.map((click) => click.code), ['watched']);
  // The unwatched click was not even sent.
  assert.equal(sent.filter((message) => (message as { kind: string }).kind === 'shunt:live-clicks').length, 1);
  assert.equal((sent.at(-1) as { clicks: LiveClick[] }).clicks.length, 1);

  // A process's own clicks reach its own streams without a round trip.
  a.publish([makeClick({ code: 'watched', at: new Date(now) })]);
  assert.equal(seen.length, 2);

  // Once the watch is not renewed, the others stop sending.
  stop();
  now += 31_000;
  const before = sent.length;
  b.publish([makeClick({ code: 'watched', at: new Date(now) })]);
  assert.equal(sent.length, before);
  await Promise.all([a.close(), b.close()]);
});

test('malformed messages are not relayed or read', () => {
  const click = { id: 'x', linkId: '1', code: 'c', at: '2025-01-01T00:00:00.000Z', method: 'GET', bot: false, country: null, referrerHost: null, browser: null, os: null, device: 'desktop' };
  assert.notEqual(readLiveMessage({ kind: 'shunt:live-clicks', pid: 1, clicks: [click] }), null);
  for (const bad of [
    null,
    'text',
    { kind: 'shunt:live-clicks', clicks: [click] },
    { kind: 'shunt:live-clicks', pid: 1, clicks: [{ ...click, device: 'toaster' }] },
    { kind: 'shunt:live-clicks', pid: 1, clicks: [{ ...click, method: 'POST' }] },
    { kind: 'shunt:live-clicks', pid: 1, clicks: [{ ...click, linkId: undefined }] },
    { kind: 'shunt:live-watch', pid: 1, codes: [1] },
    { kind: 'shunt:invalidate', pid: 1, codes: ['c'] },
  ]) {
    assert.equal(readLiveMessage(bad), null, JSON.stringify(bad));
    assert.equal(relayLiveClicks(bad, []), false);
  }
});

test('streams follow a link, not its code: a later link with the same code is another feed', async () => {
  const { channels } = cluster(2);
  const [a, b] = channels.map((channel, i) => new ClusterLiveClickFeed(channel, { pid: 200 + i }));
  assert.ok(a !== undefined && b !== undefined);
  const seen: LiveClick[] = [];
  a.subscribe('41', (click) => seen.push(click));
  b.publish([makeClick({ code: 'promo', linkId: '42', at: new Date() }), makeClick({ code: 'promo', linkId: '41', at: new Date() })]);
  assert.deepEqual(seen.map((click) => click.linkId), ['41']);
  await Promise.all([a.close(), b.close()]);
});
