/**
 * The alert rules: promtool accepts them and their unit tests pass; every alert is made to
 * fire and to stay quiet by those tests; every alert names its runbook, and the runbook
 * section exists in docs/operations.md.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { commandTestOptions, rules, RULES_FILE, RULES_TEST_FILE } from '../helpers/deploy-files.js';

function promtool(...args: string[]): { status: number | null; output: string } {
  const result = spawnSync('promtool', args, { encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** GitHub's anchor for a Markdown heading. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

interface RuleTest {
  alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[];
}

describe('Prometheus alert rules', commandTestOptions('promtool'), () => {
  test('promtool check rules accepts the rules', () => {
    const result = promtool('check', 'rules', RULES_FILE);
    assert.equal(result.status, 0, result.output);
  });

  test('promtool test rules passes the unit tests', () => {
    const result = promtool('test', 'rules', RULES_TEST_FILE);
    assert.equal(result.status, 0, result.output);
  });

  test('every alert is shown to fire and to stay quiet', () => {
    const tests = (parse(readFileSync(RULES_TEST_FILE, 'utf8')) as { tests: RuleTest[] }).tests;
    const cases = tests.flatMap((t) => t.alert_rule_test ?? []);
    const alerts = rules().flatMap((rule) => (rule.alert === undefined ? [] : [rule.alert]));
    assert.ok(alerts.length >= 10, `${alerts.length} alerts`);
    for (const alert of alerts) {
      const own = cases.filter((c) => c.alertname === alert);
      assert.ok(own.some((c) => (c.exp_alerts ?? []).length > 0), `${alert} is never made to fire`);
      assert.ok(own.some((c) => (c.exp_alerts ?? []).length === 0), `${alert} is never shown quiet`);
    }
  });

  test('every alert has a severity and a runbook section in docs/operations.md', () => {
    const operations = readFileSync('docs/operations.md', 'utf8');
    const anchors = new Set([...operations.matchAll(/^#{1,6} (.+)$/gm)].map((match) => anchor(match[1] ?? '')));
    for (const rule of rules()) {
      if (rule.alert === undefined) continue;
      assert.match(rule.labels?.severity ?? '', /^(page|ticket)$/, `${rule.alert} severity`);
      const runbook = rule.annotations?.runbook ?? '';
      const [file, section] = runbook.split('#');
      assert.equal(file, 'docs/operations.md', `${rule.alert} runbook ${runbook}`);
      assert.ok(anchors.has(section ?? ''), `${rule.alert}: no heading "#${section}" in docs/operations.md`);
    }
  });
});
