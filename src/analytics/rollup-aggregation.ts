/**
 * A batch of clicks folded in memory into the rows the writer upserts: one row per key, so
 * each table gets one multi-row statement per batch however many clicks share a key. Rows
 * come out in one fixed order of their keys, the same in every writer, so two transactions
 * that touch the same rows lock them in the same order and cannot deadlock each other.
 *
 * Buckets are computed from epoch milliseconds: UTC by construction.
 */
import { hash } from 'node:crypto';
import type { DeviceType, EnrichedClick } from './enriched-click.js';

export type StatsInterval = 'minute' | 'hour' | 'day';

export const INTERVAL_MS: Readonly<Record<StatsInterval, number>> = {
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
};

export function bucketStart(at: number, interval: StatsInterval): number {
  const size = INTERVAL_MS[interval];
  return Math.floor(at / size) * size;
}

/** How an unknown value (no referrer, no country, no browser) is stored in a key column. */
export const UNKNOWN_VALUE = '';

export interface CounterRow {
  /** The link (links.id): analytics belong to a link, never to a code a later link may take. */
  linkId: string;
  bucket: number;
  human: number;
  bot: number;
}

export interface DayRow extends CounterRow {
  visitors: number;
  humanVisitors: number;
}

export interface BreakdownRow extends CounterRow {
  dimension: 'referrer' | 'country';
  value: string;
}

export interface AgentRow extends CounterRow {
  browser: string;
  os: string;
  device: DeviceType;
}

export interface VisitorRow {
  linkId: string;
  day: number;
  /** The set member: a UUID-shaped hash of (link id, visitor key). */
  key: string;
  /** At least one human click of this visitor in the batch. */
  human: boolean;
}

export interface BatchRollups {
  minute: CounterRow[];
  hour: CounterRow[];
  day: DayRow[];
  breakdown: BreakdownRow[];
  agents: AgentRow[];
  visitors: VisitorRow[];
}

// PostgreSQL text cannot contain NUL, so no two different keys join into one string.
const SEP = '\u0000';

/**
 * The visitor set's member for a visitor of a link: a visitor key is only unique per link
 * as a pair with the link, and 16 bytes index better than the pair. A link id is digits, so
 * ':' cannot occur in it. link-identity-move.ts computes the same hash in SQL.
 */
