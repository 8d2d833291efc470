"""
C{twistd chatd}: its options, its plugin, and how its service starts and
stops.
"""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.application.service import IServiceMaker
from twisted.internet import reactor
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from chatd.protocol import Limits
from chatd.tap import ChatService, Options, makeService
from tests.support import wire_client


class OptionsTests(SynchronousTestCase):
    """
    The command line of C{twistd chatd}.
    """

    def test_defaults(self) -> None:
        """
        With no options chatd listens on TCP port 8998 with chatd.sqlite3 and
        the limits of PROTOCOL.md 8.
        """
        options = Options()
        options.parseOptions([])
        self.assertEqual(options["port"], "tcp:8998:backlog=1024")
        self.assertEqual(options["db"], "chatd.sqlite3")
        service = makeService(options)
        self.assertEqual(service._limits, Limits(65536, 20.0, 50, 300.0, 1024 * 1024))

    def test_endpoint(self) -> None:
        """
        --port takes a Twisted endpoint description as it is, and a number as
        a TCP port with a listen backlog for a crowd logging in at once.
        """
        options = Options()
        options.parseOptions(["--port", "ssl:8999:privateKey=key.pem:certKey=cert.pem"])
        self.assertEqual(options["port"], "ssl:8999:privateKey=key.pem:certKey=cert.pem")
        options = Options()
        options.parseOptions(["--port", "9000"])
        self.assertEqual(options["port"], "tcp:9000:backlog=1024")

    def test_limits(self) -> None:
        """
        The limit options reach the service.
        """
        options = Options()
        options.parseOptions(
            [
                "--max-frame=1000",
                "--rate=5",
                "--burst=7",
                "--idle-timeout=60",
                "--max-pending=4096",
            ]
        )
        self.assertEqual(makeService(options)._limits, Limits(1000, 5.0, 7, 60.0, 4096))

    def test_bad_number(self) -> None:
        """
        A limit that is not a positive number is a usage error.
        """
        for bad in (["--rate=0"], ["--burst=-1"], ["--max-frame=many"]):
            self.assertRaises(usage.UsageError, Options().parseOptions, bad)

    def test_help_documents_every_option(self) -> None:
        """
        --help lists each option with its explanation.
        """
        text = str(Options())
        for name in ("port", "db", "max-frame", "rate", "burst", "idle-timeout", "max-pending"):
            self.assertIn(f"--{name}=", text)

    def test_plugin(self) -> None:
        """
        twistd finds the chatd plugin, which builds the service from chatd.tap.
        """
        makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
        self.assertIn("chatd", makers)
        self.assertIs(makers["chatd"].options, Options)


class StartTests(TestCase):
    """
    Starting fails with one clear line when it cannot work.
    """

    def test_port_in_use(self) -> None:
        """
        A port in use ends the start with SystemExit naming the port.
        """
        taken = reactor.listenTCP(0, _NoFactory(), interface="127.0.0.1")
        self.addCleanup(taken.stopListening)
        port = taken.getHost().port
        service = ChatService(f"tcp:{port}:interface=127.0.0.1", self.mktemp(), Limits(), reactor)
        with self.assertRaises(SystemExit) as caught:
            service.privilegedStartService()
        self.assertEqual(
            str(caught.exception),
            f"chatd: cannot listen on tcp:{port}:interface=127.0.0.1: [Errno 98] Address already in use",
        )

    def test_unusable_database_path(self) -> None:
        """
        A database path in a folder that does not exist ends the start with
        SystemExit naming the path, before anything listens.
        """
        path = os.path.join(self.mktemp(), "missing", "chatd.sqlite3")
        service = ChatService("tcp:0:interface=127.0.0.1", path, Limits(), reactor)
        with self.assertRaises(SystemExit) as caught:
            service.privilegedStartService()
        self.assertIn("chatd: cannot use the database", str(caught.exception))
        self.assertIn("No such file or directory", str(caught.exception))
        self.assertIsNone(service._port)

    async def test_serves_then_stops(self) -> None:
        """
        The service serves once started; stopping it kicks every session with
        shutdown and closes the database.
        """
        service = ChatService(
            "tcp:0:interface=127.0.0.1", self.mktemp() + ".sqlite3", Limits(), reactor
        )
        service.privilegedStartService()
        service.startService()
        self.addCleanup(lambda: service.running and service.stopService())
        assert service._started is not None
        await service._started
        port = service._port.getHost().port
        client = await wire_client(self, port)
        reply = await client.request("ping")
        self.assertEqual(reply["type"], "pong")
        await service.stopService()
        await client.lost


class CommandTests(SynchronousTestCase):
    """
    The installed command, as a user runs it.
    """

    def test_help_from_any_directory(self) -> None:
        """
        C{twistd chatd --help} works from a directory outside the checkout.
        """
        elsewhere = self.mktemp()
        os.makedirs(elsewhere)
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "from twisted.scripts.twistd import run; run()",
                "chatd",
                "--help",
            ],
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("--max-pending=", result.stdout)


class _NoFactory:
    """
    A factory for a port that is only there to be in use.
    """

    def doStart(self) -> None:
        pass

    def doStop(self) -> None:
        pass

    def buildProtocol(self, addr: object) -> None:
        return None
