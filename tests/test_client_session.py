"""
The client's reconnecting session (L{client.session.ChatClient}) on memory
transports and a fake clock: no reactor, no Qt.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from client.protocol import ChatError, Disconnected
from client.session import AROUND_PAGE, PAGE_SIZE, default_retry_policy
from client.state import (
    CONNECTING,
    OFFLINE,
    ONLINE,
    PRIVATE,
    ROOM,
    Change,
    SignedOut,
)
from tests.qt_support import LZY, NCR, TOKEN, Session, member, message


class LoginTests(SynchronousTestCase):
    """
    Logging in and out, and a server that cannot be reached.
    """

    def setUp(self) -> None:
        self.session = Session()
        self.changes: list[Change] = []
        self.session.state.add_listener(self.changes.append)

    def test_login(self) -> None:
        """
        Login sends the credentials; the reply fires with the user and the
        login_info push fills the state.
        """
        d = self.session.log_in()
        self.assertEqual(self.successResultOf(d).username, "ncr")
        state = self.session.state
        self.assertEqual(state.connection, ONLINE)
        self.assertEqual(sorted(state.friends), [2, 3])
        self.assertEqual(list(state.rooms), [1])

    def test_login_refused(self) -> None:
        """
        A refused login fails with the server's error and closes the
        connection without reconnecting.
        """
        d = self.session.client.login("ncr", "wrong00")
        self.session.server.error(self.session.server.take("login"), "login_failed")
        self.assertEqual(self.failureResultOf(d, ChatError).value.code, "login_failed")
        self.assertFalse(self.session.server.open)
        self.assertEqual(self.session.state.connection, OFFLINE)
        self.assertEqual(self.session.clock.getDelayedCalls(), [])

    def test_server_unreachable(self) -> None:
        """
        When the server cannot be reached, login fails with Disconnected
        and nothing retries.
        """
        self.session.endpoint.refuse = True
        d = self.session.client.login("ncr", "secret1")
        self.assertIn("Cannot reach", str(self.failureResultOf(d, Disconnected).value))
        self.assertEqual(self.session.clock.getDelayedCalls(), [])
        self.assertEqual(self.session.state.connection, OFFLINE)

    def test_register(self) -> None:
        """
        Register sends the new account and fires with the user.
        """
        d = self.session.client.register("lzy", "secret1")
        request = self.session.server.take("register")
        self.assertEqual((request["username"], request["password"]), ("lzy", "secret1"))
        self.session.server.reply(request, "register_successful", user={"id": 2, "username": "lzy"})
        self.assertEqual(self.successResultOf(d).id, 2)

    def test_login_right_after_refused_register(self) -> None:
        """
        A login just after a refused registration uses a new connection,
        not the one still closing.
        """
        self.session.endpoint.slow_close = True
        register = self.session.client.register("ncr", "secret1")
        first = self.session.server
        first.error(first.take("register"), "username_taken")
        self.failureResultOf(register, ChatError)
        self.assertTrue(first.transport.disconnecting)
        login = self.session.client.login("ncr", "secret1")
        second = self.session.server
        self.assertIsNot(second, first)
        self.assertEqual(first.sent(), [])
        first.transport.finish_closing()
        second.reply(second.take("login"), "login_successful", user={"id": 1, "username": "ncr"})
        self.assertEqual(self.successResultOf(login).id, 1)

    def test_no_reconnect_before_login(self) -> None:
        """
        A connection closed before any login (the server's login deadline
        after a registration) is not reopened.
        """
        d = self.session.client.register("ncr", "secret1")
        server = self.session.server
        server.reply(
            server.take("register"), "register_successful", user={"id": 1, "username": "ncr"}
        )
        self.successResultOf(d)
        server.drop()
        self.session.clock.advance(60)
        self.assertEqual(len(self.session.endpoint.connections), 1)
        self.assertEqual(self.session.state.connection, OFFLINE)

    def test_logout(self) -> None:
        """
        Logout asks the server, closes the connection, forgets the session
        and does not reconnect.
        """
        self.session.log_in()
        d = self.session.client.logout()
        server = self.session.server
        server.reply(server.take("logout"), "logout_successful")
        self.successResultOf(d)
        self.assertFalse(server.open)
        self.assertIsNone(self.session.state.user)
        self.assertIn(SignedOut(None), self.changes)
        self.session.clock.advance(60)
        self.assertEqual(len(self.session.endpoint.connections), 1)

    def test_request_offline_fails_at_once(self) -> None:
        """
        A request while logged out fails with Disconnected without waiting.
        """
        self.failureResultOf(self.session.client.add_friend("lzy"), Disconnected)


class ReconnectTests(SynchronousTestCase):
    """
    A lost connection comes back, logged in, with nothing lost.
    """

    def setUp(self) -> None:
        self.session = Session()
        self.session.log_in()
        self.changes: list[Change] = []
        self.session.state.add_listener(self.changes.append)

    def test_reconnect_resumes(self) -> None:
        """
        After a drop the client shows connecting, reconnects after the
        backoff delay and resumes with the session's token, not the
        password.
        """
        session = self.session
        first = session.server
        first.drop()
        self.assertEqual(session.state.connection, CONNECTING)
        session.clock.advance(0.9)
        self.assertEqual(len(session.endpoint.connections), 1)
        session.clock.advance(0.1)
        self.assertEqual(len(session.endpoint.connections), 2)
        (request,) = session.server.sent()
        self.assertEqual(request, {"type": "resume", "id": 1, "token": TOKEN})
        self.assertEqual(session.state.connection, CONNECTING)
        session.server.reply(request, "login_successful", user={"id": 1, "username": "ncr"})
        self.assertEqual(session.state.connection, ONLINE)

    def test_backoff_grows(self) -> None:
        """
        With the default policy, failed attempts wait longer and longer.
        """
        policy = default_retry_policy(jitter=lambda: 0)
        self.assertEqual([policy(n) for n in (1, 2, 3)], [1.5, 2.25, 3.375])
        self.assertEqual(policy(100), 30.0)
        session = Session(retry_policy=policy)
        session.log_in()
        session.endpoint.refuse = True
        session.server.drop()
        session.clock.advance(1.5)  # first attempt, refused
        session.clock.advance(2.24)
        session.endpoint.refuse = False
        self.assertEqual(len(session.endpoint.connections), 1)
        session.clock.advance(0.01)
        self.assertEqual(len(session.endpoint.connections), 2)

    def test_unacknowledged_send_is_resent(self) -> None:
        """
        A send whose reply was lost goes out again after the reconnect with
        the same client_msg_id, and its message is held once.
        """
        session = self.session
        session.client.send((PRIVATE, 2), "hello")
        first = session.server.take("send_message")
        self.assertEqual(first["client_msg_id"], "m1")
        server = session.reconnect()
        again = server.take("send_message")
        self.assertEqual(
            {k: again[k] for k in ("target_type", "target_id", "message", "client_msg_id")},
            {"target_type": 0, "target_id": 2, "message": "hello", "client_msg_id": "m1"},
        )
        stored = message(7, NCR, 0, 2, "hello", client_msg_id="m1")
        server.reply(again, "on_new_message", message=stored)
        conversation = session.state.conversation((PRIVATE, 2))
        self.assertEqual([m.id for m in conversation.messages], [7])
        self.assertEqual(conversation.pending, [])
        self.assertEqual(session.state.outbox(), [])

    def test_send_while_offline_waits(self) -> None:
        """
        A message written while offline shows as pending, nothing is sent,
        and it goes out once the session is back.
        """
        session = self.session
        session.server.drop()
        session.client.send((ROOM, 1), "while away")
        conversation = session.state.conversation((ROOM, 1))
        self.assertEqual([p.text for p in conversation.pending], ["while away"])
        session.clock.advance(1.0)
        session.answer_login_again()
        request = session.server.take("send_message")
        self.assertEqual((request["message"], request["target_id"]), ("while away", 1))

    def test_resends_keep_their_order(self) -> None:
        """
        Several unacknowledged messages go out again in the order written.
        """
        session = self.session
        for text in ("one", "two", "three"):
            session.client.send((PRIVATE, 2), text)
        server = session.reconnect()
        sent = [r["message"] for r in server.sent() if r["type"] == "send_message"]
        self.assertEqual(sent, ["one", "two", "three"])

    def test_acknowledged_send_is_not_resent(self) -> None:
        """
        A message whose reply arrived is not sent again after a reconnect.
        """
        session = self.session
        session.client.send((PRIVATE, 2), "hello")
        request = session.server.take("send_message")
        session.server.reply(
            request, "on_new_message", message=message(7, NCR, 0, 2, client_msg_id="m1")
        )
        server = session.reconnect()
        self.assertEqual([r for r in server.sent() if r["type"] == "send_message"], [])

    def test_catch_up_after_reconnect(self) -> None:
        """
        A held conversation is caught up with history after its newest id,
        page after page, without gap or duplicate.
        """
        session = self.session
        session.server.push("on_new_message", message=message(5, LZY, 0, 1, "before"))
        server = session.reconnect()
        page = server.take("history")
        self.assertEqual((page["target_type"], page["target_id"], page["after"]), (PRIVATE, 2, 5))
        server.reply(
            page,
            "history",
            target_type=0,
            target_id=2,
            messages=[message(6, LZY, 0, 1, "a"), message(7, NCR, 0, 2, "b")],
            has_more=True,
        )
        page = server.take("history")
        self.assertEqual(page["after"], 7)
        server.reply(
            page,
            "history",
            target_type=0,
            target_id=2,
            messages=[message(7, NCR, 0, 2, "b"), message(9, LZY, 0, 1, "c")],
            has_more=False,
        )
        self.assertEqual(server.sent(), [])
        conversation = session.state.conversation((PRIVATE, 2))
        self.assertEqual([m.id for m in conversation.messages], [5, 6, 7, 9])

    def test_catch_up_skips_gone_conversations(self) -> None:
        """
        A conversation we are no longer in is not asked for, and a refused
        page ends that conversation's catch-up only.
        """
        session = self.session
        session.server.push("on_new_message", message=message(5, LZY, 0, 1))
        session.server.push("on_new_message", message=message(6, LZY, 1, 1))
        server = session.reconnect(rooms=[])
        page = server.take("history")
        self.assertEqual(page["target_type"], PRIVATE)
        server.error(page, "not_friends")
        self.assertEqual(server.sent(), [])

    def test_kicked_for_another_login(self) -> None:
        """
        A server_kick for a login elsewhere ends the session: no reconnect.
        """
        session = self.session
        session.server.push("server_kick", reason="logged_in_elsewhere")
        session.server.drop()
        session.clock.advance(60)
        self.assertEqual(len(session.endpoint.connections), 1)
        (signed_out,) = [c for c in self.changes if isinstance(c, SignedOut)]
        self.assertIn("somewhere else", signed_out.reason or "")

    def test_kicked_for_idleness_reconnects(self) -> None:
        """
        A server_kick for idleness is followed by a reconnect.
        """
        session = self.session
        session.server.push("server_kick", reason="idle_timeout")
        session.server.drop()
        session.clock.advance(1.0)
        self.assertEqual(len(session.endpoint.connections), 2)
        session.server.take("resume")

    def test_resume_refused_on_reconnect_ends_session(self) -> None:
        """
        When resuming is refused (the token ended), the session ends instead
        of retrying forever.
        """
        session = self.session
        session.server.drop()
        session.clock.advance(1.0)
        session.server.error(session.server.take("resume"), "invalid_token", "Ended.")
        self.assertIsNone(session.state.user)
        self.assertFalse(session.server.open)
        session.clock.advance(60)
        self.assertEqual(len(session.endpoint.connections), 2)

    def test_rate_limited_relogin_retries(self) -> None:
        """
        A rate-limited login after a reconnect drops the connection and
        tries again later, keeping the session.
        """
        session = self.session
        session.server.drop()
        session.clock.advance(1.0)
        session.server.error(session.server.take("resume"), "rate_limited")
        self.assertIsNotNone(session.state.user)
        session.clock.advance(1.0)
        self.assertEqual(len(session.endpoint.connections), 3)


class ConversationTests(SynchronousTestCase):
    """
    Viewing, paging, reading and sending in a conversation.
    """

    def setUp(self) -> None:
        self.session = Session()
        self.session.log_in()
        self.server = self.session.server

    def open_lzy(self, has_more: bool = True) -> None:
        self.session.client.view((PRIVATE, 2))
        page = self.server.take("history")
        self.assertNotIn("before", page)
        self.assertNotIn("after", page)
        self.server.reply(
            page,
            "history",
            target_type=0,
            target_id=2,
            messages=[message(10, LZY, 0, 1, "x"), message(11, NCR, 0, 2, "y")],
            has_more=has_more,
        )

    def test_view_loads_newest_page_and_marks_read(self) -> None:
        """
        Viewing a conversation the first time loads its newest page, then
        marks its newest message read.
        """
        self.open_lzy()
        mark = self.server.take("mark_read")
        self.assertEqual(
            (mark["target_type"], mark["target_id"], mark["message_id"]), (PRIVATE, 2, 11)
        )
        conversation = self.session.state.conversation((PRIVATE, 2))
        self.assertEqual([m.text for m in conversation.messages], ["x", "y"])

    def test_new_message_in_view_is_marked_read(self) -> None:
        """
        A message pushed to the viewed conversation is marked read; one to
        another conversation counts as unread instead.
        """
        self.open_lzy()
        self.server.sent()
        self.server.push("on_new_message", message=message(12, LZY, 0, 1))
        self.assertEqual(self.server.take("mark_read")["message_id"], 12)
        self.server.push("on_new_message", message=message(13, LZY, 1, 1))
        self.assertEqual(self.server.sent(), [])
        self.assertEqual(self.session.state.conversation((ROOM, 1)).unread, 1)

    def test_load_older(self) -> None:
        """
        Loading older asks for the page before the oldest id held, once at
        a time, and stops when the server says there is no more.
        """
        self.open_lzy()
        self.server.sent()
        self.session.client.load_older((PRIVATE, 2))
        self.session.client.load_older((PRIVATE, 2))
        (page,) = [r for r in self.server.sent() if r["type"] == "history"]
        self.assertEqual(page["before"], 10)
        self.server.reply(
            page,
            "history",
            target_type=0,
            target_id=2,
            messages=[message(4, LZY, 0, 1, "old")],
            has_more=False,
        )
        conversation = self.session.state.conversation((PRIVATE, 2))
        self.assertEqual([m.id for m in conversation.messages], [4, 10, 11])
        self.assertFalse(conversation.has_older)
        self.session.client.load_older((PRIVATE, 2))
        self.assertEqual(self.server.sent(), [])

    def test_refused_send_is_marked_and_not_resent(self) -> None:
        """
        A message the server refuses stays visible as failed and is not
        sent again after a reconnect.
        """
        self.session.client.send((PRIVATE, 3), "hi")
        self.server.error(self.server.take("send_message"), "not_friends", "You are not friends.")
        (pending,) = self.session.state.conversation((PRIVATE, 3)).pending
        self.assertEqual(pending.error, "You are not friends.")
        server = self.session.reconnect()
        self.assertEqual([r for r in server.sent() if r["type"] == "send_message"], [])

    def test_rate_limited_send_is_retried(self) -> None:
        """
        A send answered rate_limited goes out again a second later.
        """
        self.session.client.send((PRIVATE, 2), "hi")
        self.server.error(self.server.take("send_message"), "rate_limited")
        self.assertEqual(self.server.sent(), [])
        self.session.clock.advance(1.0)
        self.assertEqual(self.server.take("send_message")["client_msg_id"], "m1")

    def test_invalid_message_is_not_sent(self) -> None:
        """
        A message breaking the text rules raises before anything is sent.
        """
        self.assertRaises(ValueError, self.session.client.send, (PRIVATE, 2), "   ")
        self.assertEqual(self.session.state.outbox(), [])

    def test_invite_fetches_the_rooms_news(self) -> None:
        """
        After adding a friend to a held room, the room is caught up (the
        server does not push its "added" message to the inviter).
        """
        self.server.push("on_new_message", message=message(20, LZY, 1, 1))
        d = self.session.client.invite(1, 3)
        request = self.server.take("add_friend_to_room")
        self.assertEqual((request["room_id"], request["user_id"]), (1, 3))
        self.server.reply(request, "ok")
        self.successResultOf(d)
        self.assertEqual(self.server.take("history")["after"], 20)

    def test_replies_apply_to_state(self) -> None:
        """
        Room and friend requests apply their replies to the state.
        """
        client, server = self.session.client, self.server
        client.create_room("room2")
        server.reply(
            server.take("create_room"),
            "create_successful",
            room={"id": 2, "name": "room2", "members": [member(1, "ncr")]},
        )
        client.quit_room(1)
        server.reply(server.take("quit_room"), "me_outroom", room_id=1)
        client.resolve_friend_request(4, True)
        server.reply(
            server.take("resolve_friend_request"),
            "add_friend_result",
            friend=member(4, "tr"),
            accepted=True,
        )
        rooms = client.list_rooms("ro")
        server.reply(
            server.take("list_rooms"),
            "room_list",
            rooms=[{"id": 1, "name": "room1", "member_count": 2}],
        )
        self.assertEqual(list(self.session.state.rooms), [2])
        self.assertIn(4, self.session.state.friends)
        self.assertEqual(self.successResultOf(rooms)[0]["name"], "room1")


def lzy_messages(ids: Any) -> list[dict[str, Any]]:
    """
    @return: lzy's messages C{ids} to ncr.
    """
    return [message(i, LZY, PRIVATE, 1, f"m{i}") for i in ids]


class WindowTests(SynchronousTestCase):
    """
    Showing a message far back: the window around it, the pages after it,
    and what sending and reconnecting do meanwhile.
    """

    key = (PRIVATE, 2)

    def setUp(self) -> None:
        self.session = Session()
        self.session.log_in()
        self.server = self.session.server
        self.client = self.session.client
        self.conversation = self.session.state.conversation(self.key)
        self.client.view(self.key)
        self.answer(self.server.take("history"), range(1000, 1050), True)
        self.server.sent()

    def answer(self, request: dict[str, Any], ids: Any, has_more: bool, server: Any = None) -> None:
        """
        Answer the history C{request} with lzy's messages C{ids}.
        """
        (server or self.server).reply(
            request,
            "history",
            target_type=PRIVATE,
            target_id=2,
            messages=lzy_messages(ids),
            has_more=has_more,
        )

    def history(self, server: Any = None) -> list[dict[str, Any]]:
        """
        @return: the history requests sent since last asked, without their
            envelope.
        """
        sent = (server or self.server).sent()
        return [
            {k: v for k, v in r.items() if k not in ("type", "id", "target_type", "target_id")}
            for r in sent
            if r["type"] == "history"
        ]

    def detach(self) -> None:
        """
        Show message 500: the window of 476-525.
        """
        d = self.client.load_around(self.key, 500)
        before = self.server.take("history")
        after = self.server.take("history")
        self.answer(before, range(476, 501), True)
        self.answer(after, range(501, 526), True)
        self.assertTrue(self.successResultOf(d))
        self.server.sent()

    def test_load_around_asks_for_both_sides(self) -> None:
        """
        A message far back is loaded with the 24 before it and the 25 after
        it, in two requests sent at once; they replace what is held.
        """
        d = self.client.load_around(self.key, 500)
        before, after = self.server.sent()
        self.assertEqual(
            (before["target_type"], before["target_id"], before["before"], before["limit"]),
            (PRIVATE, 2, 501, AROUND_PAGE),
        )
        self.assertEqual((after["after"], after["limit"]), (500, AROUND_PAGE))
        self.assertNotIn("after", before)
        self.assertNotIn("before", after)
        self.answer(before, range(476, 501), True)
        self.assertNoResult(d)
        self.answer(after, range(501, 526), True)
        self.assertTrue(self.successResultOf(d))
        self.assertEqual([m.id for m in self.conversation.messages], list(range(476, 526)))
        self.assertTrue(self.conversation.detached)
        # Nothing beyond the window is marked read.
        self.assertEqual(self.server.sent(), [])

    def test_message_no_longer_shown(self) -> None:
        """
        When the server no longer shows the message (deleted for good, or
        before we joined), nothing changes.
        """
        d = self.client.load_around(self.key, 500)
        before, after = self.server.sent()
        self.answer(before, range(470, 500), True)
        self.answer(after, range(501, 526), True)
        self.assertFalse(self.successResultOf(d))
        self.assertEqual(self.conversation.first_id, 1000)
        self.assertFalse(self.conversation.detached)

    def test_load_around_refused(self) -> None:
        """
        A refused window fails with the refusal, and the other request's
        failure is not left unhandled.
        """
        d = self.client.load_around(self.key, 500)
        before, after = self.server.sent()
        self.server.error(before, "not_friends", "You are not friends.")
        self.server.error(after, "not_friends", "You are not friends.")
        self.assertEqual(self.failureResultOf(d, ChatError).value.code, "not_friends")
        self.assertEqual(self.conversation.first_id, 1000)

    def test_load_around_offline(self) -> None:
        """
        Offline, a window fails at once.
        """
        self.server.drop()
        self.failureResultOf(self.client.load_around(self.key, 500), Disconnected)

    def test_newer_pages_until_attached(self) -> None:
        """
        Newer pages of a detached conversation are asked after its newest
        message held, one at a time; the last one attaches it again and
        its newest message is marked read.
        """
        self.detach()
        self.server.push("on_new_message", message=message(2000, LZY, PRIVATE, 1, "new"))
        self.assertEqual(self.server.sent(), [])  # not held, so not read
        self.client.load_newer(self.key)
        self.client.load_newer(self.key)
        (page,) = self.server.sent()
        self.assertEqual((page["after"], page["limit"]), (525, PAGE_SIZE))
        self.assertTrue(self.conversation.loading_newer)
        self.answer(page, range(526, 576), True)
        self.assertTrue(self.conversation.detached)
        self.assertEqual(self.server.sent(), [])
        self.client.load_newer(self.key)
        page = self.server.take("history")
        self.assertEqual(page["after"], 575)
        self.answer(page, [*range(576, 600), 2000], False)
        self.assertFalse(self.conversation.detached)
        self.assertEqual(self.server.take("mark_read")["message_id"], 2000)
        self.client.load_newer(self.key)
        self.assertEqual(self.server.sent(), [])

    def test_send_attaches_first(self) -> None:
        """
        Sending to a detached conversation first asks for its newest page,
        so that the message shows after it, then sends.
        """
        self.detach()
        self.client.send(self.key, "back to now")
        newest, send = self.server.sent()
        self.assertEqual(newest["type"], "history")
        self.assertEqual((newest.get("before"), newest.get("after")), (None, None))
        self.assertEqual(send["type"], "send_message")
        self.answer(newest, range(1001, 1051), True)
        self.assertFalse(self.conversation.detached)
        stored = message(1051, NCR, PRIVATE, 2, "back to now", client_msg_id="m1")
        self.server.reply(send, "on_new_message", message=stored)
        self.assertEqual(self.conversation.last_id, 1051)
        self.assertEqual(self.conversation.pending, [])

    def test_send_offline_attaches_on_reconnect(self) -> None:
        """
        A message written offline in a detached conversation goes out
        after its newest page is asked for, once back.
        """
        self.detach()
        self.server.drop()
        self.client.send(self.key, "later")
        server = self.session.reconnect()
        newest, send = [r for r in server.sent() if r["type"] in ("history", "send_message")]
        self.assertEqual((newest["type"], newest.get("after")), ("history", None))
        self.assertEqual(send["message"], "later")

    def test_catch_up_leaves_a_detached_conversation(self) -> None:
        """
        After a reconnect a detached conversation, even on screen, is not
        paged through from its window to now, nor reloaded: it keeps its
        window; the attached ones are caught up as before.
        """
        self.server.push("on_new_message", message=message(1100, LZY, ROOM, 1, "room"))
        self.detach()
        server = self.session.reconnect()
        self.assertEqual(self.history(server), [{"after": 1100, "limit": 100}])
        self.assertEqual(server.sent(), [])
        self.assertEqual(self.conversation.first_id, 476)
        self.assertTrue(self.conversation.detached)

    def test_stale_older_page_is_dropped(self) -> None:
        """
        An older page asked for before the window asked for earlier
        arrived (so, before what it replaced) is dropped when it arrives:
        it would leave a gap.
        """
        d = self.client.load_around(self.key, 500)
        self.client.load_older(self.key)
        before, after, older = self.server.sent()
        self.assertEqual(older["before"], 1000)
        self.answer(before, range(476, 501), True)
        self.answer(after, range(501, 526), True)
        self.assertTrue(self.successResultOf(d))
        self.assertFalse(self.conversation.loading_older)
        self.answer(older, range(950, 1000), True)
        self.assertEqual([m.id for m in self.conversation.messages], list(range(476, 526)))
        # The window's own older page is asked for as usual.
        self.client.load_older(self.key)
        self.assertEqual(self.server.take("history")["before"], 476)
