"""
Hostile input and database trouble: the server keeps serving, answers every
request with a well-formed reply, and loses nothing it acknowledged.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from chatd import wire
from chatd.protocol import ChatProtocol, Limits
from tests.support import ServerHarness, connect, frame, received

PASSWORD = "secret1"
UNLIMITED = Limits(rate=1e9, burst=10**9)

# What a request may hold: the field names the server reads, with values of
# every JSON type, small integers most of all so that they hit real ids.
FIELDS = [
    "id",
    "target_type",
    "target_id",
    "message",
    "client_msg_id",
    "username",
    "password",
    "name",
    "room_id",
    "user_id",
    "accept",
    "before",
    "after",
    "limit",
    "query",
    "message_id",
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=0, max_value=6)
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["ncr", "lzy", "room1", "r%", "a_b", "'; DROP TABLE users; --", "hello"])
    | st.text(max_size=40)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def requests(types: list[str]) -> st.SearchStrategy[bytes]:
    """
    @return: frames' payloads: mostly requests of C{types} with random
        fields, some arbitrary JSON, some arbitrary bytes.
    """
    structured = st.builds(
        lambda kind, fields: json.dumps({"type": kind, **fields}).encode(),
        st.sampled_from([*types, "nope", ""]),
        st.dictionaries(st.sampled_from(FIELDS), values, max_size=6),
    )
    return structured | values.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=60)


class WholeRequestPathTests(SynchronousTestCase):
    """
    Random frames, valid and broken, against logged-in connections with a
    real store.
    """

    def setUp(self) -> None:
        self.harness = ServerHarness(self)
        # A friend and a room, so that random ids reach real rules.
        self.friend = self.harness.user("lzy")
        self.protocol, self.transport = self.login("ncr")
        self.harness.call(self.friend, "add_friend", username="ncr")
        self.harness.call(self.protocol, "resolve_friend_request", user_id=self.friend.user_id)
        self.harness.call(self.protocol, "create_room", name="room1")
        received(self.transport)

    def login(self, name: str) -> tuple[ChatProtocol, StringTransport]:
        protocol, transport = connect(self.harness.server, self.harness.reactor, UNLIMITED)
        protocol.dataReceived(
            frame({"type": "register", "username": name, "password": PASSWORD})
            + frame({"type": "login", "username": name, "password": PASSWORD})
        )
        return protocol, transport

    @settings(
        max_examples=400,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.data())
    def test_only_well_formed_replies(self, data: Any) -> None:
        """
        Whatever frames arrive, every reply is a JSON object with a type,
        every error carries a known code, and none is internal_error.
        """
        types = sorted(self.harness.server.routes)
        payloads = data.draw(st.lists(requests(types), min_size=1, max_size=8))
        for payload in payloads:
            if self.transport.disconnecting:
                # logout, or ten errors in a row: carry on as a new session.
                self.protocol.connectionLost(None)
                self.protocol, self.transport = self.login("ncr")
                received(self.transport)
            self.protocol.dataReceived(frame(payload))
            for reply in received(self.transport):
                self.assertIsInstance(reply.get("type"), str)
                if reply["type"] == "error":
                    self.assertIn(reply["code"], wire.MESSAGES)
                    self.assertNotEqual(reply["code"], wire.INTERNAL_ERROR, payload)

    def test_sql_looking_and_emoji_text_verbatim(self) -> None:
        """
        Text that looks like SQL, and 4000 emoji, are stored and returned
        exactly as sent.
        """
        texts = [
            "'; DROP TABLE messages; --",
            'Robert"); DELETE FROM users WHERE ("1"="1',
            "%_\\' OR 1=1 --",
            "\U0001f600" * 4000,
            "zero\u200bwidth and \r\n line ends\t",
        ]
        friend_id = self.friend.user_id
        for text in texts:
            self.protocol.dataReceived(
                frame(
                    {
                        "type": "send_message",
                        "target_type": 0,
                        "target_id": friend_id,
                        "message": text,
                    }
                )
            )
        self.protocol.dataReceived(
            frame({"type": "history", "target_type": 0, "target_id": friend_id})
        )
        replies = received(self.transport)
        self.assertEqual([r["message"]["message"] for r in replies[:-1]], texts)
        self.assertEqual([m["message"] for m in replies[-1]["messages"]], texts)


class DatabaseTroubleTests(SynchronousTestCase):
    """
    A locked, read-only or full database fails the requests it hits with
    internal_error, logs the cause once, keeps serving the rest, and recovers.
    """

    def setUp(self) -> None:
        self.path = self.mktemp() + ".sqlite3"
        self.harness = ServerHarness(self, self.path)
        self.ncr = self.harness.user("ncr")
        self.lzy = self.harness.user("lzy")
        self.harness.friends(self.ncr, self.lzy)
        self.protocol, self.transport = connect(self.harness.server, self.harness.reactor)
        self.protocol.dataReceived(
            frame({"type": "login", "username": "ncr", "password": PASSWORD})
        )
        received(self.transport)

    def send(self, text: str) -> wire.Payload:
        """
        @return: the reply to a private message from ncr to lzy.
        """
        self.protocol.dataReceived(
            frame(
                {
                    "type": "send_message",
                    "id": 7,
                    "target_type": 0,
                    "target_id": self.lzy.user_id,
                    "message": text,
                }
            )
        )
        [reply] = received(self.transport)
        return reply

    def writer_connection(self, statement: str) -> None:
        """
        Run C{statement} on the server's writing connection.
        """
        self.harness.testcase.successResultOf(
            self.harness.store._writer_pool.runWithConnection(lambda c: c.execute(statement))
        )

    def check_trouble_and_recovery(self, cause: type[Exception]) -> None:
        """
        While the trouble lasts, sends fail with internal_error (the cause
        logged once) and reads still work; C{self.recover()} ends it.
        """
        for _ in range(3):
            reply = self.send("\U0001f600" * 4000)
            self.assertEqual((reply["type"], reply["code"]), ("error", wire.INTERNAL_ERROR))
            self.assertNotIn("Traceback", reply["message"])
        self.assertEqual(len(self.flushLoggedErrors(cause)), 1)
        self.assertEqual(self.lzy.pushes("on_new_message"), [])
        self.protocol.dataReceived(
            frame({"type": "history", "id": 8, "target_type": 0, "target_id": self.lzy.user_id})
        )
        [page] = received(self.transport)
        self.assertEqual(page["messages"], [])
        self.recover()
        reply = self.send("after recovery")
        self.assertEqual(reply["type"], "on_new_message")
        self.assertEqual(self.lzy.pushes("on_new_message")[0]["message"], reply["message"])
        history = self.harness.call(self.lzy, "history", target_type=0, target_id=self.ncr.user_id)
        self.assertEqual([m["message"] for m in history["messages"]], ["after recovery"])

    def test_locked(self) -> None:
        """
        Another process holding the write lock past the busy timeout.
        """
        self.harness.store._writer_pool.runWithConnection(
            lambda c: c.execute("PRAGMA busy_timeout = 10")
        )
        blocker = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(blocker.close)
        blocker.execute("BEGIN IMMEDIATE")
        self.recover = lambda: blocker.execute("ROLLBACK")
        self.check_trouble_and_recovery(sqlite3.OperationalError)

    def test_read_only(self) -> None:
        """
        A database that refuses writes.
        """
        self.writer_connection("PRAGMA query_only = ON")
        self.recover = lambda: self.writer_connection("PRAGMA query_only = OFF")
        self.check_trouble_and_recovery(sqlite3.OperationalError)

    def test_disk_full(self) -> None:
        """
        A full disk (the database may not grow by a page).
        """
        pages = sqlite3.connect(self.path).execute("PRAGMA page_count").fetchone()[0]
        self.writer_connection(f"PRAGMA max_page_count = {pages}")
        self.recover = lambda: self.writer_connection("PRAGMA max_page_count = 1000000")
        self.check_trouble_and_recovery(sqlite3.OperationalError)
