/**
 * Two Shunt instances in this process, sharing one fresh PostgreSQL database and one Redis
 * key prefix, each listening on a real port: the cached-redirect path ahead of Fastify only
 * runs on real sockets, so every redirect a test cares about goes over HTTP. Also a plain
 * HTTP client (which can pick its source address on the loopback network) and a direct Redis
 * client for looking at the shared tier.
 *
 * Redis and PostgreSQL missing: a local run skips, a CI run fails (see sharedTierTestOptions).
 */
import { randomBytes } from 'node:crypto';
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Redis } from 'ioredis';
import pg from 'pg';
import { cacheKeys, type CacheKeys } from '../../src/cache/cache-keys.js';
import type { RuntimeOptions } from '../../src/server/runtime.js';
import { createPostgresDatabase, IN_CI, isPostgresAvailable, POSTGRES_ADMIN_URL } from './backends.js';
import { ADMIN_KEY, startTestApp, type TestApp } from './test-app.js';

export const REDIS_TEST_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A client for checks only: no retries, so a missing Redis is an error at once. */
function checkClient(): Redis {
  return new Redis(REDIS_TEST_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 2000 });
}

let redisAvailable: Promise<boolean> | undefined;

export function isRedisAvailable(): Promise<boolean> {
  return (redisAvailable ??= (async () => {
    const client = checkClient();
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
      return true;
    } catch {
      return false;
    } finally {
      client.disconnect();
    }
  })());
}

/** describe() options: skipped locally without PostgreSQL or Redis; under CI=true never skipped, so it fails. */
export async function sharedTierTestOptions(): Promise<{ skip?: string }> {
  if (IN_CI) return {};
  if (!(await isPostgresAvailable())) return { skip: `PostgreSQL not reachable at ${POSTGRES_ADMIN_URL}` };
  if (!(await isRedisAvailable())) return { skip: `Redis not reachable at ${REDIS_TEST_URL}` };
  return {};
}

export interface Instance {
  name: 'A' | 'B';
  app: TestApp;
  /** http://127.0.0.1:PORT */
  url: string;
}

export interface InstancePair {
  a: Instance;
  b: Instance;
  both: readonly [Instance, Instance];
  /** REDIS_KEY_PREFIX of both instances: unique to this pair. */
  prefix: string;
  keys: CacheKeys;
  redis: Redis;
  /** Queries the shared database directly. */
  sql<R extends pg.QueryResultRow = Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]>;
  databaseUrl: string;
  close(): Promise<void>;
}

export interface InstancePairOptions {
  /** Environment of both instances, on top of the test defaults. */
  env?: Record<string, string>;
  runtime?: RuntimeOptions;
}

export async function startInstancePair(options: InstancePairOptions = {}): Promise<InstancePair> {
  const prefix = `t-${randomBytes(6).toString('hex')}`;
  const redis = checkClient();
  redis.on('error', () => undefined);
  // Fails the suite (rather than letting the instances fall back to per-process tiers) when Redis is away.
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    redis.disconnect();
    throw new Error(`Redis not reachable at ${REDIS_TEST_URL}: ${(error as Error).message}`, { cause: error });
  }
  let database: Awaited<ReturnType<typeof createPostgresDatabase>>;
  try {
    database = await createPostgresDatabase();
  } catch (error) {
    redis.disconnect();
    throw error;
  }
  const pool = new pg.Pool({ connectionString: database.url, max: 2 });
  const started: Instance[] = [];
  const close = async (): Promise<void> => {
    const results = await Promise.allSettled(started.map((instance) => instance.app.close()));
    // Instances flush pending invalidations while closing: only then are all their keys written.
    results.push(...(await Promise.allSettled([deleteKeys(redis, prefix), pool.end()])));
    redis.disconnect();
    results.push(...(await Promise.allSettled([database.drop()])));
    const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failure !== undefined) throw failure.reason;
  };
  try {
    for (const name of ['A', 'B'] as const) {
      // Each instance names its connections, so pg_stat_activity tells them apart.
      const url = new URL(database.url);
      url.searchParams.set('application_name', `shunt-${name.toLowerCase()}`);
      const app = await startTestApp('postgres', {
        databaseUrl: url.href,
        env: { REDIS_URL: REDIS_TEST_URL, REDIS_KEY_PREFIX: prefix, ...options.env },
        ...(options.runtime === undefined ? {} : { runtime: options.runtime }),
      });
      const instance: Instance = { name, app, url: '' };
      started.push(instance);
      const address = await app.runtime.built.app.listen({ host: '127.0.0.1', port: 0 });
      instance.url = address;
    }
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
  const [a, b] = started as [Instance, Instance];
  return {
    a,
    b,
    both: [a, b],
    prefix,
    keys: cacheKeys(prefix),
    redis,
    sql: async <R extends pg.QueryResultRow>(text: string, params: unknown[] = []) => (await pool.query<R>(text, params)).rows,
    databaseUrl: database.url,
    close,
  };
}

/** SCAN + DEL of every key under the prefix: never anything else in the shared Redis. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface SendOptions {
  method?: 'GET' | 'HEAD' | 'POST' | 'PATCH' | 'DELETE';
  headers?: Record<string, string>;
  body?: string;
  /** The client's source address, e.g. 127.0.0.2: the peer address the instance sees. */
  localAddress?: string;
}

// One connection per request: no pooled socket carries state from one request to the next.
const agent = new Agent({ keepAlive: false });

/** One HTTP request over a real socket; redirects are not followed. */
export function send(url: string, options: SendOptions = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      url,
      {
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
        agent,
        ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(options.body);
  });
}

/** A JSON API call over a real socket, with the admin key unless another (or null) is given. */
export async function api(
  instance: Instance,
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  path: string,
  body?: unknown,
  key: string | null = ADMIN_KEY,
): Promise<Answer & { json: () => unknown }> {
  const headers: Record<string, string> = {};
  if (key !== null) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const answer = await send(`${instance.url}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { ...answer, json: () => JSON.parse(answer.body) as unknown };
}

export interface CreatedLink {
  code: string;
  url: string;
}

/** Creates a link through an instance's API; fails loudly on anything but 201. */
export async function createLink(instance: Instance, body: Record<string, unknown>): Promise<CreatedLink> {
  const answer = await api(instance, 'POST', '/api/v1/links', body);
  if (answer.status !== 201) throw new Error(`create link through ${instance.name}: ${answer.status} ${answer.body}`);
  return answer.json() as CreatedLink;
}
