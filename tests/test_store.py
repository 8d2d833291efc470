"""
Tests for L{chatd.store}: the schema, the connection settings, and every
read and write of L{Store}, against a real SQLite file run synchronously.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from typing import Any

from twisted.enterprise.adbapi import Transaction
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from chatd import wire
from chatd.database import _placeholders, is_postgresql, make_pool, register_functions
from chatd.store import (
    Credentials,
    Scope,
    Store,
    StoredMessage,
    StoredQuote,
    Unread,
    _private_history_txn,
    _room_history_txn,
    _rows,
    _search_txn,
    _unread_txn,
    schema_files,
)
from chatd.wire import PRIVATE, ROOM, ChatError
from tests.postgres import on_postgresql
from tests.support import ImmediateReactor, InlineThreadPool, inline_pools, open_store

TABLES = {
    "schema_version",
    "users",
    "friendships",
    "rooms",
    "room_members",
    "messages",
    "read_markers",
}


def query(path: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """
    @return: the rows of C{sql} read through a connection of its own to the
        file at C{path}, which sees only committed data.
    """
    if is_postgresql(path):
        import psycopg

        with psycopg.connect(path, autocommit=True) as pg:
            return [tuple(row) for row in pg.execute(_placeholders(sql), params).fetchall()]
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(sql, params).fetchall()


def read_pragmas(txn: Transaction, *ignored: Any) -> dict[str, Any]:
    """
    @return: the connection settings chatd relies on, as PRAGMA reads them.
    """
    settings = {}
    for name in ("journal_mode", "foreign_keys", "synchronous", "secure_delete", "busy_timeout"):
        txn.execute(f"PRAGMA {name}")
        settings[name] = txn.fetchone()[0]
    return settings


class StoreTestCase(SynchronousTestCase):
    """
    A store on a new file in the test's temporary directory.
    """

    def setUp(self) -> None:
        self.reactor = ImmediateReactor()
        self.path = self.new_database()
        self.store = open_store(self, self.reactor, self.path)

    def new_database(self) -> str:
        """
        @return: where the test's store goes: a new SQLite file.
        """
        return self.mktemp() + ".sqlite3"

    def interact(self, interaction: Any, *args: Any) -> Deferred[Any]:
        """
        @return: the result of C{interaction} run on a connection of a pool
            of its own to the test's file.
        """
        pool = make_pool(self.path, self.reactor, 1)
        pool.threadpool = InlineThreadPool()  # type: ignore[assignment]
        self.addCleanup(pool.close)
        return pool.runInteraction(interaction, *args)

    def add_user(self, name: str, store: Store | None = None) -> int:
        return self.successResultOf((store or self.store).add_user(name, "hash-" + name))

    def add_message(
        self,
        sender: int,
        target_type: int,
        target: int,
        body: str = "hello",
        client_msg_id: str | None = None,
    ) -> StoredMessage:
        message, new = self.successResultOf(
            self.store.add_message(sender, target_type, target, body, client_msg_id)
        )
        self.assertTrue(new)
        return message

    def befriend(self, a: int, b: int) -> None:
        self.assertEqual(self.successResultOf(self.store.add_friend(a, b)), "sent")
        self.assertEqual(self.successResultOf(self.store.add_friend(b, a)), "accepted")

    def private_ids(
        self, a: int, b: int, before: int | None, after: int | None, limit: int
    ) -> tuple[list[int], bool]:
        messages, has_more = self.successResultOf(
            self.store.private_history(a, b, before, after, limit)
        )
        return [m.id for m in messages], has_more


class SchemaTests(StoreTestCase):
    """
    The numbered schema files and their application.
    """

    def test_new_file_gets_schema(self) -> None:
        """
        A new file gets every table and records the newest schema file in
        C{schema_version}.
        """
        tables = {row[0] for row in query(self.path, "SELECT name FROM sqlite_master")}
        self.assertLessEqual(TABLES, tables)
        newest = schema_files()[-1][0]
        self.assertEqual(query(self.path, "SELECT version FROM schema_version"), [(newest,)])

    def test_reapply_changes_nothing(self) -> None:
        """
        Migrating again, and reopening the same file, changes neither the
        schema, nor the version, nor the data.
        """
        self.add_user("alice")
        dump = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
        before = query(self.path, dump)
        self.successResultOf(self.store.migrate())
        open_store(self, self.reactor, self.path)
        self.assertEqual(query(self.path, dump), before)
        self.assertEqual(
            query(self.path, "SELECT version FROM schema_version"), [(schema_files()[-1][0],)]
        )
        self.assertEqual(query(self.path, "SELECT username FROM users"), [("alice",)])

    def test_writer_connection_settings(self) -> None:
        """
        The writer's connection runs with WAL, foreign keys, synchronous
        FULL, secure delete and a busy timeout.
        """
        settings = self.successResultOf(self.store.writer.submit(read_pragmas))
        self.assertEqual(settings["journal_mode"], "wal")
        self.assertEqual(settings["foreign_keys"], 1)
        self.assertEqual(settings["synchronous"], 2)
        self.assertEqual(settings["secure_delete"], 1)
        self.assertGreater(settings["busy_timeout"], 0)

    def test_pool_connection_settings(self) -> None:
        """
        A pool from C{make_pool} (as used for the readers) configures every
        connection the same way, with the busy timeout it was given.
        """
        pool = make_pool(self.path, self.reactor, 2, busy_timeout_ms=1234)
        pool.threadpool = InlineThreadPool()  # type: ignore[assignment]
        self.addCleanup(pool.close)
        settings = self.successResultOf(pool.runInteraction(read_pragmas))
        self.assertEqual(
            settings,
            {
                "journal_mode": "wal",
                "foreign_keys": 1,
                "synchronous": 2,
                "secure_delete": 1,
                "busy_timeout": 1234,
            },
        )

    def test_foreign_keys_enforced(self) -> None:
        """
        A message from a user who does not exist is refused by the database.
        """
        d = self.store.add_message(999, PRIVATE, 1, "hello")
        self.failureResultOf(d, sqlite3.IntegrityError)
        self.assertEqual(query(self.path, "SELECT count(*) FROM messages"), [(0,)])


class UserTests(StoreTestCase):
    """
    Accounts.
    """

    def test_add_user_and_credentials(self) -> None:
        """
        A new user gets an id, and C{credentials} finds them in any case.
        """
        user_id = self.add_user("Alice")
        credentials = self.successResultOf(self.store.credentials("aLICE"))
        assert credentials is not None
        self.assertEqual(
            (credentials.id, credentials.username, credentials.password_hash),
            (user_id, "Alice", "hash-Alice"),
        )
        self.assertIsNone(self.successResultOf(self.store.credentials("bob")))

    def test_username_unique_case_insensitively(self) -> None:
        """
        A name taken in another case is refused with C{username_taken}.
        """
        self.add_user("Alice")
        failure = self.failureResultOf(self.store.add_user("aLiCe", "x"), ChatError)
        self.assertEqual(failure.value.code, wire.USERNAME_TAKEN)
        self.assertEqual(query(self.path, "SELECT count(*) FROM users"), [(1,)])

    def test_set_password_hash(self) -> None:
        """
        C{set_password_hash} replaces the stored hash.
        """
        user_id = self.add_user("alice")
        self.successResultOf(self.store.set_password_hash(user_id, "new-hash"))
        credentials = self.successResultOf(self.store.credentials("alice"))
        assert credentials is not None
        self.assertEqual(credentials.password_hash, "new-hash")


class MessageTests(StoreTestCase):
    """
    Storing messages.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice = self.add_user("alice")
        self.bob = self.add_user("bob")

    def test_round_trip_exact(self) -> None:
        """
        A message body comes back from history exactly as stored: SQL-looking
        text, emoji, newlines and surrounding whitespace included.
        """
        body = '  Robert\'); DROP TABLE messages;--\n\r\n\t%_\\ "x" 👩\u200d👩\u200d👧 e\u0301 \U0001f600  '
        stored = self.add_message(self.alice, PRIVATE, self.bob, body, "c1")
        self.assertEqual(
            stored,
            StoredMessage(
                stored.id, "c1", self.alice, PRIVATE, self.bob, "text", body,
                "2026-11-24T06:00:30.123Z",
            ),
        )  # fmt: skip
        messages, _ = self.successResultOf(
            self.store.private_history(self.bob, self.alice, None, None, 50)
        )
        self.assertEqual(messages, [stored])

    def test_client_msg_id_dedup(self) -> None:
        """
        A second message with the same sender and C{client_msg_id} stores
        nothing and returns the first message with C{new} false.
        """
        first = self.add_message(self.alice, PRIVATE, self.bob, "first", "c1")
        again, new = self.successResultOf(
            self.store.add_message(self.alice, PRIVATE, self.bob, "second", "c1")
        )
        self.assertFalse(new)
        self.assertEqual(again, first)
        self.assertEqual(query(self.path, "SELECT body FROM messages"), [("first",)])

    def test_client_msg_id_per_sender(self) -> None:
        """
        The same C{client_msg_id} from another sender is a new message.
        """
        first = self.add_message(self.alice, PRIVATE, self.bob, "first", "c1")
        other = self.add_message(self.bob, PRIVATE, self.alice, "other", "c1")
        self.assertNotEqual(other.id, first.id)
        self.assertEqual(other.body, "other")

    def test_without_client_msg_id_never_dedup(self) -> None:
        """
        Messages without a C{client_msg_id} are all stored, even when equal.
        """
        first = self.add_message(self.alice, PRIVATE, self.bob, "same")
        second = self.add_message(self.alice, PRIVATE, self.bob, "same")
        self.assertNotEqual(first.id, second.id)
        self.assertIsNone(second.client_msg_id)

    def test_ids_grow(self) -> None:
        """
        Message ids grow strictly across conversations and rooms.
        """
        room = self.successResultOf(self.store.create_room("lobby", self.alice, "created"))
        ids = [room.id]
        for i in range(5):
            ids.append(self.add_message(self.alice, PRIVATE, self.bob, f"p{i}").id)
            ids.append(self.add_message(self.alice, ROOM, room.target_id, f"r{i}").id)
        self.assertEqual(ids, sorted(set(ids)))


