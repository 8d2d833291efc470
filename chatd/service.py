"""
The chatd service: it binds its port, opens the database, serves, and on
stop (or SIGTERM/SIGINT) shuts down cleanly.
"""

from __future__ import annotations

import gc
import os
import signal
import stat
from collections.abc import Callable
from contextlib import suppress
from typing import Any, Final

from twisted.application.service import Service
from twisted.internet import error
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import UNIXServerEndpoint, serverFromString
from twisted.internet.protocol import Factory
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.python.lockfile import FilesystemLock

from chatd import assembly, metrics
from chatd.admin import AdminFactory, Operator
from chatd.assembly import Assembly
from chatd.database import is_postgresql
from chatd.files import FileLimits
from chatd.protocol import ChatFactory, Limits
from chatd.retention import Retention

#: Seconds a clean shutdown waits for kicked clients to close.
SHUTDOWN_GRACE = 3.0

#: The room for a UNIX socket's path, with its closing NUL (Linux).
_MAX_SOCKET_PATH = 108

#: Installs a handler of the stop signals; returns what puts the previous
#: handlers back.
InstallSignals = Callable[[Callable[[int], None]], Callable[[], None]]


def install_stop_signals(on_signal: Callable[[int], None]) -> Callable[[], None]:
    """
    Call C{on_signal(number)} on SIGTERM and SIGINT instead of what handled
    them so far.

    @return: puts the previous handlers back.
    """
    numbers = (signal.SIGTERM, signal.SIGINT)
    previous = {number: signal.getsignal(number) for number in numbers}
    for number in numbers:
        signal.signal(number, lambda number, frame: on_signal(number))

    def restore() -> None:
        for number, handler in previous.items():
            # None: the handler was not set from Python and cannot be put back.
            signal.signal(number, signal.SIG_DFL if handler is None else handler)

    return restore


class _StartFailed(Exception):
    """
    The server cannot start; the message says why, for the log.
    """


class _Handover(Factory):
    """
    The factory a port is bound with, before the server exists: once
    L{serve} hands it the server's factory, it passes every connection on.
    Until then it refuses connections (and the service does not let the
    port accept any: they wait in the listen backlog).
    """

    noisy = False

    def __init__(self, name: str) -> None:
        """
        @param name: the class name of the factory it will pass
            connections to, for the port's log lines.
        """
        self._name = name
        self._factory: Factory | None = None

    def serve(self, factory: Factory) -> None:
        """
        Pass every connection from now on to C{factory}.
        """
        self._factory = factory

    def logPrefix(self) -> str:
        return self._name

    def buildProtocol(self, addr: Any) -> Any:
        if self._factory is None:
            return None
        return self._factory.buildProtocol(addr)


