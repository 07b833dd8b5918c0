/**
 * A Server-Sent Events client over a real socket for tests (inject() cannot hold a stream
 * open): parses the frames as they arrive and lets a test wait for one.
 */
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';

export interface SseFrame {
  event?: string;
  id?: string;
  data?: string;
  retry?: number;
  comments: string[];
}

export class SseClient {
  readonly frames: SseFrame[] = [];
  /** Resolves when the server ends the response (or the connection drops). */
  readonly ended: Promise<void>;
  body = '';
  private buffer = '';
  private waiters: (() => void)[] = [];

  private constructor(
    readonly status: number,
    readonly headers: IncomingHttpHeaders,
    private readonly response: IncomingMessage,
  ) {
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      this.body += chunk;
      this.buffer += chunk;
      let end: number;
      while ((end = this.buffer.indexOf('\n\n')) >= 0) {
        this.frames.push(parseFrame(this.buffer.slice(0, end)));
        this.buffer = this.buffer.slice(end + 2);
      }
      for (const waiter of this.waiters.splice(0)) waiter();
    });
    this.ended = new Promise((resolve) => {
      response.on('end', () => resolve());
      response.on('close', () => resolve());
      response.on('error', () => resolve());
    });
    void this.ended.then(() => {
      for (const waiter of this.waiters.splice(0)) waiter();
    });
  }

  static connect(url: string, headers: Record<string, string>): Promise<SseClient> {
    return new Promise((resolve, reject) => {
      const request = httpRequest(url, { headers: { accept: 'text/event-stream', ...headers }, agent: false }, (response) => {
        resolve(new SseClient(response.statusCode ?? 0, response.headers, response));
      });
      request.on('error', reject);
      request.end();
    });
  }

  /** Waits for the first frame (from `from` on) that `match` accepts. */
  async next(match: (frame: SseFrame) => boolean, timeoutMs = 5000, from = 0): Promise<SseFrame> {
    const deadline = Date.now() + timeoutMs;
    let seen = from;
    for (;;) {
      for (; seen < this.frames.length; seen += 1) {
        const frame = this.frames[seen] as SseFrame;
        if (match(frame)) return frame;
      }
      if (this.response.complete || this.response.destroyed) throw new Error(`stream ended; frames: ${JSON.stringify(this.frames)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching frame within ${timeoutMs} ms; frames: ${JSON.stringify(this.frames)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  clicks(): SseFrame[] {
    return this.frames.filter((frame) => frame.event === 'click');
  }

  /** Hangs up, as a browser tab that is closed. */
  close(): void {
    this.response.destroy();
  }
}

function parseFrame(block: string): SseFrame {
  const frame: SseFrame = { comments: [] };
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) {
      frame.comments.push(line.slice(1).trim());
      continue;
    }
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (name === 'event') frame.event = value;
    else if (name === 'id') frame.id = value;
    else if (name === 'data') frame.data = frame.data === undefined ? value : `${frame.data}\n${value}`;
    else if (name === 'retry') frame.retry = Number(value);
  }
  return frame;
}

/** Waits until `check` holds, polling; fails with `what` after the timeout. */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
