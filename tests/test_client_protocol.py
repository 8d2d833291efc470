"""
The client's protocol (one connection), on memory transports and a fake
clock: no reactor, no Qt.  The session on top of it: test_client_session.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from client.protocol import PING_INTERVAL, ChatClientProtocol, ChatError, Disconnected
from tests.qt_support import frame, unframe


class RecordingListener:
    """
    A connection listener that records what it is told.
    """

    def __init__(self) -> None:
        self.made: list[ChatClientProtocol] = []
        self.lost: list[Failure] = []
        self.pushes: list[dict[str, Any]] = []

    def connection_made(self, protocol: ChatClientProtocol) -> None:
        self.made.append(protocol)

    def connection_lost(self, protocol: ChatClientProtocol, reason: Failure) -> None:
        self.lost.append(reason)

    def push_received(self, payload: dict[str, Any]) -> None:
        self.pushes.append(payload)


class ChatClientProtocolTests(SynchronousTestCase):
    """
    One connection: framing, requests and replies, pushes, pings.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.listener = RecordingListener()
        self.protocol = ChatClientProtocol(self.clock, self.listener)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def sent(self) -> list[dict[str, Any]]:
        payloads = unframe(self.transport.value())
        self.transport.clear()
        return payloads

    def test_connection_made_is_reported(self) -> None:
        """
        The listener hears of the new connection.
        """
        self.assertEqual(self.listener.made, [self.protocol])

    def test_request_is_framed_json_with_increasing_ids(self) -> None:
        """
        Requests go out as length-prefixed JSON with ids 1, 2, ... and their
        fields at the top level.
        """
        self.protocol.request("login", username="ncr", password="secret1")
        self.protocol.request("ping")
        self.assertEqual(
            self.sent(),
            [
                {"type": "login", "id": 1, "username": "ncr", "password": "secret1"},
                {"type": "ping", "id": 2},
            ],
        )

    def test_reply_fires_its_request(self) -> None:
        """
        Replies fire the request with the same id, whatever the order.
        """
        first = self.protocol.request("ping")
        second = self.protocol.request("list_rooms")
        self.protocol.dataReceived(frame({"type": "room_list", "id": 2, "rooms": []}))
        self.assertNoResult(first)
        self.assertEqual(self.successResultOf(second), {"type": "room_list", "id": 2, "rooms": []})
        self.protocol.dataReceived(frame({"type": "pong", "id": 1}))
        self.assertEqual(self.successResultOf(first)["type"], "pong")

    def test_error_reply_fails_with_chat_error(self) -> None:
        """
        An error reply fails the request with its code and message.
        """
        d = self.protocol.request("login", username="ncr", password="wrong00")
        self.protocol.dataReceived(
            frame({"type": "error", "id": 1, "code": "login_failed", "message": "Wrong."})
        )
        error = self.failureResultOf(d, ChatError).value
        self.assertEqual((error.code, error.message), ("login_failed", "Wrong."))

    def test_push_goes_to_the_listener(self) -> None:
        """
        A payload without an id is a push: the listener gets it and no
        request is fired.
        """
        d = self.protocol.request("ping")
        push = {"type": "friend_on_off_line", "user_id": 2, "username": "lzy", "online": True}
        self.protocol.dataReceived(frame(push))
        self.assertEqual(self.listener.pushes, [push])
        self.assertNoResult(d)

    def test_frames_split_and_joined(self) -> None:
        """
        Frames arriving a byte at a time, or several in one read, are all
        decoded.
        """
        data = frame({"type": "pong", "id": 1}) + frame({"type": "login_info", "user": {}})
        d = self.protocol.request("ping")
        for i in range(len(data)):
            self.protocol.dataReceived(data[i : i + 1])
        self.assertEqual(self.successResultOf(d)["type"], "pong")
        self.assertEqual([p["type"] for p in self.listener.pushes], ["login_info"])

    def test_unicode_round_trip(self) -> None:
        """
        Text outside ASCII goes out as UTF-8 JSON and comes back intact.
        """
        self.protocol.request("send_message", message="你好 👋")
        self.assertIn("你好 👋".encode(), self.transport.value())
        (request,) = self.sent()
        self.assertEqual(request["message"], "你好 👋")

    def test_garbage_frame_closes_the_connection(self) -> None:
        """
        A frame that is not a JSON object with a type closes the connection
        (the client reconnects) instead of raising.
        """
        self.protocol.dataReceived(b"\x00\x00\x00\x03abc")
        self.assertTrue(self.transport.disconnecting)

    def test_ping_every_interval(self) -> None:
        """
        A ping goes out each 60 s, not before.
        """
        self.clock.advance(PING_INTERVAL - 1)
        self.assertEqual(self.sent(), [])
        self.clock.advance(1)
        self.assertEqual(self.sent(), [{"type": "ping", "id": 1}])
        self.protocol.dataReceived(frame({"type": "pong", "id": 1}))
        self.clock.advance(PING_INTERVAL)
        self.assertEqual(self.sent(), [{"type": "ping", "id": 2}])

    def test_unanswered_ping_drops_the_connection(self) -> None:
        """
        A ping still unanswered when the next is due aborts the connection.
        """
        self.clock.advance(PING_INTERVAL)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(PING_INTERVAL)
        self.assertTrue(self.transport.disconnecting)

    def test_connection_lost_fails_waiting_requests(self) -> None:
        """
        Requests waiting when the connection closes fail with Disconnected;
        later ones fail at once; the pings stop.
        """
        d = self.protocol.request("ping")
        self.protocol.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(d, Disconnected)
        self.failureResultOf(self.protocol.request("ping"), Disconnected)
        self.assertEqual(len(self.listener.lost), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
