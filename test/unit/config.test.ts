import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError, loadConfig, type Config } from '../../src/config/config.js';

const dir = mkdtempSync(join(tmpdir(), 'shunt-config-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let fileCounter = 0;
function secretFile(content: string): string {
  fileCounter += 1;
  const path = join(dir, `secret-${fileCounter}`);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}

/** The ConfigError thrown for `env`; fails the test when loadConfig accepts it. */
function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.name, 'ConfigError');
    // The message lists every problem, one per line.
    for (const problem of error.problems) assert.ok(error.message.includes(problem), problem);
    return error;
  }
  assert.fail(`expected loadConfig to refuse ${JSON.stringify(env)}`);
}

function problemsFor(env: Record<string, string>, variable: string): string[] {
  return configError(env).problems.filter((problem) => problem.startsWith(variable));
}

const GOOD_ADMIN_KEY = 'admin-key-0123456789abcdefghij';

describe('loadConfig: defaults', () => {
  test('an empty environment gives the documented defaults', () => {
    const config = loadConfig({});
    assert.equal(config.env, 'development');
    assert.equal(config.role, 'all');
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.port, 8080);
    assert.equal(config.baseUrl.href, 'http://localhost:8080/');
    assert.deepEqual(config.database, { url: undefined, replicaUrls: [], dataDir: './data', poolSize: 10, connectTimeoutMs: 1000, statementTimeoutMs: 15_000, breakerThreshold: 3, breakerCooldownMs: 1000 });
    assert.deepEqual(config.redis, { url: undefined, commandTimeoutMs: 100, breakerThreshold: 3, breakerCooldownMs: 2000, keyPrefix: 'shunt' });
    assert.equal(config.workers, 1);
    assert.deepEqual(config.amqp, { url: undefined, queue: 'shunt.clicks', prefetch: 128, confirmTimeoutMs: 5000 });
    assert.equal(config.adminApiKey, undefined);
    assert.deepEqual(config.codes, { length: 7, blockSize: 1000 });
    assert.deepEqual(config.destinations, { maxUrlLength: 2048, blockedDomains: [], allowPrivateAddresses: false });
    assert.deepEqual(config.rateLimits, { keyPerMinute: 600, ipPerMinute: 60, notFoundPerMinute: 120, passwordPerLinkPerMinute: 10, passwordPerIpPerMinute: 20 });
    assert.deepEqual(config.trustedProxies, []);
    // Embedded: one process sees every change to a link, so the in-process TTL is long.
    assert.deepEqual(config.cache, { maxEntries: 100_000, ttlSeconds: 300, redisTtlSeconds: 3600, negativeTtlSeconds: 60 });
    assert.equal(loadConfig({ DATABASE_URL: 'postgres://localhost/shunt' }).cache.ttlSeconds, 10, 'a shared database keeps the short TTL');
    assert.deepEqual(config.clicks, {
      enabled: true,
      flushIntervalMs: 250,
      batchSize: 500,
      storeRawIp: false,
      retentionDays: 395,
      deletedLinkRetentionDays: 7,
      spoolDir: 'data/spool',
      spoolMaxBytes: 1024 ** 3,
    });
    assert.deepEqual(config.worker, { batchSize: 5000, batchWaitMs: 100, concurrency: 2 });
    assert.equal(loadConfig({ DATABASE_URL: 'postgres://localhost/shunt' }).worker.batchSize, 20_000, 'PostgreSQL takes larger batches');
    assert.deepEqual(config.exports, { syncMaxRows: 10_000, ttlHours: 24 });
    assert.deepEqual(config.events, { maxStreams: 1000, maxStreamsPerKey: 10 });
    assert.deepEqual(config.http, { bodyLimitBytes: 4 * 1024 * 1024, permanentRedirectMaxAge: 3600, keepAliveTimeoutMs: 72_000 });
    assert.equal(config.shutdownTimeoutMs, 10_000);
    assert.equal(config.shutdownDelayMs, 0);
    assert.equal(config.logLevel, 'info');
  });

  test('empty strings count as unset', () => {
    const config = loadConfig({ PORT: '', ROLE: '', DATABASE_URL: '', ADMIN_API_KEY: '', ADMIN_API_KEY_FILE: '' });
    assert.equal(config.port, 8080);
    assert.equal(config.role, 'all');
    assert.equal(config.database.url, undefined);
    assert.equal(config.adminApiKey, undefined);
  });

  test('the base URL follows PORT when BASE_URL is unset', () => {
    assert.equal(loadConfig({ PORT: '3000' }).baseUrl.href, 'http://localhost:3000/');
  });
});

