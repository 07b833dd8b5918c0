-- Shunt core schema: settings, API keys, links, raw clicks, idempotency records.

CREATE TABLE settings (
  name text PRIMARY KEY,
  value text NOT NULL
);

-- Each nextval() leases one block of short-code numbers to one instance.
CREATE SEQUENCE link_code_blocks MINVALUE 0 START WITH 0;

CREATE TABLE api_keys (
  id text PRIMARY KEY,
  name text NOT NULL,
  role text NOT NULL CHECK (role IN ('admin', 'member')),
  -- The first characters of the key, kept in clear to find candidates; the rest is only hashed.
  prefix text NOT NULL,
  secret_hash bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);
CREATE INDEX api_keys_active_prefix ON api_keys (prefix) WHERE revoked_at IS NULL;

CREATE TABLE links (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  code text NOT NULL,
  custom_alias boolean NOT NULL DEFAULT false,
  url text NOT NULL,
  title text,
  tags text[] NOT NULL DEFAULT '{}',
  owner_key_id text REFERENCES api_keys (id),
  expires_at timestamptz,
  max_visits integer CHECK (max_visits > 0),
  visits bigint NOT NULL DEFAULT 0,
  redirect_type smallint NOT NULL DEFAULT 302 CHECK (redirect_type IN (301, 302, 307, 308)),
  forward_query boolean NOT NULL DEFAULT true,
  fallback_url text,
  disabled boolean NOT NULL DEFAULT false,
  version integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT links_code_key UNIQUE (code)
);
CREATE INDEX links_owner_newest ON links (owner_key_id, id DESC);
CREATE INDEX links_tags ON links USING gin (tags);

-- Raw clicks are an append-only log, written in batches off the redirect path. No index:
-- maintaining even one (btree or BRIN) halved the embedded store's redirect throughput
-- (docs/benchmarks.md). Per-link figures belong in rollups, not in scans of this log.
CREATE TABLE clicks (
  link_code text NOT NULL,
  clicked_at timestamptz NOT NULL,
  method text NOT NULL,
  referrer text,
  user_agent text,
  client_ip inet
);

CREATE TABLE idempotency_keys (
  key_id text NOT NULL,
  idempotency_key text NOT NULL,
  request_hash text NOT NULL,
  -- NULL while the first request is still being processed.
  response_status integer,
  response_body jsonb,
  response_headers jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (key_id, idempotency_key)
);
