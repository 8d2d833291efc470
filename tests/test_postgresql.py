"""
The real C{twistd chatd} on PostgreSQL (C{--db postgresql://...}), in a
subprocess, against the tests' PostgreSQL server (L{tests.postgres}): what
one process serves survives a restart, a second process on the same
database is refused, and the operator's socket works.
"""

from __future__ import annotations

import os
import tempfile

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from chatd.database import DatabaseUnavailable, make_pool
from chatd.store import Store
from chatd.tap import Options
from chatd.wire import PRIVATE
from tests.chatd_process import spawn_chatd
from tests.postgres import SKIP, new_database
from tests.support import ImmediateReactor, logged_in, open_store
from tests.test_admin import chatd_admin
from tests.test_process import start_process


class PostgreSQLProcessTests(TestCase):
    """
    C{twistd chatd} on a PostgreSQL database.
    """

    timeout = 120
    skip = SKIP

    def setUp(self) -> None:
        self.db = new_database(self)
        self.folder = tempfile.mkdtemp(prefix="chatd-pg-")
        self.addCleanup(lambda: os.path.isdir(self.folder) and _remove(self.folder))
        self.admin = os.path.join(self.folder, "admin")
        self.options = ("--admin-socket", self.admin, "--files", os.path.join(self.folder, "files"))

    async def test_serves_and_survives_a_restart(self) -> None:
        """
        Accounts and messages are stored in PostgreSQL: after SIGTERM and a
        start on the same database, they are all there, and new message ids
        keep growing.
        """
        process, transport, port = await start_process(self, self.db, *self.options)
        ann = await logged_in(self, port, "ann")
        bob = await logged_in(self, port, "bob")
        room = (await ann.request("create_room", name="lobby"))["room"]["id"]
        await bob.request("join_room", name="lobby")
        sent = [
            (await ann.request("send_message", target_type=1, target_id=room, message=f"m{i}"))[
                "message"
            ]["id"]
            for i in range(5)
        ]
        transport.signalProcess("TERM")
        self.assertEqual(await process.ended, 0)

        process, transport, port = await start_process(self, self.db, *self.options)
        bob = await logged_in(self, port, "bob")
        page = await bob.request("history", target_type=1, target_id=room)
        self.assertEqual(
            [(m["id"], m["message"]) for m in page["messages"] if m["kind"] == "text"],
            [(message_id, f"m{i}") for i, message_id in enumerate(sent)],
        )
        newer = await bob.request("send_message", target_type=1, target_id=room, message="later")
        self.assertGreater(newer["message"]["id"], sent[-1])

    async def test_one_process_per_database(self) -> None:
        """
        A second chatd on a database one serves, without C{--redis}, ends
        at once, saying why: each would serve from a copy of the directory
        the other's writes make stale (L{tests.test_redis} runs two with).
        """
        await start_process(self, self.db, *self.options)
        other = tempfile.mkdtemp(prefix="chatd-pg-")
        self.addCleanup(_remove, other)
        second = spawn_chatd(
            self.db,
            "--admin-socket",
            os.path.join(other, "admin"),
            "--files",
            os.path.join(other, "files"),
        )
        timer = reactor.callLater(30, second.transport.signalProcess, "KILL")
        self.addCleanup(lambda: timer.active() and timer.cancel())
        with self.assertRaises(RuntimeError) as caught:
            await second.ready
        self.assertIn("another chatd is running on this database", str(caught.exception))
        await second.ended

    async def test_operator(self) -> None:
        """
        C{chatd-admin stats} tells the database's size from PostgreSQL;
        C{backup} is refused with a sentence naming pg_dump.
        """
        await start_process(self, self.db, *self.options)
        stats = await chatd_admin("--socket", self.admin, "stats")
        self.assertEqual(stats.code, 0, stats.err)
        self.assertRegex(stats.out, r"database\D+[1-9]")
        backup = await chatd_admin(
            "--socket", self.admin, "backup", os.path.join(self.folder, "copy")
        )
        self.assertEqual(backup.code, 1)
        self.assertIn("pg_dump", backup.err)


