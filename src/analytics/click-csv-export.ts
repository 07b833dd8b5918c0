/**
 * A link's raw clicks as a CSV file, and whether a request gets that file at once or as a
 * job: the export route and the job runner both write the file through clickCsv, so a file
 * served at once and one written by a worker are the same bytes.
 */
import type { Queryable } from '../storage/database.js';
import { estimateClicks } from './click-count-estimate.js';
import { csvHeader, csvRows } from './click-csv.js';
import { exportClicks, type ExportOptions } from './click-export.js';

/** A piece of the file and the clicks it holds (the header holds none). */
export interface CsvPart {
  text: string;
  rows: number;
}

/** The header, then one part per page of clicks. */
export async function* clickCsv(db: Queryable, linkId: string, range: ExportOptions, includeIp: boolean): AsyncGenerator<CsvPart> {
  yield { text: csvHeader(includeIp), rows: 0 };
  for await (const page of exportClicks(db, linkId, range)) yield { text: csvRows(page, includeIp), rows: page.length };
}

export interface ExportLimits {
  /** Above this many clicks (an upper bound from the day rollups) the export is a job. */
  syncMaxRows: number;
  /** Export the raw IP column (only where the operator keeps raw IPs). */
  includeIp: boolean;
}

/** An export answered at once (its file, read page by page as it is consumed) or left to a job. */
export type ExportPlan = { mode: 'stream'; file: AsyncGenerator<string> } | { mode: 'queue' };

async function* text(parts: AsyncIterable<CsvPart>): AsyncGenerator<string> {
  for await (const part of parts) yield part.text;
}

export async function planExport(db: Queryable, linkId: string, from: Date, to: Date, limits: ExportLimits): Promise<ExportPlan> {
  if ((await estimateClicks(db, linkId, from, to)) > limits.syncMaxRows) return { mode: 'queue' };
  return { mode: 'stream', file: text(clickCsv(db, linkId, { from, to }, limits.includeIp)) };
}