describe('loadConfig: workers', () => {
  test('production with PostgreSQL uses every core by default', () => {
    const config = loadConfig({ NODE_ENV: 'production', DATABASE_URL: 'postgres://db/shunt' });
    assert.ok(config.workers >= 1);
    assert.equal(config.workers, availableParallelism());
  });

  test('the embedded store runs one worker, even in production', () => {
    assert.equal(loadConfig({ NODE_ENV: 'production' }).workers, 1);
    assert.match(problemsFor({ WORKERS: '2' }, 'WORKERS')[0] ?? '', /needs DATABASE_URL/);
  });

  test('WORKERS must be a positive whole number', () => {
    assert.equal(problemsFor({ WORKERS: '0', DATABASE_URL: 'postgres://db/shunt' }, 'WORKERS').length, 1);
    assert.equal(problemsFor({ WORKERS: 'many', DATABASE_URL: 'postgres://db/shunt' }, 'WORKERS').length, 1);
  });
});

describe('loadConfig: every variable is parsed', () => {
  const env: Record<string, string> = {
    NODE_ENV: 'production',
    ROLE: 'redirect',
    HOST: '127.0.0.1',
    PORT: '9090',
    BASE_URL: 'https://sho.rt',
    DATABASE_URL: 'postgres://shunt:pw@db.internal:5432/shunt',
    DATABASE_REPLICA_URLS: 'postgresql://r1.internal/shunt, postgres://r2.internal/shunt',
    DATA_DIR: '/var/lib/shunt',
    DATABASE_POOL_SIZE: '25',
    DATABASE_CONNECT_TIMEOUT_MS: '700',
    DATABASE_STATEMENT_TIMEOUT_MS: '4000',
    DATABASE_BREAKER_THRESHOLD: '4',
    DATABASE_BREAKER_COOLDOWN_MS: '1500',
    REDIS_URL: 'rediss://cache.internal:6380',
    AMQP_URL: 'amqps://mq.internal',
    ADMIN_API_KEY: GOOD_ADMIN_KEY,
    CODE_LENGTH: '9',
    CODE_BLOCK_SIZE: '5000',
    MAX_URL_LENGTH: '4096',
    BLOCKED_DOMAINS: 'Evil.COM, bad.example ,',
    ALLOW_PRIVATE_ADDRESSES: 'yes',
    RATE_LIMIT_KEY_PER_MINUTE: '1200',
    RATE_LIMIT_IP_PER_MINUTE: '120',
    RATE_LIMIT_404_PER_MINUTE: '30',
    RATE_LIMIT_PASSWORD_PER_LINK_PER_MINUTE: '5',
    RATE_LIMIT_PASSWORD_PER_IP_PER_MINUTE: '7',
    REDIS_COMMAND_TIMEOUT_MS: '50',
    REDIS_BREAKER_THRESHOLD: '5',
    REDIS_BREAKER_COOLDOWN_MS: '1000',
    REDIS_KEY_PREFIX: 'acme',
    CACHE_REDIS_TTL_SECONDS: '600',
    CACHE_NEGATIVE_TTL_SECONDS: '15',
    WORKERS: '3',
    TRUSTED_PROXIES: '10.0.0.0/8, 192.168.1.1, ::1, fd00::/8',
    CACHE_MAX_ENTRIES: '0',
    CACHE_TTL_SECONDS: '5',
    CLICK_FLUSH_INTERVAL_MS: '250',
    CLICK_BATCH_SIZE: '50',
    CLICKS_STORE_RAW_IP: 'true',
    CLICKS_ENABLED: 'false',
    CLICKS_RETENTION_DAYS: '30',
    CLICKS_SPOOL_DIR: '/var/spool/shunt',
    CLICKS_SPOOL_MAX_BYTES: '10485760',
    AMQP_QUEUE: 'acme.clicks',
    AMQP_PREFETCH: '8',
    AMQP_CONFIRM_TIMEOUT_MS: '2000',
    WORKER_BATCH_SIZE: '1000',
    WORKER_BATCH_WAIT_MS: '50',
    WORKER_CONCURRENCY: '3',
    EXPORT_SYNC_MAX_ROWS: '500',
    EXPORT_TTL_HOURS: '2',
    SESSION_TTL_HOURS: '3',
    BODY_LIMIT_BYTES: '65536',
    PERMANENT_REDIRECT_MAX_AGE: '0',
    KEEP_ALIVE_TIMEOUT_MS: '5000',
    SHUTDOWN_TIMEOUT_MS: '30000',
    SHUTDOWN_DELAY_MS: '5000',
    LOG_LEVEL: 'debug',
  };

  test('each variable lands in its field', () => {
    const config = loadConfig(env);
    const expected: Omit<Config, 'baseUrl'> = {
      env: 'production',
      role: 'redirect',
      host: '127.0.0.1',
      port: 9090,
      database: {
        url: 'postgres://shunt:pw@db.internal:5432/shunt',
        replicaUrls: ['postgresql://r1.internal/shunt', 'postgres://r2.internal/shunt'],
        dataDir: '/var/lib/shunt',
        poolSize: 25,
        connectTimeoutMs: 700,
        statementTimeoutMs: 4000,
        breakerThreshold: 4,
        breakerCooldownMs: 1500,
      },
      redis: { url: 'rediss://cache.internal:6380', commandTimeoutMs: 50, breakerThreshold: 5, breakerCooldownMs: 1000, keyPrefix: 'acme' },
      amqp: { url: 'amqps://mq.internal', queue: 'acme.clicks', prefetch: 8, confirmTimeoutMs: 2000 },
      adminApiKey: GOOD_ADMIN_KEY,
      codes: { length: 9, blockSize: 5000 },
      destinations: { maxUrlLength: 4096, blockedDomains: ['evil.com', 'bad.example'], allowPrivateAddresses: true },
      rateLimits: { keyPerMinute: 1200, ipPerMinute: 120, notFoundPerMinute: 30, passwordPerLinkPerMinute: 5, passwordPerIpPerMinute: 7 },
      trustedProxies: ['10.0.0.0/8', '192.168.1.1', '::1', 'fd00::/8'],
      cache: { maxEntries: 0, ttlSeconds: 5, redisTtlSeconds: 600, negativeTtlSeconds: 15 },
      workers: 3,
      clicks: { enabled: false, flushIntervalMs: 250, batchSize: 50, storeRawIp: true, retentionDays: 30, deletedLinkRetentionDays: 7, spoolDir: '/var/spool/shunt', spoolMaxBytes: 10_485_760 },
      worker: { batchSize: 1000, batchWaitMs: 50, concurrency: 3 },
      exports: { syncMaxRows: 500, ttlHours: 2 },
      sessions: { ttlHours: 3 },
      idempotencyClaimLeaseSeconds: 60,
      events: { maxStreams: 1000, maxStreamsPerKey: 10 },
      http: { bodyLimitBytes: 65536, permanentRedirectMaxAge: 0, keepAliveTimeoutMs: 5000 },
      shutdownTimeoutMs: 30_000,
      shutdownDelayMs: 5000,
      logLevel: 'debug',
    };
    const { baseUrl, ...rest } = config;
    assert.deepEqual(rest, expected);
    assert.ok(baseUrl instanceof URL);
    assert.equal(baseUrl.href, 'https://sho.rt/');
  });

  test('values are trimmed', () => {
    const config = loadConfig({ PORT: ' 8081 ', ROLE: 'api', HOST: ' ::1 ' });
    assert.equal(config.port, 8081);
    assert.equal(config.host, '::1');
  });

  test('booleans accept the usual spellings, case-insensitively', () => {
    for (const value of ['1', 'true', 'TRUE', 'yes', 'On']) {
      assert.equal(loadConfig({ ALLOW_PRIVATE_ADDRESSES: value }).destinations.allowPrivateAddresses, true, value);
    }
    for (const value of ['0', 'false', 'No', 'OFF']) {
      assert.equal(loadConfig({ ALLOW_PRIVATE_ADDRESSES: value }).destinations.allowPrivateAddresses, false, value);
    }
    assert.equal(problemsFor({ ALLOW_PRIVATE_ADDRESSES: 'maybe' }, 'ALLOW_PRIVATE_ADDRESSES:').length, 1);
  });

  test('every role and log level is accepted', () => {
    for (const role of ['all', 'api', 'redirect', 'worker'] as const) assert.equal(loadConfig({ ROLE: role }).role, role);
    for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const) {
      assert.equal(loadConfig({ LOG_LEVEL: level }).logLevel, level);
    }
  });

  test('integer bounds are inclusive and everything else is refused', () => {
    assert.equal(loadConfig({ CODE_LENGTH: '4' }).codes.length, 4);
    assert.equal(loadConfig({ CODE_LENGTH: '12' }).codes.length, 12);
    assert.equal(loadConfig({ PORT: '0' }).port, 0);
    assert.equal(loadConfig({ PORT: '65535' }).port, 65535);
    for (const bad of ['3', '13', '7.5', '1e1', 'seven', '0x7', '-7']) {
      const problems = problemsFor({ CODE_LENGTH: bad }, 'CODE_LENGTH:');
      assert.equal(problems.length, 1, bad);
      assert.match(problems[0] ?? '', /from 4 to 12/);
    }
    assert.equal(problemsFor({ PORT: '65536' }, 'PORT:').length, 1);
  });
});

