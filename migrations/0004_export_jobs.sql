-- Asynchronous CSV exports of raw clicks (src/analytics/export-jobs.ts, export-job-runner.ts).
-- Instances are stateless: the worker that writes a file and the API instance that serves it
-- are rarely the same process, so the file itself is kept here, in chunks.

CREATE TABLE export_jobs (
  id uuid PRIMARY KEY,
  code text NOT NULL,
  -- The key that asked: it (or an admin) may read the job and its file.
  owner_key_id text NOT NULL REFERENCES api_keys (id),
  range_from timestamptz NOT NULL,
  range_to timestamptz NOT NULL,
  status text NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
  -- Set when done: clicks written and the file's size.
  rows bigint,
  bytes bigint,
  -- Why it failed, in words fit for the client (details are in the worker's log).
  error text,
  -- Claims so far; a job that keeps killing its workers fails after a few.
  attempts integer NOT NULL DEFAULT 0,
  -- The running attempt's token: every write of a worker names it, so a worker that lost its
  -- job to recovery (it stalled past the lease) cannot write into the next attempt's file.
  lease uuid,
  -- Renewed while the job runs; a running job whose heartbeat is older than the lease is
  -- taken to belong to a dead worker and is queued again.
  heartbeat_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz,
  -- Queued jobs expire too: a deployment without a worker must not collect them forever.
  expires_at timestamptz NOT NULL
);

CREATE INDEX export_jobs_queued ON export_jobs (created_at) WHERE status = 'queued';
CREATE INDEX export_jobs_running ON export_jobs (heartbeat_at) WHERE status = 'running';
CREATE INDEX export_jobs_expires ON export_jobs (expires_at);

-- The file, in order. Chunks are about 1 MiB: large enough that a file is a few rows, small
-- enough that neither the worker nor a download holds much of it in memory at once.
CREATE TABLE export_chunks (
  job_id uuid NOT NULL REFERENCES export_jobs (id) ON DELETE CASCADE,
  seq integer NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY (job_id, seq)
);
