/**
 * Import progress on stderr: a bar redrawn in place with the rate and the time left on a
 * terminal; a plain line every few seconds otherwise (logs, CI).
 */
export interface ProgressState {
  bytesRead: number;
  totalBytes: number;
  rows: number;
  created: number;
}

const BAR_WIDTH = 24;
const PLAIN_EVERY_MS = 5000;
const REDRAW_EVERY_MS = 200;

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  const hours = Math.floor(s / 3600);
  const rest = `${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  return hours > 0 ? `${hours}:${rest}` : rest;
}

export function progressLine(state: ProgressState, elapsedMs: number, tty: boolean): string {
  const fraction = state.totalBytes === 0 ? 1 : Math.min(1, state.bytesRead / state.totalBytes);
  const seconds = elapsedMs / 1000;
  const rate = seconds > 0 ? state.rows / seconds : 0;
  const eta = fraction > 0 && seconds > 0 ? (seconds / fraction) * (1 - fraction) : Infinity;
  const figures = `${(fraction * 100).toFixed(1)}% ${state.rows.toLocaleString('en-US')} rows, ${state.created.toLocaleString('en-US')} links, ${Math.round(rate).toLocaleString('en-US')} rows/s, ETA ${duration(eta)}`;
  if (!tty) return `import: ${figures}`;
  const filled = Math.round(fraction * BAR_WIDTH);
  return `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${figures}`;
}

export class Progress {
  readonly #started = Date.now();
  #last = 0;
  #shownRows = -1;

  constructor(
    private readonly write: (text: string) => void,
    private readonly tty: boolean,
  ) {}

  update(state: ProgressState, force = false): void {
    const now = Date.now();
    if (!force && now - this.#last < (this.tty ? REDRAW_EVERY_MS : PLAIN_EVERY_MS)) return;
    this.#last = now;
    this.#shownRows = state.rows;
    const line = progressLine(state, now - this.#started, this.tty);
    this.write(this.tty ? `\r\x1b[2K${line}` : `${line}\n`);
  }

  done(state: ProgressState): void {
    if (this.tty || state.rows !== this.#shownRows) this.update(state, true);
    if (this.tty) this.write('\n');
  }
}
