"""
End to end over loopback TCP for PROTOCOL.md section 12 (room topics, roles
and moderation), the C{role} and C{topic} fields of section 3, and the
room owner's and moderators' right to delete others' messages (section 10):
a real server on a loopback port, a real SQLite file in the test's temporary
directory, and bare wire clients.

Users are registered in a fixed order in every test, so their ids are known:
ncr is 1, lzy is 2, wsx is 3, qaz is 4 and edc is 5.  Flood control
(section 8) is lifted: some tests send more than a burst of requests on one
connection.  Every expected refusal is followed by a ping, so that a run of
them never reaches the 10 protocol errors in a row after which the server
closes the connection (section 2).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from chatd import assembly, wire
from chatd.protocol import Limits
from tests.postgres import on_postgresql
from tests.support import PLAIN, RunningServer, WireClient, logged_in, start_server, wire_client
from tests.test_e2e import befriend
from tests.test_e2e_messages import TIME, TOMBSTONE, drain, history, send

NCR, LZY, WSX, QAZ, EDC = 1, 2, 3, 4, 5
NAMES = {NCR: "ncr", LZY: "lzy", WSX: "wsx", QAZ: "qaz", EDC: "edc"}

UNLIMITED = Limits(rate=1e9, burst=10**9)

#: A user id that names no user in any test.
NOBODY = 999

#: Values that are not a valid integer field (section 2).
BAD_INTEGERS: list[Any] = [None, "1", 1.0, True, -1, 2**53, [1], {"id": 1}]

#: Values that are not a valid boolean field (section 2).
BAD_BOOLEANS: list[Any] = ["true", 1, 0, [], {}, "yes", 1.0]

#: Values that are not a role set_role takes (section 12).
BAD_ROLES: list[Any] = ["owner", "admin", "", "Moderator", "MEMBER", " member", 1, None, True]

#: Control characters (Unicode category Cc), none allowed in a topic.
CONTROL = ["\n", "\r", "\t", "\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9f"]


def member(user_id: int, role: str = "member", online: bool = True) -> wire.Payload:
    """
    @return: the Member object of C{user_id} (PROTOCOL.md 3).
    """
    return {"id": user_id, "username": NAMES[user_id], "online": online, "role": role}


def without_id(reply: wire.Payload) -> wire.Payload:
    """
    @return: C{reply} without its request id, to compare it with a push.
    """
    return {key: value for key, value in reply.items() if key != "id"}


def by_id(members: list[wire.Payload]) -> list[wire.Payload]:
    """
    @return: C{members} in order of their ids (the protocol sets no order).
    """
    return sorted(members, key=lambda m: m["id"])


def system_message(
    message: wire.Payload, room_id: int, sender_id: int, text: str, room_name: str = "room1"
) -> wire.Payload:
    """
    @return: the system Message C{message} should be: of the room
        C{room_id}, caused by C{sender_id}, saying C{text}.
    """
    return {
        "id": message["id"],
        "client_msg_id": None,
        "sender_id": sender_id,
        "sender_name": NAMES[sender_id],
        "target_type": 1,
        "target_id": room_id,
        "room_name": room_name,
        "kind": "system",
        "message": text,
        "time": message["time"],
        **PLAIN,
    }


async def log_in_again(testcase: TestCase, port: int, name: str) -> tuple[WireClient, wire.Payload]:
    """
    @return: a fresh client logged in as C{name}, and its C{login_info}.
    """
    client = await wire_client(testcase, port)
    reply = await client.request("login", username=name, password="secret1")
    assert reply["type"] == "login_successful", reply
    info = await client.push("login_info")
    return client, info


async def serve(testcase: TestCase, path: str) -> tuple[int, Callable[[], Awaitable[None]]]:
    """
    Start a chatd server on the database at C{path}, as L{start_server}
    does, but one that can be stopped before the test ends, so that another
    can start on the same database.

    @return: its port, and a function that stops it (its clients closed
        first by the caller); it stops anyway when the test ends.
    """
    from twisted.internet import reactor

    assembled = await assembly.open(path, reactor, UNLIMITED, insecure_fast_hashes=True)
    listening = reactor.listenTCP(0, assembled.factory, interface="127.0.0.1")
    stopped = False

    async def stop() -> None:
        nonlocal stopped
        if stopped:
            return
        stopped = True
        await listening.stopListening()
        await assembled.close()

    testcase.addCleanup(lambda: Deferred.fromCoroutine(stop()))
    return listening.getHost().port, stop


class Base(TestCase):
    """
    Set-ups and checks the tests share.
    """

    async def users(self, *names: str) -> tuple[RunningServer, list[WireClient]]:
        """
        @return: a running server and logged-in clients of C{names}, in that
            order (so with the ids 1, 2, ...).
        """
        running = await start_server(self, limits=UNLIMITED)
        clients = [await logged_in(self, running.port, name) for name in names]
        return running, clients

    async def room(self, owner: WireClient, *members: WireClient, name: str = "room1") -> int:
        """
        Create the room C{name} by C{owner}; C{members} join it, one after
        another.  Every client's pushes so far are forgotten.

        @return: the room's id.
        """
        created = await owner.request("create_room", name=name)
        assert created["type"] == "create_successful", created
        for client in members:
            joined = await client.request("join_room", name=name)
            assert joined["type"] == "join_successful", joined
        for client in (owner, *members):
            await drain(client)
        room_id: int = created["room"]["id"]
        return room_id

    async def promote(
        self, owner: WireClient, room_id: int, everyone: list[WireClient], *user_ids: int
    ) -> None:
        """
        The owner makes C{user_ids} moderators; the pushes it causes to
        C{everyone} are forgotten.
        """
        for user_id in user_ids:
            reply = await owner.request(
                "set_role", room_id=room_id, user_id=user_id, role="moderator"
            )
            self.assertEqual(reply, {"type": "ok", "id": reply["id"]})
        for client in everyone:
            await drain(client)

    async def ok(self, client: WireClient, kind: str, **fields: Any) -> None:
        """
        Check that a request is answered C{ok} with nothing else.
        """
        reply = await client.request(kind, **fields)
        self.assertEqual(reply, {"type": "ok", "id": reply["id"]}, (kind, fields))

    async def assertError(self, client: WireClient, code: str, kind: str, **fields: Any) -> None:
        """
        Check that a request is refused with C{code}; then a ping, so that
        a run of refusals never closes the connection (PROTOCOL.md 2).
        """
        reply = await client.request(kind, **fields)
        self.assertEqual(reply["type"], "error", (kind, fields, reply))
        self.assertEqual(reply["code"], code, (kind, fields, reply))
        pong = await client.request("ping")
        self.assertEqual(pong["type"], "pong", pong)

    async def assertNothingPushed(
        self, sender: WireClient, target_type: int, target_id: int, *others: WireClient
    ) -> None:
        """
        Check that C{others} got nothing since their pushes were last taken:
        C{sender} sends a message to the conversation, and the next push
        each of C{others} receives is that message.
        """
        later = await send(sender, target_type, target_id, "a later message")
        for other in others:
            pushed = await other.push()
            self.assertEqual(pushed, {"type": "on_new_message", "message": later})

    async def leave(self, client: WireClient, *co_members: WireClient) -> None:
        """
        Close C{client}'s connection, and wait until each of C{co_members}
        (who share exactly one room with it) was told it went offline.
        """
        await client.close()
        for other in co_members:
            pushed = await other.push("room_user_on_off_line")
            self.assertFalse(pushed["online"], pushed)

    async def member_count(self, client: WireClient, name: str) -> int:
        """
        @return: the member_count list_rooms gives for the room C{name}.
        """
        listing = await client.request("list_rooms", query=name)
        self.assertEqual(listing["type"], "room_list", listing)
        [entry] = [r for r in listing["rooms"] if r["name"] == name]
        count: int = entry["member_count"]
        return count

    def assertRoom(
        self,
        room: wire.Payload,
        room_id: int,
        topic: str,
        members: list[wire.Payload],
        name: str = "room1",
    ) -> None:
        """
        Check a Room object (PROTOCOL.md 3), its members in any order.
        """
        self.assertEqual(
            {**room, "members": by_id(room["members"])},
            {"id": room_id, "name": name, "topic": topic, "members": by_id(members)},
        )

    def room_in(self, info: wire.Payload, room_id: int) -> wire.Payload | None:
        """
        @return: the Room C{room_id} of a C{login_info}, or None.
        """
        rooms = [r for r in info["rooms"] if r["id"] == room_id]
        self.assertLessEqual(len(rooms), 1, info["rooms"])
        return rooms[0] if rooms else None


class RoomObjectTests(Base):
    """
    The version 2 fields of Room and Member (PROTOCOL.md 3 and 12): topic
    ("" when unset) and role.
    """

    async def test_create_and_join(self) -> None:
        """
        create_successful has topic "" and the creator as owner; a joiner's
        join_successful lists everyone with their role, the joiner a plain
        member; someone_inroom's Member carries role member.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        created = await ncr.request("create_room", name="room1")
        self.assertEqual(created["type"], "create_successful")
        room_id = created["room"]["id"]
        self.assertEqual(
            created["room"],
            {"id": room_id, "name": "room1", "topic": "", "members": [member(NCR, "owner")]},
        )
        joined = await lzy.request("join_room", name="room1")
        self.assertEqual(joined["type"], "join_successful")
        self.assertRoom(joined["room"], room_id, "", [member(NCR, "owner"), member(LZY)])
        inroom = await ncr.push("someone_inroom")
        self.assertEqual(
            inroom, {"type": "someone_inroom", "room_id": room_id, "user": member(LZY)}
        )
        joined = await wsx.request("join_room", name="room1")
        self.assertRoom(
            joined["room"], room_id, "", [member(NCR, "owner"), member(LZY), member(WSX)]
        )

    async def test_added_by_friend(self) -> None:
        """
        A friend added to a room gets join_successful with the topic and
        every member's role, themself a plain member.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        room_id = await self.room(ncr, lzy)
        await self.promote(ncr, room_id, [ncr, lzy], LZY)
        reply = await ncr.request("set_topic", room_id=room_id, topic="news")
        self.assertEqual(reply["type"], "room_updated")
        await befriend(lzy, wsx, "wsx")
        await self.ok(lzy, "add_friend_to_room", room_id=room_id, user_id=WSX)
        pushed = await wsx.push("join_successful")
        self.assertRoom(
            pushed["room"],
            room_id,
            "news",
            [member(NCR, "owner"), member(LZY, "moderator"), member(WSX)],
        )
        inroom = await ncr.push("someone_inroom")
        self.assertEqual(inroom["user"], member(WSX))

    async def test_login_info_and_list_rooms(self) -> None:
        """
        login_info's rooms carry the topic and every member's role and
        online flag; list_rooms entries carry the topic.
        """
        running, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        room_id = await self.room(ncr, lzy, wsx)
        other_id = await self.room(wsx, name="room2")
        listing = await lzy.request("list_rooms")
        self.assertEqual(
            listing["rooms"],
            [
                {"id": room_id, "name": "room1", "topic": "", "member_count": 3},
                {"id": other_id, "name": "room2", "topic": "", "member_count": 1},
            ],
        )
        await self.promote(ncr, room_id, [ncr, lzy, wsx], WSX)
        reply = await wsx.request("set_topic", room_id=room_id, topic="Rules: be nice")
        self.assertEqual(reply["type"], "room_updated")
        await wsx.close()
        await lzy.close()
        _, info = await log_in_again(self, running.port, "lzy")
        self.assertEqual(len(info["rooms"]), 1)
        self.assertRoom(
            info["rooms"][0],
            room_id,
            "Rules: be nice",
            [member(NCR, "owner"), member(LZY), member(WSX, "moderator", online=False)],
        )
        listing = await ncr.request("list_rooms", query="room")
        self.assertEqual(
            listing["rooms"],
            [
                {"id": room_id, "name": "room1", "topic": "Rules: be nice", "member_count": 3},
                {"id": other_id, "name": "room2", "topic": "", "member_count": 1},
            ],
        )


class TopicTests(Base):
    """
    set_topic (PROTOCOL.md 12).
    """

    async def test_set_topic(self) -> None:
        """
        The owner's set_topic is answered room_updated with the room; every
        other online member gets the same room_updated and the system
        message "X set the topic to: ..." as any room message; the setter
        gets no push; an offline member finds the topic at login and the
        message in history.
        """
        running, (ncr, lzy, wsx, qaz) = await self.users("ncr", "lzy", "wsx", "qaz")
        room_id = await self.room(ncr, lzy, wsx, qaz)
        await self.leave(qaz, ncr, lzy, wsx)
        reply = await ncr.request("set_topic", room_id=room_id, topic="Welcome, all")
        self.assertEqual(reply["type"], "room_updated", reply)
        members = [member(NCR, "owner"), member(LZY), member(WSX), member(QAZ, online=False)]
        self.assertRoom(reply["room"], room_id, "Welcome, all", members)
        message = None
        for other in (lzy, wsx):
            pushed = await other.push("room_updated")
            self.assertEqual(set(pushed), {"type", "room"})
            self.assertRoom(pushed["room"], room_id, "Welcome, all", members)
            said = (await other.push("on_new_message"))["message"]
            self.assertEqual(
                said, system_message(said, room_id, NCR, "ncr set the topic to: Welcome, all")
            )
            self.assertEqual(said["room_name"], "room1")
            self.assertRegex(said["time"], TIME)
            if message is None:
                message = said
            self.assertEqual(said, message)
        # The setter gets the system message too (not room_updated: that is
        # their reply), so that their timeline holds it.
        self.assertEqual((await ncr.push("on_new_message"))["message"], message)
        await self.assertNothingPushed(lzy, 1, room_id, ncr, wsx)
        self.assertIn(message, await history(ncr, 1, room_id))

        qaz, info = await log_in_again(self, running.port, "qaz")
        room = self.room_in(info, room_id)
        assert room is not None
        self.assertEqual(room["topic"], "Welcome, all")
        self.assertIn(message, await history(qaz, 1, room_id))

    async def test_clear_topic(self) -> None:
        """
        An empty topic clears it: room_updated with topic "", and the system
        message "X cleared the topic".
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr, lzy)
        reply = await ncr.request("set_topic", room_id=room_id, topic="temporary")
        self.assertEqual(reply["type"], "room_updated")
        await lzy.push("room_updated")
        await lzy.push("on_new_message")
        reply = await ncr.request("set_topic", room_id=room_id, topic="")
        self.assertEqual(reply["type"], "room_updated", reply)
        self.assertRoom(reply["room"], room_id, "", [member(NCR, "owner"), member(LZY)])
        pushed = await lzy.push("room_updated")
        self.assertEqual(pushed, without_id(reply))
        said = (await lzy.push("on_new_message"))["message"]
        self.assertEqual(said, system_message(said, room_id, NCR, "ncr cleared the topic"))
        await self.assertNothingPushed(ncr, 1, room_id, lzy)
        self.assertEqual(
            [m["message"] for m in await history(lzy, 1, room_id)][-3:],
            ["ncr set the topic to: temporary", "ncr cleared the topic", "a later message"],
        )
        listing = await lzy.request("list_rooms", query="room1")
        self.assertEqual(listing["rooms"][0]["topic"], "")

    async def test_same_topic(self) -> None:
        """
        Setting the topic the room already has (and clearing an unset one)
        succeeds with room_updated and changes nothing: no push, no system
        message.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr, lzy)
        reply = await ncr.request("set_topic", room_id=room_id, topic="")
        self.assertEqual(reply["type"], "room_updated", reply)
        self.assertRoom(reply["room"], room_id, "", [member(NCR, "owner"), member(LZY)])
        await self.assertNothingPushed(ncr, 1, room_id, lzy)

        reply = await ncr.request("set_topic", room_id=room_id, topic="same")
        self.assertEqual(reply["type"], "room_updated")
        await lzy.push("room_updated")
        await lzy.push("on_new_message")
        await self.promote(ncr, room_id, [ncr, lzy], LZY)
        before = await history(ncr, 1, room_id)
        for setter in (ncr, lzy):
            reply = await setter.request("set_topic", room_id=room_id, topic="same")
            self.assertEqual(reply["type"], "room_updated", reply)
            self.assertRoom(
                reply["room"], room_id, "same", [member(NCR, "owner"), member(LZY, "moderator")]
            )
        await self.assertNothingPushed(ncr, 1, room_id, lzy)
        await self.assertNothingPushed(lzy, 1, room_id, ncr)
        self.assertEqual((await history(ncr, 1, room_id))[: len(before)], before)
        self.assertEqual(len(await history(ncr, 1, room_id)), len(before) + 2)

    async def test_who_may_set(self) -> None:
        """
        The owner and moderators set the topic; a plain member gets
        not_allowed, and so does a moderator demoted to member; nothing
        changes on a refusal.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        room_id = await self.room(ncr, lzy, wsx)
        await self.assertError(wsx, "not_allowed", "set_topic", room_id=room_id, topic="mine")
        await self.promote(ncr, room_id, [ncr, lzy, wsx], LZY)
        reply = await lzy.request("set_topic", room_id=room_id, topic="by a moderator")
        self.assertEqual(reply["type"], "room_updated", reply)
        self.assertEqual(reply["room"]["topic"], "by a moderator")
        said = (await wsx.push("on_new_message"))["message"]
        self.assertEqual(
            said, system_message(said, room_id, LZY, "lzy set the topic to: by a moderator")
        )
        self.assertEqual((await ncr.push("room_updated"))["room"]["topic"], "by a moderator")
        await self.ok(ncr, "set_role", room_id=room_id, user_id=LZY, role="member")
        for client in (ncr, lzy, wsx):
            await drain(client)
        await self.assertError(lzy, "not_allowed", "set_topic", room_id=room_id, topic="again")
        await self.assertError(wsx, "not_allowed", "set_topic", room_id=room_id, topic="")
        await self.assertNothingPushed(wsx, 1, room_id, ncr, lzy)
        listing = await wsx.request("list_rooms", query="room1")
        self.assertEqual(listing["rooms"][0]["topic"], "by a moderator")

    async def test_topic_length(self) -> None:
        """
        A topic is 0-200 code points: 200 (outside the BMP too) is taken,
        201 is invalid_field, and the topic stays.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr, lzy)
        for topic in ("x" * 200, "😀" * 200, "é" * 200):
            reply = await ncr.request("set_topic", room_id=room_id, topic=topic)
            self.assertEqual(reply["type"], "room_updated", reply)
            self.assertEqual(reply["room"]["topic"], topic)
            said = (await lzy.push("on_new_message"))["message"]
            self.assertEqual(said["message"], "ncr set the topic to: " + topic)
        for topic in ("x" * 201, "😀" * 201, "y" * 4000):
            await self.assertError(ncr, "invalid_field", "set_topic", room_id=room_id, topic=topic)
        listing = await ncr.request("list_rooms", query="room1")
        self.assertEqual(listing["rooms"][0]["topic"], "é" * 200)

    async def test_no_control_characters(self) -> None:
        """
        A topic with a control character (Unicode Cc: newline, tab, NUL,
        BEL, DEL, NEL, ...) is invalid_field; other characters, such as
        spaces, a no-break space or an emoji joined by U+200D, are taken.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr, lzy)
        for char in CONTROL:
            await self.assertError(
                ncr, "invalid_field", "set_topic", room_id=room_id, topic=f"line one{char}two"
            )
            await self.assertError(ncr, "invalid_field", "set_topic", room_id=room_id, topic=char)
        await self.assertNothingPushed(ncr, 1, room_id, lzy)
        for topic in ("a b c", "no\u00a0break", "👨‍👩‍👧 family", "话题 ✓"):
            reply = await ncr.request("set_topic", room_id=room_id, topic=topic)
            self.assertEqual(reply["type"], "room_updated", reply)
            self.assertEqual(reply["room"]["topic"], topic)

    async def test_not_a_member_and_unknown_room(self) -> None:
        """
        set_topic of a room the requester is not in is not_in_room, of an
        unknown room no_such_room.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr)
        await self.assertError(lzy, "not_in_room", "set_topic", room_id=room_id, topic="x")
        await self.assertError(lzy, "no_such_room", "set_topic", room_id=room_id + 100, topic="x")
        await self.assertError(ncr, "no_such_room", "set_topic", room_id=room_id + 100, topic="x")
        reply = await ncr.request("quit_room", room_id=room_id)
        self.assertEqual(reply["type"], "me_outroom")
        await self.assertError(ncr, "not_in_room", "set_topic", room_id=room_id, topic="x")


class RoleTests(Base):
    """
    set_role (PROTOCOL.md 12).
    """

    async def test_set_role_pushes(self) -> None:
        """
        The owner's set_role is answered ok; member_role goes to every other
        online member, the one concerned included, and not to the owner; an
        offline member sees the role in their next login_info.
        """
        running, (ncr, lzy, wsx, qaz) = await self.users("ncr", "lzy", "wsx", "qaz")
        room_id = await self.room(ncr, lzy, wsx, qaz)
        await self.leave(qaz, ncr, lzy, wsx)
        await self.ok(ncr, "set_role", room_id=room_id, user_id=LZY, role="moderator")
        expected = {"type": "member_role", "room_id": room_id, "user_id": LZY, "role": "moderator"}
        self.assertEqual(await lzy.push(), expected)
        self.assertEqual(await wsx.push(), expected)
        await self.assertNothingPushed(wsx, 1, room_id, ncr)

        qaz, info = await log_in_again(self, running.port, "qaz")
        room = self.room_in(info, room_id)
        assert room is not None
        self.assertRoom(
            room,
            room_id,
            "",
            [member(NCR, "owner"), member(LZY, "moderator"), member(WSX), member(QAZ)],
        )
        for client in (ncr, lzy, wsx):
            await drain(client)

        await self.ok(ncr, "set_role", room_id=room_id, user_id=LZY, role="member")
        expected = {"type": "member_role", "room_id": room_id, "user_id": LZY, "role": "member"}
        for client in (lzy, wsx, qaz):
            self.assertEqual(await client.push("member_role"), expected)
        await self.assertNothingPushed(wsx, 1, room_id, ncr)

    async def test_offline_member_promoted(self) -> None:
        """
        The owner may set the role of a member who is offline; they find it
        in their next login_info.
        """
        running, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr, lzy)
        await lzy.close()
        await self.ok(ncr, "set_role", room_id=room_id, user_id=LZY, role="moderator")
        lzy, info = await log_in_again(self, running.port, "lzy")
        room = self.room_in(info, room_id)
        assert room is not None
        self.assertRoom(room, room_id, "", [member(NCR, "owner"), member(LZY, "moderator")])
        reply = await lzy.request("set_topic", room_id=room_id, topic="moderated")
        self.assertEqual(reply["type"], "room_updated")

    async def test_role_already_held(self) -> None:
        """
        Setting the role a member already holds succeeds with ok, and pushes
        nothing.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        room_id = await self.room(ncr, lzy, wsx)
        await self.ok(ncr, "set_role", room_id=room_id, user_id=LZY, role="member")
        await self.assertNothingPushed(ncr, 1, room_id, lzy, wsx)
        await self.promote(ncr, room_id, [ncr, lzy, wsx], WSX)
        await self.ok(ncr, "set_role", room_id=room_id, user_id=WSX, role="moderator")
        await self.assertNothingPushed(ncr, 1, room_id, lzy, wsx)
        await self.assertNothingPushed(lzy, 1, room_id, ncr)

    async def test_only_the_owner(self) -> None:
        """
        A moderator or a plain member setting a role, anyone's, gets
        not_allowed, and nothing changes.
        """
        _, (ncr, lzy, wsx, qaz) = await self.users("ncr", "lzy", "wsx", "qaz")
        room_id = await self.room(ncr, lzy, wsx, qaz)
        await self.promote(ncr, room_id, [ncr, lzy, wsx, qaz], LZY)
        cases = [
            (lzy, WSX, "moderator"),
            (lzy, QAZ, "member"),
            (lzy, LZY, "member"),
            (lzy, NCR, "member"),
            (wsx, WSX, "moderator"),
            (wsx, QAZ, "moderator"),
            (wsx, LZY, "member"),
            (wsx, NCR, "moderator"),
        ]
        for requester, target, role in cases:
            await self.assertError(
                requester, "not_allowed", "set_role", room_id=room_id, user_id=target, role=role
            )
        await self.assertNothingPushed(qaz, 1, room_id, ncr, lzy, wsx)
        # lzy is still a moderator, wsx still a member.
        reply = await lzy.request("set_topic", room_id=room_id, topic="still moderator")
        self.assertEqual(reply["type"], "room_updated")
        await self.assertError(wsx, "not_allowed", "set_topic", room_id=room_id, topic="no")

    async def test_owner_own_role(self) -> None:
        """
        The owner's own role cannot be set: not_allowed, whatever the role.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr, lzy)
        for role in ("member", "moderator"):
            await self.assertError(
                ncr, "not_allowed", "set_role", room_id=room_id, user_id=NCR, role=role
            )
        await self.assertNothingPushed(ncr, 1, room_id, lzy)
        reply = await ncr.request("set_topic", room_id=room_id, topic="still the owner")
        self.assertRoom(
            reply["room"], room_id, "still the owner", [member(NCR, "owner"), member(LZY)]
        )

    async def test_role_values(self) -> None:
        """
        role must be "moderator" or "member": "owner", another word, another
        case, a number, null or nothing is invalid_field.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr, lzy)
        for role in BAD_ROLES:
            await self.assertError(
                ncr, "invalid_field", "set_role", room_id=room_id, user_id=LZY, role=role
            )
        await self.assertError(ncr, "invalid_field", "set_role", room_id=room_id, user_id=LZY)
        await self.assertNothingPushed(ncr, 1, room_id, lzy)

    async def test_demoted_moderator(self) -> None:
        """
        A moderator made a member again loses the moderator's rights.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        room_id = await self.room(ncr, lzy, wsx)
        await self.promote(ncr, room_id, [ncr, lzy, wsx], LZY)
        await self.ok(ncr, "set_role", room_id=room_id, user_id=LZY, role="member")
        for client in (ncr, lzy, wsx):
            await drain(client)
        await self.assertError(lzy, "not_allowed", "kick_from_room", room_id=room_id, user_id=WSX)
        await self.assertError(lzy, "not_allowed", "set_topic", room_id=room_id, topic="t")
        self.assertEqual(await self.member_count(ncr, "room1"), 3)


class KickTests(Base):
    """
    kick_from_room without a ban (PROTOCOL.md 12).
    """

    async def test_kick(self) -> None:
        """
        The owner removes a member: ok; the one removed gets me_outroom with
        reason kicked; the other online members, the kicker included, get
        someone_outroom; the members left (the kicker too, not the one
        removed) get "X removed Y from the room", which history keeps.
        """
        running, (ncr, lzy, wsx, qaz) = await self.users("ncr", "lzy", "wsx", "qaz")
        room_id = await self.room(ncr, lzy, wsx, qaz)
        side = await self.room(lzy, wsx, name="side")
        await self.leave(qaz, ncr, lzy, wsx)
        await self.ok(ncr, "kick_from_room", room_id=room_id, user_id=LZY)
        self.assertEqual(
            await lzy.push("me_outroom"),
            {"type": "me_outroom", "room_id": room_id, "reason": "kicked"},
        )
        outroom = {"type": "someone_outroom", "room_id": room_id, "user_id": LZY}
        self.assertEqual(await ncr.push("someone_outroom"), outroom)
        self.assertEqual(await wsx.push("someone_outroom"), outroom)
        said = (await wsx.push("on_new_message"))["message"]
        self.assertEqual(said, system_message(said, room_id, NCR, "ncr removed lzy from the room"))
        self.assertEqual(said["room_name"], "room1")
        self.assertEqual((await history(ncr, 1, room_id))[-1], said)
        # The kicker is among the members left: their timeline gets it too.
        self.assertEqual((await ncr.push("on_new_message"))["message"], said)
        # The one removed gets nothing more of the room.
        await self.assertNothingPushed(wsx, 1, side, lzy)
        await drain(ncr)

        await self.assertError(
            lzy, "not_in_room", "send_message", target_type=1, target_id=room_id, message="hey"
        )
        await self.assertError(lzy, "not_in_room", "history", target_type=1, target_id=room_id)
        await self.assertError(lzy, "not_in_room", "quit_room", room_id=room_id)
        await self.assertError(lzy, "not_in_room", "set_topic", room_id=room_id, topic="t")
        self.assertEqual(await self.member_count(ncr, "room1"), 3)
        # Messages of the room no longer reach them.
        await send(wsx, 1, room_id, "after the kick")
        await self.assertNothingPushed(wsx, 1, side, lzy)

        await lzy.close()
        lzy, info = await log_in_again(self, running.port, "lzy")
        self.assertIsNone(self.room_in(info, room_id))
        self.assertIsNotNone(self.room_in(info, side))
        qaz, info = await log_in_again(self, running.port, "qaz")
        room = self.room_in(info, room_id)
        assert room is not None
        self.assertRoom(room, room_id, "", [member(NCR, "owner"), member(WSX), member(QAZ)])
        self.assertIn(said, await history(qaz, 1, room_id))

    async def test_kick_offline_member(self) -> None:
        """
        A member who is offline can be removed; the room is gone from their
        next login_info.
        """
        running, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr, lzy)
        await lzy.close()
        await drain(ncr)
        await self.ok(ncr, "kick_from_room", room_id=room_id, user_id=LZY, ban=False)
        self.assertEqual(
            await ncr.push("someone_outroom"),
            {"type": "someone_outroom", "room_id": room_id, "user_id": LZY},
        )
        _, info = await log_in_again(self, running.port, "lzy")
        self.assertEqual(info["rooms"], [])
        self.assertEqual(
            (await history(ncr, 1, room_id))[-1]["message"], "ncr removed lzy from the room"
        )

    async def test_kicked_may_join_again(self) -> None:
        """
        A user removed without a ban may join again, as a plain member (a
        moderator removed included), and sees history from the new join on.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        room_id = await self.room(ncr, lzy, wsx)
        await self.promote(ncr, room_id, [ncr, lzy, wsx], LZY)
        await self.ok(ncr, "kick_from_room", room_id=room_id, user_id=LZY)
        await lzy.push("me_outroom")
        await send(ncr, 1, room_id, "while lzy was away")
        joined = await lzy.request("join_room", name="room1")
        self.assertEqual(joined["type"], "join_successful", joined)
        self.assertRoom(
            joined["room"], room_id, "", [member(NCR, "owner"), member(LZY), member(WSX)]
        )
        self.assertEqual(
            [m["message"] for m in await history(lzy, 1, room_id)], ["lzy joined the room"]
        )
        await self.assertError(lzy, "not_allowed", "set_topic", room_id=room_id, topic="t")
        await self.assertError(lzy, "not_allowed", "kick_from_room", room_id=room_id, user_id=WSX)

    async def test_kicked_may_be_added_again(self) -> None:
        """
        A user removed without a ban may be added again by a friend, as a
        plain member.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        room_id = await self.room(ncr, lzy, wsx)
        await befriend(wsx, lzy, "lzy")
        await self.promote(ncr, room_id, [ncr, lzy, wsx], LZY)
        await self.ok(ncr, "kick_from_room", room_id=room_id, user_id=LZY)
        await lzy.push("me_outroom")
        await self.ok(wsx, "add_friend_to_room", room_id=room_id, user_id=LZY)
        pushed = await lzy.push("join_successful")
        self.assertRoom(
            pushed["room"], room_id, "", [member(NCR, "owner"), member(LZY), member(WSX)]
        )

    async def test_owner_removes(self) -> None:
        """
        The owner removes (and bans) moderators and members, but not
        themself.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        room_id = await self.room(ncr, lzy, wsx)
        await self.promote(ncr, room_id, [ncr, lzy, wsx], LZY)
        await self.assertError(ncr, "not_allowed", "kick_from_room", room_id=room_id, user_id=NCR)
        await self.assertError(
            ncr, "not_allowed", "kick_from_room", room_id=room_id, user_id=NCR, ban=True
        )
        self.assertEqual(await self.member_count(ncr, "room1"), 3)
        await self.ok(ncr, "kick_from_room", room_id=room_id, user_id=LZY)
        self.assertEqual((await lzy.push("me_outroom"))["reason"], "kicked")
        await self.ok(ncr, "kick_from_room", room_id=room_id, user_id=WSX)
        self.assertEqual((await wsx.push("me_outroom"))["reason"], "kicked")
        self.assertEqual(await self.member_count(ncr, "room1"), 1)
        self.assertEqual(
            [m["message"] for m in await history(ncr, 1, room_id)][-2:],
            ["ncr removed lzy from the room", "ncr removed wsx from the room"],
        )
        # Banning follows the rights of kicking: the owner bans a moderator.
        joined = await lzy.request("join_room", name="room1")
        self.assertEqual(joined["type"], "join_successful", joined)
        await self.promote(ncr, room_id, [ncr, lzy], LZY)
        await self.ok(ncr, "kick_from_room", room_id=room_id, user_id=LZY, ban=True)
        await self.assertError(lzy, "not_allowed", "join_room", name="room1")

    async def test_moderator_removes_members_only(self) -> None:
        """
        A moderator removes plain members; removing the owner, another
        moderator or themself is not_allowed.  The system message names the
        moderator.
        """
        _, (ncr, lzy, wsx, qaz) = await self.users("ncr", "lzy", "wsx", "qaz")
        room_id = await self.room(ncr, lzy, wsx, qaz)
        await self.promote(ncr, room_id, [ncr, lzy, wsx, qaz], LZY, WSX)
        for target in (NCR, WSX, LZY):
            for ban in (False, True):
                await self.assertError(
                    lzy, "not_allowed", "kick_from_room", room_id=room_id, user_id=target, ban=ban
                )
        await self.assertNothingPushed(qaz, 1, room_id, ncr, lzy, wsx)
        self.assertEqual(await self.member_count(ncr, "room1"), 4)
        await self.ok(lzy, "kick_from_room", room_id=room_id, user_id=QAZ)
        self.assertEqual(
            await qaz.push("me_outroom"),
            {"type": "me_outroom", "room_id": room_id, "reason": "kicked"},
        )
        outroom = {"type": "someone_outroom", "room_id": room_id, "user_id": QAZ}
        for client in (ncr, lzy, wsx):
            self.assertEqual(await client.push("someone_outroom"), outroom)
        for client in (ncr, wsx):
            said = (await client.push("on_new_message"))["message"]
            self.assertEqual(
                said, system_message(said, room_id, LZY, "lzy removed qaz from the room")
            )

    async def test_member_removes_nobody(self) -> None:
        """
        A plain member removing anyone (the owner, a moderator, another
        member, themself) gets not_allowed, and nothing changes.
        """
        _, (ncr, lzy, wsx, qaz) = await self.users("ncr", "lzy", "wsx", "qaz")
        room_id = await self.room(ncr, lzy, wsx, qaz)
        await self.promote(ncr, room_id, [ncr, lzy, wsx, qaz], LZY)
        for target in (NCR, LZY, QAZ, WSX):
            for ban in (False, True):
                await self.assertError(
                    wsx, "not_allowed", "kick_from_room", room_id=room_id, user_id=target, ban=ban
                )
        await self.assertNothingPushed(ncr, 1, room_id, lzy, wsx, qaz)
        self.assertEqual(await self.member_count(ncr, "room1"), 4)

    async def test_target_not_in_room(self) -> None:
        """
        Removing a user who is not a member (never was, left, or was
        removed already) is not_in_room; one that names no user is
        no_such_user.
        """
        _, (ncr, lzy, wsx, _qaz) = await self.users("ncr", "lzy", "wsx", "qaz")
        room_id = await self.room(ncr, lzy, wsx)
        await self.assertError(ncr, "not_in_room", "kick_from_room", room_id=room_id, user_id=QAZ)
        reply = await wsx.request("quit_room", room_id=room_id)
        self.assertEqual(reply["type"], "me_outroom")
        await self.assertError(ncr, "not_in_room", "kick_from_room", room_id=room_id, user_id=WSX)
        await self.ok(ncr, "kick_from_room", room_id=room_id, user_id=LZY)
        await self.assertError(ncr, "not_in_room", "kick_from_room", room_id=room_id, user_id=LZY)
        await self.assertError(
            ncr, "not_in_room", "kick_from_room", room_id=room_id, user_id=LZY, ban=True
        )
        await self.assertError(
            ncr, "no_such_user", "kick_from_room", room_id=room_id, user_id=NOBODY
        )
        # The ban of a non-member was refused: they may still join.
        joined = await lzy.request("join_room", name="room1")
        self.assertEqual(joined["type"], "join_successful", joined)


