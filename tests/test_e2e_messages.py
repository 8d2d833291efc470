"""
End to end over loopback TCP for PROTOCOL.md section 10 (edits, deletion,
replies, reactions, mentions, typing) and the version 2 fields of a Message
(section 3).

Users are registered in a fixed order in every test, so their ids are known:
ncr is 1, lzy is 2, wsx is 3 and qaz is 4.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import TestCase

from chatd import wire
from tests.postgres import on_postgresql
from tests.support import PLAIN, RunningServer, WireClient, logged_in, start_server, wire_client
from tests.test_e2e import befriend

NCR, LZY, WSX, QAZ = 1, 2, 3, 4

#: The format of a Message's time and edited_at (PROTOCOL.md 3).
TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"

#: The version 2 fields of a tombstone (PROTOCOL.md 10).
TOMBSTONE = {**PLAIN, "deleted": True, "message": ""}


def without_id(reply: wire.Payload) -> wire.Payload:
    """
    @return: C{reply} without its request id, to compare it with a push.
    """
    return {key: value for key, value in reply.items() if key != "id"}


async def drain(client: WireClient) -> None:
    """
    Forget every push C{client} received so far: a ping's reply comes after
    every push the server wrote to this connection before it.
    """
    reply = await client.request("ping")
    assert reply["type"] == "pong", reply
    client.pending_pushes()


async def history(client: WireClient, target_type: int, target_id: int) -> list[wire.Payload]:
    """
    @return: the newest messages of a conversation, oldest first.
    """
    page = await client.request("history", target_type=target_type, target_id=target_id)
    assert page["type"] == "history", page
    messages: list[wire.Payload] = page["messages"]
    return messages


async def send(
    client: WireClient, target_type: int, target_id: int, text: str, **fields: Any
) -> wire.Payload:
    """
    @return: the Message C{client} sent.
    """
    reply = await client.request(
        "send_message", target_type=target_type, target_id=target_id, message=text, **fields
    )
    assert reply["type"] == "on_new_message", reply
    message: wire.Payload = reply["message"]
    return message


async def log_in_again(testcase: TestCase, port: int, name: str) -> tuple[WireClient, wire.Payload]:
    """
    @return: a fresh client logged in as C{name}, and its C{login_info}.
    """
    client = await wire_client(testcase, port)
    reply = await client.request("login", username=name, password="secret1")
    assert reply["type"] == "login_successful", reply
    info = await client.push("login_info")
    return client, info


class Base(TestCase):
    """
    Set-ups and checks the tests share.
    """

    async def users(self, *names: str) -> tuple[RunningServer, list[WireClient]]:
        """
        @return: a running server and logged-in clients of C{names}, in that
            order (so with the ids 1, 2, ...).
        """
        running = await start_server(self)
        clients = [await logged_in(self, running.port, name) for name in names]
        return running, clients

    async def room(self, owner: WireClient, *members: WireClient) -> int:
        """
        Create room1 by C{owner}; C{members} join it, one after another.
        Every client's pushes so far are forgotten.

        @return: the room's id.
        """
        created = await owner.request("create_room", name="room1")
        assert created["type"] == "create_successful", created
        for member in members:
            joined = await member.request("join_room", name="room1")
            assert joined["type"] == "join_successful", joined
        for client in (owner, *members):
            await drain(client)
        room_id: int = created["room"]["id"]
        return room_id

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

    async def assertError(self, client: WireClient, code: str, kind: str, **fields: Any) -> None:
        """
        Check that a request is refused with C{code}.
        """
        reply = await client.request(kind, **fields)
        self.assertEqual(reply["type"], "error", reply)
        self.assertEqual(reply["code"], code, reply)


class MessageFieldsTests(Base):
    """
    The version 2 fields of a Message (PROTOCOL.md 3).
    """

    async def test_plain_fields_everywhere(self) -> None:
        """
        Every Message, in a send reply, a push or a history page, private or
        room, text or system, carries edited_at null, deleted false,
        reply_to null, mentions [], reactions [] and file null.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        await befriend(ncr, lzy, "lzy")
        reply = await ncr.request("send_message", target_type=0, target_id=LZY, message="hi")
        message = reply["message"]
        self.assertRegex(message["time"], TIME)
        self.assertEqual(
            message,
            {
                "id": message["id"],
                "client_msg_id": None,
                "sender_id": NCR,
                "sender_name": "ncr",
                "target_type": 0,
                "target_id": LZY,
                "kind": "text",
                "message": "hi",
                "time": message["time"],
                **PLAIN,
            },
        )
        pushed = await lzy.push("on_new_message")
        self.assertEqual(pushed["message"], message)
        self.assertEqual(await history(lzy, 0, NCR), [message])

        room_id = await self.room(ncr, lzy)
        said = await send(lzy, 1, room_id, "hello room")
        self.assertEqual(
            said,
            {
                "id": said["id"],
                "client_msg_id": None,
                "sender_id": LZY,
                "sender_name": "lzy",
                "target_type": 1,
                "target_id": room_id,
                "room_name": "room1",
                "kind": "text",
                "message": "hello room",
                "time": said["time"],
                **PLAIN,
            },
        )
        pushed = await ncr.push("on_new_message")
        self.assertEqual(pushed["message"], said)
        messages = await history(ncr, 1, room_id)
        self.assertEqual(
            [(m["kind"], m["message"]) for m in messages],
            [
                ("system", "ncr created the room"),
                ("system", "lzy joined the room"),
                ("text", "hello room"),
            ],
        )
        for m in messages:
            self.assertEqual({key: m[key] for key in PLAIN}, PLAIN)


