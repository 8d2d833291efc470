"""
L{ClientState}: every reply and push of PROTOCOL.md applied, and what its
listeners are told, without Qt.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from client.state import (
    OFFLINE,
    ONLINE,
    PRIVATE,
    ROOM,
    Change,
    ClientState,
    ConnectionChanged,
    ContactAdded,
    ContactChanged,
    ContactRemoved,
    Entry,
    FriendRequestsChanged,
    HistoryStateChanged,
    MembersChanged,
    Message,
    MessageChanged,
    MessageOutsideWindow,
    MessagesInserted,
    Notice,
    PendingAdded,
    PendingChanged,
    PendingRemoved,
    ReadUpToChanged,
    Reset,
    SignedOut,
    TimelineReset,
    parse_time,
)
from tests.qt_support import LZY, NCR, WH, login_info, member, message, room, user


class StateTestCase(SynchronousTestCase):
    """
    A state logged in as ncr(1) with friends lzy(2) and wh(3) and room1.
    """

    def setUp(self) -> None:
        self.state = ClientState()
        self.state.apply_push({"type": "login_info", **login_info()})
        self.changes: list[Change] = []
        self.state.add_listener(self.changes.append)

    def push(self, kind: str, **fields: Any) -> None:
        self.state.apply_push({"type": kind, **fields})

    def reply(self, kind: str, **fields: Any) -> None:
        self.state.apply_reply({"type": kind, **fields})

    def of(self, kind: type[Change]) -> list[Any]:
        return [c for c in self.changes if isinstance(c, kind)]


class LoginInfoTests(StateTestCase):
    """
    login_info sets up the session.
    """

    def test_lists(self) -> None:
        """
        login_info fills the user, the friends with presence and the rooms
        with their members.
        """
        state = self.state
        self.assertEqual(state.user and state.user.username, "ncr")
        self.assertEqual(
            [(c.name, c.online) for c in state.contacts(PRIVATE)], [("lzy", True), ("wh", False)]
        )
        (room1,) = state.contacts(ROOM)
        self.assertEqual((room1.name, room1.id, room1.detail), ("room1", 1, "2 members, 2 online"))
        self.assertTrue(room1.online)

    def test_unread_and_requests(self) -> None:
        """
        login_info's unread counts and friend requests are kept, and the
        listeners hear of a reset.
        """
        self.push(
            "login_info",
            **login_info(
                friend_requests=[user(4, "tr")],
                unread=[
                    {"target_type": 0, "target_id": 3, "count": 4, "last_message_id": 9},
                    {"target_type": 1, "target_id": 1, "count": 1, "last_message_id": 8},
                ],
            ),
        )
        self.assertEqual([c.unread for c in self.state.contacts(PRIVATE)], [0, 4])
        self.assertEqual(self.state.contacts(ROOM)[0].unread, 1)
        self.assertEqual(self.of(FriendRequestsChanged)[-1].requests[0].username, "tr")
        self.assertIsInstance(self.changes[0], Reset)

    def test_again_keeps_held_conversations(self) -> None:
        """
        login_info after a reconnect keeps the timelines of friends and rooms
        still there and forgets the others.
        """
        self.push("on_new_message", message=message(5, LZY, 0, 1))
        self.push("on_new_message", message=message(6, LZY, 1, 1))
        self.push("login_info", **login_info(rooms=[]))
        self.assertEqual([m.id for m in self.state.conversation((PRIVATE, 2)).messages], [5])
        self.assertNotIn((ROOM, 1), self.state.conversations)
        self.assertEqual(self.state.catch_up_points(), [((PRIVATE, 2), 5)])


class MessageTests(StateTestCase):
    """
    on_new_message, history pages and pending sends.
    """

    def test_private_message_from_friend(self) -> None:
        """
        A pushed message from lzy lands in lzy's conversation, counts as
        unread and is reported live.
        """
        self.push("on_new_message", message=message(5, LZY, 0, 1, "hi"))
        (inserted,) = self.of(MessagesInserted)
        self.assertEqual((inserted.key, inserted.row, inserted.live), ((PRIVATE, 2), 0, True))
        self.assertEqual(inserted.messages[0].text, "hi")
        self.assertEqual(self.of(ContactChanged)[-1].contact.unread, 1)

    def test_own_message_reply(self) -> None:
        """
        The reply to our own send goes to the recipient's conversation, is
        not live and is not unread.
        """
        self.reply("on_new_message", message=message(5, NCR, 0, 3, "yo"))
        (inserted,) = self.of(MessagesInserted)
        self.assertEqual((inserted.key, inserted.live), ((PRIVATE, 3), False))
        self.assertEqual(self.of(ContactChanged), [])

    def test_duplicate_is_ignored(self) -> None:
        """
        A message already held is not inserted again.
        """
        self.push("on_new_message", message=message(5, LZY, 1, 1))
        self.push("on_new_message", message=message(5, LZY, 1, 1))
        self.assertEqual(len(self.of(MessagesInserted)), 1)
        self.assertEqual(len(self.state.conversation((ROOM, 1)).messages), 1)

    def test_out_of_order_messages_are_sorted(self) -> None:
        """
        A message older than the newest held is inserted at its place.
        """
        self.push("on_new_message", message=message(9, LZY, 1, 1))
        self.push("on_new_message", message=message(7, LZY, 1, 1))
        self.assertEqual([c.row for c in self.of(MessagesInserted)], [0, 0])
        self.assertEqual([m.id for m in self.state.conversation((ROOM, 1)).messages], [7, 9])

    def test_viewed_conversation_not_unread(self) -> None:
        """
        Viewing a conversation clears its unread count, and its new
        messages are not counted.
        """
        self.push("on_new_message", message=message(5, LZY, 0, 1))
        self.state.set_viewed((PRIVATE, 2))
        self.assertEqual(self.state.contact((PRIVATE, 2)).unread, 0)
        self.push("on_new_message", message=message(6, LZY, 0, 1))
        self.assertEqual(self.state.contact((PRIVATE, 2)).unread, 0)

    def test_history_pages(self) -> None:
        """
        The newest page opens the conversation; an older page goes before
        it and says whether more exist.
        """
        key = (ROOM, 1)
        page = {"target_type": 1, "target_id": 1, "has_more": True}
        self.state.apply_history({**page, "messages": [message(8, LZY, 1, 1)]}, "latest")
        conversation = self.state.conversation(key)
        self.assertTrue(conversation.opened)
        self.assertTrue(conversation.has_older)
        older = [message(3, WH, 1, 1), message(5, LZY, 1, 1, kind="system")]
        self.state.apply_history({**page, "messages": older, "has_more": False}, "before")
        self.assertFalse(conversation.has_older)
        self.assertEqual([m.id for m in conversation.messages], [3, 5, 8])
        self.assertTrue(conversation.messages[1].system)
        inserted = self.of(MessagesInserted)[-1]
        self.assertEqual((inserted.row, len(inserted.messages), inserted.live), (0, 2, False))

    def test_history_of_unknown_conversation_is_ignored(self) -> None:
        """
        A page for a conversation we are not in changes nothing.
        """
        self.state.apply_history(
            {"target_type": 1, "target_id": 9, "messages": [message(1, LZY, 1, 9)]}, "latest"
        )
        self.assertNotIn((ROOM, 9), self.state.conversations)

    def test_pending_settled_by_reply(self) -> None:
        """
        A pending message sits after the stored ones until its stored copy
        arrives; then it is replaced.
        """
        key = (PRIVATE, 2)
        self.push("on_new_message", message=message(5, LZY, 0, 1))
        pending = self.state.add_pending(key, "mine", "m1")
        self.assertEqual(self.of(PendingAdded), [PendingAdded(key, 1, pending)])
        self.assertEqual(self.state.outbox(), [pending])
        self.reply("on_new_message", message=message(6, NCR, 0, 2, "mine", client_msg_id="m1"))
        self.assertEqual(self.of(PendingRemoved), [PendingRemoved(key, 2)])
        conversation = self.state.conversation(key)
        self.assertEqual([m.text for m in conversation.timeline()], ["hello", "mine"])
        self.assertEqual(self.state.outbox(), [])

    def test_pending_settled_by_history(self) -> None:
        """
        A pending message whose stored copy comes back in a history page
        (its reply was lost) is settled too.
        """
        key = (PRIVATE, 2)
        self.state.add_pending(key, "mine", "m1")
        self.state.apply_history(
            {
                "target_type": 0,
                "target_id": 2,
                "messages": [message(6, NCR, 0, 2, "mine", client_msg_id="m1")],
                "has_more": False,
            },
            "after",
        )
        self.assertEqual(self.state.conversation(key).pending, [])

    def test_failed_pending(self) -> None:
        """
        A refused pending message is marked with the reason and leaves the
        outbox.
        """
        self.state.add_pending((PRIVATE, 2), "a", "m1")
        self.state.add_pending((PRIVATE, 2), "b", "m2")
        self.state.fail_pending("m1", "No.")
        (changed,) = self.of(PendingChanged)
        self.assertEqual((changed.row, changed.pending.error), (0, "No."))
        self.assertEqual([p.text for p in self.state.outbox()], ["b"])

    def test_outbox_follows_pending(self) -> None:
        """
        The outbox is what the timelines hold pending: a conversation that
        is forgotten (the friend removed us) takes its pending messages
        with it.
        """
        self.state.add_pending((PRIVATE, 2), "a", "m1")
        self.state.add_pending((ROOM, 1), "b", "m2")
        self.state.add_pending((PRIVATE, 2), "c", "m3")
        self.assertEqual(sorted(p.client_msg_id for p in self.state.outbox()), ["m1", "m2", "m3"])
        self.push("friend_removed", user_id=2)
        self.assertEqual([p.client_msg_id for p in self.state.outbox()], ["m2"])

    def test_read_marker_announced(self) -> None:
        """
        Moving the read marker is a change listeners hear of, once.
        """
        self.state.set_read_up_to((PRIVATE, 2), 7)
        self.state.set_read_up_to((PRIVATE, 2), 7)
        self.assertEqual(self.of(ReadUpToChanged), [ReadUpToChanged((PRIVATE, 2), 7)])
        self.assertEqual(self.state.conversation((PRIVATE, 2)).read_up_to, 7)

    def test_stop_loading_announced(self) -> None:
        """
        When the connection goes, every page on its way is announced as no
        longer loading.
        """
        self.state.set_loading_older((PRIVATE, 2), True)
        self.state.set_loading_older((ROOM, 1), True)
        self.changes.clear()
        self.state.stop_loading()
        self.assertEqual(
            {(c.key, c.loading_older) for c in self.of(HistoryStateChanged)},
            {((PRIVATE, 2), False), ((ROOM, 1), False)},
        )
        self.assertFalse(self.state.conversation((PRIVATE, 2)).loading_older)

    def test_time_is_utc(self) -> None:
        """
        A message's time is read as UTC with milliseconds.
        """
        moment = parse_time("2020-01-02T12:46:20.123Z")
        self.assertEqual((moment.hour, moment.minute, moment.microsecond), (12, 46, 123000))
        self.assertEqual(moment.utcoffset().total_seconds(), 0)  # type: ignore[union-attr]


class PushTests(StateTestCase):
    """
    The other pushes of PROTOCOL.md section 6.
    """

    def test_friend_presence(self) -> None:
        """
        friend_on_off_line changes the friend's marker, the rooms shared
        with them, and says so in a notice.
        """
        self.push("friend_on_off_line", user_id=2, username="lzy", online=False)
        self.assertFalse(self.state.contact((PRIVATE, 2)).online)
        self.assertFalse(self.state.rooms[1].members[2].online)
        self.assertFalse(self.state.contact((ROOM, 1)).online)
        self.assertIn(Notice("lzy is offline."), self.changes)
        self.assertEqual(len(self.of(MembersChanged)), 1)

    def test_room_presence(self) -> None:
        """
        room_user_on_off_line changes the member's marker in that room.
        """
        self.push("room_user_on_off_line", room_id=1, user_id=2, online=False)
        (changed,) = self.of(MembersChanged)
        self.assertEqual(
            [(m.username, m.online) for m in changed.members], [("ncr", True), ("lzy", False)]
        )

    def test_incoming_friend_request_then_accept(self) -> None:
        """
        An incoming request is listed until we accept it; the requester then
        joins the friend list.
        """
        self.push("incoming_friend_request", user=user(4, "tr"))
        self.assertEqual(list(self.state.requests), [4])
        self.assertIn(Notice("tr(4) wants to be your friend."), self.changes)
        self.reply("add_friend_result", friend=member(4, "tr"), accepted=True)
        self.assertEqual(self.state.requests, {})
        self.assertEqual(self.of(ContactAdded)[0].contact.name, "tr")

    def test_declined_request(self) -> None:
        """
        Declining removes the request and adds no friend.
        """
        self.push("incoming_friend_request", user=user(4, "tr"))
        self.reply("add_friend_result", friend=member(4, "tr"), accepted=False)
        self.assertEqual(self.state.requests, {})
        self.assertNotIn(4, self.state.friends)

    def test_our_request_accepted(self) -> None:
        """
        add_friend_result pushed when someone accepts our request adds them
        with a notice.
        """
        self.push("add_friend_result", friend=member(4, "tr"), accepted=True)
        self.assertIn(4, self.state.friends)
        self.assertIn(Notice("tr accepted your friend request."), self.changes)

    def test_friend_removed(self) -> None:
        """
        friend_removed drops the friend, their conversation and its pending
        messages.
        """
        self.push("on_new_message", message=message(5, LZY, 0, 1))
        self.state.add_pending((PRIVATE, 2), "x", "m1")
        self.push("friend_removed", user_id=2)
        self.assertEqual(self.of(ContactRemoved), [ContactRemoved((PRIVATE, 2))])
        self.assertNotIn((PRIVATE, 2), self.state.conversations)
        self.assertEqual(self.state.outbox(), [])

    def test_added_to_room(self) -> None:
        """
        join_successful pushed (a friend added us) adds the room with a
        notice; create_successful as a reply adds it silently.
        """
        self.push("join_successful", room=room(2, "room2", member(2, "lzy"), member(1, "ncr")))
        self.reply("create_successful", room=room(3, "room3", member(1, "ncr")))
        self.assertEqual([c.contact.name for c in self.of(ContactAdded)], ["room2", "room3"])
        self.assertEqual(self.of(Notice), [Notice("You were added to room room2(2).")])

    def test_someone_in_and_out(self) -> None:
        """
        someone_inroom and someone_outroom change the member list.
        """
        self.push("someone_inroom", room_id=1, user=member(3, "wh", online=False))
        self.assertEqual(list(self.state.rooms[1].members), [1, 2, 3])
        self.push("someone_outroom", room_id=1, user_id=2)
        self.assertEqual(list(self.state.rooms[1].members), [1, 3])
        self.assertEqual(self.state.contact((ROOM, 1)).detail, "2 members, 1 online")
        self.assertEqual(len(self.of(MembersChanged)), 2)

    def test_me_out_of_room(self) -> None:
        """
        me_outroom removes the room and its conversation.
        """
        self.state.set_viewed((ROOM, 1))
        self.reply("me_outroom", room_id=1)
        self.assertEqual(self.of(ContactRemoved), [ContactRemoved((ROOM, 1))])
        self.assertIsNone(self.state.viewed)

    def test_server_kick_notice(self) -> None:
        """
        server_kick is told as a notice saying why.
        """
        self.push("server_kick", reason="shutdown")
        self.push("server_kick", reason="something_else")
        self.assertEqual(
            [n.text for n in self.of(Notice)],
            [
                "The server is shutting down; reconnecting when it is back.",
                "The server closed the connection (something_else).",
            ],
        )

    def test_unknown_push_ignored(self) -> None:
        """
        A push type the client does not know changes nothing.
        """
        self.push("something_new", x=1)
        self.assertEqual(self.changes, [])

    def test_connection_and_sign_out(self) -> None:
        """
        Connection changes are reported once each; signing out forgets
        everything.
        """
        self.state.set_connection(ONLINE)
        self.state.set_connection(ONLINE)
        self.state.sign_out("Bye.")
        self.assertEqual(
            self.of(ConnectionChanged), [ConnectionChanged(ONLINE), ConnectionChanged(OFFLINE)]
        )
        self.assertEqual(self.of(SignedOut), [SignedOut("Bye.")])
        self.assertIsNone(self.state.user)
        self.assertEqual((self.state.friends, self.state.rooms), ({}, {}))


def page(ids: Any, has_more: bool, key: tuple[int, int] = (ROOM, 1)) -> dict[str, Any]:
    """
    @return: a C{history} reply of C{key} holding lzy's messages C{ids}.
    """
    messages = [message(i, LZY, key[0], 1 if key[0] == PRIVATE else key[1], f"m{i}") for i in ids]
    return {
        "type": "history",
        "target_type": key[0],
        "target_id": key[1],
        "messages": messages,
        "has_more": has_more,
    }


class WindowTests(StateTestCase):
    """
    A window of messages far back: the conversation detached from its
    newest messages, and attached again.
    """

    key = (ROOM, 1)

    def setUp(self) -> None:
        super().setUp()
        self.state.set_viewed(self.key)
        self.state.apply_history(page(range(1000, 1050), True), "latest")
        self.conversation = self.state.conversation(self.key)
        self.changes.clear()

    def ids(self) -> list[int]:
        return [m.id for m in self.conversation.messages]

    def detach(self) -> None:
        """
        Hold the window around message 500: 476-500 and 501-525.
        """
        self.state.apply_window(page(range(476, 501), True), page(range(501, 526), True))

    def test_window_replaces_what_is_held(self) -> None:
        """
        A window around a message far back replaces what is held, in one
        reset of the timeline: the conversation is detached, with older
        and newer messages on the server.
        """
        generation = self.conversation.generation
        self.detach()
        self.assertEqual(self.ids(), list(range(476, 526)))
        self.assertTrue(self.conversation.detached)
        self.assertTrue(self.conversation.has_older)
        self.assertGreater(self.conversation.generation, generation)
        (reset,) = self.of(TimelineReset)
        self.assertEqual(reset.key, self.key)
        self.assertEqual([e.id for e in reset.entries], self.ids())  # type: ignore[union-attr]
        self.assertEqual((reset.has_older, reset.has_newer), (True, True))
        self.assertEqual(self.of(MessagesInserted), [])
        state = self.of(HistoryStateChanged)[-1]
        self.assertEqual((state.has_older, state.has_newer), (True, True))
        self.assertEqual(self.state.catch_up_points(), [])

    def test_window_at_the_start(self) -> None:
        """
        A window reaching the conversation's first message has nothing
        older.
        """
        self.state.apply_window(page(range(3, 9), False), page(range(9, 34), True))
        self.assertFalse(self.conversation.has_older)
        self.assertTrue(self.conversation.detached)

    def test_overlapping_window_is_merged(self) -> None:
        """
        A window that overlaps what is held makes one run with it: no
        reset, still attached.
        """
        self.state.apply_window(page(range(990, 1001), True), page(range(1001, 1026), True))
        self.assertEqual(self.ids(), list(range(990, 1050)))
        self.assertFalse(self.conversation.detached)
        self.assertTrue(self.conversation.has_older)
        self.assertEqual(self.of(TimelineReset), [])
        (inserted,) = self.of(MessagesInserted)
        self.assertEqual((inserted.row, len(inserted.messages)), (0, 10))

    def test_pending_stays_after_a_reset(self) -> None:
        """
        A message on its way stays at the end of the timeline through the
        reset, and is settled by its stored copy in a later page.
        """
        self.state.add_pending(self.key, "mine", "c1")
        self.detach()
        (reset,) = self.of(TimelineReset)
        self.assertEqual(reset.entries[-1], self.conversation.pending[0])
        self.assertEqual(len(reset.entries), 51)

    def test_pushed_message_is_not_held_and_is_unread(self) -> None:
        """
        A message pushed to a detached conversation, even the one on
        screen, is not held (that would leave a gap): it counts as unread,
        and the listeners hear of it apart.
        """
        self.detach()
        self.changes.clear()
        self.push("on_new_message", message=message(2000, LZY, ROOM, 1, "new", mentions=[1]))
        self.assertFalse(self.conversation.holds(2000))
        self.assertEqual(self.of(MessagesInserted), [])
        (outside,) = self.of(MessageOutsideWindow)
        self.assertEqual((outside.key, outside.message.id), (self.key, 2000))
        self.assertEqual((self.conversation.unread, self.conversation.mentions), (1, 1))
        self.assertEqual(self.of(ContactChanged)[-1].contact.unread, 1)
        # Viewing it again does not make those seen.
        self.state.set_viewed(self.key)
        self.assertEqual(self.conversation.unread, 1)

    def test_our_message_beyond_the_window_settles_its_pending(self) -> None:
        """
        The stored copy of our own message, beyond the window, is not held
        either, but it is no longer pending.
        """
        self.detach()
        self.state.add_pending(self.key, "mine", "c1")
        self.reply("on_new_message", message=message(2000, NCR, ROOM, 1, "mine", "c1"))
        self.assertEqual(self.conversation.pending, [])
        self.assertFalse(self.conversation.holds(2000))
        self.assertEqual(self.of(MessageOutsideWindow), [])
        self.assertEqual(self.conversation.unread, 0)

    def test_edits_apply_to_the_window(self) -> None:
        """
        Edits of messages held in a window apply as anywhere.
        """
        self.detach()
        self.push("message_edited", message=message(480, LZY, ROOM, 1, "fixed"))
        (changed,) = self.of(MessageChanged)
        self.assertEqual((changed.row, changed.message.text), (4, "fixed"))

    def test_pages_after_attach_again(self) -> None:
        """
        Pages after the window extend it; the last one (nothing more)
        attaches the conversation again, and its unread messages on screen
        are seen.
        """
        self.detach()
        self.push("on_new_message", message=message(2000, LZY, ROOM, 1, "new"))
        self.state.set_loading_newer(self.key, True)
        self.state.apply_history(page(range(526, 576), True), "after")
        self.assertTrue(self.conversation.detached)
        self.assertFalse(self.conversation.loading_newer)
        self.assertEqual(self.conversation.unread, 1)
        self.state.apply_history(page([*range(576, 600), 2000], False), "after")
        self.assertFalse(self.conversation.detached)
        self.assertEqual(self.ids(), [*range(476, 600), 2000])
        self.assertEqual(self.conversation.unread, 0)
        self.assertEqual(self.of(ContactChanged)[-1].contact.unread, 0)
        state = self.of(HistoryStateChanged)[-1]
        self.assertEqual((state.has_newer, state.loading_newer), (False, False))
        self.assertEqual(self.state.catch_up_points(), [(self.key, 2000)])

    def test_last_page_before_a_push_does_not_attach(self) -> None:
        """
        A last page after the window that ends before a message pushed
        meanwhile does not attach the conversation: that message is still
        to come.
        """
        self.detach()
        self.push("on_new_message", message=message(2000, LZY, ROOM, 1, "new"))
        self.state.apply_history(page(range(526, 576), False), "after")
        self.assertTrue(self.conversation.detached)
        self.state.apply_history(page([2000], False), "after")
        self.assertFalse(self.conversation.detached)

    def test_newest_page_attaches_again(self) -> None:
        """
        The newest page loaded again replaces the window: attached, with
        the older messages still on the server.
        """
        self.detach()
        self.changes.clear()
        self.state.apply_history(page(range(1951, 2001), True), "latest")
        self.assertEqual(self.ids(), list(range(1951, 2001)))
        self.assertFalse(self.conversation.detached)
        self.assertTrue(self.conversation.has_older)
        (reset,) = self.of(TimelineReset)
        self.assertEqual((reset.has_older, reset.has_newer), (True, False))

    def test_newest_page_of_an_attached_conversation_is_merged(self) -> None:
        """
        The newest page loaded again while attached (after a reconnect)
        adds to what is held, which reaches further back.
        """
        self.state.apply_history(page(range(1, 1000), False), "before")
        self.changes.clear()
        self.state.apply_history(page(range(1010, 1060), True), "latest")
        self.assertEqual(self.ids(), list(range(1, 1060)))
        self.assertFalse(self.conversation.has_older)
        self.assertEqual(self.of(TimelineReset), [])

    def test_reconnect_keeps_unread_of_a_detached_conversation(self) -> None:
        """
        login_info's unread count of the detached conversation on screen
        is kept: its newest messages are not seen.
        """
        self.detach()
        unread = [{"target_type": 1, "target_id": 1, "count": 3, "last_message_id": 9}]
        self.push("login_info", **login_info(unread=unread))
        self.assertEqual(self.conversation.unread, 3)

    def test_stop_loading_newer(self) -> None:
        """
        A newer page on its way when the connection goes is no longer
        loading.
        """
        self.detach()
        self.state.set_loading_newer(self.key, True)
        self.state.stop_loading()
        self.assertFalse(self.conversation.loading_newer)
        self.assertFalse(self.of(HistoryStateChanged)[-1].loading_newer)


def _messages(ids: list[int]) -> list[dict[str, Any]]:
    return [message(i, LZY if i % 2 else NCR, 1, 1, f"m{i}") for i in ids]


class TimelineEventsTests(SynchronousTestCase):
    """
    The changes a state reports replay exactly into its timelines: a model
    that applies them holds the same rows.
    """

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(
            st.one_of(
                st.tuples(st.just("insert"), st.lists(st.integers(1, 40), max_size=6)),
                st.tuples(st.just("send"), st.integers(1, 40)),
                st.tuples(st.just("fail"), st.integers(0, 5)),
                st.tuples(st.just("window"), st.integers(1, 40)),
                st.tuples(st.just("latest"), st.just(0)),
            ),
            max_size=25,
        )
    )
    def test_replayed_changes_match_timeline(self, operations: list[tuple[str, Any]]) -> None:
        """
        Any mix of inserts (in any order, with duplicates), sends, settles,
        refusals, windows far back and newest pages replays into the
        conversation's timeline.
        """
        state = ClientState()
        state.apply_push({"type": "login_info", **login_info()})
        mirror: list[Entry] = []

        def apply(change: Change) -> None:
            if isinstance(change, MessagesInserted):
                mirror[change.row : change.row] = change.messages
            elif isinstance(change, PendingAdded):
                self.assertEqual(change.row, len(mirror))
                mirror.append(change.pending)
            elif isinstance(change, PendingRemoved):
                del mirror[change.row]
            elif isinstance(change, PendingChanged):
                mirror[change.row] = change.pending
            elif isinstance(change, MessageChanged):
                mirror[change.row] = change.message
            elif isinstance(change, TimelineReset):
                mirror[:] = change.entries

        state.add_listener(apply)
        sent: list[tuple[str, int]] = []
        for op, arg in operations:
            if op == "insert":
                state.apply_history(
                    {"target_type": 1, "target_id": 1, "messages": _messages(arg)}, "after"
                )
            elif op == "send":
                client_msg_id = f"c{len(sent)}"
                state.add_pending((ROOM, 1), "mine", client_msg_id)
                sent.append((client_msg_id, 100 + arg))
            elif op == "fail" and sent:
                state.fail_pending(sent[arg % len(sent)][0], "No.")
            elif op == "window":
                older = {"target_type": 1, "target_id": 1, "has_more": arg > 4}
                newer = {**older, "has_more": arg < 36}
                older["messages"] = _messages(list(range(max(1, arg - 4), arg + 1)))
                newer["messages"] = _messages(list(range(arg + 1, min(40, arg + 4) + 1)))
                state.apply_window(older, newer)
            elif op == "latest":
                state.apply_history(
                    {"target_type": 1, "target_id": 1, "messages": _messages(list(range(36, 41)))},
                    "latest",
                )
            if op == "insert" and sent and arg:
                # The server acknowledges the oldest send in between.
                client_msg_id, message_id = sent.pop(0)
                state.apply_reply(
                    {
                        "type": "on_new_message",
                        "message": message(message_id, NCR, 1, 1, "mine", client_msg_id),
                    }
                )
        conversation = state.conversation((ROOM, 1))
        self.assertEqual(mirror, conversation.timeline())
        ids = [m.id for m in conversation.messages]
        self.assertEqual(ids, sorted(set(ids)))
        self.assertTrue(all(isinstance(m, Message) for m in conversation.messages))
