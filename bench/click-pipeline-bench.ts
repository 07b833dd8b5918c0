/**
 * CPU cost of the click pipeline's pure steps, one core, no I/O:
 * - the redirect path's id (UUIDv7) and event (clickFrom), beside node's randomUUID;
 * - the queue codec (encode and decode of 500-event batches);
 * - the worker's enrich(), on a realistic mix (a few hundred distinct agent strings, so
 *   the agent LRU is warm, as it is in production) and on the worst case (every agent string
 *   new, so every click pays a full parse).
 *
 *   npx tsx bench/click-pipeline-bench.ts
 *   BENCH_ROUNDS=5 npx tsx bench/click-pipeline-bench.ts
 */
import { randomUUID } from 'node:crypto';
import { geoipCountries } from '../src/analytics/country.js';
import { enrich, type EnrichContext } from '../src/analytics/enrich.js';
import { createUserAgentClassifier } from '../src/analytics/user-agent.js';
import type { AttributedClickEvent } from '../src/clicks/click-event.js';
import { decodeClickBatch, encodeClickBatch } from '../src/clicks/click-event-codec.js';
import { clickFrom } from '../src/http/click-capture.js';
import { uuidv7 } from '../src/shared/uuid-v7.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

const AGENT_TEMPLATES = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_{v} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Linux; Android 14; Pixel {v}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{v} Safari/605.1.15',
  'Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0',
  'Mozilla/5.0 (iPad; CPU OS 16_{v} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/{v}.0.2478.51',
  'Mozilla/5.0 (compatible; Googlebot/2.{v}; +http://www.google.com/bot.html)',
  'Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/1{v}.0 Safari/537.36',
  'curl/8.{v}.0',
];
const REFERRERS = [null, null, 'https://www.google.com/', 'https://t.co/abc', 'https://news.ycombinator.com/item?id=1', 'android-app://com.slack/'];

function agent(i: number): string {
  const template = AGENT_TEMPLATES[i % AGENT_TEMPLATES.length] ?? '';
  return template.replaceAll('{v}', String(100 + Math.floor(i / AGENT_TEMPLATES.length)));
}

/** Public-looking addresses, one in ten IPv6; geo data decides which have a country. */
function address(i: number): string {
  if (i % 10 === 9) return `2a0${i % 10}:${((i * 7919) % 65536).toString(16)}::${(i % 255).toString(16)}`;
  return `${1 + ((i * 37) % 222)}.${(i * 101) % 256}.${(i * 13) % 256}.${1 + (i % 254)}`;
}

function events(count: number, distinctAgents: number): AttributedClickEvent[] {
  const start = Date.parse('2025-03-01T10:00:00.000Z');
  return Array.from({ length: count }, (_, i) => ({
    id: uuidv7(),
    linkId: String((i % 1000) + 1),
    code: `c${i % 1000}`,
    at: new Date(start + i),
    method: i % 50 === 0 ? 'HEAD' : 'GET',
    referrer: REFERRERS[i % REFERRERS.length] ?? null,
    userAgent: agent(i % distinctAgents),
    ip: address(i),
  }));
}

function time(label: string, operations: number, unit: 'ns/op' | 'per s', work: () => void): void {
  const results: number[] = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    const started = process.hrtime.bigint();
    work();
    const ns = Number(process.hrtime.bigint() - started);
    results.push(unit === 'ns/op' ? ns / operations : (operations * 1e9) / ns);
  }
  const sorted = [...results].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
  const shown = results.map((value) => Math.round(value).toLocaleString('en')).join(', ');
  console.log(`${label.padEnd(52)} median ${Math.round(median).toLocaleString('en').padStart(9)} ${unit}   (rounds: ${shown})`);
}

let sink = 0;

const IDS = 1_000_000;
time('uuidv7()', IDS, 'ns/op', () => {
  for (let i = 0; i < IDS; i += 1) sink += uuidv7().length;
});
time('crypto.randomUUID() (v4, for comparison)', IDS, 'ns/op', () => {
  for (let i = 0; i < IDS; i += 1) sink += randomUUID().length;
});
const headers = { 'user-agent': agent(0), referer: 'https://www.google.com/' };
time('clickFrom() (the whole event on the redirect path)', IDS, 'ns/op', () => {
  for (let i = 0; i < IDS; i += 1) sink += clickFrom({ id: '42', code: 'abc123' }, 'GET', headers, '203.0.113.7').code.length;
});

const batch = events(500, 300);
const body = encodeClickBatch(batch);
console.log(`\nbatch of 500 events: ${body.length.toLocaleString('en')} bytes of JSON (${Math.round(body.length / 500)} per event)`);
time('encodeClickBatch, 500 events (events/s)', 500 * 200, 'per s', () => {
  for (let i = 0; i < 200; i += 1) sink += encodeClickBatch(batch).length;
});
time('decodeClickBatch, 500 events (events/s)', 500 * 200, 'per s', () => {
  for (let i = 0; i < 200; i += 1) sink += decodeClickBatch(body).ok ? 1 : 0;
});

geoipCountries.preload();
const salt = Buffer.alloc(32, 1);
const COUNT = 200_000;
const realistic = events(COUNT, 300);
const warmContext: EnrichContext = { saltOf: () => salt, agents: createUserAgentClassifier() };
for (const event of realistic.slice(0, 1000)) enrich(event, warmContext);
console.log('');
time('enrich(), 300 distinct agents, warm LRU (events/s)', COUNT, 'per s', () => {
  for (const event of realistic) sink += enrich(event, warmContext).device.length;
});
const allNew = events(COUNT, COUNT);
time('enrich(), every agent new: parse each (events/s)', COUNT, 'per s', () => {
  // A fresh classifier per round so every round misses.
  const context: EnrichContext = { saltOf: () => salt, agents: createUserAgentClassifier() };
  for (const event of allNew) sink += enrich(event, context).device.length;
});
const noUa = realistic.map((event) => ({ ...event, userAgent: null }));
time('enrich() without agents: geo + referrer + HMAC (events/s)', COUNT, 'per s', () => {
  for (const event of noUa) sink += enrich(event, warmContext).device.length;
});

if (sink === 0) console.log('(nothing computed)');
