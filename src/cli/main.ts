#!/usr/bin/env node
/**
 * `shunt <command>`: start, migrate, keys create|list|revoke, import, export, bench, capacity.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, type Config } from '../config/config.js';
import { KeyRepository } from '../keys/key-repository.js';
import { KeyService } from '../keys/key-service.js';
import { KEY_ROLES, type KeyRole } from '../keys/api-key.js';
import { isAppError } from '../shared/errors.js';
import { start } from '../server/cluster.js';
import { prepareStore } from '../server/prepare-store.js';
import { createLogger } from '../observability/logger.js';
import { err, out, UsageError, withDatabase } from './cli-io.js';
import { IMPORT_USAGE, importCommand } from './import/import-command.js';
import { EXPORT_USAGE, exportCommand } from './export.js';
import { CAPACITY_USAGE, capacityCommand } from './capacity/capacity-command.js';
import { BENCH_USAGE, benchCommand } from './bench/bench-command.js';

const USAGE = `Usage: shunt <command>

Commands:
  start [--workers N]                run Shunt (embedded store unless DATABASE_URL is set);
                                     --workers overrides WORKERS (processes sharing the port)
  migrate                            apply database migrations and exit
  keys create --name N [--role R]    create an API key (role: admin or member; default member)
  keys list                          list API keys
  keys revoke <id>                   revoke an API key
  import <file> [--format F] ...     create links from a Bitly, Shlink, YOURLS, Kutt or CSV export
  export [--format csv|json] ...     write every link as a file \`shunt import\` reads back
  bench <base-url> [--rate R] ...    load test of a running instance's redirects
  capacity --redirects-per-month N --creates-per-month N ...
                                     instances, memory and storage for now and 24 months ahead

\`shunt <command> --help\` describes a command's options.
`;

/** Commands with options of their own: their usage text and what runs them. */
const COMMANDS: Readonly<Record<string, { usage: string; run: (config: Config, args: string[]) => Promise<number> }>> = {
  import: { usage: IMPORT_USAGE, run: importCommand },
  export: { usage: EXPORT_USAGE, run: exportCommand },
  bench: { usage: BENCH_USAGE, run: benchCommand },
  capacity: { usage: CAPACITY_USAGE, run: (_config, args) => capacityCommand(args) },
};

async function keysCommand(config: Config, args: string[]): Promise<number> {
  const [action, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    options: { name: { type: 'string' }, role: { type: 'string', default: 'member' }, json: { type: 'boolean', default: false } },
    allowPositionals: true,
  });
  return withDatabase(config, async (db) => {
    const keys = new KeyService(new KeyRepository(db), () => undefined);
    switch (action) {
      case 'create': {
        if (values.name === undefined || values.name.trim() === '') {
          err('keys create needs --name');
          return 2;
        }
        if (!(KEY_ROLES as readonly string[]).includes(values.role ?? '')) {
          err(`--role must be one of ${KEY_ROLES.join(', ')}`);
          return 2;
        }
        const created = await keys.create(values.name.trim(), values.role as KeyRole);
        if (values.json === true) out(JSON.stringify({ id: created.key.id, role: created.key.role, key: created.secret }));
        else out(`Created ${created.key.role} key ${created.key.id} (${created.key.name}). Shown only once:\n${created.secret}`);
        return 0;
      }
      case 'list': {
        for (const key of await keys.list()) {
          out([key.id, key.role, key.prefix, key.name, key.revokedAt === null ? 'active' : `revoked ${key.revokedAt.toISOString()}`].join('\t'));
        }
        return 0;
      }
      case 'revoke': {
        const id = positionals[0];
        if (id === undefined) {
          err('keys revoke needs a key id');
          return 2;
        }
        await keys.revoke(id);
        out(`Revoked ${id}`);
        return 0;
      }
      case undefined:
      default:
        err(USAGE);
        return 2;
    }
  });
}

/**
 * `start`'s options, as environment overrides: `--workers N` stands for WORKERS=N, so that
 * config validates it like the variable. A string is a usage error to print.
 */
function startOverrides(args: string[]): Record<string, string> | string {
  let values: { workers?: string | undefined };
  try {
    ({ values } = parseArgs({ args, options: { workers: { type: 'string' } }, strict: true, allowPositionals: false }));
  } catch (error) {
    // `--workers` with nothing after it is a bad value, reported with the others below.
    if ((error as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') return { WORKERS: '' };
    return (error as Error).message;
  }
  return values.workers === undefined ? {} : { WORKERS: values.workers };
}

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (command === undefined || command === 'help' || command === '--help') {
    out(USAGE);
    return command === undefined ? 2 : 0;
  }
  const sub = COMMANDS[command];
  if (sub !== undefined && (args.includes('--help') || args.includes('-h'))) {
    out(sub.usage);
    return 0;
  }
  const overrides = command === 'start' ? startOverrides(args) : {};
  if (typeof overrides === 'string') {
    err(`${overrides}\n\n${USAGE}`);
    return 2;
  }
  let config: Config;
  try {
    if (overrides.WORKERS?.trim() === '') throw new ConfigError(['--workers: needs a value']);
    config = loadConfig({ ...process.env, ...overrides });
  } catch (error) {
    if (error instanceof ConfigError) {
      // A bad value given on the command line is named as the user typed it.
      const problems = 'WORKERS' in overrides ? error.problems.map((p) => p.replace(/^WORKERS:/, '--workers:')) : error.problems;
      err(new ConfigError(problems).message);
      return 78; // EX_CONFIG
    }
    throw error;
  }
  switch (command) {
    case 'start':
      await start(config, err);
      return -1;
    case 'migrate': {
      const applied = await withDatabase(config, (db) => prepareStore(db, config, createLogger(config)));
      out(applied.length === 0 ? 'Database is up to date' : `Applied: ${applied.join(', ')}`);
      return 0;
    }
    case 'keys':
      return keysCommand(config, args);
    default:
      if (sub !== undefined) return runCommand(sub, config, args);
      err(`Unknown command: ${command}\n\n${USAGE}`);
      return 2;
  }
}

/** Bad options and unreadable input are usage errors: a clear message, the usage, exit 2. */
async function runCommand(sub: { usage: string; run: (config: Config, args: string[]) => Promise<number> }, config: Config, args: string[]): Promise<number> {
  try {
    return await sub.run(config, args);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (error instanceof UsageError || code.startsWith('ERR_PARSE_ARGS')) {
      err(`${(error as Error).message}\n\n${sub.usage}`);
      return 2;
    }
    throw error;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // -1: a server is running and sets the exit code when it stops.
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    err(isAppError(error) ? `${error.code}: ${error.detail}` : error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exitCode = 1;
  },
);
