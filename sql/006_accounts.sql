-- chatd schema, version 6: what the operator sees of each account
-- (PROTOCOL.md section 15, chatd-admin).
--
-- Applied in one transaction to a database of version 5, keeping all of
-- its data.

-- last_seen_at: when the account's latest session ended (or began, for
-- one that is still on); NULL for an account that never logged in.
-- disabled: 1 while the operator keeps the account out.  Its tokens are
-- kept meanwhile, so that a resume with one is told account_disabled, and
-- deleted when it is enabled again.
ALTER TABLE users ADD COLUMN last_seen_at TEXT;
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1));

-- An account that used chatd before was last seen at its latest message
-- or its latest token use, whichever is later: one pass over each table.
UPDATE users SET last_seen_at = seen.at
FROM (
    SELECT sender_id AS user_id, max(created_at) AS at FROM messages
    WHERE kind <> 'system' GROUP BY sender_id
) AS seen
WHERE seen.user_id = users.id;
UPDATE users SET last_seen_at = seen.at
FROM (SELECT user_id, max(used_at) AS at FROM tokens GROUP BY user_id) AS seen
WHERE seen.user_id = users.id AND (users.last_seen_at IS NULL OR users.last_seen_at < seen.at);
