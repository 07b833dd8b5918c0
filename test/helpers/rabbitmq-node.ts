/**
 * A private RabbitMQ node for tests that stop, kill or restart the broker: never the shared
 * one on 5672. Everything it owns is under one temporary directory: data (mnesia), logs,
 * config, and a HOME whose .erlang.cookie only this node and its rabbitmqctl calls share.
 * It listens on 127.0.0.1 only, on a free AMQP port and a free distribution port, with no
 * plugins (no management UI), and ignores /etc/rabbitmq (RABBITMQ_CONF_ENV_FILE and
 * RABBITMQ_CONFIG_FILE point at its own files). It registers its name with the machine's
 * epmd, as every Erlang node does; if none is running, Erlang starts one, which outlives
 * the test (harmless: a name service on 127.0.0.1:4369).
 *
 * It starts in about 5-7 s here (RabbitMQ 3.10, OTP 25). Always call stop().
 *
 * stopApp()/startApp() are `rabbitmqctl stop_app`/`start_app`: the broker closes every
 * connection and refuses new ones while the node stays up (about 1 s each). While setting
 * this up by hand, start_app once failed to bind the AMQP port again in the same node
 * (eaddrinuse, with nothing holding the port), so when start_app fails startApp() restarts
 * the node process on the same data directory instead (and says so on stdout); durable
 * queues and confirmed persistent messages survive either way.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import { freePort } from './process.js';

const run = promisify(execFile);
/** The shared broker's ports: a private node must never take them. */
const SHARED_PORTS = new Set([5672, 25672]);
/** The real scripts: /usr/sbin/rabbitmq-server on Debian switches to the rabbitmq user and drops our environment. */
const PACKAGE_SCRIPT = '/usr/lib/rabbitmq/bin/rabbitmq-server';

function serverScript(): string | null {
  if (existsSync(PACKAGE_SCRIPT)) return PACKAGE_SCRIPT;
  const found = spawnSync('sh', ['-c', 'command -v rabbitmq-server'], { encoding: 'utf8' });
  const path = found.stdout.trim();
  return found.status === 0 && path !== '' ? path : null;
}

export function rabbitmqServerMissing(): string | null {
  return serverScript() === null ? 'rabbitmq-server is not installed' : null;
}

export interface PrivateRabbitMq {
  /** amqp://guest:guest@127.0.0.1:<port> (guest may log in over loopback). */
  url: string;
  port: number;
  nodeName: string;
  /** How long the first start took, until AMQP answered. */
  startedInMs: number;
  /** `rabbitmqctl stop_app`: every connection closed, new ones refused; the node stays up. */
  stopApp(): Promise<void>;
  /** `rabbitmqctl start_app` (or a restart of the node, see above); resolves once AMQP answers. */
  startApp(): Promise<void>;
  /** SIGKILL to the whole node: a broker crash. Connections break without a close. */
  kill(): Promise<void>;
  /** Starts the node again on the same port and data; resolves once AMQP answers. */
  restart(): Promise<void>;
  /** Kills it and removes its directory. */
  stop(): Promise<void>;
  /** Runs `rabbitmqctl -n <node> ...args` (e.g. `set_vm_memory_high_watermark 0` to raise a memory alarm). */
  ctl(...args: string[]): Promise<string>;
}

async function amqpAnswers(url: string): Promise<boolean> {
  try {
    const connection = await amqp.connect(url, { timeout: 1000 });
    connection.on('error', () => undefined);
    await connection.close().catch(() => undefined);
    return true;
  } catch {
    return false;
  }
}

async function portRefuses(url: string): Promise<boolean> {
  return !(await amqpAnswers(url));
}