class PrivateHistoryTests(StoreTestCase):
    """
    Paging through a private conversation.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice = self.add_user("alice")
        self.bob = self.add_user("bob")
        self.carol = self.add_user("carol")
        self.ids = []
        for i in range(10):
            sender, target = (self.alice, self.bob) if i % 2 else (self.bob, self.alice)
            self.ids.append(self.add_message(sender, PRIVATE, target, f"m{i}").id)
            # Another conversation interleaved: never part of the pages.
            self.add_message(self.alice, PRIVATE, self.carol, f"noise{i}")

    def test_newest_page(self) -> None:
        """
        Without C{before} or C{after}, the newest C{limit} messages come
        oldest first, with C{has_more} when older ones exist.
        """
        self.assertEqual(
            self.private_ids(self.alice, self.bob, None, None, 3), (self.ids[7:], True)
        )

    def test_either_side_same_conversation(self) -> None:
        """
        The conversation is the same whichever of its two users asks.
        """
        self.assertEqual(self.private_ids(self.bob, self.alice, None, None, 50), (self.ids, False))

    def test_newest_page_boundaries(self) -> None:
        """
        C{has_more} is false with exactly C{limit} messages and true with
        C{limit + 1}.
        """
        self.assertEqual(self.private_ids(self.alice, self.bob, None, None, 10), (self.ids, False))
        self.assertEqual(
            self.private_ids(self.alice, self.bob, None, None, 9), (self.ids[1:], True)
        )

    def test_before(self) -> None:
        """
        C{before} gives the newest C{limit} messages older than it, oldest
        first; C{has_more} is exact at the boundary.
        """
        ids = self.ids
        self.assertEqual(self.private_ids(self.alice, self.bob, ids[5], None, 3), (ids[2:5], True))
        self.assertEqual(self.private_ids(self.alice, self.bob, ids[4], None, 3), (ids[1:4], True))
        self.assertEqual(self.private_ids(self.alice, self.bob, ids[3], None, 3), (ids[0:3], False))
        self.assertEqual(self.private_ids(self.alice, self.bob, ids[2], None, 3), (ids[0:2], False))
        self.assertEqual(self.private_ids(self.alice, self.bob, ids[0], None, 3), ([], False))

    def test_after(self) -> None:
        """
        C{after} gives the oldest C{limit} messages newer than it;
        C{has_more} is exact at the boundary.
        """
        ids = self.ids
        self.assertEqual(self.private_ids(self.alice, self.bob, None, ids[3], 5), (ids[4:9], True))
        self.assertEqual(self.private_ids(self.alice, self.bob, None, ids[4], 5), (ids[5:], False))
        self.assertEqual(self.private_ids(self.alice, self.bob, None, ids[6], 5), (ids[7:], False))
        self.assertEqual(self.private_ids(self.alice, self.bob, None, ids[9], 5), ([], False))
        self.assertEqual(self.private_ids(self.alice, self.bob, None, 0, 10), (ids, False))


class RoomTests(StoreTestCase):
    """
    Rooms, membership and room history.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice = self.add_user("alice")
        self.bob = self.add_user("bob")

    def test_create_room(self) -> None:
        """
        Creating a room stores its first (system) message from the creator,
        who is its first member from that message on.
        """
        created = self.successResultOf(self.store.create_room("Lobby", self.alice, "made it"))
        self.assertEqual(
            (created.kind, created.sender_id, created.target_type, created.body),
            ("system", self.alice, ROOM, "made it"),
        )
        self.assertEqual(
            query(self.path, "SELECT room_id, user_id, joined_message_id FROM room_members"),
            [(created.target_id, self.alice, created.id)],
        )

    def test_room_name_unique_case_insensitively(self) -> None:
        """
        A room name taken in another case is refused with C{room_exists}.
        """
        self.successResultOf(self.store.create_room("Lobby", self.alice, "x"))
        failure = self.failureResultOf(self.store.create_room("LOBBY", self.bob, "x"), ChatError)
        self.assertEqual(failure.value.code, wire.ROOM_EXISTS)
        self.assertEqual(query(self.path, "SELECT count(*) FROM messages"), [(1,)])

    def test_join_and_quit_refusals(self) -> None:
        """
        Joining twice is C{already_in_room}; quitting a room not joined is
        C{not_in_room}; adding someone to a room one is not in is
        C{not_in_room}.
        """
        room = self.successResultOf(self.store.create_room("lobby", self.alice, "x")).target_id
        carol = self.add_user("carol")
        for d, code in [
            (self.store.join_room(room, self.alice, self.alice, "j"), wire.ALREADY_IN_ROOM),
            (self.store.quit_room(room, self.bob, "q"), wire.NOT_IN_ROOM),
            (self.store.join_room(room, self.bob, carol, "added"), wire.NOT_IN_ROOM),
        ]:
            self.assertEqual(self.failureResultOf(d, ChatError).value.code, code)
        self.assertEqual(query(self.path, "SELECT count(*) FROM messages"), [(1,)])

    def test_room_history_since(self) -> None:
        """
        Room history returns only that room's messages from C{since} on.
        """
        created = self.successResultOf(self.store.create_room("lobby", self.alice, "x"))
        room = created.target_id
        other = self.successResultOf(self.store.create_room("other", self.bob, "y")).target_id
        first = self.add_message(self.alice, ROOM, room, "before bob")
        joined = self.successResultOf(self.store.join_room(room, self.bob, self.bob, "j"))
        self.add_message(self.bob, ROOM, other, "elsewhere")
        last = self.add_message(self.alice, ROOM, room, "after bob")
        messages, has_more = self.successResultOf(
            self.store.room_history(room, joined.id, None, None, 50)
        )
        self.assertEqual(([m.id for m in messages], has_more), ([joined.id, last.id], False))
        messages, has_more = self.successResultOf(
            self.store.room_history(room, created.id, None, None, 3)
        )
        self.assertEqual(
            ([m.id for m in messages], has_more), ([first.id, joined.id, last.id], True)
        )
        messages, has_more = self.successResultOf(
            self.store.room_history(room, joined.id, joined.id + 1, None, 50)
        )
        self.assertEqual(([m.id for m in messages], has_more), ([joined.id], False))


