"""
C{twistd chatd}: its options, its plugin, and how its service starts and
stops.
"""

from __future__ import annotations

import gc
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from typing import Any

from twisted.application.service import IServiceMaker
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool, readBody

from chatd.protocol import Limits
from chatd.service import (
    ACCEPTS_IN_A_ROW,
    ChatService,
    _accept_in_slices,
    _Handover,
    install_stop_signals,
)
from chatd.tap import Options, makeService
from tests.support import socket_path, wire_client


class RecordedSignals:
    """
    Stands in for L{install_stop_signals}: records the handler instead of
    installing it, and whether the service put the old handlers back.
    """

    def __init__(self) -> None:
        self.handlers: list[Callable[[int], None]] = []
        self.restored = 0

    def __call__(self, on_signal: Callable[[int], None]) -> Callable[[], None]:
        self.handlers.append(on_signal)
        return self.restore

    def restore(self) -> None:
        self.restored += 1


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
        self.assertEqual(service.limits, Limits(65536, 20.0, 50, 300.0, 1024 * 1024))
        self.assertEqual(service.limits, Limits())
        self.assertFalse(service.insecure_fast_hashes)
        self.assertTrue(service.freeze_heap)

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
        self.assertEqual(makeService(options).limits, Limits(1000, 5.0, 7, 60.0, 4096))

    def test_insecure_fast_hashes(self) -> None:
        """
        --insecure-fast-hashes reaches the service.
        """
        options = Options()
        options.parseOptions(["--insecure-fast-hashes"])
        self.assertTrue(makeService(options).insecure_fast_hashes)

    def test_admin_socket(self) -> None:
        """
        The operator's socket is beside the database unless --admin-socket
        puts it elsewhere.
        """
        options = Options()
        options.parseOptions(["--db", "/srv/chat.sqlite3"])
        self.assertEqual(makeService(options)._admin_socket, "/srv/chat.sqlite3.admin")
        options = Options()
        options.parseOptions(["--admin-socket", "/run/chatd/admin"])
        self.assertEqual(makeService(options)._admin_socket, "/run/chatd/admin")

    def test_metrics_and_retention(self) -> None:
        """
        Metrics are off and messages kept forever unless asked for.
        """
        service = makeService(Options())
        self.assertEqual((service._metrics_endpoint, service.retention_days), (None, None))
        options = Options()
        options.parseOptions(["--metrics", "tcp:9464", "--retention-days", "365"])
        service = makeService(options)
        self.assertEqual((service._metrics_endpoint, service.retention_days), ("tcp:9464", 365.0))
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--retention-days", "0"])

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
        for name in (
            "port",
            "db",
            "max-frame",
            "rate",
            "burst",
            "idle-timeout",
            "max-pending",
            "token-days",
            "admin-socket",
            "retention-days",
            "metrics",
        ):
            self.assertIn(f"--{name}=", text)
        self.assertIn("--insecure-fast-hashes", text)
        self.assertIn("FOR TESTS AND BENCHMARKS ONLY", " ".join(text.split()))

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

    def service(
        self,
        db: str | None = None,
        endpoint: str = "tcp:0:interface=127.0.0.1",
        **options: Any,
    ) -> ChatService:
        """
        @return: a chatd service on C{db} (a new file by default) and
            C{endpoint}, its control socket in a short temporary path, its
            signal handlers recorded, not installed; C{options} besides.
        """
        options.setdefault("admin_socket", socket_path(self))
        options.setdefault("install_signals", RecordedSignals())
        return ChatService(endpoint, db or self.mktemp() + ".sqlite3", Limits(), reactor, **options)

    def test_port_in_use(self) -> None:
        """
        A port in use ends the start with SystemExit naming the port.
        """
        taken = reactor.listenTCP(0, _NoFactory(), interface="127.0.0.1")
        self.addCleanup(taken.stopListening)
        port = taken.getHost().port
        service = self.service(self.mktemp(), f"tcp:{port}:interface=127.0.0.1")
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
        service = self.service(path)
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
        signals = RecordedSignals()
        service = self.service(install_signals=signals)
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
        kick = await client.push("server_kick")
        self.assertEqual(kick["reason"], "shutdown")
        await client.lost
        self.assertEqual((len(signals.handlers), signals.restored), (1, 1))

    async def test_metrics_and_retention_served(self) -> None:
        """
        With --metrics the service serves /metrics once started, and stops
        serving it when it stops; with --retention-days it runs the
        retention passes, stopped with it.
        """
        service = self.service(metrics_endpoint="tcp:0:interface=127.0.0.1", retention_days=30)
        service.privilegedStartService()
        service.startService()
        self.addCleanup(lambda: service.running and service.stopService())
        assert service._started is not None
        await service._started
        client = await wire_client(self, service._port.getHost().port)
        await client.request("ping")
        pool = HTTPConnectionPool(reactor)
        self.addCleanup(pool.closeCachedConnections)
        url = f"http://127.0.0.1:{service._metrics_port.getHost().port}/metrics"
        response = await Agent(reactor, pool=pool).request(b"GET", url.encode())
        self.assertIn(b'chatd_requests_total{type="ping"} 1.0', await readBody(response))
        retention = service._retention
        assert retention is not None
        self.assertEqual(retention._days, 30)
        self.assertIsNotNone(retention._next)
        await service.stopService()
        self.assertFalse(service._metrics_port.connected)
        self.assertIsNone(retention._next)

    async def test_backlog_until_ready(self) -> None:
        """
        A client that connects once the port is bound, before the database
        is open, waits and is served once the service has started.
        """
        service = self.service()
        service.privilegedStartService()
        self.addCleanup(lambda: service.running and service.stopService())
        client = await wire_client(self, service._port.getHost().port)
        pong = client.request("ping")
        service.startService()
        assert service._started is not None
        await service._started
        self.assertEqual((await pong)["type"], "pong")

    async def test_one_server_per_database(self) -> None:
        """
        A second server on a database in use does not start, whatever its
        control socket; once the first stops, it can.
        """
        db = self.mktemp() + ".sqlite3"

        first = self.service(db)
        first.privilegedStartService()
        first.startService()
        assert first._started is not None
        await first._started
        second = self.service(db)
        with self.assertRaises(SystemExit) as caught:
            second.privilegedStartService()
        self.assertEqual(
            str(caught.exception),
            f"chatd: another chatd is running on the database {db} "
            f"(it holds {os.path.abspath(db)}.lock)",
        )
        self.assertIsNone(second._port)
        await first.stopService()
        second.privilegedStartService()
        second.startService()
        self.addCleanup(second.stopService)
        assert second._started is not None
        await second._started

    def test_socket_path_too_long(self) -> None:
        """
        A control socket path longer than a UNIX socket allows ends the
        start with a line that says so and names the option; the database's
        lock and the port are let go.
        """
        db = self.mktemp() + ".sqlite3"
        long_path = os.path.join(os.path.dirname(socket_path(self)), "a" * 120)
        service = self.service(db, admin_socket=long_path)
        with self.assertRaises(SystemExit) as caught:
            service.privilegedStartService()
        self.assertIn("is too long for a UNIX socket", str(caught.exception))
        self.assertIn("--admin-socket", str(caught.exception))
        self.assertFalse(os.path.lexists(os.path.abspath(db) + ".lock"))
        self.assertTrue(service._port.disconnecting)

    async def test_freeze_heap(self) -> None:
        """
        With freeze_heap, what is alive once the service is ready is out of
        the collector's sight (C{gc.freeze}); without it, nothing is.
        """
        self.addCleanup(gc.unfreeze)
        service = self.service()
        service.startService()
        self.addCleanup(lambda: service.running and service.stopService())
        assert service._started is not None
        await service._started
        self.assertEqual(gc.get_freeze_count(), 0)
        await service.stopService()

        frozen = self.service(freeze_heap=True)
        frozen.startService()
        self.addCleanup(lambda: frozen.running and frozen.stopService())
        assert frozen._started is not None
        await frozen._started
        self.assertGreater(gc.get_freeze_count(), 0)

    def test_accepts_in_slices(self) -> None:
        """
        The listening port accepts at most L{ACCEPTS_IN_A_ROW} connections
        each time it is read, whatever Twisted's count grew to.
        """
        seen: list[int] = []

        class Port:
            numberAccepts = 220

            def doRead(self) -> None:
                seen.append(self.numberAccepts)
                self.numberAccepts += 20

        port = Port()
        _accept_in_slices(port)
        port.doRead()
        port.doRead()
        self.assertEqual(seen, [ACCEPTS_IN_A_ROW, ACCEPTS_IN_A_ROW])

    def test_handover_refuses_until_served(self) -> None:
        """
        The factory the port is bound with builds no protocol before the
        server's factory is handed to it.
        """
        self.assertIsNone(
            _Handover("ChatFactory").buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        )

    async def test_insecure_fast_hashes(self) -> None:
        """
        With insecure_fast_hashes the passwords are stored hashed with the
        cheapest argon2 parameters.
        """
        path = self.mktemp() + ".sqlite3"
        service = self.service(path, insecure_fast_hashes=True)
        service.startService()
        self.addCleanup(lambda: service.running and service.stopService())
        assert service._started is not None
        await service._started
        client = await wire_client(self, service._port.getHost().port)
        reply = await client.request("register", username="ann", password="secret1")
        self.assertEqual(reply["type"], "register_successful")
        await service.stopService()
        with closing(sqlite3.connect(path)) as connection:
            (stored,) = connection.execute("SELECT password_hash FROM users").fetchone()
        self.assertTrue(stored.startswith("$argon2id$v=19$m=8,t=1,p=1$"), stored)


class SignalTests(SynchronousTestCase):
    """
    The handler of SIGTERM and SIGINT, and putting back the ones it replaced.
    """

    def test_install_then_restore(self) -> None:
        """
        L{install_stop_signals} makes SIGTERM and SIGINT call the handler
        with the signal's number; what it returns puts the previous handlers
        back.
        """
        numbers = (signal.SIGTERM, signal.SIGINT)
        before = [signal.getsignal(number) for number in numbers]
        for number, handler in zip(numbers, before, strict=True):
            self.addCleanup(signal.signal, number, handler)
        received: list[int] = []
        restore = install_stop_signals(received.append)
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)
        self.assertEqual(received, [signal.SIGTERM, signal.SIGINT])
        restore()
        self.assertEqual([signal.getsignal(number) for number in numbers], before)


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