class EditTests(Base):
    """
    edit_message (PROTOCOL.md 10).
    """

    async def test_edit_own_private_message(self) -> None:
        """
        The sender's edit is answered with message_edited carrying the new
        text, the same id and time and edited_at set; the recipient gets the
        same push and history returns the new text.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        await befriend(ncr, lzy, "lzy")
        original = await send(ncr, 0, LZY, "helo")
        await drain(lzy)
        reply = await ncr.request("edit_message", message_id=original["id"], message="hello")
        edited = reply["message"]
        self.assertRegex(edited["edited_at"] or "", TIME)
        self.assertEqual(
            without_id(reply),
            {
                "type": "message_edited",
                "message": {**original, "message": "hello", "edited_at": edited["edited_at"]},
            },
        )
        self.assertGreaterEqual(edited["edited_at"], original["time"])
        pushed = await lzy.push("message_edited")
        self.assertEqual(pushed, without_id(reply))
        self.assertEqual(await history(lzy, 0, NCR), [edited])
        self.assertEqual(await history(ncr, 0, LZY), [edited])

    async def test_edit_room_message(self) -> None:
        """
        A room message's edit is pushed to every other online member; a
        member who is offline gets nothing and finds the new text in history.
        """
        running, (ncr, lzy, wsx, qaz) = await self.users("ncr", "lzy", "wsx", "qaz")
        room_id = await self.room(ncr, lzy, wsx, qaz)
        await qaz.close()
        original = await send(lzy, 1, room_id, "first try")
        for client in (ncr, lzy, wsx):
            await drain(client)
        reply = await lzy.request("edit_message", message_id=original["id"], message="second try")
        self.assertEqual(reply["type"], "message_edited")
        edited = reply["message"]
        self.assertEqual(
            edited, {**original, "message": "second try", "edited_at": edited["edited_at"]}
        )
        self.assertRegex(edited["edited_at"] or "", TIME)
        for other in (ncr, wsx):
            self.assertEqual(await other.push(), without_id(reply))
        await self.assertNothingPushed(ncr, 1, room_id, lzy)
        qaz, _ = await log_in_again(self, running.port, "qaz")
        self.assertIn(edited, await history(qaz, 1, room_id))

    async def test_edit_to_same_text(self) -> None:
        """
        An edit to the same text succeeds with the message as it was
        (edited_at unchanged, null if never edited) and pushes nothing.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        await befriend(ncr, lzy, "lzy")
        original = await send(ncr, 0, LZY, "same")
        await drain(lzy)
        reply = await ncr.request("edit_message", message_id=original["id"], message="same")
        self.assertEqual(without_id(reply), {"type": "message_edited", "message": original})
        await self.assertNothingPushed(ncr, 0, LZY, lzy)

        reply = await ncr.request("edit_message", message_id=original["id"], message="changed")
        edited = reply["message"]
        await drain(lzy)
        reply = await ncr.request("edit_message", message_id=original["id"], message="changed")
        self.assertEqual(without_id(reply), {"type": "message_edited", "message": edited})
        await self.assertNothingPushed(ncr, 0, LZY, lzy)
        self.assertEqual((await history(lzy, 0, NCR))[0], edited)

    async def test_edit_not_allowed(self) -> None:
        """
        Editing someone else's message, a system message or a deleted
        message is not_allowed, and changes nothing.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        await befriend(ncr, lzy, "lzy")
        theirs = await send(ncr, 0, LZY, "mine, not yours")
        await self.assertError(
            lzy, "not_allowed", "edit_message", message_id=theirs["id"], message="yours"
        )
        gone = await send(ncr, 0, LZY, "soon gone")
        deleted = await ncr.request("delete_message", message_id=gone["id"])
        self.assertEqual(deleted["type"], "message_deleted")
        await self.assertError(
            ncr, "not_allowed", "edit_message", message_id=gone["id"], message="back"
        )
        self.assertEqual(await history(ncr, 0, LZY), [theirs, {**gone, **TOMBSTONE, "message": ""}])

        room_id = await self.room(ncr, lzy)
        created = (await history(ncr, 1, room_id))[0]
        self.assertEqual(created["message"], "ncr created the room")
        await self.assertError(
            ncr, "not_allowed", "edit_message", message_id=created["id"], message="renamed"
        )
        self.assertEqual((await history(ncr, 1, room_id))[0], created)

    async def test_edit_unreadable(self) -> None:
        """
        Editing an unknown message, or one of a conversation the requester
        cannot read (others' private conversation, a room message from
        before their latest join, a room they are not in, a former friend's
        conversation), is no_such_message, and changes nothing.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        await befriend(ncr, lzy, "lzy")
        private = await send(ncr, 0, LZY, "between us")
        await self.assertError(
            wsx, "no_such_message", "edit_message", message_id=private["id"] + 100, message="x"
        )
        await self.assertError(
            wsx, "no_such_message", "edit_message", message_id=private["id"], message="x"
        )

        room_id = await self.room(ncr, lzy)
        old = await send(lzy, 1, room_id, "before I left")
        await self.assertError(
            wsx, "no_such_message", "edit_message", message_id=old["id"], message="x"
        )
        quit = await lzy.request("quit_room", room_id=room_id)
        self.assertEqual(quit["type"], "me_outroom")
        await self.assertError(
            lzy, "no_such_message", "edit_message", message_id=old["id"], message="x"
        )
        joined = await lzy.request("join_room", name="room1")
        self.assertEqual(joined["type"], "join_successful")
        await self.assertError(
            lzy, "no_such_message", "edit_message", message_id=old["id"], message="x"
        )

        removed = await ncr.request("remove_friend", user_id=LZY)
        self.assertEqual(removed["type"], "friend_removed")
        await self.assertError(
            ncr, "no_such_message", "edit_message", message_id=private["id"], message="x"
        )
        self.assertEqual((await history(ncr, 1, room_id))[2], old)

    async def test_edit_invalid_text(self) -> None:
        """
        A new text that breaks the rules of section 4 (whitespace only,
        empty) is invalid_message, and the old text stays.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        await befriend(ncr, lzy, "lzy")
        original = await send(ncr, 0, LZY, "keep me")
        for text in (" \t\n ", "", "a\x00b"):
            await self.assertError(
                ncr, "invalid_message", "edit_message", message_id=original["id"], message=text
            )
        self.assertEqual(await history(ncr, 0, LZY), [original])


class DeleteTests(Base):
    """
    delete_message (PROTOCOL.md 10).
    """

    async def test_delete_own_private_message(self) -> None:
        """
        The sender's delete is answered with message_deleted naming the
        message's own target (the recipient's id), the other side gets the
        same push, and history shows a tombstone keeping id, time, kind,
        sender and target.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        await befriend(ncr, lzy, "lzy")
        first = await send(ncr, 0, LZY, "something to answer")
        # lzy's message to ncr: edited, quoting, mentioning and reacted to.
        message = await send(lzy, 0, NCR, "hey @ncr", reply_to=first["id"])
        self.assertEqual(message["mentions"], [NCR])
        edited = await lzy.request("edit_message", message_id=message["id"], message="hi @ncr")
        self.assertEqual(edited["type"], "message_edited")
        reacted = await ncr.request("react", message_id=message["id"], emoji="👍")
        self.assertEqual(reacted["type"], "reactions_changed")
        await drain(ncr)

        reply = await lzy.request("delete_message", message_id=message["id"])
        expected = {
            "type": "message_deleted",
            "target_type": 0,
            "target_id": NCR,
            "message_id": message["id"],
        }
        self.assertEqual(reply, {**expected, "id": reply["id"]})
        self.assertEqual(await ncr.push(), expected)
        tombstone = {**message, **TOMBSTONE}
        self.assertEqual(await history(ncr, 0, LZY), [first, tombstone])
        self.assertEqual(await history(lzy, 0, NCR), [first, tombstone])

    async def test_delete_not_allowed(self) -> None:
        """
        Deleting twice, deleting a system message, someone else's private
        message, or (as a plain member) another's room message is
        not_allowed, and changes nothing; unreadable messages are
        no_such_message.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        await befriend(ncr, lzy, "lzy")
        theirs = await send(ncr, 0, LZY, "not yours to delete")
        await self.assertError(lzy, "not_allowed", "delete_message", message_id=theirs["id"])
        await self.assertError(wsx, "no_such_message", "delete_message", message_id=theirs["id"])
        await self.assertError(
            wsx, "no_such_message", "delete_message", message_id=theirs["id"] + 100
        )
        once = await send(ncr, 0, LZY, "delete me once")
        reply = await ncr.request("delete_message", message_id=once["id"])
        self.assertEqual(reply["type"], "message_deleted")
        await self.assertError(ncr, "not_allowed", "delete_message", message_id=once["id"])
        self.assertEqual(await history(lzy, 0, NCR), [theirs, {**once, **TOMBSTONE}])

        room_id = await self.room(ncr, lzy, wsx)
        said = await send(lzy, 1, room_id, "a member's words")
        before = await history(ncr, 1, room_id)
        await self.assertError(wsx, "not_allowed", "delete_message", message_id=said["id"])
        for system in before[:3]:
            self.assertEqual(system["kind"], "system")
            await self.assertError(ncr, "not_allowed", "delete_message", message_id=system["id"])
        # "lzy joined the room" is lzy's, and still not theirs to delete.
        self.assertEqual(before[1]["sender_id"], LZY)
        await self.assertError(lzy, "not_allowed", "delete_message", message_id=before[1]["id"])
        self.assertEqual(await history(ncr, 1, room_id), before)

    async def test_room_owner_deletes_anyones_message(self) -> None:
        """
        The room's creator may delete any member's text message there; every
        other online member gets message_deleted with the room as target.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        room_id = await self.room(ncr, lzy, wsx)
        said = await send(lzy, 1, room_id, "rude words")
        await drain(wsx)
        await drain(ncr)
        reply = await ncr.request("delete_message", message_id=said["id"])
        expected = {
            "type": "message_deleted",
            "target_type": 1,
            "target_id": room_id,
            "message_id": said["id"],
        }
        self.assertEqual(reply, {**expected, "id": reply["id"]})
        self.assertEqual(await lzy.push(), expected)
        self.assertEqual(await wsx.push(), expected)
        self.assertEqual((await history(wsx, 1, room_id))[-1], {**said, **TOMBSTONE})

    async def test_deleted_message_not_unread(self) -> None:
        """
        A deleted message no longer counts in login_info.unread (nor in its
        mentions) of a user who logs in later.
        """
        running, (ncr, lzy) = await self.users("ncr", "lzy")
        await befriend(ncr, lzy, "lzy")
        await lzy.close()
        first = await send(ncr, 0, LZY, "@lzy are you there?")
        second = await send(ncr, 0, LZY, "never mind")
        reply = await ncr.request("delete_message", message_id=first["id"])
        self.assertEqual(reply["type"], "message_deleted")
        lzy, info = await log_in_again(self, running.port, "lzy")
        self.assertEqual(
            info["unread"],
            [
                {
                    "target_type": 0,
                    "target_id": NCR,
                    "count": 1,
                    "mentions": 0,
                    "last_message_id": second["id"],
                }
            ],
        )
        await lzy.close()
        reply = await ncr.request("delete_message", message_id=second["id"])
        self.assertEqual(reply["type"], "message_deleted")
        lzy, info = await log_in_again(self, running.port, "lzy")
        self.assertEqual(info["unread"], [])


