"""
What the client tests share: a scripted chatd server on memory transports
for L{client.session.ChatClient}, and the one L{QApplication} of the
process (created lazily, so tests that need no Qt never import it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IProtocol, IProtocolFactory, IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from zope.interface import implementer

from client.session import ChatClient
from client.state import ClientState
from client.tokens import TokenFile
from tests.support import frame, unframe

Payload = dict[str, Any]


class FakeConnection:
    """
    The server's end of one client connection: read what the client sent,
    answer it, push to it, drop it.
    """

    def __init__(self, protocol: IProtocol, transport: StringTransportWithDisconnection) -> None:
        self.protocol = protocol
        self.transport = transport
        self._inbox: list[Payload] = []

    def _read(self) -> None:
        self._inbox.extend(unframe(self.transport.value()))
        self.transport.clear()

    def sent(self) -> list[Payload]:
        """
        @return: every request received and not yet taken, which are taken.
        """
        self._read()
        requests, self._inbox = self._inbox, []
        return requests

    def take(self, kind: str) -> Payload:
        """
        @return: the first request of type C{kind} not yet taken.
        @raise AssertionError: when there is none.
        """
        self._read()
        for i, request in enumerate(self._inbox):
            if request["type"] == kind:
                return self._inbox.pop(i)
        raise AssertionError(f"no {kind} request among {self._inbox}")

    def receive(self, payload: Payload) -> None:
        """
        Deliver C{payload} to the client.
        """
        self.protocol.dataReceived(frame(payload))

    def reply(self, request: Payload, kind: str, **fields: Any) -> None:
        """
        Answer C{request} with a reply of type C{kind}.
        """
        self.receive({"type": kind, "id": request["id"], **fields})

    def error(self, request: Payload, code: str, message: str = "Refused.") -> None:
        """
        Refuse C{request} with C{code}.
        """
        self.receive({"type": "error", "id": request["id"], "code": code, "message": message})

    def push(self, kind: str, **fields: Any) -> None:
        """
        Push a payload of type C{kind}.
        """
        self.receive({"type": kind, **fields})

    def drop(self) -> None:
        """
        Close the connection from the server's side.
        """
        self.transport.loseConnection()

    @property
    def open(self) -> bool:
        """
        Whether the connection is still open.
        """
        return bool(self.transport.connected)


class SlowClosingTransport(StringTransportWithDisconnection):
    """
    A transport whose C{loseConnection} only starts closing: the protocol
    hears of it when L{finish_closing} is called.
    """

    def loseConnection(self) -> None:
        self.disconnecting = True

    def finish_closing(self) -> None:
        """
        The close completes: tell the protocol.
        """
        StringTransportWithDisconnection.loseConnection(self)


@implementer(IStreamClientEndpoint)
class FakeEndpoint:
    """
    An endpoint whose connections are memory transports, made at once, or
    refused while L{refuse} is set.
    """

    def __init__(self) -> None:
        self.refuse = False
        #: Whether a connection the client closes stays open until the
        #: test calls L{FakeConnection.finish_closing}, as real ones do.
        self.slow_close = False
        self.connections: list[FakeConnection] = []

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        if self.refuse:
            return fail(ConnectionRefusedError("refused"))
        protocol = factory.buildProtocol(None)  # type: ignore[arg-type]
        assert protocol is not None
        transport = (
            SlowClosingTransport() if self.slow_close else StringTransportWithDisconnection()
        )
        transport.protocol = protocol
        self.connections.append(FakeConnection(protocol, transport))
        protocol.makeConnection(transport)
        return succeed(protocol)

    @property
    def server(self) -> FakeConnection:
        """
        The newest connection.
        """
        return self.connections[-1]


def user(user_id: int, username: str) -> Payload:
    """
    @return: a C{User} object of the wire.
    """
    return {"id": user_id, "username": username}


def member(user_id: int, username: str, online: bool = True) -> Payload:
    """
    @return: a C{Friend}/C{Member} object of the wire.
    """
    return {"id": user_id, "username": username, "online": online}


def room(room_id: int, name: str, *members: Payload) -> Payload:
    """
    @return: a C{Room} object of the wire.
    """
    return {"id": room_id, "name": name, "members": list(members)}


def message(
    message_id: int,
    sender: tuple[int, str],
    target_type: int,
    target_id: int,
    text: str = "hello",
    client_msg_id: str | None = None,
    kind: str = "text",
    time: str = "2026-11-24T06:00:30.123Z",
    **version_2: Any,
) -> Payload:
    """
    @param version_2: version 2 fields (C{reply_to}, C{reactions}, ...)
        other than their defaults.
    @return: a C{Message} object of the wire.
    """
    payload: Payload = {
        "id": message_id,
        "client_msg_id": client_msg_id,
        "sender_id": sender[0],
        "sender_name": sender[1],
        "target_type": target_type,
        "target_id": target_id,
    }
    if target_type == 1:
        payload["room_name"] = f"room{target_id}"
    payload.update(kind=kind, message=text, time=time)
    payload.update(
        edited_at=None, deleted=False, reply_to=None, mentions=[], reactions=[], file=None
    )
    payload.update(version_2)
    return payload


NCR = (1, "ncr")
LZY = (2, "lzy")
WH = (3, "wh")

#: The session token the scripted server gives ncr (PROTOCOL.md 13).
TOKEN = "t" * 43


def login_info(
    me: tuple[int, str] = NCR,
    friends: list[Payload] | None = None,
    rooms: list[Payload] | None = None,
    friend_requests: list[Payload] | None = None,
    unread: list[Payload] | None = None,
) -> Payload:
    """
    @return: the fields of a C{login_info} push: by default ncr(1), whose
        friends are lzy(2, online) and wh(3, offline), in room1 with lzy.
    """
    return {
        "user": user(*me),
        "friends": friends
        if friends is not None
        else [member(2, "lzy"), member(3, "wh", online=False)],
        "rooms": rooms
        if rooms is not None
        else [room(1, "room1", member(1, "ncr"), member(2, "lzy"))],
        "friend_requests": friend_requests or [],
        "unread": unread or [],
    }


class Session:
    """
    A L{ChatClient} on a L{FakeEndpoint} and a L{Clock}, with message ids
    C{m1}, C{m2}, ... and reconnects after exactly 1 s.
    """

    def __init__(
        self,
        retry_policy: Callable[[int], float] | None = None,
        tokens: TokenFile | None = None,
    ) -> None:
        """
        @param tokens: the token file, if any (without it, tokens stay in
            memory).
        """
        self.clock = Clock()
        self.endpoint = FakeEndpoint()
        self.state = ClientState()
        counter = iter(range(1, 1_000_000))
        self.client = ChatClient(
            self.endpoint,
            self.state,
            self.clock,
            retry_policy=retry_policy or (lambda attempt: 1.0),
            new_message_id=lambda: f"m{next(counter)}",
            tokens=tokens,
        )

    @property
    def server(self) -> FakeConnection:
        """
        The server's end of the newest connection.
        """
        return self.endpoint.server

    def log_in(self, **info: Any) -> Deferred[Any]:
        """
        Log in as ncr and answer with C{login_successful} (with L{TOKEN})
        and a C{login_info} made of C{info} (see L{login_info}).
        """
        d = self.client.login("ncr", "secret1")
        request = self.server.take("login")
        fields = login_info(**info)
        self.server.reply(request, "login_successful", user=fields["user"], token=TOKEN)
        self.server.push("login_info", **fields)
        return d

    def answer_login_again(self, **info: Any) -> None:
        """
        Answer the C{resume} a reconnect sends, and push C{login_info}.
        """
        request = self.server.take("resume")
        fields = login_info(**info)
        self.server.reply(request, "login_successful", user=fields["user"], token=request["token"])
        self.server.push("login_info", **fields)

    def reconnect(self, **info: Any) -> FakeConnection:
        """
        Drop the connection, let the client reconnect and log in again.

        @return: the new connection.
        """
        self.server.drop()
        self.clock.advance(1.0)
        self.answer_login_again(**info)
        return self.server


_app: Any = None


def qapp() -> Any:
    """
    @return: the process's one L{QApplication}, created on first use (tests
        run with C{QT_QPA_PLATFORM=offscreen}).
    """
    global _app
    if _app is None:
        import os

        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from PyQt5.QtCore import qInstallMessageHandler
        from PyQt5.QtWidgets import QApplication

        # Qt's messages (the offscreen platform's "not supported" notes,
        # the model tester's reports) are collected, not printed.
        qInstallMessageHandler(_collect)
        _app = QApplication.instance() or QApplication(["chatd-tests"])
        from client.ui.style import apply_style

        apply_style(_app)
    return _app


_qt_warnings: list[tuple[str, str]] = []


def _collect(kind: Any, context: Any, text: str | None) -> None:
    _qt_warnings.append((str(context.category or ""), text or ""))


def check_model(testcase: Any, model: Any) -> None:
    """
    Watch C{model} with Qt's L{QAbstractItemModelTester} for the rest of the
    test, and fail the test if it reports a broken model contract (rows
    announced and changed out of step, bad indexes, ...).
    """
    from PyQt5.QtCore import qInstallMessageHandler
    from PyQt5.QtTest import QAbstractItemModelTester

    qInstallMessageHandler(_collect)
    start = len(_qt_warnings)
    tester = QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Warning)

    def verify() -> None:
        # Referring to the tester keeps it alive, watching, until now.
        testcase.assertIs(tester.model(), model)
        reports = [text for category, text in _qt_warnings[start:] if category == "qt.modeltest"]
        testcase.assertEqual(reports, [], "the model broke its contract")

    testcase.addCleanup(verify)
