"""
L{chatd.protocol.ChatProtocol} on a L{StringTransport}, in front of a real
L{ChatServer} run synchronously: framing, reply order, the limits and
timeouts of PROTOCOL.md section 8, and the connection's side of login.
"""

from __future__ import annotations

import struct
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from chatd import wire
from chatd.protocol import ChatProtocol, Limits
from tests.postgres import on_postgresql
from tests.support import FakeSession, ServerHarness, connect, frame, received, unframe

PASSWORD = "secret1"


class Explosion(Exception):
    """
    A bug planted in the server by a test.
    """


class ProtocolTestCase(SynchronousTestCase):
    """
    A real server on a temporary database, and helpers to talk to it through
    L{ChatProtocol}s.
    """

    def setUp(self) -> None:
        self.harness = ServerHarness(self)
        self.server = self.harness.server
        self.clock = self.harness.reactor

    def connect(self, limits: Limits | None = None) -> tuple[ChatProtocol, StringTransport]:
        """
        @return: a new connection to the server.
        """
        return connect(self.server, self.clock, limits)

    def logged_in(
        self, name: str = "ncr", limits: Limits | None = None
    ) -> tuple[ChatProtocol, StringTransport]:
        """
        @return: a new connection, registered (if need be) and logged in as
            C{name}, with everything written so far forgotten.
        """
        protocol, transport = self.connect(limits)
        protocol.dataReceived(
            frame({"type": "register", "username": name, "password": PASSWORD})
            + frame({"type": "login", "username": name, "password": PASSWORD})
        )
        replies = received(transport)
        self.assertEqual(replies[-2]["type"], "login_successful", replies)
        return protocol, transport

    def friend(self, protocol: ChatProtocol, name: str = "lzy") -> FakeSession:
        """
        @return: a logged-in fake session of a new user C{name}, friend of
            C{protocol}'s user, with the pushes this caused forgotten.
        """
        other = self.harness.user(name)
        self.harness.call(other, "add_friend", username=protocol.username)
        self.harness.call(protocol, "resolve_friend_request", user_id=other.user_id)
        protocol.transport.clear()
        other.frames.clear()
        return other

    def slow(self, kind: str = "list_rooms") -> list[Deferred[Any]]:
        """
        Make every request of type C{kind} wait on a Deferred the test fires.

        @return: the Deferreds of those requests, in dispatch order.
        """
        waiting: list[Deferred[Any]] = []
        dispatch = self.server.dispatch

        def slow_dispatch(session: Any, request: wire.Payload) -> Any:
            if request["type"] == kind:
                d: Deferred[Any] = Deferred()
                waiting.append(d)
                return d
            return dispatch(session, request)

        self.patch(self.server, "dispatch", slow_dispatch)
        return waiting

    def dispatched(self) -> list[wire.Payload]:
        """
        Record every request the protocol hands to the server.

        @return: the list the requests are appended to.
        """
        seen: list[wire.Payload] = []
        dispatch = self.server.dispatch

        def recording_dispatch(session: Any, request: wire.Payload) -> Any:
            seen.append(request)
            return dispatch(session, request)

        self.patch(self.server, "dispatch", recording_dispatch)
        return seen


def codes(replies: list[wire.Payload]) -> list[str]:
    """
    @return: the type of each reply, or its code for an error.
    """
    return [r["code"] if r["type"] == "error" else r["type"] for r in replies]


