/**
 * The metrics a running Shunt exports (on PostgreSQL, Redis and RabbitMQ, so every optional
 * metric is there) against what reads them: `promtool check metrics` has nothing to say, and
 * every metric an alert rule, a dashboard panel or the worker's autoscaling adapter queries
 * exists, so renaming a metric breaks this test rather than a dashboard in production.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { amqpReachable, deleteClickTopology, SHARED_AMQP_URL, uniqueQueue } from '../helpers/amqp.js';
import { createPostgresDatabase, IN_CI } from '../helpers/backends.js';
import { adapterExpressions, commandTestOptions, dashboardExpressions, rules, shuntMetricNames } from '../helpers/deploy-files.js';
import { isRedisAvailable, REDIS_TEST_URL, sharedTierTestOptions } from '../helpers/instance-pair.js';
import { startShunt, type ShuntProcess } from '../helpers/process.js';

const tiers = await sharedTierTestOptions();
const brokerUp = await amqpReachable();
const promtool = commandTestOptions('promtool');
const options = tiers.skip !== undefined ? tiers : promtool.skip !== undefined ? promtool : !brokerUp && !IN_CI ? { skip: 'RabbitMQ not reachable' } : {};

/** Metric names as exported: a histogram's _bucket, _sum and _count series count as its name. */
function exportedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    if (name === undefined) continue;
    names.add(name);
    if (type === 'histogram' || type === 'summary') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
  }
  return names;
}

describe('Exported metrics', options, () => {
  let shunt: ShuntProcess | undefined;
  let dropDatabase: (() => Promise<void>) | undefined;
  const queue = uniqueQueue();
  let text = '';

  before(async () => {
    assert.ok(await isRedisAvailable(), `Redis is not reachable at ${REDIS_TEST_URL}`);
    assert.ok(brokerUp, `RabbitMQ is not reachable at ${new URL(SHARED_AMQP_URL).host}`);
    const database = await createPostgresDatabase();
    dropDatabase = database.drop;
    shunt = await startShunt({
      DATABASE_URL: database.url,
      REDIS_URL: REDIS_TEST_URL,
      REDIS_KEY_PREFIX: `shunt-test-${randomBytes(4).toString('hex')}`,
      AMQP_URL: SHARED_AMQP_URL,
      AMQP_QUEUE: queue,
      ROLE: 'all',
      WORKERS: '1',
      LOG_LEVEL: 'warn',
    });
    // One redirect (an unknown code) so the latency histogram has series of the redirect route.
    await fetch(`${shunt.url}/nosuchcode`, { redirect: 'manual' });
    // Ready means the database answers; the broker connections follow within moments.
    const url = `${shunt.url}/metrics`;
    const deadline = Date.now() + 15_000;
    do {
      text = await (await fetch(url)).text();
      if (/^shunt_broker_connected\{side="publisher"\} 1$/m.test(text) && /^shunt_broker_connected\{side="consumer"\} 1$/m.test(text)) break;
      await sleep(200);
    } while (Date.now() < deadline);
  });

  after(async () => {
    if (shunt !== undefined && shunt.child.exitCode === null) {
      shunt.child.kill('SIGTERM');
      await shunt.exited;
    }
    await dropDatabase?.();
    await deleteClickTopology(queue);
  });

  test('promtool check metrics finds nothing to say about /metrics', () => {
    const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(`${result.stdout}${result.stderr}`, '');
    assert.equal(result.status, 0);
  });

  test('every metric that alert rules, dashboard panels and the autoscaling adapter query is exported', () => {
    const exported = exportedNames(text);
    const recorded = new Set(rules().flatMap((rule) => (rule.record === undefined ? [] : [rule.record])));
    const queries = [
      ...rules().map((rule) => ({ where: `rule ${rule.alert ?? rule.record}`, expr: rule.expr })),
      ...dashboardExpressions(),
      ...adapterExpressions(),
    ];
    assert.ok(queries.length > 40, `${queries.length} queries found`);
    const missing: string[] = [];
    let checked = 0;
    for (const { where, expr } of queries) {
      for (const name of shuntMetricNames(expr)) {
        checked += 1;
        if (!exported.has(name) && !recorded.has(name)) missing.push(`${where}: ${name}`);
      }
    }
    assert.ok(checked > 40, `${checked} metric references`);
    assert.deepEqual(missing, []);
  });

  test('the redirect route and the role labels the rules rely on are what Shunt exports', () => {
    assert.match(text, /shunt_http_request_duration_seconds_bucket\{le="0\.05",method="GET",route="\/:code",status="404"\}/);
    assert.match(text, /^shunt_redis_up 1$/m);
    assert.match(text, /^shunt_broker_connected\{side="publisher"\} 1$/m);
    assert.match(text, /^shunt_broker_connected\{side="consumer"\} 1$/m);
    assert.match(text, /^shunt_db_pool_max_connections 10$/m);
  });
});
