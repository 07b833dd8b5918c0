-- Dashboard sign-in sessions (src/sessions/). A session is an API key exchanged once for a
-- random token held in an HttpOnly cookie; only the token's SHA-256 is stored, so a copy of
-- this table signs nobody in. Every instance reads the same rows: signing out or revoking
-- the key ends the session everywhere at once.
CREATE TABLE sessions (
  token_hash bytea PRIMARY KEY,
  key_id text NOT NULL REFERENCES api_keys (id),
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);

CREATE INDEX sessions_expires_at ON sessions (expires_at);
