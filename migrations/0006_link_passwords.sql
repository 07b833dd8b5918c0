-- Password-protected links: a slow hash (scrypt, with its salt and parameters), never the
-- password. NULL for an open link. Adding a nullable column without a default is a catalog
-- change only: no table rewrite, no long lock.
ALTER TABLE links ADD COLUMN password_hash text;
