/**
 * The container image, built and run for real with Podman: the Dockerfile builds on a local
 * stand-in of its base image (no registry is reachable here; see stand-in-base-image.ts), and
 * the image runs with a read-only root filesystem against this machine's PostgreSQL, Redis and
 * RabbitMQ: a link is created and followed, the process is not root, nothing but the data volume
 * is writable, the health check passes, the same image migrates, and SIGTERM ends it with 0.
 * Needs root, podman, runc and debootstrap: skipped locally without them, failing under CI=true.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { amqpReachable, deleteClickTopology, SHARED_AMQP_URL, uniqueQueue } from '../helpers/amqp.js';
import { createPostgresDatabase, IN_CI } from '../helpers/backends.js';
import { isRedisAvailable, REDIS_TEST_URL, sharedTierTestOptions } from '../helpers/instance-pair.js';
import { freePort } from '../helpers/process.js';
import { importStandInBaseImage } from '../helpers/stand-in-base-image.js';

/** The Dockerfile's base, fully qualified as Docker Hub's official images are. */
const BASE_IMAGE = ((name: string) => (name.includes('/') ? name : `docker.io/library/${name}`))(
  /^FROM\s+(\S+)\s+AS\s+build$/im.exec(readFileSync('Dockerfile', 'utf8'))?.[1] ?? 'missing FROM',
);
const ADMIN_KEY = `image-test-${randomBytes(16).toString('hex')}`;

function missingTools(): string[] {
  const missing = ['podman', 'runc', 'debootstrap'].filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0);
  if (process.getuid?.() !== 0) missing.push('root (debootstrap)');
  return missing;
}

const tiers = await sharedTierTestOptions();
const missing = missingTools();
const options = tiers.skip !== undefined ? tiers : missing.length > 0 && !IN_CI ? { skip: `needs ${missing.join(', ')}` } : {};

