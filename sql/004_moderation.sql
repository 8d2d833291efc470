-- chatd schema, version 4: room topics, moderators and bans of PROTOCOL.md
-- section 12.
--
-- Applied in one transaction to a database of version 3, keeping all of
-- its data.

-- The room's topic, '' when unset.
ALTER TABLE rooms ADD COLUMN topic TEXT NOT NULL DEFAULT '';

-- A member's role besides ownership, which rooms.owner_id records: the
-- owner's own row says 'member'.  The row goes when the member leaves or
-- is removed, so whoever comes back is a plain member.
ALTER TABLE room_members ADD COLUMN role TEXT NOT NULL DEFAULT 'member'
    CHECK (role IN ('member', 'moderator'));

-- Who may not join a room again (by join_room or an invitation) until
-- unbanned, and who banned them when.
CREATE TABLE room_bans (
    room_id    INTEGER NOT NULL REFERENCES rooms (id),
    user_id    INTEGER NOT NULL REFERENCES users (id),
    banned_by  INTEGER NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;

-- Every room is owned by a member from now on: the member who joined
-- earliest (by their latest join) of those still in it, who is the creator
-- while they never left; a room with no members has no owner, and the next
-- to join will own it.
UPDATE rooms SET owner_id = (
    SELECT user_id FROM room_members
    WHERE room_id = rooms.id ORDER BY joined_message_id, user_id LIMIT 1
);