class FramingTests(ProtocolTestCase):
    """
    Frames are found in the byte stream however it is cut.
    """

    def test_split_at_every_byte(self) -> None:
        """
        A frame cut in two at any byte still yields exactly one reply, once
        its last byte arrives.
        """
        protocol, transport = self.connect(Limits(burst=1000))
        data = frame({"type": "ping", "id": 7})
        for cut in range(1, len(data)):
            protocol.dataReceived(data[:cut])
            self.assertEqual(transport.value(), b"", cut)
            protocol.dataReceived(data[cut:])
            self.assertEqual(received(transport), [{"type": "pong", "id": 7}], cut)

    def test_byte_by_byte(self) -> None:
        """
        Two frames delivered one byte at a time yield their two replies.
        """
        protocol, transport = self.connect()
        data = frame({"type": "ping", "id": 1}) + frame({"type": "ping", "id": 2})
        for i in range(len(data)):
            protocol.dataReceived(data[i : i + 1])
        self.assertEqual(
            received(transport), [{"type": "pong", "id": 1}, {"type": "pong", "id": 2}]
        )

    def test_many_frames_in_one_write(self) -> None:
        """
        Many frames in one write yield all their replies, in request order.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(
            frame({"type": "register", "id": 1, "username": "ncr", "password": PASSWORD})
            + frame({"type": "ping", "id": 2})
            + frame(b"not json")
            + frame({"type": "login", "id": 3, "username": "ncr", "password": PASSWORD})
            + frame({"type": "create_room", "id": 4, "name": "room1"})
            + frame({"type": "no_such_request", "id": 5})
            + b"".join(frame({"type": "ping", "id": i}) for i in range(6, 30))
        )
        replies = received(transport)
        self.assertEqual(
            codes(replies),
            ["register_successful", "pong", "bad_frame", "login_successful", "login_info"]
            + ["create_successful", "unknown_type"]
            + ["pong"] * 24,
        )
        self.assertEqual([r.get("id") for r in replies], [1, 2, None, 3, None, 4, 5, *range(6, 30)])

    def test_unknown_fields_ignored(self) -> None:
        """
        A request with unknown extra fields is handled as if they were not
        there.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(
            frame(
                {
                    "type": "register",
                    "id": 1,
                    "username": "ncr",
                    "password": PASSWORD,
                    "avatar": {"url": "x", "size": [1, 2]},
                }
            )
        )
        self.assertEqual(codes(received(transport)), ["register_successful"])

    def test_bad_frame_keeps_connection(self) -> None:
        """
        A payload that is not a request gets C{bad_frame} without an id, and
        the connection stays open for the next request.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(frame(b'[{"type":"ping","id":1}]') + frame({"type": "ping", "id": 2}))
        replies = received(transport)
        self.assertEqual(codes(replies), ["bad_frame", "pong"])
        self.assertNotIn("id", replies[0])
        self.assertFalse(transport.disconnecting)


class ReplyOrderTests(ProtocolTestCase):
    """
    Replies leave in the order their requests arrived, whatever order they
    are ready in.
    """

    def test_fast_reply_waits_for_slow(self) -> None:
        """
        A request after a slow one runs only once the slow one is done, and
        its reply follows the slow reply.
        """
        protocol, transport = self.logged_in()
        waiting = self.slow()
        seen = self.dispatched()
        protocol.dataReceived(
            frame({"type": "list_rooms", "id": 1}) + frame({"type": "ping", "id": 2})
        )
        self.assertEqual(transport.value(), b"")
        self.assertEqual([r["type"] for r in seen], ["list_rooms"])
        waiting[0].callback({"type": "room_list", "rooms": []})
        self.assertEqual(
            received(transport),
            [{"type": "room_list", "id": 1, "rooms": []}, {"type": "pong", "id": 2}],
        )

    def test_errors_wait_for_slow(self) -> None:
        """
        Errors found on arrival (a bad frame, an invalid id, flood control)
        are held behind an earlier slow reply.
        """
        protocol, transport = self.logged_in(limits=Limits(burst=4))
        waiting = self.slow()
        protocol.dataReceived(
            frame({"type": "list_rooms", "id": 1})
            + frame(b"{")
            + frame({"type": "ping", "id": "two"})
            + frame({"type": "ping", "id": 3})
            + frame({"type": "ping", "id": 4})
        )
        self.assertEqual(transport.value(), b"")
        waiting[0].callback({"type": "room_list", "rooms": []})
        replies = received(transport)
        self.assertEqual(
            codes(replies), ["room_list", "bad_frame", "invalid_field", "pong", "rate_limited"]
        )
        self.assertEqual([r.get("id") for r in replies], [1, None, None, 3, 4])

    def test_slow_failure_keeps_order(self) -> None:
        """
        A slow request that fails still answers before the requests after it.
        """
        protocol, transport = self.logged_in()
        waiting = self.slow()
        protocol.dataReceived(
            frame({"type": "list_rooms", "id": 1}) + frame({"type": "ping", "id": 2})
        )
        waiting[0].errback(wire.ChatError(wire.NO_SUCH_ROOM))
        replies = received(transport)
        self.assertEqual(codes(replies), ["no_such_room", "pong"])
        self.assertEqual([r["id"] for r in replies], [1, 2])

    def test_sends_run_together(self) -> None:
        """
        Consecutive send_messages are all handed to the server at once, and
        their replies still leave in request order, whichever finishes first.
        """
        protocol, transport = self.logged_in()
        waiting = self.slow("send_message")
        seen = self.dispatched()
        protocol.dataReceived(
            b"".join(
                frame({"type": "send_message", "id": i, "target_type": 1, "target_id": 1})
                for i in (1, 2, 3)
            )
            + frame({"type": "ping", "id": 4})
        )
        self.assertEqual([r["id"] for r in seen], [1, 2, 3])
        waiting[2].callback({"type": "on_new_message", "message": {"id": 30}})
        waiting[1].callback({"type": "on_new_message", "message": {"id": 20}})
        self.assertEqual(transport.value(), b"")
        waiting[0].callback({"type": "on_new_message", "message": {"id": 10}})
        replies = received(transport)
        self.assertEqual([r["id"] for r in replies], [1, 2, 3, 4])
        self.assertEqual([r.get("message") for r in replies[:3]], [{"id": i} for i in (10, 20, 30)])
        self.assertEqual(replies[3]["type"], "pong")

    def test_send_waits_for_other_request(self) -> None:
        """
        A send_message after another kind of request that is still running
        is not started until that request is done.
        """
        protocol, transport = self.logged_in()
        waiting = self.slow()
        seen = self.dispatched()
        protocol.dataReceived(
            frame({"type": "list_rooms", "id": 1})
            + frame(
                {"type": "send_message", "id": 2, "target_type": 1, "target_id": 1, "message": "x"}
            )
        )
        self.assertEqual([r["id"] for r in seen], [1])
        waiting[0].callback({"type": "room_list", "rooms": []})
        self.assertEqual([r["id"] for r in seen], [1, 2])
        self.assertEqual(codes(received(transport)), ["room_list", "no_such_room"])

    def test_other_request_waits_for_sends(self) -> None:
        """
        A request after send_messages that are still running is not started
        until they are all done.
        """
        protocol, transport = self.logged_in()
        waiting = self.slow("send_message")
        seen = self.dispatched()
        protocol.dataReceived(
            frame({"type": "send_message", "id": 1})
            + frame({"type": "send_message", "id": 2})
            + frame({"type": "list_rooms", "id": 3})
        )
        self.assertEqual([r["id"] for r in seen], [1, 2])
        waiting[0].callback({"type": "on_new_message", "message": {}})
        self.assertEqual([r["id"] for r in seen], [1, 2])
        waiting[1].callback({"type": "on_new_message", "message": {}})
        self.assertEqual([r["id"] for r in seen], [1, 2, 3])
        self.assertEqual(codes(received(transport)), ["on_new_message"] * 2 + ["room_list"])

    def test_real_sends_in_order(self) -> None:
        """
        Many send_messages in one write are stored and answered in order.
        """
        protocol, transport = self.logged_in()
        protocol.dataReceived(frame({"type": "create_room", "id": 0, "name": "room1"}))
        room_id = received(transport)[0]["room"]["id"]
        protocol.dataReceived(
            b"".join(
                frame(
                    {
                        "type": "send_message",
                        "id": i,
                        "target_type": 1,
                        "target_id": room_id,
                        "message": f"m{i}",
                    }
                )
                for i in range(1, 11)
            )
        )
        replies = received(transport)
        self.assertEqual([r["id"] for r in replies], list(range(1, 11)))
        self.assertEqual(
            [r["message"]["message"] for r in replies], [f"m{i}" for i in range(1, 11)]
        )
        ids = [r["message"]["id"] for r in replies]
        self.assertEqual(ids, sorted(ids))


class BatchedWriteTests(ProtocolTestCase):
    """
    Within a batch of pushes (a committed group's callbacks), replies wait
    for its end and leave in one write with the pushes that follow them,
    before the writes of connections that only got pushes.
    """

    def writes(self, transport: StringTransport, seen: list[Any]) -> None:
        """
        Append C{(transport, data)} to C{seen} for each write to
        C{transport}.
        """
        write = transport.write

        def recording_write(data: bytes) -> None:
            seen.append((transport, data))
            write(data)

        self.patch(transport, "write", recording_write)

    def test_one_write_at_the_end(self) -> None:
        """
        Replies written within a batch leave when it ends, in one write
        with the pushes, replies first; before the writes of connections
        that only got pushes.
        """
        protocol, transport = self.logged_in()
        other, other_transport = self.logged_in("lzy")
        writes: list[Any] = []
        self.writes(other_transport, writes)
        self.writes(transport, writes)
        with self.server.sessions.batch():
            self.server.sessions.push([other.user_id, protocol.user_id], {"type": "x"})
            protocol.dataReceived(
                frame({"type": "ping", "id": 1}) + frame({"type": "ping", "id": 2})
            )
            self.assertEqual(writes, [])
        self.assertEqual([written for written, _ in writes], [transport, other_transport])
        self.assertEqual(
            received(transport),
            [{"type": "pong", "id": 1}, {"type": "pong", "id": 2}, {"type": "x"}],
        )
        self.assertEqual(received(other_transport), [{"type": "x"}])

    def test_close_writes_first(self) -> None:
        """
        A connection closed within a batch writes what waited before it
        closes.
        """
        protocol, transport = self.logged_in()
        with self.server.sessions.batch():
            protocol.dataReceived(frame({"type": "ping", "id": 1}))
            protocol.kick(wire.IDLE_TIMEOUT)
            self.assertTrue(transport.disconnecting)
            self.assertEqual(
                received(transport),
                [{"type": "pong", "id": 1}, {"type": "server_kick", "reason": "idle_timeout"}],
            )
        self.assertEqual(transport.value(), b"")


class FrameTooLargeTests(ProtocolTestCase):
    """
    A frame longer than C{max_frame} is answered C{frame_too_large}, then the
    connection closes.
    """

    def test_prefix_alone(self) -> None:
        """
        The length prefix alone, announcing one byte too many, is enough: the
        error is sent without the payload and the connection closes.
        """
        protocol, transport = self.connect(Limits(max_frame=100))
        protocol.dataReceived(struct.pack("!I", 101))
        self.assertEqual(
            received(transport),
            [
                {
                    "type": "error",
                    "code": "frame_too_large",
                    "message": wire.MESSAGES["frame_too_large"],
                }
            ],
        )
        self.assertTrue(transport.disconnecting)

    def test_default_limit(self) -> None:
        """
        By default a payload over 65536 bytes is too large.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(struct.pack("!I", 65537))
        self.assertEqual(codes(received(transport)), ["frame_too_large"])
        self.assertTrue(transport.disconnecting)

    def test_largest_frame(self) -> None:
        """
        A payload of exactly C{max_frame} bytes is accepted.
        """
        protocol, transport = self.connect(Limits(max_frame=100))
        head = b'{"type":"ping","id":1,"pad":"'
        payload = head + b"x" * (100 - len(head) - 2) + b'"}'
        self.assertEqual(len(payload), 100)
        protocol.dataReceived(frame(payload))
        self.assertEqual(received(transport), [{"type": "pong", "id": 1}])
        self.assertFalse(transport.disconnecting)

    def test_rest_ignored(self) -> None:
        """
        Once a frame is too large, nothing else on the connection is read.
        """
        protocol, transport = self.connect(Limits(max_frame=100))
        protocol.dataReceived(struct.pack("!I", 101) + b"x" * 20)
        received(transport)
        protocol.dataReceived(b"x" * 81 + frame({"type": "ping", "id": 1}))
        self.assertEqual(transport.value(), b"")

    def test_after_earlier_replies(self) -> None:
        """
        The error follows the replies of the requests before the large frame.
        """
        protocol, transport = self.connect(Limits(max_frame=100))
        protocol.dataReceived(frame({"type": "ping", "id": 1}) + struct.pack("!I", 1000))
        self.assertEqual(codes(received(transport)), ["pong", "frame_too_large"])
        self.assertTrue(transport.disconnecting)

    def test_behind_slow_reply(self) -> None:
        """
        Behind a slow request, the error waits for its reply, and the
        connection closes after both.
        """
        protocol, transport = self.logged_in(limits=Limits(max_frame=100))
        waiting = self.slow()
        protocol.dataReceived(frame({"type": "list_rooms", "id": 1}) + struct.pack("!I", 101))
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)
        waiting[0].callback({"type": "room_list", "rooms": []})
        self.assertEqual(codes(received(transport)), ["room_list", "frame_too_large"])
        self.assertTrue(transport.disconnecting)

    def test_behind_queued_request(self) -> None:
        """
        A request queued behind a slow one when a too large frame arrives
        still gets its reply, then the error is sent and the connection closes.
        """
        protocol, transport = self.logged_in(limits=Limits(max_frame=100))
        waiting = self.slow()
        protocol.dataReceived(
            frame({"type": "list_rooms", "id": 1})
            + frame({"type": "ping", "id": 2})
            + struct.pack("!I", 101)
        )
        waiting[0].callback({"type": "room_list", "rooms": []})
        self.assertEqual(codes(received(transport)), ["room_list", "pong", "frame_too_large"])
        self.assertTrue(transport.disconnecting)


