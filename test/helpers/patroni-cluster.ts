/**
 * A Patroni cluster of one test's own, built from the files Shunt ships in deploy/patroni:
 * one etcd member, two Patroni nodes managing PostgreSQL (a primary and a streaming
 * replica) and HAProxy routing to whichever node's REST API answers 200 on /primary. All
 * on free ports in a temp dir; Patroni and PostgreSQL run as the `postgres` OS user.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { asPostgres, POSTGRES_BIN, postgresServerMissing, postgresTempDir } from './private-postgres.js';
import { freePort } from './process.js';
import { childrenOf } from './proc-stat.js';

const DEPLOY = join(import.meta.dirname, '..', '..', 'deploy', 'patroni');
const PROGRAMS = ['/usr/bin/patroni', '/usr/bin/etcd', '/usr/sbin/haproxy'];

export function patroniMissing(): string | null {
  const missing = PROGRAMS.filter((program) => !existsSync(program));
  if (missing.length > 0) return `not installed: ${missing.join(', ')} (apt-get install patroni python3-etcd etcd-server haproxy)`;
  if (spawnSync('/usr/bin/python3', ['-c', 'import etcd']).status !== 0) return 'python3-etcd is not installed (Patroni needs it for etcd)';
  return postgresServerMissing();
}

export interface PatroniNode {
  name: string;
  pgPort: number;
  apiPort: number;
  dataDir: string;
}

export interface PatroniCluster {
  /** postgres://…/`database` through HAProxy: always the current primary. */
  url(database: string): string;
  createDatabase(name: string): Promise<string>;
  nodes: readonly PatroniNode[];
  /** The node whose REST API answers 200 on /primary, if one does. */
  primary(): Promise<PatroniNode | null>;
  /**
   * Resolves once every replica streams from `primary` and has flushed all but `bytes` of its
   * WAL. Patroni promotes a replica only within `maximum_lag_on_failover` (1 MB) of the
   * primary; a replica still replaying its clone on a slow machine would be passed over.
   */
  replicasCaughtUp(primary: PatroniNode, bytes: number, ms: number): Promise<void>;
  /**
   * SIGKILL to `node`'s postmaster and every process it started, as when the machine or the
   * container dies. A postmaster killed alone leaves its backends running until each notices,
   * and a query already on one can still commit after the "crash".
   */
  killPostgres(node: PatroniNode): void;
  logs(): string;
  /** The lines where Patroni says what it decided and why (crash, lag, promotion, restart). */
  decisions(): string;
  close(): Promise<void>;
}

