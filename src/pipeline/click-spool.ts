/**
 * A bounded, append-only file on local disk for click batches the broker did not take
 * (down, blocked, nacked, too slow). It outlives the process: what a crash or a SIGTERM
 * during an outage leaves behind is replayed by the next start.
 *
 * Layout, in `dir`, per slot `n` (one per process, see below):
 *   clicks-n.spool   frames, one per batch, appended and never rewritten in place;
 *   clicks-n.offset  `{"offset":N}`: where replay resumes (written to a temporary file, then
 *                    renamed, so it is always whole);
 *   clicks-n.lock    the pid of the process that holds the slot.
 *
 * Frame: magic (4) | payload length (u32 BE) | events (u32 BE) | CRC32 of the 8 bytes before
 * it and the payload (u32 BE) | payload. The magic starts with 0xF5, a byte UTF-8 never
 * uses, so it cannot appear inside a JSON payload, and the reader can find the next frame
 * after a damaged one. A frame cut short by a crash (a torn tail) or damaged on disk fails
 * its length or CRC check: it is skipped and counted, never fatal.
 *
 * Durability is the page cache plus an fsync every `syncIntervalMs` and on close: a power
 * cut can lose the last second, a process crash loses nothing that `append` accepted.
 * Replay marks frames done as their publish confirms, so a restart resumes rather than
 * starting over (a frame may still go out twice; the consumer is idempotent by event id).
 * Once everything is replayed the file is truncated, so disk use returns to zero.
 *
 * Slots: cluster workers share one data directory, and two writers in one file would
 * interleave frames. Each spool takes the lowest free slot (a lock file naming a live pid);
 * a restarted process takes its predecessor's slot, and with it that slot's backlog.
 */
