"""
End to end for PROTOCOL.md section 15: the installed C{chatd-admin}
console script, run as a real subprocess, against the real C{twistd chatd}
(L{tests.chatd_process}) on a real SQLite file, with users registered over
the wire by bare clients (L{tests.support.WireClient}).

Each test starts its own server (about half a second with
C{--insecure-fast-hashes}), so that no test depends on another.  The
database lives in a short temporary directory rather than trial's: the
control socket is C{<db>.admin}, and a UNIX socket's path must fit in 107
bytes, which trial's nested temporary paths do not always do.

Nothing here waits for time to pass.  Where a test needs a write of the
server committed before it looks (a user's "last seen", written when their
session ends), it uses the writer's order: jobs commit in submission order
(L{chatd.writer}), so once a message sent after that write is
acknowledged, the write is committed too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import stat
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.chatd_process import ServerProcess, spawn_chatd
from tests.support import WireClient, wire_client
from tests.test_e2e import befriend
from tests.test_process import start_process

#: The installed console script beside this Python: running it proves the
#: install (its entry point, its copy of chatd).
CHATD_ADMIN = os.path.join(os.path.dirname(sys.executable), "chatd-admin")

PASSWORD = "secret1"
WRONG = "not-the-password"

#: The columns of C{chatd-admin users}.
HEADER = ["ID", "NAME", "CREATED", "LAST SEEN", "ONLINE", "DISABLED"]

#: A stamp of the users table: UTC, to the minute.
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\dZ"

#: One row of the users table.
ROW = re.compile(
    rf"^(?P<id>\d+)\s+(?P<name>\w+)\s+(?P<created>{STAMP})\s+"
    rf"(?P<last_seen>never|now|{STAMP})\s+(?P<online>yes|no)\s+(?P<disabled>yes|no)$"
)

#: What reset-password prints when it chose the password.
NEW_PASSWORD = re.compile(r"^New password of (\w+) \(shown once\): (\S+)$")

#: The failed logins after which a name is throttled (PROTOCOL.md 8).
THROTTLE_LIMIT = 5


def minute(moment: float) -> str:
    """
    @return: the wall-clock C{moment} as the users table shows it.
    """
    return time.strftime("%Y-%m-%d %H:%MZ", time.gmtime(moment))


def short_directory(testcase: TestCase) -> str:
    """
    @return: a new directory with a short path, removed when the test ends.
    """
    path = tempfile.mkdtemp(prefix="chatd-admin-")
    testcase.addCleanup(shutil.rmtree, path, True)
    return path


def temporary_files(directory: str) -> list[str]:
    """
    @return: the temporary files a backup or an export left in
        C{directory} (L{chatd.admin} writes under a C{.chatd-} name first).
    """
    return [name for name in os.listdir(directory) if name.startswith(".chatd-")]


@dataclass
class Outcome:
    """
    How a run of C{chatd-admin} ended.

    @ivar code: its exit status.
    @ivar out: its standard output.
    @ivar err: its standard error.
    """

    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        """
        The lines of its standard output.
        """
        return self.out.splitlines()


class _FedProcess(ProcessProtocol):
    """
    A process given C{stdin} on its standard input, then end of file.
    """

    def __init__(self, stdin: bytes) -> None:
        self._stdin = stdin
        self._out = b""
        self._err = b""
        self.done: Deferred[Outcome] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self._stdin)  # type: ignore[union-attr]
        self.transport.closeStdin()  # type: ignore[union-attr]

    def outReceived(self, data: bytes) -> None:
        self._out += data

    def errReceived(self, data: bytes) -> None:
        self._err += data

    def processEnded(self, reason: Failure) -> None:
        code = reason.value.exitCode  # type: ignore[union-attr]
        self.done.callback(Outcome(code, self._out.decode(), self._err.decode()))


async def chatd_admin(*args: str, stdin: bytes | None = None, cwd: str | None = None) -> Outcome:
    """
    Run the installed C{chatd-admin} with C{args}.

    @param stdin: what it reads on its standard input; by default nothing.
    @param cwd: its working directory; by default ours.
    """
    if stdin is None:
        out, err, code = await getProcessOutputAndValue(CHATD_ADMIN, args, env=os.environ, path=cwd)
        return Outcome(code, out.decode(), err.decode())
    process = _FedProcess(stdin)
    reactor.spawnProcess(process, CHATD_ADMIN, [CHATD_ADMIN, *args], env=os.environ, path=cwd)
    return await process.done


class RawAdmin(Int32StringReceiver):
    """
    A bare client of the control socket: it sends frames as they are given
    and queues the replies.
    """

    def __init__(self) -> None:
        self.replies: DeferredQueue[dict[str, Any]] = DeferredQueue()
        self.lost: Deferred[None] = Deferred()

    def stringReceived(self, data: bytes) -> None:
        self.replies.put(json.loads(data))

    def connectionLost(self, reason: Any = None) -> None:
        self.lost.callback(None)

    async def ask(self, payload: bytes) -> dict[str, Any]:
        """
        Send one frame and wait for the next reply.
        """
        self.sendString(payload)
        return await self.replies.get()


async def raw_admin(testcase: TestCase, path: str) -> RawAdmin:
    """
    @return: a L{RawAdmin} connected to the control socket at C{path},
        closed when the test ends.
    """
    client = RawAdmin()
    await connectProtocol(UNIXClientEndpoint(reactor, path), client)

    async def close() -> None:
        if not client.lost.called:
            client.transport.loseConnection()  # type: ignore[union-attr]
            await client.lost

    testcase.addCleanup(lambda: Deferred.fromCoroutine(close()))
    return client


class MessageStream:
    """
    Keeps C{window} room messages of one client unacknowledged at a time
    until stopped, recording the C{client_msg_id} of each acknowledged one
    in order.
    """

    def __init__(self, client: WireClient, room_id: int, window: int = 8) -> None:
        self._client = client
        self._room_id = room_id
        self._window = window
        self._sent = 0
        self._in_flight = 0
        self._stopping = False
        self._drained: Deferred[None] = Deferred()
        self._waiting: list[tuple[int, Deferred[None]]] = []
        self.acked: list[str] = []
        self.problems: list[Any] = []

    def start(self) -> None:
        """
        Send the first C{window} messages.
        """
        for _ in range(self._window):
            self._send()

    def _send(self) -> None:
        self._sent += 1
        cid = f"stream-{self._sent}"
        self._in_flight += 1
        d = self._client.request(
            "send_message",
            target_type=1,
            target_id=self._room_id,
            message=f"stream message {cid}",
            client_msg_id=cid,
        )
        d.addCallbacks(self._acknowledged, self._lost, callbackArgs=(cid,))

    def _acknowledged(self, reply: dict[str, Any], cid: str) -> None:
        self._in_flight -= 1
        if reply["type"] == "on_new_message":
            self.acked.append(cid)
        else:
            self.problems.append(reply)
        for entry in list(self._waiting):
            if len(self.acked) >= entry[0]:
                self._waiting.remove(entry)
                entry[1].callback(None)
        if self._stopping or self.problems:
            if self._in_flight == 0 and not self._drained.called:
                self._drained.callback(None)
        else:
            self._send()

    def _lost(self, failure: Failure) -> None:
        self._in_flight -= 1
        self.problems.append(failure)
        if self._in_flight == 0 and not self._drained.called:
            self._drained.callback(None)

    def acknowledged(self, count: int) -> Deferred[None]:
        """
        @return: fires once C{count} messages are acknowledged.
        """
        d: Deferred[None] = Deferred()
        if len(self.acked) >= count:
            d.callback(None)
        else:
            self._waiting.append((count, d))
        return d

    async def stop(self) -> None:
        """
        Send no more, and wait for the replies of those in flight.
        """
        self._stopping = True
        if self._in_flight:
            await self._drained


class AdminCase(TestCase):
    """
    A real C{twistd chatd} per test on a new database, and the helpers to
    drive it over the wire and with C{chatd-admin}.

    @ivar db: its database.
    @ivar socket: its control socket.
    @ivar process: the server process.
    @ivar port: its chat port.
    """

    timeout = 60

    def server_options(self) -> tuple[str, ...]:
        """
        @return: the options the server starts with besides the usual.
        """
        return ()

    async def setUp(self) -> None:  # type: ignore[override]
        self.dir = short_directory(self)
        self.db = os.path.join(self.dir, "chat.db")
        self.socket = self.db + ".admin"
        await self.start_server()

    async def start_server(self) -> None:
        """
        Start the server on C{self.db} (again, after a crash).
        """
        self.process, self.transport, self.port = await start_process(
            self, self.db, "--insecure-fast-hashes", *self.server_options()
        )

    # chatd-admin

    async def admin(self, *args: str, stdin: bytes | None = None) -> Outcome:
        """
        Run C{chatd-admin --db <db>} with C{args}.
        """
        return await chatd_admin("--db", self.db, *args, stdin=stdin)

    async def admin_ok(self, *args: str, stdin: bytes | None = None) -> list[str]:
        """
        Run C{chatd-admin} and check that it succeeded silently on stderr.

        @return: the lines it printed.
        """
        outcome = await self.admin(*args, stdin=stdin)
        self.assertEqual((outcome.code, outcome.err), (0, ""), (args, outcome))
        return outcome.lines

    async def admin_fails(self, *args: str, stdin: bytes | None = None) -> str:
        """
        Run C{chatd-admin} and check that it failed with exit status 1, one
        line on stderr and nothing on stdout.

        @return: its sentence, without the C{chatd-admin: } before it.
        """
        outcome = await self.admin(*args, stdin=stdin)
        return self.assertFailed(outcome)

    def assertFailed(self, outcome: Outcome) -> str:
        """
        Check that C{outcome} is a failure: exit status 1, nothing on
        stdout, one C{chatd-admin: } line on stderr.

        @return: its sentence.
        """
        self.assertEqual(outcome.code, 1, outcome)
        self.assertEqual(outcome.out, "", outcome)
        self.assertTrue(outcome.err.startswith("chatd-admin: "), outcome)
        self.assertEqual(outcome.err.count("\n"), 1, outcome)
        return outcome.err[len("chatd-admin: ") :].rstrip("\n")

    async def users(self, *args: str) -> dict[str, dict[str, str]]:
        """
        @return: the rows of C{chatd-admin users}, by name.
        """
        lines = await self.admin_ok("users", *args)
        self.assertEqual(re.split(r"\s{2,}", lines[0]), HEADER)
        rows = {}
        for line in lines[1:]:
            match = ROW.match(line)
            self.assertIsNotNone(match, f"not a row of the users table: {line!r}")
            assert match is not None
            rows[match["name"]] = match.groupdict()
        return rows

    async def stats(self) -> dict[str, str]:
        """
        @return: what C{chatd-admin stats} printed, by label.
        """
        lines = await self.admin_ok("stats")
        found = {}
        for line in lines:
            label, _, value = line.partition(":")
            found[label] = value.strip()
        return found

    # The chat protocol

    async def connect(self) -> WireClient:
        """
        @return: a new connection to the server, closed when the test ends.
        """
        return await wire_client(self, self.port)

    async def register(self, name: str, password: str = PASSWORD) -> int:
        """
        Register C{name} on a connection of its own, closed at once.

        @return: their user id.
        """
        client = await self.connect()
        reply = await client.request("register", username=name, password=password)
        self.assertEqual(reply["type"], "register_successful", reply)
        await client.close()
        user_id: int = reply["user"]["id"]
        return user_id

    async def log_in(
        self, name: str, password: str = PASSWORD, *, register: bool = True
    ) -> tuple[WireClient, int, str]:
        """
        @return: a new connection logged in as C{name} (registered first,
            unless told otherwise), their user id and the session's token.
        """
        client = await self.connect()
        if register:
            reply = await client.request("register", username=name, password=password)
            self.assertEqual(reply["type"], "register_successful", reply)
        reply = await client.request("login", username=name, password=password)
        self.assertEqual(reply["type"], "login_successful", reply)
        await client.push("login_info")
        return client, reply["user"]["id"], reply["token"]

    async def refused(self, client: WireClient, code: str, kind: str, **fields: Any) -> None:
        """
        Check that a request gets C{error} C{code}, then ping, so that
        expected errors never pile up to the 10 in a row that close a
        connection (PROTOCOL.md 2).
        """
        reply = await client.request(kind, **fields)
        self.assertEqual((reply["type"], reply.get("code")), ("error", code), (kind, reply))
        pong = await client.request("ping")
        self.assertEqual(pong["type"], "pong", pong)

    async def login_refused(self, name: str, password: str, code: str) -> None:
        """
        Check that a login as C{name} on a new connection gets C{code}.
        """
        client = await self.connect()
        await self.refused(client, code, "login", username=name, password=password)
        await client.close()

    async def resume_refused(self, token: str, code: str) -> None:
        """
        Check that a resume with C{token} on a new connection gets C{code}.
        """
        client = await self.connect()
        await self.refused(client, code, "resume", token=token)
        await client.close()

    async def login_works(self, name: str, password: str = PASSWORD) -> None:
        """
        Check that C{name} logs in with C{password} on a new connection.
        """
        client, _, _ = await self.log_in(name, password, register=False)
        await client.close()

    async def throttle(self, name: str) -> None:
        """
        Fail enough logins as C{name} that the next one is throttled, and
        check that it is, even with the right password.
        """
        client = await self.connect()
        for _ in range(THROTTLE_LIMIT):
            await self.refused(client, "login_failed", "login", username=name, password=WRONG)
        await self.refused(client, "rate_limited", "login", username=name, password=PASSWORD)
        await client.close()

    async def kicked(self, client: WireClient, reason: str) -> None:
        """
        Check that C{client} was kicked with C{reason} and closed.
        """
        kick = await client.push("server_kick")
        self.assertEqual(kick["reason"], reason, kick)
        await client.lost

    async def create_room(self, client: WireClient, name: str) -> int:
        """
        @return: the id of a new room called C{name}, created by C{client}.
        """
        reply = await client.request("create_room", name=name)
        self.assertEqual(reply["type"], "create_successful", reply)
        room_id: int = reply["room"]["id"]
        return room_id

    async def say(self, client: WireClient, target_type: int, target_id: int, text: str) -> int:
        """
        Send a message and wait for its acknowledgement.

        @return: its id.
        """
        reply = await client.request(
            "send_message", target_type=target_type, target_id=target_id, message=text
        )
        self.assertEqual(reply["type"], "on_new_message", reply)
        message_id: int = reply["message"]["id"]
        return message_id


class UsersTests(AdminCase):
    """
    C{chatd-admin users} lists the accounts.
    """

    async def test_table(self) -> None:
        """
        The table has a row per account with its id, name, creation time,
        when it was last seen (now for one online, never for one that never
        logged in, a time for one logged out), and whether it is online and
        disabled.
        """
        before = time.time()
        ann, ann_id, _ = await self.log_in("Ann")
        bob, bob_id, _ = await self.log_in("bob")
        cat_id = await self.register("cat")
        await befriend(ann, bob, "bob")
        room = await self.create_room(ann, "lobby")
        logged_out = time.time()
        reply = await bob.request("logout")
        self.assertEqual(reply["type"], "logout_successful", reply)
        await bob.lost
        offline = await ann.push("friend_on_off_line")
        self.assertEqual((offline["user_id"], offline["online"]), (bob_id, False))
        # Submitted after bob's "last seen": acknowledged once that is committed.
        await self.say(ann, 1, room, "barrier")
        after = time.time()

        rows = await self.users()
        self.assertEqual(list(rows), ["Ann", "bob", "cat"])
        self.assertEqual(
            [(r["id"], r["online"], r["disabled"]) for r in rows.values()],
            [(str(ann_id), "yes", "no"), (str(bob_id), "no", "no"), (str(cat_id), "no", "no")],
        )
        for row in rows.values():
            self.assertTrue(minute(before) <= row["created"] <= minute(after), row)
        self.assertEqual(rows["Ann"]["last_seen"], "now")
        self.assertEqual(rows["cat"]["last_seen"], "never")
        self.assertTrue(minute(logged_out) <= rows["bob"]["last_seen"] <= minute(after), rows)

    async def test_query(self) -> None:
        """
        C{--query} keeps the names that contain its text, in any case.
        """
        for name in ("Ann", "joanna", "bob", "ANNIE"):
            await self.register(name)
        rows = await self.users("--query", "aNn")
        self.assertEqual(list(rows), ["Ann", "joanna", "ANNIE"])
        rows = await self.users("--query", "BOB")
        self.assertEqual(list(rows), ["bob"])

    async def test_no_match(self) -> None:
        """
        A query that matches nobody, like an empty server, says so and
        succeeds.
        """
        self.assertEqual(await self.admin_ok("users"), ["No such users."])
        await self.register("ann")
        self.assertEqual(await self.admin_ok("users", "--query", "zed"), ["No such users."])


class DisableTests(AdminCase):
    """
    C{chatd-admin disable} and C{enable}.
    """

    async def test_disable(self) -> None:
        """
        Disabling an online user kicks their session with
        C{account_disabled} and closes it, their friends see them go
        offline, and then a login with the right password or a resume with
        their token gets C{account_disabled} while a wrong password still
        gets C{login_failed}.
        """
        ann, _, _ = await self.log_in("ann")
        bob, bob_id, token = await self.log_in("bob")
        await befriend(ann, bob, "bob")

        self.assertEqual(
            await self.admin_ok("disable", "bob"), ["Disabled bob; their session is ended."]
        )
        await self.kicked(bob, "account_disabled")
        offline = await ann.push("friend_on_off_line")
        self.assertEqual(
            offline,
            {"type": "friend_on_off_line", "user_id": bob_id, "username": "bob", "online": False},
        )
        await self.login_refused("bob", PASSWORD, "account_disabled")
        await self.login_refused("bob", WRONG, "login_failed")
        await self.resume_refused(token, "account_disabled")

        rows = await self.users("--query", "bob")
        self.assertEqual((rows["bob"]["online"], rows["bob"]["disabled"]), ("no", "yes"))

    async def test_disable_twice(self) -> None:
        """
        Disabling a disabled account says it already was, and succeeds.
        """
        await self.register("bob")
        await self.admin_ok("disable", "bob")
        self.assertEqual(await self.admin_ok("disable", "BOB"), ["BOB was already disabled."])
        rows = await self.users()
        self.assertEqual(rows["bob"]["disabled"], "yes")

    async def test_enable(self) -> None:
        """
        An enabled account logs in with its password again; the tokens it
        had before it was disabled now get C{invalid_token}.
        """
        bob, _, token = await self.log_in("bob")
        await self.admin_ok("disable", "bob")
        await self.kicked(bob, "account_disabled")
        self.assertEqual(
            await self.admin_ok("enable", "bob"),
            ["Enabled bob; they log in with their password."],
        )
        await self.resume_refused(token, "invalid_token")
        await self.login_works("bob")
        rows = await self.users()
        self.assertEqual(rows["bob"]["disabled"], "no")

    async def test_enable_not_disabled(self) -> None:
        """
        Enabling an account that is not disabled says so, succeeds, and
        leaves its tokens working.
        """
        bob, _, token = await self.log_in("bob")
        await bob.close()
        self.assertEqual(await self.admin_ok("enable", "bob"), ["bob was not disabled."])
        client = await self.connect()
        reply = await client.request("resume", token=token)
        self.assertEqual(reply["type"], "login_successful", reply)


class ResetPasswordTests(AdminCase):
    """
    C{chatd-admin reset-password}.
    """

    async def test_random_password(self) -> None:
        """
        Without C{--password-stdin} it prints a new password, once; that
        password logs in, the old one gets C{login_failed}, every older
        token C{invalid_token}, and the online session was kicked with
        C{password_changed}.
        """
        first, _, first_token = await self.log_in("bob")
        second, _, second_token = await self.log_in("bob", register=False)
        await self.kicked(first, "logged_in_elsewhere")

        outcome = await self.admin("reset-password", "bob")
        self.assertEqual((outcome.code, outcome.err), (0, ""), outcome)
        self.assertEqual(len(outcome.lines), 2, outcome)
        match = NEW_PASSWORD.match(outcome.lines[0])
        self.assertIsNotNone(match, outcome)
        assert match is not None
        self.assertEqual(match[1], "bob")
        password = match[2]
        self.assertGreaterEqual(len(password), 16)
        self.assertEqual(outcome.out.count(password), 1)
        self.assertEqual(outcome.lines[1], "Their sessions are ended.")

        await self.kicked(second, "password_changed")
        await self.resume_refused(first_token, "invalid_token")
        await self.resume_refused(second_token, "invalid_token")
        await self.login_refused("bob", PASSWORD, "login_failed")
        await self.login_works("bob", password)

    async def test_password_stdin(self) -> None:
        """
        With C{--password-stdin} the new password is the first line of
        standard input, and it is not printed.
        """
        bob, _, token = await self.log_in("bob")
        lines = await self.admin_ok(
            "reset-password", "bob", "--password-stdin", stdin=b"chosen-pw 1\nignored\n"
        )
        self.assertEqual(lines, ["Set the new password of bob; their sessions are ended."])
        await self.kicked(bob, "password_changed")
        await self.resume_refused(token, "invalid_token")
        await self.login_refused("bob", PASSWORD, "login_failed")
        await self.login_works("bob", "chosen-pw 1")

    async def test_password_stdin_too_short(self) -> None:
        """
        A password from standard input that is too short fails and changes
        nothing: the session stays on, the token and the old password work.
        """
        bob, _, token = await self.log_in("bob")
        message = await self.admin_fails(
            "reset-password", "bob", "--password-stdin", stdin=b"abc\n"
        )
        self.assertEqual(message, "A password is 6-128 characters, not all whitespace.")
        pong = await bob.request("ping")
        self.assertEqual(pong["type"], "pong", pong)
        await self.login_works("bob")  # which replaces bob's session
        await self.kicked(bob, "logged_in_elsewhere")
        client = await self.connect()
        reply = await client.request("resume", token=token)
        self.assertEqual(reply["type"], "login_successful", reply)

    async def test_lifts_throttle(self) -> None:
        """
        A reset lifts the failed-login throttle: the new password logs in
        at once.
        """
        await self.register("bob")
        await self.throttle("bob")
        await self.admin_ok("reset-password", "bob", "--password-stdin", stdin=b"fresh-pw\n")
        await self.login_works("bob", "fresh-pw")


class UnlockTests(AdminCase):
    """
    C{chatd-admin unlock}.
    """

    async def test_unlock(self) -> None:
        """
        After 5 failed logins the next is C{rate_limited}, even with the
        right password; once unlocked, the right password logs in at once.
        """
        await self.register("bob")
        await self.throttle("bob")
        self.assertEqual(
            await self.admin_ok("unlock", "bob"),
            ["Unlocked bob: they may try to log in again."],
        )
        await self.login_works("bob")

    async def test_not_locked(self) -> None:
        """
        Unlocking an account that is not locked out says so and succeeds.
        """
        await self.register("bob")
        await self.login_refused("bob", WRONG, "login_failed")
        self.assertEqual(await self.admin_ok("unlock", "bob"), ["bob was not locked out."])
        await self.login_works("bob")


class StatsTests(AdminCase):
    """
    C{chatd-admin stats}.
    """

    async def test_stats(self) -> None:
        """
        It counts the users, rooms and messages stored, the users online
        and the connections open, and shows the database's size and the
        uptime.
        """
        ann, _, _ = await self.log_in("ann")
        bob, _, _ = await self.log_in("bob")
        stranger = await self.connect()
        reply = await stranger.request("register", username="cat", password=PASSWORD)
        self.assertEqual(reply["type"], "register_successful", reply)
        lobby = await self.create_room(ann, "lobby")  # 1 system message
        await self.create_room(bob, "den")  # 1 system message
        reply = await bob.request("join_room", name="lobby")  # 1 system message
        self.assertEqual(reply["type"], "join_successful", reply)
        for text in ("one", "two", "three"):
            await self.say(ann, 1, lobby, text)

        stats = await self.stats()
        self.assertEqual(
            list(stats),
            ["users", "rooms", "messages", "online now", "database", "files", "uptime"],
        )
        self.assertEqual(stats["users"], "3")
        self.assertEqual(stats["rooms"], "2")
        self.assertEqual(stats["messages"], "6")
        self.assertEqual(stats["online now"], "2 (3 connections)")
        size = re.fullmatch(r"(\d+(?:\.\d)?) (bytes|KiB|MiB|GiB)", stats["database"])
        self.assertIsNotNone(size, stats)
        assert size is not None
        self.assertGreater(float(size[1]), 0)
        self.assertEqual(stats["files"], "0 bytes")
        self.assertRegex(stats["uptime"], r"^(\d+d )?\d+h \d+m$")


class BackupTests(AdminCase):
    """
    C{chatd-admin backup}.
    """

    timeout = 120

    async def test_backup_while_streaming(self) -> None:
        """
        A backup taken while a client keeps 8 messages in flight is a sound
        SQLite file of its own (not in WAL mode, mode 0600) holding every
        message acknowledged before the command started, and messages kept
        being acknowledged while it ran.
        """
        ann, ann_id, _ = await self.log_in("ann")
        room = await self.create_room(ann, "stream")
        stream = MessageStream(ann, room, window=8)
        stream.start()
        await stream.acknowledged(50)
        before = list(stream.acked)
        dest = os.path.join(self.dir, "backup.db")
        outcome = await self.admin("backup", dest)
        during = len(stream.acked) - len(before)
        await stream.stop()
        self.assertEqual(stream.problems, [])

        self.assertEqual((outcome.code, outcome.err), (0, ""), outcome)
        self.assertRegex(
            outcome.out,
            rf"^Backed the database up to {re.escape(dest)} \(\d+(\.\d)? (bytes|KiB|MiB)\)\.\n$",
        )
        self.assertGreater(during, 0, "no message was acknowledged while the backup ran")
        self.assertEqual(stat.S_IMODE(os.stat(dest).st_mode), 0o600)
        self.assertFalse(os.path.exists(dest + "-wal"))
        self.assertEqual(temporary_files(self.dir), [])
        copy = sqlite3.connect(f"file:{dest}?mode=ro", uri=True)
        try:
            self.assertEqual(copy.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
            self.assertEqual(copy.execute("PRAGMA journal_mode").fetchone(), ("delete",))
            stored = {
                row[0]
                for row in copy.execute(
                    "SELECT client_msg_id FROM messages WHERE sender_id = ?", (ann_id,)
                )
            }
            (users,) = copy.execute("SELECT count(*) FROM users").fetchone()
        finally:
            copy.close()
        self.assertEqual(set(before) - stored, set(), "an acknowledged message is missing")
        self.assertEqual(users, 1)

    async def test_relative_destination(self) -> None:
        """
        A relative destination is taken from chatd-admin's working
        directory.
        """
        await self.register("ann")
        outcome = await chatd_admin("--db", self.db, "backup", "copy.db", cwd=self.dir)
        self.assertEqual((outcome.code, outcome.err), (0, ""), outcome)
        copy = sqlite3.connect(f"file:{os.path.join(self.dir, 'copy.db')}?mode=ro", uri=True)
        try:
            self.assertEqual(copy.execute("SELECT username FROM users").fetchall(), [("ann",)])
        finally:
            copy.close()

    async def test_existing_destination(self) -> None:
        """
        A backup onto an existing file fails and leaves that file as it
        was.
        """
        dest = os.path.join(self.dir, "precious")
        with open(dest, "wb") as f:
            f.write(b"precious data")
        message = await self.admin_fails("backup", dest)
        self.assertEqual(message, f"{dest} exists; choose a new file.")
        with open(dest, "rb") as f:
            self.assertEqual(f.read(), b"precious data")
        self.assertEqual(temporary_files(self.dir), [])

    async def test_missing_directory(self) -> None:
        """
        A backup into a directory that does not exist fails, naming it.
        """
        missing = os.path.join(self.dir, "missing")
        message = await self.admin_fails("backup", os.path.join(missing, "backup.db"))
        self.assertIn(missing, message)
        self.assertFalse(os.path.exists(missing))


class ExportTests(AdminCase):
    """
    C{chatd-admin export}.
    """

    async def test_export(self) -> None:
        """
        The export is JSON with the account, its friendships and requests,
        its rooms and the messages it sent (not those it received).
        """
        ann, ann_id, _ = await self.log_in("ann")
        bob, bob_id, _ = await self.log_in("bob")
        cat, cat_id, _ = await self.log_in("cat")
        _, dan_id, _ = await self.log_in("dan")
        await befriend(ann, bob, "bob")
        reply = await cat.request("add_friend", username="ann")
        self.assertEqual(reply["type"], "friend_request_sent", reply)
        reply = await ann.request("add_friend", username="dan")
        self.assertEqual(reply["type"], "friend_request_sent", reply)
        lobby = await self.create_room(ann, "lobby")
        reply = await bob.request("join_room", name="lobby")
        self.assertEqual(reply["type"], "join_successful", reply)
        await self.create_room(bob, "den")
        await self.say(ann, 1, lobby, "hello room")
        await self.say(ann, 0, bob_id, "hi bob")
        await self.say(bob, 0, ann_id, "hi ann")
        await self.say(bob, 1, lobby, "hello ann")

        dest = os.path.join(self.dir, "ann.json")
        outcome = await self.admin("export", "ann", dest)
        self.assertEqual((outcome.code, outcome.err), (0, ""), outcome)
        with open(dest, encoding="utf-8") as f:
            data = json.load(f)

        match = re.fullmatch(
            rf"Exported ann \((\d+) messages\) to {re.escape(dest)}\.\n", outcome.out
        )
        self.assertIsNotNone(match, outcome)
        assert match is not None
        self.assertEqual(int(match[1]), len(data["messages"]))
        account = data["account"]
        self.assertEqual(
            (account["id"], account["username"], account["disabled"]), (ann_id, "ann", False)
        )
        self.assertEqual(
            {(f["id"], f["username"], f["state"], f["request"]) for f in data["friendships"]},
            {
                (bob_id, "bob", "accepted", None),
                (cat_id, "cat", "pending", "received"),
                (dan_id, "dan", "pending", "sent"),
            },
        )
        self.assertEqual(
            [(r["id"], r["name"], r["role"]) for r in data["rooms"]], [(lobby, "lobby", "owner")]
        )
        texts = [
            (m["target_type"], m["target_id"], m["body"])
            for m in data["messages"]
            if m["kind"] == "text"
        ]
        self.assertEqual(texts, [("room", lobby, "hello room"), ("user", bob_id, "hi bob")])

    async def test_unknown_user(self) -> None:
        """
        Exporting a user who does not exist fails, naming them, and writes
        nothing.
        """
        dest = os.path.join(self.dir, "nobody.json")
        message = await self.admin_fails("export", "nobody", dest)
        self.assertEqual(message, "There is no user called nobody.")
        self.assertFalse(os.path.exists(dest))

    async def test_existing_destination(self) -> None:
        """
        An export onto an existing file fails and leaves it as it was.
        """
        await self.register("ann")
        dest = os.path.join(self.dir, "ann.json")
        with open(dest, "w") as f:
            f.write("keep me")
        message = await self.admin_fails("export", "ann", dest)
        self.assertEqual(message, f"{dest} exists; choose a new file.")
        with open(dest) as f:
            self.assertEqual(f.read(), "keep me")


class NoSuchUserTests(AdminCase):
    """
    Every command that takes a NAME fails when there is no such user.
    """

    async def test_no_such_user(self) -> None:
        """
        disable, enable, reset-password (with and without a password),
        unlock and export of an unknown name each exit 1 naming the user.
        """
        await self.register("ann")
        dest = os.path.join(self.dir, "ghost.json")
        for args, stdin in (
            (("disable", "ghost"), None),
            (("enable", "ghost"), None),
            (("reset-password", "ghost"), None),
            (("reset-password", "ghost", "--password-stdin"), b"new-password\n"),
            (("unlock", "ghost"), None),
            (("export", "ghost", dest), None),
        ):
            message = await self.admin_fails(*args, stdin=stdin)
            self.assertEqual(message, "There is no user called ghost.", args)
        self.assertFalse(os.path.exists(dest))
        await self.login_works("ann")


class NoServerTests(TestCase):
    """
    chatd-admin where no server listens.
    """

    async def test_no_socket(self) -> None:
        """
        With no socket at the path, every command fails naming the socket
        it tried: C{<db>.admin}, or C{--socket}.
        """
        directory = short_directory(self)
        db = os.path.join(directory, "nothing.db")
        for args in (("stats",), ("users",), ("disable", "ann"), ("backup", db + ".copy")):
            outcome = await chatd_admin("--db", db, *args)
            self.assertEqual(outcome.code, 1, outcome)
            self.assertEqual(outcome.out, "")
            self.assertEqual(
                outcome.err, f"chatd-admin: no chatd server is running at {db}.admin\n"
            )
        elsewhere = os.path.join(directory, "ctl.sock")
        outcome = await chatd_admin("--db", db, "--socket", elsewhere, "stats")
        self.assertEqual(outcome.code, 1, outcome)
        self.assertEqual(outcome.err, f"chatd-admin: no chatd server is running at {elsewhere}\n")

    async def test_usage(self) -> None:
        """
        A command line that is not one exits 2.
        """
        for args in ((), ("frobnicate",), ("disable",), ("export", "ann")):
            outcome = await chatd_admin(*args)
            self.assertEqual(outcome.code, 2, (args, outcome))
            self.assertEqual(outcome.out, "")
            self.assertIn("usage: chatd-admin", outcome.err)


class CrashTests(AdminCase):
    """
    The control socket of a server killed with SIGKILL, and a second server
    on the same database.
    """

    async def test_killed_server(self) -> None:
        """
        A SIGKILL leaves the socket file behind; chatd-admin then says that
        no server runs there; a new server on the same database replaces
        the stale socket and answers.
        """
        await self.register("ann")
        self.transport.signalProcess("KILL")
        self.assertEqual(await self.process.ended, 9)
        self.assertTrue(stat.S_ISSOCK(os.lstat(self.socket).st_mode), "the socket was removed")
        message = await self.admin_fails("stats")
        self.assertEqual(message, f"no chatd server is running at {self.socket}")

        await self.start_server()
        self.assertEqual(stat.S_IMODE(os.stat(self.socket).st_mode), 0o600)
        stats = await self.stats()
        self.assertEqual(stats["users"], "1")
        await self.login_works("ann")

    async def test_second_server(self) -> None:
        """
        A second server on the database of a running one ends at once,
        non-zero, saying another server holds the database's lock, and the
        first keeps serving on its socket.
        """
        await self.register("ann")
        second = self._spawn_second()
        await self.assertFailure(second.ready, RuntimeError)
        self.assertNotEqual(await second.ended, 0)
        self.assertIn(b"chatd: another chatd is running on the database", second.output)
        self.assertTrue(stat.S_ISSOCK(os.lstat(self.socket).st_mode))
        stats = await self.stats()
        self.assertEqual(stats["users"], "1")
        await self.login_works("ann")

    async def test_second_server_other_socket(self) -> None:
        """
        A second server on the database of a running one is refused even
        when its control socket is elsewhere (C{--admin-socket}): two
        servers writing one database would hand out the same message ids.
        """
        await self.register("ann")
        second = self._spawn_second("--admin-socket", os.path.join(self.dir, "other.sock"))
        try:
            port = await second.ready
        except RuntimeError:
            self.assertNotEqual(await second.ended, 0)
        else:
            self.fail(f"a second chatd started on {self.db} (port {port}) while the first runs")
        stats = await self.stats()
        self.assertEqual(stats["users"], "1")

    def _spawn_second(self, *options: str) -> ServerProcess:
        """
        @return: a second server on C{self.db}, killed when the test ends
            if it still runs.
        """
        second = spawn_chatd(self.db, "--insecure-fast-hashes", *options)
        transport = second.transport

        def kill() -> Deferred[int] | None:
            if second.ended.called:
                return None
            transport.signalProcess("KILL")
            return second.ended

        self.addCleanup(kill)
        return second


class SocketTests(AdminCase):
    """
    The control socket itself.
    """

    def test_mode(self) -> None:
        """
        The socket is C{<db>.admin}, a socket of mode 0600.
        """
        mode = os.stat(self.socket).st_mode
        self.assertTrue(stat.S_ISSOCK(mode))
        self.assertEqual(stat.S_IMODE(mode), 0o600)

    async def test_malformed_requests(self) -> None:
        """
        A frame that is not JSON, not an object, an unknown command, or a
        command missing its fields, gets C{ok: false} with a sentence; the
        same connection and the server go on serving.
        """
        await self.register("ann")
        client = await raw_admin(self, self.socket)
        for payload, error in (
            (b"not json", "A request is a JSON object."),
            (b"\xff\xfe\x00", "A request is a JSON object."),
            (b"[1, 2]", "A request is a JSON object."),
            (b"{}", "Unknown command None."),
            (b'{"command": "frobnicate"}', "Unknown command 'frobnicate'."),
            (b'{"command": "disable"}', "The request needs a text 'name'."),
            (b'{"command": "users", "query": 3}', "The request needs a text 'query'."),
            (
                b'{"command": "backup", "dest": "relative.db"}',
                "The destination relative.db is not an absolute path.",
            ),
        ):
            reply = await client.ask(payload)
            self.assertEqual(reply, {"ok": False, "error": error}, payload)
        reply = await client.ask(b'{"command": "stats"}')
        self.assertTrue(reply["ok"], reply)
        self.assertEqual(reply["result"]["users"], 1)
        stats = await self.stats()
        self.assertEqual(stats["users"], "1")

    async def test_command_not_text(self) -> None:
        """
        A command that is not a string is the operator's mistake, answered
        like an unknown command, not a failure of the server.
        """
        client = await raw_admin(self, self.socket)
        for payload in (b'{"command": ["stats"]}', b'{"command": {}}'):
            reply = await client.ask(payload)
            self.assertFalse(reply["ok"], reply)
            self.assertTrue(reply["error"].startswith("Unknown command"), reply)
        self.assertNotIn(b"The operator's command failed", self.process.output)
        await self.stats()

    async def test_answered_in_turn(self) -> None:
        """
        Requests sent together on one connection are answered in the order
        they were sent.
        """
        client = await raw_admin(self, self.socket)
        client.sendString(b'{"command": "stats"}')
        client.sendString(b'{"command": "frobnicate"}')
        first = await client.replies.get()
        second = await client.replies.get()
        self.assertEqual(
            (first["ok"], second), (True, {"ok": False, "error": "Unknown command 'frobnicate'."})
        )

    async def test_oversized_frame(self) -> None:
        """
        A frame longer than the limit closes that connection only.
        """
        client = await raw_admin(self, self.socket)
        client.sendString(b" " * (64 * 1024 + 1))
        await client.lost
        stats = await self.stats()
        self.assertEqual(stats["users"], "0")


class AdminSocketOptionTests(AdminCase):
    """
    C{--admin-socket} puts the control socket elsewhere.
    """

    def server_options(self) -> tuple[str, ...]:
        self.elsewhere = os.path.join(self.dir, "ctl.sock")
        return ("--admin-socket", self.elsewhere)

    async def test_elsewhere(self) -> None:
        """
        The socket is at the path given, mode 0600, and not beside the
        database; C{chatd-admin --socket} reaches it, C{--db} alone does
        not.
        """
        mode = os.stat(self.elsewhere).st_mode
        self.assertTrue(stat.S_ISSOCK(mode))
        self.assertEqual(stat.S_IMODE(mode), 0o600)
        self.assertFalse(os.path.exists(self.socket))
        await self.register("ann")
        outcome = await chatd_admin("--socket", self.elsewhere, "users")
        self.assertEqual((outcome.code, outcome.err), (0, ""), outcome)
        self.assertEqual(len(outcome.lines), 2, outcome)
        self.assertIn("ann", outcome.lines[1])
        message = await self.admin_fails("users")
        self.assertEqual(message, f"no chatd server is running at {self.socket}")