class BanTests(Base):
    """
    kick_from_room with ban, and unban_from_room (PROTOCOL.md 12).
    """

    async def test_ban(self) -> None:
        """
        A ban removes the user as a kick does; they then cannot join again,
        nor be added by a friend (not_allowed), until unbanned; after that
        they join as a plain member.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        room_id = await self.room(ncr, lzy, wsx)
        await befriend(ncr, lzy, "lzy")
        await befriend(wsx, lzy, "lzy")
        await self.promote(ncr, room_id, [ncr, lzy, wsx], WSX)
        await self.ok(ncr, "kick_from_room", room_id=room_id, user_id=LZY, ban=True)
        self.assertEqual(
            await lzy.push("me_outroom"),
            {"type": "me_outroom", "room_id": room_id, "reason": "kicked"},
        )
        outroom = {"type": "someone_outroom", "room_id": room_id, "user_id": LZY}
        self.assertEqual(await ncr.push("someone_outroom"), outroom)
        self.assertEqual(await wsx.push("someone_outroom"), outroom)
        said = (await wsx.push("on_new_message"))["message"]
        self.assertEqual(said, system_message(said, room_id, NCR, "ncr removed lzy from the room"))
        await self.assertError(lzy, "not_in_room", "history", target_type=1, target_id=room_id)

        await self.assertError(lzy, "not_allowed", "join_room", name="room1")
        await self.assertError(lzy, "not_allowed", "join_room", name="ROOM1")
        await self.assertError(
            ncr, "not_allowed", "add_friend_to_room", room_id=room_id, user_id=LZY
        )
        await self.assertError(
            wsx, "not_allowed", "add_friend_to_room", room_id=room_id, user_id=LZY
        )
        self.assertEqual(await self.member_count(ncr, "room1"), 2)
        await drain(ncr)
        await drain(wsx)
        await self.assertNothingPushed(ncr, 1, room_id, wsx)

        await self.ok(ncr, "unban_from_room", room_id=room_id, user_id=LZY)
        await self.assertNothingPushed(wsx, 1, room_id, ncr)
        await self.assertNothingPushed(ncr, 1, room_id, wsx)
        joined = await lzy.request("join_room", name="room1")
        self.assertEqual(joined["type"], "join_successful", joined)
        self.assertRoom(
            joined["room"],
            room_id,
            "",
            [member(NCR, "owner"), member(LZY), member(WSX, "moderator")],
        )

    async def test_banned_added_again_after_unban(self) -> None:
        """
        After unban_from_room a friend may add the user again.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr, lzy)
        await befriend(ncr, lzy, "lzy")
        await self.ok(ncr, "kick_from_room", room_id=room_id, user_id=LZY, ban=True)
        await lzy.push("me_outroom")
        await self.assertError(
            ncr, "not_allowed", "add_friend_to_room", room_id=room_id, user_id=LZY
        )
        await self.ok(ncr, "unban_from_room", room_id=room_id, user_id=LZY)
        await self.ok(ncr, "add_friend_to_room", room_id=room_id, user_id=LZY)
        pushed = await lzy.push("join_successful")
        self.assertRoom(pushed["room"], room_id, "", [member(NCR, "owner"), member(LZY)])

    async def test_ban_offline_member(self) -> None:
        """
        A member who is offline can be banned: the room is gone from their
        next login_info and they cannot join it.
        """
        running, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr, lzy)
        await lzy.close()
        await self.ok(ncr, "kick_from_room", room_id=room_id, user_id=LZY, ban=True)
        lzy, info = await log_in_again(self, running.port, "lzy")
        self.assertEqual(info["rooms"], [])
        await self.assertError(lzy, "not_allowed", "join_room", name="room1")

    async def test_unban_rights(self) -> None:
        """
        The owner and moderators unban; a plain member gets not_allowed,
        and the ban stays.  A moderator bans plain members.
        """
        _, (ncr, lzy, wsx, qaz) = await self.users("ncr", "lzy", "wsx", "qaz")
        room_id = await self.room(ncr, lzy, wsx, qaz)
        await self.promote(ncr, room_id, [ncr, lzy, wsx, qaz], LZY)
        await self.ok(lzy, "kick_from_room", room_id=room_id, user_id=QAZ, ban=True)
        await qaz.push("me_outroom")
        await self.assertError(wsx, "not_allowed", "unban_from_room", room_id=room_id, user_id=QAZ)
        await self.assertError(qaz, "not_allowed", "join_room", name="room1")
        await self.ok(lzy, "unban_from_room", room_id=room_id, user_id=QAZ)
        joined = await qaz.request("join_room", name="room1")
        self.assertEqual(joined["type"], "join_successful", joined)

        await self.ok(ncr, "kick_from_room", room_id=room_id, user_id=QAZ, ban=True)
        await qaz.push("me_outroom")
        await self.assertError(qaz, "not_allowed", "join_room", name="room1")
        await self.ok(ncr, "unban_from_room", room_id=room_id, user_id=QAZ)
        joined = await qaz.request("join_room", name="room1")
        self.assertEqual(joined["type"], "join_successful", joined)

        # A moderator's ban is undone by the owner, and the owner's by a
        # moderator: the ban belongs to the room.
        await self.ok(ncr, "kick_from_room", room_id=room_id, user_id=QAZ, ban=True)
        await qaz.push("me_outroom")
        await self.ok(lzy, "unban_from_room", room_id=room_id, user_id=QAZ)
        joined = await qaz.request("join_room", name="room1")
        self.assertEqual(joined["type"], "join_successful", joined)

    async def test_unban_not_banned(self) -> None:
        """
        Unbanning a user who is not banned (never was, a member now, only
        kicked, or unbanned already) is not_allowed.
        """
        _, (ncr, lzy, wsx, _qaz) = await self.users("ncr", "lzy", "wsx", "qaz")
        room_id = await self.room(ncr, lzy, wsx)
        await self.promote(ncr, room_id, [ncr, lzy, wsx], LZY)
        for requester in (ncr, lzy):
            for target in (QAZ, WSX, NCR, LZY):
                await self.assertError(
                    requester, "not_allowed", "unban_from_room", room_id=room_id, user_id=target
                )
        await self.ok(ncr, "kick_from_room", room_id=room_id, user_id=WSX)
        await self.assertError(ncr, "not_allowed", "unban_from_room", room_id=room_id, user_id=WSX)
        joined = await wsx.request("join_room", name="room1")
        self.assertEqual(joined["type"], "join_successful")
        await self.ok(ncr, "kick_from_room", room_id=room_id, user_id=WSX, ban=True)
        await self.ok(ncr, "unban_from_room", room_id=room_id, user_id=WSX)
        await self.assertError(ncr, "not_allowed", "unban_from_room", room_id=room_id, user_id=WSX)
        await self.assertError(lzy, "not_allowed", "unban_from_room", room_id=room_id, user_id=WSX)

    async def test_ban_in_one_room_only(self) -> None:
        """
        A ban keeps the user out of that room only.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr, lzy)
        await self.room(ncr, name="room2")
        await self.ok(ncr, "kick_from_room", room_id=room_id, user_id=LZY, ban=True)
        joined = await lzy.request("join_room", name="room2")
        self.assertEqual(joined["type"], "join_successful", joined)

    async def test_bans_survive_restart(self) -> None:
        """
        A ban, a topic, a moderator and a passed ownership survive a restart
        of the server on the same database.
        """
        path = self.mktemp() + ".sqlite3"
        port, stop = await serve(self, path)
        ncr, lzy, wsx, qaz = [await logged_in(self, port, n) for n in ("ncr", "lzy", "wsx", "qaz")]
        room_id = await self.room(ncr, lzy, wsx, qaz)
        other_id = await self.room(lzy, wsx, name="room2")
        await self.ok(ncr, "kick_from_room", room_id=room_id, user_id=LZY, ban=True)
        await self.promote(ncr, room_id, [ncr, wsx, qaz], QAZ)
        reply = await ncr.request("set_topic", room_id=room_id, topic="kept")
        self.assertEqual(reply["type"], "room_updated")
        reply = await lzy.request("quit_room", room_id=other_id)
        self.assertEqual(reply["type"], "me_outroom")
        for client in (ncr, lzy, wsx, qaz):
            await client.close()
        await stop()

        port, stop = await serve(self, path)
        lzy, info = await log_in_again(self, port, "lzy")
        self.assertEqual(info["rooms"], [])
        await self.assertError(lzy, "not_allowed", "join_room", name="room1")
        qaz, info = await log_in_again(self, port, "qaz")
        room = self.room_in(info, room_id)
        assert room is not None
        self.assertRoom(
            room,
            room_id,
            "kept",
            [
                member(NCR, "owner", online=False),
                member(WSX, online=False),
                member(QAZ, "moderator"),
            ],
        )
        wsx, info = await log_in_again(self, port, "wsx")
        room = self.room_in(info, other_id)
        assert room is not None
        self.assertRoom(room, other_id, "", [member(WSX, "owner")], name="room2")
        await self.ok(qaz, "unban_from_room", room_id=room_id, user_id=LZY)
        await self.assertError(qaz, "not_allowed", "unban_from_room", room_id=room_id, user_id=LZY)
        joined = await lzy.request("join_room", name="room1")
        self.assertEqual(joined["type"], "join_successful", joined)
        self.assertEqual(joined["room"]["topic"], "kept")


class HandOverTests(Base):
    """
    Ownership when the owner quits, and roles of those who join
    (PROTOCOL.md 12).
    """

    async def test_to_earliest_moderator(self) -> None:
        """
        When the owner quits, the moderator who joined earliest owns the
        room, before members who joined earlier and a moderator promoted
        earlier; member_role with role owner goes to every remaining online
        member, the new owner included.
        """
        running, (ncr, lzy, wsx, qaz, edc) = await self.users("ncr", "lzy", "wsx", "qaz", "edc")
        room_id = await self.room(ncr, lzy, wsx, qaz, edc)
        everyone = [ncr, lzy, wsx, qaz, edc]
        await self.promote(ncr, room_id, everyone, QAZ, WSX)
        await self.leave(edc, ncr, lzy, wsx, qaz)
        reply = await ncr.request("quit_room", room_id=room_id)
        self.assertEqual(reply, {"type": "me_outroom", "id": reply["id"], "room_id": room_id})
        owner = {"type": "member_role", "room_id": room_id, "user_id": WSX, "role": "owner"}
        outroom = {"type": "someone_outroom", "room_id": room_id, "user_id": NCR}
        for client in (lzy, wsx, qaz):
            self.assertEqual(await client.push("member_role"), owner)
            self.assertEqual(await client.push("someone_outroom"), outroom)
            said = (await client.push("on_new_message"))["message"]
            self.assertEqual(said["message"], "ncr left the room")
        await self.assertNothingPushed(lzy, 1, room_id, wsx, qaz)
        _, info = await log_in_again(self, running.port, "edc")
        room = self.room_in(info, room_id)
        assert room is not None
        self.assertRoom(
            room,
            room_id,
            "",
            [member(LZY), member(WSX, "owner"), member(QAZ, "moderator"), member(EDC)],
        )
        # The new owner has the owner's rights; the moderator left keeps theirs.
        await self.ok(wsx, "set_role", room_id=room_id, user_id=LZY, role="moderator")
        await self.ok(wsx, "kick_from_room", room_id=room_id, user_id=QAZ)
        await self.assertError(wsx, "not_allowed", "kick_from_room", room_id=room_id, user_id=WSX)

    async def test_to_earliest_member_by_latest_join(self) -> None:
        """
        With no moderator, the member who joined earliest by their latest
        join owns the room: one who quit and came back counts from their
        return.
        """
        _, (ncr, lzy, wsx, qaz) = await self.users("ncr", "lzy", "wsx", "qaz")
        room_id = await self.room(ncr, lzy, wsx, qaz)
        reply = await lzy.request("quit_room", room_id=room_id)
        self.assertEqual(reply["type"], "me_outroom")
        joined = await lzy.request("join_room", name="room1")
        self.assertEqual(joined["type"], "join_successful")
        for client in (ncr, lzy, wsx, qaz):
            await drain(client)
        reply = await ncr.request("quit_room", room_id=room_id)
        self.assertEqual(reply["type"], "me_outroom")
        owner = {"type": "member_role", "room_id": room_id, "user_id": WSX, "role": "owner"}
        for client in (lzy, wsx, qaz):
            self.assertEqual(await client.push("member_role"), owner)
        reply = await wsx.request("set_topic", room_id=room_id, topic="new owner")
        self.assertRoom(
            reply["room"], room_id, "new owner", [member(LZY), member(WSX, "owner"), member(QAZ)]
        )

    async def test_moderator_who_rejoined_is_a_member(self) -> None:
        """
        A moderator who quits and joins again is a plain member; when the
        owner quits, ownership goes by the other rules.
        """
        _, (ncr, lzy, wsx, qaz) = await self.users("ncr", "lzy", "wsx", "qaz")
        room_id = await self.room(ncr, lzy, wsx, qaz)
        await self.promote(ncr, room_id, [ncr, lzy, wsx, qaz], LZY)
        reply = await lzy.request("quit_room", room_id=room_id)
        self.assertEqual(reply["type"], "me_outroom")
        joined = await lzy.request("join_room", name="room1")
        self.assertRoom(
            joined["room"],
            room_id,
            "",
            [member(NCR, "owner"), member(LZY), member(WSX), member(QAZ)],
        )
        await self.assertError(lzy, "not_allowed", "set_topic", room_id=room_id, topic="t")
        for client in (ncr, lzy, wsx, qaz):
            await drain(client)
        reply = await ncr.request("quit_room", room_id=room_id)
        self.assertEqual(reply["type"], "me_outroom")
        owner = {"type": "member_role", "room_id": room_id, "user_id": WSX, "role": "owner"}
        for client in (lzy, wsx, qaz):
            self.assertEqual(await client.push("member_role"), owner)

    async def test_returning_owner_is_a_member(self) -> None:
        """
        A former owner who joins again is a plain member, and so is one
        added back by a friend.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        room_id = await self.room(ncr, lzy, wsx)
        await befriend(wsx, ncr, "ncr")
        reply = await ncr.request("quit_room", room_id=room_id)
        self.assertEqual(reply["type"], "me_outroom")
        await lzy.push("member_role")
        await drain(lzy)
        joined = await ncr.request("join_room", name="room1")
        self.assertEqual(joined["type"], "join_successful", joined)
        self.assertRoom(
            joined["room"], room_id, "", [member(NCR), member(LZY, "owner"), member(WSX)]
        )
        self.assertEqual((await lzy.push("someone_inroom"))["user"], member(NCR))
        await self.assertError(ncr, "not_allowed", "set_topic", room_id=room_id, topic="mine")
        await self.assertError(ncr, "not_allowed", "kick_from_room", room_id=room_id, user_id=WSX)
        await self.assertError(
            ncr, "not_allowed", "set_role", room_id=room_id, user_id=WSX, role="moderator"
        )

        reply = await ncr.request("quit_room", room_id=room_id)
        self.assertEqual(reply["type"], "me_outroom")
        await self.ok(wsx, "add_friend_to_room", room_id=room_id, user_id=NCR)
        pushed = await ncr.push("join_successful")
        self.assertRoom(
            pushed["room"], room_id, "", [member(NCR), member(LZY, "owner"), member(WSX)]
        )

    async def test_empty_room(self) -> None:
        """
        A room whose last member quits has no owner; the next to join owns
        it (role owner in join_successful) with the owner's rights, and the
        one after is a plain member.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        room_id = await self.room(ncr, lzy)
        await self.promote(ncr, room_id, [ncr, lzy], LZY)
        for client in (ncr, lzy):
            reply = await client.request("quit_room", room_id=room_id)
            self.assertEqual(reply["type"], "me_outroom")
        self.assertEqual(await self.member_count(wsx, "room1"), 0)
        joined = await wsx.request("join_room", name="room1")
        self.assertEqual(joined["type"], "join_successful", joined)
        self.assertRoom(joined["room"], room_id, "", [member(WSX, "owner")])
        joined = await ncr.request("join_room", name="room1")
        self.assertRoom(joined["room"], room_id, "", [member(NCR), member(WSX, "owner")])
        await self.ok(wsx, "set_role", room_id=room_id, user_id=NCR, role="moderator")
        self.assertEqual(
            await ncr.push("member_role"),
            {"type": "member_role", "room_id": room_id, "user_id": NCR, "role": "moderator"},
        )
        await self.assertError(wsx, "not_allowed", "kick_from_room", room_id=room_id, user_id=WSX)

    async def test_sole_owner_quits(self) -> None:
        """
        The owner alone in a room quits: nobody is told anything, and the
        former owner coming back first owns it again, as the next to join.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr)
        reply = await ncr.request("quit_room", room_id=room_id)
        self.assertEqual(reply["type"], "me_outroom")
        joined = await ncr.request("join_room", name="room1")
        self.assertRoom(joined["room"], room_id, "", [member(NCR, "owner")])
        joined = await lzy.request("join_room", name="room1")
        self.assertRoom(joined["room"], room_id, "", [member(NCR, "owner"), member(LZY)])


