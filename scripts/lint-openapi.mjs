#!/usr/bin/env node
// Lints the served OpenAPI document with Redocly's independent linter (recommended rules).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'shunt-openapi-'));
const file = join(dir, 'openapi.json');
const run = (command, args) => spawnSync(command, args, { stdio: 'inherit', env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' } }).status ?? 1;
let status = run(process.execPath, ['--import', 'tsx', 'scripts/write-openapi.ts', file]);
if (status === 0) status = run('npx', ['redocly', 'lint', '--config', 'redocly.yaml', file]);
rmSync(dir, { recursive: true, force: true });
process.exit(status);