class ReplyTests(Base):
    """
    reply_to in send_message (PROTOCOL.md 10).
    """

    async def test_reply_quotes_message(self) -> None:
        """
        A reply carries a Quote of the quoted message: its id, sender and
        text cut to its first 200 code points, deleted false; in the reply,
        the push and history alike.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        await befriend(ncr, lzy, "lzy")
        text = "ab😀" * 100  # 300 code points, some outside the BMP
        original = await send(ncr, 0, LZY, text)
        await drain(ncr)
        answer = await send(lzy, 0, NCR, "indeed", reply_to=original["id"])
        quote = {
            "id": original["id"],
            "sender_id": NCR,
            "sender_name": "ncr",
            "message": text[:200],
            "deleted": False,
        }
        self.assertEqual(len(text[:200]), 200)
        self.assertEqual(answer["reply_to"], quote)
        self.assertEqual({key: answer[key] for key in PLAIN}, {**PLAIN, "reply_to": quote}, answer)
        self.assertEqual(await ncr.push(), {"type": "on_new_message", "message": answer})
        self.assertEqual(await history(ncr, 0, LZY), [original, answer])

    async def test_reply_to_null(self) -> None:
        """
        reply_to null is the same as no reply_to.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        await befriend(ncr, lzy, "lzy")
        message = await send(ncr, 0, LZY, "no quote", reply_to=None)
        self.assertEqual({key: message[key] for key in PLAIN}, PLAIN)

    async def test_reply_to_refused(self) -> None:
        """
        reply_to naming an unknown message, one of another conversation, a
        system message, a deleted message or a room message from before the
        sender's latest join is no_such_message, and nothing is stored.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        await befriend(ncr, lzy, "lzy")
        await befriend(ncr, wsx, "wsx")
        other = await send(ncr, 0, WSX, "to wsx")
        gone = await send(ncr, 0, LZY, "gone")
        reply = await ncr.request("delete_message", message_id=gone["id"])
        self.assertEqual(reply["type"], "message_deleted")
        for reply_to in (other["id"] + 100, other["id"], gone["id"]):
            await self.assertError(
                ncr,
                "no_such_message",
                "send_message",
                target_type=0,
                target_id=LZY,
                message="quoting",
                reply_to=reply_to,
            )
        self.assertEqual(await history(ncr, 0, LZY), [{**gone, **TOMBSTONE}])

        room_id = await self.room(ncr, lzy)
        old = await send(ncr, 1, room_id, "said before lzy left")
        quit = await lzy.request("quit_room", room_id=room_id)
        self.assertEqual(quit["type"], "me_outroom")
        joined = await lzy.request("join_room", name="room1")
        self.assertEqual(joined["type"], "join_successful")
        system = (await history(ncr, 1, room_id))[0]
        self.assertEqual(system["kind"], "system")
        refusals = [(ncr, system["id"]), (lzy, old["id"]), (ncr, other["id"])]
        for sender, reply_to in refusals:
            await self.assertError(
                sender,
                "no_such_message",
                "send_message",
                target_type=1,
                target_id=room_id,
                message="quoting",
                reply_to=reply_to,
            )
        self.assertEqual(
            [m["message"] for m in await history(ncr, 1, room_id)],
            [
                "ncr created the room",
                "lzy joined the room",
                "said before lzy left",
                "lzy left the room",
                "lzy joined the room",
            ],
        )

    async def test_quote_follows_edit_and_delete(self) -> None:
        """
        A Quote shows the quoted message's current text after an edit, and
        message "" with deleted true (sender kept) after its deletion.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        await befriend(ncr, lzy, "lzy")
        original = await send(ncr, 0, LZY, "the meeting is at 10")
        answer = await send(lzy, 0, NCR, "ok", reply_to=original["id"])
        reply = await ncr.request("edit_message", message_id=original["id"], message="at 11")
        self.assertEqual(reply["type"], "message_edited")
        quote = {
            "id": original["id"],
            "sender_id": NCR,
            "sender_name": "ncr",
            "message": "at 11",
            "deleted": False,
        }
        self.assertEqual((await history(lzy, 0, NCR))[1], {**answer, "reply_to": quote})
        reply = await ncr.request("delete_message", message_id=original["id"])
        self.assertEqual(reply["type"], "message_deleted")
        quote = {**quote, "message": "", "deleted": True}
        self.assertEqual((await history(lzy, 0, NCR))[1], {**answer, "reply_to": quote})
        self.assertEqual((await history(ncr, 0, LZY))[1], {**answer, "reply_to": quote})