describe('Container image', options, () => {
  const started = Date.now();
  const work = mkdtempSync(join(tmpdir(), 'shunt-image-test-'));
  const tag = `localhost/shunt-image-test:${randomBytes(4).toString('hex')}`;
  const container = `shunt-image-test-${randomBytes(4).toString('hex')}`;
  const queue = uniqueQueue();
  const log = (line: string): void => console.log(`# image: ${line} (${Math.round((Date.now() - started) / 1000)} s)`);
  // Podman with its own configuration and storage in this test's directory: nothing on the
  // machine is changed. default_ulimits = [] because the machine's limits cannot be raised here.
  const env = { ...process.env, CONTAINERS_CONF: join(work, 'containers.conf'), CONTAINERS_STORAGE_CONF: join(work, 'storage.conf') };
  // stderr is kept out of the report: without systemd, Podman complains it cannot schedule
  // health-check timers (the test runs the health check itself).
  const podman = (...args: string[]): string =>
    execFileSync('podman', args, { env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  let dropDatabase: (() => Promise<void>) | undefined;
  let databaseUrl = '';
  let port = 0;
  let url = '';

  before(async () => {
    assert.deepEqual(missingTools(), [], 'tools the image test needs');
    assert.ok(await isRedisAvailable(), `Redis is not reachable at ${REDIS_TEST_URL}`);
    assert.ok(await amqpReachable(), `RabbitMQ is not reachable at ${new URL(SHARED_AMQP_URL).host}`);
    writeFileSync(env.CONTAINERS_CONF, '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n');
    writeFileSync(env.CONTAINERS_STORAGE_CONF, `[storage]\ndriver = "vfs"\ngraphroot = "${join(work, 'graph')}"\nrunroot = "${join(work, 'run')}"\n`);
    importStandInBaseImage(BASE_IMAGE, env, log);
    log('podman build');
    const build = spawnSync('podman', ['build', '--pull=never', '--network=host', '--runtime', 'runc', '--format', 'docker', '-t', tag, '.'], { env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 45 * 60_000 });
    assert.equal(build.status, 0, `podman build failed:\n${build.stdout}\n${build.stderr}`);
    const size = Number(podman('image', 'inspect', tag, '--format', '{{.Size}}'));
    const base = Number(podman('image', 'inspect', BASE_IMAGE, '--format', '{{.Size}}'));
    log(`built ${tag}: ${(size / 1e6).toFixed(0)} MB, ${((size - base) / 1e6).toFixed(0)} MB above the base`);

    const database = await createPostgresDatabase();
    dropDatabase = database.drop;
    databaseUrl = database.url;
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
  });

  after(async () => {
    spawnSync('podman', ['rm', '--force', '--time', '0', container], { env, stdio: 'ignore' });
    spawnSync('podman', ['rmi', '--force', tag, BASE_IMAGE], { env, stdio: 'ignore' });
    await dropDatabase?.();
    await deleteClickTopology(queue);
    rmSync(work, { recursive: true, force: true });
    log('done');
  });

  const shuntEnv = (): string[] =>
    Object.entries({
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: databaseUrl,
      REDIS_URL: REDIS_TEST_URL,
      REDIS_KEY_PREFIX: `shunt-image-${randomBytes(4).toString('hex')}`,
      AMQP_URL: SHARED_AMQP_URL,
      AMQP_QUEUE: queue,
      ADMIN_API_KEY: ADMIN_KEY,
    }).flatMap(([key, value]) => ['--env', `${key}=${value}`]);

  test('the image declares its user, volume, health check and stop signal', () => {
    const config = JSON.parse(podman('image', 'inspect', tag, '--format', '{{json .Config}}')) as {
      User?: string;
      Volumes?: Record<string, unknown>;
      StopSignal?: string;
      Entrypoint?: string[];
    };
    // Podman reports the health check beside the config, Docker inside it.
    type Check = { Test?: string[] };
    const [inspected] = JSON.parse(podman('image', 'inspect', tag)) as { Healthcheck?: Check; Config?: { Healthcheck?: Check } }[];
    const healthcheck = inspected?.Healthcheck ?? inspected?.Config?.Healthcheck;
    assert.equal(config.User, 'node');
    assert.deepEqual(Object.keys(config.Volumes ?? {}), ['/var/lib/shunt']);
    assert.equal(config.StopSignal, 'SIGTERM');
    assert.ok((healthcheck?.Test ?? []).join(' ').includes('/healthz'), JSON.stringify(healthcheck));
    assert.deepEqual(config.Entrypoint, ['node', 'dist/cli/main.js']);
  });

  test('the same image migrates the database, read-only', () => {
    const out = podman('run', '--rm', '--network=host', '--read-only', '--read-only-tmpfs=false', ...shuntEnv(), tag, 'migrate');
    assert.match(out, /Applied: |Database is up to date/);
  });

  test('it serves with a read-only root filesystem as a non-root user, and stops with 0 on SIGTERM', async () => {
    // --read-only-tmpfs=false: not even /tmp is writable, as with Docker's --read-only.
    podman('run', '--detach', '--name', container, '--network=host', '--read-only', '--read-only-tmpfs=false', ...shuntEnv(), tag);
    const deadline = Date.now() + 120_000;
    for (;;) {
      const ready = await fetch(`${url}/readyz`).then((response) => response.ok, () => false);
      if (ready) break;
      assert.ok(Date.now() < deadline, `not ready in time:\n${spawnSync('podman', ['logs', container], { env, encoding: 'utf8' }).stdout}`);
      await sleep(250);
    }

    const created = await fetch(`${url}/api/v1/links`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: 'https://example.com/from-the-image' }),
    });
    assert.equal(created.status, 201, await created.clone().text());
    const { code } = (await created.json()) as { code: string };
    const redirect = await fetch(`${url}/${code}`, { redirect: 'manual' });
    assert.equal(redirect.status, 302);
    assert.equal(redirect.headers.get('location'), 'https://example.com/from-the-image');

    assert.notEqual(podman('exec', container, 'id', '-u'), '0');
    assert.equal(podman('exec', container, 'sh', '-c', 'grep -E "^\\S+ / " /proc/mounts | grep -c "[ ,]ro[ ,]"'), '1', 'root filesystem mounted read-only');
    for (const path of ['/app/probe', '/tmp/probe']) {
      const write = spawnSync('podman', ['exec', container, 'touch', path], { env, encoding: 'utf8' });
      assert.notEqual(write.status, 0, `${path} is writable`);
    }
    podman('exec', container, 'touch', '/var/lib/shunt/probe');
    assert.equal(spawnSync('podman', ['healthcheck', 'run', container], { env, stdio: 'ignore' }).status, 0, 'health check');

    podman('stop', '--time', '30', container);
    assert.equal(podman('inspect', container, '--format', '{{.State.ExitCode}}'), '0');
    assert.match(podman('logs', container), /"msg":"stopped"/);
  });
});