describe('loadConfig: problems are collected, not thrown one by one', () => {
  test('five bad variables give one ConfigError naming all five', () => {
    const error = configError({
      PORT: 'abc',
      ROLE: 'x',
      CODE_LENGTH: '99',
      DATABASE_URL: 'mysql://root:hunter2-secret@db/shunt',
      REDIS_URL: 'nope',
    });
    assert.equal(error.problems.length, 5, error.message);
    for (const name of ['PORT', 'ROLE', 'CODE_LENGTH', 'DATABASE_URL', 'REDIS_URL']) {
      assert.equal(error.problems.filter((problem) => problem.startsWith(`${name}:`)).length, 1, `${name} in ${error.message}`);
      assert.ok(error.message.includes(`${name}:`), `${name} named in the message`);
    }
    assert.match(error.message, /^Invalid configuration:\n/);
    assert.equal(error.message.split('\n').length, 6);
    assert.ok(!error.message.includes('hunter2-secret'));
  });

  test('the problem names the allowed values and the offending value', () => {
    const [problem] = problemsFor({ ROLE: 'x' }, 'ROLE:');
    assert.ok(problem?.includes('all, api, redirect, worker'), problem);
    assert.ok(problem?.includes('"x"'), problem);
  });

  test('NODE_ENV, LOG_LEVEL, BASE_URL, AMQP_URL are validated', () => {
    const error = configError({ NODE_ENV: 'staging', LOG_LEVEL: 'loud', BASE_URL: 'ftp://sho.rt', AMQP_URL: 'http://mq' });
    const names = error.problems.map((problem) => problem.split(':')[0]).sort();
    assert.deepEqual(names, ['AMQP_URL', 'BASE_URL', 'LOG_LEVEL', 'NODE_ENV']);
  });

  test('a short ADMIN_API_KEY is refused without echoing it', () => {
    const error = configError({ ADMIN_API_KEY: 'short-secret-key' });
    assert.deepEqual(error.problems, ['ADMIN_API_KEY: must be at least 24 characters']);
    assert.ok(!error.message.includes('short-secret-key'));
  });
});