class UnreadTests(StoreTestCase):
    """
    Unread counts and read markers.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice = self.add_user("alice")
        self.bob = self.add_user("bob")
        self.carol = self.add_user("carol")

    def marker(self, user: int, target_type: int, target: int) -> int:
        rows = query(
            self.path,
            "SELECT message_id FROM read_markers"
            " WHERE user_id = ? AND target_type = ? AND target_id = ?",
            (user, target_type, target),
        )
        self.assertEqual(len(rows), 1)
        return int(rows[0][0])

    def test_private_unread(self) -> None:
        """
        Unread counts the other side's messages after the read marker, not
        one's own; C{last_message_id} is the conversation's newest message;
        a conversation with nothing unread is left out.
        """
        m1 = self.add_message(self.alice, PRIVATE, self.bob, "1")
        m2 = self.add_message(self.alice, PRIVATE, self.bob, "2")
        m3 = self.add_message(self.alice, PRIVATE, self.bob, "3")
        mine = self.add_message(self.bob, PRIVATE, self.alice, "mine")
        self.add_message(self.bob, PRIVATE, self.carol, "to carol")
        unread = self.successResultOf(self.store.unread(self.bob, [self.alice, self.carol], {}))
        self.assertEqual(unread, [Unread(PRIVATE, self.alice, 3, 0, mine.id)])
        self.successResultOf(self.store.mark_read(self.bob, PRIVATE, self.alice, m1.id))
        unread = self.successResultOf(self.store.unread(self.bob, [self.alice], {}))
        self.assertEqual(unread, [Unread(PRIVATE, self.alice, 2, 0, mine.id)])
        self.successResultOf(self.store.mark_read(self.bob, PRIVATE, self.alice, m3.id))
        self.assertEqual(self.successResultOf(self.store.unread(self.bob, [self.alice], {})), [])
        self.assertLess(m2.id, m3.id)

    def test_room_unread(self) -> None:
        """
        In a room, unread counts others' messages from the user's join and
        after their marker, not their own.
        """
        room = self.successResultOf(self.store.create_room("lobby", self.alice, "x")).target_id
        self.add_message(self.alice, ROOM, room, "before bob")
        joined = self.successResultOf(self.store.join_room(room, self.bob, self.bob, "j"))
        a1 = self.add_message(self.alice, ROOM, room, "a1")
        self.add_message(self.bob, ROOM, room, "mine")
        a2 = self.add_message(self.alice, ROOM, room, "a2")
        rooms = {room: joined.id}
        unread = self.successResultOf(self.store.unread(self.bob, [], rooms))
        self.assertEqual(unread, [Unread(ROOM, room, 2, 0, a2.id)])
        self.successResultOf(self.store.mark_read(self.bob, ROOM, room, a1.id))
        unread = self.successResultOf(self.store.unread(self.bob, [], rooms))
        self.assertEqual(unread, [Unread(ROOM, room, 1, 0, a2.id)])

    def test_marker_never_moves_backwards(self) -> None:
        """
        Marking an older message read leaves the marker where it was.
        """
        m1 = self.add_message(self.alice, PRIVATE, self.bob, "1")
        m2 = self.add_message(self.alice, PRIVATE, self.bob, "2")
        self.successResultOf(self.store.mark_read(self.bob, PRIVATE, self.alice, m2.id))
        self.successResultOf(self.store.mark_read(self.bob, PRIVATE, self.alice, m1.id))
        self.assertEqual(self.marker(self.bob, PRIVATE, self.alice), m2.id)

    def test_marker_clamped(self) -> None:
        """
        A marker beyond the newest message is clamped to it, so later
        messages still count as unread.
        """
        m1 = self.add_message(self.alice, PRIVATE, self.bob, "1")
        self.successResultOf(self.store.mark_read(self.bob, PRIVATE, self.alice, wire.MAX_INT - 1))
        self.assertEqual(self.marker(self.bob, PRIVATE, self.alice), m1.id)
        m2 = self.add_message(self.alice, PRIVATE, self.bob, "2")
        unread = self.successResultOf(self.store.unread(self.bob, [self.alice], {}))
        self.assertEqual(unread, [Unread(PRIVATE, self.alice, 1, 0, m2.id)])

    def test_markers_are_per_user_and_conversation(self) -> None:
        """
        One user's marker does not move another user's or another
        conversation's.
        """
        self.add_message(self.alice, PRIVATE, self.bob, "1")
        self.add_message(self.carol, PRIVATE, self.bob, "2")
        m3 = self.add_message(self.bob, PRIVATE, self.alice, "3")
        self.successResultOf(self.store.mark_read(self.bob, PRIVATE, self.alice, m3.id))
        unread = self.successResultOf(self.store.unread(self.bob, [self.alice, self.carol], {}))
        self.assertEqual([(u.target_id, u.count) for u in unread], [(self.carol, 1)])
        unread = self.successResultOf(self.store.unread(self.alice, [self.bob], {}))
        self.assertEqual([(u.target_id, u.count) for u in unread], [(self.bob, 1)])


class ManyConversationsUnreadTests(StoreTestCase):
    """
    Unread counts over many friends and rooms at once, as a login asks.
    """

    def setUp(self) -> None:
        super().setUp()
        self.me = self.add_user("me")
        self.bob, self.carol, self.dave, self.erin = (
            self.add_user(name) for name in ("bob", "carol", "dave", "erin")
        )
        for friend in (self.bob, self.carol, self.dave):
            self.befriend(self.me, friend)

    def join(self, room: int, user: int) -> int:
        return self.successResultOf(self.store.join_room(room, user, user, "joined")).id

    def test_friends_and_rooms(self) -> None:
        """
        Each friend counts their messages after the user's marker; each room
        counts others' messages from the later of the marker's next message
        and the latest join; own messages never count but may be
        C{last_message_id}, the newest of the conversation; conversations
        with nothing unread are left out; the entries keep the order asked.
        """
        store = self.store
        lobby = self.successResultOf(store.create_room("lobby", self.bob, "made")).target_id
        later = self.successResultOf(store.create_room("later", self.carol, "made")).target_id
        quiet = self.successResultOf(store.create_room("quiet", self.dave, "made")).target_id
        lobby_joined = self.join(lobby, self.me)
        self.join(lobby, self.carol)
        self.join(quiet, self.me)
        # bob: two unread, then my reply is the newest message.
        self.add_message(self.bob, PRIVATE, self.me, "b1")
        self.add_message(self.bob, PRIVATE, self.me, "b2")
        my_reply = self.add_message(self.me, PRIVATE, self.bob, "mine")
        # carol: three, the first read.
        c1 = self.add_message(self.carol, PRIVATE, self.me, "c1")
        self.add_message(self.carol, PRIVATE, self.me, "c2")
        c3 = self.add_message(self.carol, PRIVATE, self.me, "c3")
        self.successResultOf(store.mark_read(self.me, PRIVATE, self.carol, c1.id))
        # dave: only mine; erin is not asked about (not a friend).
        self.add_message(self.me, PRIVATE, self.dave, "to dave")
        self.add_message(self.erin, PRIVATE, self.me, "from erin")
        # lobby: read up to l1; then others' l2, l3 and mine.
        l1 = self.add_message(self.bob, ROOM, lobby, "l1")
        self.successResultOf(store.mark_read(self.me, ROOM, lobby, l1.id))
        self.add_message(self.carol, ROOM, lobby, "l2")
        self.add_message(self.bob, ROOM, lobby, "l3")
        mine_in_lobby = self.add_message(self.me, ROOM, lobby, "mine")
        # later: two messages before I join (not seen), a marker older than
        # my join, then one message after it.
        e1 = self.add_message(self.carol, ROOM, later, "early 1")
        self.add_message(self.carol, ROOM, later, "early 2")
        self.successResultOf(store.mark_read(self.me, ROOM, later, e1.id))
        later_joined = self.join(later, self.me)
        after_join = self.add_message(self.carol, ROOM, later, "after")
        # quiet: everything read.
        q1 = self.add_message(self.dave, ROOM, quiet, "q1")
        self.successResultOf(store.mark_read(self.me, ROOM, quiet, q1.id))
        unread = self.successResultOf(
            store.unread(
                self.me,
                [self.carol, self.dave, self.bob],
                {later: later_joined, quiet: 1, lobby: lobby_joined},
            )
        )
        self.assertEqual(
            unread,
            [
                Unread(PRIVATE, self.carol, 2, 0, c3.id),
                Unread(PRIVATE, self.bob, 2, 0, my_reply.id),
                Unread(ROOM, later, 1, 0, after_join.id),
                Unread(ROOM, lobby, 2, 0, mine_in_lobby.id),
            ],
        )

    def test_nothing_asked(self) -> None:
        """
        No friends and no rooms: nothing unread.
        """
        self.add_message(self.bob, PRIVATE, self.me, "b1")
        self.assertEqual(self.successResultOf(self.store.unread(self.me, [], {})), [])

    def test_many(self) -> None:
        """
        Hundreds of conversations give one entry each, with its own count.
        """
        friends = [self.add_user(f"f{i}") for i in range(150)]
        rooms = {}
        for i, friend in enumerate(friends):
            self.befriend(self.me, friend)
            for _ in range(i % 3):
                self.add_message(friend, PRIVATE, self.me, "hi")
        for i in range(60):
            room = self.successResultOf(self.store.create_room(f"r{i}", self.me, "made"))
            rooms[room.target_id] = room.id
            for _ in range(i % 4):
                self.add_message(self.bob, ROOM, room.target_id, "hi")
        unread = self.successResultOf(self.store.unread(self.me, friends, rooms))
        counts = {(u.target_type, u.target_id): u.count for u in unread}
        expected = {(PRIVATE, f): i % 3 for i, f in enumerate(friends) if i % 3}
        expected.update({(ROOM, r): i % 4 for i, r in enumerate(rooms) if i % 4})
        self.assertEqual(counts, expected)
        self.assertEqual(len(unread), len(expected))


class FriendTests(StoreTestCase):
    """
    Friend requests and friendships.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice = self.add_user("alice")
        self.bob = self.add_user("bob")
        self.carol = self.add_user("carol")

    def test_requests(self) -> None:
        """
        A request is C{sent} once, C{repeat} after, and listed for its
        target oldest first.
        """
        self.assertEqual(self.successResultOf(self.store.add_friend(self.bob, self.alice)), "sent")
        self.assertEqual(
            self.successResultOf(self.store.add_friend(self.bob, self.alice)), "repeat"
        )
        self.successResultOf(self.store.add_friend(self.carol, self.alice))
        self.assertEqual(
            self.successResultOf(self.store.friend_requests(self.alice)), [self.bob, self.carol]
        )
        self.assertEqual(self.successResultOf(self.store.friend_requests(self.bob)), [])

    def test_resolve(self) -> None:
        """
        Accepting makes friends; declining removes the request; resolving
        without a request is C{no_pending_request}; befriending friends is
        C{already_friends}.
        """
        self.successResultOf(self.store.add_friend(self.bob, self.alice))
        self.successResultOf(self.store.add_friend(self.carol, self.alice))
        self.successResultOf(self.store.resolve_friend_request(self.alice, self.bob, True))
        self.successResultOf(self.store.resolve_friend_request(self.alice, self.carol, False))
        self.assertEqual(self.successResultOf(self.store.friend_requests(self.alice)), [])
        failure = self.failureResultOf(
            self.store.resolve_friend_request(self.alice, self.carol, True), ChatError
        )
        self.assertEqual(failure.value.code, wire.NO_PENDING_REQUEST)
        failure = self.failureResultOf(self.store.add_friend(self.alice, self.bob), ChatError)
        self.assertEqual(failure.value.code, wire.ALREADY_FRIENDS)
        snapshot = self.successResultOf(self.store.load_directory())
        self.assertEqual(snapshot.friendships, [(self.alice, self.bob)])

    def test_remove(self) -> None:
        """
        Removing a friendship ends it; removing it again is C{not_friends}.
        """
        self.befriend(self.alice, self.bob)
        self.successResultOf(self.store.remove_friend(self.bob, self.alice))
        self.assertEqual(self.successResultOf(self.store.load_directory()).friendships, [])
        failure = self.failureResultOf(self.store.remove_friend(self.alice, self.bob), ChatError)
        self.assertEqual(failure.value.code, wire.NOT_FRIENDS)
        self.befriend(self.bob, self.alice)


class DirectoryLoadTests(StoreTestCase):
    """
    C{load_directory}, and data that outlives the process.
    """

    def populate(self, store: Store) -> dict[str, Any]:
        alice = self.add_user("alice", store)
        bob = self.add_user("bob", store)
        carol = self.add_user("carol", store)
        dave = self.add_user("dave", store)
        self.successResultOf(store.add_friend(bob, alice))
        self.successResultOf(store.add_friend(alice, bob))
        self.successResultOf(store.add_friend(carol, alice))
        self.successResultOf(store.resolve_friend_request(alice, carol, True))
        self.successResultOf(store.add_friend(dave, alice))
        lobby = self.successResultOf(store.create_room("Lobby", alice, "c"))
        empty = self.successResultOf(store.create_room("empty", bob, "c"))
        joined = self.successResultOf(store.join_room(lobby.target_id, bob, bob, "j"))
        added = self.successResultOf(store.join_room(lobby.target_id, alice, carol, "a"))
        self.successResultOf(store.join_room(lobby.target_id, dave, dave, "j"))
        self.successResultOf(store.quit_room(empty.target_id, bob, "q"))
        self.successResultOf(store.set_topic(lobby.target_id, alice, "all about it", "t"))
        self.successResultOf(store.set_role(lobby.target_id, bob, "moderator"))
        self.successResultOf(store.kick(lobby.target_id, bob, dave, True, "k"))
        message, _ = self.successResultOf(store.add_message(alice, PRIVATE, bob, "kept", "k1"))
        return {
            "users": {alice: "alice", bob: "bob", carol: "carol", dave: "dave"},
            "friendships": sorted([(min(alice, bob), max(alice, bob)), (alice, carol)]),
            "rooms": {lobby.target_id: "Lobby", empty.target_id: "empty"},
            # Nobody is in "empty": it has no owner until someone joins.
            "owners": {lobby.target_id: alice},
            "topics": {lobby.target_id: "all about it"},
            "members": sorted(
                [
                    (lobby.target_id, alice, lobby.id),
                    (lobby.target_id, bob, joined.id),
                    (lobby.target_id, carol, added.id),
                ]
            ),
            "moderators": [(lobby.target_id, bob)],
            "bans": [(lobby.target_id, dave)],
            "message": message,
        }

    def assert_snapshot(self, store: Store, expected: dict[str, Any]) -> None:
        snapshot = self.successResultOf(store.load_directory())
        self.assertEqual(snapshot.users, expected["users"])
        self.assertEqual(sorted(snapshot.friendships), expected["friendships"])
        self.assertEqual(len(snapshot.friendships), len(set(snapshot.friendships)))
        self.assertEqual(snapshot.rooms, expected["rooms"])
        self.assertEqual(snapshot.owners, expected["owners"])
        self.assertEqual(snapshot.topics, expected["topics"])
        self.assertEqual(sorted(snapshot.members), expected["members"])
        self.assertEqual(snapshot.moderators, expected["moderators"])
        self.assertEqual(snapshot.bans, expected["bans"])

    def test_load_directory(self) -> None:
        """
        C{load_directory} reads back users, accepted friendships (each pair
        once, pending ones left out), rooms (empty ones too, without an
        owner), topics, members, moderators and bans.
        """
        self.assert_snapshot(self.store, self.populate(self.store))

    def test_survives_reopening(self) -> None:
        """
        Everything committed is there after closing the file and opening it
        again, and new ids keep growing.
        """
        expected = self.populate(self.store)
        self.store.close()
        reopened = open_store(self, self.reactor, self.path)
        self.assert_snapshot(reopened, expected)
        message = expected["message"]
        users = sorted(expected["users"])
        messages, _ = self.successResultOf(
            reopened.private_history(message.sender_id, message.target_id, None, None, 50)
        )
        self.assertEqual(messages, [message])
        again, new = self.successResultOf(
            reopened.add_message(message.sender_id, PRIVATE, message.target_id, "x", "k1")
        )
        self.assertEqual((again, new), (message, False))
        later = self.successResultOf(reopened.add_message(users[0], PRIVATE, users[1], "later"))
        self.assertGreater(later[0].id, message.id)
        self.assertEqual(later[0].time, "2026-11-24T06:00:30.123Z")