class MentionTests(Base):
    """
    mentions (PROTOCOL.md 10).
    """

    async def test_mentions_in_room(self) -> None:
        """
        @name of members who can read the room are listed, case-insensitively,
        ascending, each once, never the sender, never a user outside the
        room; in the reply, the push and history.
        """
        _, (ncr, lzy, wsx, _qaz) = await self.users("ncr", "lzy", "wsx", "qaz")
        room_id = await self.room(ncr, lzy, wsx)
        message = await send(ncr, 1, room_id, "@wsx @LZY hi @ncr @qaz, and again @lzy!")
        self.assertEqual(message["mentions"], [LZY, WSX])
        self.assertEqual(await lzy.push(), {"type": "on_new_message", "message": message})
        self.assertEqual(await wsx.push(), {"type": "on_new_message", "message": message})
        self.assertEqual((await history(lzy, 1, room_id))[-1], message)

    async def test_mention_boundaries(self) -> None:
        """
        A mention needs a @ at the start or after a character that is not an
        ASCII letter, digit or _, and a whole username after it.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr, lzy)
        cases = [
            ("mail@lzy", []),
            ("x_@lzy", []),
            ("5@lzy", []),
            ("@lzyx hi", []),
            ("@lzy_ hi", []),
            ("@lzy", [LZY]),
            ("hi @lzy", [LZY]),
            ("(@lzy)", [LZY]),
            ("é@lzy", [LZY]),
            ("@lzy's", [LZY]),
            ("@@lzy", [LZY]),
        ]
        for text, mentions in cases:
            message = await send(ncr, 1, room_id, text)
            self.assertEqual(message["mentions"], mentions, text)

    async def test_private_mentions(self) -> None:
        """
        In a private conversation, only the other side can be mentioned.
        """
        _, (ncr, lzy, _wsx) = await self.users("ncr", "lzy", "wsx")
        await befriend(ncr, lzy, "lzy")
        message = await send(ncr, 0, LZY, "@ncr @wsx @lzy")
        self.assertEqual(message["mentions"], [LZY])

    async def test_edit_recomputes_mentions(self) -> None:
        """
        Editing a message's text computes its mentions again.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        room_id = await self.room(ncr, lzy, wsx)
        message = await send(ncr, 1, room_id, "@lzy look")
        self.assertEqual(message["mentions"], [LZY])
        await drain(wsx)
        reply = await ncr.request("edit_message", message_id=message["id"], message="@wsx look")
        self.assertEqual(reply["message"]["mentions"], [WSX])
        self.assertEqual((await wsx.push())["message"]["mentions"], [WSX])
        reply = await ncr.request("edit_message", message_id=message["id"], message="nobody")
        self.assertEqual(reply["message"]["mentions"], [])
        self.assertEqual((await history(lzy, 1, room_id))[-1]["mentions"], [])

    async def test_unread_mentions(self) -> None:
        """
        login_info.unread[].mentions counts the unread messages that mention
        a user who was offline.
        """
        running, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room(ncr, lzy)
        await lzy.close()
        await send(ncr, 1, room_id, "@lzy one")
        await send(ncr, 1, room_id, "two")
        last = await send(ncr, 1, room_id, "three, @LZY")
        lzy, info = await log_in_again(self, running.port, "lzy")
        self.assertEqual(
            info["unread"],
            [
                {
                    "target_type": 1,
                    "target_id": room_id,
                    "count": 3,
                    "mentions": 2,
                    "last_message_id": last["id"],
                }
            ],
        )


