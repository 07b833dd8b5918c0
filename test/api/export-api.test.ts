/**
 * CSV exports through inject(), on PGlite and on PostgreSQL: a small range answered at once
 * (exact bytes: quoting, line breaks, formula cells), a large one queued as a job that a
 * worker writes into the store in chunks, the job's status and file, ownership, expiry,
 * recovery of jobs whose worker died, and bad parameters.
 *
 * The instance under test serves the API only (ROLE=api), so no worker of its own races
 * the runner each test drives; the last test checks that ROLE=all runs jobs by itself.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { writeBatch } from '../../src/analytics/analytics-writer.js';
import type { EnrichedClick } from '../../src/analytics/enriched-click.js';
import { ExportJobRunner } from '../../src/analytics/export-job-runner.js';
import { BACKENDS, backendTestOptions } from '../helpers/backends.js';
import { documentMismatch } from '../helpers/documented-response.js';
import { makeClick, ofLinks } from '../helpers/enriched-click-fixture.js';
import { expectProblem } from '../helpers/problems.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';

interface JobJson {
  id: string;
  status: 'queued' | 'running' | 'done' | 'failed';
  href: string;
  fileHref: string | null;
  code: string;
  from: string;
  to: string;
  rows: number | null;
  bytes: number | null;
  error: string | null;
}

const HEADER = 'id,at,code,method,bot,device,referrer_host,country,browser,os,referrer,user_agent\r\n';
const id = (n: number): string => `01900000-0000-7000-8000-${n.toString().padStart(12, '0')}`;

/** Clicks whose text needs quoting or would be a spreadsheet formula. */
const HOSTILE: EnrichedClick[] = [
  makeClick({
    id: id(1),
    code: 'exp-small',
    at: '2025-03-10T10:00:00.000Z',
    referrerHost: 'evil.example',
    referrer: '=HYPERLINK("http://evil.example/?a,b","click")\r\nsecond line',
    userAgent: 'Mozilla/5.0 (X11; Linux x86_64), "quoted"',
    country: 'DE',
    browser: 'Chrome',
    os: 'Linux',
  }),
  makeClick({ id: id(2), code: 'exp-small', at: '2025-03-10T10:00:01.000Z', method: 'HEAD', bot: true, device: 'bot', browser: null, os: null, referrer: '+plus', userAgent: '-dash start' }),
  makeClick({ id: id(3), code: 'exp-small', at: '2025-03-10T10:00:02.000Z', referrerHost: 'tab.example', referrer: '@at', userAgent: '\tTab', os: 'Windows' }),
  makeClick({ id: id(4), code: 'exp-small', at: '2025-03-10T10:00:03.000Z', referrer: '\rcarriage', userAgent: 'plain' }),
  // At the end of the range: `to` is exclusive.
  makeClick({ id: id(5), code: 'exp-small', at: '2025-03-10T11:00:00.000Z' }),
];

const HOSTILE_CSV =
  HEADER +
  `${id(1)},2025-03-10T10:00:00.000Z,exp-small,GET,false,desktop,evil.example,DE,Chrome,Linux,` +
  `"'=HYPERLINK(""http://evil.example/?a,b"",""click"")\r\nsecond line","Mozilla/5.0 (X11; Linux x86_64), ""quoted"""\r\n` +
  `${id(2)},2025-03-10T10:00:01.000Z,exp-small,HEAD,true,bot,,,,,'+plus,'-dash start\r\n` +
  `${id(3)},2025-03-10T10:00:02.000Z,exp-small,GET,false,desktop,tab.example,,Chrome,Windows,'@at,'\tTab\r\n` +
  `${id(4)},2025-03-10T10:00:03.000Z,exp-small,GET,false,desktop,,,Chrome,Windows,"'\rcarriage",plain\r\n`;

/** A minimal RFC 4180 reader, to check that the quoting round-trips. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i];
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') {
        cell += '"';
        i += 1;
      } else if (char === '"') quoted = false;
      else cell += char;
    } else if (char === '"') quoted = true;
    else if (char === ',') {
      row.push(cell);
      cell = '';
    } else if (char === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i += 1;
    } else cell += char;
  }
  return rows;
}

/** `count` plain clicks a second apart, and the CSV rows they make. */
function plainClicks(code: string, count: number, start: string): { clicks: EnrichedClick[]; csv: string } {
  const clicks = Array.from({ length: count }, (_, i) =>
    makeClick({ code, at: new Date(Date.parse(start) + i * 1000), referrerHost: `r${i}.example`, referrer: `https://r${i}.example/` }),
  );
  const rows = clicks.map(
    (c, i) => `${c.id},${c.at.toISOString()},${code},GET,false,desktop,r${i}.example,,Chrome,Windows,https://r${i}.example/,${c.userAgent ?? ''}\r\n`,
  );
  return { clicks, csv: HEADER + rows.join('') };
}