class ErrorsInARowTests(ProtocolTestCase):
    """
    Ten protocol errors in a row close the connection.
    """

    def test_ten_errors(self) -> None:
        """
        The tenth protocol error in a row is followed by C{server_kick}
        C{too_many_errors} and the connection closes.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(frame(b"nonsense") * 9)
        self.assertEqual(codes(received(transport)), ["bad_frame"] * 9)
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(frame(b"nonsense"))
        replies = received(transport)
        self.assertEqual(codes(replies), ["bad_frame", "server_kick"])
        self.assertEqual(replies[1], {"type": "server_kick", "reason": "too_many_errors"})
        self.assertTrue(transport.disconnecting)
        protocol.dataReceived(frame({"type": "ping"}))
        self.assertEqual(transport.value(), b"")

    def test_mixed_protocol_errors(self) -> None:
        """
        Bad frames, unknown types, invalid fields and a second login all
        count toward the ten.
        """
        expected_round = [
            "bad_frame",
            "unknown_type",
            "invalid_field",
            "invalid_field",
            "already_authenticated",
        ]
        protocol, transport = self.logged_in()
        protocol.dataReceived(
            (
                frame(b"[]")
                + frame({"type": "frobnicate"})
                + frame({"type": "ping", "id": -1})
                + frame({"type": "history"})
                + frame({"type": "login", "username": "ncr", "password": PASSWORD})
            )
            * 2
        )
        self.assertEqual(
            codes(received(transport)),
            [*expected_round, *expected_round, "server_kick"],
        )
        self.assertTrue(transport.disconnecting)

    def test_not_authenticated_counts(self) -> None:
        """
        Ten requests refused before login close the connection too.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(frame({"type": "list_rooms"}) * 10)
        self.assertEqual(codes(received(transport)), ["not_authenticated"] * 10 + ["server_kick"])
        self.assertTrue(transport.disconnecting)

    def test_success_resets(self) -> None:
        """
        Nine errors then a success resets the count: nine more errors do not
        close the connection, a tenth does.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(
            frame(b"nonsense") * 9 + frame({"type": "ping"}) + frame(b"nonsense") * 9
        )
        self.assertEqual(
            codes(received(transport)), ["bad_frame"] * 9 + ["pong"] + ["bad_frame"] * 9
        )
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(frame(b"nonsense"))
        self.assertEqual(codes(received(transport)), ["bad_frame", "server_kick"])
        self.assertTrue(transport.disconnecting)


class LoginGateTests(ProtocolTestCase):
    """
    Before login only register, login and ping are allowed.
    """

    GATED = (
        "logout",
        "send_message",
        "history",
        "mark_read",
        "add_friend",
        "resolve_friend_request",
        "remove_friend",
        "create_room",
        "join_room",
        "quit_room",
        "add_friend_to_room",
        "list_rooms",
    )

    def test_gated(self) -> None:
        """
        Every other request type before login gets C{not_authenticated},
        carrying its id.
        """
        protocol, transport = self.connect()
        for i, kind in enumerate(self.GATED):
            protocol.dataReceived(frame({"type": kind, "id": i, "name": "room1"}))
            self.assertEqual(
                received(transport), [wire.error(wire.NOT_AUTHENTICATED, request_id=i)], kind
            )
            # A success between them, lest ten errors in a row close the
            # connection.
            protocol.dataReceived(frame({"type": "ping"}))
            received(transport)

    def test_allowed(self) -> None:
        """
        ping, register and login are answered before login.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(
            frame({"type": "ping"})
            + frame({"type": "register", "username": "ncr", "password": PASSWORD})
            + frame({"type": "login", "username": "ncr", "password": "wrong password"})
            + frame({"type": "login", "username": "ncr", "password": PASSWORD})
        )
        self.assertEqual(
            codes(received(transport)),
            ["pong", "register_successful", "login_failed", "login_successful", "login_info"],
        )

    def test_open_after_login(self) -> None:
        """
        After login the gated requests are handled.
        """
        protocol, transport = self.logged_in()
        protocol.dataReceived(frame({"type": "list_rooms", "id": 1}))
        self.assertEqual(received(transport), [{"type": "room_list", "id": 1, "rooms": []}])

    def test_gate_changes_nothing(self) -> None:
        """
        A gated request before login does nothing.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(frame({"type": "create_room", "name": "room1"}))
        self.assertEqual(codes(received(transport)), ["not_authenticated"])
        self.assertIsNone(self.harness.directory.room_id("room1"))

    def test_unknown_type_before_login(self) -> None:
        """
        An unknown request type before login is "anything else" of PROTOCOL.md
        section 5 and gets C{not_authenticated}.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(frame({"type": "frobnicate", "id": 1}))
        self.assertEqual(codes(received(transport)), ["not_authenticated"])


