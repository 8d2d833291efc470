-- chatd schema for PostgreSQL, version 8: what sql/001-008 make of a
-- SQLite database, made at once (there is no older PostgreSQL database to
-- upgrade).  Later versions are numbered files in this folder.
--
-- The store's SQL is the same for both databases; a few functions and a
-- collation give PostgreSQL what it calls that SQLite has: min() and max()
-- of two values, instr(), and NOCASE.  Flags are 0/1 integers and times
-- ISO 8601 text, as in SQLite.

CREATE FUNCTION min(a bigint, b bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT LEAST(a, b)';
CREATE FUNCTION max(a bigint, b bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT GREATEST(a, b)';
CREATE FUNCTION instr(haystack text, needle text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT strpos(haystack, needle)';
-- Case-insensitive equality, as SQLite's NOCASE (which folds ASCII only:
-- names are ASCII, PROTOCOL.md section 2).
CREATE COLLATION nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE schema_version (
    version INTEGER NOT NULL
);

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    last_seen_at  TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
);
CREATE UNIQUE INDEX users_username ON users (username COLLATE nocase);

CREATE TABLE friendships (
    user_id    BIGINT NOT NULL REFERENCES users (id),
    friend_id  BIGINT NOT NULL REFERENCES users (id),
    state      TEXT NOT NULL CHECK (state IN ('pending', 'accepted')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, friend_id),
    CHECK (user_id <> friend_id)
);
CREATE INDEX friendships_incoming ON friendships (friend_id, state);

CREATE TABLE rooms (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    owner_id   BIGINT REFERENCES users (id),
    topic      TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX rooms_name ON rooms (name COLLATE nocase);

CREATE TABLE room_members (
    room_id           BIGINT NOT NULL REFERENCES rooms (id),
    user_id           BIGINT NOT NULL REFERENCES users (id),
    joined_message_id BIGINT NOT NULL,
    role              TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'moderator')),
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_user ON room_members (user_id);

CREATE TABLE read_markers (
    user_id     BIGINT NOT NULL REFERENCES users (id),
    target_type INTEGER NOT NULL CHECK (target_type IN (0, 1)),
    target_id   BIGINT NOT NULL,
    message_id  BIGINT NOT NULL,
    PRIMARY KEY (user_id, target_type, target_id)
);

CREATE TABLE files (
    id          TEXT PRIMARY KEY,
    uploader_id BIGINT NOT NULL REFERENCES users (id),
    name        TEXT NOT NULL,
    size        BIGINT NOT NULL CHECK (size > 0),
    mime        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    sent        INTEGER NOT NULL DEFAULT 0 CHECK (sent IN (0, 1))
);
CREATE INDEX files_uploader ON files (uploader_id);
CREATE INDEX files_sha256 ON files (sha256);

-- Ids are taken from messages_id_seq by the group commit while it holds
-- the deployment's commit lock, so that they grow in commit order.
CREATE TABLE messages (
    id            BIGSERIAL PRIMARY KEY,
    sender_id     BIGINT NOT NULL REFERENCES users (id),
    target_type   INTEGER NOT NULL CHECK (target_type IN (0, 1)),
    target_id     BIGINT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('text', 'system', 'file')),
    body          TEXT NOT NULL,
    client_msg_id TEXT,
    created_at    TEXT NOT NULL,
    edited_at     TEXT,
    deleted       INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    reply_to      BIGINT REFERENCES messages (id),
    file_id       TEXT REFERENCES files (id)
);
CREATE INDEX messages_private
    ON messages (min(sender_id, target_id), max(sender_id, target_id), id)
    WHERE target_type = 0;
CREATE INDEX messages_room ON messages (target_id, id) WHERE target_type = 1;
CREATE UNIQUE INDEX messages_client_msg_id
    ON messages (sender_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
CREATE INDEX messages_reply_to ON messages (reply_to) WHERE reply_to IS NOT NULL;
CREATE INDEX messages_file ON messages (file_id) WHERE file_id IS NOT NULL;

CREATE TABLE reactions (
    id         BIGSERIAL PRIMARY KEY,
    message_id BIGINT NOT NULL REFERENCES messages (id),
    emoji      TEXT NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    since      BIGINT NOT NULL
);
CREATE UNIQUE INDEX reactions_message ON reactions (message_id, emoji, user_id);

CREATE TABLE mentions (
    message_id BIGINT NOT NULL REFERENCES messages (id),
    user_id    BIGINT NOT NULL REFERENCES users (id),
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX mentions_user ON mentions (user_id, message_id);

-- The current text of every searchable message, case-folded (as in
-- SQLite), and its trigram index: a search term of three characters or
-- more is found with LIKE through the index, a shorter one by scanning
-- the rows the conversations select (PROTOCOL.md section 11).
CREATE TABLE message_text (
    id   BIGINT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE INDEX message_text_trigrams ON message_text USING gin (body gin_trgm_ops);

CREATE TABLE room_bans (
    room_id    BIGINT NOT NULL REFERENCES rooms (id),
    user_id    BIGINT NOT NULL REFERENCES users (id),
    banned_by  BIGINT NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

CREATE TABLE tokens (
    hash       BYTEA PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    used_at    TEXT NOT NULL
);
CREATE INDEX tokens_user ON tokens (user_id);