class RowsTests(StoreTestCase):
    """
    Rows become records by column name.
    """

    def rows(self, sql: str) -> Deferred[list[Credentials]]:
        def interaction(txn: Transaction) -> list[Credentials]:
            txn.execute(sql)
            return _rows(txn, Credentials)

        return self.interact(interaction)

    def test_by_name(self) -> None:
        """
        Columns in any order fill the fields of their names.
        """
        user_id = self.add_user("alice")
        expected = [Credentials(user_id, "alice", "hash-alice")]
        for sql in [
            "SELECT id, username, password_hash FROM users",
            "SELECT password_hash, id, username FROM users",
        ]:
            self.assertEqual(self.successResultOf(self.rows(sql)), expected)

    def test_columns_must_match(self) -> None:
        """
        A missing, extra or misnamed column is an error, not a shifted field.
        """
        self.add_user("alice")
        for sql in [
            "SELECT id, username FROM users",
            "SELECT id, username, password_hash, created_at FROM users",
            "SELECT id, username AS name, password_hash FROM users",
        ]:
            self.failureResultOf(self.rows(sql), ValueError)


class RecordingTransaction:
    """
    A transaction that records the statements run through it.
    """

    def __init__(self, txn: Transaction) -> None:
        self._txn = txn
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self.statements.append((sql, params))
        self._txn.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._txn, name)


class QueryPlanTests(StoreTestCase):
    """
    The reads of messages seek the partial indexes instead of scanning.
    """

    def plans(self, interaction: Any, *args: Any) -> list[list[str]]:
        """
        @return: the query plan of each statement C{interaction} runs.
        """

        def run(txn: Transaction) -> list[list[str]]:
            recording = RecordingTransaction(txn)
            interaction(recording, *args)
            plans = []
            for sql, params in recording.statements:
                if sql != "BEGIN":
                    txn.execute("EXPLAIN QUERY PLAN " + sql, params)
                    plans.append([row[3] for row in txn.fetchall()])
            return plans

        result: list[list[str]] = self.successResultOf(self.interact(run))
        return result

    def assert_seeks(
        self, plans: list[list[str]], index: str, searches: int, table: str = "messages"
    ) -> None:
        """
        Every access to C{messages} (named C{table} in the statement) in
        C{plans} is a search of C{index}, C{searches} of them in all.
        """
        accesses = [step for plan in plans for step in plan if f" {table} " in step + " "]
        self.assertEqual(len(accesses), searches, accesses)
        for step in accesses:
            self.assertTrue(step.startswith(f"SEARCH {table} USING INDEX {index} ("), step)

    def test_unread(self) -> None:
        """
        The unread counts and newest ids of friends and rooms each seek
        their partial index: two statements, two searches each.
        """
        plans = self.plans(_unread_txn, 1, [2, 3], {1: 1, 2: 1})
        self.assertEqual(len(plans), 2)
        self.assert_seeks(plans[:1], "messages_private", 2)
        self.assert_seeks(plans[1:], "messages_room", 2)

    def test_history(self) -> None:
        """
        Pages of private and room history, either way, seek the partial
        index of their kind of conversation.
        """
        alice, bob = self.add_user("alice"), self.add_user("bob")
        room = self.successResultOf(self.store.create_room("lobby", alice, "created"))
        for target_type, target in [(PRIVATE, bob), (ROOM, room.target_id)]:
            for _ in range(12):
                self.add_message(alice, target_type, target)
        for before, after in [(None, None), (10, None), (None, 3)]:
            for plans, index in [
                (self.plans(_private_history_txn, 1, 2, before, after, 50), "messages_private"),
                (self.plans(_room_history_txn, 1, 1, before, after, 50), "messages_room"),
            ]:
                self.assert_seeks(plans[:1], index, 1, table="m")
                quotes = [step for step in plans[0] if " q " in step + " "]
                self.assertEqual(len(quotes), 1)
                self.assertTrue(quotes[0].startswith("SEARCH q USING INTEGER PRIMARY KEY"))
                # The page's mentions and reactions: one statement, one
                # search of each table's index.
                [extras] = plans[1:]
                self.assertIn("SEARCH mentions USING PRIMARY KEY (message_id=?)", extras)
                self.assertIn(
                    "SEARCH reactions USING INDEX reactions_message (message_id=?)", extras
                )
                self.assertEqual([step for step in extras if step.startswith("SCAN")], [])

    def test_literals_are_the_wire_constants(self) -> None:
        """
        The partial indexes, whose conditions the store's reads repeat as
        literals, select the target types of L{chatd.wire}.
        """
        rows = query(
            self.path,
            "SELECT name, sql FROM sqlite_master WHERE name IN ('messages_private', 'messages_room')",
        )
        conditions = {name: sql.rsplit("WHERE", 1)[1].strip() for name, sql in rows}
        self.assertEqual(
            conditions,
            {
                "messages_private": f"target_type = {PRIVATE}",
                "messages_room": f"target_type = {ROOM}",
            },
        )