for (const backend of BACKENDS) {
  describe(`export API (${backend})`, await backendTestOptions(backend), () => {
    let app: TestApp;
    let runner: ExportJobRunner;
    let memberA: string;
    let memberB: string;
    const large = plainClicks('exp-large', 12, '2025-03-11T00:00:00.000Z');

    before(async () => {
      app = await startTestApp(backend, {
        // The clicks below are dated 2025, older than the default retention: keep them for the test.
        env: { ROLE: 'api', EXPORT_SYNC_MAX_ROWS: '5', CLICKS_RETENTION_DAYS: '0', RATE_LIMIT_KEY_PER_MINUTE: '1000000', RATE_LIMIT_IP_PER_MINUTE: '1000000' },
      });
      assert.equal(app.runtime.exportRunner, null, 'ROLE=api runs no export worker');
      memberA = await app.createKey('member', 'member A');
      memberB = await app.createKey('member', 'member B');
      for (const [alias, key] of [['exp-small', undefined], ['exp-large', undefined], ['exp-day', undefined], ['exp-member', memberA]] as const) {
        const created = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: `https://example.com/${alias}`, alias }, ...(key === undefined ? {} : { key }) });
        assert.equal(created.statusCode, 201, created.body);
      }
      await writeBatch(app.runtime.db, await ofLinks(app.runtime.db, [
        ...HOSTILE,
        ...large.clicks,
        ...plainClicks('exp-day', 6, '2025-03-12T10:00:00.000Z').clicks,
        ...plainClicks('exp-member', 7, '2025-03-12T10:00:00.000Z').clicks,
      ]));
      // Small chunks and pages, so that a file spans several chunks and queries.
      runner = new ExportJobRunner({ jobs: app.runtime.deps.analytics.exports, db: app.runtime.db, includeIp: false, logger: pino({ level: 'silent' }), chunkBytes: 300, pageSize: 5 });
    });
    after(async () => {
      await runner.close();
      await app.close();
    });

    const exportUrl = (code: string, query: string): string => `/api/v1/links/${code}/stats/export?${query}`;

    async function queue(code: string, query: string, key?: string): Promise<JobJson> {
      const response = await app.request({ url: exportUrl(code, query), ...(key === undefined ? {} : { key }) });
      assert.equal(response.statusCode, 202, response.body);
      assert.equal(await documentMismatch(app, 'GET', '/api/v1/links/{code}/stats/export', response), '');
      const job = response.json<JobJson>();
      assert.equal(response.headers.location, `/api/v1/exports/${job.id}`);
      assert.equal(job.href, `/api/v1/exports/${job.id}`);
      assert.equal(job.status, 'queued');
      assert.equal(job.fileHref, null);
      return job;
    }

    async function status(jobId: string, key?: string): Promise<JobJson> {
      const response = await app.request({ url: `/api/v1/exports/${jobId}`, ...(key === undefined ? {} : { key }) });
      assert.equal(response.statusCode, 200, response.body);
      assert.equal(await documentMismatch(app, 'GET', '/api/v1/exports/{id}', response), '');
      return response.json<JobJson>();
    }

    const sql = async <R>(text: string, params: unknown[] = []): Promise<R[]> => (await app.runtime.db.query(text, params)).rows as R[];

    test('a small range is answered at once: exact CSV, quoting, line breaks and formula cells', async () => {
      const response = await app.request({ url: exportUrl('exp-small', 'from=2025-03-10T10:00:00Z&to=2025-03-10T11:00:00Z') });
      assert.equal(response.statusCode, 200, response.body);
      assert.equal(response.headers['content-type'], 'text/csv; charset=utf-8');
      assert.equal(response.headers['content-disposition'], 'attachment; filename="shunt-exp-small-20250310T100000Z-20250310T110000Z.csv"');
      assert.equal(response.headers['cache-control'], 'private, no-store');
      assert.equal(response.body, HOSTILE_CSV);
      assert.equal(await documentMismatch(app, 'GET', '/api/v1/links/{code}/stats/export', response), '');
      const rows = parseCsv(response.body);
      assert.equal(rows.length, 5);
      assert.ok(rows.every((row) => row.length === 12));
      assert.equal(rows[1]?.[10], `'${HOSTILE[0]?.referrer ?? ''}`);
      assert.equal(rows[1]?.[11], HOSTILE[0]?.userAgent);
      assert.equal(rows[4]?.[10], "'\rcarriage");
    });

    test('an empty range is a header row only', async () => {
      const response = await app.request({ url: exportUrl('exp-small', 'from=2024-01-01T00:00:00Z&to=2024-01-02T00:00:00Z') });
      assert.equal(response.statusCode, 200, response.body);
      assert.equal(response.body, HEADER);
    });

    test('a large range becomes a job: 202, 409 until a worker has run it, then the file in chunks', async () => {
      const job = await queue('exp-large', 'from=2025-03-11T00:00:00Z&to=2025-03-12T00:00:00Z');
      assert.equal(job.code, 'exp-large');
      assert.equal(job.from, '2025-03-11T00:00:00.000Z');
      const early = await app.request({ url: `/api/v1/exports/${job.id}/file` });
      expectProblem(early, 409, 'export_not_ready');
      assert.equal(early.headers['retry-after'], '2');
      assert.equal(await documentMismatch(app, 'GET', '/api/v1/exports/{id}/file', early), '');

      assert.equal(await runner.runOnce(), 1);
      const done = await status(job.id);
      assert.equal(done.status, 'done');
      assert.equal(done.rows, 12);
      assert.equal(done.fileHref, `/api/v1/exports/${job.id}/file`);
      const chunks = await sql<{ count: string }>('SELECT count(*)::text AS count FROM export_chunks WHERE job_id = $1', [job.id]);
      assert.ok(Number(chunks[0]?.count) > 1, 'the file spans several chunks');

      const file = await app.request({ url: done.fileHref });
      assert.equal(file.statusCode, 200, file.body);
      assert.equal(file.headers['content-type'], 'text/csv; charset=utf-8');
      assert.equal(file.headers['content-disposition'], 'attachment; filename="shunt-exp-large-20250311T000000Z-20250312T000000Z.csv"');
      assert.equal(file.body, large.csv);
      assert.equal(Number(file.headers['content-length']), Buffer.byteLength(large.csv));
      assert.equal(done.bytes, Buffer.byteLength(large.csv));
      assert.equal(await documentMismatch(app, 'GET', '/api/v1/exports/{id}/file', file), '');
    });

    test('the size is estimated from whole days: a day over the limit makes a job, whose file holds the range only', async () => {
      const job = await queue('exp-day', 'from=2025-03-12T10:00:00Z&to=2025-03-12T10:00:01Z');
      await runner.runOnce();
      const done = await status(job.id);
      assert.equal(done.rows, 1);
      const file = await app.request({ url: `/api/v1/exports/${job.id}/file` });
      assert.equal(parseCsv(file.body).length, 2);
    });

    test('jobs are seen by the key that asked and by admins only', async () => {
      const job = await queue('exp-member', 'from=2025-03-12T00:00:00Z&to=2025-03-13T00:00:00Z', memberA);
      expectProblem(await app.request({ url: `/api/v1/exports/${job.id}`, key: memberB }), 404, 'export_not_found');
      expectProblem(await app.request({ url: `/api/v1/exports/${job.id}/file`, key: memberB }), 404, 'export_not_found');
      assert.equal((await status(job.id, memberA)).status, 'queued');
      assert.equal((await status(job.id)).status, 'queued');
      // Another member cannot start an export of the link either.
      expectProblem(await app.request({ url: exportUrl('exp-member', ''), key: memberB }), 404, 'link_not_found');
      await runner.runOnce();
      const file = await app.request({ url: `/api/v1/exports/${job.id}/file`, key: memberA });
      assert.equal(file.statusCode, 200);
      assert.equal(parseCsv(file.body).length, 8);
    });

    test('an expired job is gone at once and deleted, file and all, by the next pass', async () => {
      const job = await queue('exp-large', 'from=2025-03-11T00:00:00Z&to=2025-03-12T00:00:00Z');
      await runner.runOnce();
      await sql("UPDATE export_jobs SET expires_at = now() - interval '1 second' WHERE id = $1", [job.id]);
      expectProblem(await app.request({ url: `/api/v1/exports/${job.id}` }), 404, 'export_not_found');
      expectProblem(await app.request({ url: `/api/v1/exports/${job.id}/file` }), 404, 'export_not_found');
      await runner.runOnce();
      assert.deepEqual(await sql('SELECT id FROM export_jobs WHERE id = $1', [job.id]), []);
      assert.deepEqual(await sql('SELECT seq FROM export_chunks WHERE job_id = $1', [job.id]), []);
    });

    test('a job left running by a dead worker is run again; the dead worker cannot write into it', async () => {
      const job = await queue('exp-large', 'from=2025-03-11T00:00:00Z&to=2025-03-12T00:00:00Z');
      const jobs = app.runtime.deps.analytics.exports;
      const deadLease = randomUUID();
      const claimed = await jobs.claim(deadLease);
      assert.equal(claimed?.id, job.id);
      assert.ok(await jobs.appendChunk(job.id, deadLease, 0, Buffer.from('half a file')));
      assert.equal((await status(job.id)).status, 'running');
      await sql("UPDATE export_jobs SET heartbeat_at = now() - interval '10 minutes' WHERE id = $1", [job.id]);
      assert.equal(await runner.runOnce(), 1);
      assert.equal(await jobs.appendChunk(job.id, deadLease, 99, Buffer.from('late')), false);
      const done = await status(job.id);
      assert.equal(done.status, 'done');
      assert.equal((await app.request({ url: `/api/v1/exports/${job.id}/file` })).body, large.csv);
    });

    test('a job whose workers keep dying fails; its file is refused with the reason', async () => {
      const job = await queue('exp-large', 'from=2025-03-11T00:00:00Z&to=2025-03-12T00:00:00Z');
      await app.runtime.deps.analytics.exports.claim(randomUUID());
      await sql("UPDATE export_jobs SET attempts = 3, heartbeat_at = now() - interval '10 minutes' WHERE id = $1", [job.id]);
      await runner.runOnce();
      const failed = await status(job.id);
      assert.equal(failed.status, 'failed');
      assert.equal(typeof failed.error, 'string');
      const file = expectProblem(await app.request({ url: `/api/v1/exports/${job.id}/file` }), 409, 'export_not_ready');
      assert.match(file.detail, /failed/);
    });

    test('bad ranges and unknown ids or links are problems, never 500', async () => {
      for (const [query, field] of [
        ['from=soon', 'from'],
        ['to=2025-03-10', 'to'],
        ['from=2025-03-12T00:00:00Z&to=2025-03-10T00:00:00Z', 'from'],
        ['from=0001-01-01T00:00:00Z', 'from'],
        ['format=xlsx', 'format'],
      ] as const) {
        const problem = expectProblem(await app.request({ url: exportUrl('exp-small', query) }), 422, 'validation_failed');
        assert.deepEqual(problem.errors?.map((error) => error.field), [field], query);
      }
      expectProblem(await app.request({ url: exportUrl('NoSuchLink', '') }), 404, 'link_not_found');
      expectProblem(await app.request({ url: exportUrl('exp-small', ''), key: null }), 401, 'unauthorized');
      for (const bad of ['not-a-uuid', randomUUID(), '%27%3B--', 'x'.repeat(300)]) {
        expectProblem(await app.request({ url: `/api/v1/exports/${bad}` }), 404, 'export_not_found');
        expectProblem(await app.request({ url: `/api/v1/exports/${bad}/file` }), 404, 'export_not_found');
      }
      expectProblem(await app.request({ url: `/api/v1/exports/${randomUUID()}`, key: null }), 401, 'unauthorized');
    });

    test('a key may have 10 jobs waiting; the next is refused with 429 until one is done', async () => {
      for (let i = 0; i < 10; i += 1) await queue('exp-member', `from=2025-03-12T00:00:0${i}Z&to=2025-03-13T00:00:00Z`, memberA);
      const refused = expectProblem(await app.request({ url: exportUrl('exp-member', 'from=2025-03-12T00:00:00Z&to=2025-03-13T00:00:00Z'), key: memberA }), 429, 'rate_limited');
      assert.match(refused.detail, /10 exports/);
      // Other keys are not held back by it.
      await queue('exp-large', 'from=2025-03-11T00:00:00Z&to=2025-03-12T00:00:00Z');
      await runner.runOnce();
      await queue('exp-member', 'from=2025-03-12T00:00:00Z&to=2025-03-13T00:00:00Z', memberA);
    });
  });

  describe(`export jobs on ROLE=all (${backend})`, await backendTestOptions(backend), () => {
    let app: TestApp;
    before(async () => {
      app = await startTestApp(backend, { env: { EXPORT_SYNC_MAX_ROWS: '0', CLICKS_RETENTION_DAYS: '0' } });
      const created = await app.request({ method: 'POST', url: '/api/v1/links', body: { url: 'https://example.com/all', alias: 'exp-all' } });
      assert.equal(created.statusCode, 201, created.body);
      await writeBatch(app.runtime.db, await ofLinks(app.runtime.db, plainClicks('exp-all', 2, '2025-03-10T00:00:00.000Z').clicks));
    });
    after(() => app.close());

    test("the instance's own worker runs the job", async () => {
      assert.ok(app.runtime.exportRunner !== null);
      const queued = await app.request({ url: '/api/v1/links/exp-all/stats/export?from=2025-03-10T00:00:00Z&to=2025-03-11T00:00:00Z' });
      assert.equal(queued.statusCode, 202, queued.body);
      const { id: jobId } = queued.json<JobJson>();
      const deadline = Date.now() + 10_000;
      let job: JobJson;
      do {
        await new Promise((resolve) => setTimeout(resolve, 100));
        job = (await app.request({ url: `/api/v1/exports/${jobId}` })).json<JobJson>();
      } while (job.status !== 'done' && Date.now() < deadline);
      assert.equal(job.status, 'done');
      assert.equal(job.rows, 2);
    });
  });
}
