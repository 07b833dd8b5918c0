/**
 * Writes the OpenAPI document exactly as a running Shunt serves it (embedded store in
 * memory), so independent tools can lint it. Usage: tsx scripts/write-openapi.ts <file>
 */
import { writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { loadConfig } from '../src/config/config.js';
import { createRuntime } from '../src/server/runtime.js';

const target = process.argv[2] ?? 'openapi.json';
const config = loadConfig({ DATA_DIR: 'memory://', ADMIN_API_KEY: 'openapi-writer-key-0123456789', NODE_ENV: 'test' });
const runtime = await createRuntime(config, { logger: pino({ level: 'silent' }), defaultMetrics: false });
try {
  const response = await runtime.built.app.inject({ method: 'GET', url: '/api/v1/openapi.json' });
  if (response.statusCode !== 200) throw new Error(`openapi.json answered ${response.statusCode}`);
  writeFileSync(target, `${JSON.stringify(response.json(), null, 2)}\n`);
  console.log(`wrote ${target}`);
} finally {
  await runtime.close();
}
