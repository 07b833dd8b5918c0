/**
 * A PostgreSQL primary with a streaming standby, created for one test: initdb, then
 * pg_basebackup -R, each on a free port, in a temp dir. PostgreSQL refuses to run as
 * root, so the servers run as the `postgres` user. `applyDelay` holds replay back on the
 * standby, so lag is certain rather than a race.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './process.js';
import { asPostgres, postgresServerMissing, postgresTempDir } from './private-postgres.js';

export const replicaToolsMissing = postgresServerMissing;

export interface ReplicaCluster {
  primaryUrl: string;
  standbyUrl: string;
  stopStandby(): void;
  startStandby(): void;
  close(): void;
}

export async function startReplicaCluster(options: { applyDelay: string; database: string }): Promise<ReplicaCluster> {
  const dir = postgresTempDir('shunt-replica-');
  const primary = join(dir, 'primary');
  const standby = join(dir, 'standby');
  const [primaryPort, standbyPort] = [await freePort(), await freePort()];
  const common = ['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`, '-c', 'fsync=off'];
  const start = (data: string, port: number, extra: string[]): void =>
    asPostgres('pg_ctl', ['-D', data, '-l', `${data}.log`, '-w', '-t', '60', '-o', [...common, '-c', `port=${port}`, ...extra].map((arg) => `'${arg}'`).join(' '), 'start']);
  const stop = (data: string): void => {
    try {
      asPostgres('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    } catch {
      // already stopped
    }
  };
  try {
    asPostgres('initdb', ['-D', primary, '-A', 'trust', '-U', 'postgres', '--no-sync']);
    start(primary, primaryPort, ['-c', 'wal_level=replica', '-c', 'max_wal_senders=4']);
    asPostgres('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primaryPort), '-U', 'postgres', '-D', standby, '-R', '-X', 'stream']);
    const startStandby = (): void => start(standby, standbyPort, ['-c', `recovery_min_apply_delay=${options.applyDelay}`, '-c', 'hot_standby=on']);
    startStandby();
    const admin = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${primaryPort}/postgres` });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${options.database}`);
    await admin.end();
    return {
      primaryUrl: `postgres://postgres@127.0.0.1:${primaryPort}/${options.database}`,
      standbyUrl: `postgres://postgres@127.0.0.1:${standbyPort}/${options.database}`,
      stopStandby: () => stop(standby),
      startStandby,
      close: () => {
        stop(standby);
        stop(primary);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    stop(standby);
    stop(primary);
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
