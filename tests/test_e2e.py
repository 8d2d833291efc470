"""
End to end over loopback TCP: the wire, the protocol, the server and the
store together, with the real reactor.
"""

from __future__ import annotations

import json
import re
import struct

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase

from tests.postgres import on_postgresql
from tests.support import logged_in, start_server, wire_client


class AccountTests(TestCase):
    """
    Register, log in, log out and the duplicate-login kick on a real socket.
    """

    async def test_register_login_logout(self) -> None:
        """
        A registered user logs in, gets login_info, logs out, and the server
        closes the connection.
        """
        running = await start_server(self)
        client = await wire_client(self, running.port)
        reply = await client.request("register", username="ncr", password="secret1")
        self.assertEqual(reply["type"], "register_successful")
        reply = await client.request("login", username="ncr", password="secret1")
        self.assertEqual(reply["user"], {"id": 1, "username": "ncr"})
        info = await client.push("login_info")
        self.assertEqual(info["friends"], [])
        reply = await client.request("logout")
        self.assertEqual(reply["type"], "logout_successful")
        await client.lost

    async def test_duplicate_login_kicks_older_session(self) -> None:
        """
        Logging in again elsewhere kicks the older session with
        logged_in_elsewhere and closes it; the new session works.
        """
        running = await start_server(self)
        first = await logged_in(self, running.port, "ncr")
        second = await logged_in(self, running.port, "ncr")
        kick = await first.push("server_kick")
        self.assertEqual(kick["reason"], "logged_in_elsewhere")
        await first.lost
        reply = await second.request("ping")
        self.assertEqual(reply["type"], "pong")

    async def test_wrong_password(self) -> None:
        """
        A wrong password gets login_failed and the connection stays usable.
        """
        running = await start_server(self)
        client = await wire_client(self, running.port)
        await client.request("register", username="ncr", password="secret1")
        reply = await client.request("login", username="ncr", password="wrong-one")
        self.assertEqual(reply["code"], "login_failed")
        reply = await client.request("login", username="ncr", password="secret1")
        self.assertEqual(reply["type"], "login_successful")


async def befriend(a, b, b_name: str) -> None:
    """
    Make the logged-in clients C{a} and C{b} friends.
    """
    reply = await a.request("add_friend", username=b_name)
    assert reply["type"] == "friend_request_sent", reply
    request = await b.push("incoming_friend_request")
    reply = await b.request("resolve_friend_request", user_id=request["user"]["id"])
    assert reply["type"] == "add_friend_result", reply
    await a.push("add_friend_result")


class PrivateMessageTests(TestCase):
    """
    Private messages between friends, whether or not the recipient is online.
    """

    async def test_offline_delivery(self) -> None:
        """
        A message to an offline friend waits in unread and history for their
        next login.
        """
        running = await start_server(self)
        ncr = await logged_in(self, running.port, "ncr")
        lzy = await logged_in(self, running.port, "lzy")
        await befriend(ncr, lzy, "lzy")
        await lzy.close()
        offline = await ncr.push("friend_on_off_line")
        self.assertFalse(offline["online"])
        sent = []
        for text in ("are you there?", "see you tomorrow"):
            reply = await ncr.request("send_message", target_type=0, target_id=2, message=text)
            sent.append(reply["message"])
        lzy = await wire_client(self, running.port)
        await lzy.request("login", username="lzy", password="secret1")
        info = await lzy.push("login_info")
        self.assertEqual(
            info["unread"],
            [
                {
                    "target_type": 0,
                    "target_id": 1,
                    "count": 2,
                    "mentions": 0,
                    "last_message_id": sent[-1]["id"],
                }
            ],
        )
        self.assertEqual(info["friends"], [{"id": 1, "username": "ncr", "online": True}])
        page = await lzy.request("history", target_type=0, target_id=1)
        self.assertEqual(page["messages"], sent)
        await lzy.request("mark_read", target_type=0, target_id=1, message_id=sent[-1]["id"])
        await lzy.close()
        lzy = await wire_client(self, running.port)
        await lzy.request("login", username="lzy", password="secret1")
        info = await lzy.push("login_info")
        self.assertEqual(info["unread"], [])

    async def test_resend_after_lost_reply(self) -> None:
        """
        A client that loses its connection before the reply and resends with
        the same client_msg_id gets the message stored the first time, and
        it is stored and pushed once.
        """
        running = await start_server(self)
        ncr = await logged_in(self, running.port, "ncr")
        lzy = await logged_in(self, running.port, "lzy")
        await befriend(ncr, lzy, "lzy")

        # A raw connection that sends the message and hangs up at once,
        # without reading the reply.
        raw = Protocol()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", running.port), raw)
        frames = [
            {"type": "login", "id": 1, "username": "ncr", "password": "secret1"},
            {
                "type": "send_message",
                "id": 2,
                "target_type": 0,
                "target_id": 2,
                "message": "only once",
                "client_msg_id": "c-42",
            },
        ]
        data = b"".join(
            struct.pack("!I", len(encoded)) + encoded
            for encoded in (json.dumps(f).encode() for f in frames)
        )
        assert raw.transport is not None
        raw.transport.write(data)
        pushed = await lzy.push("on_new_message")
        raw.transport.loseConnection()

        again = await logged_in(self, running.port, "ncr")
        reply = await again.request(
            "send_message", target_type=0, target_id=2, message="only once", client_msg_id="c-42"
        )
        self.assertEqual(reply["message"], pushed["message"])
        page = await again.request("history", target_type=0, target_id=2)
        self.assertEqual([m["client_msg_id"] for m in page["messages"]], ["c-42"])
        ping = await lzy.request("ping")
        self.assertEqual(ping["type"], "pong")
        self.assertEqual([p for p in lzy.pending_pushes() if p["type"] == "on_new_message"], [])


