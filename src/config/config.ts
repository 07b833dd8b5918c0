/**
 * The only module that reads the environment. Everything else receives the frozen,
 * typed `Config` built here. Every bad variable is collected so that one start-up
 * message lists them all, instead of failing on the first and hiding the rest.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';

export const ROLES = ['all', 'api', 'redirect', 'worker'] as const;
export type Role = (typeof ROLES)[number];

export interface Config {
  readonly env: 'production' | 'development' | 'test';
  readonly role: Role;
  readonly host: string;
  readonly port: number;
  readonly baseUrl: URL;
  readonly database: {
    /** Absent means the embedded store (PGlite) under `dataDir`. */
    readonly url: string | undefined;
    readonly replicaUrls: readonly string[];
    readonly dataDir: string;
    readonly poolSize: number;
    /** PostgreSQL: waiting for a connection, and one statement, at most (ADR 0016). */
    readonly connectTimeoutMs: number;
    readonly statementTimeoutMs: number;
    /** Consecutive connection failures that open the database circuit, and the wait before one probe. */
    readonly breakerThreshold: number;
    readonly breakerCooldownMs: number;
  };
  readonly redis: {
    /** Absent means no shared tier: in-process cache, per-instance rate limits. */
    readonly url: string | undefined;
    /** A command slower than this counts as a failure: Redis must never slow a redirect much. */
    readonly commandTimeoutMs: number;
    /** Consecutive failures that open the circuit, and how long it stays open before one probe. */
    readonly breakerThreshold: number;
    readonly breakerCooldownMs: number;
    /** Namespaces every key and channel, so deployments can share one Redis. */
    readonly keyPrefix: string;
  };
  readonly amqp: {
    /** Absent: this process stores the clicks it serves itself, on a thread of its own (ADR 0010). */
    readonly url: string | undefined;
    /** The durable click queue (a quorum queue where the broker supports it). */
    readonly queue: string;
    /** Unacknowledged messages (each a batch of events) a worker holds at once. */
    readonly prefetch: number;
    /** A publish not confirmed in this time is treated as failed: the batch goes to the spool. */
    readonly confirmTimeoutMs: number;
  };
  readonly adminApiKey: string | undefined;
  readonly codes: { readonly length: number; readonly blockSize: number };
  readonly destinations: {
    readonly maxUrlLength: number;
    readonly blockedDomains: readonly string[];
    readonly allowPrivateAddresses: boolean;
  };
  readonly rateLimits: {
    readonly keyPerMinute: number;
    readonly ipPerMinute: number;
    /** Unknown codes one client may draw per minute on the redirect path before 429s. */
    readonly notFoundPerMinute: number;
    /** Password attempts on one protected link (all clients together), and from one client. */
    readonly passwordPerLinkPerMinute: number;
    readonly passwordPerIpPerMinute: number;
  };
  readonly trustedProxies: readonly string[];
  readonly cache: {
    readonly maxEntries: number;
    /** In-process entries: short, since a missed invalidation lives at most this long. */
    readonly ttlSeconds: number;
    readonly redisTtlSeconds: number;
    readonly negativeTtlSeconds: number;
  };
  /** Processes sharing the port (node:cluster); 1 runs in-process. */
  readonly workers: number;
  readonly clicks: {
    /** Off: redirects record no clicks at all (no analytics), for deployments that want none. */
    readonly enabled: boolean;
    /** Buffered clicks are published (or, without a broker, stored) at least this often. */
    readonly flushIntervalMs: number;
    /** Events per published message. */
    readonly batchSize: number;
    /** Keep the client's IP address with each raw click (off: only a daily-salted hash). */
    readonly storeRawIp: boolean;
    /** Raw click events older than this are dropped a month at a time; 0 keeps them forever. */
    readonly retentionDays: number;
    /** A deleted link's analytics (unreachable from its deletion on) are purged this long after it. */
    readonly deletedLinkRetentionDays: number;
    /** Where click batches wait while the broker is unreachable or refuses them. */
    readonly spoolDir: string;
    /** Upper bound on the spool; past it new batches are dropped and counted. */
    readonly spoolMaxBytes: number;
  };
  /** The click consumer (ROLE=worker or all). */
  readonly worker: {
    /** Events committed in one transaction at most. */
    readonly batchSize: number;
    /** How long a partial batch waits for more events before it is committed. */
    readonly batchWaitMs: number;
    /** Batches a worker commits at once (each in its own transaction). */
    readonly concurrency: number;
  };
  readonly exports: {
    /** A CSV export of at most this many clicks is answered at once; larger ones become a job. */
    readonly syncMaxRows: number;
    /** Finished export files are kept this long. */
    readonly ttlHours: number;
  };
  readonly sessions: {
    /** A dashboard session ends this long after sign-in, whatever happens in between. */
    readonly ttlHours: number;
  };
  /** A claimed Idempotency-Key without an answer this long belongs to a dead process: the next request takes it over. */
  readonly idempotencyClaimLeaseSeconds: number;
  /** Event streams (GET /api/v1/links/{code}/events). */
  readonly events: {
    /** Open streams per instance. */
    readonly maxStreams: number;
    /** Open streams one key may hold on one instance. */
    readonly maxStreamsPerKey: number;
  };
  readonly http: {
    readonly bodyLimitBytes: number;
    readonly permanentRedirectMaxAge: number;
    readonly keepAliveTimeoutMs: number;
  };
  readonly shutdownTimeoutMs: number;
  /** On SIGTERM, readiness is red this long before the server stops taking requests. */
  readonly shutdownDelayMs: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/** Variables that may carry a secret, and so may come from `NAME_FILE`. */
