/** Runs Shunt as a real process (from source, so tests never see a stale build). */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

export interface ShuntProcess {
  child: ChildProcess;
  port: number;
  url: string;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

export function runShunt(args: string[], env: Record<string, string>): ShuntProcess & { port: number } {
  const port = Number(env.PORT ?? 0);
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, port, url: `http://127.0.0.1:${port}`, stdout: () => out, stderr: () => err, exited };
}

/** `shunt start [args]` on a free port, once /readyz answers 200. */
export async function startShunt(env: Record<string, string>, args: string[] = []): Promise<ShuntProcess> {
  const port = await freePort();
  const shunt = runShunt(['start', ...args], { PORT: String(port), ...env });
  // Generous: opening PGlite (WASM) takes tens of seconds on a loaded 2-core machine.
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (shunt.child.exitCode !== null) throw new Error(`shunt exited early (${shunt.child.exitCode}): ${shunt.stderr()}`);
    try {
      if ((await fetch(`${shunt.url}/readyz`)).ok) return shunt;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  shunt.child.kill('SIGKILL');
  throw new Error(`shunt did not become ready: ${shunt.stderr()}${shunt.stdout().slice(-2000)}`);
}