class ErrorOrderTests(Base):
    """
    The unknown-room, not-a-member and unknown-user errors of section 5,
    which come before the role rules (PROTOCOL.md 12).
    """

    async def test_unknown_room(self) -> None:
        """
        Every request of section 12 naming an unknown room is no_such_room.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr, lzy)
        unknown = room_id + 100
        for client in (ncr, lzy):
            await self.assertError(client, "no_such_room", "set_topic", room_id=unknown, topic="t")
            await self.assertError(
                client, "no_such_room", "set_role", room_id=unknown, user_id=LZY, role="member"
            )
            await self.assertError(
                client, "no_such_room", "kick_from_room", room_id=unknown, user_id=LZY
            )
            await self.assertError(
                client, "no_such_room", "kick_from_room", room_id=unknown, user_id=LZY, ban=True
            )
            await self.assertError(
                client, "no_such_room", "unban_from_room", room_id=unknown, user_id=LZY
            )

    async def test_requester_not_in_room(self) -> None:
        """
        A requester who is not in the room gets not_in_room, whatever their
        role there before they left.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        room_id = await self.room(ncr, lzy)
        await self.ok(ncr, "kick_from_room", room_id=room_id, user_id=LZY, ban=True)
        for client in (wsx, lzy):
            await self.assertError(client, "not_in_room", "set_topic", room_id=room_id, topic="t")
            await self.assertError(
                client, "not_in_room", "set_role", room_id=room_id, user_id=NCR, role="member"
            )
            await self.assertError(
                client, "not_in_room", "kick_from_room", room_id=room_id, user_id=NCR
            )
            await self.assertError(
                client, "not_in_room", "unban_from_room", room_id=room_id, user_id=LZY
            )
        # The owner who left is no longer the owner, nor in the room.
        reply = await ncr.request("quit_room", room_id=room_id)
        self.assertEqual(reply["type"], "me_outroom")
        await self.assertError(ncr, "not_in_room", "set_topic", room_id=room_id, topic="t")
        await self.assertError(ncr, "not_in_room", "unban_from_room", room_id=room_id, user_id=LZY)
        joined = await wsx.request("join_room", name="room1")
        self.assertRoom(joined["room"], room_id, "", [member(WSX, "owner")])
        await self.assertError(
            ncr, "not_in_room", "set_role", room_id=room_id, user_id=WSX, role="member"
        )
        await self.assertError(ncr, "not_in_room", "kick_from_room", room_id=room_id, user_id=WSX)

    async def test_unknown_user(self) -> None:
        """
        A user_id that names no user is no_such_user, even for a requester
        whose role would not allow the request.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        room_id = await self.room(ncr, lzy, wsx)
        await self.promote(ncr, room_id, [ncr, lzy, wsx], LZY)
        for client in (ncr, lzy, wsx):
            await self.assertError(
                client, "no_such_user", "set_role", room_id=room_id, user_id=NOBODY, role="member"
            )
            await self.assertError(
                client, "no_such_user", "kick_from_room", room_id=room_id, user_id=NOBODY
            )
            await self.assertError(
                client, "no_such_user", "kick_from_room", room_id=room_id, user_id=NOBODY, ban=True
            )
            await self.assertError(
                client, "no_such_user", "unban_from_room", room_id=room_id, user_id=NOBODY
            )

    async def test_target_outside_room(self) -> None:
        """
        set_role and kick_from_room naming a user outside the room are
        not_in_room, even for a requester whose role would not allow the
        request.
        """
        _, (ncr, lzy, wsx, qaz) = await self.users("ncr", "lzy", "wsx", "qaz")
        room_id = await self.room(ncr, lzy, wsx)
        await self.promote(ncr, room_id, [ncr, lzy, wsx], LZY)
        for client in (ncr, lzy, wsx):
            for role in ("member", "moderator"):
                await self.assertError(
                    client, "not_in_room", "set_role", room_id=room_id, user_id=QAZ, role=role
                )
            for ban in (False, True):
                await self.assertError(
                    client, "not_in_room", "kick_from_room", room_id=room_id, user_id=QAZ, ban=ban
                )
        # qaz was not banned by any of that.
        joined = await qaz.request("join_room", name="room1")
        self.assertEqual(joined["type"], "join_successful", joined)


class FieldTests(Base):
    """
    The fields of section 12's requests (PROTOCOL.md 2): anything missing
    or out of shape is invalid_field, before any rule.
    """

    REQUESTS: dict[str, dict[str, Any]] = {
        "set_topic": {"topic": "t"},
        "set_role": {"user_id": LZY, "role": "moderator"},
        "kick_from_room": {"user_id": LZY},
        "unban_from_room": {"user_id": LZY},
    }

    async def check(self, client: WireClient, kind: str, fields: dict[str, Any]) -> None:
        await self.assertError(client, "invalid_field", kind, **fields)

    async def test_room_id(self) -> None:
        """
        A missing or mistyped room_id is invalid_field in every request.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr, lzy)
        for kind, fields in self.REQUESTS.items():
            await self.check(ncr, kind, fields)
            for bad in BAD_INTEGERS:
                await self.check(ncr, kind, {**fields, "room_id": bad})
        await self.assertNothingPushed(ncr, 1, room_id, lzy)
        self.assertEqual(await self.member_count(ncr, "room1"), 2)

    async def test_user_id(self) -> None:
        """
        A missing or mistyped user_id is invalid_field in set_role,
        kick_from_room and unban_from_room.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr, lzy)
        for kind in ("set_role", "kick_from_room", "unban_from_room"):
            fields = {**self.REQUESTS[kind], "room_id": room_id}
            del fields["user_id"]
            await self.check(ncr, kind, fields)
            for bad in BAD_INTEGERS:
                await self.check(ncr, kind, {**fields, "user_id": bad})
        await self.check(ncr, "kick_from_room", {"room_id": room_id, "user_id": "2", "ban": True})
        await self.assertNothingPushed(ncr, 1, room_id, lzy)
        self.assertEqual(await self.member_count(ncr, "room1"), 2)

    async def test_topic(self) -> None:
        """
        A missing or mistyped topic is invalid_field.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr, lzy)
        await self.check(ncr, "set_topic", {"room_id": room_id})
        for bad in (None, 5, True, ["t"], {"topic": "t"}, 1.5):
            await self.check(ncr, "set_topic", {"room_id": room_id, "topic": bad})
        await self.assertNothingPushed(ncr, 1, room_id, lzy)

    async def test_role(self) -> None:
        """
        A missing or mistyped role is invalid_field (the values: RoleTests).
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr, lzy)
        await self.check(ncr, "set_role", {"room_id": room_id, "user_id": LZY})
        for bad in (None, 0, False, ["moderator"], {"role": "moderator"}):
            await self.check(ncr, "set_role", {"room_id": room_id, "user_id": LZY, "role": bad})
        await self.assertNothingPushed(ncr, 1, room_id, lzy)

    async def test_ban(self) -> None:
        """
        A ban that is not true or false is invalid_field, and nobody is
        removed.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr, lzy)
        for bad in BAD_BOOLEANS:
            await self.check(
                ncr, "kick_from_room", {"room_id": room_id, "user_id": LZY, "ban": bad}
            )
        await self.assertNothingPushed(ncr, 1, room_id, lzy)
        self.assertEqual(await self.member_count(ncr, "room1"), 2)

    async def test_ban_null(self) -> None:
        """
        ban null is ban absent, as null is for every optional field of
        chatd (before, after, limit, client_msg_id, reply_to): a plain
        removal, after which the user may join again.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr, lzy)
        reply = await ncr.request("kick_from_room", room_id=room_id, user_id=LZY, ban=None)
        self.assertEqual(reply["type"], "ok")
        self.assertEqual(await self.member_count(ncr, "room1"), 1)
        joined = await lzy.request("join_room", name="room1")
        self.assertEqual(joined["type"], "join_successful")

    async def test_fields_before_rules(self) -> None:
        """
        A malformed request is invalid_field whatever the state it names: an
        unknown room, a room the requester is not in, an unknown user, a
        requester without the right.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        room_id = await self.room(ncr, lzy)
        unknown = room_id + 100
        cases: list[tuple[WireClient, str, dict[str, Any]]] = [
            (lzy, "set_topic", {"room_id": room_id, "topic": "x" * 201}),
            (lzy, "set_topic", {"room_id": room_id, "topic": "a\nb"}),
            (wsx, "set_topic", {"room_id": room_id, "topic": "x" * 201}),
            (ncr, "set_topic", {"room_id": unknown, "topic": "a\x07"}),
            (lzy, "set_role", {"room_id": room_id, "user_id": LZY, "role": "owner"}),
            (ncr, "set_role", {"room_id": room_id, "user_id": NCR, "role": "admin"}),
            (wsx, "set_role", {"room_id": room_id, "user_id": LZY, "role": "owner"}),
            (ncr, "set_role", {"room_id": unknown, "user_id": NOBODY, "role": 1}),
            (ncr, "set_role", {"room_id": room_id, "user_id": WSX, "role": "owner"}),
            (lzy, "kick_from_room", {"room_id": room_id, "user_id": NCR, "ban": "yes"}),
            (ncr, "kick_from_room", {"room_id": room_id, "user_id": NCR, "ban": 1}),
            (wsx, "kick_from_room", {"room_id": room_id, "user_id": LZY, "ban": "true"}),
            (ncr, "kick_from_room", {"room_id": unknown, "user_id": NOBODY, "ban": 0}),
            (ncr, "kick_from_room", {"room_id": room_id, "user_id": -1}),
            (lzy, "unban_from_room", {"room_id": room_id, "user_id": "3"}),
            (wsx, "unban_from_room", {"room_id": unknown, "user_id": 2**53}),
        ]
        for client, kind, fields in cases:
            await self.check(client, kind, fields)
        await self.assertNothingPushed(ncr, 1, room_id, lzy)
        self.assertEqual(await self.member_count(ncr, "room1"), 2)

    async def test_not_authenticated(self) -> None:
        """
        Before login, every request of section 12 is not_authenticated.
        """
        running = await start_server(self, limits=UNLIMITED)
        client = await wire_client(self, running.port)
        for kind, fields in self.REQUESTS.items():
            await self.assertError(client, "not_authenticated", kind, room_id=1, **fields)