const SECRET_VARIABLES = ['ADMIN_API_KEY', 'DATABASE_URL', 'DATABASE_REPLICA_URLS', 'REDIS_URL', 'AMQP_URL'];

class Reader {
  readonly problems: string[] = [];

  constructor(private readonly env: Env) {}

  raw(name: string): string | undefined {
    const fileName = this.env[`${name}_FILE`];
    const direct = this.env[name];
    if (fileName !== undefined && fileName !== '' && SECRET_VARIABLES.includes(name)) {
      if (direct !== undefined && direct !== '') {
        this.problems.push(`${name} and ${name}_FILE are both set; set only one`);
        return undefined;
      }
      try {
        return readFileSync(fileName, 'utf8').trim();
      } catch (error) {
        this.problems.push(`${name}_FILE: cannot read ${fileName} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
        return undefined;
      }
    }
    return direct === '' ? undefined : direct?.trim();
  }

  string(name: string): string | undefined {
    return this.raw(name);
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!/^-?\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      this.problems.push(`${name}: must be a whole number from ${min} to ${max}, got "${value}"`);
      return fallback;
    }
    return Number(value);
  }

  bool(name: string, fallback: boolean): boolean {
    const value = this.raw(name)?.toLowerCase();
    if (value === undefined) return fallback;
    if (['1', 'true', 'yes', 'on'].includes(value)) return true;
    if (['0', 'false', 'no', 'off'].includes(value)) return false;
    this.problems.push(`${name}: must be true or false, got "${value}"`);
    return fallback;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(value)) {
      this.problems.push(`${name}: must be one of ${allowed.join(', ')}, got "${value}"`);
      return fallback;
    }
    return value as T;
  }

  list(name: string): string[] {
    const value = this.raw(name);
    if (value === undefined) return [];
    return value.split(',').map((item) => item.trim()).filter((item) => item !== '');
  }

  url(name: string, protocols: readonly string[], value = this.raw(name)): string | undefined {
    if (value === undefined) return undefined;
    try {
      const parsed = new URL(value);
      if (!protocols.includes(parsed.protocol)) {
        this.problems.push(`${name}: must be a ${protocols.map((p) => p.replace(':', '://')).join(' or ')} URL`);
        return undefined;
      }
      return value;
    } catch {
      // The value may hold a password: never echo it back.
      this.problems.push(`${name}: is not a valid URL`);
      return undefined;
    }
  }
}

export function loadConfig(env: Env = process.env): Config {
  const read = new Reader(env);
  const nodeEnv = read.oneOf('NODE_ENV', ['production', 'development', 'test'] as const, 'development');
  const port = read.int('PORT', 8080, 0, 65535);
  const baseUrlText = read.url('BASE_URL', ['http:', 'https:']) ?? `http://localhost:${port}`;

  const databaseUrl = read.url('DATABASE_URL', ['postgres:', 'postgresql:']);
  const replicaUrls = read
    .list('DATABASE_REPLICA_URLS')
    .map((url, index) => read.url(`DATABASE_REPLICA_URLS[${index}]`, ['postgres:', 'postgresql:'], url))
    .filter((url): url is string => url !== undefined);
  if (replicaUrls.length > 0 && databaseUrl === undefined) {
    read.problems.push('DATABASE_REPLICA_URLS: needs DATABASE_URL (replicas of the embedded store are not possible)');
  }

  const adminApiKey = read.string('ADMIN_API_KEY');
  if (adminApiKey !== undefined && adminApiKey.length < 24) {
    read.problems.push('ADMIN_API_KEY: must be at least 24 characters');
  }

  const trustedProxies = read.list('TRUSTED_PROXIES');
  for (const proxy of trustedProxies) {
    const [address = '', prefix, ...extra] = proxy.split('/');
    const family = isIP(address);
    const maxPrefix = family === 6 ? 128 : 32;
    const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= maxPrefix);
    if (family === 0 || !prefixOk || extra.length > 0) {
      read.problems.push(`TRUSTED_PROXIES: "${proxy}" is not an IP address or CIDR range`);
    }
  }

  // Production uses every core; elsewhere one process keeps logs and debugging simple.
  // The embedded store is a single-process database, so it allows one worker only.
  const defaultWorkers = nodeEnv === 'production' && databaseUrl !== undefined ? availableParallelism() : 1;
  const workers = read.int('WORKERS', defaultWorkers, 1, 1024);
  if (workers > 1 && databaseUrl === undefined) {
    read.problems.push('WORKERS: more than 1 needs DATABASE_URL (the embedded store belongs to one process)');
  }

  const keyPrefix = read.string('REDIS_KEY_PREFIX') ?? 'shunt';
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(keyPrefix)) {
    read.problems.push('REDIS_KEY_PREFIX: must be 1-64 of A-Z a-z 0-9 _ . : -');
  }

  const dataDir = read.string('DATA_DIR') ?? './data';
  const amqpQueue = read.string('AMQP_QUEUE') ?? 'shunt.clicks';
  if (!/^[A-Za-z0-9_.:-]{1,200}$/.test(amqpQueue)) {
    read.problems.push('AMQP_QUEUE: must be 1-200 of A-Z a-z 0-9 _ . : -');
  }

  const config: Config = {
    env: nodeEnv,
    role: read.oneOf('ROLE', ROLES, 'all'),
    host: read.string('HOST') ?? '0.0.0.0',
    port,
    baseUrl: new URL(baseUrlText),
    database: {
      url: databaseUrl,
      replicaUrls,
      dataDir,
      poolSize: read.int('DATABASE_POOL_SIZE', 10, 1, 1000),
      connectTimeoutMs: read.int('DATABASE_CONNECT_TIMEOUT_MS', 1000, 50, 600_000),
      statementTimeoutMs: read.int('DATABASE_STATEMENT_TIMEOUT_MS', 15_000, 100, 3_600_000),
      breakerThreshold: read.int('DATABASE_BREAKER_THRESHOLD', 3, 1, 1000),
      breakerCooldownMs: read.int('DATABASE_BREAKER_COOLDOWN_MS', 1000, 50, 600_000),
    },
    redis: {
      url: read.url('REDIS_URL', ['redis:', 'rediss:']),
      commandTimeoutMs: read.int('REDIS_COMMAND_TIMEOUT_MS', 100, 5, 60_000),
      breakerThreshold: read.int('REDIS_BREAKER_THRESHOLD', 3, 1, 1000),
      breakerCooldownMs: read.int('REDIS_BREAKER_COOLDOWN_MS', 2000, 50, 600_000),
      keyPrefix,
    },
    amqp: {
      url: read.url('AMQP_URL', ['amqp:', 'amqps:']),
      queue: amqpQueue,
      // Two batches in hand at full size, with messages of 500 events (CLICK_BATCH_SIZE).
      prefetch: read.int('AMQP_PREFETCH', 128, 1, 65_535),
      confirmTimeoutMs: read.int('AMQP_CONFIRM_TIMEOUT_MS', 5000, 50, 600_000),
    },
    adminApiKey,
    codes: {
      length: read.int('CODE_LENGTH', 7, 4, 12),
      blockSize: read.int('CODE_BLOCK_SIZE', 1000, 1, 1_000_000),
    },
    destinations: {
      maxUrlLength: read.int('MAX_URL_LENGTH', 2048, 32, 65536),
      blockedDomains: read.list('BLOCKED_DOMAINS').map((domain) => domain.toLowerCase()),
      allowPrivateAddresses: read.bool('ALLOW_PRIVATE_ADDRESSES', false),
    },
    rateLimits: {
      keyPerMinute: read.int('RATE_LIMIT_KEY_PER_MINUTE', 600, 1, 10_000_000),
      ipPerMinute: read.int('RATE_LIMIT_IP_PER_MINUTE', 60, 1, 10_000_000),
      notFoundPerMinute: read.int('RATE_LIMIT_404_PER_MINUTE', 120, 1, 10_000_000),
      passwordPerLinkPerMinute: read.int('RATE_LIMIT_PASSWORD_PER_LINK_PER_MINUTE', 10, 1, 10_000),
      passwordPerIpPerMinute: read.int('RATE_LIMIT_PASSWORD_PER_IP_PER_MINUTE', 20, 1, 10_000),
    },
    trustedProxies,
    cache: {
      maxEntries: read.int('CACHE_MAX_ENTRIES', 100_000, 0, 100_000_000),
      // One process owns the embedded store, so every change to a link passes through its own
      // cache and invalidates it exactly: the TTL only bounds what a bug could leave stale, and
      // a short one would cost a store read per hot link every few seconds (ADR 0004). With a
      // shared database, other instances write too, and the TTL bounds staleness without Redis.
      ttlSeconds: read.int('CACHE_TTL_SECONDS', databaseUrl === undefined ? 300 : 10, 1, 86_400),
      redisTtlSeconds: read.int('CACHE_REDIS_TTL_SECONDS', 3600, 1, 30 * 86_400),
      negativeTtlSeconds: read.int('CACHE_NEGATIVE_TTL_SECONDS', 60, 1, 86_400),
    },
    workers,
    clicks: {
      enabled: read.bool('CLICKS_ENABLED', true),
      flushIntervalMs: read.int('CLICK_FLUSH_INTERVAL_MS', 250, 10, 60_000),
      batchSize: read.int('CLICK_BATCH_SIZE', 500, 1, 100_000),
      storeRawIp: read.bool('CLICKS_STORE_RAW_IP', false),
      retentionDays: read.int('CLICKS_RETENTION_DAYS', 395, 0, 100_000),
      deletedLinkRetentionDays: read.int('CLICKS_DELETED_LINK_RETENTION_DAYS', 7, 0, 3650),
      spoolDir: read.string('CLICKS_SPOOL_DIR') ?? (dataDir === 'memory://' ? join(tmpdir(), `shunt-spool-${process.pid}`) : join(dataDir, 'spool')),
      spoolMaxBytes: read.int('CLICKS_SPOOL_MAX_BYTES', 1024 ** 3, 1024 * 1024, Number.MAX_SAFE_INTEGER),
    },
    worker: {
      // On PostgreSQL a larger batch folds more clicks into each rollup row, so fewer upserts per
      // click (docs/benchmarks.md, "Click ingest"); the embedded store's one thread also answers
      // reads, so its transactions stay shorter. Only a backlog fills a batch: at a steady rate
      // the wait below commits it first.
      batchSize: read.int('WORKER_BATCH_SIZE', databaseUrl === undefined ? 5000 : 20_000, 1, 100_000),
      batchWaitMs: read.int('WORKER_BATCH_WAIT_MS', 100, 0, 60_000),
      concurrency: read.int('WORKER_CONCURRENCY', 2, 1, 64),
    },
    exports: {
      syncMaxRows: read.int('EXPORT_SYNC_MAX_ROWS', 10_000, 0, 10_000_000),
      ttlHours: read.int('EXPORT_TTL_HOURS', 24, 1, 24 * 365),
    },
    sessions: {
      ttlHours: read.int('SESSION_TTL_HOURS', 12, 1, 24 * 90),
    },
    idempotencyClaimLeaseSeconds: read.int('IDEMPOTENCY_CLAIM_LEASE_SECONDS', 60, 1, 86_400),
    events: {
      maxStreams: read.int('EVENTS_MAX_STREAMS', 1000, 1, 1_000_000),
      maxStreamsPerKey: read.int('EVENTS_MAX_STREAMS_PER_KEY', 10, 1, 1_000_000),
    },
    http: {
      bodyLimitBytes: read.int('BODY_LIMIT_BYTES', 4 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
      permanentRedirectMaxAge: read.int('PERMANENT_REDIRECT_MAX_AGE', 3600, 0, 31_536_000),
      keepAliveTimeoutMs: read.int('KEEP_ALIVE_TIMEOUT_MS', 72_000, 1000, 600_000),
    },
    shutdownTimeoutMs: read.int('SHUTDOWN_TIMEOUT_MS', 10_000, 100, 600_000),
    shutdownDelayMs: read.int('SHUTDOWN_DELAY_MS', 0, 0, 600_000),
    logLevel: read.oneOf('LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info'),
  };
  if (read.problems.length > 0) throw new ConfigError(read.problems);
  return deepFreeze(config);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !(value instanceof URL)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
