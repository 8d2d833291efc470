-- chatd schema, version 7: what message retention (--retention-days,
-- chatd.retention) needs to delete old messages quickly.
--
-- Applied in one transaction to a database of version 6, keeping all of
-- its data.

-- The replies to each message.  Deleting a message makes SQLite look for
-- the rows whose foreign key points at it (foreign_keys = ON), and the
-- replies are the only ones with no index to look in: without this one,
-- each deleted message cost a scan of the whole table (500 of them took
-- 4 s on 100 000 messages; with it, 1 ms).  The retention job also finds
-- here the replies whose quote it clears.  Partial: only replies have an
-- entry, so a message that answers nothing costs nothing more to store.
CREATE INDEX messages_reply_to ON messages (reply_to) WHERE reply_to IS NOT NULL;
