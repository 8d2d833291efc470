"""
Bytes to requests and replies to bytes: one L{ChatProtocol} per connection.

A frame is decoded once (L{wire.decode}) and passes flood control (a token
bucket per connection) here; the server's route table
(L{ChatServer.routes}) says how the request is scheduled, and
L{ChatServer.dispatch} applies the login gate, parses its fields and runs
its handler.  Every request gets exactly one reply, and replies leave in
request order (L{RequestQueue}).

Requests of one connection run one after another, so each sees the effects
of the ones before it; the exception is a route marked C{concurrent}
(C{send_message}), whose order is fixed the moment it is queued in the
L{GroupCommit}: consecutive sends run together, so a client with many
messages in flight has them all committed in one group.

What the client got wrong (a L{ChatError}) becomes an C{error} reply; any
other exception is a bug: its traceback goes to the log, C{internal_error}
to the wire, and every other connection carries on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from chatd import wire
from chatd.database import DatabaseUnavailable
from chatd.metrics import NO_TYPE, UNKNOWN_TYPE, Metrics
from chatd.routes import Route
from chatd.scheduling import RequestQueue
from chatd.server import ChatServer, Reply
from chatd.wire import ChatError, Payload

#: Seconds a connection has to log in before it is closed.
LOGIN_DEADLINE = 30.0
#: Protocol errors in a row after which a connection is closed.
MAX_ERRORS_IN_A_ROW = 10


@dataclass(frozen=True, slots=True)
class Limits:
    """
    The per-connection limits set by the command line (PROTOCOL.md 8).

    @ivar transfer_rate: bytes per second of file chunks (uploaded and
        downloaded), which do not count against C{rate}.
    @ivar transfer_burst: bytes of chunks a connection may move at once.
    """

    max_frame: int = wire.MAX_FRAME
    rate: float = 20.0
    burst: int = 50
    idle_timeout: float = 300.0
    max_pending: int = 1024 * 1024
    transfer_rate: float = 32 * 1024 * 1024
    transfer_burst: int = 4 * 1024 * 1024


class _Answer:
    """
    What a request's reply slot is filled with: the framed reply, and what
    to do once it is written.
    """

    __slots__ = ("closes", "code", "data", "releases")

    def __init__(self, data: bytes, code: str | None = None, closes: bool = False) -> None:
        self.data = data
        # The error code the reply carries, if it is an error.
        self.code = code
        # Whether the connection closes once this reply is written.
        self.closes = closes
        # Whether the pushes held while the request ran go out after it.
        self.releases = False


class _Backlog:
    """
    The transport's producer: it tells when the peer stops reading.

    While the transport's write buffer is full, every byte written to it is
    counted; past C{max_pending} the connection is dropped.
    """

    __slots__ = ("paused", "queued")

    def __init__(self) -> None:
        self.paused = False
        self.queued = 0

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self.queued = 0

    def stopProducing(self) -> None:
        self.paused = True


class ChatProtocol(Int32StringReceiver, TimeoutMixin):
    """
    One client connection, and the L{Session} the server sees of it.

    @ivar user_id: the logged-in user, or L{None}.
    @ivar username: that user's name, or L{None}.
    @ivar connected: whether the connection is still open.
    """

    log = Logger()
    transport: Any
    connected: bool = False

    def __init__(
        self,
        server: ChatServer,
        limits: Limits,
        clock: IReactorTime,
        metrics: Metrics | None = None,
    ) -> None:
        """
        @param metrics: where requests and errors are counted; by default,
            figures of its own that nobody reads.
        """
        self.MAX_LENGTH = limits.max_frame
        self._server = server
        self._limits = limits
        self._clock = clock
        self._metrics = Metrics() if metrics is None else metrics
        self.user_id: int | None = None
        self.username: str | None = None
        self.token_hash: bytes | None = None
        self.connected = False
        # _deaf: no more frames are read (after an oversize one).
        # _closing: the connection is being closed; nothing more is written.
        self._deaf = False
        self._closing = False
        # Flood control: a token bucket refilled at limits.rate per second,
        # and one of bytes for file chunks.
        self._tokens = float(limits.burst)
        self._refilled = clock.seconds()
        self._bytes = float(limits.transfer_burst)
        self._bytes_refilled = self._refilled
        self._errors_in_a_row = 0
        self._requests: RequestQueue[_Answer] = RequestQueue(self._deliver)
        # Pushes wait here while a holds_pushes request (login) runs, so
        # that its reply (login_successful, login_info) comes first.
        self._held: list[bytes] | None = None
        # What waits for the end of the current batch, if anything does.
        self._unwritten: list[bytes] | None = None
        self._backlog = _Backlog()

    def callLater(self, period: float, func: Any) -> IDelayedCall:
        """
        Schedule timeouts on the clock this protocol was given.
        """
        return self._clock.callLater(period, func)

    # Connection events.

    def connectionMade(self) -> None:
        self.connected = True
        self._server.connected(self)
        # Replies and pushes are small and must leave at once: Nagle's
        # algorithm would hold a second write behind the peer's delayed ACK.
        no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if no_delay is not None:
            no_delay(True)
        self.transport.registerProducer(self._backlog, True)
        self.setTimeout(LOGIN_DEADLINE)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.connected = False
        self._stop()
        self.setTimeout(None)
        user_id = self.user_id
        self._server.disconnected(self)
        self.log.info(
            "Connection from {peer} closed (user {user_id})",
            peer=self.transport.getPeer(),
            user_id=user_id,
        )

    def timeoutConnection(self) -> None:
        if self.user_id is None:
            self.log.info("Closing a connection that did not log in in time")
            self._close()
        else:
            self.kick(wire.IDLE_TIMEOUT)

    # Incoming frames.

    def dataReceived(self, data: bytes) -> None:
        if not (self._closing or self._deaf):
            super().dataReceived(data)

    def lengthLimitExceeded(self, length: int) -> None:
        # The stream cannot be resynchronised: read nothing more, answer the
        # requests already received, then this one, then close.
        self.transport.pauseProducing()
        self._deaf = True
        answer = self._error(ChatError(wire.FRAME_TOO_LARGE), None)
        answer.closes = True
        self._requests.answered(answer)

    def stringReceived(self, payload: bytes) -> None:
        if self._closing or self._deaf:
            return
        if self.user_id is not None:
            # Only a logged-in connection's requests keep it alive: the
            # login deadline holds whatever comes before.
            self.resetTimeout()
        request: Payload | None = None
        route: Route | None = None
        try:
            request = wire.decode(payload)
            route = self._server.routes.get(request["type"])
            self._metrics.requests[request["type"] if route is not None else UNKNOWN_TYPE] += 1
            if "id" in request and wire.request_id(request) is None:
                raise ChatError(
                    wire.INVALID_FIELD,
                    "Field 'id' must be an integer from 0 to 2**53 - 1.",
                )
            if route is not None and route.transfer_cost is not None:
                if not self._take_bytes(route.transfer_cost(request)):
                    raise ChatError(wire.RATE_LIMITED, "Too many bytes of files; slow down.")
            elif not self._take_token():
                raise ChatError(wire.RATE_LIMITED)
        except ChatError as e:
            self._requests.answered(self._error(e, request))
            return
        concurrent = route is not None and route.concurrent
        self._requests.submit(partial(self._run, route, request), concurrent)

    def _take_token(self) -> bool:
        now = self._clock.seconds()
        limits = self._limits
        self._tokens = min(limits.burst, self._tokens + (now - self._refilled) * limits.rate)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _take_bytes(self, count: int) -> bool:
        now = self._clock.seconds()
        limits = self._limits
        self._bytes = min(
            limits.transfer_burst,
            self._bytes + (now - self._bytes_refilled) * limits.transfer_rate,
        )
        self._bytes_refilled = now
        if self._bytes < count:
            return False
        self._bytes -= count
        return True

    # Running requests.

    def _run(self, route: Route | None, request: Payload) -> _Answer | Deferred[_Answer]:
        """
        Run one request through the server.

        @return: its answer, or a Deferred of it that does not fail.
        """
        if route is not None and route.holds_pushes:
            self._held = []
        logged_in = self.user_id is not None
        try:
            result = self._server.dispatch(self, request)
        except BaseException:
            return self._answer(Failure(), route, request, logged_in)
        if isinstance(result, Deferred):
            return result.addBoth(self._answer, route, request, logged_in)
        return self._answer(result, route, request, logged_in)

    def _answer(
        self, result: Reply | Failure, route: Route | None, request: Payload, logged_in: bool
    ) -> _Answer:
        try:
            if isinstance(result, Failure):
                answer = self._failed(result, request)
            else:
                answer = self._succeeded(result, route, request)
        except BaseException:
            answer = self._failed(Failure(), request)
        answer.releases = route is not None and route.holds_pushes
        if not logged_in and self.user_id is not None:
            # Logged in: from now on the idle timeout applies.
            self.setTimeout(self._limits.idle_timeout)
        return answer

    def _succeeded(self, result: Reply, route: Route | None, request: Payload) -> _Answer:
        closes = route is not None and route.closes
        rid = wire.request_id(request)
        if isinstance(result, wire.Spliced):
            return _Answer(result.frame(rid), closes=closes)
        replies = result if isinstance(result, list) else [result]
        if rid is not None:
            first = replies[0]
            replies[0] = {"type": first.pop("type"), "id": rid, **first}
        data = b"".join(wire.frame(payload) for payload in replies)
        return _Answer(data, closes=closes)

    def _failed(self, failure: Failure, request: Payload) -> _Answer:
        if isinstance(failure.value, ChatError):
            return self._error(failure.value, request)
        # DatabaseUnavailable was logged once, by the store's health check.
        if not failure.check(DatabaseUnavailable):
            self.log.failure(
                "Request {type!r} of user {user_id} failed",
                failure,
                type=request["type"],
                user_id=self.user_id,
            )
        return self._error(ChatError(wire.INTERNAL_ERROR), request)

    # Replies.

    def _error(self, error: ChatError, request: Payload | None) -> _Answer:
        rid = wire.request_id(request) if request is not None else None
        self._metrics.errors[(self._kind(request), error.code)] += 1
        return _Answer(wire.frame(wire.error(error.code, error.message, rid)), error.code)

    def _kind(self, request: Payload | None) -> str:
        """
        @return: the type of C{request} as a metrics label: a request
            type that is no route is L{UNKNOWN_TYPE}, so that clients cannot
            make new labels; no request (a frame that was none) is
            L{NO_TYPE}.
        """
        if request is None:
            return NO_TYPE
        kind: str = request["type"]
        return kind if kind in self._server.routes else UNKNOWN_TYPE

    def _deliver(self, answer: _Answer) -> bool:
        """
        Write the answer at the head of the line.

        @return: whether the connection goes on.
        """
        self._write(answer.data)
        if answer.releases:
            self._release_held()
        if answer.closes:
            self._close()
        elif answer.code in wire.PROTOCOL_ERRORS:
            self._errors_in_a_row += 1
            if self._errors_in_a_row >= MAX_ERRORS_IN_A_ROW:
                self.kick(wire.TOO_MANY_ERRORS)
        else:
            self._errors_in_a_row = 0
        return not self._closing

    def _write(self, data: bytes) -> None:
        # Within a commit group's batch (L{chatd.sessions.Sessions.batch}),
        # what is written waits for the end of the group and leaves in one
        # write, the group's pushes after it, before the writes of the
        # connections that sent nothing: a sender's replies to the messages
        # of a group cost one write, not one each, and come first.
        unwritten = self._unwritten
        if unwritten is not None:
            unwritten.append(data)
        elif self._server.sessions.at_batch_end(self, self._flush):
            self._unwritten = [data]
        else:
            self._transmit(data)

    def _flush(self) -> None:
        unwritten, self._unwritten = self._unwritten, None
        if unwritten:
            self._transmit(unwritten[0] if len(unwritten) == 1 else b"".join(unwritten))

    def _transmit(self, data: bytes) -> None:
        backlog = self._backlog
        if backlog.paused:
            if backlog.queued + len(data) > self._limits.max_pending:
                self.log.warn(
                    "Dropping user {user_id}: more than {limit} bytes wait unsent",
                    user_id=self.user_id,
                    limit=self._limits.max_pending,
                )
                self._stop()
                self.transport.abortConnection()
                return
            backlog.queued += len(data)
        self.transport.write(data)

    def _release_held(self) -> None:
        held, self._held = self._held, None
        for frame in held or ():
            self._write(frame)

    def _stop(self) -> None:
        # Nothing more is written, and no waiting request starts.
        self._closing = True
        self._requests.stop()

    def _close(self) -> None:
        self._stop()
        self._flush()
        self.transport.loseConnection()

    @property
    def unsent(self) -> int:
        """
        The bytes written since the peer stopped reading, that wait unsent:
        what C{max_pending} limits.
        """
        return self._backlog.queued

    # The Session interface, for the server.

    def send(self, frame: bytes) -> None:
        """
        Write a push (already framed) unless the connection is closing.
        """
        if self._closing:
            return
        if self._held is not None:
            self._held.append(frame)
        else:
            self._write(frame)

    def stop_reading(self) -> None:
        """
        Read no more requests; those already read still run and are
        answered.
        """
        self._deaf = True
        self.transport.pauseProducing()

    def kick(self, reason: str) -> None:
        """
        Push C{server_kick} with C{reason}, then close.
        """
        if self._closing:
            return
        self.log.info("Kicking user {user_id}: {reason}", user_id=self.user_id, reason=reason)
        self._write(wire.frame({"type": "server_kick", "reason": reason}))
        self._close()


class ChatFactory(Factory):
    """
    Builds a L{ChatProtocol} for each connection to one L{ChatServer}.
    """

    noisy = False

    def __init__(
        self,
        server: ChatServer,
        limits: Limits,
        clock: IReactorTime,
        metrics: Metrics | None = None,
    ) -> None:
        """
        @param metrics: where its connections count requests and errors; by
            default, figures of its own that nobody reads.
        """
        self.server = server
        self.limits = limits
        self.clock = clock
        self.metrics = Metrics() if metrics is None else metrics

    def buildProtocol(self, addr: Any) -> ChatProtocol:
        return ChatProtocol(self.server, self.limits, self.clock, self.metrics)

    def unsent(self) -> int:
        """
        @return: the bytes waiting unsent for slow readers, over every open
            connection of the server (see L{ChatProtocol.unsent}).
        """
        return sum(
            session.unsent
            for session in self.server.sessions.everyone()
            # Sessions that are not connections (the tests' fakes) hold no
            # bytes.
            if isinstance(session, ChatProtocol)
        )
