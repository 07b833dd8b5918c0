/**
 * A private redis-server for tests that kill, pause or restart Redis: never the shared one.
 * It keeps nothing on disk (`--save ""`, no AOF), so a restart comes back empty, like a
 * Redis that lost its memory. Always call stop() (it resumes a paused server first).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './process.js';

/** Where the shared Redis listens: a private server must never be confused with it. */
const SHARED_REDIS_PORT = 6379;

export function redisServerMissing(): string | null {
  return spawnSync('redis-server', ['--version']).status === 0 ? null : 'redis-server is not installed';
}

export interface PrivateRedis {
  url: string;
  port: number;
  /** SIGKILL: connections are refused until restart(). */
  kill(): Promise<void>;
  /** Starts it again, empty, on the same port, and waits until it answers. */
  restart(): Promise<void>;
  /** SIGSTOP: connections stay open and nothing is answered. */
  pause(): void;
  /** SIGCONT: what was sent meanwhile is answered. Nothing to do when it is not running. */
  resume(): void;
  stop(): Promise<void>;
}

async function answers(port: number): Promise<boolean> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'shunt-redis-'));
  let port = 0;
  let child: ChildProcess | null = null;
  let output = '';
  const alive = (process: ChildProcess | null): process is ChildProcess =>
    process !== null && process.exitCode === null && process.signalCode === null;
  // A test process that dies without running its after hooks must not leave a server behind
  // (a stopped one above all, which nothing would ever reap).
  const killOnExit = (): void => {
    if (!alive(child)) return;
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  };
  process.on('exit', killOnExit);

  const launch = async (): Promise<void> => {
    if (alive(child)) throw new Error(`private redis-server on ${port} is already running`);
    const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-4000);
    };
    server.stdout.on('data', keep);
    server.stderr.on('data', keep);
    server.on('error', (error) => keep(Buffer.from(`\n${error.message}\n`)));
    child = server;
    const deadline = Date.now() + 10_000;
    // Only our own process may answer: something else on the port (after a restart) is not it.
    while (!(alive(server) && (await answers(port)))) {
      if (!alive(server)) throw new Error(`private redis-server on ${port} exited at start:\n${output}`);
      if (Date.now() > deadline) throw new Error(`private redis-server on ${port} did not start:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const kill = async (): Promise<void> => {
    const running = child;
    if (!alive(running)) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    // SIGCONT first, so a paused server is never left stopped, whatever happened before.
    running.kill('SIGCONT');
    running.kill('SIGKILL');
    await exited;
  };
  const signal = (name: 'SIGSTOP' | 'SIGCONT'): void => {
    if (alive(child)) child.kill(name);
    else if (name === 'SIGSTOP') throw new Error(`private redis-server on ${port} is not running`);
  };
  const stop = async (): Promise<void> => {
    await kill();
    process.off('exit', killOnExit);
    rmSync(dir, { recursive: true, force: true });
  };

  // The port may be taken between freePort() and the server's bind: try another.
  for (let attempt = 1; ; attempt += 1) {
    do port = await freePort();
    while (port === SHARED_REDIS_PORT);
    try {
      await launch();
      break;
    } catch (error) {
      await kill();
      if (attempt === 3) {
        await stop();
        throw error;
      }
    }
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    kill,
    restart: launch,
    pause: () => signal('SIGSTOP'),
    resume: () => signal('SIGCONT'),
    stop,
  };
}
