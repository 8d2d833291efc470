"""
Bytes to requests and replies to bytes: one L{ChatProtocol} per connection.

A frame is decoded once (L{wire.decode}), passes flood control and the
login gate in L{ChatServer.dispatch}, and is handled by the server.  Every
request gets exactly one reply, and replies leave in request order: each
request takes a slot in a queue when it arrives, and slots are written out
from the head as they fill.

Requests of one connection run one after another, so each sees the effects
of the ones before it; the exception is C{send_message}, whose order is
fixed the moment it is queued in the L{GroupCommit}: consecutive sends
run together, so a client with many messages in flight has them all
committed in one group.

What the client got wrong (a L{ChatError}) becomes an C{error} reply; any
other exception is a bug: its traceback goes to the log, C{internal_error}
to the wire, and every other connection carries on.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    """

    max_frame: int = wire.MAX_FRAME
    rate: float = 20.0
    burst: int = 50
    idle_timeout: float = 300.0
    max_pending: int = 1024 * 1024


class _Slot:
    """
    A place in the reply queue: empty until the request's reply is ready.
    """

    __slots__ = ("closes", "code", "data")

    def __init__(self) -> None:
        self.data: bytes | None = None
        # The error code the reply carries, if it is an error.
        self.code: str | None = None
        # Whether the connection closes once this reply is written.
        self.closes = False


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

    def __init__(self, server: ChatServer, limits: Limits, clock: IReactorTime) -> None:
        self.MAX_LENGTH = limits.max_frame
        self._server = server
        self._limits = limits
        self._clock = clock
        self.user_id: int | None = None
        self.username: str | None = None
        self.connected = False
        # _deaf: no more frames are read (after an oversize one).
        # _closing: the connection is being closed; nothing more is written.
        self._deaf = False
        self._closing = False
        # Flood control: a token bucket refilled at limits.rate per second.
        self._tokens = float(limits.burst)
        self._refilled = clock.seconds()
        self._errors_in_a_row = 0
        # Lists, not deques: an empty deque costs 600 bytes, and most
        # connections sit idle.
        self._replies: list[_Slot] = []
        self._waiting: list[tuple[_Slot, Payload]] = []
        self._running = 0
        self._running_exclusive = 0
        self._pumping = False
        # Pushes wait here while a login reply is not yet written, so that
        # login_successful and login_info come first.
        self._held: list[bytes] | None = None
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
        self.log.info("Connection opened from {peer}", peer=self.transport.getPeer())

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.connected = False
        self._closing = True
        self.setTimeout(None)
        user_id = self.user_id
        self._server.disconnected(self)
        self.log.info(
            "Connection closed from {peer} (user {user_id})",
            peer=self.transport.getPeer(),
            user_id=user_id,
        )

    def timeoutConnection(self) -> None:
        if self.user_id is None:
            self.log.info("Closing a connection that did not log in in time")
            self._close()
        else:
            self.kick("idle_timeout")

    # Incoming frames.

    def dataReceived(self, data: bytes) -> None:
        if not (self._closing or self._deaf):
            super().dataReceived(data)

    def lengthLimitExceeded(self, length: int) -> None:
        # The stream cannot be resynchronised: read nothing more, answer the
        # requests already received, then this one, then close.
        self.transport.pauseProducing()
        self._deaf = True
        slot = self._new_slot()
        self._fill(slot, [wire.error(wire.FRAME_TOO_LARGE)], wire.FRAME_TOO_LARGE)
        slot.closes = True
        self._flush()

    def stringReceived(self, payload: bytes) -> None:
        if self._closing or self._deaf:
            return
        if self.user_id is not None:
            # Only a logged-in connection's requests keep it alive: the
            # login deadline holds whatever comes before.
            self.resetTimeout()
        slot = self._new_slot()
        request: Payload | None = None
        try:
            request = wire.decode(payload)
            if "id" in request and wire.request_id(request) is None:
                raise ChatError(
                    wire.INVALID_FIELD,
                    "Field 'id' must be an integer from 0 to 2**53 - 1.",
                )
            if not self._take_token():
                raise ChatError(wire.RATE_LIMITED)
        except ChatError as e:
            self._answer_error(slot, e, request)
            return
        self._waiting.append((slot, request))
        self._pump()

    def _take_token(self) -> bool:
        now = self._clock.seconds()
        limits = self._limits
        self._tokens = min(limits.burst, self._tokens + (now - self._refilled) * limits.rate)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    # Running requests.

    def _pump(self) -> None:
        """
        Start every waiting request that may start now.
        """
        if self._pumping:
            return
        self._pumping = True
        try:
            while self._waiting and not self._closing:
                slot, request = self._waiting[0]
                concurrent = request["type"] == "send_message"
                if self._running and not (concurrent and not self._running_exclusive):
                    return
                del self._waiting[0]
                self._start(slot, request, concurrent)
        finally:
            self._pumping = False

    def _start(self, slot: _Slot, request: Payload, concurrent: bool) -> None:
        self._running += 1
        if not concurrent:
            self._running_exclusive += 1
        if request["type"] == "login":
            self._held = []
        try:
            result = self._server.dispatch(self, request)
        except BaseException:
            self._finished(Failure(), slot, request, concurrent)
            return
        if isinstance(result, Deferred):
            result.addBoth(self._finished, slot, request, concurrent)
        else:
            self._finished(result, slot, request, concurrent)

    def _finished(
        self, result: Reply | Failure, slot: _Slot, request: Payload, concurrent: bool
    ) -> None:
        self._running -= 1
        if not concurrent:
            self._running_exclusive -= 1
        if isinstance(result, Failure):
            if isinstance(result.value, ChatError):
                self._answer_error(slot, result.value, request)
            else:
                self._bug(result, request)
                self._answer_error(slot, ChatError(wire.INTERNAL_ERROR), request)
        else:
            replies = result if isinstance(result, list) else [result]
            rid = wire.request_id(request)
            if rid is not None:
                first = replies[0]
                replies[0] = {"type": first.pop("type"), "id": rid, **first}
            self._fill(slot, replies, None)
            slot.closes = replies[0]["type"] == "logout_successful"
            self._flush()
        if request["type"] == "login":
            if self.user_id is not None:
                self.setTimeout(self._limits.idle_timeout)
            self._release_held()
        self._pump()

    def _bug(self, failure: Failure, request: Payload) -> None:
        # DatabaseUnavailable was logged once, by the store's health check.
        if not failure.check(DatabaseUnavailable):
            self.log.failure(
                "Request {type!r} of user {user_id} failed",
                failure,
                type=request["type"],
                user_id=self.user_id,
            )

    # Replies.

    def _new_slot(self) -> _Slot:
        slot = _Slot()
        self._replies.append(slot)
        return slot

    def _fill(self, slot: _Slot, payloads: list[Payload], code: str | None) -> None:
        slot.data = b"".join(wire.frame(payload) for payload in payloads)
        slot.code = code

    def _answer_error(self, slot: _Slot, error: ChatError, request: Payload | None) -> None:
        rid = wire.request_id(request) if request is not None else None
        self._fill(slot, [wire.error(error.code, error.message, rid)], error.code)
        self._flush()

    def _flush(self) -> None:
        """
        Write the replies at the head of the queue that are ready.
        """
        replies = self._replies
        while replies and replies[0].data is not None:
            slot = replies.pop(0)
            assert slot.data is not None
            self._write(slot.data)
            if slot.closes:
                self._close()
                return
            if slot.code in wire.PROTOCOL_ERRORS:
                self._errors_in_a_row += 1
                if self._errors_in_a_row >= MAX_ERRORS_IN_A_ROW:
                    self.kick("too_many_errors")
                    return
            else:
                self._errors_in_a_row = 0

    def _write(self, data: bytes) -> None:
        backlog = self._backlog
        if backlog.paused:
            if backlog.queued + len(data) > self._limits.max_pending:
                self.log.warn(
                    "Dropping user {user_id}: more than {limit} bytes wait unsent",
                    user_id=self.user_id,
                    limit=self._limits.max_pending,
                )
                self._closing = True
                self.transport.abortConnection()
                return
            backlog.queued += len(data)
        self.transport.write(data)

    def _release_held(self) -> None:
        held, self._held = self._held, None
        for frame in held or ():
            self._write(frame)

    def _close(self) -> None:
        self._closing = True
        self.transport.loseConnection()

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

    def __init__(self, server: ChatServer, limits: Limits, clock: IReactorTime) -> None:
        self.server = server
        self.limits = limits
        self.clock = clock

    def buildProtocol(self, addr: Any) -> ChatProtocol:
        return ChatProtocol(self.server, self.limits, self.clock)
