"""
Tests for L{chatd.admin}'s L{Operator} and L{AdminProtocol} on a server
made of real parts, run synchronously (L{ServerHarness}): what each command
does to sessions, logins and the throttle, including logins that are on
their way when the operator acts.  The command-line tool against a real
running server is L{tests.test_admin}.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from chatd import wire
from chatd.admin import AdminError, AdminFactory, Operator
from tests.postgres import on_postgresql
from tests.support import FakeSession, ServerHarness


class OperatorTests(SynchronousTestCase):
    """
    The commands that act on accounts, against a harnessed server.
    """

    def setUp(self) -> None:
        self.harness = ServerHarness(self)
        self.operator = Operator(self.harness.assembly, self.mktemp(), self.harness.reactor)
        self.alice = self.harness.user("alice")
        self.bob = self.harness.user("bob")
        self.harness.friends(self.alice, self.bob)

    def run_command(self, command: str, **fields: Any) -> Any:
        return self.successResultOf(Deferred.fromCoroutine(self.operator.commands[command](fields)))

    def refused(self, command: str, **fields: Any) -> str:
        d = Deferred.fromCoroutine(self.operator.commands[command](fields))
        return str(self.failureResultOf(d, AdminError).value)

    def log_in(self, name: str, password: str = "secret1") -> str:
        """
        @return: C{ok}, or the error code of a login on a new session.
        """
        try:
            self.harness.call(FakeSession(), "login", username=name, password=password)
        except wire.ChatError as e:
            return e.code
        return "ok"

    def test_disable_kicks_and_refuses(self) -> None:
        """
        Disabling kicks the session with C{account_disabled}; then the right
        password gets C{account_disabled}, a wrong one C{login_failed}.
        Disabling again changes nothing; enabling lets the password in.
        """
        self.assertEqual(self.run_command("disable", name="ALICE"), {"changed": True})
        self.assertEqual(self.alice.kicked, wire.ACCOUNT_DISABLED)
        self.assertEqual(self.log_in("alice"), wire.ACCOUNT_DISABLED)
        self.assertEqual(self.log_in("alice", "wrong-one"), wire.LOGIN_FAILED)
        self.assertEqual(self.run_command("disable", name="alice"), {"changed": False})
        self.assertEqual(self.run_command("enable", name="alice"), {"changed": True})
        self.assertEqual(self.run_command("enable", name="alice"), {"changed": False})
        self.assertEqual(self.log_in("alice"), "ok")

    def test_disable_while_logging_in(self) -> None:
        """
        A login whose token is being stored when the operator disables the
        account is refused with C{account_disabled}, and not logged in.
        """
        stored: Deferred[None] = Deferred()
        self.patch(self.harness.store, "add_token", lambda user_id, token_hash: stored)
        session = FakeSession()
        login = self.harness.server.dispatch(
            session, {"type": "login", "username": "bob", "password": "secret1"}
        )
        self.run_command("disable", name="bob")
        stored.callback(None)
        self.assertEqual(self.failureResultOf(login, wire.ChatError).value.code, "account_disabled")
        self.assertIsNone(session.user_id)

    def test_reset_password(self) -> None:
        """
        A reset gives a random password that logs in, refuses the old one,
        kicks the session with C{password_changed}, and lifts the throttle;
        a chosen password must follow the rules.
        """
        for _ in range(5):
            self.assertEqual(self.log_in("alice", "wrong-one"), wire.LOGIN_FAILED)
        self.assertEqual(self.log_in("alice"), wire.RATE_LIMITED)
        password = self.run_command("reset-password", name="alice")["password"]
        self.assertGreaterEqual(len(password), 16)
        self.assertEqual(self.alice.kicked, wire.PASSWORD_CHANGED)
        self.assertEqual(self.log_in("alice"), wire.LOGIN_FAILED)
        self.assertEqual(self.log_in("alice", password), "ok")
        self.assertEqual(
            self.run_command("reset-password", name="bob", password="chosen-one"),
            {"password": None},
        )
        self.assertEqual(self.log_in("bob", "chosen-one"), "ok")
        self.assertEqual(
            self.refused("reset-password", name="bob", password="short"),
            wire.MESSAGES[wire.INVALID_PASSWORD],
        )
        self.assertEqual(self.log_in("bob", "chosen-one"), "ok")

    def test_unlock(self) -> None:
        """
        Unlocking lifts the failed-login throttle at once, and says whether
        there was one.
        """
        self.assertEqual(self.run_command("unlock", name="bob"), {"changed": False})
        for _ in range(5):
            self.log_in("bob", "wrong-one")
        self.assertEqual(self.log_in("bob"), wire.RATE_LIMITED)
        self.assertEqual(self.run_command("unlock", name="Bob"), {"changed": True})
        self.assertEqual(self.log_in("bob"), "ok")

    def test_users_online_and_last_seen(self) -> None:
        """
        The list shows who is online; a user whose session ended was last
        seen then.
        """
        users = self.run_command("users")
        self.assertEqual(
            [(u["name"], u["online"], u["last_seen"], u["disabled"]) for u in users],
            [("alice", True, None, False), ("bob", True, None, False)],
        )
        self.harness.server.disconnected(self.bob)
        (bob,) = self.run_command("users", query="OB")
        self.assertFalse(bob["online"])
        self.assertIsNotNone(bob["last_seen"])

    def test_no_such_user(self) -> None:
        """
        Every command on an account names the user it did not find.
        """
        for command in ("disable", "enable", "reset-password", "unlock", "export"):
            self.assertEqual(
                self.refused(command, name="zed", dest="/x.json"), "There is no user called zed."
            )

    def test_destination_must_be_absolute(self) -> None:
        """
        A backup or export to a relative path is refused: it would be
        relative to the server's directory, not the operator's.
        """
        self.assertIn("absolute", self.refused("backup", dest="copy.sqlite3"))
        self.assertIn("absolute", self.refused("export", name="alice", dest="a.json"))


class AdminProtocolTests(SynchronousTestCase):
    """
    The control socket's framing and its answers to bad requests.
    """

    def setUp(self) -> None:
        harness = ServerHarness(self)
        harness.user("alice")
        operator = Operator(harness.assembly, self.mktemp(), harness.reactor)
        self.protocol = AdminFactory(operator).buildProtocol(None)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def ask(self, payload: bytes) -> Any:
        self.protocol.dataReceived(struct.pack("!I", len(payload)) + payload)
        data = self.transport.value()
        self.transport.clear()
        (length,) = struct.unpack("!I", data[:4])
        self.assertEqual(len(data), 4 + length)
        return json.loads(data[4:])

    def test_answers(self) -> None:
        """
        A command is answered with its result; a frame that is not a JSON
        object, or an unknown command, with a sentence.  The connection
        stays open throughout.
        """
        (alice,) = self.ask(json.dumps({"command": "users"}).encode())["result"]
        self.assertEqual(alice["name"], "alice")
        self.assertEqual(
            self.ask(b"not json"), {"ok": False, "error": "A request is a JSON object."}
        )
        self.assertEqual(self.ask(b"[1]"), {"ok": False, "error": "A request is a JSON object."})
        self.assertEqual(
            self.ask(b'{"command": "drop"}'), {"ok": False, "error": "Unknown command 'drop'."}
        )
        self.assertEqual(
            self.ask(b'{"command": "disable", "name": 3}'),
            {"ok": False, "error": "The request needs a text 'name'."},
        )
        self.assertFalse(self.transport.disconnecting)


# These suites run on PostgreSQL too.
on_postgresql(
    globals(),
    OperatorTests,
    AdminProtocolTests,
)
