"""
What the chatd tests share: a synchronous database, fake sessions, and a
server wired together from real parts on a temporary SQLite file.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable
from typing import Any

from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from chatd import assembly, wire
from chatd.assembly import Assembly
from chatd.database import is_postgresql, make_pool
from chatd.passwords import Passwords, cheap_hasher
from chatd.protocol import ChatProtocol, Limits
from chatd.server import ChatServer
from chatd.store import Store


def socket_path(testcase: SynchronousTestCase) -> str:
    """
    @return: a path for the operator's control socket in a new folder of
        the system's temporary directory, removed after the test: a UNIX
        socket's path has room for 107 bytes, and one in trial's nested
        temporary folders may not fit.
    """
    folder = tempfile.mkdtemp(prefix="chatd-")
    testcase.addCleanup(shutil.rmtree, folder, True)
    return os.path.join(folder, "admin")


class InlineThreadPool:
    """
    A thread pool that runs work at once, on the calling thread.
    """

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def callInThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        f(*args, **kwargs)

    def callInThreadWithCallback(
        self,
        on_result: Callable[[bool, Any], None],
        f: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        try:
            result = f(*args, **kwargs)
        except BaseException:
            on_result(False, Failure())
        else:
            on_result(True, result)


class ImmediateReactor(MemoryReactorClock):
    """
    A memory reactor with a clock whose C{callFromThread} runs at once: with
    L{InlineThreadPool}, database and hashing work completes synchronously.
    """

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        f(*args, **kwargs)


#: The wall clock of test databases: 2026-11-24T06:00:30.123Z.
FIXED_NOW = 1795500030.123

#: The version 2 fields of a Message with nothing to say (PROTOCOL.md 3).
PLAIN = {
    "edited_at": None,
    "deleted": False,
    "reply_to": None,
    "mentions": [],
    "reactions": [],
    "file": None,
}


def inline_pools(
    path: str, reactor: ImmediateReactor, busy_timeout_ms: int = 5000
) -> tuple[ConnectionPool, ConnectionPool]:
    """
    @return: the writer's pool and the readers' pool on the SQLite file at
        C{path}, running their SQL synchronously on the calling thread.
    """
    pools = []
    for connections in (1, 2):
        pool = make_pool(path, reactor, connections, busy_timeout_ms)
        pool.threadpool = InlineThreadPool()  # type: ignore[assignment]
        pools.append(pool)
    return pools[0], pools[1]


def open_store(
    testcase: SynchronousTestCase,
    reactor: ImmediateReactor,
    path: str | None = None,
    busy_timeout_ms: int = 5000,
) -> Store:
    """
    @return: a L{Store} on a real SQLite file (by default a new one in the
        test's temporary directory) whose SQL runs synchronously; closed when
        the test ends.
    """
    if path is None:
        path = testcase.mktemp() + ".sqlite3"
    store = Store(*inline_pools(path, reactor, busy_timeout_ms), now=lambda: FIXED_NOW)
    testcase.successResultOf(store.migrate())
    testcase.addCleanup(store.close)
    return store


class FakeSession:
    """
    A session that records what the server pushes to it.
    """

    def __init__(self) -> None:
        self.user_id: int | None = None
        self.username: str | None = None
        self.token_hash: bytes | None = None
        self.connected = True
        self.frames: list[bytes] = []
        self.kicked: str | None = None

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)

    def kick(self, reason: str) -> None:
        self.kicked = reason
        self.connected = False

    def stop_reading(self) -> None:
        pass

    def pushes(self, kind: str | None = None) -> list[wire.Payload]:
        """
        @return: the pushes received so far (of type C{kind}, if given), and
            forget them all.
        """
        received = [json.loads(frame[4:]) for frame in self.frames]
        self.frames.clear()
        return [p for p in received if kind is None or p["type"] == kind]


class ServerHarness:
    """
    A L{ChatServer} made of real parts on a temporary database (by default
    a new one in the test's temporary directory), wired by
    L{chatd.assembly.assemble} and run synchronously: every Deferred it
    returns has fired by the time the call returns.
    """

    def __init__(self, testcase: SynchronousTestCase, path: str | None = None) -> None:
        self.testcase = testcase
        self.reactor = ImmediateReactor()
        if path is None:
            path = database_for(testcase)
        passwords = Passwords(self.reactor, cheap_hasher(), InlineThreadPool())  # type: ignore[arg-type]
        assembled = testcase.successResultOf(
            Deferred.fromCoroutine(
                assembly.assemble(
                    *inline_pools(path, self.reactor),
                    passwords,
                    self.reactor,
                    files_folder=testcase.mktemp() if is_postgresql(path) else path + ".files",
                    run_in_thread=maybeDeferred,
                    now=lambda: FIXED_NOW,
                )
            )
        )
        testcase.addCleanup(assembled.store.close)
        testcase.addCleanup(assembled.passwords.stop)
        testcase.addCleanup(assembled.transfers.stop)
        self.assembly = assembled
        self.store = assembled.store
        self.passwords = assembled.passwords
        self.directory = assembled.directory
        self.sessions = assembled.sessions
        self.server = assembled.server

    def call(self, session: Any, kind: str, **fields: Any) -> Any:
        """
        Dispatch a request and return its reply (a payload, or a list of
        them for login).

        @raise wire.ChatError: when the request is refused.
        """
        result = self.server.dispatch(session, {"type": kind, **fields})
        if isinstance(result, Deferred):
            outcome: list[Any] = []
            result.addBoth(outcome.append)
            assert outcome, f"{kind} did not complete synchronously"
            if isinstance(outcome[0], Failure):
                outcome[0].raiseException()
            result = outcome[0]
        if isinstance(result, wire.Spliced):
            # A reply already encoded (on_new_message): as the client reads it.
            return json.loads(result.frame()[4:])
        return result

    def error(self, session: Any, kind: str, **fields: Any) -> str:
        """
        @return: the error code a request is refused with.
        """
        try:
            self.call(session, kind, **fields)
        except wire.ChatError as e:
            return e.code
        raise AssertionError(f"{kind} {fields} was not refused")

    def user(self, name: str, password: str = "secret1") -> FakeSession:
        """
        Register C{name} and return a session logged in as them, with its
        login pushes forgotten.
        """
        session = FakeSession()
        self.call(session, "register", username=name, password=password)
        self.call(session, "login", username=name, password=password)
        session.frames.clear()
        return session

    def friends(self, a: FakeSession, b: FakeSession) -> None:
        """
        Make C{a} and C{b} friends, forgetting the pushes it causes.
        """
        assert b.username is not None
        self.call(a, "add_friend", username=b.username)
        self.call(b, "resolve_friend_request", user_id=a.user_id)
        a.frames.clear()
        b.frames.clear()


def connect(
    server: ChatServer, clock: MemoryReactorClock, limits: Limits | None = None
) -> tuple[ChatProtocol, StringTransport]:
    """
    @return: a L{ChatProtocol} for C{server} connected to a
        L{StringTransport}.
    """
    protocol = ChatProtocol(server, limits or Limits(), clock)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def frame(payload: wire.Payload | bytes) -> bytes:
    """
    @return: a frame of C{payload} (encoded as JSON unless it is bytes).
    """
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return struct.pack("!I", len(data)) + data


def unframe(data: bytes) -> list[wire.Payload]:
    """
    @return: the payloads of the frames in C{data}.
    """
    payloads = []
    while data:
        (length,) = struct.unpack("!I", data[:4])
        payloads.append(json.loads(data[4 : 4 + length]))
        data = data[4 + length :]
    return payloads


def received(transport: StringTransport) -> list[wire.Payload]:
    """
    @return: the payloads written to C{transport} so far, which it forgets.
    """
    payloads = unframe(transport.value())
    transport.clear()
    return payloads


# End to end: a real server on loopback TCP, driven by the real reactor.


class RunningServer:
    """
    A chatd server listening on a loopback port of the real reactor.

    @ivar port: the TCP port number it listens on.
    """

    def __init__(self, assembled: Assembly, listening: Any) -> None:
        self.server = assembled.server
        self.store = assembled.store
        self.cluster = assembled.cluster
        self.assembly = assembled
        self.listening = listening
        self.port: int = listening.getHost().port


def database_for(testcase: Any) -> str:
    """
    @return: a new database for C{testcase}: its C{new_database()} if it has
        one (the PostgreSQL copies of L{tests.postgres.on_postgresql}), else
        a new SQLite file in its temporary directory.
    """
    new = getattr(testcase, "new_database", None)
    return new() if new is not None else testcase.mktemp() + ".sqlite3"


async def start_server(
    testcase: Any,
    path: str | None = None,
    limits: Limits | None = None,
    *,
    token_days: float = 30.0,
    now: Callable[[], float] = time.time,
    redis: str | None = None,
) -> RunningServer:
    """
    Start a chatd server (L{chatd.assembly.open}) on a loopback port of the
    global reactor, on a new database in the test's temporary directory (or
    C{path}), with cheap password hashing.  It stops when the test ends; the
    test closes its own client connections.

    @param token_days: how long a session token works unused.
    @param now: the server's wall clock (commit times, token ages).
    @param redis: the Redis URL of the deployment the server is one
        process of (with a PostgreSQL C{path}).
    """
    from twisted.internet import reactor

    path = path or database_for(testcase)
    assembled = await assembly.open(
        path,
        reactor,
        limits or Limits(),
        insecure_fast_hashes=True,
        token_days=token_days,
        files_folder=testcase.mktemp() if is_postgresql(path) else None,
        now=now,
        redis=redis,
    )
    listening = reactor.listenTCP(0, assembled.factory, interface="127.0.0.1")

    async def stop() -> None:
        await listening.stopListening()
        await assembled.close()

    testcase.addCleanup(lambda: Deferred.fromCoroutine(stop()))
    return RunningServer(assembled, listening)


class WireClient(Int32StringReceiver):
    """
    A bare protocol client for end-to-end tests: requests get increasing
    ids; replies and pushes are queued for the test to await.
    """

    def __init__(self) -> None:
        self._next_id = 0
        self._replies: dict[int, Deferred[wire.Payload]] = {}
        self._pushes: list[wire.Payload] = []
        self._push_waiters: list[tuple[str | None, Deferred[wire.Payload]]] = []
        self.lost: Deferred[None] = Deferred()

    def connectionLost(self, reason: Any = None) -> None:
        for d in self._replies.values():
            d.errback(ConnectionError("connection lost"))
        self._replies.clear()
        self.lost.callback(None)

    def stringReceived(self, data: bytes) -> None:
        payload = json.loads(data)
        rid = payload.get("id")
        if rid is not None and rid in self._replies:
            self._replies.pop(rid).callback(payload)
            return
        for i, (kind, d) in enumerate(self._push_waiters):
            if kind is None or payload["type"] == kind:
                del self._push_waiters[i]
                d.callback(payload)
                return
        self._pushes.append(payload)

    def request(self, kind: str, **fields: Any) -> Deferred[wire.Payload]:
        """
        Send a request; the Deferred fires with its reply (an C{error}
        payload included).
        """
        self._next_id += 1
        d: Deferred[wire.Payload] = Deferred()
        self._replies[self._next_id] = d
        self.sendString(json.dumps({"type": kind, "id": self._next_id, **fields}).encode())
        return d

    def push(self, kind: str | None = None) -> Deferred[wire.Payload]:
        """
        @return: fires with the first push (of type C{kind}, if given) not yet
            taken, arrived or still to come.
        """
        for i, payload in enumerate(self._pushes):
            if kind is None or payload["type"] == kind:
                del self._pushes[i]
                return _fired(payload)
        d: Deferred[wire.Payload] = Deferred()
        self._push_waiters.append((kind, d))
        return d

    def pending_pushes(self) -> list[wire.Payload]:
        """
        @return: the pushes received and not taken, which are forgotten.
        """
        pushes, self._pushes = self._pushes, []
        return pushes

    async def close(self) -> None:
        """
        Close the connection and wait until it is closed.
        """
        self.transport.loseConnection()
        await self.lost


def _fired(value: Any) -> Deferred[Any]:
    d: Deferred[Any] = Deferred()
    d.callback(value)
    return d


async def wire_client(
    testcase: Any, port: int, make: Callable[[], WireClient] = WireClient
) -> WireClient:
    """
    @param make: makes the client (a subclass of L{WireClient}, say).
    @return: a L{WireClient} connected to C{port} on loopback, closed when
        the test ends.
    """
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    client = make()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)

    async def close() -> None:
        if client.transport.connected:
            await client.close()

    testcase.addCleanup(lambda: Deferred.fromCoroutine(close()))
    return client


async def logged_in(testcase: Any, port: int, name: str, password: str = "secret1") -> WireClient:
    """
    @return: a L{WireClient} registered (if need be) and logged in as
        C{name}, with its C{login_info} push taken.
    """
    client = await wire_client(testcase, port)
    await client.request("register", username=name, password=password)
    reply = await client.request("login", username=name, password=password)
    assert reply["type"] == "login_successful", reply
    await client.push("login_info")
    return client
