/**
 * Load at a fixed rate, evenly paced: one request every 1/rate s, whatever the answers do
 * (an open loop, as real visitors are). Latency runs from the instant each request was
 * due, not from when it was written, so a stalled server or a stalled generator cannot
 * hide its delay by sending less (wrk2's correction for coordinated omission).
 *
 * Why not autocannon's `overallRate`: it gives each connection its own timer, and the
 * timers of all connections fire together, so 2,000/s over 100 connections arrives as
 * 100 requests at once every 50 ms. Against bare node:http that alone reads p99 42 ms.
 *
 * The generator runs in a process of its own (pacedLoad spawns this file), so nothing else
 * a benchmark does in its own process can delay it.
 */
import { spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

export interface PacedOptions {
  port: number;
  /** Requests per second. */
  rate: number;
  seconds: number;
  /** Keep-alive connections at most; a request due while all are busy waits (and is timed) for one. */
  connections: number;
  /** Each request asks for one of these, drawn uniformly at random. */
  paths: readonly string[];
  headers?: Record<string, string>;
}

export interface PacedResult {
  due: number;
  answered: number;
  /** Answers by status code. */
  statuses: Record<string, number>;
  errors: number;
  /** Not answered 10 s after the last request was due. */
  unanswered: number;
  /** Milliseconds from due to answered: what a visitor waits, the generator's own lateness included. */
  fromDue: Percentiles;
  /** Milliseconds from the request's last byte written to the answer's last byte read. */
  fromWritten: Percentiles;
}

export interface Percentiles {
  p50: number;
  p99: number;
  p999: number;
  max: number;
}

/** Runs the generator in its own process and resolves with what it measured. */
export function pacedLoad(options: PacedOptions): Promise<PacedResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--max-semi-space-size=64', '--import', 'tsx', fileURLToPath(import.meta.url)], { stdio: ['pipe', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code === 0) resolve(JSON.parse(output) as PacedResult);
      else reject(new Error(`paced load generator exited with ${code}`));
    });
    child.stdin.end(JSON.stringify(options));
  });
}

function percentiles(values: Float64Array): Percentiles {
  const sorted = values.slice().sort();
  const at = (fraction: number): number => {
    const value = sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)] ?? 0);
    return Math.round(value * 100) / 100;
  };
  return { p50: at(0.5), p99: at(0.99), p999: at(0.999), max: at(1) };
}

async function generate(options: PacedOptions): Promise<PacedResult> {
  const total = Math.round(options.rate * options.seconds);
  const interval = 1000 / options.rate;
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections });
  const fromDue = new Float64Array(total);
  const fromWritten = new Float64Array(total);
  const statuses: Record<string, number> = {};
  let due = 0;
  let answered = 0;
  let errors = 0;
  let settle: () => void = () => undefined;
  const allSettled = new Promise<void>((resolve) => (settle = resolve));
  const settled = (): void => {
    if (answered + errors === total) settle();
  };

  const fire = (dueAt: number): void => {
    let writtenAt = dueAt;
    const path = options.paths[Math.floor(Math.random() * options.paths.length)] ?? '/';
    const outgoing = request({ agent, host: '127.0.0.1', port: options.port, path, headers: options.headers }, (response) => {
      response.resume();
      response.once('end', () => {
        const now = performance.now();
        fromDue[answered] = now - dueAt;
        fromWritten[answered] = now - writtenAt;
        answered += 1;
        const status = String(response.statusCode);
        statuses[status] = (statuses[status] ?? 0) + 1;
        settled();
      });
    });
    outgoing.once('finish', () => (writtenAt = performance.now()));
    outgoing.once('error', () => {
      errors += 1;
      settled();
    });
    outgoing.end();
  };

  const start = performance.now();
  await new Promise<void>((resolve) => {
    // A 1 ms timer, catching up on whatever fell due meanwhile: even pacing without
    // spinning a core the server needs.
    const tick = (): void => {
      const now = performance.now();
      const target = Math.min(total, Math.floor((now - start) / interval) + 1);
      for (; due < target; due += 1) fire(start + due * interval);
      if (due < total) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  await Promise.race([allSettled, new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
  agent.destroy();
  return {
    due: total,
    answered,
    statuses,
    errors,
    unanswered: total - answered - errors,
    fromDue: percentiles(fromDue.subarray(0, answered)),
    fromWritten: percentiles(fromWritten.subarray(0, answered)),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  let input = '';
  process.stdin.on('data', (chunk: Buffer) => (input += chunk.toString('utf8')));
  process.stdin.on('end', () => {
    void generate(JSON.parse(input) as PacedOptions).then((result) => {
      process.stdout.write(JSON.stringify(result));
      process.exit(0);
    });
  });
}
