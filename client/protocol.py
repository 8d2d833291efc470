"""
The client's side of the chatd wire protocol (PROTOCOL.md), without Qt.

L{ChatClientProtocol} speaks one connection: each request gets an id and a
L{Deferred} that fires with the reply payload or fails with L{ChatError};
pushes go to a listener; a C{ping} goes out every 60 s.  The session that
survives the network on top of it is L{client.session.ChatClient}.
"""

from __future__ import annotations

import json
from typing import Any, Final, Protocol

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure

from chatd.wire import encode
from client.state import Payload

#: Seconds between two pings (PROTOCOL.md section 8).
PING_INTERVAL: Final = 60.0
#: The largest reply we accept: a history page of 100 messages of 4000
#: characters, each up to 4 bytes in UTF-8, fits with room to spare.
MAX_REPLY: Final = 4 * 1024 * 1024


class ChatError(Exception):
    """
    The server refused a request with an C{error} reply.

    @ivar code: the error code (PROTOCOL.md section 7).
    @ivar message: the server's sentence for people.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


class Disconnected(Exception):
    """
    The request could not be answered: there is no connection, or it was
    lost before the reply came.
    """

    def __init__(self, message: str = "You are offline.") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConnectionListener(Protocol):
    """
    What a L{ChatClientProtocol} tells about its connection.
    """

    def connection_made(self, protocol: ChatClientProtocol) -> None:
        """
        The connection is open.
        """

    def connection_lost(self, protocol: ChatClientProtocol, reason: Failure) -> None:
        """
        The connection closed; every request still waiting failed with
        L{Disconnected}.
        """

    def push_received(self, payload: Payload) -> None:
        """
        The server pushed C{payload} (it carries no request id).
        """


class ChatClientProtocol(Int32StringReceiver):
    """
    One connection to a chatd server: length-prefixed JSON frames, requests
    matched to replies by id, pushes handed to a listener.

    @ivar connected: whether the connection is open.
    """

    MAX_LENGTH = MAX_REPLY
    log = Logger()
    transport: Any

    def __init__(self, clock: IReactorTime, listener: ConnectionListener | None = None) -> None:
        self._clock = clock
        self.listener = listener
        self.connected = False
        self._next_id = 0
        self._waiting: dict[int, Deferred[Payload]] = {}
        self._pinger: LoopingCall | None = None
        self._ping_unanswered = False

    def connectionMade(self) -> None:
        self.connected = True
        pinger = self._pinger = LoopingCall(self._ping)
        pinger.clock = self._clock
        pinger.start(PING_INTERVAL, now=False).addErrback(self._bug)
        if self.listener is not None:
            self.listener.connection_made(self)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.connected = False
        if self._pinger is not None and self._pinger.running:
            self._pinger.stop()
        self._pinger = None
        waiting, self._waiting = self._waiting, {}
        why = "The connection was lost."
        if reason is not None and not reason.check(ConnectionDone):
            # Say why when it is news: a refused certificate, a reset.
            why = f"The connection was lost: {reason.getErrorMessage()}"
        for d in waiting.values():
            d.errback(Disconnected(why))
        if self.listener is not None:
            self.listener.connection_lost(self, reason or Failure(Disconnected()))

    def request(self, kind: str, **fields: Any) -> Deferred[Payload]:
        """
        Send a request.

        @param kind: the request's C{type}.
        @param fields: its other fields.
        @return: fires with the reply payload, or fails with L{ChatError}
            (an C{error} reply) or L{Disconnected}.
        """
        if not self.connected:
            return fail(Disconnected())
        self._next_id += 1
        request_id = self._next_id
        d: Deferred[Payload] = Deferred()
        self._waiting[request_id] = d
        self.sendString(encode({"type": kind, "id": request_id, **fields}))
        return d

    def stringReceived(self, data: bytes) -> None:
        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
            self.log.warn("The server sent a frame that is not a chatd payload; reconnecting")
            self.transport.loseConnection()
            return
        request_id = payload.get("id")
        d = self._waiting.pop(request_id, None) if type(request_id) is int else None
        if d is not None:
            if payload["type"] == "error":
                d.errback(Failure(ChatError(str(payload.get("code")), str(payload.get("message")))))
            else:
                d.callback(payload)
        elif payload["type"] == "error":
            self.log.warn(
                "The server reported {code}: {message}",
                code=payload.get("code"),
                message=payload.get("message"),
            )
        elif self.listener is not None:
            self.listener.push_received(payload)

    def lengthLimitExceeded(self, length: int) -> None:
        self.log.warn("The server sent a frame of {length} bytes; reconnecting", length=length)
        self.transport.loseConnection()

    def _ping(self) -> None:
        # A ping still unanswered a whole interval later means the
        # connection is dead without either side having seen it close.
        if self._ping_unanswered:
            self.log.info(
                "No pong for {interval} s; dropping the connection", interval=PING_INTERVAL
            )
            self.transport.abortConnection()
            return
        self._ping_unanswered = True
        self.request("ping").addCallbacks(self._pong, self._ping_failed)

    def _pong(self, reply: Payload) -> None:
        self._ping_unanswered = False

    def _ping_failed(self, failure: Failure) -> None:
        failure.trap(ChatError, Disconnected)
        self._ping_unanswered = False

    def _bug(self, failure: Failure) -> None:
        self.log.failure("The ping loop failed", failure)


class ChatClientFactory(Factory):
    """
    Builds a L{ChatClientProtocol} for each connection, all telling the
    same listener.
    """

    noisy = False

    def __init__(self, clock: IReactorTime, listener: ConnectionListener) -> None:
        self.clock = clock
        self.listener = listener

    def buildProtocol(self, addr: Any) -> ChatClientProtocol:
        return ChatClientProtocol(self.clock, self.listener)