describe('loadConfig: database URLs', () => {
  test('postgres:// and postgresql:// are accepted', () => {
    assert.equal(loadConfig({ DATABASE_URL: 'postgresql://h/db' }).database.url, 'postgresql://h/db');
    assert.equal(loadConfig({ DATABASE_URL: 'postgres://h/db' }).database.url, 'postgres://h/db');
  });

  test('a password in a bad DATABASE_URL is never echoed (wrong scheme or unparseable)', () => {
    const cases = [
      'mysql://shunt:Sup3rS3cretPw@db.internal/shunt',
      'postgres://shunt:Sup3rS3cretPw@db.internal:notaport/shunt',
      'shunt:Sup3rS3cretPw@db.internal/shunt',
    ];
    for (const url of cases) {
      const error = configError({ DATABASE_URL: url });
      assert.equal(error.problems.length, 1, url);
      assert.match(error.problems[0] ?? '', /^DATABASE_URL: /);
      assert.ok(!error.message.includes('Sup3rS3cretPw'), `${url} leaked: ${error.message}`);
      assert.ok(!error.message.includes('db.internal'), `${url} leaked: ${error.message}`);
      assert.ok(!JSON.stringify(error.problems).includes('Sup3rS3cretPw'));
    }
  });

  test('a bad replica URL is named by index, without its password', () => {
    const error = configError({
      DATABASE_URL: 'postgres://h/db',
      DATABASE_REPLICA_URLS: 'postgres://r1/db,mysql://u:R3plicaPw@r2/db',
    });
    assert.equal(error.problems.length, 1);
    assert.match(error.problems[0] ?? '', /^DATABASE_REPLICA_URLS\[1\]: /);
    assert.ok(!error.message.includes('R3plicaPw'));
  });

  test('DATABASE_REPLICA_URLS without DATABASE_URL is a problem', () => {
    const problems = problemsFor({ DATABASE_REPLICA_URLS: 'postgres://replica/db' }, 'DATABASE_REPLICA_URLS');
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? '', /needs DATABASE_URL/);
  });
});

