-- chatd schema, version 3: the search index of PROTOCOL.md section 11.
--
-- Applied in one transaction to a database of version 2, keeping all of
-- its data, and indexing every message already there.
--
-- casefold(text) is Python's str.casefold, which chatd registers on each
-- of its connections (chatd.database): search ignores case by full Unicode
-- case folding, which SQLite does not know.
--
-- Both tables are kept current by chatd.store, in the transactions that
-- write messages: a send adds the text, an edit replaces it, a delete (the
-- tombstone) removes it.  Not by triggers: SQLite 3.40's FTS5 writes its
-- pending index to disk at every statement of a trigger, which made each
-- send cost 70 us more than it does from the store's own statements.

-- The current text of every searchable message (not system, not deleted),
-- case-folded, by message id: what a search matches against.
CREATE TABLE message_text (
    id   INTEGER PRIMARY KEY,
    body TEXT NOT NULL
);

-- Its index.  The trigram tokenizer indexes every run of three characters
-- in any script: the rows holding every trigram of a term of three or more
-- characters are its candidates, and instr() on message_text tells which
-- really hold the term; a shorter term is looked for in the message_text
-- rows that the other terms or the conversations select.  Case-sensitive:
-- both sides are folded already.  External content: the text is stored
-- once, in message_text.  The index keeps no positions (detail = none) and
-- no sizes (columnsize = 0), nothing chatd reads, and merges 16 segments at
-- a time rather than 4: together a third less work for each message sent.
CREATE VIRTUAL TABLE message_search USING fts5 (
    body,
    content = 'message_text',
    content_rowid = 'id',
    tokenize = 'trigram case_sensitive 1',
    detail = none,
    columnsize = 0
);
INSERT INTO message_search (message_search, rank) VALUES ('automerge', 16);

INSERT INTO message_text (id, body)
    SELECT id, casefold(body) FROM messages WHERE kind <> 'system' AND deleted = 0;
INSERT INTO message_search (message_search) VALUES ('rebuild');
