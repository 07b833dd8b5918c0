/**
 * A PostgreSQL server of one test's own (initdb + pg_ctl on a free port, in a temp dir),
 * for tests that stop, restart or cut the database: never the shared one on 5432.
 * PostgreSQL refuses to run as root, so the servers run as the `postgres` OS user.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './process.js';

export const POSTGRES_BIN = (() => {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const version = readdirSync(root).sort().at(-1);
  return version === undefined ? null : join(root, version, 'bin');
})();

export function postgresServerMissing(): string | null {
  if (POSTGRES_BIN === null || !existsSync(join(POSTGRES_BIN, 'pg_basebackup'))) return 'PostgreSQL server binaries not found under /usr/lib/postgresql';
  if (spawnSync('id', ['postgres']).status !== 0) return 'no postgres OS user to run the servers as';
  return null;
}

/** Runs one of PostgreSQL's programs as the `postgres` user (directly when not root). */
export function asPostgres(command: string, args: string[]): void {
  const bin = POSTGRES_BIN ?? '';
  const wrapped = process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', join(bin, command), ...args]] as const : [join(bin, command), args] as const;
  execFileSync(wrapped[0], [...wrapped[1]], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * The same, without blocking: a test that times its requests must not freeze its own event
 * loop while pg_ctl waits for the server.
 */
export async function asPostgresAsync(command: string, args: string[]): Promise<void> {
  const bin = POSTGRES_BIN ?? '';
  if (process.getuid?.() === 0) await promisify(execFile)('runuser', ['-u', 'postgres', '--', join(bin, command), ...args]);
  else await promisify(execFile)(join(bin, command), args);
}

/** A temp dir the `postgres` user may write in. */
export function postgresTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o777);
  if (process.getuid?.() === 0) execFileSync('chown', ['postgres', dir]);
  return dir;
}

export interface PrivatePostgres {
  port: number;
  /** postgres://…/`database` on this server. */
  url(database: string): string;
  createDatabase(name: string): Promise<string>;
  /** `pg_ctl stop -m immediate`: every backend dies at once, as in a crash. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Ends every session of `applicationName*` on the server, as pg_terminate_backend does. */
  terminate(applicationName: string): Promise<number>;
  close(): void;
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const dir = postgresTempDir('shunt-pg-');
  const data = join(dir, 'data');
  const port = await freePort();
  const url = (database: string): string => `postgres://postgres@127.0.0.1:${port}/${database}`;
  const options = ['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`, '-c', 'fsync=off', '-c', `port=${port}`, '-c', 'max_connections=200'];
  const startArgs = ['-D', data, '-l', `${data}.log`, '-w', '-t', '60', '-o', options.map((arg) => `'${arg}'`).join(' '), 'start'];
  const stopArgs = ['-D', data, '-m', 'immediate', '-w', 'stop'];
  const stopNow = (): void => {
    try {
      asPostgres('pg_ctl', stopArgs);
    } catch {
      // already stopped
    }
  };
  const admin = async <T>(work: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client({ connectionString: url('postgres') });
    await client.connect();
    try {
      return await work(client);
    } finally {
      await client.end();
    }
  };
  try {
    asPostgres('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
    asPostgres('pg_ctl', startArgs);
  } catch (error) {
    stopNow();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    port,
    url,
    async createDatabase(name) {
      await admin((client) => client.query(`CREATE DATABASE ${name}`));
      return url(name);
    },
    stop: () => asPostgresAsync('pg_ctl', stopArgs),
    start: () => asPostgresAsync('pg_ctl', startArgs),
    terminate: (applicationName) =>
      admin(async (client) => {
        const result = await client.query(
          'SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS ended FROM pg_stat_activity WHERE application_name LIKE $1 AND pid <> pg_backend_pid()',
          [`${applicationName}%`],
        );
        return (result.rows[0] as { ended: number }).ended;
      }),
    close() {
      stopNow();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