class ModeratorDeleteTests(Base):
    """
    delete_message by a room's owner and moderators (PROTOCOL.md 10 and 12).
    """

    async def test_owner_and_moderator_delete(self) -> None:
        """
        The owner deletes a moderator's and a member's message; a moderator
        deletes a member's, another moderator's and the owner's; every other
        online member gets message_deleted, and history keeps a tombstone.
        """
        _, (ncr, lzy, wsx, qaz) = await self.users("ncr", "lzy", "wsx", "qaz")
        room_id = await self.room(ncr, lzy, wsx, qaz)
        everyone = [ncr, lzy, wsx, qaz]
        await self.promote(ncr, room_id, everyone, LZY, WSX)
        cases = [(ncr, lzy), (ncr, qaz), (lzy, qaz), (lzy, wsx), (lzy, ncr), (wsx, lzy)]
        for deleter, sender in cases:
            said = await send(sender, 1, room_id, "to be removed")
            for client in everyone:
                await drain(client)
            reply = await deleter.request("delete_message", message_id=said["id"])
            expected = {
                "type": "message_deleted",
                "target_type": 1,
                "target_id": room_id,
                "message_id": said["id"],
            }
            self.assertEqual(reply, {**expected, "id": reply["id"]})
            for client in everyone:
                if client is not deleter:
                    self.assertEqual(await client.push("message_deleted"), expected)
            self.assertEqual((await history(qaz, 1, room_id))[-1], {**said, **TOMBSTONE})

    async def test_member_may_not(self) -> None:
        """
        A plain member deleting another's message of the room is
        not_allowed; a moderator demoted to member loses the right, a
        member promoted gains it; a moderator cannot delete system messages.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        room_id = await self.room(ncr, lzy, wsx)
        mine = await send(ncr, 1, room_id, "the owner's")
        theirs = await send(lzy, 1, room_id, "lzy's")
        for target in (mine, theirs):
            await self.assertError(wsx, "not_allowed", "delete_message", message_id=target["id"])
        await self.promote(ncr, room_id, [ncr, lzy, wsx], WSX)
        await self.ok(ncr, "set_role", room_id=room_id, user_id=WSX, role="member")
        await self.assertError(wsx, "not_allowed", "delete_message", message_id=theirs["id"])
        await self.promote(ncr, room_id, [ncr, lzy, wsx], LZY)
        system = (await history(lzy, 1, room_id))[0]
        self.assertEqual(system["kind"], "system")
        await self.assertError(lzy, "not_allowed", "delete_message", message_id=system["id"])
        await self.assertError(ncr, "not_allowed", "delete_message", message_id=system["id"])
        reply = await lzy.request("delete_message", message_id=mine["id"])
        self.assertEqual(reply["type"], "message_deleted", reply)
        self.assertEqual(
            [(m["message"], m["deleted"]) for m in await history(wsx, 1, room_id)][-2:],
            [("", True), ("lzy's", False)],
        )

    async def test_only_in_their_room(self) -> None:
        """
        A moderator of one room is a plain member of another, where they
        may not delete others' messages; a new owner after a hand-over may.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        room_id = await self.room(ncr, lzy, wsx)
        other_id = await self.room(ncr, lzy, wsx, name="room2")
        await self.promote(ncr, room_id, [ncr, lzy, wsx], LZY)
        said = await send(wsx, 1, other_id, "in room2")
        await self.assertError(lzy, "not_allowed", "delete_message", message_id=said["id"])
        reply = await ncr.request("quit_room", room_id=other_id)
        self.assertEqual(reply["type"], "me_outroom")
        await lzy.push("member_role")
        reply = await lzy.request("delete_message", message_id=said["id"])
        self.assertEqual(reply["type"], "message_deleted", reply)


# Every suite runs on PostgreSQL too.
on_postgresql(
    globals(),
    RoomObjectTests,
    TopicTests,
    RoleTests,
    KickTests,
    BanTests,
    HandOverTests,
    ErrorOrderTests,
    FieldTests,
    ModeratorDeleteTests,
)