class LoginDeadlineTests(ProtocolTestCase):
    """
    A connection that has not logged in within 30 s is closed.
    """

    def test_closed_after_30s(self) -> None:
        """
        The connection is still open at 29.9 s and closed at 30.1 s.
        """
        _protocol, transport = self.connect()
        self.clock.advance(29.9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.2)
        self.assertTrue(transport.disconnecting)

    def test_not_after_login(self) -> None:
        """
        A connection that logged in is not closed at 30 s.
        """
        _protocol, transport = self.logged_in()
        self.clock.advance(31)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(transport.value(), b"")

    def test_requests_do_not_extend(self) -> None:
        """
        Requests before login (a ping, a failed login) do not push the
        deadline back: 30 s after connecting the connection is closed.
        """
        protocol, transport = self.connect()
        self.clock.advance(20)
        protocol.dataReceived(frame({"type": "ping"}))
        self.clock.advance(5)
        protocol.dataReceived(frame({"type": "login", "username": "ncr", "password": PASSWORD}))
        self.clock.advance(5.1)
        self.assertTrue(transport.disconnecting)


class IdleTimeoutTests(ProtocolTestCase):
    """
    A logged-in connection silent for C{idle_timeout} seconds is kicked.
    """

    LIMITS = Limits(idle_timeout=100)

    def test_kicked(self) -> None:
        """
        Silent for the whole idle timeout, the connection gets C{server_kick}
        C{idle_timeout} and closes; not a moment before.
        """
        _protocol, transport = self.logged_in(limits=self.LIMITS)
        self.clock.advance(99.9)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        self.clock.advance(0.2)
        self.assertEqual(received(transport), [{"type": "server_kick", "reason": "idle_timeout"}])
        self.assertTrue(transport.disconnecting)

    def test_frame_resets(self) -> None:
        """
        A frame received from the client restarts the idle timeout.
        """
        protocol, transport = self.logged_in(limits=self.LIMITS)
        self.clock.advance(60)
        protocol.dataReceived(frame({"type": "ping"}))
        self.clock.advance(60)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(40.1)
        self.assertTrue(transport.disconnecting)

    def test_pushes_do_not_reset(self) -> None:
        """
        Pushes sent to the client do not count as activity.
        """
        protocol, transport = self.logged_in(limits=self.LIMITS)
        lzy = self.friend(protocol)
        self.clock.advance(60)
        self.harness.call(
            lzy, "send_message", target_type=0, target_id=protocol.user_id, message="hello"
        )
        self.assertEqual(codes(received(transport)), ["on_new_message"])
        self.clock.advance(40.1)
        self.assertEqual(codes(received(transport)), ["server_kick"])
        self.assertTrue(transport.disconnecting)


