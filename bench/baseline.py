"""
The benchmark's baseline: the fastest bare Twisted broadcast server we can
write, so that chatd's ratios measure the cost of its rules and its
durability and nothing else.

It speaks just enough of PROTOCOL.md for the benchmark's loaders (this one
and chatload), with the same framing (L{Int32StringReceiver}) and nothing
else: no database, no validation, no passwords, no flood control, no
logging.  C{register}, C{login}, C{create_room}, C{join_room} and
C{send_message} to a room; a message is echoed to its sender as the
C{on_new_message} reply and pushed to every other member.

Every technique that any bare server could use, and that chatd uses, the
baseline uses too:

  - the message is encoded once: the sender's reply and the members' push
    share its bytes (the reference server in shared/tools does the same);
  - the pushes and replies caused by one read from a socket leave in one
    write per connection (chatd writes once per connection per commit
    group), rather than one write per frame;
  - C{TCP_NODELAY} on every connection;
  - the JSON library chatd uses (L{bench.baseline.JSON} names it).

    python -m bench.baseline --port tcp:19001:interface=127.0.0.1
"""

from __future__ import annotations

import argparse
import json
import struct
import time
from collections.abc import Callable
from typing import Any

from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure

Payload = dict[str, Any]

#: The JSON library of the baseline: the standard library's, as chatd's.
JSON = "json"

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_decode = json.loads
_PREFIX = struct.Struct("!I").pack


def frame(payload: Payload) -> bytes:
    """
    @return: C{payload} as compact UTF-8 JSON behind its 4-byte length.
    """
    data = _encode(payload).encode("utf-8")
    return _PREFIX(len(data)) + data


