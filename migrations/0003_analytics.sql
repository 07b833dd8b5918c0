-- Click analytics store: raw click events partitioned by month, and per-link rollups that
-- every stats query is answered from (src/analytics/analytics-writer.ts, stats-query.ts).
-- All buckets are UTC instants (timestamptz at a minute, hour or midnight UTC), computed by
-- the writer from epoch milliseconds, so no session TimeZone can move a click across buckets.

-- Raw events, for export and for rebuilding rollups; never read by the stats queries.
--
-- Idempotency is the primary key (id, at) with ON CONFLICT DO NOTHING. A partitioned table's
-- unique key must contain the partition key, so the key cannot be the id alone; it is exact
-- all the same because an event is immutable: the redirect path gives it its id and `at`
-- once, before it is buffered or published (src/clicks/click-event.ts), and the queue carries
-- both unchanged (millisecond ISO text, which timestamptz stores without rounding). Every
-- redelivery of an event therefore carries the same (id, at) and hits the same partition and
-- the same key. A separate id table would cost a second index write per click and its own
-- pruning, for no case this key misses.
--
-- Monthly partitions (click_events_pYYYYMM) are created ahead of time by ensurePartitions()
-- (src/analytics/click-partitions.ts) and dropped whole by retention. The DEFAULT partition
-- catches a row no monthly partition covers, so a write is never refused; ensurePartitions()
-- moves such rows into the month's partition when it creates it.
CREATE TABLE click_events (
  id uuid NOT NULL,
  at timestamptz NOT NULL,
  code text NOT NULL,
  method text NOT NULL CHECK (method IN ('GET', 'HEAD')),
  bot boolean NOT NULL,
  device text NOT NULL CHECK (device IN ('desktop', 'mobile', 'tablet', 'bot', 'other')),
  referrer_host text,
  country text,
  browser text,
  os text,
  -- The daily visitor key (16 bytes); only meaningful within its UTC day.
  visitor bytea,
  -- Filled only when raw IP storage is switched on; the enricher leaves it null otherwise.
  ip inet,
  user_agent text,
  referrer text,
  PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);

-- For the raw export of one link over a range, in a stable (at, id) order to page on.
CREATE INDEX click_events_code_at ON click_events (code, at, id);

CREATE TABLE click_events_default PARTITION OF click_events DEFAULT;

-- Click counters per link and bucket, split into human and bot clicks so a query can count
-- or leave out bots. `shard` spreads one hot link's increments over several rows: each
-- writer transaction picks one shard, so concurrent workers rarely wait on the same row
-- lock. Readers SUM over shards. Once a day is over, compaction folds its shards into
-- shard 0, so reads over long ranges meet one row per key. A lower fillfactor leaves room on each page for HOT
-- updates, since the counters are updated in place many times.
CREATE TABLE link_clicks_minute (
  code text NOT NULL,
  bucket timestamptz NOT NULL,
  shard smallint NOT NULL,
  human bigint NOT NULL,
  bot bigint NOT NULL,
  PRIMARY KEY (code, bucket, shard)
) WITH (fillfactor = 70);

CREATE TABLE link_clicks_hour (
  code text NOT NULL,
  bucket timestamptz NOT NULL,
  shard smallint NOT NULL,
  human bigint NOT NULL,
  bot bigint NOT NULL,
  PRIMARY KEY (code, bucket, shard)
) WITH (fillfactor = 70);

-- The day row also counts the day's unique visitors: `visitors` those first seen that day
-- (any click), `human_visitors` those with at least one human click that day.
CREATE TABLE link_clicks_day (
  code text NOT NULL,
  bucket timestamptz NOT NULL,
  shard smallint NOT NULL,
  human bigint NOT NULL,
  bot bigint NOT NULL,
  visitors bigint NOT NULL,
  human_visitors bigint NOT NULL,
  PRIMARY KEY (code, bucket, shard)
) WITH (fillfactor = 70);
-- Finds the links whose rows of a past day are still spread over shards, for compaction
-- (src/analytics/rollup-compaction.ts); compaction leaves only shard 0, so the index holds
-- just the last day or two.
CREATE INDEX link_clicks_day_sharded ON link_clicks_day (bucket) WHERE shard <> 0;

-- Per-link, per-day counts by referrer host and by country. An unknown value (no referrer,
-- no country) is stored as '' because a key column cannot be NULL; the query turns it back
-- into null.
CREATE TABLE link_breakdown_day (
  code text NOT NULL,
  bucket timestamptz NOT NULL,
  dimension text NOT NULL CHECK (dimension IN ('referrer', 'country')),
  value text NOT NULL,
  shard smallint NOT NULL,
  human bigint NOT NULL,
  bot bigint NOT NULL,
  PRIMARY KEY (code, bucket, dimension, value, shard)
) WITH (fillfactor = 70);

-- Per-link, per-day counts by browser, OS and device together, one row per combination:
-- they come from one User-Agent and vary together, so a click of a rarely clicked link
-- costs one row here instead of three, and the query sums each of them out. Unknown is ''.
CREATE TABLE link_agents_day (
  code text NOT NULL,
  bucket timestamptz NOT NULL,
  browser text NOT NULL,
  os text NOT NULL,
  device text NOT NULL,
  shard smallint NOT NULL,
  human bigint NOT NULL,
  bot bigint NOT NULL,
  PRIMARY KEY (code, bucket, browser, os, device, shard)
) WITH (fillfactor = 70);

-- The visitors seen per link and UTC day, only to decide whether a visitor is new (the
-- counts live in link_clicks_day). `key` is a 128-bit hash of (code, visitor key) made by
-- the writer: a small fixed-size key, and with the day first, a day's inserts touch only
-- that day's part of the index. A day's rows are useless once no more events can carry
-- that day's visitor key (its salt is deleted after a few days); retention deletes them
-- then, which also bounds the table to a few days of visitors.
CREATE TABLE link_visitors (
  day timestamptz NOT NULL,
  key uuid NOT NULL,
  human boolean NOT NULL,
  PRIMARY KEY (day, key)
);