describe('loadConfig: secrets from files (NAME_FILE)', () => {
  test('ADMIN_API_KEY_FILE is read and trimmed', () => {
    const config = loadConfig({ ADMIN_API_KEY_FILE: secretFile(`${GOOD_ADMIN_KEY}\n`) });
    assert.equal(config.adminApiKey, GOOD_ADMIN_KEY);
  });

  test('DATABASE_URL_FILE is read, trimmed and validated like DATABASE_URL', () => {
    const url = 'postgres://shunt:file-pw@db.internal:5432/shunt';
    assert.equal(loadConfig({ DATABASE_URL_FILE: secretFile(`  ${url}\n\n`) }).database.url, url);

    const error = configError({ DATABASE_URL_FILE: secretFile('mysql://shunt:F1leS3cret@db/shunt\n') });
    assert.equal(error.problems.length, 1);
    assert.match(error.problems[0] ?? '', /^DATABASE_URL: /);
    assert.ok(!error.message.includes('F1leS3cret'));
  });

  test('REDIS_URL_FILE, AMQP_URL_FILE and DATABASE_REPLICA_URLS_FILE are read too', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://primary/db',
      DATABASE_REPLICA_URLS_FILE: secretFile('postgres://r1/db,postgres://r2/db\n'),
      REDIS_URL_FILE: secretFile('redis://cache:6379\n'),
      AMQP_URL_FILE: secretFile('amqp://mq\n'),
    });
    assert.deepEqual(config.database.replicaUrls, ['postgres://r1/db', 'postgres://r2/db']);
    assert.equal(config.redis.url, 'redis://cache:6379');
    assert.equal(config.amqp.url, 'amqp://mq');
  });

  test('NAME and NAME_FILE both set is a problem', () => {
    const error = configError({ ADMIN_API_KEY: GOOD_ADMIN_KEY, ADMIN_API_KEY_FILE: secretFile(GOOD_ADMIN_KEY) });
    assert.equal(error.problems.length, 1);
    assert.match(error.problems[0] ?? '', /^ADMIN_API_KEY and ADMIN_API_KEY_FILE are both set/);
    assert.ok(!error.message.includes(GOOD_ADMIN_KEY));
  });

  test('an unreadable file is a problem naming the file and the reason, not its content', () => {
    const missing = join(dir, 'does-not-exist');
    const error = configError({ ADMIN_API_KEY_FILE: missing, DATABASE_URL_FILE: dir });
    assert.equal(error.problems.length, 2, error.message);
    const admin = error.problems.find((problem) => problem.startsWith('ADMIN_API_KEY_FILE:'));
    assert.ok(admin?.includes(missing), admin);
    assert.ok(admin?.includes('ENOENT'), admin);
    const database = error.problems.find((problem) => problem.startsWith('DATABASE_URL_FILE:'));
    assert.ok(database?.includes('EISDIR'), database);
  });

  test('_FILE is honoured only for secret variables', () => {
    const config = loadConfig({ PORT_FILE: secretFile('1234') });
    assert.equal(config.port, 8080);
  });
});