function render(template: string, values: Record<string, string | number>): string {
  return readFileSync(join(DEPLOY, template), 'utf8').replace(/\{\{([A-Z0-9_]+)\}\}/g, (_, key: string) => {
    const value = values[key];
    if (value === undefined) throw new Error(`${template}: no value for {{${key}}}`);
    return String(value);
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, ms: number, logs: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${logs().slice(-4000)}`);
    await sleep(200);
  }
}

// Kept apart from the full output, which HAProxy's health checks can push out of its window.
const DECISION = /Primary crashed|Demoting|Member \S+ (is|exceeds|does not)|Request failed|Timeline \S+ of member|session lock|starting as|crash recovery|promote|Leader key/;

const answers = async (url: string): Promise<boolean> => (await fetch(url, { signal: AbortSignal.timeout(1000) })).status === 200;

const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });

export async function startPatroniCluster(): Promise<PatroniCluster> {
  const dir = postgresTempDir('shunt-patroni-');
  const children: ChildProcess[] = [];
  let output = '';
  const decisions: string[] = [];
  const run = (name: string, command: string, args: string[], asPostgresUser: boolean): ChildProcess => {
    const ids = asPostgresUser && process.getuid?.() === 0
      ? { uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })) }
      : {};
    const child = spawn(command, args, { cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, LANG: 'C.UTF-8' }, stdio: ['ignore', 'pipe', 'pipe'], ...ids });
    const collect = (chunk: Buffer): void => {
      const text = chunk.toString('utf8');
      output += `[${name}] ${text}`;
      for (const line of text.split('\n')) if (DECISION.test(line)) decisions.push(`[${name}] ${line}`);
      if (output.length > 200_000) output = output.slice(-100_000);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    children.push(child);
    return child;
  };
  const logs = (): string => output;
  const [etcdClient, etcdPeer, haproxyPort] = [await freePort(), await freePort(), await freePort()];
  const nodes: PatroniNode[] = [];
  for (const name of ['node1', 'node2']) nodes.push({ name, pgPort: await freePort(), apiPort: await freePort(), dataDir: join(dir, name) });

  const stopAll = async (): Promise<void> => {
    // Patroni first (it stops its postgres), then what it depended on.
    for (const child of [...children].reverse()) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await Promise.race([new Promise((resolve) => child.once('exit', resolve)), sleep(10_000)]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    }
    for (const node of nodes) {
      try {
        asPostgres('pg_ctl', ['-D', node.dataDir, '-m', 'immediate', '-w', 'stop']);
      } catch {
        // not running
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    run('etcd', '/usr/bin/etcd', [
      '--name', 'etcd1',
      '--data-dir', join(dir, 'etcd'),
      '--listen-client-urls', `http://127.0.0.1:${etcdClient}`,
      '--advertise-client-urls', `http://127.0.0.1:${etcdClient}`,
      '--listen-peer-urls', `http://127.0.0.1:${etcdPeer}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${etcdPeer}`,
      '--initial-cluster', `etcd1=http://127.0.0.1:${etcdPeer}`,
      '--initial-cluster-state', 'new',
    ], false);
    await waitFor('etcd', () => answers(`http://127.0.0.1:${etcdClient}/health`), 30_000, logs);

    for (const [index, node] of nodes.entries()) {
      const config = join(dir, `${node.name}.yml`);
      writeFileSync(config, render('patroni.yml', {
        NAME: node.name,
        RESTAPI_HOST: '127.0.0.1',
        RESTAPI_PORT: node.apiPort,
        ETCD_HOSTS: `127.0.0.1:${etcdClient}`,
        PG_HOST: '127.0.0.1',
        PG_PORT: node.pgPort,
        DATA_DIR: node.dataDir,
        BIN_DIR: POSTGRES_BIN ?? '',
        SOCKET_DIR: dir,
        WATCHDOG_MODE: 'off',
      }));
      run(node.name, '/usr/bin/patroni', [config], true);
      // The first node bootstraps the cluster; the second clones it once it is primary.
      const role = index === 0 ? 'primary' : 'replica';
      await waitFor(`${node.name} as ${role}`, () => answers(`http://127.0.0.1:${node.apiPort}/${role}`), 90_000, logs);
    }

    const haproxyConfig = join(dir, 'haproxy.cfg');
    const [first, second] = nodes as [PatroniNode, PatroniNode];
    writeFileSync(haproxyConfig, render('haproxy.cfg', {
      BIND_HOST: '127.0.0.1',
      BIND_PORT: haproxyPort,
      NODE1_PG: `127.0.0.1:${first.pgPort}`,
      NODE1_API_PORT: first.apiPort,
      NODE2_PG: `127.0.0.1:${second.pgPort}`,
      NODE2_API_PORT: second.apiPort,
    }));
    run('haproxy', '/usr/sbin/haproxy', ['-f', haproxyConfig, '-db'], false);
    await waitFor('HAProxy', () => accepts(haproxyPort), 30_000, logs);
  } catch (error) {
    await stopAll();
    throw error;
  }

  const url = (database: string): string => `postgres://postgres@127.0.0.1:${haproxyPort}/${database}`;
  const cluster: PatroniCluster = {
    url,
    nodes,
    async createDatabase(name) {
      await waitFor('a primary through HAProxy', async () => {
        const client = new pg.Client({ connectionString: url('postgres'), connectionTimeoutMillis: 2000 });
        client.on('error', () => undefined);
        try {
          await client.connect();
          await client.query(`CREATE DATABASE ${name}`);
          return true;
        } finally {
          await client.end().catch(() => undefined);
        }
      }, 30_000, logs);
      return url(name);
    },
    async primary() {
      for (const node of nodes) {
        if (await answers(`http://127.0.0.1:${node.apiPort}/primary`).catch(() => false)) return node;
      }
      return null;
    },
    async replicasCaughtUp(primary, bytes, ms) {
      const replicas = nodes.length - 1;
      await waitFor(`${replicas} replica(s) streaming within ${bytes} bytes of ${primary.name}`, async () => {
        const client = new pg.Client({ host: '127.0.0.1', port: primary.pgPort, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 2000 });
        client.on('error', () => undefined);
        try {
          await client.connect();
          const { rows } = await client.query<{ lag: string }>(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::text AS lag FROM pg_stat_replication WHERE state = 'streaming'",
          );
          return rows.length === replicas && rows.every((row) => Number(row.lag) <= bytes);
        } finally {
          await client.end().catch(() => undefined);
        }
      }, ms, logs);
    },
    killPostgres(node) {
      const pid = Number(readFileSync(join(node.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      // Listed first: once the postmaster is gone its children belong to init.
      const children = childrenOf(pid);
      process.kill(pid, 'SIGKILL');
      for (const child of children) {
        try {
          process.kill(child, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    },
    logs,
    decisions: () => decisions.slice(-60).join('\n'),
    close: stopAll,
  };
  return cluster;
}