export function visitorSetKey(linkId: string, visitor: string): string {
  const hex = hash('sha256', `${linkId}:${visitor}`, 'hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

export function bucketKey(linkId: string, bucket: number): string {
  return `${linkId}${SEP}${bucket}`;
}

interface Counts {
  human: number;
  bot: number;
}

interface AgentCounts extends Counts {
  browser: string;
  os: string;
  device: DeviceType;
}

interface DayFold extends Counts {
  referrer: Map<string, Counts>;
  country: Map<string, Counts>;
  agents: Map<string, AgentCounts>;
  /** Visitor key to "clicked as a human". */
  visitors: Map<string, boolean>;
}

/** Everything of one link in the batch. Nested maps rather than joined string keys: this runs for every click. */
interface LinkFold {
  minute: Map<number, Counts>;
  hour: Map<number, Counts>;
  day: Map<number, DayFold>;
}

function add(counts: Counts, bot: boolean): void {
  if (bot) counts.bot += 1;
  else counts.human += 1;
}

function addTo<K>(map: Map<K, Counts>, key: K, bot: boolean): void {
  let counts = map.get(key);
  if (counts === undefined) {
    counts = { human: 0, bot: 0 };
    map.set(key, counts);
  }
  add(counts, bot);
}

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const byNumber = (a: number, b: number): number => a - b;
const byLinkId = (a: string, b: string): number => a.length - b.length || byText(a, b);

function foldDay(link: LinkFold, bucket: number): DayFold {
  let day = link.day.get(bucket);
  if (day === undefined) {
    day = { human: 0, bot: 0, referrer: new Map(), country: new Map(), agents: new Map(), visitors: new Map() };
    link.day.set(bucket, day);
  }
  return day;
}

/**
 * Folds clicks that are all new to the store. Day rows start with no visitors: which
 * visitors are new is only known after the visitor set has been written (`countVisitors`).
 * Counter rows are ordered by (link id, bucket, ...the rest of the key), visitors by their
 * primary key (day, key).
 */
export function aggregateBatch(clicks: readonly EnrichedClick[]): BatchRollups {
  const links = new Map<string, LinkFold>();
  for (const click of clicks) {
    const { linkId, bot } = click;
    let link = links.get(linkId);
    if (link === undefined) {
      link = { minute: new Map(), hour: new Map(), day: new Map() };
      links.set(linkId, link);
    }
    const at = click.at.getTime();
    addTo(link.minute, bucketStart(at, 'minute'), bot);
    addTo(link.hour, bucketStart(at, 'hour'), bot);
    const day = foldDay(link, bucketStart(at, 'day'));
    add(day, bot);
    addTo(day.referrer, click.referrerHost ?? UNKNOWN_VALUE, bot);
    addTo(day.country, click.country ?? UNKNOWN_VALUE, bot);
    const browser = click.browser ?? UNKNOWN_VALUE;
    const os = click.os ?? UNKNOWN_VALUE;
    const agentKey = `${browser}${SEP}${os}${SEP}${click.device}`;
    let agent = day.agents.get(agentKey);
    if (agent === undefined) {
      agent = { browser, os, device: click.device, human: 0, bot: 0 };
      day.agents.set(agentKey, agent);
    }
    add(agent, bot);
    if (click.visitor !== null) day.visitors.set(click.visitor, day.visitors.get(click.visitor) === true || !bot);
  }

  const rollups: BatchRollups = { minute: [], hour: [], day: [], breakdown: [], agents: [], visitors: [] };
  // Ordered as the primary keys order them (bigint), so writers lock rows in one order.
  for (const linkId of [...links.keys()].sort(byLinkId)) {
    const link = links.get(linkId) as LinkFold;
    for (const bucket of [...link.minute.keys()].sort(byNumber)) rollups.minute.push({ linkId, bucket, ...(link.minute.get(bucket) as Counts) });
    for (const bucket of [...link.hour.keys()].sort(byNumber)) rollups.hour.push({ linkId, bucket, ...(link.hour.get(bucket) as Counts) });
    for (const bucket of [...link.day.keys()].sort(byNumber)) {
      const day = link.day.get(bucket) as DayFold;
      rollups.day.push({ linkId, bucket, human: day.human, bot: day.bot, visitors: 0, humanVisitors: 0 });
      for (const dimension of ['country', 'referrer'] as const) {
        const values = day[dimension];
        for (const value of [...values.keys()].sort(byText)) rollups.breakdown.push({ linkId, bucket, dimension, value, ...(values.get(value) as Counts) });
      }
      for (const key of [...day.agents.keys()].sort(byText)) rollups.agents.push({ linkId, bucket, ...(day.agents.get(key) as AgentCounts) });
      for (const [visitor, human] of day.visitors) rollups.visitors.push({ linkId, day: bucket, key: visitorSetKey(linkId, visitor), human });
    }
  }
  rollups.visitors.sort((a, b) => a.day - b.day || byText(a.key, b.key));
  return rollups;
}

/**
 * Adds to the day rows the visitors the store had not seen that day (`fresh`, with whether
 * they clicked as a human) and those first seen as bots and now seen as humans (`nowHuman`).
 */
export function countVisitors(
  day: readonly DayRow[],
  fresh: readonly { linkId: string; day: number; human: boolean }[],
  nowHuman: readonly { linkId: string; day: number }[],
): void {
  const rows = new Map(day.map((row) => [bucketKey(row.linkId, row.bucket), row]));
  const rowOf = (linkId: string, bucket: number): DayRow => {
    const row = rows.get(bucketKey(linkId, bucket));
    // Every visitor comes from a click of the batch, whose day row exists.
    if (row === undefined) throw new Error(`no day row for link ${linkId} at ${new Date(bucket).toISOString()}`);
    return row;
  };
  for (const visitor of fresh) {
    const row = rowOf(visitor.linkId, visitor.day);
    row.visitors += 1;
    if (visitor.human) row.humanVisitors += 1;
  }
  for (const visitor of nowHuman) rowOf(visitor.linkId, visitor.day).humanVisitors += 1;
}