describe('loadConfig: TRUSTED_PROXIES', () => {
  test('IPv4 and IPv6 addresses and CIDR ranges are accepted', () => {
    const config = loadConfig({ TRUSTED_PROXIES: '127.0.0.1,10.0.0.0/8,::1,2001:db8::/32, 172.16.0.0/12' });
    assert.deepEqual(config.trustedProxies, ['127.0.0.1', '10.0.0.0/8', '::1', '2001:db8::/32', '172.16.0.0/12']);
  });

  test('names, hosts and malformed prefixes are refused, each named', () => {
    const error = configError({ TRUSTED_PROXIES: 'proxy.internal,10.0.0.0/abc,300.1.1.1,10.0.0.0/' });
    assert.equal(error.problems.length, 4, error.message);
    for (const bad of ['proxy.internal', '10.0.0.0/abc', '300.1.1.1', '10.0.0.0/']) {
      assert.ok(error.problems.some((problem) => problem.includes(`"${bad}"`)), bad);
    }
  });

  // Fastify (proxy-addr) throws at start-up on these; config must catch them first so the
  // one start-up message lists them with the rest.
  test('out-of-range prefixes and extra slashes are refused', () => {
    const accepted = ['10.0.0.0/33', '::1/129', '10.0.0.0/8/9'].filter((bad) => {
      try {
        loadConfig({ TRUSTED_PROXIES: bad });
        return true;
      } catch (error) {
        assert.ok(error instanceof ConfigError);
        assert.equal(error.problems.filter((problem) => problem.startsWith('TRUSTED_PROXIES:')).length, 1);
        return false;
      }
    });
    assert.deepEqual(accepted, [], `accepted invalid TRUSTED_PROXIES entries: ${accepted.join(', ')}`);
  });
});

describe('loadConfig: the result is frozen', () => {
  test('the config and every nested object and list are frozen', () => {
    const config = loadConfig({ TRUSTED_PROXIES: '10.0.0.1', BLOCKED_DOMAINS: 'a.example' });
    for (const [name, value] of Object.entries({
      config,
      database: config.database,
      replicaUrls: config.database.replicaUrls,
      codes: config.codes,
      destinations: config.destinations,
      blockedDomains: config.destinations.blockedDomains,
      rateLimits: config.rateLimits,
      trustedProxies: config.trustedProxies,
      cache: config.cache,
      clicks: config.clicks,
      http: config.http,
    })) {
      assert.ok(Object.isFrozen(value), `${name} is frozen`);
    }
    assert.throws(() => {
      (config as { port: number }).port = 1;
    }, TypeError);
    assert.throws(() => {
      (config.codes as { length: number }).length = 4;
    }, TypeError);
    assert.throws(() => {
      (config.trustedProxies as string[]).push('1.2.3.4');
    }, TypeError);
    assert.equal(config.port, 8080);
  });
});
