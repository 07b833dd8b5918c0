/**
 * Starts a whole Shunt runtime (store, migrations, services, app) for a test, on either
 * backend, without a socket: requests go through Fastify's inject().
 */
import { Writable } from 'node:stream';
import type { LightMyRequestResponse } from 'fastify';
import { pino } from 'pino';
import { loadConfig, type Config } from '../../src/config/config.js';
import { createRuntime, type Runtime, type RuntimeOptions } from '../../src/server/runtime.js';
import { createPostgresDatabase, type Backend } from './backends.js';

export const ADMIN_KEY = 'test-admin-key-0123456789abcdef';

export interface TestApp {
  runtime: Runtime;
  config: Config;
  /** Log lines written by the app, parsed. */
  logs: Record<string, unknown>[];
  request(options: {
    method?: 'GET' | 'HEAD' | 'POST' | 'PATCH' | 'DELETE' | 'PUT' | 'OPTIONS';
    url: string;
    key?: string | null;
    body?: unknown;
    headers?: Record<string, string>;
    payload?: string | Buffer;
  }): Promise<LightMyRequestResponse>;
  /** Creates a key through the API and returns its secret. */
  createKey(role: 'admin' | 'member', name?: string): Promise<string>;
  close(): Promise<void>;
}

export interface TestAppOptions {
  env?: Record<string, string>;
  runtime?: RuntimeOptions;
  /** Reuse this database URL instead of creating one (postgres only). */
  databaseUrl?: string;
}

export async function startTestApp(backend: Backend, options: TestAppOptions = {}): Promise<TestApp> {
  let drop: (() => Promise<void>) | undefined;
  const env: Record<string, string> = {
    NODE_ENV: 'test',
    ADMIN_API_KEY: ADMIN_KEY,
    BASE_URL: 'http://sho.rt',
    LOG_LEVEL: 'info',
    DATA_DIR: 'memory://',
    CLICK_FLUSH_INTERVAL_MS: '50',
    ...options.env,
  };
  if (backend === 'postgres') {
    if (options.databaseUrl !== undefined) env.DATABASE_URL = options.databaseUrl;
    else {
      const database = await createPostgresDatabase();
      env.DATABASE_URL = database.url;
      drop = database.drop;
    }
  }
  const config = loadConfig(env);
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  const logger = pino({ level: config.logLevel }, sink);
  const runtime = await createRuntime(config, { logger, defaultMetrics: false, ...options.runtime });
  // The first upkeep run (retention, minute-rollup pruning) would race fixtures dated in the past.
  await runtime.upkeepIdle();
  const app = runtime.built.app;
  const testApp: TestApp = {
    runtime,
    config,
    logs,
    request({ method = 'GET', url, key = ADMIN_KEY, body, headers = {}, payload }) {
      const allHeaders: Record<string, string> = { ...headers };
      if (key !== null) allHeaders.authorization = `Bearer ${key}`;
      if (body !== undefined) allHeaders['content-type'] ??= 'application/json';
      return app.inject({
        method,
        url,
        headers: allHeaders,
        ...(payload !== undefined ? { payload } : body !== undefined ? { payload: JSON.stringify(body) } : {}),
      });
    },
    async createKey(role, name = `${role} key`) {
      const response = await testApp.request({ method: 'POST', url: '/api/v1/keys', body: { name, role } });
      if (response.statusCode !== 201) throw new Error(`createKey: ${response.statusCode} ${response.body}`);
      return (response.json<{ key: string }>()).key;
    },
    async close() {
      await runtime.close();
      await drop?.();
    },
  };
  return testApp;
}