class RoomTests(TestCase):
    """
    Rooms over a real socket.
    """

    async def test_invitation_while_offline(self) -> None:
        """
        A friend added to a room while offline finds it in their next
        login_info, with its history from the invitation on.
        """
        running = await start_server(self)
        ncr = await logged_in(self, running.port, "ncr")
        lzy = await logged_in(self, running.port, "lzy")
        await befriend(ncr, lzy, "lzy")
        created = await ncr.request("create_room", name="room1")
        room_id = created["room"]["id"]
        await ncr.request("send_message", target_type=1, target_id=room_id, message="before")
        await lzy.close()
        reply = await ncr.request("add_friend_to_room", room_id=room_id, user_id=2)
        self.assertEqual(reply["type"], "ok")
        await ncr.request("send_message", target_type=1, target_id=room_id, message="after")
        lzy = await wire_client(self, running.port)
        await lzy.request("login", username="lzy", password="secret1")
        info = await lzy.push("login_info")
        self.assertEqual(
            info["rooms"],
            [
                {
                    "id": room_id,
                    "name": "room1",
                    "topic": "",
                    "members": [
                        {"id": 1, "username": "ncr", "online": True, "role": "owner"},
                        {"id": 2, "username": "lzy", "online": True, "role": "member"},
                    ],
                }
            ],
        )
        page = await lzy.request("history", target_type=1, target_id=room_id)
        self.assertEqual(
            [m["message"] for m in page["messages"]], ["ncr added lzy to the room", "after"]
        )

    async def test_history_since_latest_join(self) -> None:
        """
        After quitting and joining again, room history starts at the new
        join: what was said while away stays hidden.
        """
        running = await start_server(self)
        ncr = await logged_in(self, running.port, "ncr")
        lzy = await logged_in(self, running.port, "lzy")
        created = await ncr.request("create_room", name="room1")
        room_id = created["room"]["id"]
        await lzy.request("join_room", name="room1")
        await ncr.request("send_message", target_type=1, target_id=room_id, message="one")
        reply = await lzy.request("quit_room", room_id=room_id)
        self.assertEqual(reply, {"type": "me_outroom", "id": reply["id"], "room_id": room_id})
        await ncr.request("send_message", target_type=1, target_id=room_id, message="two")
        await lzy.request("join_room", name="ROOM1")
        await ncr.request("send_message", target_type=1, target_id=room_id, message="three")
        page = await lzy.request("history", target_type=1, target_id=room_id)
        self.assertEqual([m["message"] for m in page["messages"]], ["lzy joined the room", "three"])

    async def test_example_session(self) -> None:
        """
        The example session of PROTOCOL.md 9 goes frame by frame as written
        (the time aside, which is the server's clock).
        """
        running = await start_server(self)
        client = await wire_client(self, running.port)
        with open(_protocol_md(), encoding="utf-8") as f:
            example = f.read().split("## 9. Example session", 1)[1]
        lines = re.findall(r"^([CS]): (.*)$", example, re.MULTILINE)
        self.assertEqual(len(lines), 9)
        expected = [json.loads(text) for side, text in lines if side == "S"]
        received: list[dict] = []
        all_received: Deferred[None] = Deferred()

        def frame_received(data: bytes) -> None:
            received.append(json.loads(data))
            if len(received) == len(expected):
                all_received.callback(None)

        client.stringReceived = frame_received  # type: ignore[method-assign]
        for side, text in lines:
            if side == "C":
                client.sendString(text.encode())
        await all_received
        for got in received:
            message = got.get("message")
            if isinstance(message, dict):
                self.assertRegex(message.pop("time"), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        for got, want in zip(received, expected, strict=True):
            _check_token(self, got, want)
            if isinstance(want.get("message"), dict):
                del want["message"]["time"]
        self.assertEqual(received, expected)


#: A session token (PROTOCOL.md 13): the example shows a placeholder.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43,}")


def _check_token(test: TestCase, got: dict, want: dict) -> None:
    """
    Where the example shows a token, the frame received holds one; drop
    both, as they cannot be equal.
    """
    if "token" in want:
        test.assertRegex(got.pop("token", ""), _TOKEN)
        del want["token"]


def _protocol_md() -> str:
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(here), "docs", "PROTOCOL.md")


# Every suite runs on PostgreSQL too.
on_postgresql(
    globals(),
    AccountTests,
    PrivateMessageTests,
    RoomTests,
)