class ChatService(Service):
    """
    Listens, serves, and on stop shuts down cleanly.

    The port is bound and the database path checked before the reactor runs
    (in L{privilegedStartService}), so that a port in use or an unwritable
    database ends the start with one clear line.  Connections wait in the
    listen backlog until the database is open and the directory loaded.

    @ivar limits: the per-connection limits.
    @ivar insecure_fast_hashes: whether passwords are hashed with the
        cheapest parameters (for tests and benchmarks only).
    """

    log = Logger()

    def __init__(
        self,
        endpoint: str,
        db_path: str,
        limits: Limits,
        reactor: Any,
        *,
        admin_socket: str | None = None,
        files_folder: str | None = None,
        file_limits: FileLimits | None = None,
        insecure_fast_hashes: bool = False,
        token_days: float = 30.0,
        retention_days: float | None = None,
        metrics_endpoint: str | None = None,
        install_signals: InstallSignals = install_stop_signals,
        freeze_heap: bool = False,
        redis: str | None = None,
    ) -> None:
        """
        @param endpoint: where to listen, as a Twisted server endpoint
            description.
        @param db_path: the SQLite file.
        @param reactor: the reactor to listen on and stop on a signal.
        @param admin_socket: the path of the operator's control socket
            (L{chatd.admin}); by default the database's path with
            C{.admin} added.
        @param files_folder: where the files people send are stored
            (L{chatd.files}); by default the database's path with C{.files}
            added.
        @param file_limits: the largest file and each user's quota (by
            default those of PROTOCOL.md section 14).
        @param insecure_fast_hashes: see L{chatd.assembly.open}.
        @param token_days: how long a session token works unused.
        @param retention_days: delete messages older than this, once a day
            (L{chatd.retention}); L{None} keeps them all.
        @param metrics_endpoint: where to serve Prometheus metrics
            (L{chatd.metrics}), as a Twisted server endpoint description;
            L{None} serves none.
        @param install_signals: installs the handler that stops the reactor
            on SIGTERM and SIGINT once the reactor runs; the previous
            handlers are put back when the service has stopped.
        @param freeze_heap: once everything is loaded, before the first
            connection, hand what is alive to C{gc.freeze}: the process's
            own service (L{chatd.tap}) does, not a test's.
        @param redis: the Redis URL of the deployment this process is one
            of (L{chatd.cluster}), with a PostgreSQL C{db_path}.
        """
        self._endpoint = endpoint
        self._db_path = db_path
        self.limits = limits
        self.insecure_fast_hashes = insecure_fast_hashes
        self.token_days = token_days
        self.retention_days = retention_days
        self._metrics_endpoint = metrics_endpoint
        self._metrics_port: Any = None
        self._retention: Retention | None = None
        self._reactor = reactor
        self._install_signals = install_signals
        self.freeze_heap = freeze_heap
        self._redis = redis
        self._restore_signals: Callable[[], None] | None = None
        self._admin_socket = admin_socket or db_path + ".admin"
        self.files_folder = files_folder or db_path + ".files"
        self.file_limits = file_limits or FileLimits()
        self._handover = _Handover(ChatFactory.__name__)
        self._admin_handover = _Handover(AdminFactory.__name__)
        self._port: Any = None
        self._admin_port: Any = None
        self._db_lock: FilesystemLock | None = None
        self._assembly: Assembly | None = None
        self._started: Deferred[None] | None = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        if not is_postgresql(self._db_path):
            # On PostgreSQL the writer's connection claims the database
            # (chatd.database.ONE_PROCESS_LOCK).
            self._check_db_path()
            self._lock_database()
        try:
            try:
                endpoint = serverFromString(self._reactor, self._endpoint)
                self._port = _listen_now(endpoint, self._handover)
                _accept_in_slices(self._port)
            except error.CannotListenError as e:
                raise SystemExit(
                    f"chatd: cannot listen on {self._endpoint}: {e.socketError}"
                ) from None
            except Exception as e:
                raise SystemExit(f"chatd: cannot listen on {self._endpoint}: {e}") from None
            self._admin_port = self._listen_for_operator()
        except SystemExit:
            if self._port is not None:
                self._port.stopListening()
            self._unlock_database()
            raise
        # Accept nothing until the server is ready.
        self._port.stopReading()
        self._admin_port.stopReading()

    def _lock_database(self) -> None:
        """
        Take the database's lock file (C{<db>.lock}, a symbolic link naming
        this process): one server per database, since its writer numbers
        the messages.  The lock of a server that was killed is taken over.
        """
        path = os.path.abspath(self._db_path) + ".lock"
        lock = FilesystemLock(path)
        if not lock.lock():
            raise SystemExit(
                f"chatd: another chatd is running on the database {self._db_path} (it holds {path})"
            )
        self._db_lock = lock

    def _unlock_database(self) -> None:
        if self._db_lock is not None:
            self._db_lock.unlock()
            self._db_lock = None

    def _listen_for_operator(self) -> Any:
        """
        Bind the operator's control socket, mode 0600.  A socket left there
        by a server that was killed is replaced: this server holds the
        database's lock, so it is nobody's.
        """
        path = self._admin_socket
        if len(os.fsencode(os.path.abspath(path))) >= _MAX_SOCKET_PATH:
            raise SystemExit(
                f"chatd: the control socket path {path} is too long for a UNIX socket "
                f"({_MAX_SOCKET_PATH - 1} bytes at most); choose another with --admin-socket"
            )
        with suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)
        endpoint = UNIXServerEndpoint(self._reactor, path, mode=0o600)
        try:
            return _listen_now(endpoint, self._admin_handover)
        except error.CannotListenError as e:
            raise SystemExit(
                f"chatd: cannot open the control socket {path}: {e.socketError}"
            ) from None

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
        if self.running and self._restore_signals is None:
            self._restore_signals = self._install_signals(self._stop_on_signal)

    def _stop_on_signal(self, number: int) -> None:
        self.log.info("Received {signal}, shutting down", signal=signal.Signals(number).name)
        self._reactor.callFromThread(self._reactor.stop)

    async def _start(self) -> None:
        if self.insecure_fast_hashes:
            self.log.warn(
                "chatd: --insecure-fast-hashes: passwords are hashed with parameters "
                "that protect nothing (for tests and benchmarks only)"
            )
        try:
            self._assembly = await assembly.open(
                self._db_path,
                self._reactor,
                self.limits,
                insecure_fast_hashes=self.insecure_fast_hashes,
                token_days=self.token_days,
                files_folder=self.files_folder,
                file_limits=self.file_limits,
                redis=self._redis,
            )
        except Exception as e:
            raise _StartFailed(f"cannot start with the database {self._db_path}: {e}") from e
        if self._metrics_endpoint is not None:
            try:
                self._metrics_port = await metrics.listen(
                    self._reactor, self._metrics_endpoint, self._assembly.metrics
                )
            except Exception as e:
                raise _StartFailed(f"cannot serve metrics on {self._metrics_endpoint}: {e}") from e
        if self.retention_days is not None:
            self._retention = Retention(self._assembly.store, self._reactor, self.retention_days)
            self._retention.start()
        self._handover.serve(self._assembly.factory)
        self._admin_handover.serve(
            AdminFactory(Operator(self._assembly, self._db_path, self._reactor))
        )
        if self.freeze_heap:
            # The modules and the directory live as long as the process:
            # out of the collector's sight, a full collection scans only
            # what came after them, and holds the reactor for less (20-40
            # ms fewer, with 2000 users, in bench shape (i)).
            gc.collect()
            gc.freeze()
        self._port.startReading()
        self._admin_port.startReading()
        self.log.info(
            "chatd ready on {address} with {users} users and {rooms} rooms in {db};"
            " operator's socket {admin}",
            address=self._port.getHost(),
            users=len(self._assembly.directory.usernames),
            rooms=len(self._assembly.directory.rooms),
            db=self._db_path,
            admin=self._admin_socket,
        )

    def _failed_to_start(self, failure: Failure) -> None:
        if failure.check(_StartFailed):
            self.log.critical("chatd: {why}", why=failure.value)
        else:
            self.log.failure("chatd: cannot start", failure, LogLevel.critical)
        self._reactor.stop()

    async def _stop(self) -> None:
        """
        Stop accepting, then shut the server down cleanly (see
        L{Assembly.shut_down}).
        """
        if self._admin_port is not None:
            await self._admin_port.stopListening()
        if self._port is not None:
            await self._port.stopListening()
        if self._started is not None:
            # A start still in progress finishes first.
            await self._started
        if self._metrics_port is not None:
            await self._metrics_port.stopListening()
        if self._retention is not None:
            await self._retention.stop()
        if self._assembly is not None:
            await self._assembly.shut_down(self._reactor, SHUTDOWN_GRACE)
        if self._restore_signals is not None:
            self._restore_signals()
            self._restore_signals = None
        self._unlock_database()
        self.log.info("chatd stopped")

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return ensureDeferred(self._stop())


#: Connections the listening port accepts in a row, at most.
ACCEPTS_IN_A_ROW: Final = 16


def _accept_in_slices(port: Any) -> None:
    """
    Have C{port} accept at most L{ACCEPTS_IN_A_ROW} connections each time
    the reactor finds it ready.  A Twisted port accepts as many as are
    waiting, up to its C{numberAccepts}, which grows by 20 each time it is
    reached: a crowd connecting at once (the clients of a server that
    restarted) was accepted 200 in a row, 20-30 ms during which nobody
    else's message moved (bench shape (i)).
    """
    if not hasattr(port, "numberAccepts"):
        return
    read = port.doRead

    def doRead() -> Any:
        port.numberAccepts = min(port.numberAccepts, ACCEPTS_IN_A_ROW)
        return read()

    port.doRead = doRead


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
