-- chatd schema, version 2: the version 2 Message of PROTOCOL.md sections 3
-- and 10 (edits, tombstones, replies, reactions, mentions) and room owners.
--
-- Applied in one transaction to a database of version 1, keeping all of
-- its data.

-- edited_at: the commit time of the latest edit, NULL if never edited.
-- deleted: 1 for a tombstone, whose body is '' (the text is overwritten,
-- not hidden), with no reply_to, mentions or reactions.
-- reply_to: the message this one answers; its Quote is read with it.
ALTER TABLE messages ADD COLUMN edited_at TEXT;
ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1));
ALTER TABLE messages ADD COLUMN reply_to INTEGER REFERENCES messages (id);

-- One row per user and emoji on a message.  since orders a message's
-- emoji: the id of the row that first added that emoji while none of it
-- was there, carried by every later row of the same emoji, so an emoji
-- keeps its place while anyone holds it and goes last when it comes back.
CREATE TABLE reactions (
    id         INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES messages (id),
    emoji      TEXT NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    since      INTEGER NOT NULL
);
CREATE UNIQUE INDEX reactions_message ON reactions (message_id, emoji, user_id);

-- The users a message mentions (never its sender), for the Message and for
-- the unread mention counts of login_info.
CREATE TABLE mentions (
    message_id INTEGER NOT NULL REFERENCES messages (id),
    user_id    INTEGER NOT NULL REFERENCES users (id),
    PRIMARY KEY (message_id, user_id)
) WITHOUT ROWID;
CREATE INDEX mentions_user ON mentions (user_id, message_id);

-- The owner of a room (PROTOCOL.md section 12).  Rooms of version 1 were
-- created by the sender of their first message, "X created the room".
ALTER TABLE rooms ADD COLUMN owner_id INTEGER REFERENCES users (id);
UPDATE rooms SET owner_id = (
    SELECT sender_id FROM messages
    WHERE target_type = 1 AND target_id = rooms.id AND kind = 'system'
    ORDER BY id LIMIT 1
);