def utc_stamp(seconds: float) -> str:
    """
    @return: C{seconds} since the epoch as ISO 8601 UTC with milliseconds.
    """
    whole = int(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + (
        f".{int((seconds - whole) * 1000):03d}Z"
    )


class Room:
    """
    A room and its online members.
    """

    __slots__ = ("id", "members", "name")

    def __init__(self, room_id: int, name: str) -> None:
        self.id = room_id
        self.name = name
        self.members: dict[int, BaselineProtocol] = {}

    def describe(self) -> Payload:
        """
        @return: the PROTOCOL.md C{Room} object.
        """
        return {
            "id": self.id,
            "name": self.name,
            "topic": "",
            "members": [
                {"id": user_id, "username": member.username, "online": True, "role": "member"}
                for user_id, member in self.members.items()
            ],
        }


class Hub:
    """
    Everything the baseline remembers: accounts, rooms, the next message id,
    and the frames waiting for the end of the current read.
    """

    def __init__(self) -> None:
        self.user_ids: dict[str, int] = {}
        self.rooms: dict[int, Room] = {}
        self.room_ids: dict[str, int] = {}
        self.next_message_id = 1
        # While a read is being handled: connection -> the frames for it.
        self.outgoing: dict[BaselineProtocol, list[bytes]] | None = None

    def send(self, to: BaselineProtocol, data: bytes) -> None:
        """
        Write C{data} to C{to}, at the end of the current read if one is
        being handled.
        """
        outgoing = self.outgoing
        if outgoing is None:
            to.transport.write(data)
        elif to in outgoing:
            outgoing[to].append(data)
        else:
            outgoing[to] = [data]


class BaselineProtocol(Int32StringReceiver):
    """
    One client connection of the baseline.
    """

    MAX_LENGTH = 65536
    transport: Any

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.user_id: int | None = None
        self.username: str | None = None
        self.rooms: list[Room] = []
        self._handlers: dict[str, Callable[[Payload], Payload | list[Payload] | None]] = {
            "send_message": self.send_message,
            "register": self.register,
            "login": self.login,
            "create_room": self.create_room,
            "join_room": self.join_room,
            "ping": self.ping,
        }

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)

    def connectionLost(self, reason: Failure | None = None) -> None:
        for room in self.rooms:
            if self.user_id is not None and room.members.get(self.user_id) is self:
                del room.members[self.user_id]

    def dataReceived(self, data: bytes) -> None:
        # Everything this read causes leaves in one write per connection.
        hub = self.hub
        if hub.outgoing is not None:
            super().dataReceived(data)
            return
        hub.outgoing = {}
        try:
            super().dataReceived(data)
        finally:
            outgoing, hub.outgoing = hub.outgoing, None
            for protocol, frames in outgoing.items():
                protocol.transport.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def stringReceived(self, data: bytes) -> None:
        request = _decode(data)
        handler = self._handlers.get(request.get("type"))
        if handler is None:
            reply: Payload | list[Payload] | None = {"type": "error", "code": "unknown_type"}
        else:
            reply = handler(request)
        if reply is None:
            return
        replies = reply if isinstance(reply, list) else [reply]
        if "id" in request:
            replies[0]["id"] = request["id"]
        self.hub.send(self, b"".join(frame(r) for r in replies))

    def send_message(self, request: Payload) -> None:
        """
        Push the message to the room's other members, then answer with it;
        the message is encoded once for both.  It has every field of a
        version 2 Message (PROTOCOL.md section 3), as chatd's have.
        """
        hub = self.hub
        room = hub.rooms[request["target_id"]]
        message_id = hub.next_message_id
        hub.next_message_id += 1
        message = _encode(
            {
                "id": message_id,
                "client_msg_id": request.get("client_msg_id"),
                "sender_id": self.user_id,
                "sender_name": self.username,
                "target_type": 1,
                "target_id": room.id,
                "room_name": room.name,
                "kind": "text",
                "message": request["message"],
                "time": utc_stamp(time.time()),
                "edited_at": None,
                "deleted": False,
                "reply_to": None,
                "mentions": [],
                "reactions": [],
                "file": None,
            }
        ).encode("utf-8")
        push = b'{"type":"on_new_message","message":' + message + b"}"
        push = _PREFIX(len(push)) + push
        for member in room.members.values():
            if member is not self:
                hub.send(member, push)
        if "id" in request:
            reply = b'{"type":"on_new_message","id":%d,"message":%b}' % (request["id"], message)
        else:
            reply = push[4:]
        hub.send(self, _PREFIX(len(reply)) + reply)

    def register(self, request: Payload) -> Payload:
        """
        Create an account (any password).
        """
        username = request["username"]
        key = username.lower()
        if key in self.hub.user_ids:
            return {"type": "error", "code": "username_taken", "message": "taken"}
        user_id = self.hub.user_ids[key] = len(self.hub.user_ids) + 1
        return {"type": "register_successful", "user": {"id": user_id, "username": username}}

    def login(self, request: Payload) -> list[Payload]:
        """
        Log in as any registered account (no password check).
        """
        username = request["username"]
        user_id = self.hub.user_ids.get(username.lower())
        if user_id is None:
            return [{"type": "error", "code": "login_failed", "message": "no"}]
        self.user_id, self.username = user_id, username
        user = {"id": user_id, "username": username}
        return [
            {"type": "login_successful", "user": user},
            {
                "type": "login_info",
                "user": user,
                "friends": [],
                "rooms": [],
                "friend_requests": [],
                "unread": [],
            },
        ]

    def create_room(self, request: Payload) -> Payload:
        """
        Create a room with this user as its first member.
        """
        hub = self.hub
        name = request["name"]
        if name.lower() in hub.room_ids:
            return {"type": "error", "code": "room_exists", "message": "exists"}
        room = Room(len(hub.rooms) + 1, name)
        hub.rooms[room.id] = room
        hub.room_ids[name.lower()] = room.id
        return self._enter(room, "create_successful")

    def join_room(self, request: Payload) -> Payload:
        """
        Join a room by name.
        """
        room_id = self.hub.room_ids.get(request["name"].lower())
        if room_id is None:
            return {"type": "error", "code": "no_such_room", "message": "no"}
        return self._enter(self.hub.rooms[room_id], "join_successful")

    def _enter(self, room: Room, reply_type: str) -> Payload:
        assert self.user_id is not None
        room.members[self.user_id] = self
        self.rooms.append(room)
        return {"type": reply_type, "room": room.describe()}

    def ping(self, request: Payload) -> Payload:
        """
        Answer C{pong}.
        """
        return {"type": "pong"}


class BaselineFactory(Factory):
    """
    Builds a L{BaselineProtocol} per connection, all sharing one L{Hub}.
    """

    noisy = False

    def __init__(self) -> None:
        self.hub = Hub()

    def buildProtocol(self, addr: Any) -> BaselineProtocol:
        return BaselineProtocol(self.hub)


def main() -> None:
    """
    Serve on the endpoint given by C{--port} until SIGTERM or SIGINT.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", required=True, help="a Twisted server endpoint")
    args = parser.parse_args()
    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor

    def failed(failure: Failure) -> None:
        print(f"baseline: cannot listen on {args.port}: {failure.getErrorMessage()}")
        reactor.stop()

    serverFromString(reactor, args.port).listen(BaselineFactory()).addErrback(failed)
    reactor.run()


if __name__ == "__main__":
    main()
