/** Writes lines to a stream, waiting when the stream asks for a pause, so memory stays flat. */
import { once } from 'node:events';
import type { Writable } from 'node:stream';

export class LineWriter {
  #lines = 0;

  constructor(private readonly stream: Writable) {}

  get lines(): number {
    return this.#lines;
  }

  async write(text: string): Promise<void> {
    this.#lines += 1;
    if (!this.stream.write(text)) await once(this.stream, 'drain');
  }

  /** Ends the stream and waits until everything is flushed. */
  async end(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.stream.once('error', reject);
      this.stream.end(() => resolve());
    });
  }
}