class FloodControlTests(ProtocolTestCase):
    """
    Each connection may send C{rate} requests per second, in bursts of up to
    C{burst}.
    """

    LIMITS = Limits(rate=2.0, burst=3)

    def test_burst(self) -> None:
        """
        A burst of C{burst} requests passes; the next gets C{rate_limited}
        with its id.
        """
        protocol, transport = self.connect(self.LIMITS)
        protocol.dataReceived(b"".join(frame({"type": "ping", "id": i}) for i in range(4)))
        replies = received(transport)
        self.assertEqual(codes(replies), ["pong"] * 3 + ["rate_limited"])
        self.assertEqual(replies[3]["id"], 3)
        self.assertFalse(transport.disconnecting)

    def test_limited_request_does_nothing(self) -> None:
        """
        A request refused by flood control changes nothing.
        """
        protocol, transport = self.connect(self.LIMITS)
        protocol.dataReceived(
            frame({"type": "ping"}) * 3
            + frame({"type": "register", "username": "ncr", "password": PASSWORD})
        )
        self.assertEqual(codes(received(transport))[-1], "rate_limited")
        self.assertIsNone(self.harness.directory.user_id("ncr"))

    def test_refill(self) -> None:
        """
        Tokens come back at C{rate} per second.
        """
        protocol, transport = self.connect(self.LIMITS)
        protocol.dataReceived(frame({"type": "ping"}) * 4)
        received(transport)
        self.clock.advance(0.5)
        protocol.dataReceived(frame({"type": "ping"}) * 2)
        self.assertEqual(codes(received(transport)), ["pong", "rate_limited"])
        self.clock.advance(1.0)
        protocol.dataReceived(frame({"type": "ping"}) * 3)
        self.assertEqual(codes(received(transport)), ["pong", "pong", "rate_limited"])

    def test_refill_capped(self) -> None:
        """
        However long the connection rests, at most C{burst} tokens are saved.
        """
        protocol, transport = self.connect(self.LIMITS)
        self.clock.advance(10)
        protocol.dataReceived(frame({"type": "ping"}) * 4)
        self.assertEqual(codes(received(transport)), ["pong"] * 3 + ["rate_limited"])


