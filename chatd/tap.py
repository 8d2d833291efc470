"""
C{twistd chatd}: the command-line options and the service they build.

The only module that touches the global reactor.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, error
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure

from chatd import wire
from chatd.directory import Directory
from chatd.passwords import Passwords
from chatd.protocol import ChatFactory, Limits
from chatd.server import ChatServer
from chatd.sessions import Sessions
from chatd.store import Store

#: The listen backlog when --port is a port number.
LISTEN_BACKLOG = 1024


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError(f"{value} is not a positive integer")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(f"{value} is not a positive number")
    return number


class Options(usage.Options):
    """
    The options of C{twistd chatd}.
    """

    synopsis = "[options]"
    longdesc = (
        "Run the chatd chat server: accounts, friends, private chat, group rooms "
        "and history, stored in a SQLite file.  See docs/PROTOCOL.md."
    )

    optParameters = [
        [
            "port",
            "p",
            "8998",
            "Where to listen: a port number, or a Twisted server endpoint such as "
            "tcp:8998:interface=127.0.0.1 or ssl:8999:privateKey=key.pem:certKey=cert.pem.",
        ],
        ["db", "d", "chatd.sqlite3", "The SQLite database file (created if missing)."],
        [
            "max-frame",
            None,
            wire.MAX_FRAME,
            "Largest request payload in bytes; a longer frame closes the connection.",
            _positive_int,
        ],
        [
            "rate",
            None,
            20.0,
            "Requests per second allowed per connection.",
            _positive_float,
        ],
        ["burst", None, 50, "Requests a connection may send at once.", _positive_int],
        [
            "idle-timeout",
            None,
            300.0,
            "Seconds of silence after which a logged-in connection is closed.",
            _positive_float,
        ],
        [
            "max-pending",
            None,
            1024 * 1024,
            "Bytes that may wait unsent for a client that stopped reading "
            "before it is disconnected.",
            _positive_int,
        ],
    ]

    def postOptions(self) -> None:
        port = self["port"]
        if port.isdigit():
            # A class logging in at once overflows Twisted's default listen
            # backlog of 50, and the refused connects retry a second later.
            self["port"] = f"tcp:{port}:backlog={LISTEN_BACKLOG}"


#: Seconds a clean shutdown waits for kicked clients to close.
SHUTDOWN_GRACE = 3.0


class ChatService(Service):
    """
    Listens, serves, and on stop shuts down cleanly.

    The port is bound and the database path checked before the reactor runs
    (in L{privilegedStartService}), so that a port in use or an unwritable
    database ends the start with one clear line.  Connections wait in the
    listen backlog until the database is open and the directory loaded.
    """

    log = Logger()

    def __init__(self, endpoint: str, db_path: str, limits: Limits, reactor: Any) -> None:
        self._endpoint = endpoint
        self._db_path = db_path
        self._limits = limits
        self._reactor = reactor
        self._port: Any = None
        self._store: Store | None = None
        self._server: ChatServer | None = None
        self._passwords: Passwords | None = None
        self._started: Deferred[None] | None = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._check_db_path()
        self._factory = ChatFactory(self._limits, self._reactor)
        try:
            self._port = _listen_now(serverFromString(self._reactor, self._endpoint), self._factory)
        except error.CannotListenError as e:
            raise SystemExit(f"chatd: cannot listen on {self._endpoint}: {e.socketError}") from None
        except Exception as e:
            raise SystemExit(f"chatd: cannot listen on {self._endpoint}: {e}") from None
        # Accept nothing until the server is ready.
        self._port.stopReading()

    def _check_db_path(self) -> None:
        path = os.path.abspath(self._db_path)
        try:
            with open(path, "ab"):
                pass
            if not os.access(os.path.dirname(path), os.W_OK):
                raise PermissionError(13, "its directory is not writable")
        except OSError as e:
            raise SystemExit(f"chatd: cannot use the database {path}: {e.strerror}") from None

    def startService(self) -> None:
        if self._port is None:
            self.privilegedStartService()
        super().startService()
        self._started = ensureDeferred(self._start())
        self._started.addErrback(self._failed_to_start)
        self._reactor.callWhenRunning(self._handle_signals)

    def _handle_signals(self) -> None:
        # twistd re-raises SIGTERM/SIGINT after shutting down, so the
        # process would die of the signal; a clean shutdown exits 0.
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._stop_on_signal)

    def _stop_on_signal(self, number: int, frame: Any) -> None:
        self.log.info("Received {signal}, shutting down", signal=signal.Signals(number).name)
        self._reactor.callFromThread(self._reactor.stop)

    async def _start(self) -> None:
        reactor = self._reactor
        self._store = await Store.open(self._db_path, reactor)
        directory = Directory.from_snapshot(await self._store.load_directory())
        self._passwords = Passwords(reactor)
        self._passwords.start()
        self._server = ChatServer(self._store, self._passwords, Sessions(), directory, reactor)
        self._factory.server = self._server
        self._port.startReading()
        self.log.info(
            "chatd ready on {address} with {users} users and {rooms} rooms in {db}",
            address=self._port.getHost(),
            users=len(directory.usernames),
            rooms=len(directory.rooms),
            db=self._db_path,
        )

    def _failed_to_start(self, failure: Any) -> None:
        self.log.critical(
            "chatd: cannot start with the database {db}: {why}",
            db=self._db_path,
            why=failure.value,
        )
        self._reactor.stop()

    async def _stop(self) -> None:
        """
        Stop accepting, stop reading requests, let every write commit (and
        its pushes go out), kick everyone with C{shutdown}, close the
        database.
        """
        if self._port is not None:
            await self._port.stopListening()
        if self._started is not None:
            # A start still in progress finishes first.
            await self._started
        server, store = self._server, self._store
        if server is not None:
            for session in server.sessions.everyone():
                session.stop_reading()
        if store is not None:
            await store.writer.idle()
        if server is not None:
            for session in server.sessions.everyone():
                session.kick("shutdown")
            # The reactor drops what is still buffered when it stops: give
            # the kicks time to reach clients that are reading.
            closed = server.sessions.all_closed()
            closed.addTimeout(SHUTDOWN_GRACE, self._reactor)
            try:
                await closed
            except defer.TimeoutError:
                self.log.warn("Some clients did not read their shutdown notice")
        if self._passwords is not None:
            self._passwords.stop()
        if store is not None:
            store.close()
        self.log.info("chatd stopped")

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return ensureDeferred(self._stop())


def _listen_now(endpoint: Any, factory: Any) -> Any:
    """
    Listen on C{endpoint}; socket endpoints listen at once, so the result
    (or the error) is there when this returns.
    """
    outcome: list[Any] = []
    endpoint.listen(factory).addBoth(outcome.append)
    if not outcome:
        raise RuntimeError("the endpoint did not listen at once")
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]


def makeService(options: Options) -> ChatService:
    """
    Build the chatd service from the parsed options.
    """
    from twisted.internet import reactor

    limits = Limits(
        max_frame=options["max-frame"],
        rate=options["rate"],
        burst=options["burst"],
        idle_timeout=options["idle-timeout"],
        max_pending=options["max-pending"],
    )
    return ChatService(options["port"], options["db"], limits, reactor)
