-- Analytics belong to a link, not to its code: a deleted link's code may be taken by a later
-- link, which must not see (or add to) the earlier link's clicks. Every analytics row is now
-- keyed by links.id, an identity that is never reused. See docs/adr/0011-analytics-keyed-by-link.md.
--
-- Nothing here reads or rewrites the existing analytics rows, so the migration holds its
-- locks only for the catalogue changes: the rollup tables keyed by code are renamed aside
-- (legacy_*) and empty tables keyed by link take their names, raw events get a nullable
-- column (no rewrite), and the partitioned index on it is created ON ONLY the parent (no
-- build). The rows are moved afterwards, in small transactions, by the workers'
-- maintenance (src/analytics/link-identity-move.ts), which also builds the index partition
-- by partition.

-- A deleted link, until the purge (src/analytics/deleted-link-purge.ts) has removed its
-- analytics. Written by the statement that deletes the link.
CREATE TABLE deleted_links (
  link_id bigint PRIMARY KEY,
  code text NOT NULL,
  deleted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deleted_links_deleted_at ON deleted_links (deleted_at);

-- Raw events. Null on rows stored before this version until the move fills it in; 0 marks
-- an event the move could not give to any link (its link was deleted before the upgrade):
-- no link has id 0, so such events stay unreachable until retention drops their month.
ALTER TABLE click_events ADD COLUMN link_id bigint;
CREATE INDEX click_events_link_at ON ONLY click_events (link_id, at, id);
DROP INDEX click_events_code_at;

ALTER TABLE link_clicks_minute RENAME TO legacy_link_clicks_minute;
ALTER INDEX link_clicks_minute_pkey RENAME TO legacy_link_clicks_minute_pkey;
ALTER TABLE link_clicks_hour RENAME TO legacy_link_clicks_hour;
ALTER INDEX link_clicks_hour_pkey RENAME TO legacy_link_clicks_hour_pkey;
ALTER TABLE link_clicks_day RENAME TO legacy_link_clicks_day;
ALTER INDEX link_clicks_day_pkey RENAME TO legacy_link_clicks_day_pkey;
DROP INDEX link_clicks_day_sharded;
ALTER TABLE link_breakdown_day RENAME TO legacy_link_breakdown_day;
ALTER INDEX link_breakdown_day_pkey RENAME TO legacy_link_breakdown_day_pkey;
ALTER TABLE link_agents_day RENAME TO legacy_link_agents_day;
ALTER INDEX link_agents_day_pkey RENAME TO legacy_link_agents_day_pkey;

-- The same tables as in 0003_analytics.sql (see there for shards and fillfactor), keyed by link.
CREATE TABLE link_clicks_minute (
  link_id bigint NOT NULL,
  bucket timestamptz NOT NULL,
  shard smallint NOT NULL,
  human bigint NOT NULL,
  bot bigint NOT NULL,
  PRIMARY KEY (link_id, bucket, shard)
) WITH (fillfactor = 70);

CREATE TABLE link_clicks_hour (
  link_id bigint NOT NULL,
  bucket timestamptz NOT NULL,
  shard smallint NOT NULL,
  human bigint NOT NULL,
  bot bigint NOT NULL,
  PRIMARY KEY (link_id, bucket, shard)
) WITH (fillfactor = 70);

CREATE TABLE link_clicks_day (
  link_id bigint NOT NULL,
  bucket timestamptz NOT NULL,
  shard smallint NOT NULL,
  human bigint NOT NULL,
  bot bigint NOT NULL,
  visitors bigint NOT NULL,
  human_visitors bigint NOT NULL,
  PRIMARY KEY (link_id, bucket, shard)
) WITH (fillfactor = 70);
CREATE INDEX link_clicks_day_sharded ON link_clicks_day (bucket) WHERE shard <> 0;

CREATE TABLE link_breakdown_day (
  link_id bigint NOT NULL,
  bucket timestamptz NOT NULL,
  dimension text NOT NULL CHECK (dimension IN ('referrer', 'country')),
  value text NOT NULL,
  shard smallint NOT NULL,
  human bigint NOT NULL,
  bot bigint NOT NULL,
  PRIMARY KEY (link_id, bucket, dimension, value, shard)
) WITH (fillfactor = 70);

CREATE TABLE link_agents_day (
  link_id bigint NOT NULL,
  bucket timestamptz NOT NULL,
  browser text NOT NULL,
  os text NOT NULL,
  device text NOT NULL,
  shard smallint NOT NULL,
  human bigint NOT NULL,
  bot bigint NOT NULL,
  PRIMARY KEY (link_id, bucket, browser, os, device, shard)
) WITH (fillfactor = 70);

-- Visitor set members are now a hash of (link id, visitor key) (rollup-aggregation.ts); the
-- table is unchanged. Members made from codes stop matching and are pruned with their day.

-- Export jobs name the link they export. The table is small (jobs expire within hours). A
-- job whose link is gone would export a deleted link's clicks (or nothing): it goes.
ALTER TABLE export_jobs ADD COLUMN link_id bigint;
UPDATE export_jobs AS j SET link_id = l.id FROM links AS l WHERE l.code = j.code AND l.created_at <= j.created_at;
DELETE FROM export_jobs WHERE link_id IS NULL;
ALTER TABLE export_jobs ALTER COLUMN link_id SET NOT NULL;

-- Idempotency records are purged once expired (src/http/idempotency-store.ts), oldest first.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
-- The current claim of a record: only its holder may store the answer (a claim whose lease
-- ran out is taken over by the next request with the key).
ALTER TABLE idempotency_keys ADD COLUMN claim_token uuid;
