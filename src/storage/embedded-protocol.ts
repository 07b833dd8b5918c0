/**
 * The messages between the HTTP thread and the embedded store's thread (ADR 0010), and how
 * values cross: structured clone keeps Dates, strings (pg's int8/numeric), JSON values,
 * arrays and nulls as they are, but turns a Buffer into a plain Uint8Array and an Error
 * into a bare one, so those two are mended on arrival.
 */
import type pg from 'pg';

/** Requests from the HTTP thread; `id` pairs each with its reply. */
export type StoreRequest =
  | { t: 'query'; id: number; text: string; params: readonly unknown[] | undefined; tx: number | null }
  | { t: 'begin'; id: number; tx: number }
  | { t: 'end'; id: number; tx: number; commit: boolean }
  | { t: 'close'; id: number };

export type StoreReply = { t: 'reply'; id: number; ok: true; result?: WireResult | WireResult[] } | { t: 'reply'; id: number; ok: false; error: WireError };

export interface WireResult {
  command: string;
  rowCount: number | null;
  oid: number;
  fields: pg.FieldDef[];
  rows: Record<string, unknown>[];
}

export interface WireError {
  name: string;
  message: string;
  stack: string | undefined;
  /** SQLSTATE `code`, `constraint`, `detail`, … : what callers branch on. */
  props: Record<string, unknown>;
}

/** A text of several statements gives one result per statement, as pg does. */
export function toWireResult(result: pg.QueryResult | pg.QueryResult[]): WireResult | WireResult[] {
  if (Array.isArray(result)) return result.map((each) => toWireResult(each) as WireResult);
  return { command: result.command, rowCount: result.rowCount, oid: result.oid, fields: result.fields, rows: result.rows as Record<string, unknown>[] };
}

export function fromWireResult<R extends Record<string, unknown>>(wire: WireResult | WireResult[]): pg.QueryResult<R> {
  if (Array.isArray(wire)) {
    for (const each of wire) fromWireResult(each);
    return wire as unknown as pg.QueryResult<R>;
  }
  for (const row of wire.rows) for (const key of Object.keys(row)) row[key] = mendBuffers(row[key]);
  return wire as unknown as pg.QueryResult<R>;
}

/** A bytea arrives as a Uint8Array; callers (and pg's own results) expect a Buffer. */
function mendBuffers(value: unknown): unknown {
  if (value instanceof Uint8Array && !Buffer.isBuffer(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (Array.isArray(value)) return value.map(mendBuffers);
  return value;
}

export function toWireError(error: unknown): WireError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error), stack: undefined, props: {} };
  const props: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(error)) {
    if (value === undefined || typeof value === 'function' || key === 'name' || key === 'message' || key === 'stack') continue;
    if (typeof value === 'object' && value !== null) continue;
    props[key] = value;
  }
  return { name: error.name, message: error.message, stack: error.stack, props };
}

export function fromWireError(wire: WireError): Error {
  const error = new Error(wire.message);
  error.name = wire.name;
  if (wire.stack !== undefined) error.stack = wire.stack;
  return Object.assign(error, wire.props);
}

/** Clicks from the HTTP thread to the store thread, and what became of them. */
/** `announce`: send the stored clicks back (for the live feed); else only counts and lag. */
export type ClickRequest = { t: 'clicks'; batch: number; payload: Uint8Array; events: number; announce: boolean };

export type ClickReply =
  | {
      t: 'clicks-done';
      batch: number;
      inserted: number;
      duplicates: number;
      /** Events the store refused as data (isolated one by one), never stored. */
      refused: number;
      /** Stored clicks to announce, as the enriched clicks the live feed takes. */
      stored: unknown[];
      lagSeconds: number[];
    }
  | { t: 'clicks-failed'; batch: number; error: WireError };

/** What the store thread is started with. */
export interface StoreThreadData {
  dataDir: string;
  /** Present when the thread also enriches and stores clicks. */
  clicks: { storeRawIp: boolean } | null;
}
