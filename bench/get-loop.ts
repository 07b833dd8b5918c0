/**
 * A closed loop of GETs on one keep-alive connection, as light as a load generator can be:
 * a request is encoded once per distinct path, and an answer is read by its Content-Length,
 * with no parser, stream or event object per request. node:http's client costs the
 * benchmark's own process tens of µs per request, on the cores the server shares; this costs
 * little beyond the socket reads. Every body is still read whole, byte for byte, before the
 * next request is sent, and must be what was asked for (`expectedType` on a 200).
 */
import { connect } from 'node:net';

export interface LoopStats {
  fetched: number;
  /** Body bytes read. */
  bytes: number;
  statuses: Record<number, number>;
}

const HEAD_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /\r\ncontent-length: *(\d+)/i;

/** Requests `nextPath()` again and again while `running()`; resolves once the connection is closed. */
export function getLoop(port: number, nextPath: () => string, expectedType: string, running: () => boolean, stats: LoopStats): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    const fail = (message: string): void => {
      reject(new Error(message));
      socket.destroy();
    };
    let lastPath = '';
    let request = Buffer.alloc(0);
    const send = (): void => {
      if (!running()) {
        socket.end();
        return;
      }
      const path = nextPath();
      if (path !== lastPath) {
        lastPath = path;
        request = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`, 'latin1');
      }
      socket.write(request);
    };

    /** Bytes of an answer's head read so far, while it is incomplete. */
    let partialHead: Buffer | null = null;
    /** Body bytes still to read; -1 while reading a head. */
    let bodyLeft = -1;
    let status = 0;
    socket.on('connect', send);
    socket.on('data', (received: Buffer) => {
      let chunk = received;
      let at = 0;
      if (bodyLeft < 0) {
        chunk = partialHead === null ? received : Buffer.concat([partialHead, received]);
        const end = chunk.indexOf(HEAD_END);
        if (end === -1) {
          partialHead = chunk;
          return;
        }
        partialHead = null;
        const head = chunk.toString('latin1', 0, end);
        status = Number(head.slice(9, 12));
        const length = CONTENT_LENGTH.exec(head)?.[1];
        if (length === undefined) return fail(`an answer without Content-Length: ${head}`);
        if (status === 200 && !head.toLowerCase().includes(`\r\ncontent-type: ${expectedType}`)) return fail(`not ${expectedType}: ${head}`);
        bodyLeft = Number(length);
        at = end + HEAD_END.length;
      }
      const available = chunk.length - at;
      if (available > bodyLeft) return fail(`${available - bodyLeft} bytes beyond the body`);
      bodyLeft -= available;
      stats.bytes += available;
      if (bodyLeft > 0) return;
      bodyLeft = -1;
      stats.fetched += 1;
      stats.statuses[status] = (stats.statuses[status] ?? 0) + 1;
      send();
    });
    socket.once('error', (error) => reject(error));
    socket.once('close', () => {
      if (running()) reject(new Error('the server closed the connection'));
      else resolve();
    });
  });
}