class ReactionTests(Base):
    """
    react (PROTOCOL.md 10).
    """

    async def test_react(self) -> None:
        """
        A reaction is answered and pushed as reactions_changed with the
        message's own target; emoji in the order first added, user_ids
        ascending; history shows the reactions.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        await befriend(ncr, lzy, "lzy")
        message = await send(ncr, 0, LZY, "news")
        await drain(lzy)
        reply = await lzy.request("react", message_id=message["id"], emoji="👍")
        expected = {
            "type": "reactions_changed",
            "target_type": 0,
            "target_id": LZY,
            "message_id": message["id"],
            "reactions": [{"emoji": "👍", "user_ids": [LZY]}],
        }
        self.assertEqual(reply, {**expected, "id": reply["id"]})
        self.assertEqual(await ncr.push(), expected)
        reply = await ncr.request("react", message_id=message["id"], emoji="❤️", on=True)
        reply = await ncr.request("react", message_id=message["id"], emoji="👍")
        reactions = [{"emoji": "👍", "user_ids": [NCR, LZY]}, {"emoji": "❤️", "user_ids": [NCR]}]
        self.assertEqual(reply["reactions"], reactions)
        self.assertEqual(
            (await lzy.push())["reactions"],
            [{"emoji": "👍", "user_ids": [LZY]}, {"emoji": "❤️", "user_ids": [NCR]}],
        )
        self.assertEqual(await lzy.push(), {**expected, "reactions": reactions})
        self.assertEqual(await history(lzy, 0, NCR), [{**message, "reactions": reactions}])

        room_id = await self.room(ncr, lzy, wsx)
        said = await send(ncr, 1, room_id, "vote")
        await drain(lzy)
        await drain(wsx)
        await wsx.request("react", message_id=said["id"], emoji="👨‍👩‍👧")
        reply = await lzy.request("react", message_id=said["id"], emoji="👨‍👩‍👧")
        room_expected = {
            "type": "reactions_changed",
            "target_type": 1,
            "target_id": room_id,
            "message_id": said["id"],
            "reactions": [{"emoji": "👨‍👩‍👧", "user_ids": [LZY, WSX]}],
        }
        self.assertEqual(reply, {**room_expected, "id": reply["id"]})
        self.assertEqual(await wsx.push(), room_expected)
        await ncr.push("reactions_changed")
        self.assertEqual(await ncr.push("reactions_changed"), room_expected)
        self.assertEqual(
            (await history(ncr, 1, room_id))[-1],
            {**said, "reactions": room_expected["reactions"]},
        )

    async def test_remove_and_repeat(self) -> None:
        """
        on false removes one's reaction; repeating what is already done
        succeeds with no push; an emoji that disappears and comes back goes
        last.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        await befriend(ncr, lzy, "lzy")
        message = await send(ncr, 0, LZY, "react to me")
        mid = message["id"]
        await lzy.request("react", message_id=mid, emoji="a")
        await lzy.request("react", message_id=mid, emoji="b")
        await drain(ncr)
        reply = await lzy.request("react", message_id=mid, emoji="a")
        self.assertEqual(
            reply["reactions"],
            [{"emoji": "a", "user_ids": [LZY]}, {"emoji": "b", "user_ids": [LZY]}],
        )
        await self.assertNothingPushed(lzy, 0, NCR, ncr)

        reply = await lzy.request("react", message_id=mid, emoji="a", on=False)
        self.assertEqual(reply["reactions"], [{"emoji": "b", "user_ids": [LZY]}])
        self.assertEqual((await ncr.push())["reactions"], reply["reactions"])
        reply = await lzy.request("react", message_id=mid, emoji="a", on=False)
        self.assertEqual(reply["type"], "reactions_changed")
        self.assertEqual(reply["reactions"], [{"emoji": "b", "user_ids": [LZY]}])
        reply = await lzy.request("react", message_id=mid, emoji="never", on=False)
        self.assertEqual(reply["reactions"], [{"emoji": "b", "user_ids": [LZY]}])
        await self.assertNothingPushed(lzy, 0, NCR, ncr)

        reply = await ncr.request("react", message_id=mid, emoji="a")
        self.assertEqual(
            reply["reactions"],
            [{"emoji": "b", "user_ids": [LZY]}, {"emoji": "a", "user_ids": [NCR]}],
        )
        self.assertEqual((await history(lzy, 0, NCR))[0]["reactions"], reply["reactions"])

    async def test_at_most_20_emoji(self) -> None:
        """
        A message holds at most 20 distinct emoji: a 21st is not_allowed,
        while another user may still join one of the 20.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        await befriend(ncr, lzy, "lzy")
        message = await send(ncr, 0, LZY, "so many")
        for n in range(20):
            reply = await lzy.request("react", message_id=message["id"], emoji=f"e{n}")
            self.assertEqual(reply["type"], "reactions_changed", reply)
        await self.assertError(lzy, "not_allowed", "react", message_id=message["id"], emoji="e20")
        await self.assertError(ncr, "not_allowed", "react", message_id=message["id"], emoji="e20")
        reply = await ncr.request("react", message_id=message["id"], emoji="e7")
        self.assertEqual(reply["reactions"][7], {"emoji": "e7", "user_ids": [NCR, LZY]})
        reactions = (await history(ncr, 0, LZY))[0]["reactions"]
        self.assertEqual([r["emoji"] for r in reactions], [f"e{n}" for n in range(20)])

    async def test_react_refused(self) -> None:
        """
        Deleted and system messages take no reactions (not_allowed),
        unreadable messages are no_such_message, and an emoji with
        whitespace or control characters, empty or longer than 32 code
        points is invalid_field.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        await befriend(ncr, lzy, "lzy")
        message = await send(ncr, 0, LZY, "hi")
        gone = await send(ncr, 0, LZY, "gone")
        await ncr.request("delete_message", message_id=gone["id"])
        await self.assertError(lzy, "not_allowed", "react", message_id=gone["id"], emoji="👍")
        await self.assertError(
            wsx, "no_such_message", "react", message_id=message["id"], emoji="👍"
        )
        await self.assertError(
            wsx, "no_such_message", "react", message_id=message["id"] + 100, emoji="👍"
        )
        for emoji in ("a b", "", "a\u00a0b", "a\u0007", "x" * 33):
            await self.assertError(
                lzy, "invalid_field", "react", message_id=message["id"], emoji=emoji
            )
        reply = await lzy.request("react", message_id=message["id"], emoji="x" * 32)
        self.assertEqual(reply["type"], "reactions_changed")

        room_id = await self.room(ncr, lzy)
        system = (await history(ncr, 1, room_id))[0]
        await self.assertError(ncr, "not_allowed", "react", message_id=system["id"], emoji="👍")
        old = await send(ncr, 1, room_id, "before wsx")
        await self.assertError(wsx, "no_such_message", "react", message_id=old["id"], emoji="👍")
        await wsx.request("join_room", name="room1")
        await self.assertError(wsx, "no_such_message", "react", message_id=old["id"], emoji="👍")
        self.assertEqual((await history(ncr, 1, room_id))[2], old)
        self.assertEqual(
            (await history(ncr, 0, LZY))[0]["reactions"],
            [{"emoji": "x" * 32, "user_ids": [LZY]}],
        )