class VersionTwoMessageTests(StoreTestCase):
    """
    What version 2 adds to a message (PROTOCOL.md 3 and 10): replies,
    mentions, edits, tombstones and reactions, as stored and read back.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice, self.bob, self.carol = (self.add_user(n) for n in ("alice", "bob", "carol"))
        self.room = self.successResultOf(
            self.store.create_room("lobby", self.alice, "alice created the room")
        )
        self.room_id = self.room.target_id

    def history(self) -> list[StoredMessage]:
        messages, _ = self.successResultOf(
            self.store.room_history(self.room_id, 0, None, None, 100)
        )
        return messages

    def error(self, d: Deferred[Any]) -> str:
        code: str = self.failureResultOf(d, ChatError).value.code
        return code

    def test_plain_message(self) -> None:
        """
        A message without any of it has the empty values, stored and read.
        """
        sent = self.add_message(self.alice, ROOM, self.room_id)
        self.assertEqual(
            (sent.edited_at, sent.deleted, sent.reply_to, sent.mentions, sent.reactions),
            (None, False, None, (), ()),
        )
        self.assertEqual(self.history()[-1], sent)

    def test_reply_and_mentions(self) -> None:
        """
        A reply carries a Quote of its original (the text cut to 200 code
        points) and its mentions, in the reply to the sender and in history.
        """
        long = self.add_message(self.alice, ROOM, self.room_id, "😀" * 250)
        reply, _ = self.successResultOf(
            self.store.add_message(
                self.bob, ROOM, self.room_id, "yes", reply_to=long.id, mentions=(1, 3)
            )
        )
        self.assertEqual(reply.reply_to, StoredQuote(long.id, self.alice, "😀" * 200, False))
        self.assertEqual(reply.mentions, (1, 3))
        self.assertEqual(self.history()[-1], reply)

    def test_reply_refused(self) -> None:
        """
        A reply to a message of another conversation, a system message, a
        deleted one, one before the sender's C{since}, or none at all is
        C{no_such_message} and stores nothing.
        """
        private = self.add_message(self.alice, PRIVATE, self.bob)
        early = self.add_message(self.alice, ROOM, self.room_id)
        gone = self.add_message(self.alice, ROOM, self.room_id)
        self.successResultOf(self.store.delete_message(gone.id))
        before = query(self.path, "SELECT count(*) FROM messages")
        for reply_to, since in [
            (private.id, 0),
            (self.room.id, 0),
            (gone.id, 0),
            (early.id, early.id + 1),
            (10_000, 0),
        ]:
            d = self.store.add_message(
                self.bob, ROOM, self.room_id, "hm", reply_to=reply_to, since=since
            )
            self.assertEqual(self.error(d), wire.NO_SUCH_MESSAGE, reply_to)
        self.assertEqual(query(self.path, "SELECT count(*) FROM messages"), before)
        d = self.store.add_message(self.carol, PRIVATE, self.alice, "hm", reply_to=private.id)
        self.assertEqual(self.error(d), wire.NO_SUCH_MESSAGE)
        reply, _ = self.successResultOf(
            self.store.add_message(self.bob, PRIVATE, self.alice, "ok", reply_to=private.id)
        )
        self.assertEqual(reply.reply_to, StoredQuote(private.id, self.alice, "hello", False))

    def test_edit(self) -> None:
        """
        An edit replaces the text and the mentions and sets C{edited_at};
        an edit to the same text changes nothing.
        """
        sent, _ = self.successResultOf(
            self.store.add_message(self.alice, ROOM, self.room_id, "helo @bob", mentions=(2,))
        )
        edited, changed = self.successResultOf(
            self.store.edit_message(sent.id, "hello @carol", (3,))
        )
        self.assertTrue(changed)
        self.assertEqual(
            (edited.body, edited.mentions, edited.time), ("hello @carol", (3,), sent.time)
        )
        self.assertIsNotNone(edited.edited_at)
        self.assertEqual(self.history()[-1], edited)
        again, changed = self.successResultOf(
            self.store.edit_message(sent.id, "hello @carol", (3,))
        )
        self.assertEqual((again, changed), (edited, False))

    def test_edit_refused(self) -> None:
        """
        A missing message is C{no_such_message}; a system or deleted one is
        C{not_allowed}.
        """
        gone = self.add_message(self.alice, ROOM, self.room_id)
        self.successResultOf(self.store.delete_message(gone.id))
        self.assertEqual(self.error(self.store.edit_message(10_000, "x", ())), wire.NO_SUCH_MESSAGE)
        self.assertEqual(
            self.error(self.store.edit_message(self.room.id, "x", ())), wire.NOT_ALLOWED
        )
        self.assertEqual(self.error(self.store.edit_message(gone.id, "x", ())), wire.NOT_ALLOWED)

    def test_tombstone(self) -> None:
        """
        A deleted message keeps its id, time, kind, sender and target; its
        text, quote, mentions and reactions go, and a reply to it shows it
        deleted with its sender.  Deleting twice, or a system message, is
        C{not_allowed}.
        """
        original = self.add_message(self.alice, ROOM, self.room_id, "first")
        sent, _ = self.successResultOf(
            self.store.add_message(
                self.bob, ROOM, self.room_id, "secret @alice", reply_to=original.id, mentions=(1,)
            )
        )
        reply, _ = self.successResultOf(
            self.store.add_message(self.carol, ROOM, self.room_id, "what?", reply_to=sent.id)
        )
        self.successResultOf(self.store.react(sent.id, self.alice, "👍", True))
        self.successResultOf(self.store.edit_message(sent.id, "secret! @alice", (1,)))
        self.assertIsNone(self.successResultOf(self.store.delete_message(sent.id)))
        tombstone = self.successResultOf(self.store.message(sent.id))
        self.assertEqual(
            tombstone,
            StoredMessage(
                sent.id, None, self.bob, ROOM, self.room_id, "text", "", sent.time, deleted=True
            ),
        )
        quoted = self.successResultOf(self.store.message(reply.id))
        assert quoted is not None
        self.assertEqual(quoted.reply_to, StoredQuote(sent.id, self.bob, "", True))
        self.assertEqual(query(self.path, "SELECT count(*) FROM reactions"), [(0,)])
        self.assertEqual(
            query(self.path, "SELECT count(*) FROM mentions WHERE message_id = ?", (sent.id,)),
            [(0,)],
        )
        self.assertEqual(self.error(self.store.delete_message(sent.id)), wire.NOT_ALLOWED)
        self.assertEqual(self.error(self.store.delete_message(self.room.id)), wire.NOT_ALLOWED)
        self.assertEqual(self.error(self.store.delete_message(10_000)), wire.NO_SUCH_MESSAGE)

    def test_texts_gone_from_the_file(self) -> None:
        """
        Once written back from the WAL, neither the text before an edit nor
        a deleted text is anywhere in the database file, not even in free
        pages.
        """
        if is_postgresql(self.path):
            raise SkipTest("SQLite's secure_delete; on PostgreSQL old row versions go at VACUUM")
        # Texts longer than a page, whose overflow pages are freed.
        edited = self.add_message(self.alice, ROOM, self.room_id, "xyzzy " * 600)
        deleted = self.add_message(self.alice, ROOM, self.room_id, "plugh " * 600)
        self.successResultOf(self.store.edit_message(edited.id, "after", ()))
        self.successResultOf(self.store.delete_message(deleted.id))

        self.store.close()
        with closing(sqlite3.connect(self.path)) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with open(self.path, "rb") as f:
            content = f.read()
        self.assertNotIn(b"xyzzy", content)
        self.assertNotIn(b"plugh", content)
        self.assertIn(b"after", content)

    def test_reactions(self) -> None:
        """
        Each emoji lists its users ascending, the emoji in the order each
        was first added; one that disappears and comes back goes last.
        Doing what is done changes nothing.
        """
        sent = self.add_message(self.alice, ROOM, self.room_id)

        def react(user: int, emoji: str, on: bool = True) -> tuple[Any, bool]:
            message, changed = self.successResultOf(self.store.react(sent.id, user, emoji, on))
            return message.reactions, changed

        self.assertEqual(react(self.carol, "👍"), ((("👍", (3,)),), True))
        self.assertEqual(react(self.bob, "❤️"), ((("👍", (3,)), ("❤️", (2,))), True))
        self.assertEqual(react(self.alice, "👍"), ((("👍", (1, 3)), ("❤️", (2,))), True))
        self.assertEqual(react(self.alice, "👍"), ((("👍", (1, 3)), ("❤️", (2,))), False))
        self.assertEqual(react(self.carol, "👍", False), ((("👍", (1,)), ("❤️", (2,))), True))
        self.assertEqual(react(self.alice, "👍", False), ((("❤️", (2,)),), True))
        self.assertEqual(react(self.alice, "👍", False), ((("❤️", (2,)),), False))
        self.assertEqual(react(self.carol, "👍"), ((("❤️", (2,)), ("👍", (3,))), True))
        self.assertEqual(self.history()[-1].reactions, (("❤️", (2,)), ("👍", (3,))))

    def test_reactions_refused(self) -> None:
        """
        A 21st distinct emoji, and any reaction to a deleted or system
        message, is C{not_allowed}; a missing message C{no_such_message}.
        """
        sent = self.add_message(self.alice, ROOM, self.room_id)
        for n in range(20):
            self.successResultOf(self.store.react(sent.id, self.bob, f"e{n}", True))
        self.assertEqual(
            self.error(self.store.react(sent.id, self.bob, "e20", True)), wire.NOT_ALLOWED
        )
        self.successResultOf(self.store.react(sent.id, self.carol, "e0", True))
        gone = self.add_message(self.alice, ROOM, self.room_id)
        self.successResultOf(self.store.delete_message(gone.id))
        self.assertEqual(
            self.error(self.store.react(gone.id, self.bob, "x", True)), wire.NOT_ALLOWED
        )
        self.assertEqual(
            self.error(self.store.react(self.room.id, self.bob, "x", True)), wire.NOT_ALLOWED
        )
        self.assertEqual(
            self.error(self.store.react(10_000, self.bob, "x", True)), wire.NO_SUCH_MESSAGE
        )

    def test_unread_mentions_and_tombstones(self) -> None:
        """
        Unread counts leave deleted messages out, and C{mentions} counts the
        unread ones that mention the user, in rooms and private
        conversations.
        """
        joined = self.successResultOf(
            self.store.join_room(self.room_id, self.bob, self.bob, "bob joined the room")
        )

        def send(sender: int, target_type: int, target: int, mentions: tuple[int, ...] = ()) -> int:
            message, _ = self.successResultOf(
                self.store.add_message(sender, target_type, target, "hi", mentions=mentions)
            )
            return message.id

        first = send(self.bob, ROOM, self.room_id, (self.alice,))
        gone = send(self.bob, ROOM, self.room_id, (self.alice,))
        last = send(self.bob, ROOM, self.room_id)
        private = send(self.bob, PRIVATE, self.alice, (self.alice,))
        send(self.bob, PRIVATE, self.carol, (self.alice,))
        self.successResultOf(self.store.delete_message(gone))
        rooms = {self.room_id: self.room.id}
        unread = self.successResultOf(self.store.unread(self.alice, [self.bob], rooms))
        self.assertEqual(
            unread,
            [Unread(PRIVATE, self.bob, 1, 1, private), Unread(ROOM, self.room_id, 3, 1, last)],
        )
        self.successResultOf(self.store.mark_read(self.alice, ROOM, self.room_id, first))
        unread = self.successResultOf(self.store.unread(self.alice, [], rooms))
        self.assertEqual(unread, [Unread(ROOM, self.room_id, 1, 0, last)])
        self.assertLess(joined.id, first)

    def test_room_owner(self) -> None:
        """
        A new room's owner is its creator.
        """
        self.assertEqual(
            query(self.path, "SELECT owner_id FROM rooms WHERE id = ?", (self.room_id,)),
            [(self.alice,)],
        )


class UpgradeTests(SynchronousTestCase):
    """
    Each numbered schema file upgrades a database made by the ones before
    it, with data in it.
    """

    def test_version_one_to_two(self) -> None:
        """
        A database of schema 1 with users, friends, rooms, members, messages
        and read markers opens at the newest version with all of it: rooms
        owned by their creators, messages with the version 2 defaults.
        """
        path = self.mktemp() + ".sqlite3"
        (number, first), *later = schema_files()
        self.assertEqual((number, [n for n, _ in later][:1]), (1, [2]))
        stamp = "2026-11-24T06:00:30.123Z"
        with closing(sqlite3.connect(path, isolation_level=None)) as connection:
            connection.executescript(
                f"BEGIN;\n{first}\nINSERT INTO schema_version VALUES (1);COMMIT;"
            )
            connection.executescript(
                f"""
                INSERT INTO users VALUES (1, 'ncr', 'h1', '{stamp}'), (2, 'lzy', 'h2', '{stamp}');
                INSERT INTO friendships VALUES (1, 2, 'accepted', '{stamp}'),
                                               (2, 1, 'accepted', '{stamp}');
                INSERT INTO rooms VALUES (1, 'room1', '{stamp}');
                INSERT INTO messages VALUES
                    (1, 2, 1, 1, 'system', 'lzy created the room', NULL, '{stamp}'),
                    (2, 1, 1, 1, 'system', 'ncr joined the room', NULL, '{stamp}'),
                    (3, 1, 1, 1, 'text', 'hello room', 'c1', '{stamp}'),
                    (4, 2, 0, 1, 'text', 'hello ncr', NULL, '{stamp}');
                INSERT INTO room_members VALUES (1, 2, 1), (1, 1, 2);
                INSERT INTO read_markers VALUES (1, 0, 2, 4);
                """
            )
        store = open_store(self, ImmediateReactor(), path)
        self.assertEqual(
            query(path, "SELECT version FROM schema_version"), [(schema_files()[-1][0],)]
        )
        self.assertEqual(query(path, "SELECT id, name, owner_id FROM rooms"), [(1, "room1", 2)])
        self.assertEqual(len(query(path, "SELECT * FROM friendships")), 2)
        self.assertEqual(query(path, "SELECT * FROM read_markers"), [(1, 0, 2, 4)])
        room, _ = self.successResultOf(store.room_history(1, 2, None, None, 50))
        self.assertEqual(
            room,
            [
                StoredMessage(2, None, 1, ROOM, 1, "system", "ncr joined the room", stamp),
                StoredMessage(3, "c1", 1, ROOM, 1, "text", "hello room", stamp),
            ],
        )
        private, _ = self.successResultOf(store.private_history(1, 2, None, None, 50))
        self.assertEqual(
            private, [StoredMessage(4, None, 2, PRIVATE, 1, "text", "hello ncr", stamp)]
        )
        repeat, new = self.successResultOf(store.add_message(1, ROOM, 1, "again", "c1"))
        self.assertEqual((repeat.id, new), (3, False))
        reply, _ = self.successResultOf(store.add_message(1, ROOM, 1, "re", reply_to=3, since=2))
        self.assertEqual((reply.id, reply.reply_to), (5, StoredQuote(3, 1, "hello room", False)))

    def test_version_two_to_three(self) -> None:
        """
        A database of schema 2 with text, system, edited and deleted
        messages gets the search index of its current texts at the upgrade:
        not system messages nor tombstones; and new messages join it.
        """
        path = self.mktemp() + ".sqlite3"
        files = schema_files()
        self.assertEqual([n for n, _ in files][:3], [1, 2, 3])
        stamp = "2026-11-24T06:00:30.123Z"
        with closing(sqlite3.connect(path, isolation_level=None)) as connection:
            connection.executescript(
                f"BEGIN;\n{files[0][1]}\n{files[1][1]}\n"
                "INSERT INTO schema_version VALUES (2);COMMIT;"
            )
            connection.executescript(
                f"""
                INSERT INTO users VALUES (1, 'ncr', 'h1', '{stamp}'), (2, 'lzy', 'h2', '{stamp}');
                INSERT INTO friendships VALUES (1, 2, 'accepted', '{stamp}'),
                                               (2, 1, 'accepted', '{stamp}');
                INSERT INTO rooms VALUES (1, 'room1', '{stamp}', 2);
                INSERT INTO messages
                    (id, sender_id, target_type, target_id, kind, body, created_at,
                     edited_at, deleted)
                VALUES
                    (1, 2, 1, 1, 'system', 'lzy created the room', '{stamp}', NULL, 0),
                    (2, 1, 1, 1, 'system', 'ncr joined the room', '{stamp}', NULL, 0),
                    (3, 1, 1, 1, 'text', 'Hello Room', '{stamp}', NULL, 0),
                    (4, 2, 0, 1, 'text', 'hello ncr, edited', '{stamp}', '{stamp}', 0),
                    (5, 2, 1, 1, 'text', '', '{stamp}', NULL, 1);
                INSERT INTO room_members VALUES (1, 2, 1), (1, 1, 2);
                """
            )
        store = open_store(self, ImmediateReactor(), path)
        self.assertEqual(
            query(path, "SELECT version FROM schema_version"), [(schema_files()[-1][0],)]
        )
        self.assertEqual(
            query(path, "SELECT id, body FROM message_text ORDER BY id"),
            [(3, "hello room"), (4, "hello ncr, edited")],
        )

        def search(terms: tuple[str, ...]) -> list[int]:
            found, _ = self.successResultOf(store.search(1, terms, [2], {1: 2}, None, 20))
            return [message.id for message in found]

        self.assertEqual(search(("hello",)), [4, 3])
        self.assertEqual(search(("room",)), [3])
        self.assertEqual(search(("joined",)), [])
        new, _ = self.successResultOf(store.add_message(1, ROOM, 1, "hello again"))
        self.assertEqual(search(("hello",)), [new.id, 4, 3])
        self.assertEqual(search(("ag",)), [new.id])

    def test_version_three_to_four(self) -> None:
        """
        A database of schema 3 opens with topics, roles and bans: each room
        owned by the earliest of its members still in it (its creator if
        they never left), an empty room by nobody until someone joins.
        """
        path = self.mktemp() + ".sqlite3"
        files = schema_files()
        self.assertEqual([n for n, _ in files][:4], [1, 2, 3, 4])
        stamp = "2026-11-24T06:00:30.123Z"
        with closing(sqlite3.connect(path, isolation_level=None)) as connection:
            register_functions(connection)
            connection.executescript(
                "BEGIN;\n"
                + "\n".join(sql for _, sql in files[:3])
                + "\nINSERT INTO schema_version VALUES (3);COMMIT;"
            )
            connection.executescript(
                f"""
                INSERT INTO users VALUES (1, 'ncr', 'h1', '{stamp}'), (2, 'lzy', 'h2', '{stamp}'),
                                         (3, 'wsx', 'h3', '{stamp}');
                INSERT INTO rooms VALUES (1, 'kept', '{stamp}', 1), (2, 'left', '{stamp}', 1),
                                         (3, 'empty', '{stamp}', 2);
                INSERT INTO messages (id, sender_id, target_type, target_id, kind, body, created_at)
                VALUES
                    (1, 1, 1, 1, 'system', 'ncr created the room', '{stamp}'),
                    (2, 2, 1, 1, 'system', 'lzy joined the room', '{stamp}'),
                    (3, 1, 1, 2, 'system', 'ncr created the room', '{stamp}'),
                    (4, 3, 1, 2, 'system', 'wsx joined the room', '{stamp}'),
                    (5, 2, 1, 2, 'system', 'lzy joined the room', '{stamp}'),
                    (6, 1, 1, 2, 'system', 'ncr left the room', '{stamp}'),
                    (7, 2, 1, 3, 'system', 'lzy created the room', '{stamp}'),
                    (8, 2, 1, 3, 'system', 'lzy left the room', '{stamp}');
                INSERT INTO room_members VALUES (1, 1, 1), (1, 2, 2), (2, 3, 4), (2, 2, 5);
                """
            )
        store = open_store(self, ImmediateReactor(), path)
        self.assertEqual(
            query(path, "SELECT version FROM schema_version"), [(schema_files()[-1][0],)]
        )
        self.assertEqual(
            query(path, "SELECT id, owner_id, topic FROM rooms ORDER BY id"),
            [(1, 1, ""), (2, 3, ""), (3, None, "")],
        )
        self.assertEqual(query(path, "SELECT DISTINCT role FROM room_members"), [("member",)])
        snapshot = self.successResultOf(store.load_directory())
        self.assertEqual(snapshot.owners, {1: 1, 2: 3})
        self.assertEqual((snapshot.moderators, snapshot.bans, snapshot.topics), ([], [], {}))
        self.successResultOf(store.join_room(3, 1, 1, "ncr joined the room"))
        self.assertEqual(query(path, "SELECT owner_id FROM rooms WHERE id = 3"), [(1,)])

    def test_version_four_to_five(self) -> None:
        """
        A database of schema 4 with accounts, a room and messages gets an
        empty token table, and its accounts can log in with tokens.
        """
        path = self.mktemp() + ".sqlite3"
        files = schema_files()
        self.assertEqual([n for n, _ in files][:5], [1, 2, 3, 4, 5])
        stamp = "2026-11-24T06:00:30.123Z"
        with closing(sqlite3.connect(path, isolation_level=None)) as connection:
            register_functions(connection)
            connection.executescript(
                "BEGIN;\n"
                + "\n".join(sql for _, sql in files[:4])
                + "\nINSERT INTO schema_version VALUES (4);COMMIT;"
            )
            connection.executescript(
                f"""
                INSERT INTO users VALUES (1, 'ncr', 'h1', '{stamp}');
                INSERT INTO rooms VALUES (1, 'kept', '{stamp}', 1, 'a topic');
                INSERT INTO messages (id, sender_id, target_type, target_id, kind, body, created_at)
                VALUES (1, 1, 1, 1, 'system', 'ncr created the room', '{stamp}'),
                       (2, 1, 1, 1, 'text', 'hello', '{stamp}');
                INSERT INTO room_members VALUES (1, 1, 1, 'member');
                """
            )
        store = open_store(self, ImmediateReactor(), path)
        self.assertEqual(
            query(path, "SELECT version FROM schema_version"), [(schema_files()[-1][0],)]
        )
        self.assertEqual(query(path, "SELECT count(*) FROM tokens"), [(0,)])
        self.assertEqual(query(path, "SELECT topic FROM rooms"), [("a topic",)])
        self.successResultOf(store.add_token(1, b"t" * 32))
        self.assertEqual(self.successResultOf(store.use_token(b"t" * 32)), 1)

    def test_version_five_to_six(self) -> None:
        """
        A database of schema 5 with accounts, messages and tokens gets
        C{last_seen_at} and C{disabled}: every account enabled, last seen
        at its latest message or token use (whichever is later; system
        messages do not count), or never.
        """
        path = self.mktemp() + ".sqlite3"
        files = schema_files()
        self.assertEqual([n for n, _ in files][:6], [1, 2, 3, 4, 5, 6])
        with closing(sqlite3.connect(path, isolation_level=None)) as connection:
            register_functions(connection)
            connection.executescript(
                "BEGIN;\n"
                + "\n".join(sql for _, sql in files[:5])
                + "\nINSERT INTO schema_version VALUES (5);COMMIT;"
            )
            connection.executescript(
                """
                INSERT INTO users VALUES (1, 'ncr', 'h1', '2026-01-01T00:00:00.000Z'),
                                         (2, 'lzy', 'h2', '2026-01-01T00:00:00.000Z'),
                                         (3, 'wsx', 'h3', '2026-01-01T00:00:00.000Z');
                INSERT INTO rooms VALUES (1, 'kept', '2026-01-01T00:00:00.000Z', 1, '');
                INSERT INTO messages (id, sender_id, target_type, target_id, kind, body, created_at)
                VALUES (1, 1, 1, 1, 'system', 'ncr created', '2026-01-02T00:00:00.000Z'),
                       (2, 1, 1, 1, 'text', 'hello', '2026-01-03T00:00:00.000Z'),
                       (3, 2, 1, 1, 'text', 'hi', '2026-01-04T00:00:00.000Z'),
                       (4, 3, 1, 1, 'system', 'wsx joined', '2026-01-09T00:00:00.000Z');
                INSERT INTO room_members VALUES (1, 1, 1, 'member'), (1, 2, 1, 'member');
                INSERT INTO tokens VALUES (x'01', 1, '2026-01-01T00:00:00.000Z',
                                           '2026-01-05T00:00:00.000Z'),
                                          (x'02', 2, '2026-01-01T00:00:00.000Z',
                                           '2026-01-02T00:00:00.000Z');
                """
            )
        store = open_store(self, ImmediateReactor(), path)
        self.assertEqual(
            query(path, "SELECT version FROM schema_version"), [(schema_files()[-1][0],)]
        )
        self.assertEqual(
            query(path, "SELECT id, last_seen_at, disabled FROM users ORDER BY id"),
            [
                (1, "2026-01-05T00:00:00.000Z", 0),
                (2, "2026-01-04T00:00:00.000Z", 0),
                (3, None, 0),
            ],
        )
        self.assertEqual(query(path, "SELECT count(*) FROM tokens"), [(2,)])
        self.assertEqual(self.successResultOf(store.load_directory()).disabled, [])
        self.successResultOf(store.set_disabled(3, True))
        self.assertEqual(self.successResultOf(store.load_directory()).disabled, [3])

    def test_version_seven_to_eight(self) -> None:
        """
        A database of schema 7 gets the files table and its messages table
        made again with kind C{file}: every message, reply, reaction,
        mention and search entry kept, foreign keys whole, the indexes
        back, and the id sequence kept (an id deleted by retention is not
        given again).
        """
        path = self.mktemp() + ".sqlite3"
        files = schema_files()
        self.assertEqual([n for n, _ in files][:8], [1, 2, 3, 4, 5, 6, 7, 8])
        stamp = "2026-01-01T00:00:00.000Z"
        with closing(sqlite3.connect(path, isolation_level=None)) as connection:
            register_functions(connection)
            connection.execute("PRAGMA foreign_keys = ON")
            connection.executescript(
                "BEGIN;\n"
                + "\n".join(sql for _, sql in files[:7])
                + "\nINSERT INTO schema_version VALUES (7);COMMIT;"
            )
            connection.executescript(
                f"""
                INSERT INTO users (id, username, password_hash, created_at)
                VALUES (1, 'ncr', 'h1', '{stamp}'), (2, 'lzy', 'h2', '{stamp}');
                INSERT INTO rooms VALUES (1, 'kept', '{stamp}', 1, '');
                INSERT INTO messages (id, sender_id, target_type, target_id, kind, body,
                                      client_msg_id, created_at, edited_at, deleted, reply_to)
                VALUES (1, 1, 1, 1, 'system', 'ncr created the room', NULL, '{stamp}',
                        NULL, 0, NULL),
                       (2, 1, 1, 1, 'text', 'zorvani plans', 'c-2', '{stamp}', '{stamp}',
                        0, NULL),
                       (3, 2, 0, 1, 'text', 'answer', NULL, '{stamp}', NULL, 0, 2),
                       (4, 2, 0, 1, 'text', '', NULL, '{stamp}', NULL, 1, NULL),
                       (5, 1, 0, 2, 'text', 'expired', NULL, '{stamp}', NULL, 0, NULL);
                DELETE FROM messages WHERE id = 5;
                INSERT INTO message_text VALUES (2, 'zorvani plans'), (3, 'answer');
                INSERT INTO message_search (rowid, body)
                VALUES (2, 'zorvani plans'), (3, 'answer');
                INSERT INTO room_members VALUES (1, 1, 1, 'member');
                INSERT INTO reactions VALUES (1, 2, '👍', 2, 1);
                INSERT INTO mentions VALUES (3, 1);
                """
            )
            before = connection.execute("SELECT * FROM messages ORDER BY id").fetchall()
        store = open_store(self, ImmediateReactor(), path)
        self.assertEqual(
            query(path, "SELECT version FROM schema_version"), [(schema_files()[-1][0],)]
        )
        self.assertEqual(
            [(*row, None) for row in before], query(path, "SELECT * FROM messages ORDER BY id")
        )
        self.assertEqual(query(path, "PRAGMA foreign_key_check"), [])
        self.assertEqual(
            {
                name
                for (name,) in query(
                    path,
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'",
                )
            },
            {
                "messages_private",
                "messages_room",
                "messages_client_msg_id",
                "messages_reply_to",
                "messages_file",
            },
        )
        (answer,) = self.successResultOf(store.private_history(1, 2, None, None, 10))[0][:1]
        self.assertEqual((answer.id, answer.reply_to and answer.reply_to.id), (3, 2))
        found, _ = self.successResultOf(store.search(1, ["zorvani"], {2}, {1: 1}, None, 10))
        self.assertEqual([m.id for m in found], [2])
        stored = self.successResultOf(store.add_file("f1", 1, "a.png", 3, "image/png", "0" * 64))
        message, _ = self.successResultOf(store.add_message(1, ROOM, 1, "", file_id=stored.id))
        self.assertEqual((message.id, message.kind, message.file), (6, "file", stored))


class ModerationStoreTests(StoreTestCase):
    """
    Topics, roles, removals and bans as stored (PROTOCOL.md section 12);
    the rules are the server's.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice, self.bob, self.carol = (self.add_user(n) for n in ("alice", "bob", "carol"))
        self.room = self.successResultOf(
            self.store.create_room("lobby", self.alice, "alice created the room")
        ).target_id
        for user in (self.bob, self.carol):
            self.successResultOf(self.store.join_room(self.room, user, user, "joined"))

    def test_topic(self) -> None:
        message = self.successResultOf(
            self.store.set_topic(self.room, self.bob, "maths", "bob set the topic to: maths")
        )
        self.assertEqual((message.kind, message.sender_id), ("system", self.bob))
        self.assertEqual(query(self.path, "SELECT topic FROM rooms"), [("maths",)])

    def test_role(self) -> None:
        self.successResultOf(self.store.set_role(self.room, self.bob, "moderator"))
        self.assertEqual(
            query(self.path, "SELECT user_id FROM room_members WHERE role = 'moderator'"),
            [(self.bob,)],
        )
        failure = self.failureResultOf(self.store.set_role(self.room, 99, "moderator"), ChatError)
        self.assertEqual(failure.value.code, wire.NOT_IN_ROOM)

    def test_kick_and_ban(self) -> None:
        """
        A removal deletes the membership (and with it any role); a ban keeps
        the user out until lifted, and lifting a ban that is not is refused.
        """
        self.successResultOf(self.store.set_role(self.room, self.bob, "moderator"))
        self.successResultOf(self.store.kick(self.room, self.alice, self.bob, True, "removed"))
        self.successResultOf(self.store.kick(self.room, self.alice, self.carol, False, "removed"))
        self.assertEqual(query(self.path, "SELECT user_id FROM room_members"), [(self.alice,)])
        self.assertEqual(
            query(self.path, "SELECT room_id, user_id, banned_by FROM room_bans"),
            [(self.room, self.bob, self.alice)],
        )
        refused = self.failureResultOf(
            self.store.join_room(self.room, self.bob, self.bob, "j"), ChatError
        )
        self.assertEqual(refused.value.code, wire.NOT_ALLOWED)
        self.successResultOf(self.store.join_room(self.room, self.carol, self.carol, "j"))
        self.successResultOf(self.store.unban(self.room, self.bob))
        again = self.failureResultOf(self.store.unban(self.room, self.bob), ChatError)
        self.assertEqual(again.value.code, wire.NOT_ALLOWED)
        self.successResultOf(self.store.join_room(self.room, self.bob, self.bob, "j"))
        self.assertEqual(query(self.path, "SELECT DISTINCT role FROM room_members"), [("member",)])

    def test_owner_quits(self) -> None:
        """
        The owner's quit passes the room to the member given, who is a plain
        member besides; the last one's leaves it without an owner.
        """
        self.successResultOf(self.store.set_role(self.room, self.carol, "moderator"))
        self.successResultOf(self.store.quit_room(self.room, self.alice, "left", self.carol))
        self.assertEqual(query(self.path, "SELECT owner_id FROM rooms"), [(self.carol,)])
        self.assertEqual(query(self.path, "SELECT DISTINCT role FROM room_members"), [("member",)])
        # Someone else's quit changes no owner, whatever it is told.
        self.successResultOf(self.store.quit_room(self.room, self.bob, "left", self.bob))
        self.assertEqual(query(self.path, "SELECT owner_id FROM rooms"), [(self.carol,)])
        self.successResultOf(self.store.quit_room(self.room, self.carol, "left", None))
        self.assertEqual(query(self.path, "SELECT owner_id FROM rooms"), [(None,)])


