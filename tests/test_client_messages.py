"""
The client's side of version 2 messages (PROTOCOL.md section 10): what the
state does with edits, deletions, reactions, replies, mentions and typing,
what the session sends, and what the windows show and let the user do.
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import QPointF, Qt
from PyQt5.QtTest import QTest
from PyQt5.QtWidgets import QStyleOptionViewItem
from twisted.trial.unittest import SynchronousTestCase

from client.session import TYPING_EVERY, TYPING_IDLE, TYPING_SHOWN
from client.state import (
    PRIVATE,
    ROOM,
    Change,
    ClientState,
    Message,
    MessageChanged,
    Quote,
    Reaction,
    TypingChanged,
)
from client.ui.delegates import MessageDelegate
from client.ui.models import MentionsMeRole, MentionsRole
from client.ui.widgets import EmojiPicker, typing_line
from tests.qt_support import LZY, NCR, Session, login_info, member, message, room
from tests.test_client_ui import AppTestCase, rows

QUOTED = {"id": 5, "sender_id": 2, "sender_name": "lzy", "message": "the plan", "deleted": False}


class StateTests(SynchronousTestCase):
    """
    L{ClientState} applying the pushes and replies of section 10.
    """

    def setUp(self) -> None:
        self.state = ClientState()
        self.state.apply_push({"type": "login_info", **login_info()})
        self.state.apply_history(
            {
                "type": "history",
                "target_type": PRIVATE,
                "target_id": 2,
                "messages": [
                    message(5, LZY, PRIVATE, 1, "the plan"),
                    message(6, NCR, PRIVATE, 2, "sounds good", reply_to=QUOTED),
                ],
                "has_more": False,
            },
            "latest",
        )
        self.changes: list[Change] = []
        self.state.add_listener(self.changes.append)

    def held(self, message_id: int) -> Message:
        conversation = self.state.conversation((PRIVATE, 2))
        row = conversation.find(message_id)
        assert row is not None
        return conversation.messages[row]

    def test_message_fields(self) -> None:
        """
        A Message's version 2 fields are kept: the quote, mentions and
        reactions.
        """
        self.assertEqual(self.held(6).reply_to, Quote(5, 2, "lzy", "the plan", False))
        payload = message(
            7,
            LZY,
            PRIVATE,
            1,
            "@ncr",
            mentions=[1],
            reactions=[{"emoji": "👍", "user_ids": [1, 2]}],
        )
        parsed = Message.from_payload(payload)
        self.assertEqual((parsed.mentions, parsed.reactions), ((1,), (Reaction("👍", (1, 2)),)))

    def test_edit_replaces_and_requotes(self) -> None:
        """
        An edit pushed by lzy replaces the held message, and the quote of it
        that our reply holds takes the new text.
        """
        edited = message(5, LZY, PRIVATE, 1, "the new plan", edited_at="2026-11-24T06:01:00.000Z")
        self.state.apply_push({"type": "message_edited", "message": edited})
        self.assertEqual(self.held(5).text, "the new plan")
        self.assertEqual(self.held(5).edited_at, "2026-11-24T06:01:00.000Z")
        self.assertEqual(self.held(6).reply_to, Quote(5, 2, "lzy", "the new plan", False))
        self.assertEqual(
            [(c.row, c.message.id) for c in self.changes if isinstance(c, MessageChanged)],
            [(0, 5), (1, 6)],
        )

    def test_delete_of_a_message_to_us(self) -> None:
        """
        message_deleted names a private message to us by our own id: the
        message is found in its sender's conversation and becomes a
        tombstone; quotes of it say it was deleted.
        """
        self.state.apply_push(
            {"type": "message_deleted", "target_type": PRIVATE, "target_id": 1, "message_id": 5}
        )
        gone = self.held(5)
        self.assertEqual((gone.deleted, gone.text, gone.reactions), (True, "", ()))
        self.assertEqual(self.held(6).reply_to, Quote(5, 2, "lzy", "", True))

    def test_reactions_changed(self) -> None:
        """
        reactions_changed (the reply to our react, or a push) replaces the
        reactions; a message not held is ignored.
        """
        reactions = [{"emoji": "🎉", "user_ids": [2]}, {"emoji": "👍", "user_ids": [1, 2]}]
        self.state.apply_reply(
            {
                "type": "reactions_changed",
                "target_type": PRIVATE,
                "target_id": 2,
                "message_id": 6,
                "reactions": reactions,
            }
        )
        self.assertEqual(self.held(6).reactions, (Reaction("🎉", (2,)), Reaction("👍", (1, 2))))
        self.changes.clear()
        self.state.apply_push(
            {
                "type": "reactions_changed",
                "target_type": PRIVATE,
                "target_id": 2,
                "message_id": 99,
                "reactions": [],
            }
        )
        self.assertEqual(self.changes, [])

    def test_history_refreshes_held_messages(self) -> None:
        """
        A page holding a message already held replaces it when it changed
        meanwhile (an edit made while we were away).
        """
        self.state.apply_history(
            {
                "type": "history",
                "target_type": PRIVATE,
                "target_id": 2,
                "messages": [message(5, LZY, PRIVATE, 1, "", deleted=True)],
                "has_more": False,
            },
            "latest",
        )
        self.assertTrue(self.held(5).deleted)

    def test_mentions_count_apart(self) -> None:
        """
        A pushed message mentioning us counts as unread and as a mention;
        viewing the conversation clears both; login_info gives both.
        """
        self.state.apply_push(
            {"type": "on_new_message", "message": message(9, LZY, ROOM, 1, "@ncr hi", mentions=[1])}
        )
        self.state.apply_push(
            {"type": "on_new_message", "message": message(10, LZY, ROOM, 1, "hi all")}
        )
        contact = self.state.contact((ROOM, 1))
        self.assertEqual((contact.unread, contact.mentions), (2, 1))
        self.state.set_viewed((ROOM, 1))
        self.assertEqual(self.state.contact((ROOM, 1)).mentions, 0)
        self.state.set_viewed(None)
        unread = [
            {"target_type": 1, "target_id": 1, "count": 4, "mentions": 3, "last_message_id": 12}
        ]
        self.state.apply_push({"type": "login_info", **login_info(unread=unread)})
        self.assertEqual(self.state.contact((ROOM, 1)).mentions, 3)

    def test_typing(self) -> None:
        """
        A typing push shows its user as typing in the conversation (a
        private one is the sender's); typing false, or their next message,
        ends it.
        """
        self.state.apply_push(
            {"type": "typing", "target_type": PRIVATE, "target_id": 1, "user_id": 2, "typing": True}
        )
        self.state.apply_push(
            {"type": "typing", "target_type": ROOM, "target_id": 1, "user_id": 2, "typing": True}
        )
        self.assertEqual(
            [c for c in self.changes if isinstance(c, TypingChanged)],
            [TypingChanged((PRIVATE, 2), ("lzy",)), TypingChanged((ROOM, 1), ("lzy",))],
        )
        self.changes.clear()
        self.state.apply_push(
            {
                "type": "typing",
                "target_type": PRIVATE,
                "target_id": 1,
                "user_id": 2,
                "typing": False,
            }
        )
        self.state.apply_push(
            {"type": "on_new_message", "message": message(9, LZY, ROOM, 1, "done")}
        )
        self.assertEqual(
            [c for c in self.changes if isinstance(c, TypingChanged)],
            [TypingChanged((PRIVATE, 2), ()), TypingChanged((ROOM, 1), ())],
        )

    def test_last_own(self) -> None:
        """
        Up edits the newest of our messages that may still be edited.
        """
        conversation = self.state.conversation((PRIVATE, 2))
        last = conversation.last_own(1)
        self.assertEqual(last.id if last else None, 6)
        self.state.apply_push(
            {"type": "message_deleted", "target_type": PRIVATE, "target_id": 2, "message_id": 6}
        )
        self.assertIsNone(conversation.last_own(1))


class SessionTests(SynchronousTestCase):
    """
    What L{ChatClient} sends for section 10, on a clock.
    """

    def setUp(self) -> None:
        self.session = Session()
        self.session.log_in()
        self.server = self.session.server
        self.server.sent()

    def typing_sent(self) -> list[bool]:
        return [r["typing"] for r in self.server.sent() if r["type"] == "typing"]

    def test_reply_carries_its_id(self) -> None:
        """
        A reply goes out with reply_to, and shows its quote while pending.
        """
        quoted = Message.from_payload(message(5, LZY, PRIVATE, 1, "the plan"))
        pending = self.session.client.send((PRIVATE, 2), "yes", quoted)
        self.assertEqual(pending.reply_to, Quote(5, 2, "lzy", "the plan", False))
        request = self.server.take("send_message")
        self.assertEqual((request["reply_to"], request["message"]), (5, "yes"))

    def test_edit_delete_react(self) -> None:
        """
        edit, delete and react send their requests and apply the replies.
        """
        client = self.session.client
        client.edit(5, "fixed")
        self.assertEqual(
            self.server.take("edit_message"),
            {"type": "edit_message", "id": 2, "message_id": 5, "message": "fixed"},
        )
        client.delete(5)
        self.assertEqual(self.server.take("delete_message")["message_id"], 5)
        client.react(5, "👍", False)
        request = self.server.take("react")
        self.assertEqual((request["message_id"], request["emoji"], request["on"]), (5, "👍", False))
        self.assertRaises(ValueError, client.edit, 5, "   ")

    def test_typing_at_most_every_three_seconds(self) -> None:
        """
        Keystrokes send typing true at once and then at most every 3 s;
        5 s without one sends typing false; so does sending.
        """
        client, clock = self.session.client, self.session.clock
        client.typed((PRIVATE, 2))
        clock.advance(1)
        client.typed((PRIVATE, 2))
        self.assertEqual(self.typing_sent(), [True])
        clock.advance(TYPING_EVERY - 1)
        client.typed((PRIVATE, 2))
        self.assertEqual(self.typing_sent(), [True])
        clock.advance(TYPING_IDLE - 0.1)
        self.assertEqual(self.typing_sent(), [])
        clock.advance(0.1)
        self.assertEqual(self.typing_sent(), [False])
        client.typed((PRIVATE, 2))
        client.send((PRIVATE, 2), "hello")
        self.assertEqual(self.typing_sent(), [True, False])

    def test_typing_moves_with_the_conversation(self) -> None:
        """
        Typing in another conversation first stops typing in the last one.
        """
        client = self.session.client
        client.typed((PRIVATE, 2))
        client.typed((ROOM, 1))
        sent = [
            (r["target_type"], r["typing"]) for r in self.server.sent() if r["type"] == "typing"
        ]
        self.assertEqual(sent, [(PRIVATE, True), (PRIVATE, False), (ROOM, True)])

    def test_reconnect_refreshes_the_conversation_in_view(self) -> None:
        """
        After a reconnect, the conversation in view is caught up and its
        newest page fetched again, so that what changed while we were away
        (here, an edit and a deletion) replaces what we held.
        """
        session = self.session
        session.client.view((PRIVATE, 2))
        page = self.server.take("history")
        held = [message(5, LZY, PRIVATE, 1, "typo"), message(6, LZY, PRIVATE, 1, "oops")]
        self.server.reply(
            page, "history", target_type=0, target_id=2, messages=held, has_more=False
        )
        server = session.reconnect()
        caught_up = server.take("history")
        self.assertEqual(caught_up["after"], 6)
        server.reply(caught_up, "history", target_type=0, target_id=2, messages=[], has_more=False)
        newest = server.take("history")
        self.assertEqual((newest.get("after"), newest.get("before")), (None, None))
        changed = [
            message(5, LZY, PRIVATE, 1, "fixed", edited_at="2026-11-24T06:02:00.000Z"),
            message(6, LZY, PRIVATE, 1, "", deleted=True),
        ]
        server.reply(
            newest, "history", target_type=0, target_id=2, messages=changed, has_more=False
        )
        texts = [(m.text, m.deleted) for m in session.state.conversation((PRIVATE, 2)).messages]
        self.assertEqual(texts, [("fixed", False), ("", True)])

    def test_others_typing_ends_after_six_seconds(self) -> None:
        """
        Someone shows as typing until 6 s after their latest typing true.
        """
        state, clock = self.session.state, self.session.clock
        typing = {"target_type": ROOM, "target_id": 1, "user_id": 2, "typing": True}
        self.server.push("typing", **typing)
        clock.advance(TYPING_SHOWN - 1)
        self.server.push("typing", **typing)
        clock.advance(TYPING_SHOWN - 0.5)
        self.assertEqual(state.conversation((ROOM, 1)).typing, {2: "lzy"})
        clock.advance(0.5)
        self.assertEqual(state.conversation((ROOM, 1)).typing, {})


class WindowTests(AppTestCase):
    """
    The main window: editing, deleting, replying, reacting, mentions and
    typing as the user sees and does them.
    """

    def setUp(self) -> None:
        super().setUp()
        self.log_in(
            rooms=[room(1, "room1", member(1, "ncr") | {"role": "owner"}, member(2, "lzy"))]
        )
        self.main.show()
        self.key = (ROOM, 1)
        self.open(
            self.key,
            [
                message(5, LZY, ROOM, 1, "the plan", reactions=[{"emoji": "👍", "user_ids": [2]}]),
                message(6, NCR, ROOM, 1, "sounds good", reply_to=QUOTED),
                message(7, LZY, ROOM, 1, "hey @ncr", mentions=[1]),
            ],
            has_more=True,
        )
        self.model = self.main.timeline(self.key)

    def test_up_edits_the_last_own_message(self) -> None:
        """
        Up in the empty box puts our last message there; Enter sends the
        edit, and the reply shows "edited" with the edit time on hover.
        """
        compose = self.main.compose
        QTest.keyClick(compose, Qt.Key.Key_Up)
        self.assertEqual(compose.toPlainText(), "sounds good")
        self.assertEqual(self.main.send_button.text(), "Save")
        compose.setPlainText("sounds great")
        QTest.keyClick(compose, Qt.Key.Key_Return)
        request = self.server.take("edit_message")
        self.assertEqual((request["message_id"], request["message"]), (6, "sounds great"))
        self.assertEqual(compose.toPlainText(), "")
        edited = message(
            6, NCR, ROOM, 1, "sounds great", reply_to=QUOTED, edited_at="2026-11-24T06:05:00.000Z"
        )
        self.server.reply(request, "message_edited", message=edited)
        index = self.model.index(1)
        self.assertEqual(index.data(), "sounds great")
        self.assertIn("Edited", index.data(Qt.ItemDataRole.ToolTipRole))
        self.assertIn("edited", self.main.history_view.itemDelegate()._footer_text(index))

    def test_escape_cancels_an_edit(self) -> None:
        """
        Escape leaves the edit: the box empties and nothing is sent.
        """
        QTest.keyClick(self.main.compose, Qt.Key.Key_Up)
        QTest.keyClick(self.main.compose, Qt.Key.Key_Escape)
        self.assertEqual(self.main.compose.toPlainText(), "")
        self.assertTrue(self.main.compose_context.isHidden())
        self.assertEqual([r for r in self.server.sent() if r["type"] == "edit_message"], [])

    def test_delete_asks_first(self) -> None:
        """
        Delete asks for confirmation; then the message is a tombstone.
        """
        self.main.ask_delete(self.model.entry(1))
        self.assertEqual(self.questions[0][0], "Delete message")
        request = self.server.take("delete_message")
        self.server.reply(request, "message_deleted", target_type=ROOM, target_id=1, message_id=6)
        self.assertTrue(self.model.entry(1).deleted)

    def test_owner_may_delete_others(self) -> None:
        """
        As the room's owner we may delete others' messages there.
        """
        self.assertTrue(self.model.may_delete_others)

    def test_reply(self) -> None:
        """
        Reply shows what it answers above the box and sends reply_to.
        """
        self.main.start_reply(self.model.entry(2))
        self.assertFalse(self.main.compose_context.isHidden())
        self.assertIn("lzy", self.main.compose_context.label.text())
        self.main.compose.setPlainText("on my way")
        QTest.keyClick(self.main.compose, Qt.Key.Key_Return)
        self.assertEqual(self.server.take("send_message")["reply_to"], 7)
        self.assertTrue(self.main.compose_context.isHidden())

    def hit(self, row: int, part: str) -> Any:
        """
        @return: where the part C{part} of row C{row} is drawn, in the
            view's viewport.
        """
        view = self.main.history_view
        delegate = view.itemDelegate()
        assert isinstance(delegate, MessageDelegate)
        index = self.model.index(row)
        option = QStyleOptionViewItem()
        option.initFrom(view)
        option.rect = view.visualRect(index)
        layout = delegate._layout(option, index)
        rect = layout.quote if part == "quote" else layout.chips[0][0]
        self.assertEqual(
            delegate.hit(option, index, rect.center()),
            ("quote", 5) if part == "quote" else ("reaction", "👍"),
        )
        self.assertIsNone(delegate.hit(option, index, QPointF(-5, -5)))
        return (rect.center() + QPointF(option.rect.topLeft())).toPoint()

    def test_chip_toggles_our_reaction(self) -> None:
        """
        A click on a reaction chip adds ours, or takes it back.
        """
        self.app.processEvents()
        where = self.hit(0, "chip")
        QTest.mouseClick(self.main.history_view.viewport(), Qt.MouseButton.LeftButton, pos=where)
        request = self.server.take("react")
        self.assertEqual((request["emoji"], request["on"]), ("👍", True))

    def test_quote_click_scrolls_to_the_original(self) -> None:
        """
        A click on a quote marks the quoted message; one not held yet is
        looked for in older pages.
        """
        self.app.processEvents()
        where = self.hit(1, "quote")
        QTest.mouseClick(self.main.history_view.viewport(), Qt.MouseButton.LeftButton, pos=where)
        self.assertEqual(self.main.history_view.currentIndex().row(), 0)
        self.session.clock.advance(2)
        self.assertEqual(self.main.history_view.selectedIndexes(), [])

    def test_quote_of_an_older_message_loads_pages(self) -> None:
        """
        Jumping to a message older than those held asks for older pages
        until it arrives.
        """
        self.main.jump_to(2)
        page = self.server.take("history")
        self.assertEqual(page["before"], 5)
        self.server.reply(
            page,
            "history",
            target_type=ROOM,
            target_id=1,
            messages=[message(2, LZY, ROOM, 1, "long ago")],
            has_more=True,
        )
        self.assertEqual(self.main.history_view.currentIndex().row(), 0)

    def test_quote_of_a_message_far_back_loads_around_it(self) -> None:
        """
        A click on a quote of a message far back loads the window around
        it, in two requests, and marks it.
        """
        key = (PRIVATE, 2)
        self.main.select(key)
        newest = [message(i, LZY, PRIVATE, 1, f"m{i}") for i in range(900, 950)]
        newest[-1] = message(949, LZY, PRIVATE, 1, "as planned", reply_to=QUOTED)
        self.server.reply(
            self.server.take("history"),
            "history",
            target_type=PRIVATE,
            target_id=2,
            messages=newest,
            has_more=True,
        )
        self.app.processEvents()
        self.server.sent()
        self.model = self.main.timeline(key)
        where = self.hit(49, "quote")
        QTest.mouseClick(self.main.history_view.viewport(), Qt.MouseButton.LeftButton, pos=where)
        before, after = self.server.sent()
        self.assertEqual((before["before"], after["after"]), (6, 5))
        window = {"target_type": PRIVATE, "target_id": 2, "has_more": False}
        self.server.reply(
            before, "history", messages=[message(5, LZY, PRIVATE, 1, "the plan")], **window
        )
        self.server.reply(
            after,
            "history",
            messages=[message(i, LZY, PRIVATE, 1, f"m{i}") for i in range(6, 31)],
            **{**window, "has_more": True},
        )
        self.assertEqual(self.main.history_view.currentIndex().data(), "the plan")
        self.assertEqual(self.main.history_view.currentIndex().row(), 0)

    def test_picker_reacts(self) -> None:
        """
        The emoji picker offers the common emoji and any typed one, and
        refuses one with a space.
        """
        self.main.pick_reaction(self.model.entry(2), self.main.pos())
        [picker] = self.main.findChildren(EmojiPicker)
        picker.field.setText("a b")
        QTest.keyClick(picker.field, Qt.Key.Key_Return)
        self.assertEqual([r for r in self.server.sent() if r["type"] == "react"], [])
        picker.field.setText("+1")
        QTest.keyClick(picker.field, Qt.Key.Key_Return)
        request = self.server.take("react")
        self.assertEqual((request["message_id"], request["emoji"], request["on"]), (7, "+1", True))

    def test_mentions_are_marked(self) -> None:
        """
        A message mentioning us is marked; a conversation with unread
        mentions shows an "@" badge.
        """
        self.assertEqual(
            [self.model.index(r).data(MentionsMeRole) for r in range(3)], [False, False, True]
        )
        self.server.push(
            "on_new_message", message=message(8, LZY, PRIVATE, 1, "@ncr?", mentions=[1])
        )
        self.assertEqual(rows(self.main.friends_model, MentionsRole), [1, 0])
        self.assertEqual(self.chat.notifier.last[0], "lzy mentioned you")

    def test_mention_completion(self) -> None:
        """
        Typing "@l" offers the members' names; picking one completes it.
        """
        compose = self.main.compose
        compose.setFocus()
        QTest.keyClicks(compose, "hi @l")
        self.assertEqual(compose.completer.currentCompletion(), "lzy")
        compose.completer.activated[str].emit("lzy")
        self.assertEqual(compose.toPlainText(), "hi @lzy ")

    def test_typing_line(self) -> None:
        """
        Who is typing shows under the conversation, and typing in the box
        tells the server.
        """
        self.server.push("typing", target_type=ROOM, target_id=1, user_id=2, typing=True)
        self.assertEqual(self.main.typing_label.text(), "lzy is typing…")
        self.assertEqual(typing_line(("a", "b")), "a and b are typing…")
        self.assertEqual(typing_line(("a", "b", "c")), "Several people are typing…")
        QTest.keyClicks(self.main.compose, "x")
        self.assertEqual(self.server.take("typing")["typing"], True)
