/**
 * Two Shunt processes on one PostgreSQL database behind the nginx configuration shipped in
 * deploy/nginx (run as shipped; only host paths, upstream addresses and the listen port
 * are the test's). Which instance served a request is read from its own JSON request log.
 */
import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { RATE_LIMIT_WINDOW_MS } from '../../src/ratelimit/rate-limiter.js';
import { IN_CI, isPostgresAvailable, POSTGRES_ADMIN_URL } from '../helpers/backends.js';
import { openFreshDatabase, type FreshDatabase } from '../helpers/fresh-database.js';
import { isNginxAvailable, NGINX_BIN, startShuntBalancer, type ShuntBalancer } from '../helpers/nginx.js';
import { startShunt, type ShuntProcess } from '../helpers/process.js';
import { freshWindow } from '../helpers/rate-limit-window.js';

const ADMIN = 'nginx-integration-admin-key-0123456789';
const IP_LIMIT = 5;
const BODY_LIMIT = 4 * 1024 * 1024;

async function suiteOptions(): Promise<{ skip?: string }> {
  if (IN_CI) return {};
  if (!isNginxAvailable()) return { skip: `nginx not found (${NGINX_BIN})` };
  if (!(await isPostgresAvailable())) return { skip: `PostgreSQL not reachable at ${POSTGRES_ADMIN_URL}` };
  return {};
}

interface RequestLine {
  reqId: string;
  url: string;
  route: string;
  status: number;
  ip: string;
}

interface Target {
  code: string;
  location: string;
}

const parsed = new WeakMap<ShuntProcess, { offset: number; lines: RequestLine[] }>();

/** The request log lines a Shunt process has written to stdout so far. */
function requestLines(shunt: ShuntProcess): RequestLine[] {
  const state = parsed.get(shunt) ?? { offset: 0, lines: [] };
  parsed.set(shunt, state);
  const out = shunt.stdout();
  const end = out.lastIndexOf('\n') + 1;
  for (const line of out.slice(state.offset, end).split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as Partial<RequestLine> & { msg?: string };
    if (entry.msg === 'request') state.lines.push(entry as RequestLine);
  }
  state.offset = end;
  return state.lines;
}

const redirectsServed = (shunt: ShuntProcess): number => requestLines(shunt).filter((line) => line.route === '/:code').length;

async function eventually<T>(what: string, timeoutMs: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** GET with a chosen source address (any of 127/8 reaches a server on 127.0.0.1), on a fresh connection. */
function get(url: string, options: { localAddress?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { localAddress: options.localAddress, headers: options.headers, agent: false }, (response) => {
      response.resume();
      response.once('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers }));
      response.once('error', reject);
    });
    request.once('error', reject);
    request.end();
  });
}

/** Concurrent redirect requests in a loop; every answer must be the expected 302. */
class Load {
  ok = 0;
  readonly failures: string[] = [];
  private running = true;
  private readonly workers: Promise<void>[];

  constructor(base: string, targets: readonly Target[], concurrency: number) {
    let next = 0;
    this.workers = Array.from({ length: concurrency }, async () => {
      while (this.running) {
        const target = targets[next++ % targets.length] as Target;
        try {
          const response = await fetch(`${base}/${target.code}`, { redirect: 'manual' });
          await response.arrayBuffer();
          const location = response.headers.get('location');
          if (response.status === 302 && location === target.location) this.ok += 1;
          else this.failures.push(`${response.status} ${location ?? '(no location)'} for ${target.code}`);
        } catch (error) {
          this.failures.push(`${target.code}: ${String((error as Error).cause ?? error)}`);
        }
      }
    });
  }

  /** Waits until `count` requests have succeeded since the load began. */
  until(count: number): Promise<void> {
    return eventually(`${count} redirects through nginx (${this.ok} so far, failures: ${this.failures.slice(0, 5).join('; ')})`, 60_000, () =>
      this.ok >= count ? true : undefined,
    ).then(() => undefined);
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
  }
}

