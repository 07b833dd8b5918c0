import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { openDatabase } from '../../src/storage/database.js';
import { runShunt, startShunt } from '../helpers/process.js';

const ADMIN = 'integration-admin-key-0123456789';

describe('a Shunt process', () => {
  const dirs: string[] = [];
  const tempDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'shunt-it-'));
    dirs.push(dir);
    return dir;
  };
  after(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

  test('refuses to start with one message listing every bad variable', async () => {
    const shunt = runShunt(['start'], { PORT: 'abc', ROLE: 'boss', CODE_LENGTH: '99', DATABASE_URL: 'mysql://u:secret@h/db', DATA_DIR: tempDir() });
    const code = await shunt.exited;
    assert.equal(code, 78);
    const message = shunt.stderr();
    for (const name of ['PORT', 'ROLE', 'CODE_LENGTH', 'DATABASE_URL']) assert.match(message, new RegExp(`- ${name}:`));
    assert.doesNotMatch(message, /secret/, 'a password in a URL is never echoed');
    assert.doesNotMatch(message, /\n\s+at /, 'no stack trace');
  });

  test('prints a generated admin key once, on first start only', async () => {
    const dataDir = tempDir();
    const first = await startShunt({ DATA_DIR: dataDir });
    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0);
    const key = /shunt_[A-Za-z0-9]{40}/.exec(first.stderr())?.[0];
    assert.ok(key, `no key in: ${first.stderr()}`);

    const second = await startShunt({ DATA_DIR: dataDir });
    try {
      assert.doesNotMatch(second.stderr(), /shunt_[A-Za-z0-9]{40}/);
      const response = await fetch(`${second.url}/api/v1/keys`, { headers: { authorization: `Bearer ${key}` } });
      assert.equal(response.status, 200, 'the printed key works after a restart');
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  });

  test('SIGTERM under load: in-flight requests finish, buffered clicks are flushed, exit 0', async () => {
    const dataDir = tempDir();
    // A long flush interval: only the shutdown flush can have written the clicks.
    const shunt = await startShunt({ DATA_DIR: dataDir, ADMIN_API_KEY: ADMIN, CLICK_FLUSH_INTERVAL_MS: '60000', CLICK_BATCH_SIZE: '100000' });
    const created = await fetch(`${shunt.url}/api/v1/links`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: 'https://example.com/drain' }),
    });
    assert.equal(created.status, 201);
    const { code } = (await created.json()) as { code: string };

    let redirects = 0;
    let failures = 0;
    let stop = false;
    const worker = async (): Promise<void> => {
      while (!stop) {
        try {
          const response = await fetch(`${shunt.url}/${code}`, { redirect: 'manual' });
          if (response.status === 302) redirects += 1;
          else if (response.status !== 503) failures += 1;
        } catch {
          // The listener is closed: the process is draining. Expected after SIGTERM.
          return;
        }
      }
    };
    const workers = Array.from({ length: 8 }, () => worker());
    await new Promise((resolve) => setTimeout(resolve, 1500));
    shunt.child.kill('SIGTERM');
    const exitCode = await shunt.exited;
    stop = true;
    await Promise.all(workers);
    assert.equal(exitCode, 0, shunt.stderr());
    assert.equal(failures, 0);
    assert.ok(redirects > 50, `only ${redirects} redirects served`);

    const db = await openDatabase({ url: undefined, dataDir, poolSize: 1 });
    try {
      const result = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM click_events WHERE code = $1', [code]);
      assert.equal(result.rows[0]?.n, redirects, 'every redirect served was recorded exactly once');
    } finally {
      await db.close();
    }
  });

  test('SIGTERM with SHUTDOWN_DELAY_MS: readiness goes red while redirects are still served', async () => {
    const dataDir = tempDir();
    const shunt = await startShunt({ DATA_DIR: dataDir, ADMIN_API_KEY: ADMIN, SHUTDOWN_DELAY_MS: '3000' });
    try {
      const created = await fetch(`${shunt.url}/api/v1/links`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ url: 'https://example.com/delay' }),
      });
      const { code } = (await created.json()) as { code: string };
      assert.equal((await fetch(`${shunt.url}/readyz`)).status, 200);
      shunt.child.kill('SIGTERM');
      let ready = 200;
      for (let attempt = 0; attempt < 50 && ready === 200; attempt += 1) {
        ready = (await fetch(`${shunt.url}/readyz`)).status;
        if (ready === 200) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(ready, 503, 'readiness is red during the delay');
      const redirect = await fetch(`${shunt.url}/${code}`, { redirect: 'manual' });
      assert.equal(redirect.status, 302, 'requests are still served during the delay');
      assert.equal(await shunt.exited, 0);
    } finally {
      shunt.child.kill('SIGKILL');
    }
  });
});
