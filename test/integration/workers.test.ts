/**
 * `shunt start --workers N`: one primary and N worker processes sharing the port
 * (node:cluster), on a real PostgreSQL. Which process answered a request is read from
 * its request log line (every line carries `pid`), found by the request id we sent.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { backendTestOptions, createPostgresDatabase } from '../helpers/backends.js';
import { freePort, runShunt, startShunt, type ShuntProcess } from '../helpers/process.js';
import { SseClient } from '../helpers/sse-client.js';

const ADMIN_KEY = /shunt_[A-Za-z0-9]{40}/g;
const LOG_WAIT_MS = 60_000;

interface LogLine {
  msg?: string;
  pid?: number;
  reqId?: string;
  url?: string;
  worker?: number;
  workerPid?: number;
  restarted?: boolean;
  code?: number | null;
  signal?: string | null;
  workers?: number;
}

function logLines(shunt: ShuntProcess): LogLine[] {
  const lines: LogLine[] = [];
  for (const text of shunt.stdout().split('\n')) {
    if (!text.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(text) as LogLine);
    } catch {
      // A line still being written.
    }
  }
  return lines;
}

/** Logs are written asynchronously: waits for a line, failing after a generous bound. */
async function waitForLog(shunt: ShuntProcess, what: string, match: (line: LogLine) => boolean): Promise<LogLine> {
  const deadline = Date.now() + LOG_WAIT_MS;
  for (;;) {
    const line = logLines(shunt).find(match);
    if (line !== undefined) return line;
    if (Date.now() > deadline) throw new Error(`no log line for ${what}; stdout ends:\n${shunt.stdout().slice(-3000)}\nstderr:\n${shunt.stderr()}`);
    await sleep(20);
  }
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request on a connection of its own, so that the primary hands each to the next worker. */
function send(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

let probes = 0;

/** A GET, and the pid of the process that answered it. */
async function probe(shunt: ShuntProcess, path: string): Promise<Answer & { pid: number }> {
  probes += 1;
  const id = `workers-test-${process.pid}-${probes}`;
  const answer = await send(`${shunt.url}${path}`, { headers: { 'x-request-id': id } });
  const line = await waitForLog(shunt, `request ${id}`, (l) => l.msg === 'request' && l.reqId === id);
  assert.ok(typeof line.pid === 'number');
  return { ...answer, pid: line.pid };
}

/** Probes until every given pid has answered `times` times (at most `limit` probes); returns all answers. */
async function probeUntilEach(shunt: ShuntProcess, path: string, pids: readonly number[], times = 1, limit = 200): Promise<(Answer & { pid: number })[]> {
  const answers: (Answer & { pid: number })[] = [];
  const served = (pid: number): number => answers.filter((a) => a.pid === pid).length;
  while (pids.some((pid) => served(pid) < times)) {
    if (answers.length >= limit) {
      assert.fail(`after ${limit} requests, answers came from ${JSON.stringify([...new Set(answers.map((a) => a.pid))])}, expected each of ${JSON.stringify(pids)}`);
    }
    answers.push(await probe(shunt, path));
  }
  return answers;
}

const listeningPids = (shunt: ShuntProcess): number[] =>
  logLines(shunt)
    .filter((l) => l.msg === 'shunt listening' && typeof l.pid === 'number')
    .map((l) => l.pid as number);

const startedWorkerPids = (shunt: ShuntProcess): number[] =>
  logLines(shunt)
    .filter((l) => l.msg === 'worker started' && typeof l.workerPid === 'number')
    .map((l) => l.workerPid as number);

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Only a process that is still a Shunt we started is killed: a pid may be reused once it is gone. */
function isShunt(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('src/cli/main.ts');
  } catch {
    return false;
  }
}

/** Ends a primary and any worker it leaves behind, whatever state the test left them in. */
async function stopForGood(shunt: ShuntProcess | undefined): Promise<void> {
  if (shunt === undefined) return;
  if (shunt.child.exitCode === null && shunt.child.signalCode === null) shunt.child.kill('SIGKILL');
  await shunt.exited;
  // Workers leave on their own when the primary's channel closes; give them a moment, then insist.
  const workers = startedWorkerPids(shunt);
  for (let i = 0; i < 100 && workers.some(isAlive); i += 1) await sleep(50);
  for (const pid of workers) if (isAlive(pid) && isShunt(pid)) process.kill(pid, 'SIGKILL');
}

describe('shunt start --workers: bad values', () => {
  const cases: { args: string[]; env?: Record<string, string>; problem: RegExp }[] = [
    { args: ['--workers', '0'], problem: /- --workers: must be a whole number from 1 to 1024, got "0"/ },
    { args: ['--workers', 'many'], problem: /- --workers: must be a whole number from 1 to 1024, got "many"/ },
    { args: ['--workers'], problem: /- --workers: needs a value/ },
    { args: ['--workers=2.5'], env: { WORKERS: '2' }, problem: /- --workers: must be a whole number/ },
  ];
  for (const { args, env = {}, problem } of cases) {
    test(`${args.join(' ')} exits 78 and names --workers`, async () => {
      const shunt = runShunt(['start', ...args], { PORT: '0', DATABASE_URL: 'postgres://postgres@127.0.0.1:1/never', ...env });
      assert.equal(await shunt.exited, 78, shunt.stderr());
      assert.match(shunt.stderr(), problem);
      assert.doesNotMatch(shunt.stderr(), /- WORKERS:/, 'the flag, not the variable it overrides, is named');
      assert.doesNotMatch(shunt.stderr(), /\n\s+at /, 'no stack trace');
    });
  }

  test('--workers 2 without DATABASE_URL exits 78: the embedded store belongs to one process', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'shunt-workers-'));
    try {
      const shunt = runShunt(['start', '--workers', '2'], { PORT: '0', DATA_DIR: dataDir });
      assert.equal(await shunt.exited, 78, shunt.stderr());
      assert.match(shunt.stderr(), /- --workers: more than 1 needs DATABASE_URL/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('shunt start --workers 1', () => {
  let shunt: ShuntProcess | undefined;
  const dataDir = mkdtempSync(join(tmpdir(), 'shunt-workers-'));
  after(async () => {
    await stopForGood(shunt);
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('runs in one process, with no primary', async () => {
    shunt = await startShunt({ DATA_DIR: dataDir }, ['--workers', '1']);
    const answer = await probe(shunt, '/readyz');
    assert.equal(answer.status, 200);
    assert.equal(answer.pid, shunt.child.pid, 'the process we started answers itself');
    assert.equal(logLines(shunt).filter((l) => l.msg === 'starting workers').length, 0);
    shunt.child.kill('SIGTERM');
    assert.equal(await shunt.exited, 0, shunt.stderr());
  });
});

const postgres = await backendTestOptions('postgres');

describe('shunt start --workers 2 on PostgreSQL', postgres, () => {
  let database: { url: string; drop: () => Promise<void> } | undefined;
  let shunt: ShuntProcess | undefined;
  let giveUp: ShuntProcess | undefined;
  let blocker: Server | undefined;
  let adminKey = '';
  let workers: number[] = [];

  const api = async (method: string, path: string, body?: object): Promise<Answer> => {
    assert.ok(shunt !== undefined);
    const answer = await send(`${shunt.url}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return answer;
  };
  const createLink = async (url: string): Promise<string> => {
    const created = await api('POST', '/links', { url });
    assert.equal(created.status, 201, created.body);
    return (JSON.parse(created.body) as { code: string }).code;
  };

  before(async () => {
    database = await createPostgresDatabase();
    shunt = await startShunt(
      {
        DATABASE_URL: database.url,
        // Only an invalidation can refresh a cached link, and only the drain can write clicks.
        CACHE_TTL_SECONDS: '3600',
        CLICK_FLUSH_INTERVAL_MS: '60000',
        CLICK_BATCH_SIZE: '100000',
      },
      ['--workers', '2'],
    );
    const running = shunt;
    await waitForLog(running, 'two workers listening', () => new Set(listeningPids(running)).size === 2);
    workers = [...new Set(listeningPids(running))];
  });

  after(async () => {
    await stopForGood(shunt);
    await stopForGood(giveUp);
    await new Promise((resolve) => (blocker === undefined ? resolve(undefined) : blocker.close(resolve)));
    await database?.drop();
  });

  test('the primary announces the workers and prints the admin key exactly once', async () => {
    assert.ok(shunt !== undefined);
    const starts = logLines(shunt).filter((l) => l.msg === 'starting workers');
    assert.deepEqual(starts.map((l) => [l.pid, l.workers]), [[shunt.child.pid, 2]]);
    const keys = shunt.stderr().match(ADMIN_KEY) ?? [];
    assert.equal(keys.length, 1, shunt.stderr());
    adminKey = keys[0] ?? '';
    assert.equal((await api('GET', '/keys')).status, 200, 'the printed key works');
  });

  test('two worker processes, not the primary, answer on the one port', async () => {
    assert.ok(shunt !== undefined);
    assert.equal(workers.length, 2);
    assert.ok(!workers.includes(shunt.child.pid ?? -1), 'the primary does not serve');
    const answers = await probeUntilEach(shunt, '/readyz', workers);
    assert.ok(answers.every((a) => a.status === 200));
    assert.deepEqual(new Set(answers.map((a) => a.pid)), new Set(workers));
  });

  test('a link changed through one worker is redirected to its new URL by every worker', async () => {
    assert.ok(shunt !== undefined);
    const code = await createLink('https://example.com/before');
    // Both workers cache the old destination (for an hour).
    const warm = await probeUntilEach(shunt, `/${code}`, workers);
    assert.ok(warm.every((a) => a.status === 302 && a.headers.location === 'https://example.com/before'));

    const patched = await api('PATCH', `/links/${code}`, { url: 'https://example.com/after' });
    assert.equal(patched.status, 200, patched.body);
    await sleep(1000);

    const answers = await probeUntilEach(shunt, `/${code}`, workers, 5);
    const stale = answers.filter((a) => a.headers.location !== 'https://example.com/after');
    assert.deepEqual(
      stale.map((a) => ({ pid: a.pid, status: a.status, location: a.headers.location })),
      [],
      'every redirect after the change shows the new URL',
    );
  });

  test('a killed worker is replaced and service continues', async () => {
    assert.ok(shunt !== undefined);
    const running = shunt;
    const [victim, survivor] = workers;
    assert.ok(victim !== undefined && survivor !== undefined);
    const code = await createLink('https://example.com/survives');
    process.kill(victim, 'SIGKILL');

    const exit = await waitForLog(running, 'the killed worker', (l) => l.msg === 'worker exited; restarting' && l.workerPid === victim);
    assert.equal(exit.signal, 'SIGKILL');
    const started = await waitForLog(running, 'its replacement', (l) => l.msg === 'worker started' && l.restarted === true && l.worker === exit.worker);
    const replacement = started.workerPid;
    assert.ok(typeof replacement === 'number' && replacement !== victim);
    await waitForLog(running, 'the replacement listening', (l) => l.msg === 'shunt listening' && l.pid === replacement);

    workers = [survivor, replacement];
    const answers = await probeUntilEach(running, `/${code}`, workers);
    assert.ok(answers.every((a) => a.status === 302 && a.headers.location === 'https://example.com/survives'));
    assert.ok(isAlive(running.child.pid ?? -1), 'the primary is still running');
  });

  test('SIGTERM to the primary drains every worker under load, loses no request, exits 0', async () => {
    assert.ok(shunt !== undefined && database !== undefined);
    const running = shunt;
    const code = await createLink('https://example.com/drain');

    let redirects = 0;
    let failures = 0;
    let stop = false;
    const loop = async (): Promise<void> => {
      while (!stop) {
        try {
          const response = await fetch(`${running.url}/${code}`, { redirect: 'manual' });
          if (response.status === 302) redirects += 1;
          else if (response.status !== 503) failures += 1;
        } catch {
          // The listener is closed: the cluster is draining. Expected after SIGTERM.
          return;
        }
      }
    };
    const loops = Array.from({ length: 8 }, () => loop());
    // Load until both workers have served this link, so that both have clicks to flush.
    const servedBy = (): Set<number> =>
      new Set(logLines(running).filter((l) => l.msg === 'request' && l.url === `/${code}`).map((l) => l.pid as number));
    await waitForLog(running, 'both workers serving the load', () => workers.every((pid) => servedBy().has(pid)) && redirects >= 100);

    running.child.kill('SIGTERM');
    const exitCode = await running.exited;
    stop = true;
    await Promise.all(loops);
    assert.equal(exitCode, 0, running.stderr());
    assert.equal(failures, 0);

    const exits = logLines(running).filter((l) => l.msg === 'worker exited' && workers.includes(l.workerPid ?? -1));
    assert.deepEqual(exits.map((l) => l.code).sort(), [0, 0], 'both workers exited 0 after draining');
    for (const pid of workers) assert.equal(isAlive(pid) && isShunt(pid), false, `worker ${pid} is gone`);

    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const result = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM click_events WHERE code = $1', [code]);
      assert.equal(result.rows[0]?.n, redirects, 'every redirect served, by either worker, was recorded exactly once');
    } finally {
      await client.end();
    }
  });

  test('workers that die at once, again and again, make the primary give up and exit non-zero', async () => {
    assert.ok(database !== undefined);
    // The port is taken, so every worker fails to listen as soon as it starts.
    const port = await freePort();
    const busy = createServer();
    blocker = busy;
    await new Promise<void>((resolve) => busy.listen(port, '127.0.0.1', resolve));
    const failing = runShunt(['start', '--workers', '2'], { PORT: String(port), DATABASE_URL: database.url });
    giveUp = failing;

    assert.equal(await failing.exited, 1, failing.stderr());
    const lines = logLines(failing);
    assert.equal(lines.filter((l) => l.msg === 'worker exited; it keeps dying at start: giving up').length, 1);
    const restarts = lines.filter((l) => l.msg === 'worker exited; restarting');
    assert.ok(restarts.length >= 4, `restarted ${restarts.length} times before giving up`);
    assert.ok(restarts.every((l) => l.code === 1));
    const started = startedWorkerPids(failing);
    for (let i = 0; i < 100 && started.some(isAlive); i += 1) await sleep(50);
    assert.deepEqual(started.filter((pid) => isAlive(pid) && isShunt(pid)), [], 'no worker is left behind');
  });
});

describe('shunt start --workers 2 without Redis: live clicks', postgres, () => {
  const admin = 'workers-live-admin-key-0123456789';
  let database: { url: string; drop: () => Promise<void> } | undefined;
  let shunt: ShuntProcess | undefined;

  before(async () => {
    database = await createPostgresDatabase();
    shunt = await startShunt({ DATABASE_URL: database.url, ADMIN_API_KEY: admin, CLICK_FLUSH_INTERVAL_MS: '50' }, ['--workers', '2']);
    const running = shunt;
    await waitForLog(running, 'two workers listening', () => new Set(listeningPids(running)).size === 2);
  });

  after(async () => {
    await stopForGood(shunt);
    await database?.drop();
  });

  test('a stream held by one worker sees the clicks every worker stores', async () => {
    assert.ok(shunt !== undefined);
    const created = await send(`${shunt.url}/api/v1/links`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: 'https://example.com/live' }),
    });
    assert.equal(created.status, 201, created.body);
    const { code } = JSON.parse(created.body) as { code: string };
    const stream = await SseClient.connect(`${shunt.url}/api/v1/links/${code}/events`, { authorization: `Bearer ${admin}` });
    assert.equal(stream.status, 200);
    await stream.next((frame) => frame.comments.some((comment) => comment.includes('connected')));
    // The stream's worker announces the watch over IPC; the other worker must have heard it.
    await sleep(300);

    const answers = [];
    for (let i = 0; i < 20; i += 1) answers.push(await probe(shunt, `/${code}`));
    assert.ok(answers.every((answer) => answer.status === 302));
    assert.equal(new Set(answers.map((answer) => answer.pid)).size, 2, 'both workers served (and stored) clicks');

    const deadline = Date.now() + 10_000;
    const ids = (): Set<string> => new Set(stream.frames.filter((frame) => frame.event === 'click').map((frame) => frame.id ?? ''));
    while (ids().size < 20 && Date.now() < deadline) await sleep(50);
    assert.equal(ids().size, 20, 'every click, from both workers, reached the one stream');
    stream.close();
  });
});