class InternalErrorTests(ProtocolTestCase):
    """
    A bug in a handler is logged and answered C{internal_error}, revealing
    nothing, and other connections carry on.
    """

    def assertInternalError(self, data: bytes, request_id: int) -> None:
        """
        Assert that C{data} is one C{internal_error} reply to C{request_id}
        that shows nothing of the bug.
        """
        for secret in (b"Traceback", b"Explosion", b"the secret", b".py"):
            self.assertNotIn(secret, data)
        self.assertEqual(unframe(data), [wire.error(wire.INTERNAL_ERROR, request_id=request_id)])

    def test_raised(self) -> None:
        """
        A handler raising a non-ChatError gets C{internal_error}, the
        traceback goes to the log, and connections keep working.
        """
        protocol, transport = self.logged_in()
        other, other_transport = self.logged_in("lzy")

        def explode(*args: Any) -> Any:
            raise Explosion("the secret is /etc/chatd.conf")

        self.patch(self.server, "_check_conversation", explode)
        protocol.dataReceived(frame({"type": "history", "id": 5, "target_type": 0, "target_id": 2}))
        self.assertInternalError(transport.value(), 5)
        self.assertEqual(len(self.flushLoggedErrors(Explosion)), 1)
        transport.clear()
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(frame({"type": "ping", "id": 6}))
        other.dataReceived(frame({"type": "create_room", "id": 7, "name": "room1"}))
        self.assertEqual(received(transport), [{"type": "pong", "id": 6}])
        self.assertEqual(codes(received(other_transport)), ["create_successful"])

    def test_failed_deferred(self) -> None:
        """
        A handler whose Deferred fails with a non-ChatError gets
        C{internal_error} and the failure is logged.
        """
        protocol, transport = self.logged_in()
        other, other_transport = self.logged_in("lzy")
        protocol.dataReceived(frame({"type": "create_room", "name": "room1"}))
        room_id = received(transport)[0]["room"]["id"]
        self.patch(
            self.harness.store,
            "room_history",
            lambda *args: fail(Explosion("the secret is /etc/chatd.conf")),
        )
        protocol.dataReceived(
            frame({"type": "history", "id": 0, "target_type": 1, "target_id": room_id})
        )
        self.assertInternalError(transport.value(), 0)
        self.assertEqual(len(self.flushLoggedErrors(Explosion)), 1)
        other.dataReceived(frame({"type": "join_room", "id": 1, "name": "room1"}))
        self.assertEqual(codes(received(other_transport)), ["join_successful"])


