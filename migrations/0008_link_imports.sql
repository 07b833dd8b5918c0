-- Links brought in by `shunt import`: where each came from, and the visits it had there.
-- One row per imported link. `source_key` fingerprints the source row (its format, its own
-- identity there and its destination), so importing the same file again creates nothing
-- twice: rows whose key is already here are skipped (docs/adr/0015-import-fingerprints.md).
CREATE TABLE link_imports (
  link_id bigint PRIMARY KEY REFERENCES links (id) ON DELETE CASCADE,
  source_key text NOT NULL,
  source_format text NOT NULL,
  -- The link's short code in the source system, when it had one (kept even when Shunt had
  -- to give the link another code).
  original_code text,
  -- Visits counted by the source system, shown apart from Shunt's own clicks.
  imported_clicks bigint NOT NULL DEFAULT 0 CHECK (imported_clicks >= 0),
  imported_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT link_imports_source_key UNIQUE (source_key)
);