import {
  closeSync,
  fstatSync,
  fsync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import * as zlib from 'node:zlib';

const MAGIC = Buffer.from([0xf5, 0x53, 0x43, 0x01]);
const HEADER_BYTES = 16;
/** A length above this is damage, not a batch (a batch is at most a few MB). */
const MAX_PAYLOAD_BYTES = 64 * 1024 * 1024;
const SEARCH_CHUNK_BYTES = 64 * 1024;
const MAX_SLOTS = 1024;

export interface ClickSpoolOptions {
  dir: string;
  /** Upper bound on the file; an append that would pass it is refused and its events counted as dropped. */
  maxBytes: number;
  /** How often appended data is fsynced (only when something was appended). */
  syncIntervalMs?: number;
  /** Told of every problem (for logs); the spool itself carries on. */
  onProblem?: (problem: ClickSpoolProblem) => void;
}

export type ClickSpoolProblem =
  | { kind: 'full'; events: number; bytes: number }
  | { kind: 'write_failed'; events: number; error: unknown }
  | { kind: 'corrupt'; at: number; skippedBytes: number }
  | { kind: 'torn_tail'; at: number; bytes: number }
  | { kind: 'io_failed'; operation: string; error: unknown };

export interface ClickSpoolStats {
  /** Size of the file on disk (replayed frames included until it is reset). */
  bytes: number;
  /** Bytes of frames not yet replayed. */
  pendingBytes: number;
  /** Frames (batches) not yet replayed, and the events in them. */
  batches: number;
  events: number;
  /** Events refused because the spool was full or the disk failed a write. */
  dropped: number;
  /** Damaged regions skipped (torn tails included). */
  corrupt: number;
}

/** Hands one batch to the broker; resolves once it is confirmed, rejects if it was not. */
export type SpoolPublish = (payload: Buffer, events: number) => Promise<void>;

export interface ReplayOptions {
  /** Frames published before the first is confirmed; confirmed frames are marked done in order. */
  window?: number;
  /** Asked before each frame; false stops the replay after the frames already out. */
  shouldContinue?: () => boolean;
}

export interface ReplayResult {
  batches: number;
  events: number;
  /** True when the spool was emptied. */
  complete: boolean;
  /** Why the replay stopped early, when a publish failed. */
  error?: unknown;
}

interface Frame {
  payload: Buffer;
  events: number;
  end: number;
}

type FrameRead = { kind: 'frame'; frame: Frame } | { kind: 'damaged' } | { kind: 'end' };

// node:zlib has crc32 from Node 20.15; package.json allows 20.6, so keep a table fallback.
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
let crcTable: Uint32Array | null = null;

function crc32(data: Uint8Array, value = 0): number {
  if (nativeCrc32 !== undefined) return nativeCrc32(data, value);
  if (crcTable === null) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n += 1) {
      let c = n;
      for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = ~value >>> 0;
  for (const byte of data) crc = (crcTable[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
  return ~crc >>> 0;
}

/** Frame checksums cover the length and events fields too, so a flipped length is caught. */
function frameCrc(header: Buffer, payload: Uint8Array): number {
  return crc32(payload, crc32(header.subarray(4, 12)));
}

/** One frame's bytes, exported for tests that build damaged spools. */
export function encodeSpoolFrame(payload: Uint8Array, events: number): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  MAGIC.copy(frame, 0);
  frame.writeUInt32BE(payload.length, 4);
  frame.writeUInt32BE(events, 8);
  frame.writeUInt32BE(frameCrc(frame, payload), 12);
  frame.set(payload, HEADER_BYTES);
  return frame;
}

/** Locks held by this process: a lock file naming our own pid may be a predecessor's (containers reuse pids). */
const heldLocks = new Set<string>();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function tryLock(path: string): boolean {
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      writeFileSync(path, String(process.pid), { flag: 'wx' });
      heldLocks.add(path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let pid = NaN;
    try {
      pid = Number(readFileSync(path, 'utf8').trim());
    } catch {
      // Removed meanwhile: try again.
    }
    const ours = pid === process.pid;
    if (Number.isInteger(pid) && pid > 0 && (ours ? heldLocks.has(path) : pidAlive(pid))) return false;
    try {
      unlinkSync(path);
    } catch {
      // Someone else cleared it first; the next attempt decides.
    }
  }
  return false;
}

export class ClickSpool {
  /** Where frames are appended; `O_APPEND`, so each write lands at the end. */
  private readonly writeFd: number;
  private readonly readFd: number;
  private size: number;
  private readOffset: number;
  private pendingBatches = 0;
  private pendingEvents = 0;
  private dropped = 0;
  private corrupt = 0;
  private dirty = false;
  private syncing = false;
  private closed = false;
  private replaying: Promise<ReplayResult> | null = null;
  private readonly timer: NodeJS.Timeout;

  private constructor(
    private readonly options: ClickSpoolOptions,
    readonly path: string,
    private readonly offsetPath: string,
    private readonly lockPath: string,
  ) {
    try {
      this.writeFd = openSync(path, 'a');
      this.readFd = openSync(path, 'r');
    } catch (error) {
      this.releaseLock();
      throw error;
    }
    this.size = fstatSync(this.writeFd).size;
    this.readOffset = this.loadOffset();
    this.scan();
    this.timer = setInterval(() => this.syncSoon(), options.syncIntervalMs ?? 1000);
    this.timer.unref();
  }

  /**
   * Opens the lowest free slot in `dir` (creating the directory) and picks up what a
   * previous process left in it. Throws only when the directory cannot be used at all.
   */
  static open(options: ClickSpoolOptions): ClickSpool {
    mkdirSync(options.dir, { recursive: true });
    for (let slot = 0; slot < MAX_SLOTS; slot += 1) {
      const base = join(options.dir, `clicks-${slot}`);
      if (tryLock(`${base}.lock`)) return new ClickSpool(options, `${base}.spool`, `${base}.offset`, `${base}.lock`);
    }
    throw new Error(`no free click spool slot in ${options.dir}`);
  }

  get stats(): ClickSpoolStats {
    return {
      bytes: this.size,
      pendingBytes: this.size - this.readOffset,
      batches: this.pendingBatches,
      events: this.pendingEvents,
      dropped: this.dropped,
      corrupt: this.corrupt,
    };
  }

  /**
   * Adds one batch. Never throws: false means it was not kept (spool full, disk error or
   * closed), and its events are counted as dropped.
   */
  append(payload: Uint8Array, events: number): boolean {
    const frameBytes = HEADER_BYTES + payload.length;
    if (this.closed) {
      this.dropped += events;
      return false;
    }
    if (this.size + frameBytes > this.options.maxBytes || payload.length > MAX_PAYLOAD_BYTES) {
      this.dropped += events;
      this.options.onProblem?.({ kind: 'full', events, bytes: this.size });
      return false;
    }
    const frame = encodeSpoolFrame(payload, events);
    try {
      let written = 0;
      while (written < frame.length) written += writeSync(this.writeFd, frame, written, frame.length - written);
    } catch (error) {
      // A partial frame (ENOSPC halfway) is cut off, so the next append starts clean.
      try {
        ftruncateSync(this.writeFd, this.size);
      } catch {
        // The reader skips it by its CRC.
      }
      this.dropped += events;
      this.options.onProblem?.({ kind: 'write_failed', events, error });
      return false;
    }
    this.size += frameBytes;
    this.pendingBatches += 1;
    this.pendingEvents += events;
    this.dirty = true;
    return true;
  }

  /**
   * Publishes pending frames in order, up to `window` at a time, marking each done once it
   * and every frame before it are confirmed. Stops at the first failure (that frame and
   * those after it stay). One replay at a time: a call during a replay gets that replay.
   */
  replay(publish: SpoolPublish, options: ReplayOptions = {}): Promise<ReplayResult> {
    this.replaying ??= this.runReplay(publish, Math.max(1, options.window ?? 4), options.shouldContinue ?? (() => true)).finally(() => {
      this.replaying = null;
    });
    return this.replaying;
  }

  /** The replay under way, if any (so a closer can wait for it). */
  get replayInProgress(): Promise<ReplayResult> | null {
    return this.replaying;
  }

  /** Flushes to disk now. */
  sync(): void {
    if (this.closed) return;
    try {
      fsyncSync(this.writeFd);
      this.dirty = false;
    } catch (error) {
      this.options.onProblem?.({ kind: 'io_failed', operation: 'fsync', error });
    }
  }

  /** Fsyncs and releases the slot. Frames out for replay and not yet confirmed stay pending. */
  close(): void {
    if (this.closed) return;
    this.sync();
    this.closed = true;
    clearInterval(this.timer);
    this.saveOffset(true);
    for (const fd of [this.writeFd, this.readFd]) {
      try {
        closeSync(fd);
      } catch {
        // Already gone; nothing more to save.
      }
    }
    this.releaseLock();
  }

  private async runReplay(publish: SpoolPublish, window: number, shouldContinue: () => boolean): Promise<ReplayResult> {
    const result: ReplayResult = { batches: 0, events: 0, complete: false };
    const out: { end: number; events: number; ok: Promise<boolean> }[] = [];
    let readPosition = this.readOffset;
    let failure: { error: unknown } | null = null;
    for (;;) {
      while (failure === null && !this.closed && out.length < window && shouldContinue()) {
        const frame = this.nextFrame(readPosition);
        if (frame === null) break;
        readPosition = frame.end;
        const ok = Promise.resolve()
          .then(() => publish(frame.payload, frame.events))
          .then(
            () => true,
            (error: unknown) => {
              failure ??= { error };
              return false;
            },
          );
        out.push({ end: frame.end, events: frame.events, ok });
      }
      const head = out.shift();
      if (head === undefined) break;
      // Confirms may come out of order: a frame is done only once every frame before it is.
      if (!(await head.ok)) {
        await Promise.all(out.map((item) => item.ok));
        break;
      }
      if (this.closed) break;
      this.advance(head.end, head.events);
      result.batches += 1;
      result.events += head.events;
    }
    if (failure !== null) result.error = (failure as { error: unknown }).error;
    if (!this.closed && this.readOffset === this.size) {
      this.reset();
      result.complete = true;
    }
    return result;
  }

  private advance(end: number, events: number): void {
    this.readOffset = end;
    this.pendingBatches = Math.max(0, this.pendingBatches - 1);
    this.pendingEvents = Math.max(0, this.pendingEvents - events);
    this.saveOffset(false);
  }

  /** Everything was replayed: back to an empty file. Truncate first, so a crash between the two leaves an offset past the end, which open() reads as 0. */
  private reset(): void {
    try {
      ftruncateSync(this.writeFd, 0);
    } catch (error) {
      this.options.onProblem?.({ kind: 'io_failed', operation: 'truncate', error });
      return;
    }
    this.size = 0;
    this.readOffset = 0;
    this.pendingBatches = 0;
    this.pendingEvents = 0;
    this.saveOffset(false);
  }

  private loadOffset(): number {
    let offset = 0;
    try {
      const parsed = JSON.parse(readFileSync(this.offsetPath, 'utf8')) as { offset?: unknown };
      if (typeof parsed.offset === 'number' && Number.isSafeInteger(parsed.offset) && parsed.offset >= 0) offset = parsed.offset;
    } catch {
      // Missing or unreadable: replay from the start (duplicates, not losses).
    }
    return offset > this.size ? 0 : offset;
  }

  private saveOffset(durable: boolean): void {
    const temporary = `${this.offsetPath}.tmp`;
    try {
      writeFileSync(temporary, JSON.stringify({ offset: this.readOffset }));
      if (durable) {
        const fd = openSync(temporary, 'r+');
        try {
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
      }
      renameSync(temporary, this.offsetPath);
    } catch (error) {
      // A stale offset only means some frames go out again.
      this.options.onProblem?.({ kind: 'io_failed', operation: 'save offset', error });
    }
  }

  /**
   * Counts what is pending and makes the tail clean: damage followed by good frames is left
   * for replay to skip; damage at the end (a torn last frame) is cut off, so new frames
   * follow the last good one.
   */
  private scan(): void {
    let position = this.readOffset;
    while (position < this.size) {
      const read = this.readFrame(position);
      if (read.kind === 'frame') {
        this.pendingBatches += 1;
        this.pendingEvents += read.frame.events;
        position = read.frame.end;
        continue;
      }
      const next = this.findFrame(position + 1);
      this.corrupt += 1;
      if (next === null) {
        this.options.onProblem?.({ kind: 'torn_tail', at: position, bytes: this.size - position });
        try {
          ftruncateSync(this.writeFd, position);
          this.size = position;
        } catch (error) {
          this.options.onProblem?.({ kind: 'io_failed', operation: 'truncate torn tail', error });
        }
        break;
      }
      this.options.onProblem?.({ kind: 'corrupt', at: position, skippedBytes: next - position });
      position = next;
    }
    if (this.readOffset === this.size && this.size > 0) this.reset();
  }

  /** The next good frame at or after `position`, skipping damage; null at the end. */
  private nextFrame(position: number): Frame | null {
    let at = position;
    while (at < this.size) {
      const read = this.readFrame(at);
      if (read.kind === 'frame') return read.frame;
      if (read.kind === 'end') return null;
      const next = this.findFrame(at + 1);
      if (next === null) return null;
      at = next;
    }
    return null;
  }

  private readFrame(position: number): FrameRead {
    if (this.size - position < HEADER_BYTES) return { kind: 'damaged' };
    const header = Buffer.alloc(HEADER_BYTES);
    if (!this.readExactly(header, position)) return { kind: 'end' };
    if (!header.subarray(0, 4).equals(MAGIC)) return { kind: 'damaged' };
    const length = header.readUInt32BE(4);
    if (length > MAX_PAYLOAD_BYTES || position + HEADER_BYTES + length > this.size) return { kind: 'damaged' };
    const payload = Buffer.alloc(length);
    if (!this.readExactly(payload, position + HEADER_BYTES)) return { kind: 'end' };
    if (frameCrc(header, payload) !== header.readUInt32BE(12)) return { kind: 'damaged' };
    return { kind: 'frame', frame: { payload, events: header.readUInt32BE(8), end: position + HEADER_BYTES + length } };
  }

  /** The position of the first good frame at or after `from`, or null. */
  private findFrame(from: number): number | null {
    const chunk = Buffer.alloc(SEARCH_CHUNK_BYTES + MAGIC.length - 1);
    let start = from;
    while (start < this.size) {
      const length = Math.min(chunk.length, this.size - start);
      if (!this.readExactly(chunk.subarray(0, length), start)) return null;
      let index = chunk.subarray(0, length).indexOf(MAGIC);
      while (index !== -1) {
        if (this.readFrame(start + index).kind === 'frame') return start + index;
        index = chunk.subarray(0, length).indexOf(MAGIC, index + 1);
      }
      // Overlap by the magic's length less one, so a magic across two chunks is still seen.
      start += Math.max(1, length - (MAGIC.length - 1));
      if (length < chunk.length) break;
    }
    return null;
  }

  private readExactly(buffer: Buffer, position: number): boolean {
    let done = 0;
    try {
      while (done < buffer.length) {
        const read = readSync(this.readFd, buffer, done, buffer.length - done, position + done);
        if (read === 0) return false;
        done += read;
      }
      return true;
    } catch (error) {
      this.options.onProblem?.({ kind: 'io_failed', operation: 'read', error });
      return false;
    }
  }

  private syncSoon(): void {
    if (!this.dirty || this.syncing || this.closed) return;
    this.dirty = false;
    this.syncing = true;
    fsync(this.writeFd, (error) => {
      this.syncing = false;
      if (error !== null) {
        this.dirty = true;
        this.options.onProblem?.({ kind: 'io_failed', operation: 'fsync', error });
      }
    });
  }

  private releaseLock(): void {
    heldLocks.delete(this.lockPath);
    try {
      unlinkSync(this.lockPath);
    } catch {
      // Gone already; a stale lock is recognised by its dead pid anyway.
    }
  }
}