class SearchTests(StoreTestCase):
    """
    The search index (C{sql/003_search.sql}) and L{Store.search}, PROTOCOL.md
    section 11: every term a case-folded substring, newest first, in the
    scope given, never system or deleted messages, edits by their new text.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice, self.bob, self.carol = (self.add_user(n) for n in ("alice", "bob", "carol"))
        self.befriend(self.alice, self.bob)
        self.room = self.successResultOf(
            self.store.create_room("lobby", self.alice, "alice created the room")
        ).target_id

    def search(
        self,
        query: str,
        friends: Sequence[int] = (),
        rooms: dict[int, int] | None = None,
        before: int | None = None,
        limit: int = 20,
        user: int | None = None,
    ) -> tuple[list[str], bool]:
        """
        @return: the texts found for C{query} (split and folded as the
            request does), newest first, and C{has_more}.
        """
        terms = tuple(dict.fromkeys(word.casefold() for word in wire.words(query)))
        found, more = self.successResultOf(
            self.store.search(
                self.alice if user is None else user,
                terms,
                friends,
                {self.room: 0} if rooms is None else rooms,
                before,
                limit,
            )
        )
        return [message.body for message in found], more

    def assert_index_consistent(self) -> None:
        """
        The index holds exactly the texts of C{message_text}, which are
        those of the messages that are neither system nor deleted, folded.
        """
        if not is_postgresql(self.path):  # PostgreSQL's index is on message_text itself
            self.successResultOf(
                self.interact(
                    lambda txn: txn.execute(
                        "INSERT INTO message_search (message_search, rank)"
                        " VALUES ('integrity-check', 1)"
                    )
                )
            )
        texts = query(self.path, "SELECT id, body FROM message_text ORDER BY id")
        expected = query(
            self.path,
            "SELECT id, body FROM messages WHERE kind <> 'system' AND deleted = 0 ORDER BY id",
        )
        self.assertEqual(texts, [(i, body.casefold()) for i, body in expected])

    def test_terms(self) -> None:
        """
        Every term must be a substring, ignoring case by full case folding,
        in any script; long terms through the index and short ones (under
        three characters) alike; query syntax is plain text.
        """
        for text in [
            "大家你好\uff01",
            "hello, world",
            "die Straße",
            "100% sure",
            "1000 things",
            'say "OR" -x *',
            "ok then",
        ]:
            self.add_message(self.alice, ROOM, self.room, text)
        cases = {
            "你好": ["大家你好\uff01"],
            "好": ["大家你好\uff01"],
            "HELLO": ["hello, world"],
            "STRASSE": ["die Straße"],
            "straße": ["die Straße"],
            "100%": ["100% sure"],
            "00": ["1000 things", "100% sure"],
            '"or"': ['say "OR" -x *'],
            "-x *": ['say "OR" -x *'],
            "OR": ['say "OR" -x *', "hello, world"],
            "o wor": ["hello, world"],
            "ok THEN": ["ok then"],
            "hello there": [],
            "e\u0301": [],
        }
        for query_text, expected in cases.items():
            with self.subTest(query=query_text):
                self.assertEqual(self.search(query_text), (expected, False))
        self.assert_index_consistent()

    def test_scope(self) -> None:
        """
        Only the conversations given are searched: rooms from the join
        given on, private conversations with the friends given, never
        system messages.
        """
        early = self.add_message(self.alice, ROOM, self.room, "needle early")
        self.add_message(self.alice, ROOM, self.room, "needle late")
        self.add_message(self.bob, PRIVATE, self.alice, "needle from bob")
        self.add_message(self.bob, PRIVATE, self.carol, "needle to carol")
        other = self.successResultOf(self.store.create_room("other", self.bob, "created")).target_id
        self.add_message(self.bob, ROOM, other, "needle elsewhere")
        for needle in ("needle", "ne"):
            with self.subTest(needle=needle):
                self.assertEqual(
                    self.search(needle, rooms={self.room: early.id + 1}), (["needle late"], False)
                )
                self.assertEqual(
                    self.search(needle, friends=[self.bob], rooms={}), (["needle from bob"], False)
                )
                self.assertEqual(
                    self.search(needle, friends=[self.alice], rooms={}, user=self.bob)[0],
                    ["needle from bob"],
                )
        self.assertEqual(self.search("created"), ([], False))

    def test_edits_and_deletes(self) -> None:
        """
        An edited message matches its new text only; a deleted one nothing.
        """
        edited = self.add_message(self.alice, ROOM, self.room, "old words")
        deleted = self.add_message(self.alice, ROOM, self.room, "old gone")
        self.successResultOf(self.store.edit_message(edited.id, "new words", ()))
        self.successResultOf(self.store.delete_message(deleted.id))
        self.assertEqual(self.search("old"), ([], False))
        self.assertEqual(self.search("new"), (["new words"], False))
        self.assertEqual(self.search("words"), (["new words"], False))
        self.assertEqual(self.search("go"), ([], False))
        self.assert_index_consistent()

    def test_pages(self) -> None:
        """
        C{before} pages backwards through the matches, C{has_more} telling
        whether older ones exist, for long and short terms alike.
        """
        ids = [self.add_message(self.alice, ROOM, self.room, f"match {i}").id for i in range(7)]
        self.add_message(self.bob, PRIVATE, self.alice, "match private")
        for term in ("match", "ma"):
            with self.subTest(term=term):
                self.assertEqual(
                    self.search(term, limit=3), (["match 6", "match 5", "match 4"], True)
                )
                self.assertEqual(
                    self.search(term, before=ids[4], limit=3),
                    (["match 3", "match 2", "match 1"], True),
                )
                self.assertEqual(self.search(term, before=ids[1], limit=3), (["match 0"], False))
                self.assertEqual(self.search(term, before=ids[3], limit=3)[1], False)
                self.assertEqual(
                    self.search(term, friends=[self.bob], limit=2),
                    (["match private", "match 6"], True),
                )

    def test_full_messages(self) -> None:
        """
        What a search finds is the message as history returns it.
        """
        first = self.add_message(self.alice, ROOM, self.room, "first")
        reply, _ = self.successResultOf(
            self.store.add_message(
                self.bob, ROOM, self.room, "re: first", reply_to=first.id, mentions=(self.alice,)
            )
        )
        self.successResultOf(self.store.react(reply.id, self.alice, "👍", True))
        found, _ = self.successResultOf(
            self.store.search(self.alice, ("re:",), (), {self.room: 0}, None, 20)
        )
        history, _ = self.successResultOf(self.store.room_history(self.room, 0, None, None, 50))
        self.assertEqual(found, [history[-1]])
        self.assertEqual(found[0].reply_to, StoredQuote(first.id, self.alice, "first", False))


class SearchPlanTests(QueryPlanTests):
    """
    A search reads the trigram index, or, for short terms only, each
    conversation's partial index: never a scan of all messages.
    """

    def search_plans(self, terms: tuple[str, ...]) -> list[list[str]]:
        scope = Scope(1, frozenset({2}), {1: 1, 2: 1})
        plans = self.plans(_search_txn, scope, terms, wire.MAX_INT, 20)
        return [plan for plan in plans if plan]

    def test_indexed(self) -> None:
        [matches] = self.search_plans(("needle", "x"))
        self.assertEqual(len(matches), 3, matches)
        self.assertTrue(matches[0].startswith("SCAN s VIRTUAL TABLE INDEX"), matches)
        self.assertTrue(matches[1].startswith("SEARCH m USING INTEGER PRIMARY KEY"), matches)
        self.assertTrue(matches[2].startswith("SEARCH t USING INTEGER PRIMARY KEY"), matches)

    def test_scanned(self) -> None:
        plans = self.search_plans(("ab",))
        self.assertEqual(len(plans), 3)
        self.assert_seeks(plans[:2], "messages_room", 2, table="m")
        self.assert_seeks(plans[2:], "messages_private", 1, table="m")
        for plan in plans:
            self.assertIn("SEARCH t USING INTEGER PRIMARY KEY (rowid=?)", plan)


class AccountStoreCase(SynchronousTestCase):
    """
    A store whose wall clock the test moves, with tokens expiring after two
    days, and the account alice.
    """

    def setUp(self) -> None:
        self.clock = [1_800_000_000.0]
        path = self.mktemp() + ".sqlite3"
        self.path = path
        self.store = Store(
            *inline_pools(path, ImmediateReactor()), now=lambda: self.clock[0], token_days=2
        )
        self.successResultOf(self.store.migrate())
        self.addCleanup(self.store.close)
        self.alice = self.successResultOf(self.store.add_user("alice", "h"))

    def use(self, token_hash: bytes) -> int | str:
        d = self.store.use_token(token_hash)
        result = self.successResultOf(d.addErrback(lambda f: f.trap(ChatError) and f.value.code))
        return result  # type: ignore[no-any-return]


class TokenTests(AccountStoreCase):
    """
    Session tokens as stored (PROTOCOL.md section 13): hashes only, ended by
    a logout or a password change, expired after C{token_days} unused.
    """

    def test_use_and_expiry(self) -> None:
        """
        A token logs its user in while used at least every C{token_days};
        each use starts the period again.
        """
        self.successResultOf(self.store.add_token(self.alice, b"t" * 32))
        self.assertEqual(query(self.path, "SELECT hash FROM tokens"), [(b"t" * 32,)])
        created = query(self.path, "SELECT used_at FROM tokens")
        # A use within a thirtieth of token_days writes nothing: a whole
        # server resuming after a restart costs reads only.
        self.clock[0] += 0.05 * 86400
        self.assertEqual(self.use(b"t" * 32), self.alice)
        self.assertEqual(query(self.path, "SELECT used_at FROM tokens"), created)
        self.clock[0] += 1.85 * 86400
        self.assertEqual(self.use(b"t" * 32), self.alice)
        self.clock[0] += 1.9 * 86400
        self.assertEqual(self.use(b"t" * 32), self.alice)
        self.clock[0] += 2.1 * 86400
        self.assertEqual(self.use(b"t" * 32), wire.INVALID_TOKEN)
        self.assertEqual(self.use(b"x" * 32), wire.INVALID_TOKEN)
        # The next token of the user forgets the expired one.
        self.successResultOf(self.store.add_token(self.alice, b"u" * 32))
        self.assertEqual(query(self.path, "SELECT hash FROM tokens"), [(b"u" * 32,)])

    def test_end_and_password_change(self) -> None:
        """
        Ending a token ends it only; a password change ends them all and
        stores the new one with the new hash, in one transaction.
        """
        for token in (b"a", b"b", b"c"):
            self.successResultOf(self.store.add_token(self.alice, token * 32))
        self.successResultOf(self.store.end_token(b"a" * 32))
        self.assertEqual(
            (self.use(b"a" * 32), self.use(b"b" * 32)), (wire.INVALID_TOKEN, self.alice)
        )
        self.successResultOf(self.store.change_password(self.alice, "new-hash", b"n" * 32))
        self.assertEqual(query(self.path, "SELECT hash FROM tokens"), [(b"n" * 32,)])
        self.assertEqual(query(self.path, "SELECT password_hash FROM users"), [("new-hash",)])


class OperatorStoreTests(AccountStoreCase):
    """
    What the operator's tool reads and changes (PROTOCOL.md section 15,
    L{chatd.admin}): accounts, their last sight, disabling, password
    resets, totals and exports.
    """

    def test_accounts_and_last_seen(self) -> None:
        """
        The accounts are listed by id, filtered by a part of their name in
        any case; an account is never seen until its first session ends.
        """
        bob = self.successResultOf(self.store.add_user("Bobby", "h"))
        (alice, bobby) = self.successResultOf(self.store.accounts())
        self.assertEqual(
            (alice.id, alice.username, alice.last_seen_at), (self.alice, "alice", None)
        )
        self.assertEqual((bobby.id, bobby.disabled), (bob, False))
        self.assertEqual(alice.created_at, "2027-01-15T08:00:00.000Z")
        self.assertEqual([a.id for a in self.successResultOf(self.store.accounts("BB"))], [bob])
        self.assertEqual(self.successResultOf(self.store.accounts("zed")), [])
        self.clock[0] += 90
        self.successResultOf(self.store.user_seen(bob))
        self.assertEqual(
            [a.last_seen_at for a in self.successResultOf(self.store.accounts())],
            [None, "2027-01-15T08:01:30.000Z"],
        )

    def test_disable_keeps_tokens_until_enabled(self) -> None:
        """
        A disabled account keeps its tokens (so that a resume with one can
        be told C{account_disabled}); enabling it ends them.  The directory
        loads who is disabled.
        """
        self.successResultOf(self.store.add_token(self.alice, b"t" * 32))
        self.successResultOf(self.store.set_disabled(self.alice, True))
        self.assertEqual(self.successResultOf(self.store.load_directory()).disabled, [self.alice])
        self.assertEqual(self.use(b"t" * 32), self.alice)
        self.successResultOf(self.store.set_disabled(self.alice, False))
        self.assertEqual(self.successResultOf(self.store.load_directory()).disabled, [])
        self.assertEqual(self.use(b"t" * 32), wire.INVALID_TOKEN)

    def test_reset_password(self) -> None:
        """
        A reset replaces the hash and ends every token.
        """
        for token in (b"a", b"b"):
            self.successResultOf(self.store.add_token(self.alice, token * 32))
        self.successResultOf(self.store.reset_password(self.alice, "reset-hash"))
        self.assertEqual(query(self.path, "SELECT count(*) FROM tokens"), [(0,)])
        self.assertEqual(query(self.path, "SELECT password_hash FROM users"), [("reset-hash",)])

    def test_totals_and_export(self) -> None:
        """
        The totals count users, rooms and messages; an export holds the
        account, friendships both ways, rooms with roles, and every message
        the user sent, deleted ones as tombstones.
        """
        store = self.store
        bob = self.successResultOf(store.add_user("bob", "h"))
        carol = self.successResultOf(store.add_user("carol", "h"))
        self.successResultOf(store.add_friend(self.alice, bob))
        self.successResultOf(store.resolve_friend_request(bob, self.alice, True))
        self.successResultOf(store.add_friend(carol, self.alice))
        room = self.successResultOf(store.create_room("lab", self.alice, "alice created")).target_id
        self.successResultOf(store.join_room(room, bob, bob, "bob joined"))
        self.successResultOf(store.add_message(self.alice, PRIVATE, bob, "hi bob"))
        gone = self.successResultOf(store.add_message(self.alice, ROOM, room, "oops"))
        his = self.successResultOf(store.add_message(bob, ROOM, room, "not hers"))
        self.successResultOf(store.delete_message(gone[0].id))
        self.successResultOf(store.react(his[0].id, self.alice, "👍", True))
        totals = self.successResultOf(store.totals())
        self.assertEqual((totals.users, totals.rooms, totals.messages), (3, 1, 5))
        exported = self.successResultOf(store.export(self.alice))
        self.assertEqual(exported["account"]["username"], "alice")
        self.assertEqual(
            [(f["username"], f["state"], f["request"]) for f in exported["friendships"]],
            [("bob", "accepted", None), ("carol", "pending", "received")],
        )
        self.assertEqual([(r["name"], r["role"]) for r in exported["rooms"]], [("lab", "owner")])
        self.assertEqual(
            [(m["target_type"], m["kind"], m["body"], m["deleted"]) for m in exported["messages"]],
            [
                ("room", "system", "alice created", False),
                ("user", "text", "hi bob", False),
                ("room", "text", "", True),
            ],
        )
        self.assertEqual(exported["reactions"], [{"message_id": his[0].id, "emoji": "👍"}])


# Every suite of the store's behaviour runs on PostgreSQL too; those of
# SQLite's own schema, settings and query plans do not.
on_postgresql(
    globals(),
    UserTests,
    MessageTests,
    PrivateHistoryTests,
    RoomTests,
    UnreadTests,
    ManyConversationsUnreadTests,
    FriendTests,
    DirectoryLoadTests,
    RowsTests,
    VersionTwoMessageTests,
    ModerationStoreTests,
    SearchTests,
)