export async function startPrivateRabbitMq(): Promise<PrivateRabbitMq> {
  const script = serverScript();
  if (script === null) throw new Error('rabbitmq-server is not installed');
  const ctl = join(dirname(script), 'rabbitmqctl');
  const dir = mkdtempSync(join(tmpdir(), 'shunt-rabbitmq-'));
  const home = join(dir, 'home');
  mkdirSync(home);
  mkdirSync(join(dir, 'mnesia'));
  mkdirSync(join(dir, 'log'));
  const cookie = join(home, '.erlang.cookie');
  writeFileSync(cookie, randomBytes(20).toString('hex').toUpperCase());
  chmodSync(cookie, 0o400);
  let port = 0;
  let distPort = 0;
  do port = await freePort();
  while (SHARED_PORTS.has(port));
  do distPort = await freePort();
  while (SHARED_PORTS.has(distPort) || distPort === port);
  const nodeName = `shunt-test-${randomBytes(4).toString('hex')}@localhost`;
  const url = `amqp://guest:guest@127.0.0.1:${port}`;
  // Only the config file names the listener: RABBITMQ_NODE_PORT as well would declare it twice.
  writeFileSync(join(dir, 'rabbitmq.conf'), [`listeners.tcp.1 = 127.0.0.1:${port}`, 'log.console = false', 'log.file.level = info', ''].join('\n'));
  writeFileSync(join(dir, 'rabbitmq-env.conf'), '');
  writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    LANG: 'C.UTF-8',
    RABBITMQ_NODENAME: nodeName,
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config'),
    RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_PID_FILE: join(dir, 'node.pid'),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
  };

  let child: ChildProcess | null = null;
  let output = '';
  const alive = (process: ChildProcess | null): process is ChildProcess => process !== null && process.exitCode === null && process.signalCode === null;
  const logTail = (): string => {
    let logs = '';
    try {
      for (const file of readdirSync(join(dir, 'log'))) logs += readFileSync(join(dir, 'log', file), 'utf8');
    } catch {
      // No log yet.
    }
    return `${output.slice(-2000)}\n${logs.slice(-3000)}`;
  };
  // The node runs in a process group of its own (the script, beam.smp, erl_child_setup), so
  // one signal reaches all of it, also when the test process dies without its after hooks.
  const killGroup = (): void => {
    if (child?.pid === undefined || !alive(child)) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  };
  process.on('exit', killGroup);

  const launch = async (): Promise<void> => {
    if (alive(child)) throw new Error(`private RabbitMQ ${nodeName} is already running`);
    const node = spawn(script, [], { env, cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-8000);
    };
    node.stdout.on('data', keep);
    node.stderr.on('data', keep);
    node.on('error', (error) => keep(Buffer.from(`\n${error.message}\n`)));
    child = node;
    const deadline = Date.now() + 60_000;
    while (!(await amqpAnswers(url))) {
      if (!alive(node)) throw new Error(`private RabbitMQ ${nodeName} exited at start:\n${logTail()}`);
      if (Date.now() > deadline) throw new Error(`private RabbitMQ ${nodeName} did not start in 60 s:\n${logTail()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  const kill = async (): Promise<void> => {
    const running = child;
    if (!alive(running)) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    killGroup();
    await exited;
    // The beam may outlive the script by a moment; the pid file names it.
    try {
      const pid = Number(readFileSync(env.RABBITMQ_PID_FILE as string, 'utf8').trim());
      if (pid > 0) process.kill(pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  };
  const rabbitmqctl = async (...args: string[]): Promise<string> => (await run(ctl, ['-n', nodeName, ...args], { env, timeout: 30_000 })).stdout;
  const waitFor = async (what: string, check: () => Promise<boolean>): Promise<void> => {
    const deadline = Date.now() + 30_000;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`private RabbitMQ ${nodeName}: timed out waiting for ${what}:\n${logTail()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  const stop = async (): Promise<void> => {
    await kill();
    process.off('exit', killGroup);
    rmSync(dir, { recursive: true, force: true });
  };

  const started = Date.now();
  try {
    await launch();
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url,
    port,
    nodeName,
    startedInMs: Date.now() - started,
    stopApp: async () => {
      await rabbitmqctl('stop_app');
      await waitFor('the AMQP port to refuse connections', () => portRefuses(url));
    },
    startApp: async () => {
      try {
        await rabbitmqctl('start_app');
      } catch (error) {
        console.log(`# private RabbitMQ: start_app failed (${(error as Error).message.split('\n')[0] ?? ''}); restarting the node on the same data`);
        await kill();
        await launch();
      }
      await waitFor('AMQP to answer', () => amqpAnswers(url));
    },
    kill,
    restart: launch,
    stop,
    ctl: rabbitmqctl,
  };
}
