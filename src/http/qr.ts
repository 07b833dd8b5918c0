/**
 * QR rendering off the event loop. A PNG of 1024 px costs about 100 ms of CPU: on the loop
 * it would stall every redirect of the process for that long. One worker thread renders,
 * one request at a time; the queue in front of it is bounded, and beyond it the caller is
 * refused (503) rather than waiting. The worker is started on first use and again if it dies.
 * The thread runs at background priority (qr-thread.ts).
 */
import { Worker } from 'node:worker_threads';
import { AppError } from '../shared/errors.js';
import { threadEntry } from '../shared/thread-entry.js';

export type QrFormat = 'svg' | 'png';
/** A print needs no more: 1024 px is 8.7 cm at 300 dpi. Also the QR query schema's maximum. */
export const QR_MAX_SIZE = 1024;
export const QR_MIN_SIZE = 64;
export const QR_DEFAULT_SIZE = 256;
const MAX_QUEUED = 64;

export function qrContentType(format: QrFormat): string {
  return format === 'png' ? 'image/png' : 'image/svg+xml';
}

interface Pending {
  resolve: (body: Buffer) => void;
  reject: (error: Error) => void;
}

export class QrRenderer {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  render(text: string, format: QrFormat, size: number): Promise<Buffer> {
    if (this.pending.size >= MAX_QUEUED) {
      return Promise.reject(new AppError('dependency_unavailable', { detail: 'Too many QR codes are being rendered; retry shortly', headers: { 'Retry-After': '1' } }));
    }
    const id = (this.nextId += 1);
    return new Promise<Buffer>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.started().postMessage({ id, text, format, size });
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    await worker?.terminate();
  }

  private started(): Worker {
    if (this.worker !== null) return this.worker;
    const worker = new Worker(threadEntry(import.meta.url, 'qr-thread'));
    // An idle renderer must not keep the process alive.
    worker.unref();
    worker.on('message', (message: { id: number; body?: Uint8Array; error?: string }) => {
      const waiting = this.pending.get(message.id);
      if (waiting === undefined) return;
      this.pending.delete(message.id);
      if (message.body === undefined) waiting.reject(new Error(`QR rendering failed: ${message.error ?? 'unknown'}`));
      else waiting.resolve(Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength));
    });
    const fail = (error: Error): void => {
      if (this.worker === worker) this.worker = null;
      for (const waiting of this.pending.values()) waiting.reject(error);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`QR worker exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }
}
