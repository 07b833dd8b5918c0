#!/usr/bin/env node
// Runs Shunt's test tiers in order and ends with one line: "N passed, N failed, N skipped".
// Usage: node scripts/run-tests.mjs [static|unit|storage|api|integration|fault|failover|e2e|deploy|image ...]  (default: all)
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

const ALL = ['static', 'unit', 'storage', 'api', 'integration', 'fault', 'failover', 'e2e', 'deploy', 'image'];
const tiers = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ALL;
const resultsDir = '.test-results';
rmSync(resultsDir, { recursive: true, force: true });
mkdirSync(resultsDir, { recursive: true });

const total = { passed: 0, failed: 0, skipped: 0 };

function run(command, args, env = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', env: { ...process.env, ...env } });
  return result.status ?? 1;
}

function staticCheck(name, command, args) {
  console.log(`\n# static: ${name}`);
  const ok = run(command, args) === 0;
  console.log(`# static: ${name} ${ok ? 'ok' : 'FAILED'}`);
  if (ok) total.passed += 1;
  else total.failed += 1;
}

function testFiles(dir) {
  let found = [];
  let entries = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return found;
  }
  for (const entry of entries.sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) found = found.concat(testFiles(path));
    else if (entry.endsWith('.test.ts')) found.push(path);
  }
  return found;
}

for (const tier of tiers) {
  if (tier === 'static') {
    staticCheck('typecheck', 'npx', ['tsc', '--noEmit', '-p', 'tsconfig.json']);
    staticCheck('lint', 'npx', ['eslint', '--max-warnings', '0', '.']);
    staticCheck('openapi lint', 'node', ['scripts/lint-openapi.mjs']);
    continue;
  }
  if (!ALL.includes(tier)) {
    console.error(`unknown tier: ${tier}`);
    process.exit(2);
  }
  // The browser tier drives the built app (server and dashboard), so it builds first.
  if (tier === 'e2e' && run('npm', ['run', 'build', '--silent']) !== 0) {
    console.log('# tier: e2e: build FAILED');
    total.failed += 1;
    continue;
  }
  const files = testFiles(join('test', tier));
  console.log(`\n# tier: ${tier} (${files.length} files)`);
  if (files.length === 0) continue;
  const countsFile = join(resultsDir, `${tier}.json`);
  const status = run(process.execPath, [
    '--import', 'tsx',
    '--test',
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    '--test-reporter=./scripts/count-reporter.mjs', `--test-reporter-destination=${countsFile}`,
    ...files,
  ], { SHUNT_TEST_TIER: tier });
  let counts = { passed: 0, failed: 0, skipped: 0 };
  try {
    counts = JSON.parse(readFileSync(countsFile, 'utf8'));
  } catch {
    counts.failed = 1;
  }
  if (status !== 0 && counts.failed === 0) counts.failed = 1;
  total.passed += counts.passed;
  total.failed += counts.failed;
  total.skipped += counts.skipped;
  console.log(`# tier: ${tier}: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
}

console.log(`${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
process.exit(total.failed > 0 ? 1 : 0);
