/**
 * The QR renderer's thread (qr.ts): one request at a time, at background priority, so a
 * burst of renders takes idle CPU and never a core the redirect thread wants.
 */
import { parentPort } from 'node:worker_threads';
import QRCode from 'qrcode';
import { runAsBackgroundThread } from '../shared/thread-priority.js';

interface RenderRequest {
  id: number;
  text: string;
  format: 'svg' | 'png';
  size: number;
}

const port = parentPort;
if (port === null) throw new Error('qr-thread.ts runs only as a worker thread');
runAsBackgroundThread();
port.on('message', ({ id, text, format, size }: RenderRequest) => {
  const options = { width: size, margin: 2, errorCorrectionLevel: 'M' } as const;
  const rendered = format === 'png' ? QRCode.toBuffer(text, { ...options, type: 'png' }) : QRCode.toString(text, { ...options, type: 'svg' }).then((svg) => Buffer.from(svg, 'utf8'));
  rendered.then(
    (body) => port.postMessage({ id, body }),
    (error: unknown) => port.postMessage({ id, error: error instanceof Error ? error.message : String(error) }),
  );
});