class TypingTests(Base):
    """
    typing (PROTOCOL.md 10).
    """

    async def test_typing_to_friend(self) -> None:
        """
        typing to a friend is answered ok and pushed to the friend with
        target_id their own id.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        await befriend(ncr, lzy, "lzy")
        await drain(lzy)
        reply = await ncr.request("typing", target_type=0, target_id=LZY, typing=True)
        self.assertEqual(reply, {"type": "ok", "id": reply["id"]})
        self.assertEqual(
            await lzy.push(),
            {"type": "typing", "target_type": 0, "target_id": LZY, "user_id": NCR, "typing": True},
        )

    async def test_typing_in_room(self) -> None:
        """
        typing in a room is pushed to every other online member, with
        target_id the room id, and not to the typist.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        room_id = await self.room(ncr, lzy, wsx)
        reply = await lzy.request("typing", target_type=1, target_id=room_id, typing=True)
        self.assertEqual(reply, {"type": "ok", "id": reply["id"]})
        expected = {
            "type": "typing",
            "target_type": 1,
            "target_id": room_id,
            "user_id": LZY,
            "typing": True,
        }
        self.assertEqual(await ncr.push(), expected)
        self.assertEqual(await wsx.push(), expected)
        await drain(lzy)
        await self.assertNothingPushed(ncr, 1, room_id, lzy)

    async def test_typing_refused(self) -> None:
        """
        typing is refused where send_message would be: not_friends,
        not_in_room, invalid_target; a missing or mistyped typing field is
        invalid_field.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        created = await lzy.request("create_room", name="room1")
        room_id = created["room"]["id"]
        await drain(lzy)
        await self.assertError(
            ncr, "not_friends", "typing", target_type=0, target_id=LZY, typing=True
        )
        await self.assertError(
            ncr, "not_in_room", "typing", target_type=1, target_id=room_id, typing=True
        )
        await self.assertError(
            ncr, "invalid_target", "typing", target_type=0, target_id=NCR, typing=True
        )
        await self.assertError(ncr, "invalid_field", "typing", target_type=0, target_id=LZY)
        await self.assertError(
            ncr, "invalid_field", "typing", target_type=0, target_id=LZY, typing="yes"
        )
        await self.assertError(
            ncr, "invalid_field", "typing", target_type=0, target_id=LZY, typing=1
        )
        await drain(lzy)
        reply = await lzy.request("ping")
        self.assertEqual(reply["type"], "pong")
        self.assertEqual(lzy.pending_pushes(), [])


# Every suite runs on PostgreSQL too.
on_postgresql(
    globals(),
    MessageFieldsTests,
    EditTests,
    DeleteTests,
    ReplyTests,
    MentionTests,
    ReactionTests,
    TypingTests,
)
