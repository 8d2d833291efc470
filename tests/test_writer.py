"""
Tests for L{chatd.writer}: group commit with transactions the test starts,
commits and fails itself.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Any

from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.defer import Deferred
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from chatd import wire
from chatd.database import DatabaseHealth, DatabaseUnavailable, make_pool
from chatd.store import StoredQuote
from chatd.wire import PRIVATE, ChatError
from chatd.writer import GroupCommit, single_change, together, utc_stamp
from tests.postgres import on_postgresql
from tests.support import FIXED_NOW, ImmediateReactor, InlineThreadPool, database_for, open_store

Interaction = tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any]]


class ControlledPool:
    """
    A writer pool whose transactions run on a real SQLite connection only
    when the test says so: C{runInteraction} records the call and returns a
    Deferred the test fires with L{run} and L{commit}, or L{fail}.

    @ivar calls: every C{runInteraction} call, in order.
    """

    def __init__(self, path: str) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode = WAL")
        self.connection.execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " value TEXT NOT NULL, stamp TEXT NOT NULL)"
        )
        self.calls: list[Interaction] = []
        self._results: dict[int, Any] = {}

    def runInteraction(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.calls.append((f, args, d))
        return d

    def jobs(self, index: int) -> int:
        """
        @return: how many jobs the C{index}th transaction holds.
        """
        return len(self.calls[index][1][0])

    def run(self, index: int) -> None:
        """
        Run the C{index}th transaction's function, leaving it uncommitted.
        """
        f, args, _ = self.calls[index]
        self._results[index] = f(self.connection.cursor(), *args)

    def commit(self, index: int) -> None:
        """
        Run the C{index}th transaction if need be, commit it, and fire its
        Deferred; roll back and fail it if its function raises.
        """
        if index not in self._results:
            try:
                self.run(index)
            except BaseException:
                failure = Failure()
                self.connection.rollback()
                self.calls[index][2].errback(failure)
                return
        self.connection.commit()
        self.calls[index][2].callback(self._results.pop(index))

    def fail(self, index: int, error: Exception) -> None:
        """
        Fail the C{index}th transaction as the database would.
        """
        self.calls[index][2].errback(Failure(error))

    def close(self) -> None:
        self.connection.close()


class HeldPool:
    """
    A real connection pool whose transactions start only when the test
    releases them, oldest first: until then the writer sees one in flight.
    """

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.held: list[Interaction] = []
        self.started = 0

    def runInteraction(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.held.append((f, args, d))
        self.started += 1
        return d

    def release(self) -> None:
        """
        Run and commit the oldest held transaction, and fire its Deferred.
        """
        f, args, d = self.held.pop(0)
        self.pool.runInteraction(f, *args).chainDeferred(d)

    def release_all(self) -> None:
        """
        Release held transactions, and those they lead to, until none is left.
        """
        while self.held:
            self.release()


def insert(txn: Any, stamp: str, value: str) -> int:
    txn.execute("INSERT INTO items (value, stamp) VALUES (?, ?)", (value, stamp))
    return int(txn.lastrowid)


def insert_then_refuse(txn: Any, stamp: str, value: str) -> int:
    insert(txn, stamp, value)
    raise ChatError(wire.NOT_FRIENDS)


def insert_then_break(txn: Any, stamp: str, value: str) -> int:
    insert(txn, stamp, value)
    raise ValueError("a bug")


def database_fails(txn: Any, stamp: str) -> None:
    raise sqlite3.OperationalError("disk I/O error")


class WriterTestCase(SynchronousTestCase):
    """
    A L{GroupCommit} over a L{ControlledPool} on a new file.
    """

    def setUp(self) -> None:
        self.path = self.mktemp() + ".sqlite3"
        self.pool = ControlledPool(self.path)
        self.addCleanup(self.pool.close)
        self.clock = iter(FIXED_NOW + n for n in range(1000))
        self.health = DatabaseHealth()
        self.writer = GroupCommit(self.pool, self.health, lambda: next(self.clock))  # type: ignore[arg-type]

    def committed(self) -> list[str]:
        """
        @return: the values committed so far, read on another connection.
        """
        with closing(sqlite3.connect(self.path)) as connection:
            return [row[0] for row in connection.execute("SELECT value FROM items ORDER BY id")]


class GroupingTests(WriterTestCase):
    """
    Which jobs go into which transaction, and when.
    """

    def test_low_load_starts_at_once(self) -> None:
        """
        A job submitted while nothing is in flight starts its transaction
        at once, alone.
        """
        d = self.writer.submit(insert, "a")
        self.assertEqual(len(self.pool.calls), 1)
        self.assertEqual(self.pool.jobs(0), 1)
        self.assertNoResult(d)
        self.pool.commit(0)
        self.assertIsInstance(self.successResultOf(d), int)
        self.assertEqual(self.committed(), ["a"])

    def test_jobs_wait_for_transaction_in_flight(self) -> None:
        """
        Jobs submitted while a transaction is in flight all go together into
        the next one, which starts when the first commits.
        """
        self.writer.submit(insert, "a")
        waiting = [self.writer.submit(insert, value) for value in "bcde"]
        self.assertEqual(len(self.pool.calls), 1)
        self.pool.commit(0)
        self.assertEqual(len(self.pool.calls), 2)
        self.assertEqual(self.pool.jobs(1), 4)
        for d in waiting:
            self.assertNoResult(d)
        self.pool.commit(1)
        self.assertEqual(len(self.pool.calls), 2)
        self.assertEqual(self.committed(), list("abcde"))

    def test_group_shares_one_timestamp(self) -> None:
        """
        The jobs of one transaction get the same timestamp, read once per
        transaction.
        """
        self.writer.submit(insert, "a")
        self.writer.submit(insert, "b")
        self.writer.submit(insert, "c")
        self.pool.commit(0)
        self.pool.commit(1)
        with closing(sqlite3.connect(self.path)) as connection:
            stamps = [row[0] for row in connection.execute("SELECT stamp FROM items ORDER BY id")]
        self.assertEqual(
            stamps, [utc_stamp(FIXED_NOW), utc_stamp(FIXED_NOW + 1), utc_stamp(FIXED_NOW + 1)]
        )

    def test_fires_after_commit_in_order(self) -> None:
        """
        Each job's Deferred fires only after its transaction commits, in
        submission order, and sees its data committed.
        """
        fired: list[tuple[str, list[str]]] = []
        for value in "abc":
            d = self.writer.submit(insert, value)
            d.addCallback(lambda _, value=value: fired.append((value, self.committed())))
        self.pool.run(0)
        self.assertEqual(fired, [])
        self.pool.commit(0)
        self.assertEqual(fired, [("a", ["a"])])
        self.pool.run(1)
        self.assertEqual(len(fired), 1)
        self.pool.commit(1)
        self.assertEqual(fired, [("a", ["a"]), ("b", list("abc")), ("c", list("abc"))])

    def test_ids_in_submission_order(self) -> None:
        """
        Jobs run in submission order, so the ids they insert grow in that
        order.
        """
        ds = [self.writer.submit(insert, str(i)) for i in range(10)]
        self.pool.commit(0)
        self.pool.commit(1)
        ids = [self.successResultOf(d) for d in ds]
        self.assertEqual(ids, sorted(set(ids)))

    def test_idle(self) -> None:
        """
        C{idle} fires at once when nothing is in flight, and otherwise only
        when everything submitted before it has committed.
        """
        self.successResultOf(self.writer.idle())
        first = self.writer.submit(insert, "a")
        second = self.writer.submit(insert, "b")
        idle = self.writer.idle()
        self.pool.commit(0)
        self.successResultOf(first)
        self.assertNoResult(second)
        self.assertNoResult(idle)
        self.pool.commit(1)
        self.successResultOf(second)
        self.assertIsNone(self.successResultOf(idle))
        self.successResultOf(self.writer.idle())

    def test_counters(self) -> None:
        """
        C{batches} counts transactions and C{largest_batch} the most jobs
        one of them held.
        """
        self.assertEqual((self.writer.batches, self.writer.largest_batch), (0, 0))
        self.writer.submit(insert, "a")
        for value in "bcd":
            self.writer.submit(insert, value)
        self.pool.commit(0)
        self.pool.commit(1)
        self.writer.submit(insert, "e")
        self.pool.commit(2)
        self.assertEqual((self.writer.batches, self.writer.largest_batch), (3, 3))

    def test_batches_counts_committed_only(self) -> None:
        """
        C{batches} counts transactions that committed, as its docstring says:
        not one in flight, nor one that failed.
        """
        first = self.writer.submit(insert, "a")
        self.assertEqual(self.writer.batches, 0)
        self.pool.fail(0, sqlite3.OperationalError("database is locked"))
        self.failureResultOf(first, DatabaseUnavailable)
        self.flushLoggedErrors(sqlite3.OperationalError)
        self.assertEqual(self.writer.batches, 0)
        self.writer.submit(insert, "b")
        self.pool.commit(1)
        self.assertEqual(self.writer.batches, 1)


class FailureTests(WriterTestCase):
    """
    Jobs that fail, and transactions that fail.
    """

    def setUp(self) -> None:
        super().setUp()
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def recovered(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("log_format") == "The database works again"]

    def test_refused_job_fails_alone(self) -> None:
        """
        A job raising L{ChatError} is rolled back to its savepoint and fails
        alone; the other jobs of its group commit.
        """
        self.writer.submit(insert, "a")
        b = self.writer.submit(insert, "b")
        c = self.writer.submit(insert_then_refuse, "c")
        d = self.writer.submit(insert, "d")
        self.pool.commit(0)
        self.pool.commit(1)
        self.successResultOf(b)
        self.assertEqual(self.failureResultOf(c, ChatError).value.code, wire.NOT_FRIENDS)
        self.successResultOf(d)
        self.assertEqual(self.committed(), ["a", "b", "d"])
        self.assertFalse(self.health.failing)

    def test_broken_job_fails_alone(self) -> None:
        """
        A job raising another exception (a bug) also fails alone, with that
        exception.
        """
        self.writer.submit(insert, "a")
        b = self.writer.submit(insert_then_break, "b")
        c = self.writer.submit(insert, "c")
        self.pool.commit(0)
        self.pool.commit(1)
        self.failureResultOf(b, ValueError)
        self.successResultOf(c)
        self.assertEqual(self.committed(), ["a", "c"])

    def test_database_error_in_job_fails_group(self) -> None:
        """
        A job hitting C{sqlite3.OperationalError} fails every job of its
        group with L{DatabaseUnavailable}, and none of the group is stored.
        """
        self.writer.submit(insert, "a")
        group = [
            self.writer.submit(insert, "b"),
            self.writer.submit(database_fails),
            self.writer.submit(insert, "c"),
        ]
        self.pool.commit(0)
        self.pool.commit(1)
        for d in group:
            self.failureResultOf(d, DatabaseUnavailable)
        self.assertEqual(len(self.flushLoggedErrors(sqlite3.OperationalError)), 1)
        self.assertEqual(self.committed(), ["a"])
        self.assertTrue(self.health.failing)

    def test_failed_transaction_then_recovery(self) -> None:
        """
        A failed transaction fails its whole group with
        L{DatabaseUnavailable}, is logged once however many groups fail, and
        the next group works again and is logged as recovered.
        """
        self.writer.submit(insert, "a")
        first = [self.writer.submit(insert, value) for value in "bc"]
        self.pool.commit(0)
        self.pool.fail(1, sqlite3.OperationalError("database is locked"))
        for d in first:
            self.assertIn("database is locked", str(self.failureResultOf(d, DatabaseUnavailable)))
        self.assertEqual(len(self.pool.calls), 2)
        second = self.writer.submit(insert, "d")
        self.pool.fail(2, sqlite3.OperationalError("database is locked"))
        self.failureResultOf(second, DatabaseUnavailable)
        self.assertEqual(len(self.flushLoggedErrors(sqlite3.OperationalError)), 1)
        self.assertEqual(self.recovered(), [])

        third = self.writer.submit(insert, "e")
        self.pool.commit(3)
        self.successResultOf(third)
        self.assertEqual(self.committed(), ["a", "e"])
        self.assertFalse(self.health.failing)
        self.assertEqual(len(self.recovered()), 1)

        fourth = self.writer.submit(insert, "f")
        self.pool.fail(4, sqlite3.OperationalError("disk I/O error"))
        self.failureResultOf(fourth, DatabaseUnavailable)
        self.assertEqual(len(self.flushLoggedErrors(sqlite3.OperationalError)), 1)

    def test_jobs_queued_behind_failure_run(self) -> None:
        """
        Jobs queued while a failing transaction was in flight go into the
        next transaction and commit.
        """
        first = self.writer.submit(insert, "a")
        later = self.writer.submit(insert, "b")
        self.pool.fail(0, sqlite3.OperationalError("database is locked"))
        self.failureResultOf(first, DatabaseUnavailable)
        self.flushLoggedErrors(sqlite3.OperationalError)
        self.assertNoResult(later)
        self.pool.commit(1)
        self.successResultOf(later)
        self.assertEqual(self.committed(), ["b"])

    def test_idle_after_failure(self) -> None:
        """
        C{idle} fires even when the transaction it waits for fails.
        """
        first = self.writer.submit(insert, "a")
        idle = self.writer.idle()
        self.assertNoResult(idle)
        self.pool.fail(0, sqlite3.OperationalError("database is locked"))
        self.flushLoggedErrors(sqlite3.OperationalError)
        self.failureResultOf(first, DatabaseUnavailable)
        self.successResultOf(idle)


class StampTests(SynchronousTestCase):
    """
    L{utc_stamp}.
    """

    def test_format(self) -> None:
        """
        A stamp is ISO 8601 UTC with milliseconds, truncated, and a Z.
        """
        self.assertEqual(utc_stamp(FIXED_NOW), "2026-11-24T06:00:30.123Z")
        self.assertEqual(utc_stamp(0), "1970-01-01T00:00:00.000Z")
        self.assertEqual(utc_stamp(1.9995), "1970-01-01T00:00:01.999Z")


class RealStoreTests(SynchronousTestCase):
    """
    Group commit of a real store's messages.
    """

    def test_many_messages_few_transactions(self) -> None:
        """
        A thousand messages submitted while one transaction is in flight
        commit in two transactions, with ids strictly increasing in
        submission order.
        """
        reactor = ImmediateReactor()
        path = database_for(self)
        store = open_store(self, reactor, path)
        alice = self.successResultOf(store.add_user("alice", "x"))
        bob = self.successResultOf(store.add_user("bob", "x"))
        pool = make_pool(path, reactor, 1)
        pool.threadpool = InlineThreadPool()  # type: ignore[assignment]
        self.addCleanup(pool.close)
        held = HeldPool(pool)
        store.writer = GroupCommit(held, DatabaseHealth(), lambda: FIXED_NOW)  # type: ignore[arg-type]

        fired: list[int] = []
        ds = []
        for i in range(1000):
            d = store.add_message(alice, PRIVATE, bob, f"m{i}")
            d.addCallback(lambda result, i=i: (fired.append(i), result)[1])
            ds.append(d)
        self.assertEqual(held.started, 1)
        held.release_all()

        messages = [self.successResultOf(d)[0] for d in ds]
        self.assertEqual([m.body for m in messages], [f"m{i}" for i in range(1000)])
        ids = [m.id for m in messages]
        self.assertTrue(all(a < b for a, b in itertools.pairwise(ids)))
        self.assertEqual(fired, list(range(1000)))
        self.assertEqual((store.writer.batches, store.writer.largest_batch), (2, 999))
        page, has_more = self.successResultOf(store.private_history(bob, alice, None, None, 100))
        self.assertEqual(([m.id for m in page], has_more), (ids[-100:], True))

    def test_repeat_in_group(self) -> None:
        """
        In a group sent as one statement, a message repeating a
        C{client_msg_id} (of its own group or committed before) gets the
        message first stored with it, and the others are stored, ids in
        submission order.
        """
        reactor = ImmediateReactor()
        path = database_for(self)
        store = open_store(self, reactor, path)
        alice = self.successResultOf(store.add_user("alice", "x"))
        bob = self.successResultOf(store.add_user("bob", "x"))
        earlier, _ = self.successResultOf(store.add_message(alice, PRIVATE, bob, "early", "e"))
        pool = make_pool(path, reactor, 1)
        pool.threadpool = InlineThreadPool()  # type: ignore[assignment]
        self.addCleanup(pool.close)
        held = HeldPool(pool)
        store.writer = GroupCommit(held, DatabaseHealth(), lambda: FIXED_NOW)  # type: ignore[arg-type]

        store.add_message(alice, PRIVATE, bob, "first", None)
        sent = [("one", "x"), ("two", "y"), ("again", "x"), ("late", "e"), ("three", None)]
        ds = [store.add_message(alice, PRIVATE, bob, body, cid) for body, cid in sent]
        held.release_all()

        results = [self.successResultOf(d) for d in ds]
        self.assertEqual(
            [(m.body, new) for m, new in results],
            [("one", True), ("two", True), ("one", False), ("early", False), ("three", True)],
        )
        self.assertEqual(results[2][0], results[0][0])
        self.assertEqual(results[3][0], earlier)
        ids = [results[i][0].id for i in (0, 1, 4)]
        self.assertTrue(earlier.id < ids[0] < ids[1] < ids[2])
        page, _ = self.successResultOf(store.private_history(bob, alice, None, None, 100))
        self.assertEqual([m.body for m in page], ["early", "first", "one", "two", "three"])

    def test_replies_and_mentions_in_group(self) -> None:
        """
        A group sent as one statement stores each message's quote and
        mentions, and the next group can quote a message of it.
        """
        reactor = ImmediateReactor()
        path = database_for(self)
        store = open_store(self, reactor, path)
        alice = self.successResultOf(store.add_user("alice", "x"))
        bob = self.successResultOf(store.add_user("bob", "x"))
        earlier, _ = self.successResultOf(store.add_message(alice, PRIVATE, bob, "early"))
        pool = make_pool(path, reactor, 1)
        pool.threadpool = InlineThreadPool()  # type: ignore[assignment]
        self.addCleanup(pool.close)
        held = HeldPool(pool)
        store.writer = GroupCommit(held, DatabaseHealth(), lambda: FIXED_NOW)  # type: ignore[arg-type]

        store.add_message(alice, PRIVATE, bob, "first")
        one = store.add_message(bob, PRIVATE, alice, "re", reply_to=earlier.id, mentions=(1,))
        two = store.add_message(alice, PRIVATE, bob, "plain", mentions=(2,))
        held.release_all()
        first_group = [self.successResultOf(d)[0] for d in (one, two)]
        self.assertEqual(
            [(m.body, m.reply_to, m.mentions) for m in first_group],
            [
                ("re", StoredQuote(earlier.id, alice, "early", False), (1,)),
                ("plain", None, (2,)),
            ],
        )
        store.add_message(alice, PRIVATE, bob, "first")
        three = store.add_message(bob, PRIVATE, alice, "again")
        four = store.add_message(alice, PRIVATE, bob, "to three", reply_to=first_group[1].id)
        held.release_all()
        self.assertEqual(
            self.successResultOf(four)[0].reply_to,
            StoredQuote(first_group[1].id, alice, "plain", False),
        )
        self.successResultOf(three)
        page, _ = self.successResultOf(store.private_history(bob, alice, None, None, 100))
        self.assertEqual(page[-5:-3], first_group)
        self.assertEqual([m.body for m in page][-3:], ["first", "again", "to three"])


@single_change
def insert_single(txn: Any, stamp: str, value: str) -> int:
    return insert(txn, stamp, value)


@single_change
def insert_single_refused(txn: Any, stamp: str, value: str) -> int:
    txn.execute("INSERT INTO items (value, stamp) VALUES (?, NULL)", (value,))
    return 0


class SingleChangeTests(WriterTestCase):
    """
    Jobs marked L{single_change} run without a savepoint of their own.
    """

    def test_no_savepoint(self) -> None:
        """
        A group of single-change jobs executes no SAVEPOINT or RELEASE, and
        they commit.
        """
        statements: list[str] = []
        self.pool.connection.set_trace_callback(statements.append)
        for value in "abc":
            self.writer.submit(insert_single, value)
        self.pool.commit(0)
        self.pool.commit(1)
        self.assertEqual(self.committed(), ["a", "b", "c"])
        self.assertEqual([s for s in statements if s.startswith(("SAVEPOINT", "RELEASE"))], [])

    def test_failing_single_change_fails_alone(self) -> None:
        """
        A single-change job whose statement fails is undone by SQLite alone
        and fails alone; the rest of its group commits.
        """
        first = self.writer.submit(insert_single, "a")
        refused = self.writer.submit(insert_single_refused, "b")
        kept = self.writer.submit(insert_single, "c")
        self.pool.commit(0)
        self.assertEqual(self.pool.jobs(1), 2)
        self.pool.commit(1)
        self.successResultOf(first)
        self.failureResultOf(refused, sqlite3.IntegrityError)
        self.successResultOf(kept)
        self.assertEqual(self.committed(), ["a", "c"])
        self.flushLoggedErrors(sqlite3.IntegrityError)

    def test_deliveries_wrap_callbacks(self) -> None:
        """
        A committed group's callbacks all run within one C{deliveries}
        context.
        """
        events: list[str] = []

        @contextmanager
        def deliveries() -> Iterator[None]:
            events.append("open")
            yield
            events.append("close")

        self.writer = GroupCommit(
            self.pool,  # type: ignore[arg-type]
            self.health,
            lambda: next(self.clock),
            deliveries=deliveries,
        )
        self.writer.submit(insert, "a")
        for value in "bc":
            self.writer.submit(insert, value).addCallback(lambda _, v=value: events.append(v))
        self.pool.commit(0)
        events.clear()
        self.pool.commit(1)
        self.assertEqual(events, ["open", "b", "c", "close"])


#: The value lists each call of L{insert_many} was given.
many_calls: list[list[str]] = []


def insert_many(txn: Any, stamp: str, calls: list[tuple[str]]) -> list[int]:
    many_calls.append([value for (value,) in calls])
    if any(value == "bad" for (value,) in calls):
        insert(txn, stamp, "undone")
        raise ChatError(wire.NOT_FRIENDS)
    if any(value == "locked" for (value,) in calls):
        raise sqlite3.OperationalError("database is locked")
    return [insert(txn, stamp, value) for (value,) in calls]


@together(insert_many)
def insert_one(txn: Any, stamp: str, value: str) -> int:
    if value == "bad":
        raise ChatError(wire.NOT_FRIENDS)
    return insert(txn, stamp, value)


class TogetherTests(WriterTestCase):
    """
    Jobs marked L{together}: consecutive submissions run as one call.
    """

    def setUp(self) -> None:
        super().setUp()
        many_calls.clear()

    def test_consecutive_run_as_one(self) -> None:
        """
        Consecutive submissions of a L{together} job in one group run as one
        call, and each gets its own result, in order.
        """
        first = self.writer.submit(insert_one, "a")
        ds = [self.writer.submit(insert_one, value) for value in "bcd"]
        self.pool.commit(0)
        self.pool.commit(1)
        self.assertEqual(many_calls, [["b", "c", "d"]])
        self.assertEqual([self.successResultOf(d) for d in [first, *ds]], [1, 2, 3, 4])
        self.assertEqual(self.committed(), ["a", "b", "c", "d"])

    def test_alone_is_not_together(self) -> None:
        """
        A single submission runs as an ordinary job.
        """
        d = self.writer.submit(insert_one, "a")
        self.pool.commit(0)
        self.assertEqual(many_calls, [])
        self.assertEqual(self.successResultOf(d), 1)

    def test_runs_split_by_other_jobs(self) -> None:
        """
        Another job between submissions splits them into runs, and every
        job keeps its place in the order.
        """
        self.writer.submit(insert, "first")
        ds = [
            self.writer.submit(insert_one, "a"),
            self.writer.submit(insert_one, "b"),
            self.writer.submit(insert, "c"),
            self.writer.submit(insert_one, "d"),
            self.writer.submit(insert_one, "e"),
        ]
        self.pool.commit(0)
        self.pool.commit(1)
        self.assertEqual(many_calls, [["a", "b"], ["d", "e"]])
        self.assertEqual([self.successResultOf(d) for d in ds], [2, 3, 4, 5, 6])
        self.assertEqual(self.committed(), ["first", "a", "b", "c", "d", "e"])

    def test_failed_call_runs_each_alone(self) -> None:
        """
        When the call for many raises, what it did is undone and each runs
        alone: only the one at fault fails.
        """
        self.writer.submit(insert, "first")
        a = self.writer.submit(insert_one, "a")
        bad = self.writer.submit(insert_one, "bad")
        c = self.writer.submit(insert_one, "c")
        self.pool.commit(0)
        self.pool.commit(1)
        self.assertEqual(many_calls, [["a", "bad", "c"]])
        self.successResultOf(a)
        self.assertEqual(self.failureResultOf(bad, ChatError).value.code, wire.NOT_FRIENDS)
        self.successResultOf(c)
        self.assertEqual(self.committed(), ["first", "a", "c"])

    def test_database_error_fails_group(self) -> None:
        """
        C{sqlite3.OperationalError} in the call for many fails the whole
        group, as in any job.
        """
        self.writer.submit(insert, "first")
        ds = [self.writer.submit(insert_one, value) for value in ("a", "locked")]
        self.pool.commit(0)
        self.pool.commit(1)
        for d in ds:
            self.failureResultOf(d, DatabaseUnavailable)
        self.assertEqual(self.committed(), ["first"])
        self.flushLoggedErrors(sqlite3.OperationalError)


# Group commit of a real store runs on PostgreSQL too.
on_postgresql(globals(), RealStoreTests)
