"""
Unit tests for L{chatd.admin_tool}, the C{chatd-admin} console script: its
command line, what it prints for each answer, and how it talks to a control
socket and reports what goes wrong there.  No chatd server runs here: the
answers come from a stand-in for L{chatd.admin_tool.ask}, or from a plain
UNIX socket served by a thread of the test (joined before the test ends).
Against the real server, see L{tests.test_admin}.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import struct
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from chatd import admin_tool
from chatd.admin_tool import Failed


def short_directory(testcase: SynchronousTestCase) -> str:
    """
    @return: a new directory with a path short enough for UNIX sockets,
        removed when the test ends.
    """
    path = tempfile.mkdtemp(prefix="chatd-tool-")
    testcase.addCleanup(shutil.rmtree, path, True)
    return path


class FormatTests(SynchronousTestCase):
    """
    How stamps, sizes, durations and the users table are written.
    """

    def test_stamp(self) -> None:
        """
        A stamp is shown to the minute, in UTC; no stamp is C{never}.
        """
        self.assertEqual(admin_tool._stamp("2026-11-24T06:00:30.123Z"), "2026-11-24 06:00Z")
        self.assertEqual(admin_tool._stamp(None), "never")

    def test_size(self) -> None:
        """
        Sizes are in bytes below 1 KiB, then in KiB, MiB and GiB with one
        decimal, GiB being the largest unit.
        """
        for count, text in (
            (0, "0 bytes"),
            (1023, "1023 bytes"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (5 * 1024**2, "5.0 MiB"),
            (3 * 1024**3, "3.0 GiB"),
            (5000 * 1024**3, "5000.0 GiB"),
        ):
            self.assertEqual(admin_tool._size(count), text, count)

    def test_duration(self) -> None:
        """
        An uptime is in hours and minutes, with days in front once there
        are any.
        """
        for seconds, text in (
            (0, "0h 0m"),
            (59.9, "0h 0m"),
            (3599, "0h 59m"),
            (3600, "1h 0m"),
            (86399, "23h 59m"),
            (90061.5, "1d 1h 1m"),
        ):
            self.assertEqual(admin_tool._duration(seconds), text, seconds)

    def test_users_table(self) -> None:
        """
        The table has a header and a row per user, in aligned columns
        without trailing spaces; an online user was last seen now.
        """
        lines = admin_tool._users_table(
            [
                {
                    "id": 1,
                    "name": "ann",
                    "created": "2026-11-24T06:00:30.123Z",
                    "last_seen": "2026-11-25T07:08:09.000Z",
                    "online": True,
                    "disabled": False,
                },
                {
                    "id": 12,
                    "name": "bartholomew",
                    "created": "2026-11-24T06:01:00.000Z",
                    "last_seen": None,
                    "online": False,
                    "disabled": True,
                },
            ]
        )
        self.assertEqual(
            lines,
            [
                "ID  NAME         CREATED            LAST SEEN  ONLINE  DISABLED",
                "1   ann          2026-11-24 06:00Z  now        yes     no",
                "12  bartholomew  2026-11-24 06:01Z  never      no      yes",
            ],
        )

    def test_no_users(self) -> None:
        """
        An empty list is one sentence.
        """
        self.assertEqual(admin_tool._users_table([]), ["No such users."])


class RunTests(SynchronousTestCase):
    """
    What each command asks the server, and what it prints of the answer.
    """

    def setUp(self) -> None:
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self.answer: Any = None
        self.patch(admin_tool, "ask", self._ask)

    def _ask(self, socket_path: str, request: dict[str, Any]) -> Any:
        self.asked.append((socket_path, request))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def run_command(self, *argv: str) -> list[str]:
        options = admin_tool.parser().parse_args(argv)
        return admin_tool.run(options, "/run/chatd.admin")

    def test_users(self) -> None:
        """
        C{users} asks with its query (empty by default) and prints the
        table.
        """
        self.answer = []
        self.assertEqual(self.run_command("users"), ["No such users."])
        self.assertEqual(self.run_command("users", "--query", "An"), ["No such users."])
        self.assertEqual(
            self.asked,
            [
                ("/run/chatd.admin", {"command": "users", "query": ""}),
                ("/run/chatd.admin", {"command": "users", "query": "An"}),
            ],
        )

    def test_stats(self) -> None:
        """
        C{stats} prints one labelled line per figure.
        """
        self.answer = {
            "users": 3,
            "rooms": 2,
            "messages": 6,
            "online": 2,
            "connections": 3,
            "database_bytes": 204800,
            "files_bytes": 3 * 1024 * 1024,
            "uptime_seconds": 3725.5,
        }
        self.assertEqual(
            self.run_command("stats"),
            [
                "users:       3",
                "rooms:       2",
                "messages:    6",
                "online now:  2 (3 connections)",
                "database:    200.0 KiB",
                "files:       3.0 MiB",
                "uptime:      1h 2m",
            ],
        )
        self.assertEqual(self.asked, [("/run/chatd.admin", {"command": "stats"})])

    def test_backup(self) -> None:
        """
        C{backup} sends the destination as an absolute path and prints the
        size of what was written there.
        """
        relative = self.mktemp()
        with open(relative, "wb") as f:
            f.write(b"x" * 2048)
        dest = os.path.abspath(relative)
        self.assertNotEqual(dest, relative)
        self.answer = {"dest": dest}
        self.assertEqual(
            self.run_command("backup", relative),
            [f"Backed the database up to {dest} (2.0 KiB)."],
        )
        self.assertEqual(self.asked, [("/run/chatd.admin", {"command": "backup", "dest": dest})])

    def test_export(self) -> None:
        """
        C{export} sends the name and the absolute destination, and prints
        how many messages were written.
        """
        dest = os.path.abspath("ann.json")
        self.answer = {"dest": dest, "messages": 7}
        self.assertEqual(
            self.run_command("export", "ann", "ann.json"),
            [f"Exported ann (7 messages) to {dest}."],
        )
        self.assertEqual(
            self.asked,
            [("/run/chatd.admin", {"command": "export", "name": "ann", "dest": dest})],
        )

    def test_reset_password(self) -> None:
        """
        Without C{--password-stdin} the server chooses the password, which
        is printed once.
        """
        self.answer = {"password": "s3cret-new"}
        self.assertEqual(
            self.run_command("reset-password", "ann"),
            ["New password of ann (shown once): s3cret-new", "Their sessions are ended."],
        )
        self.assertEqual(
            self.asked, [("/run/chatd.admin", {"command": "reset-password", "name": "ann"})]
        )

    def test_reset_password_stdin(self) -> None:
        """
        With C{--password-stdin} the first line of standard input, without
        its line ending, is sent, and nothing of it is printed.
        """
        self.patch(sys, "stdin", io.StringIO("chosen pw\r\nsecond line\n"))
        self.answer = {"password": None}
        self.assertEqual(
            self.run_command("reset-password", "ann", "--password-stdin"),
            ["Set the new password of ann; their sessions are ended."],
        )
        self.assertEqual(
            self.asked,
            [
                (
                    "/run/chatd.admin",
                    {"command": "reset-password", "name": "ann", "password": "chosen pw"},
                )
            ],
        )

    def test_changes(self) -> None:
        """
        C{disable}, C{enable} and C{unlock} say whether they changed
        anything.
        """
        for command, changed, unchanged in (
            ("disable", "Disabled ann; their session is ended.", "ann was already disabled."),
            (
                "enable",
                "Enabled ann; they log in with their password.",
                "ann was not disabled.",
            ),
            ("unlock", "Unlocked ann: they may try to log in again.", "ann was not locked out."),
        ):
            self.answer = {"changed": True}
            self.assertEqual(self.run_command(command, "ann"), [changed])
            self.answer = {"changed": False}
            self.assertEqual(self.run_command(command, "ann"), [unchanged])
            self.assertEqual(self.asked[-1][1], {"command": command, "name": "ann"})


class MainTests(SynchronousTestCase):
    """
    The console script's exit status, its output and where it finds the
    socket.
    """

    def setUp(self) -> None:
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.patch(sys, "stdout", self.out)
        self.patch(sys, "stderr", self.err)
        self.paths: list[str] = []
        self.answer: Any = {"changed": True}
        self.patch(admin_tool, "ask", self._ask)

    def _ask(self, socket_path: str, request: dict[str, Any]) -> Any:
        self.paths.append(socket_path)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def test_done(self) -> None:
        """
        A command done prints its lines on stdout and exits 0.
        """
        self.assertEqual(admin_tool.main(["disable", "ann"]), 0)
        self.assertEqual(self.out.getvalue(), "Disabled ann; their session is ended.\n")
        self.assertEqual(self.err.getvalue(), "")

    def test_failed(self) -> None:
        """
        A command that failed prints C{chatd-admin: <why>} on stderr and
        exits 1.
        """
        self.answer = Failed("There is no user called ann.")
        self.assertEqual(admin_tool.main(["disable", "ann"]), 1)
        self.assertEqual(self.out.getvalue(), "")
        self.assertEqual(self.err.getvalue(), "chatd-admin: There is no user called ann.\n")

    def test_socket_path(self) -> None:
        """
        The socket is C{chatd.sqlite3.admin} by default, beside C{--db},
        or C{--socket}.
        """
        admin_tool.main(["unlock", "ann"])
        admin_tool.main(["--db", "/srv/chat.db", "unlock", "ann"])
        admin_tool.main(["--db", "/srv/chat.db", "--socket", "/run/ctl", "unlock", "ann"])
        self.assertEqual(self.paths, ["chatd.sqlite3.admin", "/srv/chat.db.admin", "/run/ctl"])

    def test_usage(self) -> None:
        """
        A command line that is not one exits 2 without asking anything.
        """
        for argv in (
            [],
            ["frobnicate"],
            ["disable"],
            ["disable", "ann", "bob"],
            ["disable", "ann", "--password-stdin"],
            ["export", "ann"],
            ["backup"],
        ):
            with self.assertRaises(SystemExit) as caught:
                admin_tool.main(argv)
            self.assertEqual(caught.exception.code, 2, argv)
        self.assertEqual(self.paths, [])


class OneAnswerServer:
    """
    A UNIX socket served by a thread: it accepts one connection, reads one
    request frame, and does C{answer(connection)}.

    @ivar request: the request it read.
    """

    def __init__(
        self, testcase: SynchronousTestCase, answer: Callable[[socket.socket], None]
    ) -> None:
        self.path = os.path.join(short_directory(testcase), "ctl")
        self._listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listening.bind(self.path)
        self._listening.listen(1)
        self._answer = answer
        self.request: Any = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        testcase.addCleanup(self._stop)

    def _serve(self) -> None:
        connection, _ = self._listening.accept()
        with connection:
            (length,) = struct.unpack("!I", _read(connection, 4))
            self.request = json.loads(_read(connection, length))
            self._answer(connection)

    def _stop(self) -> None:
        self._thread.join(10)
        self._listening.close()


def _read(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise EOFError()
        data += chunk
    return data


def _reply(payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload).encode()
    return struct.pack("!I", len(data)) + data


class AskTests(SynchronousTestCase):
    """
    L{admin_tool.ask}: one request frame, one reply frame, and a sentence
    for whatever goes wrong.
    """

    def test_result(self) -> None:
        """
        The request goes as one frame; the result of an C{ok} reply is
        returned, even when the reply arrives a byte at a time.
        """

        def answer(connection: socket.socket) -> None:
            for byte in _reply({"ok": True, "result": {"changed": True}}):
                connection.sendall(bytes([byte]))

        server = OneAnswerServer(self, answer)
        result = admin_tool.ask(server.path, {"command": "unlock", "name": "ann"})
        self.assertEqual(result, {"changed": True})
        self.assertEqual(server.request, {"command": "unlock", "name": "ann"})

    def test_refused(self) -> None:
        """
        A reply that is not C{ok} fails with the server's sentence.
        """
        server = OneAnswerServer(self, lambda c: c.sendall(_reply({"ok": False, "error": "Nope."})))
        failure = self.assertRaises(Failed, admin_tool.ask, server.path, {"command": "x"})
        self.assertEqual(str(failure), "Nope.")

    def test_closed_before_answering(self) -> None:
        """
        A server that closes the connection before its reply is complete
        fails with a sentence saying so.
        """
        server = OneAnswerServer(self, lambda c: c.sendall(b"\x00\x00"))
        failure = self.assertRaises(Failed, admin_tool.ask, server.path, {"command": "x"})
        self.assertEqual(str(failure), "the server closed the connection before answering")

    def test_no_socket(self) -> None:
        """
        No socket at the path: no server is running there.
        """
        path = os.path.join(short_directory(self), "ctl")
        failure = self.assertRaises(Failed, admin_tool.ask, path, {"command": "stats"})
        self.assertEqual(str(failure), f"no chatd server is running at {path}")

    def test_dead_socket(self) -> None:
        """
        A socket file nobody listens on (left by a killed server): no
        server is running there.
        """
        path = os.path.join(short_directory(self), "ctl")
        left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        left.bind(path)
        left.close()
        failure = self.assertRaises(Failed, admin_tool.ask, path, {"command": "stats"})
        self.assertEqual(str(failure), f"no chatd server is running at {path}")

    def test_not_a_directory(self) -> None:
        """
        A socket path under a file (C{--db} naming a file inside a file) is
        a sentence naming the path, not a traceback.
        """
        directory = short_directory(self)
        with open(os.path.join(directory, "file"), "w"):
            pass
        path = os.path.join(directory, "file", "chat.db.admin")
        failure = self.assertRaises(Failed, admin_tool.ask, path, {"command": "stats"})
        self.assertIn(path, str(failure))

    def test_path_too_long(self) -> None:
        """
        A socket path longer than a UNIX socket's may be is a sentence
        naming the path, not a traceback.
        """
        path = os.path.join(short_directory(self), "d" * 120, "chat.db.admin")
        failure = self.assertRaises(Failed, admin_tool.ask, path, {"command": "stats"})
        self.assertIn(path, str(failure))
