/**
 * Runs a private nginx master (`nginx -p <temp dir> -g 'daemon off;'`): its configuration,
 * pid, logs and temporary files all live in a temporary directory, removed on stop. Never
 * touches a system nginx.
 *
 * startShuntBalancer() runs the configuration shipped in deploy/nginx: nginx.conf with its
 * host paths moved into the temporary directory (the one substitution deploy/nginx/README.md
 * documents), shunt.conf as is (a symbolic link), and upstreams.conf / listen.conf written here.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './process.js';

export const NGINX_BIN = process.env.NGINX_BIN ?? (spawnSync('/usr/sbin/nginx', ['-v']).status === 0 ? '/usr/sbin/nginx' : 'nginx');
export const SHIPPED_NGINX_DIR = fileURLToPath(new URL('../../deploy/nginx/', import.meta.url));

export function isNginxAvailable(): boolean {
  return spawnSync(NGINX_BIN, ['-v']).status === 0;
}

export interface NginxProcess {
  url: string;
  port: number;
  /** The prefix directory: nginx.conf, logs/, lib/ (temporary files). */
  dir: string;
  errorLog: () => string;
  /** Fast shutdown (SIGTERM), then the directory is removed. Safe to call twice. */
  stop: () => Promise<void>;
}

/** A prefix directory with logs/ and lib/, searchable by the workers when nginx starts as root and drops to another user. */
export function nginxDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'shunt-nginx-'));
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'logs'));
  mkdirSync(join(dir, 'lib'));
  return dir;
}

/** The http-level temporary paths, all inside `dir`, for configurations written by tests and benchmarks. */
export function tempPaths(dir: string): string {
  return ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `${kind}_temp_path ${join(dir, 'lib', kind)};`).join('\n');
}

/**
 * Starts nginx on `dir/nginx.conf` (already written, listening on 127.0.0.1:`port`) and
 * waits until it answers HTTP. On failure the directory is removed and the error log quoted.
 */
export async function runNginx(dir: string, port: number): Promise<NginxProcess> {
  const errorLogPath = join(dir, 'logs', 'error.log');
  const child = spawn(NGINX_BIN, ['-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', errorLogPath, '-g', 'daemon off;'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  let spawnError: Error | null = null;
  child.once('error', (error) => (spawnError = error));
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const errorLog = (): string => {
    try {
      return readFileSync(errorLogPath, 'utf8');
    } catch {
      return '';
    }
  };
  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null && spawnError === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    })());

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (spawnError !== null || child.exitCode !== null) break;
    try {
      const response = await fetch(`${url}/`, { redirect: 'manual' });
      await response.arrayBuffer();
      return { url, port, dir, errorLog, stop };
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const reason = `nginx did not start (${String(spawnError ?? `exit ${child.exitCode}`)}): ${stderr}${errorLog()}`;
  await stop();
  throw new Error(reason);
}

export interface ShuntBalancer extends NginxProcess {
  /** The parameters of the shipped upstreams.conf's server lines, e.g. max_fails=3 fail_timeout=10s. */
  serverParameters: string;
  /** fail_timeout, in milliseconds: how long a failed instance gets no traffic. */
  failTimeoutMs: number;
  /** The JSON access log lines written so far (nginx flushes them at most 1 s late). */
  accessLog: () => Record<string, unknown>[];
}

/** Host paths in the shipped nginx.conf, and where a test's copy puts them. */
function moveHostPaths(conf: string, dir: string): string {
  const moved = conf
    .replaceAll('/run/nginx.pid', join(dir, 'nginx.pid'))
    .replaceAll('/var/log/nginx/', `${join(dir, 'logs')}/`)
    .replaceAll('/var/lib/nginx/', `${join(dir, 'lib')}/`);
  const left = /^[^#\n]*?(\/(?:var|run|etc)\/\S*)/m.exec(moved);
  if (left !== null) throw new Error(`deploy/nginx/nginx.conf names a host path the test does not move: ${left[1]}`);
  return moved;
}

/** The shipped configuration in front of Shunt instances listening on 127.0.0.1:`upstreamPorts`. */
export async function startShuntBalancer(upstreamPorts: readonly number[]): Promise<ShuntBalancer> {
  const shippedUpstreams = readFileSync(join(SHIPPED_NGINX_DIR, 'upstreams.conf'), 'utf8');
  const serverParameters = /^\s*server\s+\S+\s+([^;]*);/m.exec(shippedUpstreams)?.[1]?.trim();
  const failTimeout = serverParameters === undefined ? undefined : /fail_timeout=(\d+)s\b/.exec(serverParameters)?.[1];
  if (serverParameters === undefined || failTimeout === undefined) {
    throw new Error('deploy/nginx/upstreams.conf: no `server ADDRESS ... fail_timeout=Ns;` line to take parameters from');
  }
  const port = await freePort();
  const dir = nginxDir();
  try {
    writeFileSync(join(dir, 'nginx.conf'), moveHostPaths(readFileSync(join(SHIPPED_NGINX_DIR, 'nginx.conf'), 'utf8'), dir));
    symlinkSync(join(SHIPPED_NGINX_DIR, 'shunt.conf'), join(dir, 'shunt.conf'));
    writeFileSync(join(dir, 'upstreams.conf'), upstreamPorts.map((upstream) => `server 127.0.0.1:${upstream} ${serverParameters};\n`).join(''));
    writeFileSync(join(dir, 'listen.conf'), `listen 127.0.0.1:${port};\nserver_name localhost;\n`);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const nginx = await runNginx(dir, port);
  const accessLog = (): Record<string, unknown>[] => {
    let text = '';
    try {
      text = readFileSync(join(dir, 'logs', 'shunt-access.log'), 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  };
  return { ...nginx, serverParameters, failTimeoutMs: Number(failTimeout) * 1000, accessLog };
}
