/**
 * The Compose files: both are valid against the Compose specification's JSON schema (from
 * the dclint package), and the production topology is what the operations guide
 * says: two redirect instances, one api, one worker behind nginx with the shipped
 * configuration; each instance starts only once what it needs is healthy (the migration done);
 * secrets only as files; read-only containers with their data on a volume of their own; and a
 * monitoring profile whose Prometheus scrapes every instance and whose Grafana has the dashboard.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import { dirname, join } from 'node:path';
import AjvModule from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parse } from 'yaml';

// ajv and ajv-formats are CommonJS with a default export.
const Ajv = AjvModule.default;
const addFormats = addFormatsModule.default;
const require = createRequire(import.meta.url);
// The Compose specification's schema, as the dclint package ships it (draft-07).
const SCHEMA = join(dirname(require.resolve('dclint/package.json')), 'schemas/compose.schema.json');
const FILES = ['deploy/compose/compose.yaml', 'deploy/compose/compose.embedded.yaml'];

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  read_only?: boolean;
  profiles?: string[];
  environment?: Record<string, string>;
  secrets?: (string | { source: string; target?: string })[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { test?: string[]; disable?: boolean };
}
interface Compose {
  services: Record<string, Service>;
  secrets?: Record<string, { file: string }>;
  volumes?: Record<string, unknown>;
}

function load(file: string): Compose {
  // Compose reads YAML merge keys (<<), which the shared settings of the Shunt services use.
  return parse(readFileSync(file, 'utf8'), { merge: true }) as Compose;
}

describe('Compose files', () => {
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  // The schema says "format: duration" for healthcheck times; Compose means Go durations.
  ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/);
  // Its $schema names draft-07 by an https URI Ajv does not know it by: the draft is Ajv's default.
  const { $schema: _draft07, ...schema } = JSON.parse(readFileSync(SCHEMA, 'utf8')) as Record<string, unknown>;
  const validate = ajv.compile(schema);

  for (const file of FILES) {
    test(`${file} is valid against the Compose specification`, () => {
      const ok = validate(load(file));
      assert.ok(ok, JSON.stringify(validate.errors, null, 2));
    });
  }

  test('the schema check can fail: a misspelt key is refused', () => {
    const compose = load(FILES[1] ?? '');
    (compose.services.shunt as Record<string, unknown>).read_onyl = true;
    assert.equal(validate(compose), false);
  });

  const compose = load('deploy/compose/compose.yaml');
  const services = compose.services;
  const shunts = Object.entries(services).filter(([, service]) => service.image === services.migrate?.image);
  const instances = shunts.filter(([name]) => name !== 'migrate');
  const role = (service: Service): string | undefined => service.environment?.ROLE;

  test('two redirect instances, one api and one worker, all from the one image', () => {
    assert.deepEqual(instances.map(([, service]) => role(service)).sort(), ['api', 'redirect', 'redirect', 'worker']);
    assert.deepEqual(services.migrate?.command, ['migrate']);
  });

  test('every instance waits for the migration and for healthy dependencies; nginx for healthy instances', () => {
    for (const [name, service] of instances) {
      const needs = service.depends_on as Record<string, { condition: string }>;
      assert.equal(needs.migrate?.condition, 'service_completed_successfully', name);
      for (const dependency of ['redis', 'rabbitmq']) assert.equal(needs[dependency]?.condition, 'service_healthy', `${name} on ${dependency}`);
      assert.ok((service.healthcheck?.test ?? []).join(' ').includes('/readyz'), `${name} health check`);
    }
    assert.equal((services.migrate?.depends_on as Record<string, { condition: string }>).postgres?.condition, 'service_healthy');
    for (const dependency of ['postgres', 'redis', 'rabbitmq']) assert.ok(services[dependency]?.healthcheck?.test !== undefined, `${dependency} health check`);
    const nginxNeeds = services.nginx?.depends_on as Record<string, { condition: string }>;
    for (const [name, service] of instances) {
      if (role(service) !== 'worker') assert.equal(nginxNeeds[name]?.condition, 'service_healthy', `nginx waits for ${name}`);
    }
  });

  test('secrets only as files, read-only containers, a named data volume per instance', () => {
    const dataVolumes = new Set<string>();
    for (const [name, service] of shunts) {
      assert.equal(service.read_only, true, name);
      const mounted = new Set((service.secrets ?? []).map((secret) => (typeof secret === 'string' ? secret : secret.source)));
      for (const [key, value] of Object.entries(service.environment ?? {})) {
        assert.ok(!['ADMIN_API_KEY', 'DATABASE_URL', 'REDIS_URL', 'AMQP_URL'].includes(key), `${name}: ${key} must come as a file`);
        if (key.endsWith('_FILE')) {
          const secret = value.replace('/run/secrets/', '');
          assert.ok(mounted.has(secret) && compose.secrets?.[secret] !== undefined, `${name}: ${key}=${value}`);
        }
      }
      const data = (service.volumes ?? []).find((volume) => volume.endsWith(':/var/lib/shunt'))?.split(':')[0] ?? '';
      assert.ok(compose.volumes !== undefined && data in compose.volumes, `${name} named data volume`);
      assert.ok(!dataVolumes.has(data), `${name} shares its spool volume`);
      dataVolumes.add(data);
    }
  });

  test('nginx runs the shipped Shunt configuration, the redirect instances as its upstream', () => {
    const mounts = services.nginx?.volumes ?? [];
    assert.ok(mounts.includes('../nginx/shunt.conf:/etc/nginx/shunt.conf:ro'));
    const upstreams = readFileSync('deploy/compose/nginx/upstreams.conf', 'utf8');
    for (const [name, service] of instances) {
      assert.equal(upstreams.includes(`server ${name}:8080`), role(service) === 'redirect', `${name} in the upstream`);
    }
  });

  test('the monitoring profile scrapes every instance and provisions the dashboard', () => {
    assert.deepEqual(services.prometheus?.profiles, ['monitoring']);
    assert.deepEqual(services.grafana?.profiles, ['monitoring']);
    const prometheus = parse(readFileSync('deploy/prometheus/prometheus.yml', 'utf8')) as {
      rule_files: string[];
      scrape_configs: { job_name: string; static_configs: { targets: string[]; labels: { role: string } }[] }[];
    };
    const job = prometheus.scrape_configs.find((config) => config.job_name === 'shunt');
    const scraped = new Map((job?.static_configs ?? []).flatMap((config) => config.targets.map((target) => [target, config.labels.role])));
    assert.deepEqual(new Map(instances.map(([name, service]) => [`${name}:8080`, role(service)])), scraped);
    assert.deepEqual(prometheus.rule_files, ['shunt-rules.yml']);
    assert.ok((services.grafana?.volumes ?? []).some((volume) => volume.startsWith('../grafana/shunt.json:')));
  });
});
