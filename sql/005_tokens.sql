-- chatd schema, version 5: the session tokens of PROTOCOL.md section 13.
--
-- Applied in one transaction to a database of version 4, keeping all of
-- its data.

-- One row per token a login (or a password change) gave out.  Only the
-- token's SHA-256 is stored: whoever reads the file cannot log in with it.
-- used_at is when it last logged its user in; unused longer than
-- --token-days, it works no more.
CREATE TABLE tokens (
    hash       BLOB PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    used_at    TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX tokens_user ON tokens (user_id);
