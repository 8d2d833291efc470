-- chatd schema, version 1.
--
-- Applied once, in one transaction, to a new database.  Later changes are
-- new numbered files (002_*.sql, ...), applied in order by chatd.store.

CREATE TABLE schema_version (
    version INTEGER NOT NULL
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
-- Names are unique case-insensitively (they are ASCII, so NOCASE is exact).
CREATE UNIQUE INDEX users_username ON users (username COLLATE NOCASE);

-- A pending request is one row, requester -> target.  An accepted
-- friendship is two rows, one each way, so "the friends of X" is one range.
CREATE TABLE friendships (
    user_id    INTEGER NOT NULL REFERENCES users (id),
    friend_id  INTEGER NOT NULL REFERENCES users (id),
    state      TEXT NOT NULL CHECK (state IN ('pending', 'accepted')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, friend_id),
    CHECK (user_id <> friend_id)
) WITHOUT ROWID;
CREATE INDEX friendships_incoming ON friendships (friend_id, state);

CREATE TABLE rooms (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX rooms_name ON rooms (name COLLATE NOCASE);

-- joined_message_id is the system message that recorded the latest join
-- ("X joined the room", "X created the room", "Y added X to the room"):
-- a member sees the room's history from it on.
CREATE TABLE room_members (
    room_id           INTEGER NOT NULL REFERENCES rooms (id),
    user_id           INTEGER NOT NULL REFERENCES users (id),
    joined_message_id INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
CREATE INDEX room_members_user ON room_members (user_id);

-- Every message is stored once.  target_type 0: a private message and
-- target_id the recipient; target_type 1: a room message and target_id the
-- room.  AUTOINCREMENT: ids are never reused and grow across restarts.
CREATE TABLE messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    sender_id     INTEGER NOT NULL REFERENCES users (id),
    target_type   INTEGER NOT NULL CHECK (target_type IN (0, 1)),
    target_id     INTEGER NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('text', 'system')),
    body          TEXT NOT NULL,
    client_msg_id TEXT,
    created_at    TEXT NOT NULL
);
-- A private conversation is the unordered pair of its two users.
CREATE INDEX messages_private
    ON messages (min(sender_id, target_id), max(sender_id, target_id), id)
    WHERE target_type = 0;
CREATE INDEX messages_room ON messages (target_id, id) WHERE target_type = 1;
-- A retried send finds the message stored the first time.
CREATE UNIQUE INDEX messages_client_msg_id
    ON messages (sender_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;

-- The newest message a user has read in a conversation (target_id is the
-- other user for a private conversation, the room for a room).
CREATE TABLE read_markers (
    user_id     INTEGER NOT NULL REFERENCES users (id),
    target_type INTEGER NOT NULL CHECK (target_type IN (0, 1)),
    target_id   INTEGER NOT NULL,
    message_id  INTEGER NOT NULL,
    PRIMARY KEY (user_id, target_type, target_id)
) WITHOUT ROWID;