class RequestIdTests(ProtocolTestCase):
    """
    The request's id is copied into its reply; an invalid id is refused.
    """

    def test_copied(self) -> None:
        """
        Replies carry the request's id, 0 and 2**53 - 1 included, and a
        request without an id gets a reply without one.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(
            frame({"type": "ping", "id": 0})
            + frame({"type": "ping", "id": 2**53 - 1})
            + frame({"type": "ping"})
        )
        self.assertEqual(
            received(transport),
            [{"type": "pong", "id": 0}, {"type": "pong", "id": 2**53 - 1}, {"type": "pong"}],
        )

    def test_copied_into_errors(self) -> None:
        """
        An error reply carries the id of the request it refuses.
        """
        protocol, transport = self.logged_in()
        protocol.dataReceived(
            frame({"type": "frobnicate", "id": 3}) + frame({"type": "history", "id": 0})
        )
        replies = received(transport)
        self.assertEqual(codes(replies), ["unknown_type", "invalid_field"])
        self.assertEqual([r["id"] for r in replies], [3, 0])

    def test_invalid(self) -> None:
        """
        A request whose id is not an integer in [0, 2**53) gets
        C{invalid_field} without an id, and is not run.
        """
        protocol, transport = self.connect()
        seen = self.dispatched()
        for bad in ("x", "1", -1, 1.5, 1.0, True, 2**53, [1]):
            protocol.dataReceived(
                frame({"type": "register", "id": bad, "username": "ncr", "password": PASSWORD})
            )
            (reply,) = received(transport)
            self.assertEqual(reply["code"], "invalid_field", bad)
            self.assertNotIn("id", reply, bad)
            # A success in between, lest ten errors in a row close the connection.
            protocol.dataReceived(frame({"type": "ping"}))
            received(transport)
        self.assertEqual([r["type"] for r in seen], ["ping"] * 8)
        self.assertIsNone(self.harness.directory.user_id("ncr"))

    def test_pushes_have_no_id(self) -> None:
        """
        login_info, pushed right after the reply to a login with an id, has no
        id.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(
            frame({"type": "register", "username": "ncr", "password": PASSWORD})
            + frame({"type": "login", "id": 9, "username": "ncr", "password": PASSWORD})
        )
        replies = received(transport)[1:]
        self.assertEqual(codes(replies), ["login_successful", "login_info"])
        self.assertEqual(replies[0]["id"], 9)
        self.assertNotIn("id", replies[1])


