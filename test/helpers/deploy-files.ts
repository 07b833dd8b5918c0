/**
 * What the deployment files under deploy/ ask of Shunt: the PromQL expressions of the alert
 * rules, the Grafana dashboard and the Kubernetes autoscaling adapter, and the metric names
 * those expressions read. Also where a command-line tool the deploy tests need is missing.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { IN_CI } from './backends.js';

export const RULES_FILE = 'deploy/prometheus/shunt-rules.yml';
export const RULES_TEST_FILE = 'deploy/prometheus/shunt-rules.test.yml';
export const DASHBOARD_FILE = 'deploy/grafana/shunt.json';
export const ADAPTER_FILE = 'deploy/k8s/autoscaling/prometheus-adapter-rules.yaml';

export interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function ruleGroups(): { name: string; rules: Rule[] }[] {
  return (parse(readFileSync(RULES_FILE, 'utf8')) as { groups: { name: string; rules: Rule[] }[] }).groups;
}

export function rules(): Rule[] {
  return ruleGroups().flatMap((group) => group.rules);
}

interface Panel {
  title?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

export function dashboardExpressions(): { where: string; expr: string }[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as {
    panels: Panel[];
    templating: { list: { name: string; query?: string | { query?: string } }[] };
  };
  const found: { where: string; expr: string }[] = [];
  const walk = (panels: Panel[]): void => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) if (target.expr !== undefined) found.push({ where: `panel "${panel.title}"`, expr: target.expr });
      walk(panel.panels ?? []);
    }
  };
  walk(dashboard.panels);
  for (const variable of dashboard.templating.list) {
    const query = typeof variable.query === 'string' ? variable.query : variable.query?.query;
    if (query !== undefined && variable.name !== 'datasource') found.push({ where: `variable $${variable.name}`, expr: query });
  }
  return found;
}

/** The series queries of prometheus-adapter's rules (the worker's autoscaling metric). */
export function adapterExpressions(): { where: string; expr: string }[] {
  const config = parse(readFileSync(ADAPTER_FILE, 'utf8')) as { data: Record<string, string> };
  const adapter = parse(Object.values(config.data)[0] ?? '') as { externalRules?: { seriesQuery: string; metricsQuery: string }[] };
  return (adapter.externalRules ?? []).flatMap((rule) => [
    { where: 'prometheus-adapter seriesQuery', expr: rule.seriesQuery },
    { where: 'prometheus-adapter metricsQuery', expr: rule.metricsQuery },
  ]);
}

/**
 * Names of Shunt's metrics (and recorded series) an expression reads. String literals are
 * dropped first, so label values such as job="shunt" are not taken for names.
 */
export function shuntMetricNames(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  return [...new Set(withoutStrings.match(/\bshunt[_:][A-Za-z0-9_:]*/g) ?? [])];
}

/** describe() options for a suite needing a command: skipped locally without it, failing under CI. */
export function commandTestOptions(command: string, versionArgs: string[] = ['--version']): { skip?: string } {
  const present = spawnSync(command, versionArgs, { stdio: 'ignore' }).status === 0;
  return present || IN_CI ? {} : { skip: `${command} is not installed` };
}