class CommitOrderTests(TestCase):
    """
    Message ids grow in commit order across every writer of a PostgreSQL
    database, so that C{history after} never misses a message committed
    later with a smaller id (PROTOCOL.md section 3).
    """

    skip = SKIP
    timeout = 60

    async def test_later_ids_commit_later(self) -> None:
        """
        While one writer (another process, here a connection of its own)
        holds a group commit open with a message in it, a second writer's
        message waits for the commit lock: it gets a larger id and commits
        only after the first, and reading C{after} the first message's id
        finds the second.  Without the lock the second would commit first,
        and a reader that saw it would page past the first one for good.
        """
        import psycopg

        from chatd.database import PostgreSQLCursor

        db = new_database(self)
        store = Store(make_pool(db, reactor, 1), make_pool(db, reactor, 2))
        self.addCleanup(store.close)
        await store.migrate()
        alice = await store.add_user("alice", "hash")
        bob = await store.add_user("bob", "hash")

        other = psycopg.connect(db, autocommit=True, cursor_factory=PostgreSQLCursor)
        self.addCleanup(other.close)
        cursor = other.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        cursor.execute(
            "INSERT INTO messages (sender_id, target_type, target_id, kind, body, created_at)"
            " VALUES (?, 0, ?, 'text', 'first', '2026-01-01T00:00:00.000Z') RETURNING id",
            (alice, bob),
        )
        (first_id,) = cursor.fetchone()
        second = store.add_message(bob, PRIVATE, alice, "second")
        # The second writer is blocked on the commit lock, not done.
        for _ in range(500):
            if second.called or await _waiting_for_the_commit_lock(db):
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertFalse(second.called, "the second writer committed first")
        cursor.execute("COMMIT")
        stored, _ = await second
        self.assertGreater(stored.id, first_id)
        page, _ = await store.private_history(alice, bob, None, first_id, 50)
        self.assertEqual([m.id for m in page], [stored.id])


async def _waiting_for_the_commit_lock(db: str) -> bool:
    """
    @return: whether a connection to C{db} waits for an advisory lock.
    """
    import psycopg

    def look() -> bool:
        with psycopg.connect(db, autocommit=True) as connection:
            row = connection.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()
            return bool(row and row[0])

    return await deferToThread(look)


class PostgreSQLGoneTests(SynchronousTestCase):
    """
    PostgreSQL dropping chatd's connections (a restart, an operator's
    pg_terminate_backend) fails what was running, as SQLite's database
    errors do, and the next requests work again.
    """

    skip = SKIP

    def test_connections_made_again(self) -> None:
        import psycopg

        db = new_database(self)
        store = open_store(self, ImmediateReactor(), db)
        self.successResultOf(store.add_user("ann", "hash"))
        with psycopg.connect(db, autocommit=True) as connection:
            connection.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        self.failureResultOf(store.add_user("bob", "hash"), DatabaseUnavailable)
        self.flushLoggedErrors()
        self.assertIsInstance(self.successResultOf(store.add_user("carol", "hash")), int)
        failed = store.credentials("ann")
        failed.addErrback(lambda failure: failure.trap(DatabaseUnavailable))
        self.assertEqual(self.successResultOf(store.credentials("ann")).username, "ann")


class PostgreSQLOptionsTests(SynchronousTestCase):
    """
    The command line with a PostgreSQL --db.
    """

    def test_needs_admin_socket_and_files(self) -> None:
        """
        With a PostgreSQL URL, --admin-socket and --files must be given:
        their defaults are named after a SQLite file.
        """
        for extra in ([], ["--admin-socket", "/tmp/a"], ["--files", "/tmp/f"]):
            options = Options()
            with self.assertRaises(Exception) as caught:
                options.parseOptions(["--db", "postgresql://chatd@127.0.0.1/x", *extra])
            self.assertIn("--admin-socket and --files", str(caught.exception))
        options = Options()
        options.parseOptions(
            ["--db", "postgresql://h/x", "--admin-socket", "/tmp/a", "--files", "/tmp/f"]
        )
        self.assertEqual(options["db"], "postgresql://h/x")


def _remove(folder: str) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