class LoginTests(ProtocolTestCase):
    """
    The connection's side of login and logout.
    """

    def test_login_info_follows(self) -> None:
        """
        login_successful is followed at once by login_info for the same user.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(
            frame({"type": "register", "username": "ncr", "password": PASSWORD})
            + frame({"type": "login", "id": 1, "username": "ncr", "password": PASSWORD})
            + frame({"type": "ping", "id": 2})
        )
        replies = received(transport)[1:]
        self.assertEqual(codes(replies), ["login_successful", "login_info", "pong"])
        self.assertEqual(replies[1]["user"], replies[0]["user"])

    def test_push_during_login_held(self) -> None:
        """
        A push that arrives while the login is in progress is written after
        login_successful and login_info.
        """
        protocol, transport = self.logged_in()
        lzy = self.friend(protocol)
        self.server.disconnected(protocol)
        lzy.frames.clear()
        later: Deferred[list[int]] = Deferred()
        self.patch(self.harness.store, "friend_requests", lambda user_id: later)
        protocol, transport = self.connect()
        protocol.dataReceived(
            frame({"type": "login", "id": 1, "username": "ncr", "password": PASSWORD})
        )
        self.harness.call(
            lzy, "send_message", target_type=0, target_id=protocol.user_id, message="hi"
        )
        self.assertEqual(transport.value(), b"")
        later.callback([])
        replies = received(transport)
        self.assertEqual(codes(replies), ["login_successful", "login_info", "on_new_message"])
        self.assertEqual(replies[2]["message"]["message"], "hi")

    def test_duplicate_login(self) -> None:
        """
        A login elsewhere kicks the older connection with C{server_kick}
        C{logged_in_elsewhere} and closes it, with no offline/online flicker
        to friends and co-members.
        """
        first, first_transport = self.logged_in()
        lzy = self.friend(first)
        self.harness.call(first, "create_room", name="room1")
        self.harness.call(lzy, "join_room", name="room1")
        first_transport.clear()
        lzy.frames.clear()
        second, second_transport = self.connect()
        second.dataReceived(
            frame({"type": "login", "id": 1, "username": "ncr", "password": PASSWORD})
        )
        self.assertEqual(
            received(first_transport), [{"type": "server_kick", "reason": "logged_in_elsewhere"}]
        )
        self.assertTrue(first_transport.disconnecting)
        first.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(codes(received(second_transport)), ["login_successful", "login_info"])
        self.assertFalse(second_transport.disconnecting)
        self.assertEqual(lzy.pushes(), [])
        # The newer session is the one that gets pushes now.
        self.harness.call(
            lzy, "send_message", target_type=0, target_id=second.user_id, message="hi"
        )
        self.assertEqual(codes(received(second_transport)), ["on_new_message"])
        self.assertEqual(first_transport.value(), b"")

    def test_already_authenticated(self) -> None:
        """
        A second login on a logged-in connection is C{already_authenticated}
        and leaves it logged in.
        """
        protocol, transport = self.logged_in()
        protocol.dataReceived(
            frame({"type": "login", "id": 1, "username": "ncr", "password": PASSWORD})
            + frame({"type": "list_rooms", "id": 2})
        )
        self.assertEqual(codes(received(transport)), ["already_authenticated", "room_list"])

    def test_logout(self) -> None:
        """
        logout is answered C{logout_successful}, then the connection closes
        and friends see the user go offline once.
        """
        protocol, transport = self.logged_in()
        lzy = self.friend(protocol)
        protocol.dataReceived(frame({"type": "logout", "id": 4}))
        self.assertEqual(received(transport), [{"type": "logout_successful", "id": 4}])
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(
            lzy.pushes("friend_on_off_line"),
            [{"type": "friend_on_off_line", "user_id": 1, "username": "ncr", "online": False}],
        )


class SlowConsumerTests(ProtocolTestCase):
    """
    A client that stops reading is dropped once more than C{max_pending}
    bytes wait unsent for it.
    """

    def test_limit(self) -> None:
        """
        While the transport is paused, C{max_pending} bytes are kept and one
        more byte aborts the connection.
        """
        protocol, transport = self.logged_in(limits=Limits(max_pending=1000))
        transport.producer.pauseProducing()
        protocol.send(b"x" * 600)
        protocol.send(b"x" * 400)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(len(transport.value()), 1000)
        protocol.send(b"x")
        self.assertTrue(transport.disconnected)
        self.assertEqual(len(transport.value()), 1000)

    def test_pushes(self) -> None:
        """
        Pushes from another user pile up on a paused connection until the
        limit aborts it; the sender is not affected.
        """
        protocol, transport = self.logged_in(limits=Limits(max_pending=2000))
        lzy = self.friend(protocol)
        transport.producer.pauseProducing()
        pending = 0
        for _ in range(20):
            before = len(transport.value())
            reply = self.harness.call(
                lzy, "send_message", target_type=0, target_id=protocol.user_id, message="x" * 100
            )
            self.assertEqual(reply["type"], "on_new_message")
            if transport.disconnected:
                break
            pending += len(transport.value()) - before
            self.assertLessEqual(pending, 2000)
        self.assertTrue(transport.disconnected, "never dropped")
        self.assertGreater(pending + len(wire.frame(reply)), 2000)

    def test_replies_count(self) -> None:
        """
        Replies to the client's own requests count toward the limit too.
        """
        protocol, transport = self.logged_in(limits=Limits(max_pending=100, burst=100))
        transport.producer.pauseProducing()
        protocol.dataReceived(frame({"type": "ping", "id": 1}) * 20)
        self.assertTrue(transport.disconnected)

    def test_resume_resets(self) -> None:
        """
        Resuming the transport forgets the bytes counted while it was paused.
        """
        protocol, transport = self.logged_in(limits=Limits(max_pending=1000))
        transport.producer.pauseProducing()
        protocol.send(b"x" * 600)
        transport.producer.resumeProducing()
        transport.producer.pauseProducing()
        protocol.send(b"x" * 600)
        self.assertFalse(transport.disconnecting)

    def test_not_paused(self) -> None:
        """
        While the transport is not paused, nothing counts.
        """
        protocol, transport = self.logged_in(limits=Limits(max_pending=1000))
        for _ in range(5):
            protocol.send(b"x" * 600)
        self.assertFalse(transport.disconnecting)


# These suites run on PostgreSQL too.
on_postgresql(
    globals(),
    FramingTests,
    ReplyOrderTests,
    FrameTooLargeTests,
    ErrorsInARowTests,
    LoginGateTests,
    LoginDeadlineTests,
    IdleTimeoutTests,
    FloodControlTests,
    InternalErrorTests,
    RequestIdTests,
    LoginTests,
    SlowConsumerTests,
)
