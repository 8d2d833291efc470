"""
Tests for message retention: L{chatd.store.Store.expire_messages} on a real
SQLite file run synchronously, and the schedule of L{chatd.retention} on a
L{Clock}.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

from twisted.enterprise.adbapi import Transaction
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from chatd.database import DatabaseUnavailable, is_postgresql, register_functions
from chatd.retention import DAY, Retention
from chatd.store import (
    Store,
    StoredMessage,
    _add_message_txn,
    _add_messages_txn,
    _expire_messages_txn,
    schema_files,
)
from chatd.wire import PRIVATE, ROOM
from chatd.writer import utc_stamp
from tests.postgres import on_postgresql
from tests.support import FIXED_NOW, ImmediateReactor, database_for, inline_pools
from tests.test_store import RecordingTransaction, query


def _add_many_txn(txn: Transaction, stamp: str, sender: int, room: int, count: int) -> None:
    """
    Store C{count} messages of C{sender} in C{room} in one transaction, as
    many sends would (one commit, rather than one fsync each).
    """
    for n in range(count):
        _add_message_txn(txn, stamp, sender, ROOM, room, "text", f"bulk {n}", None)


class RetentionTestCase(SynchronousTestCase):
    """
    A store on a new file whose wall clock is L{clock}: advancing it ages
    the messages stored so far.

    @cvar busy_timeout_ms: how long the store's connections wait for a lock.
    """

    busy_timeout_ms = 5000

    def setUp(self) -> None:
        self.clock = Clock()
        self.path = database_for(self)
        pools = inline_pools(self.path, ImmediateReactor(), self.busy_timeout_ms)
        self.store = Store(*pools, now=self.now)
        self.successResultOf(self.store.migrate())
        self.addCleanup(self.store.close)

    def now(self) -> float:
        return FIXED_NOW + self.clock.seconds()

    def days_later(self, days: float) -> None:
        self.clock.advance(days * DAY)

    def cutoff(self, days: float) -> str:
        """
        @return: the commit time of a message C{days} days old now.
        """
        return utc_stamp(self.now() - days * DAY)

    def user(self, name: str) -> int:
        return self.successResultOf(self.store.add_user(name, "hash-" + name))

    def room(self, owner: int, name: str = "lobby") -> StoredMessage:
        return self.successResultOf(self.store.create_room(name, owner, f"{owner} created"))

    def send(
        self, sender: int, target_type: int, target: int, body: str = "hello", **extra: Any
    ) -> StoredMessage:
        message, new = self.successResultOf(
            self.store.add_message(sender, target_type, target, body, **extra)
        )
        self.assertTrue(new)
        return message

    def expire(self, days: float, batch: int = 500) -> int:
        """
        @return: how many messages one job deleted of those older than
            C{days} days.
        """
        return self.successResultOf(self.store.expire_messages(self.cutoff(days), batch))

    def retention(self, store: Any, days: float = 30, batch: int = 500) -> Retention:
        """
        @return: a retention of C{days} days on C{store}, scheduled on
            L{clock}; stopped when the test ends.
        """
        retention = Retention(store, self.clock, days, now=self.now, batch=batch)
        self.addCleanup(retention.stop)
        return retention

    def ids(self) -> list[int]:
        return [row[0] for row in query(self.path, "SELECT id FROM messages ORDER BY id")]

    def assert_consistent(self) -> None:
        """
        The search index agrees with C{message_text} (FTS5's own check),
        which holds exactly the texts of the messages that are neither
        system nor deleted; and no row breaks a foreign key.
        """
        if not is_postgresql(self.path):  # which checks its foreign keys at each statement
            with closing(sqlite3.connect(self.path, isolation_level=None)) as connection:
                register_functions(connection)
                connection.execute(
                    "INSERT INTO message_search (message_search, rank)"
                    " VALUES ('integrity-check', 1)"
                )
                self.assertEqual(connection.execute("PRAGMA foreign_key_check").fetchall(), [])
        texts = query(self.path, "SELECT id, body FROM message_text ORDER BY id")
        expected = query(
            self.path,
            "SELECT id, body FROM messages WHERE kind <> 'system' AND deleted = 0 ORDER BY id",
        )
        self.assertEqual(texts, [(i, body.casefold()) for i, body in expected])


class ExpireMessagesTests(RetentionTestCase):
    """
    L{Store.expire_messages}: one job deletes a batch of the oldest
    messages with what is theirs.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice, self.bob = self.user("alice"), self.user("bob")
        self.successResultOf(self.store.add_friend(self.alice, self.bob))
        self.successResultOf(self.store.add_friend(self.bob, self.alice))

    def test_old_deleted_new_kept(self) -> None:
        """
        The messages older than the cutoff are deleted and counted; the
        newer ones stay as they were.
        """
        old = [self.send(self.alice, PRIVATE, self.bob, f"old {n}") for n in range(3)]
        self.days_later(10)
        new = [self.send(self.bob, PRIVATE, self.alice, f"new {n}") for n in range(2)]
        self.assertEqual(self.expire(5), 3)
        self.assertEqual(self.ids(), [m.id for m in new])
        history, more = self.successResultOf(
            self.store.private_history(self.alice, self.bob, None, None, 50)
        )
        self.assertEqual((history, more), (new, False))
        self.assertEqual(self.expire(5), 0)
        self.assertNotIn(old[-1].id, self.ids())
        self.assert_consistent()

    def test_batch(self) -> None:
        """
        A job deletes at most C{batch} messages, the oldest first.
        """
        sent = [self.send(self.alice, PRIVATE, self.bob, f"m{n}").id for n in range(5)]
        self.days_later(2)
        self.assertEqual(self.expire(1, batch=2), 2)
        self.assertEqual(self.ids(), sent[2:])
        self.assertEqual(self.expire(1, batch=2), 2)
        self.assertEqual(self.expire(1, batch=2), 1)
        self.assertEqual(self.expire(1, batch=2), 0)
        self.assertEqual(self.ids(), [])

    def test_nothing_old_enough(self) -> None:
        """
        When the oldest message is not old enough, nothing is deleted.
        """
        self.send(self.alice, PRIVATE, self.bob)
        self.days_later(1)
        self.assertEqual(self.expire(2), 0)
        self.assertEqual(len(self.ids()), 1)

    def test_stops_at_first_young_message(self) -> None:
        """
        Messages go strictly in id order: a message stamped later than the
        ones after it (the clock went back) holds them back until it is old
        enough itself, so that what stays is every message from some id on.
        """
        self.send(self.alice, PRIVATE, self.bob, "first")
        self.days_later(3)
        ahead = self.send(self.alice, PRIVATE, self.bob, "ahead")
        self.clock.rightNow -= 2 * DAY
        behind = self.send(self.alice, PRIVATE, self.bob, "behind")
        self.assertLess(behind.time, ahead.time)
        self.days_later(3)
        # "behind" is 3 days old, "ahead" 1: only "first" goes.
        self.assertEqual(self.expire(2), 1)
        self.assertEqual(self.ids(), [ahead.id, behind.id])
        self.days_later(1.5)
        self.assertEqual(self.expire(2), 2)

    def test_last_message_deletable(self) -> None:
        """
        The newest message of the server may go too; ids are not reused
        afterwards, read markers on the deleted ids keep working, and new
        messages count as unread.
        """
        sent = self.send(self.bob, PRIVATE, self.alice)
        self.successResultOf(self.store.mark_read(self.alice, PRIVATE, self.bob, sent.id))
        self.days_later(2)
        self.assertEqual(self.expire(1), 1)
        self.assertEqual(self.ids(), [])
        self.assertEqual(self.successResultOf(self.store.unread(self.alice, [self.bob], {})), [])
        # A marker on an id that is gone, even past every message left.
        self.successResultOf(self.store.mark_read(self.alice, PRIVATE, self.bob, sent.id))
        later = self.send(self.bob, PRIVATE, self.alice, "later")
        self.assertGreater(later.id, sent.id)
        [unread] = self.successResultOf(self.store.unread(self.alice, [self.bob], {}))
        self.assertEqual((unread.count, unread.last_message_id), (1, later.id))
        self.successResultOf(self.store.mark_read(self.alice, PRIVATE, self.bob, later.id))
        self.assertEqual(self.successResultOf(self.store.unread(self.alice, [self.bob], {})), [])

    def test_ids_not_reused_by_a_group(self) -> None:
        """
        Messages committed together (one statement for the group, with ids
        chosen by chatd) after the newest messages expired get ids past
        every id ever given, not past the largest left.
        """
        sent = [self.send(self.bob, PRIVATE, self.alice, str(n)) for n in range(3)]
        self.days_later(2)
        self.assertEqual(self.expire(1), 3)
        call = (self.bob, PRIVATE, self.alice, "text", "again", None, None, 0, (), None)
        stored = self.successResultOf(
            self.store.writer.submit(lambda txn, stamp: _add_messages_txn(txn, stamp, [call] * 2))
        )
        self.assertEqual([m.id for m, _ in stored], [sent[-1].id + 1, sent[-1].id + 2])

    def test_reactions_mentions_search_go(self) -> None:
        """
        A deleted message's reactions, mentions and search text go with it:
        a search for its text finds nothing (but finds a newer message with
        the same text), and FTS5's integrity check passes.
        """
        room = self.room(self.alice).target_id
        self.successResultOf(self.store.join_room(room, self.bob, self.bob, "bob joined"))
        old = self.send(self.alice, ROOM, room, "the Needle @bob", mentions=(self.bob,))
        self.successResultOf(self.store.react(old.id, self.bob, "👍", True))
        self.successResultOf(self.store.react(old.id, self.alice, "🎉", True))
        tomb = self.send(self.alice, ROOM, room, "soon a tombstone")
        self.successResultOf(self.store.delete_message(tomb.id))
        self.days_later(10)
        kept = self.send(self.bob, ROOM, room, "another needle", mentions=())
        self.successResultOf(self.store.react(kept.id, self.alice, "👍", True))

        def search(term: str) -> list[int]:
            found, _ = self.successResultOf(
                self.store.search(self.alice, (term,), [self.bob], {room: 0}, None, 20)
            )
            return [m.id for m in found]

        self.assertEqual(search("needle"), [kept.id, old.id])
        # The room's two system messages, the text and the tombstone.
        self.assertEqual(self.expire(5), 4)
        self.assertEqual(search("needle"), [kept.id])
        self.assertEqual(search("the"), [kept.id])
        self.assertEqual(query(self.path, "SELECT message_id FROM reactions"), [(kept.id,)])
        self.assertEqual(query(self.path, "SELECT count(*) FROM mentions"), [(0,)])
        self.assertEqual(query(self.path, "SELECT id FROM message_text"), [(kept.id,)])
        self.assert_consistent()

    def test_reply_loses_quote(self) -> None:
        """
        A reply to a deleted message stays, with its own text, and no
        longer quotes it; a reply deleted with what it answers is no
        trouble.
        """
        quoted = self.send(self.alice, PRIVATE, self.bob, "question")
        self.send(self.bob, PRIVATE, self.alice, "old answer", reply_to=quoted.id)
        self.days_later(10)
        reply = self.send(self.bob, PRIVATE, self.alice, "late answer", reply_to=quoted.id)
        self.assertIsNotNone(reply.reply_to)
        self.assertEqual(self.expire(5), 2)
        stored = self.successResultOf(self.store.message(reply.id))
        assert stored is not None
        self.assertEqual((stored.body, stored.reply_to), ("late answer", None))
        history, _ = self.successResultOf(
            self.store.private_history(self.alice, self.bob, None, None, 50)
        )
        self.assertEqual([(m.id, m.reply_to) for m in history], [(reply.id, None)])
        self.assert_consistent()

    def test_room_whose_join_expired(self) -> None:
        """
        A member whose join message is gone still reads the room from that
        id on, pages back to its beginning, and has the right unread
        counts; the bounds need no message to exist.
        """
        alice, bob, carol = self.alice, self.bob, self.user("carol")
        room = self.room(alice).target_id
        self.send(alice, ROOM, room, "before bob")
        joined = self.successResultOf(self.store.join_room(room, bob, bob, "bob joined")).id
        early = self.send(alice, ROOM, room, "early")
        self.days_later(10)
        late = [self.send(carol if n else alice, ROOM, room, f"late {n}").id for n in range(3)]
        self.assertEqual(self.expire(5), 4)
        self.assertNotIn(joined, self.ids())

        def page(before: int | None = None, after: int | None = None) -> tuple[list[int], bool]:
            messages, more = self.successResultOf(
                self.store.room_history(room, joined, before, after, 2)
            )
            return [m.id for m in messages], more

        self.assertEqual(page(), (late[1:], True))
        self.assertEqual(page(before=late[1]), (late[:1], False))
        self.assertEqual(page(after=early.id), (late[:2], True))
        self.assertEqual(page(after=joined - 1), (late[:2], True))
        [unread] = self.successResultOf(self.store.unread(bob, [], {room: joined}))
        self.assertEqual((unread.count, unread.last_message_id), (3, late[-1]))
        # A marker on the expired join (or before it) changes nothing.
        self.successResultOf(self.store.mark_read(bob, ROOM, room, joined))
        [unread] = self.successResultOf(self.store.unread(bob, [], {room: joined}))
        self.assertEqual(unread.count, 3)
        self.successResultOf(self.store.mark_read(bob, ROOM, room, late[0]))
        [unread] = self.successResultOf(self.store.unread(bob, [], {room: joined}))
        self.assertEqual(unread.count, 2)
        found, _ = self.successResultOf(
            self.store.search(bob, ("late",), [], {room: joined}, None, 20)
        )
        self.assertEqual([m.id for m in found], late[::-1])

    def test_texts_gone_from_the_file(self) -> None:
        """
        Once written back from the WAL, a deleted message's text is nowhere
        in the database file, not even in free pages (C{secure_delete}).
        """
        if is_postgresql(self.path):
            raise SkipTest("SQLite's secure_delete; on PostgreSQL old row versions go at VACUUM")
        # A text longer than a page, whose overflow pages are freed.
        self.send(self.alice, PRIVATE, self.bob, "plugh " * 600)
        self.days_later(2)
        self.send(self.alice, PRIVATE, self.bob, "kept")
        self.assertEqual(self.expire(1), 1)
        self.store.close()
        with closing(sqlite3.connect(self.path)) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with open(self.path, "rb") as f:
            content = f.read()
        self.assertNotIn(b"plugh", content)
        self.assertIn(b"kept", content)

    def test_statements_seek(self) -> None:
        """
        Every statement of the job reads a range of an index (the first
        only the first C{batch} rows of the table), and the lookup SQLite's
        foreign key makes for each deleted message (the replies to it)
        seeks the index of C{sql/007_retention.sql}: no statement scans the
        table, whatever it holds.
        """
        if is_postgresql(self.path):
            raise SkipTest("SQLite's query plans (PostgreSQL plans by its statistics)")
        self.send(self.alice, PRIVATE, self.bob)
        self.days_later(2)

        def job(txn: Transaction, stamp: str) -> list[tuple[str, list[str]]]:
            recording = RecordingTransaction(txn)
            _expire_messages_txn(recording, stamp, self.cutoff(1), 500)
            recording.statements.append(("SELECT 1 FROM messages WHERE reply_to = ?", (1,)))
            plans = []
            for sql, params in recording.statements:
                txn.execute("EXPLAIN QUERY PLAN " + sql, params)
                plans.append((sql, [row[3] for row in txn.fetchall()]))
            return plans

        plans = self.successResultOf(self.store.writer.submit(job))
        self.assertEqual(len(plans), 9)
        (first, first_plan), *rest = plans
        self.assertIn("ORDER BY id LIMIT ?", first)
        self.assertEqual(first_plan, ["SCAN messages"])
        for sql, plan in rest:
            self.assertTrue(plan, sql)
            for step in plan:
                self.assertTrue(step.startswith("SEARCH "), (sql, plan))
        self.assertIn("USING COVERING INDEX messages_reply_to (reply_to=?)", plans[-1][1][0])


class RetentionUpgradeTests(SynchronousTestCase):
    """
    C{sql/007_retention.sql} upgrades a database of schema 6.
    """

    def test_version_six_to_seven(self) -> None:
        """
        A database of schema 6 with a message and a reply to it gets the
        index of replies, and its old messages can be expired.
        """
        path = self.mktemp() + ".sqlite3"
        files = schema_files()
        self.assertEqual([n for n, _ in files][:7], [1, 2, 3, 4, 5, 6, 7])
        stamp = "2026-11-24T06:00:30.123Z"
        with closing(sqlite3.connect(path, isolation_level=None)) as connection:
            register_functions(connection)
            connection.executescript(
                "BEGIN;\n"
                + "\n".join(sql for _, sql in files[:6])
                + "\nINSERT INTO schema_version VALUES (6);COMMIT;"
            )
            connection.executescript(
                f"""
                INSERT INTO users (id, username, password_hash, created_at)
                    VALUES (1, 'ncr', 'h1', '{stamp}'), (2, 'lzy', 'h2', '{stamp}');
                INSERT INTO messages
                    (id, sender_id, target_type, target_id, kind, body, reply_to, created_at)
                VALUES (1, 1, 0, 2, 'text', 'question', NULL, '2026-01-01T00:00:00.000Z'),
                       (2, 2, 0, 1, 'text', 'answer', 1, '{stamp}');
                INSERT INTO message_text VALUES (1, 'question'), (2, 'answer');
                INSERT INTO message_search (message_search) VALUES ('rebuild');
                """
            )
        store = Store(*inline_pools(path, ImmediateReactor()), now=lambda: FIXED_NOW)
        self.successResultOf(store.migrate())
        self.addCleanup(store.close)
        self.assertEqual(query(path, "SELECT version FROM schema_version"), [(files[-1][0],)])
        [(sql,)] = query(path, "SELECT sql FROM sqlite_master WHERE name = 'messages_reply_to'")
        self.assertIn("WHERE reply_to IS NOT NULL", sql)
        self.assertEqual(
            self.successResultOf(store.expire_messages("2026-06-01T00:00:00.000Z", 500)), 1
        )
        self.assertEqual(query(path, "SELECT id, reply_to FROM messages"), [(2, None)])
        self.assertEqual(query(path, "SELECT id FROM message_text"), [(2,)])


class HeldStore:
    """
    A store whose C{expire_messages} answers when the test fires the
    Deferred it returned.

    @ivar calls: C{(before, batch, deferred)} of each call.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, Deferred[int]]] = []

    def expire_messages(self, before: str, batch: int) -> Deferred[int]:
        d: Deferred[int] = Deferred()
        self.calls.append((before, batch, d))
        return d


def lines(events: Any, level: LogLevel | None = None) -> list[str]:
    """
    @return: the text of the events of chatd.retention (of C{level} only,
        if given).
    """
    return [
        formatEvent(event)
        for event in events
        if event.get("log_namespace") == "chatd.retention.Retention"
        and (level is None or event["log_level"] == level)
    ]


class ScheduleTests(RetentionTestCase):
    """
    L{Retention} runs a pass soon after it starts, then one a day, each
    batch by batch; it stops cleanly and survives failures.
    """

    def test_pass_in_batches(self) -> None:
        """
        A pass deletes batch after batch, each its own writer job, until one
        deletes fewer than a batch: 1200 old messages are three jobs of at
        most 500, and the messages of the last days stay.  One info line
        tells the count, and no text.
        """
        alice = self.user("alice")
        room = self.room(alice).target_id
        self.successResultOf(self.store.writer.submit(_add_many_txn, alice, room, 1199))
        self.days_later(40)
        recent = self.send(alice, ROOM, room, "recent secret")
        retention = self.retention(self.store)
        jobs = self.store.writer.batches
        with capturedLogs() as events:
            retention.start()
            self.clock.advance(60)
        self.assertEqual(self.store.writer.batches - jobs, 3)
        self.assertEqual(self.ids(), [recent.id])
        self.assertEqual(lines(events), ["Retention: deleted 1200 messages older than 30 days"])
        self.assertNotIn("secret", repr(events))
        self.assertNotIn("bulk", repr(events))
        self.assert_consistent()

    def test_daily(self) -> None:
        """
        The first pass runs a minute after the start, then one a day, each
        against the cutoff of its own time: a message 29 days old at the
        first pass goes at the second.
        """
        alice, bob = self.user("alice"), self.user("bob")
        self.send(alice, PRIVATE, bob, "older")
        self.days_later(1)
        younger = self.send(alice, PRIVATE, bob, "younger")
        self.days_later(29.5)
        retention = self.retention(self.store)
        retention.start()
        self.clock.advance(59)
        self.assertEqual((retention.passes, len(self.ids())), (0, 2))
        self.clock.advance(1)
        self.assertEqual((retention.passes, self.ids()), (1, [younger.id]))
        self.clock.advance(DAY - 1)
        self.assertEqual((retention.passes, self.ids()), (1, [younger.id]))
        self.clock.advance(1)
        self.assertEqual((retention.passes, self.ids()), (2, []))
        self.clock.advance(DAY)
        self.assertEqual(retention.passes, 3)

    def test_cutoff_and_batch(self) -> None:
        """
        Each batch asks the store for the messages stored before C{days}
        days ago, C{batch} at most: the whole pass with the cutoff of its
        start.
        """
        store = HeldStore()
        retention = self.retention(store, days=0.5, batch=10)
        retention.start()
        self.clock.advance(60)
        expected = utc_stamp(self.now() - DAY / 2)
        self.assertEqual([c[:2] for c in store.calls], [(expected, 10)])
        self.clock.advance(5)
        store.calls[0][2].callback(10)
        self.assertEqual([c[:2] for c in store.calls], [(expected, 10)] * 2)
        with capturedLogs() as events:
            store.calls[1][2].callback(3)
        self.assertEqual(lines(events), ["Retention: deleted 13 messages older than 0.5 days"])
        self.assertEqual(len(store.calls), 2)

    def test_stop_before_first_pass(self) -> None:
        """
        Stopped before its first pass, it has nothing to wait for and runs
        none.
        """
        store = HeldStore()
        retention = self.retention(store)
        retention.start()
        self.assertIsNone(self.successResultOf(retention.stop()))
        self.clock.advance(2 * DAY)
        self.assertEqual(store.calls, [])

    def test_stop_during_pass(self) -> None:
        """
        Stopped during a pass, it lets the batch in progress finish, asks
        for no other, and only then fires; no pass follows.
        """
        store = HeldStore()
        retention = self.retention(store)
        retention.start()
        self.clock.advance(60)
        store.calls[0][2].callback(500)
        self.assertEqual(len(store.calls), 2)
        stopped = retention.stop()
        self.assertNoResult(stopped)
        with capturedLogs() as events:
            store.calls[1][2].callback(500)
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual(lines(events), ["Retention: deleted 1000 messages older than 30 days"])
        self.clock.advance(2 * DAY)
        self.assertEqual(len(store.calls), 2)
        self.assertIsNone(self.successResultOf(retention.stop()))

    def test_bug_logged(self) -> None:
        """
        A batch that fails with anything else (a bug) is logged with its
        traceback and ends the pass, which raises nothing; the next day's
        pass runs.
        """
        calls: list[str] = []
        # A full batch, a bug, then (the next day) nothing left.
        answers = [lambda: succeed(7), lambda: fail(RuntimeError("broken")), lambda: succeed(0)]

        class BrokenStore:
            def expire_messages(self, before: str, batch: int) -> Deferred[int]:
                calls.append(before)
                return answers[len(calls) - 1]()

        retention = self.retention(BrokenStore(), batch=7)
        retention.start()
        with capturedLogs() as events:
            self.clock.advance(60)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        [line] = lines(events, LogLevel.critical)
        self.assertTrue(line.startswith("Retention: deleted 7 messages older than 30 days, then"))
        self.assertEqual((retention.passes, len(calls)), (1, 2))
        self.clock.advance(DAY)
        self.assertEqual((retention.passes, len(calls)), (2, 3))

    def test_database_unavailable_from_store(self) -> None:
        """
        L{DatabaseUnavailable} from the store is a warning, not a traceback
        (the database logged its own trouble).
        """
        store = HeldStore()
        retention = self.retention(store)
        retention.start()
        self.clock.advance(60)
        with capturedLogs() as events:
            store.calls[0][2].errback(DatabaseUnavailable("disk I/O error"))
        self.assertEqual(self.flushLoggedErrors(), [])
        [warning] = lines(events)
        self.assertIn("the database failed (disk I/O error)", warning)
        self.clock.advance(DAY)
        self.assertEqual(len(store.calls), 2)


class DatabaseFailureTests(RetentionTestCase):
    """
    L{Retention} on a database that refuses a batch.
    """

    # Another writer's lock fails the writer at once.
    busy_timeout_ms = 0

    def test_database_failure(self) -> None:
        """
        A batch the database refuses (the file locked by another writer)
        ends the pass with a warning, after the database's own error line;
        the next day's pass deletes what is left.
        """
        alice, bob = self.user("alice"), self.user("bob")
        for n in range(3):
            self.send(alice, PRIVATE, bob, f"m{n}")
        self.days_later(31)
        retention = self.retention(self.store, batch=2)
        retention.start()
        with closing(sqlite3.connect(self.path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            with capturedLogs() as events:
                self.clock.advance(60)
            other.execute("ROLLBACK")
        self.assertEqual(len(self.flushLoggedErrors(sqlite3.OperationalError)), 1)
        [warning] = lines(events, LogLevel.warn)
        self.assertTrue(
            warning.startswith("Retention: deleted 0 messages older than 30 days, then stopped"),
            warning,
        )
        self.assertEqual((retention.passes, len(self.ids())), (1, 3))
        with capturedLogs() as events:
            self.clock.advance(DAY)
        self.assertEqual(lines(events), ["Retention: deleted 3 messages older than 30 days"])
        self.assertEqual((retention.passes, self.ids()), (2, []))


# These suites run on PostgreSQL too.
on_postgresql(globals(), ExpireMessagesTests, ScheduleTests)