describe('Shunt behind the shipped nginx configuration', await suiteOptions(), () => {
  let database: FreshDatabase | undefined;
  let nginx: ShuntBalancer | undefined;
  let env: Record<string, string> = {};
  /** The two instances by slot; a restart replaces its slot. */
  const instances: ShuntProcess[] = [];
  /** Every process started, for the lookup of log lines and for cleanup. */
  const spawned: ShuntProcess[] = [];
  const targets: Target[] = [];

  const startInstance = async (port?: number): Promise<ShuntProcess> => {
    const shunt = await startShunt(port === undefined ? env : { ...env, PORT: String(port) });
    spawned.push(shunt);
    return shunt;
  };
  const balancer = (): ShuntBalancer => {
    assert.ok(nginx, 'nginx is running');
    return nginx;
  };
  /** The process whose log has the request `reqId`. */
  const servedBy = (reqId: string): Promise<{ shunt: ShuntProcess; line: RequestLine }> =>
    eventually(`a Shunt log line for request ${reqId}`, 10_000, () => {
      for (const shunt of spawned) {
        const line = requestLines(shunt).find((entry) => entry.reqId === reqId);
        if (line !== undefined) return { shunt, line };
      }
      return undefined;
    });

  before(async () => {
    assert.ok(isNginxAvailable(), `nginx is needed (looked for ${NGINX_BIN}; set NGINX_BIN)`);
    database = await openFreshDatabase('postgres', { poolSize: 1 });
    assert.ok(database.url);
    env = {
      DATABASE_URL: database.url,
      ADMIN_API_KEY: ADMIN,
      TRUSTED_PROXIES: '127.0.0.1',
      RATE_LIMIT_IP_PER_MINUTE: String(IP_LIMIT),
      WORKERS: '1',
    };
    // One after the other: the database is migrated already, and the admin key is created once.
    instances.push(await startInstance());
    instances.push(await startInstance());
    nginx = await startShuntBalancer(instances.map((shunt) => shunt.port));
    for (let i = 0; i < 4; i += 1) {
      const response = await fetch(`${nginx.url}/api/v1/links`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ url: `https://example.com/through-nginx/${i}` }),
      });
      const body = await response.text();
      assert.equal(response.status, 201, body);
      const { code } = JSON.parse(body) as { code: string };
      targets.push({ code, location: `https://example.com/through-nginx/${i}` });
    }
  });

  after(async () => {
    await nginx?.stop();
    await Promise.all(
      spawned.map(async (shunt) => {
        if (shunt.child.exitCode === null && shunt.child.signalCode === null) shunt.child.kill('SIGKILL');
        await shunt.exited;
      }),
    );
    await database?.close();
  });

  test('traffic reaches both instances', async () => {
    const { url } = balancer();
    for (let i = 0; i < 20; i += 1) {
      const target = targets[i % targets.length] as Target;
      const response = await fetch(`${url}/${target.code}`, { redirect: 'manual', headers: { 'x-request-id': `spread-${i}` } });
      assert.equal(response.status, 302);
      assert.equal(response.headers.get('location'), target.location);
    }
    const servers = await Promise.all(Array.from({ length: 20 }, (_, i) => servedBy(`spread-${i}`)));
    for (const [slot, shunt] of instances.entries()) {
      const count = servers.filter((served) => served.shunt === shunt).length;
      assert.ok(count > 0, `instance ${slot} served none of 20 redirects`);
    }
  });

  test('request ids, the JSON access log, /metrics, /assets/ and the body limit', async () => {
    const { url } = balancer();
    const target = targets[0] as Target;

    const given = await fetch(`${url}/${target.code}`, { redirect: 'manual', headers: { 'x-request-id': 'client-chosen.id:1' } });
    assert.equal(given.headers.get('x-request-id'), 'client-chosen.id:1', 'a valid client id is kept');
    assert.equal((await servedBy('client-chosen.id:1')).line.status, 302, 'and reaches Shunt');

    for (const headers of [{}, { 'x-request-id': 'not a valid id' }] as Record<string, string>[]) {
      const response = await fetch(`${url}/${target.code}`, { redirect: 'manual', headers });
      const id = response.headers.get('x-request-id') ?? '';
      assert.match(id, /^[0-9a-f]{32}$/, 'nginx makes one when the client sent none or an invalid one');
      await servedBy(id);
    }

    const logged = await eventually('the access log line of client-chosen.id:1', 10_000, () =>
      balancer().accessLog().find((entry) => entry.request_id === 'client-chosen.id:1'),
    );
    assert.equal(logged.status, 302);
    assert.equal(logged.uri, `/${target.code}`);
    assert.ok(
      instances.some((shunt) => logged.upstream_addr === `127.0.0.1:${shunt.port}`),
      `upstream_addr ${String(logged.upstream_addr)} is one of the instances`,
    );

    const metrics = await fetch(`${url}/metrics`);
    assert.equal(metrics.status, 404, '/metrics is not served to the public');
    assert.match(metrics.headers.get('x-request-id') ?? '', /^[0-9a-f]{32}$/, "nginx's own answers carry an id too");
    assert.equal((await fetch(`${instances[0]?.url}/metrics`)).status, 200, 'but each instance still serves it');

    const asset = await fetch(`${url}/assets/app.0123abcd.js`, { headers: { 'x-request-id': 'missing-asset' } });
    assert.equal(asset.status, 404);
    assert.doesNotMatch(asset.headers.get('cache-control') ?? '', /immutable|max-age=31536000/, 'a missing asset is not cached for a year');
    assert.equal(asset.headers.get('x-request-id'), 'missing-asset');
    assert.equal((await servedBy('missing-asset')).line.status, 404, 'the answer came from Shunt');

    // Exactly the limit passes nginx and reaches Shunt (which answers this non-link with a
    // problem); one byte more is refused.
    const post = (size: number): Promise<Response> =>
      fetch(`${url}/api/v1/links`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        body: `[${' '.repeat(size - 2)}]`,
      });
    const atLimit = await post(BODY_LIMIT);
    assert.equal(atLimit.headers.get('content-type'), 'application/problem+json', `Shunt answered (${atLimit.status})`);
    assert.notEqual(atLimit.status, 413);
    assert.equal((await post(BODY_LIMIT + 1)).status, 413);
  });

  test("X-Forwarded-For is believed from nginx only: the per-IP rate limit counts each client's real address", async () => {
    const { url } = balancer();
    // Half a window: the sequence runs through nginx to two instances that each count on their own.
    await freshWindow(RATE_LIMIT_WINDOW_MS / 2);

    // Client A, with a forged X-Forwarded-For, until both instances (each counts on its own) refuse it.
    const limitedBy = new Set<ShuntProcess>();
    for (let i = 0; i < 8 * IP_LIMIT && limitedBy.size < instances.length; i += 1) {
      const id = `client-a-${i}`;
      const response = await get(`${url}/api/v1/openapi.json`, {
        localAddress: '127.0.0.2',
        headers: { 'x-forwarded-for': '198.51.100.7', 'x-request-id': id },
      });
      const { shunt, line } = await servedBy(id);
      assert.equal(line.ip, '127.0.0.2', 'Shunt sees the address nginx saw, not the forged one nor nginx');
      assert.equal(response.status, line.status);
      if (response.status === 429) limitedBy.add(shunt);
      else assert.equal(response.status, 200);
    }
    assert.equal(limitedBy.size, instances.length, 'client A is rate limited on both instances');

    // Client B is counted apart, even when it claims to be A.
    const b = await get(`${url}/api/v1/openapi.json`, { localAddress: '127.0.0.3', headers: { 'x-forwarded-for': '127.0.0.2', 'x-request-id': 'client-b' } });
    assert.equal(b.status, 200);
    assert.equal(b.headers['ratelimit-remaining'], String(IP_LIMIT - 1));
    assert.equal((await servedBy('client-b')).line.ip, '127.0.0.3');

    // Straight to an instance, X-Forwarded-For is not believed: A cannot escape its limit by naming another address...
    const direct = instances[0] as ShuntProcess;
    const aDirect = await get(`${direct.url}/api/v1/openapi.json`, { localAddress: '127.0.0.2', headers: { 'x-forwarded-for': '198.51.100.8', 'x-request-id': 'client-a-direct' } });
    assert.equal(aDirect.status, 429);
    assert.equal((await servedBy('client-a-direct')).line.ip, '127.0.0.2');
    // ...and another client cannot spend A's budget by naming A.
    const cDirect = await get(`${direct.url}/api/v1/openapi.json`, { localAddress: '127.0.0.4', headers: { 'x-forwarded-for': '127.0.0.2', 'x-request-id': 'client-c-direct' } });
    assert.equal(cDirect.status, 200);
    assert.equal((await servedBy('client-c-direct')).line.ip, '127.0.0.4');
  });

  test('SIGKILL of an instance under load: no request fails, nginx retries on the other', async () => {
    const nginxNow = balancer();
    const victim = instances[1] as ShuntProcess;
    const load = new Load(nginxNow.url, targets, 8);
    try {
      const before = redirectsServed(victim);
      await eventually('load on the instance to kill', 30_000, () => (redirectsServed(victim) >= before + 50 ? true : undefined));
      victim.child.kill('SIGKILL');
      await victim.exited;
      const atKill = load.ok;
      await load.until(atKill + 500);
    } finally {
      await load.stop();
    }
    assert.deepEqual(load.failures, [], `${load.failures.length} of ${load.ok + load.failures.length} requests failed`);

    // Not luck: nginx did send requests to the dead instance, and answered them from the other.
    const victimAddress = `127.0.0.1:${victim.port}`;
    const retried = await eventually('an access log line of a retried request', 10_000, () =>
      nginxNow.accessLog().find((entry) => String(entry.upstream_addr).startsWith(`${victimAddress}, `) && entry.status === 302),
    );
    assert.match(String(retried.upstream_status), /^(502|504), 302$/);
  });

  test('the killed instance, restarted on its port, gets traffic again within fail_timeout', async () => {
    const nginxNow = balancer();
    const killed = instances[1] as ShuntProcess;
    assert.equal(killed.child.signalCode, 'SIGKILL', 'runs after the SIGKILL test');
    const restarted = await startInstance(killed.port);
    instances[1] = restarted;
    // fail_timeout bounds how long nginx keeps a failed instance out; the rest is slack for a busy machine.
    const deadline = Date.now() + nginxNow.failTimeoutMs + 10_000;
    let sent = 0;
    while (redirectsServed(restarted) === 0) {
      assert.ok(Date.now() < deadline, `no traffic reached the restarted instance in ${nginxNow.failTimeoutMs} ms + 10 s (${sent} requests sent)`);
      const target = targets[sent % targets.length] as Target;
      const response = await fetch(`${nginxNow.url}/${target.code}`, { redirect: 'manual' });
      await response.arrayBuffer();
      assert.equal(response.status, 302);
      assert.equal(response.headers.get('location'), target.location);
      sent += 1;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });

  test('SIGTERM to an instance under load: no request fails and it exits 0', async () => {
    const nginxNow = balancer();
    const victim = instances[0] as ShuntProcess;
    const load = new Load(nginxNow.url, targets, 8);
    let exitCode: number | null = null;
    try {
      const before = redirectsServed(victim);
      await eventually('load on the instance to stop', 30_000, () => (redirectsServed(victim) >= before + 50 ? true : undefined));
      victim.child.kill('SIGTERM');
      exitCode = await victim.exited;
      await load.until(load.ok + 500);
    } finally {
      await load.stop();
    }
    const lastLines = victim.stdout().split('\n').filter((line) => !line.includes('"msg":"request"')).slice(-8);
    assert.equal(exitCode, 0, `${victim.stderr()}${lastLines.join('\n')}`);
    assert.deepEqual(load.failures, [], `${load.failures.length} of ${load.ok + load.failures.length} requests failed`);
    const out = victim.stdout();
    assert.ok(out.indexOf('"msg":"draining"') < out.indexOf('"msg":"stopped"') && out.includes('"msg":"draining"'), 'drained, then stopped');
  });
});
