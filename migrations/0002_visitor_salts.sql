-- Daily salts of the unique-visitor hash (src/analytics/visitor.ts). Workers share one salt
-- per UTC day: the first to need it inserts a random one, the others read it back. A day's
-- salt is deleted a few days after the day, so its hashes can no longer be recomputed from
-- an IP address and user agent.
CREATE TABLE visitor_salts (
  day date PRIMARY KEY,
  salt bytea NOT NULL CHECK (octet_length(salt) = 32)
);
