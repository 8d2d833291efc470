-- chatd schema, version 8: files and images (PROTOCOL.md section 14).
--
-- Applied in one transaction to a database of version 7, keeping all of
-- its data, with foreign keys off while it runs (chatd.store checks them
-- before it commits): the messages table is rebuilt.

-- One row per finished upload.  The content is stored once per SHA-256 in
-- the files folder (--files), named by its digest; several rows may share
-- it.  sent: whether a message ever carried it.  A row that no message
-- refers to any more (its messages deleted or expired) is removed, and an
-- upload never sent within a day too; content no row names is then swept
-- from the folder.
CREATE TABLE files (
    id          TEXT PRIMARY KEY,
    uploader_id INTEGER NOT NULL REFERENCES users (id),
    name        TEXT NOT NULL,
    size        INTEGER NOT NULL CHECK (size > 0),
    mime        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    sent        INTEGER NOT NULL DEFAULT 0 CHECK (sent IN (0, 1))
) WITHOUT ROWID;
CREATE INDEX files_uploader ON files (uploader_id);
CREATE INDEX files_sha256 ON files (sha256);

-- The messages gain kind 'file' and the file they carry.  SQLite cannot
-- change a CHECK constraint in place, so the table is made again (the
-- procedure of https://sqlite.org/lang_altertable.html section 7), its
-- rows, ids and id sequence kept: ids are never reused.
CREATE TEMP TABLE message_sequence AS
    SELECT seq FROM sqlite_sequence WHERE name = 'messages';

CREATE TABLE messages_new (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    sender_id     INTEGER NOT NULL REFERENCES users (id),
    target_type   INTEGER NOT NULL CHECK (target_type IN (0, 1)),
    target_id     INTEGER NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('text', 'system', 'file')),
    body          TEXT NOT NULL,
    client_msg_id TEXT,
    created_at    TEXT NOT NULL,
    edited_at     TEXT,
    deleted       INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    reply_to      INTEGER REFERENCES messages (id),
    -- The file a 'file' message carries; NULL once it is deleted.
    file_id       TEXT REFERENCES files (id)
);
INSERT INTO messages_new (id, sender_id, target_type, target_id, kind, body, client_msg_id,
                          created_at, edited_at, deleted, reply_to)
    SELECT id, sender_id, target_type, target_id, kind, body, client_msg_id,
           created_at, edited_at, deleted, reply_to
    FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM message_sequence), 0))
    WHERE name = 'messages';
DROP TABLE message_sequence;

-- The indexes of 001 and 007, and one for the messages of a file.
CREATE INDEX messages_private
    ON messages (min(sender_id, target_id), max(sender_id, target_id), id)
    WHERE target_type = 0;
CREATE INDEX messages_room ON messages (target_id, id) WHERE target_type = 1;
CREATE UNIQUE INDEX messages_client_msg_id
    ON messages (sender_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
CREATE INDEX messages_reply_to ON messages (reply_to) WHERE reply_to IS NOT NULL;
CREATE INDEX messages_file ON messages (file_id) WHERE file_id IS NOT NULL;
