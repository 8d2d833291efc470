"""
The client's side of room topics, roles and moderation (PROTOCOL.md
section 12): what the state does with C{room_updated}, C{member_role} and
C{me_outroom} C{kicked}, what the session sends, and what the windows show
and let the owner, a moderator and a plain member do.
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QContextMenuEvent
from PyQt5.QtTest import QTest
from PyQt5.QtWidgets import QApplication, QMenu, QMessageBox, QStyleOptionViewItem
from twisted.trial.unittest import SynchronousTestCase

from client import texts
from client.protocol import ChatError
from client.state import (
    MEMBER,
    MODERATOR,
    OWNER,
    ROOM,
    BansChanged,
    Change,
    ClientState,
    ContactRemoved,
    MembersChanged,
    Notice,
    Room,
    TopicChanged,
    User,
)
from client.ui.delegates import ContactDelegate, MemberDelegate, role_badge
from client.ui.main_window import MainWindow
from client.ui.models import (
    DetailRole,
    JoinedRole,
    RoleRole,
    SectionRole,
    TopicRole,
)
from client.ui.rooms import NO_TOPIC
from client.ui.widgets import JoinRoomPanel, MemberPanel
from tests.qt_support import LZY, NCR, Session, check_model, login_info, member, message, room
from tests.test_client_ui import AppTestCase, click, rows

Payload = dict[str, Any]


def with_role(payload: Payload, role: str) -> Payload:
    """
    @return: the C{Member} object C{payload} with C{role}.
    """
    return payload | {"role": role}


def room1(me: str = OWNER, topic: str = "") -> Payload:
    """
    @return: room1 with ncr(1) as C{me}, and the others around: with ncr
        the owner, lzy(2) moderates and wh(3) and tr(4) are plain members;
        otherwise lzy owns it and wh moderates.
    """
    if me == OWNER:
        lzy, wh = MODERATOR, MEMBER
    else:
        lzy, wh = OWNER, MODERATOR
    members = [
        with_role(member(1, "ncr"), me),
        with_role(member(2, "lzy"), lzy),
        with_role(member(3, "wh", online=False), wh),
        with_role(member(4, "tr"), MEMBER),
    ]
    return room(1, "room1", *members) | {"topic": topic}


class RoomStateTests(SynchronousTestCase):
    """
    L{ClientState} applying the pushes and replies of section 12.
    """

    def setUp(self) -> None:
        self.state = ClientState()
        self.state.apply_push({"type": "login_info", **login_info(rooms=[room1(topic="plans")])})
        self.changes: list[Change] = []
        self.state.add_listener(self.changes.append)

    def push(self, kind: str, **fields: Any) -> None:
        self.state.apply_push({"type": kind, **fields})

    def of(self, kind: type[Change]) -> list[Any]:
        return [c for c in self.changes if isinstance(c, kind)]

    def test_room_objects_carry_topic_and_roles(self) -> None:
        """
        A Room keeps its topic (C{""} when absent) and each Member its role.
        """
        self.assertEqual(self.state.rooms[1].topic, "plans")
        self.assertEqual(
            [m.role for m in self.state.rooms[1].members.values()],
            [OWNER, MODERATOR, MEMBER, MEMBER],
        )
        self.assertEqual(Room.from_payload(room(2, "room2")).topic, "")

    def test_room_updated_changes_the_topic(self) -> None:
        """
        room_updated sets the topic and says so; the same topic again, or a
        room we are not in, changes nothing.
        """
        self.push("room_updated", room=room1(topic="new plans"))
        self.assertEqual(self.state.rooms[1].topic, "new plans")
        self.assertEqual(self.of(TopicChanged), [TopicChanged(1, "new plans")])
        self.changes.clear()
        self.push("room_updated", room=room1(topic="new plans"))
        self.push("room_updated", room=room(7, "elsewhere") | {"topic": "x"})
        self.assertEqual(self.changes, [])
        self.push("room_updated", room=room1(topic=""))
        self.assertEqual(self.of(TopicChanged), [TopicChanged(1, "")])

    def test_topic_of_a_room_joined_again(self) -> None:
        """
        A Room that replaces one we know (join_successful) brings its topic.
        """
        self.state.apply_reply({"type": "join_successful", "room": room1(topic="other")})
        self.assertEqual(self.of(TopicChanged), [TopicChanged(1, "other")])

    def test_member_role(self) -> None:
        """
        member_role changes a member's role in place (members keep their
        order); a role already held, or an unknown member, changes nothing.
        """
        self.push("member_role", room_id=1, user_id=3, role=MODERATOR)
        members = self.state.rooms[1].members
        self.assertEqual(members[3].role, MODERATOR)
        self.assertEqual(list(members), [1, 2, 3, 4])
        (change,) = self.of(MembersChanged)
        self.assertEqual([m.role for m in change.members][2], MODERATOR)
        self.assertEqual(self.of(Notice), [])
        self.changes.clear()
        self.push("member_role", room_id=1, user_id=3, role=MODERATOR)
        self.push("member_role", room_id=1, user_id=9, role=MODERATOR)
        self.assertEqual(self.changes, [])

    def test_our_own_role_is_told(self) -> None:
        """
        When our own role changes, a notice says what we are now.
        """
        state = ClientState()
        state.apply_push({"type": "login_info", **login_info(rooms=[room1(me=MEMBER)])})
        state.add_listener(self.changes.append)
        state.apply_push({"type": "member_role", "room_id": 1, "user_id": 1, "role": MODERATOR})
        state.apply_push({"type": "member_role", "room_id": 1, "user_id": 1, "role": MEMBER})
        self.assertEqual(
            self.of(Notice),
            [
                Notice("You are now a moderator of room room1(1)."),
                Notice("You are no longer a moderator of room room1(1)."),
            ],
        )

    def test_owner_hand_over(self) -> None:
        """
        When the owner quits, someone_outroom and then member_role make the
        earliest moderator the owner; if that is us, we are told.
        """
        state = ClientState()
        state.apply_push({"type": "login_info", **login_info(rooms=[room1(me=MODERATOR)])})
        state.add_listener(self.changes.append)
        state.apply_push({"type": "someone_outroom", "room_id": 1, "user_id": 2})
        state.apply_push({"type": "member_role", "room_id": 1, "user_id": 1, "role": OWNER})
        members = state.rooms[1].members
        self.assertEqual(
            {i: m.role for i, m in members.items()}, {1: OWNER, 3: MODERATOR, 4: MEMBER}
        )
        self.assertTrue(state.rooms[1].may_set_roles(1))
        self.assertEqual(self.of(Notice), [Notice("You are now the owner of room room1(1).")])

    def test_kicked_forgets_the_room(self) -> None:
        """
        me_outroom with reason kicked forgets the room and its conversation
        (the view goes back to nothing) and says we were removed; who did
        it is not on the wire, so it is not said.
        """
        self.state.conversation((ROOM, 1))
        self.state.set_viewed((ROOM, 1))
        self.state.note_ban(1, User(4, "tr"))
        self.changes.clear()
        self.push("me_outroom", room_id=1, reason="kicked")
        self.assertNotIn(1, self.state.rooms)
        self.assertNotIn((ROOM, 1), self.state.conversations)
        self.assertIsNone(self.state.viewed)
        self.assertEqual(self.state.banned(1), ())
        self.assertEqual(self.of(ContactRemoved), [ContactRemoved((ROOM, 1))])
        self.assertEqual(self.of(Notice), [Notice("You were removed from room room1(1).")])

    def test_own_quit_says_nothing(self) -> None:
        """
        The me_outroom reply to our own quit_room forgets the room without
        the notice of a removal.
        """
        self.state.apply_reply({"type": "me_outroom", "room_id": 1})
        self.assertNotIn(1, self.state.rooms)
        self.assertEqual(self.of(Notice), [])

    def test_rights(self) -> None:
        """
        The owner removes anyone but themself and sets roles; a moderator
        removes plain members only; a plain member removes nobody; owner
        and moderators moderate.
        """
        state = self.state.rooms[1]
        removes = {
            (by, target): state.may_remove(by, target)
            for by in (1, 2, 3)
            for target in (1, 2, 3, 4)
        }
        self.assertEqual(
            [pair for pair, allowed in removes.items() if allowed],
            [(1, 2), (1, 3), (1, 4), (2, 3), (2, 4)],
        )
        self.assertEqual([state.may_set_roles(u) for u in (1, 2, 3)], [True, False, False])
        self.assertEqual([state.moderated_by(u) for u in (1, 2, 3, 9)], [True, True, False, False])
        self.assertFalse(state.may_remove(1, 9))

    def test_bans_remembered(self) -> None:
        """
        A ban we made is remembered until lifted, or until the user is back
        in the room (someone else lifted it); a reconnect keeps it, signing
        out forgets it.
        """
        self.state.note_ban(1, User(5, "wy"))
        self.state.note_ban(1, User(6, "qq"))
        self.state.note_ban(9, User(5, "wy"))  # not a room of ours
        self.assertEqual(self.state.banned(1), (User(5, "wy"), User(6, "qq")))
        self.assertEqual(self.state.banned(9), ())
        self.push("someone_inroom", room_id=1, user=member(5, "wy"))
        self.assertEqual(self.state.banned(1), (User(6, "qq"),))
        self.push("login_info", **login_info(rooms=[room1()]))
        self.assertEqual(self.state.banned(1), (User(6, "qq"),))
        self.state.forget_ban(1, 6)
        self.assertEqual(
            self.of(BansChanged)[-1],
            BansChanged(1, ()),
        )
        self.state.note_ban(1, User(6, "qq"))
        self.state.sign_out(None)
        self.assertEqual(self.state.bans, {})


class RoomSessionTests(SynchronousTestCase):
    """
    What L{ChatClient} sends for section 12, and what the replies do.
    """

    def setUp(self) -> None:
        self.session = Session()
        self.session.log_in(rooms=[room1()])
        self.server = self.session.server
        self.server.sent()
        self.client = self.session.client
        self.state = self.session.state

    def test_set_topic(self) -> None:
        """
        set_topic sends the room and the topic; its room_updated reply sets
        the topic.  A topic breaking the rule is not sent.
        """
        d = self.client.set_topic(1, "plans")
        request = self.server.take("set_topic")
        self.assertEqual(
            request, {"type": "set_topic", "id": request["id"], "room_id": 1, "topic": "plans"}
        )
        self.server.reply(request, "room_updated", room=room1(topic="plans"))
        self.successResultOf(d)
        self.assertEqual(self.state.rooms[1].topic, "plans")
        self.assertRaises(ValueError, self.client.set_topic, 1, "x" * 201)
        self.assertRaises(ValueError, self.client.set_topic, 1, "two\nlines")
        self.assertEqual(self.server.sent(), [])
        self.client.set_topic(1, "")
        self.assertEqual(self.server.take("set_topic")["topic"], "")

    def test_set_role_applies_on_ok(self) -> None:
        """
        set_role sends the member and the role; the server pushes nothing
        back to the owner, so the ok reply changes the role in the state.
        """
        d = self.client.set_role(1, 3, MODERATOR)
        request = self.server.take("set_role")
        self.assertEqual(
            (request["room_id"], request["user_id"], request["role"]), (1, 3, MODERATOR)
        )
        self.assertEqual(self.state.rooms[1].members[3].role, MEMBER)
        self.server.reply(request, "ok")
        self.successResultOf(d)
        self.assertEqual(self.state.rooms[1].members[3].role, MODERATOR)
        self.client.set_role(1, 2, MEMBER)
        self.assertEqual(self.server.take("set_role")["role"], MEMBER)

    def test_set_role_refused_changes_nothing(self) -> None:
        """
        A refused set_role fails with the error and leaves the role.
        """
        d = self.client.set_role(1, 3, MODERATOR)
        self.server.error(self.server.take("set_role"), "not_allowed")
        self.assertEqual(self.failureResultOf(d, ChatError).value.code, "not_allowed")
        self.assertEqual(self.state.rooms[1].members[3].role, MEMBER)

    def test_kick_and_ban(self) -> None:
        """
        kick sends ban false or true; the member leaves with the
        someone_outroom push; a ban is remembered once the server agrees.
        """
        self.client.kick(1, 4)
        request = self.server.take("kick_from_room")
        self.assertEqual((request["room_id"], request["user_id"], request["ban"]), (1, 4, False))
        self.server.push("someone_outroom", room_id=1, user_id=4)
        self.server.reply(request, "ok")
        self.assertNotIn(4, self.state.rooms[1].members)
        self.assertEqual(self.state.banned(1), ())
        d = self.client.kick(1, 3, ban=True)
        request = self.server.take("kick_from_room")
        self.assertTrue(request["ban"])
        self.server.push("someone_outroom", room_id=1, user_id=3)
        self.assertEqual(self.state.banned(1), ())
        self.server.reply(request, "ok")
        self.successResultOf(d)
        self.assertEqual(self.state.banned(1), (User(3, "wh"),))

    def test_unban(self) -> None:
        """
        unban sends the user; once done the ban is forgotten.  not_allowed
        while we still moderate means they are not banned: it is forgotten
        too, and the failure still reported.
        """
        self.state.note_ban(1, User(5, "wy"))
        self.state.note_ban(1, User(6, "qq"))
        d = self.client.unban(1, 5)
        request = self.server.take("unban_from_room")
        self.assertEqual((request["room_id"], request["user_id"]), (1, 5))
        self.server.reply(request, "ok")
        self.successResultOf(d)
        self.assertEqual(self.state.banned(1), (User(6, "qq"),))
        d = self.client.unban(1, 6)
        self.server.error(self.server.take("unban_from_room"), "not_allowed")
        self.failureResultOf(d, ChatError)
        self.assertEqual(self.state.banned(1), ())


class RoomWindowTestCase(AppTestCase):
    """
    The main window showing room1 as its owner (unless a test logs in
    again otherwise), with the room's messages.
    """

    me = OWNER
    topic = "Weekly plans"

    def setUp(self) -> None:
        super().setUp()
        self.log_in(rooms=[room1(self.me, self.topic)])
        self.main.show()
        self.open(
            (ROOM, 1),
            [message(5, LZY, ROOM, 1, "the plan"), message(6, NCR, ROOM, 1, "sounds good")],
        )
        self.addCleanup(self._close_popups)

    def _close_popups(self) -> None:
        for widget in [*self.main.findChildren(QMenu), *self.main.findChildren(QMessageBox)]:
            widget.close()

    def relog(self, *rooms: Payload) -> None:
        """
        Push a new C{login_info} with C{rooms} (as after a reconnect): the
        room in view stays, with what it says now.
        """
        self.server.push("login_info", **login_info(rooms=list(rooms)))
        self.app.processEvents()

    def requests(self, kind: str) -> list[Payload]:
        """
        @return: the requests of type C{kind} sent since last asked.
        """
        return [r for r in self.server.sent() if r["type"] == kind]

    def member_row(self, user_id: int) -> int:
        model = self.main.members_model
        (row,) = [r for r in range(model.rowCount()) if model.member(r).id == user_id]
        return row

    def member_menu(self, user_id: int) -> QMenu | None:
        """
        Right-click member C{user_id} in the member list.

        @return: the context menu that opened, if any.
        """
        view = self.main.member_panel.members_view
        self.app.processEvents()
        position = view.visualRect(self.main.members_model.index(self.member_row(user_id))).center()
        event = QContextMenuEvent(
            QContextMenuEvent.Reason.Mouse, position, view.viewport().mapToGlobal(position)
        )
        QApplication.sendEvent(view.viewport(), event)
        menus = [m for m in view.findChildren(QMenu) if m.isVisible()]
        self.assertLessEqual(len(menus), 1)
        for menu in menus:
            menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        return menus[0] if menus else None

    def entries(self, menu: QMenu | None) -> list[str]:
        """
        @return: the texts of C{menu}'s entries, separators left out.
        """
        if menu is None:
            return []
        texts = [a.text() for a in menu.actions() if not a.isSeparator()]
        menu.close()
        return texts

    def choose(self, menu: QMenu | None, text: str) -> None:
        """
        Click the entry C{text} of C{menu}.
        """
        assert menu is not None
        (action,) = [a for a in menu.actions() if a.text() == text]
        QTest.mouseClick(menu, Qt.MouseButton.LeftButton, pos=menu.actionGeometry(action).center())

    def message_menu(self, row: int) -> list[str]:
        """
        @return: the entries of the context menu of timeline row C{row}.
        """
        view = self.main.history_view
        self.app.processEvents()
        position = view.visualRect(view.model().index(row, 0)).center()
        event = QContextMenuEvent(
            QContextMenuEvent.Reason.Mouse, position, view.viewport().mapToGlobal(position)
        )
        QApplication.sendEvent(view.viewport(), event)
        (menu,) = [m for m in view.findChildren(QMenu) if m.isVisible()]
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        return self.entries(menu)


class MemberListTests(RoomWindowTestCase):
    """
    The member list groups the owner, the moderators and the members, with
    a badge for each role, and follows member_role pushes.
    """

    def test_grouped_with_headings_and_badges(self) -> None:
        """
        Rows go owner, moderators, members (each group in joining order);
        the first of each group carries its heading, and is drawn taller to
        hold it; owner and moderators carry their badge.
        """
        model = self.main.members_model
        check_model(self, model)
        self.server.push("someone_inroom", room_id=1, user=member(5, "wy"))
        self.assertEqual(rows(model), ["ncr(1)", "lzy(2)", "wh(3)", "tr(4)", "wy(5)"])
        self.assertEqual(rows(model, SectionRole), ["Owner", "Moderators", "Members", None, None])
        self.assertEqual(rows(model, RoleRole), [OWNER, MODERATOR, MEMBER, MEMBER, MEMBER])
        self.assertEqual([role_badge(r) for r in rows(model, RoleRole)][:3], ["owner", "mod", None])
        self.assertIn("moderator", model.index(1).data(Qt.ItemDataRole.ToolTipRole))
        view = self.main.member_panel.members_view
        delegate = view.itemDelegate()
        option = QStyleOptionViewItem()
        heights = [delegate.sizeHint(option, model.index(r)).height() for r in range(3, 5)]
        self.assertEqual(heights, [MemberDelegate.HEIGHT, MemberDelegate.HEIGHT])
        self.assertEqual(
            delegate.sizeHint(option, model.index(0)).height(),
            MemberDelegate.HEIGHT + MemberDelegate.SECTION,
        )
        self.assertFalse(view.grab().isNull())

    def test_role_change_moves_the_row(self) -> None:
        """
        A member made moderator moves into the moderators (the row is moved,
        not the model reset); made a member again, they go back.
        """
        model = self.main.members_model
        check_model(self, model)
        events: list[str] = []
        model.modelReset.connect(lambda: events.append("reset"))
        model.rowsMoved.connect(lambda *args: events.append(f"moved {args[1]} to {args[4]}"))
        self.server.push("member_role", room_id=1, user_id=4, role=MODERATOR)
        self.assertEqual(rows(model), ["ncr(1)", "lzy(2)", "tr(4)", "wh(3)"])
        self.assertEqual(rows(model, SectionRole), ["Owner", "Moderators", None, "Members"])
        self.server.push("member_role", room_id=1, user_id=2, role=MEMBER)
        self.assertEqual(rows(model), ["ncr(1)", "tr(4)", "lzy(2)", "wh(3)"])
        self.assertEqual(rows(model, SectionRole), ["Owner", "Moderators", "Members", None])
        self.assertNotIn("reset", events)
        self.assertEqual(events, ["moved 3 to 2", "moved 2 to 1"])

    def test_hand_over_to_a_new_owner(self) -> None:
        """
        When the owner quits, the member list shows the new owner at the
        top, under its heading.
        """
        self.relog(room1(me=MEMBER))
        model = self.main.members_model
        self.assertEqual(rows(model)[:2], ["lzy(2)", "wh(3)"])
        self.server.push("someone_outroom", room_id=1, user_id=2)
        self.server.push("member_role", room_id=1, user_id=3, role=OWNER)
        self.assertEqual(rows(model), ["wh(3)", "ncr(1)", "tr(4)"])
        self.assertEqual(rows(model, SectionRole), ["Owner", "Members", None])


class MenuTests(RoomWindowTestCase):
    """
    A member's context menu offers what we may do to them, as owner,
    moderator or plain member; each removal asks first.
    """

    def as_(self, role: str) -> None:
        self.relog(room1(me=role, topic=self.topic))

    def test_owner_menus(self) -> None:
        """
        The owner may make or unmake moderators and remove or ban anyone
        else; nothing is offered on themself.
        """
        panel = self.main.member_panel
        self.assertEqual(self.entries(self.member_menu(1)), [])
        self.assertEqual(
            self.entries(self.member_menu(2)), [panel.UNMAKE_MODERATOR, panel.REMOVE, panel.BAN]
        )
        self.assertEqual(
            self.entries(self.member_menu(3)), [panel.MAKE_MODERATOR, panel.REMOVE, panel.BAN]
        )

    def test_moderator_menus(self) -> None:
        """
        A moderator may remove or ban plain members only: nothing is
        offered on the owner, another moderator or themself.
        """
        self.as_(MODERATOR)
        panel = self.main.member_panel
        self.assertEqual(
            {u: self.entries(self.member_menu(u)) for u in (1, 2, 3, 4)},
            {1: [], 2: [], 3: [], 4: [panel.REMOVE, panel.BAN]},
        )

    def test_member_menus(self) -> None:
        """
        A plain member is offered nothing on anyone.
        """
        self.as_(MEMBER)
        self.assertEqual([self.entries(self.member_menu(u)) for u in (1, 2, 3, 4)], [[]] * 4)
        self.assertEqual(self.main.member_panel.actions_for(4), [])

    def test_make_and_unmake_moderator(self) -> None:
        """
        "Make moderator" sends set_role; the ok reply moves the member into
        the moderators with a notice; "Remove as moderator" sends member.
        """
        self.choose(self.member_menu(3), MemberPanel.MAKE_MODERATOR)
        (request,) = self.requests("set_role")
        self.assertEqual(
            (request["room_id"], request["user_id"], request["role"]), (1, 3, MODERATOR)
        )
        self.server.reply(request, "ok")
        self.assertEqual(rows(self.main.members_model, RoleRole)[2], MODERATOR)
        self.assertEqual(self.main.notice_bar.text(), "wh(3) is now a moderator of room1(1).")
        self.choose(self.member_menu(2), MemberPanel.UNMAKE_MODERATOR)
        (request,) = self.requests("set_role")
        self.assertEqual((request["user_id"], request["role"]), (2, MEMBER))
        self.server.reply(request, "ok")
        self.assertEqual(
            self.main.notice_bar.text(), "lzy(2) is no longer a moderator of room1(1)."
        )

    def test_remove_asks_first(self) -> None:
        """
        "Remove from room…" asks, naming the member and the room; Cancel
        sends nothing, confirming sends kick_from_room without ban; the
        member leaves with the push, and a notice says it is done.
        """
        self.answer = False
        count = self.main.members_model.rowCount()
        self.choose(self.member_menu(4), MemberPanel.REMOVE)
        self.assertEqual(len(self.questions), 1)
        title, text = self.questions[0]
        self.assertEqual(title, "Remove from room")
        self.assertIn("tr(4)", text)
        self.assertIn("room1(1)", text)
        self.assertEqual(self.requests("kick_from_room"), [])
        self.answer = True
        self.choose(self.member_menu(4), MemberPanel.REMOVE)
        (request,) = self.requests("kick_from_room")
        self.assertEqual((request["room_id"], request["user_id"], request["ban"]), (1, 4, False))
        self.server.push("someone_outroom", room_id=1, user_id=4)
        self.server.reply(request, "ok")
        self.assertNotIn("tr(4)", rows(self.main.members_model))
        self.assertEqual(self.main.member_panel.title.text(), f"MEMBERS · {count - 1}")
        self.assertEqual(self.main.notice_bar.text(), "You removed tr(4) from room1(1).")
        self.assertTrue(self.main.member_panel.bans_button.isHidden())

    def test_ban_then_unban(self) -> None:
        """
        "Ban from room…" asks, then sends kick_from_room with ban; once done
        "Banned by you (1)…" under the members offers to unban them, which
        sends unban_from_room and, once done, goes away.
        """
        self.choose(self.member_menu(3), MemberPanel.BAN)
        title, text = self.questions[-1]
        self.assertEqual(title, "Ban from room")
        self.assertIn("wh(3)", text)
        (request,) = self.requests("kick_from_room")
        self.assertEqual((request["user_id"], request["ban"]), (3, True))
        self.server.push("someone_outroom", room_id=1, user_id=3)
        self.server.reply(request, "ok")
        self.assertIn("You banned wh(3) from room1(1).", self.main.notice_bar.text())
        bans = self.main.member_panel.bans_button
        self.assertTrue(bans.isVisible())
        self.assertEqual(bans.text(), "Banned by you (1)…")
        click(bans)
        (menu,) = [m for m in bans.findChildren(QMenu) if m.isVisible()]
        self.assertEqual([a.text() for a in menu.actions()], ["Unban wh(3)"])
        self.choose(menu, "Unban wh(3)")
        (request,) = self.requests("unban_from_room")
        self.assertEqual((request["room_id"], request["user_id"]), (1, 3))
        self.server.reply(request, "ok")
        self.assertFalse(bans.isVisible())
        self.assertEqual(self.main.notice_bar.text(), "wh(3) may join room1(1) again.")

    def test_unban_offered_to_moderators_only(self) -> None:
        """
        Our bans are offered for unbanning while we moderate the room, not
        while we are a plain member (after a reconnect, or a push).
        """
        self.session.state.note_ban(1, User(5, "wy"))
        bans = self.main.member_panel.bans_button
        self.assertTrue(bans.isVisible())
        self.relog(room1(me=MEMBER))
        self.assertFalse(bans.isVisible())
        self.relog(room1(me=MODERATOR))
        self.assertTrue(bans.isVisible())
        self.server.push("member_role", room_id=1, user_id=1, role=MEMBER)
        self.assertFalse(bans.isVisible())

    def test_real_ban_question_does_not_block(self) -> None:
        """
        Without the test's answers, "Ban from room…" opens a window-modal
        message box and returns at once; its Ban button sends the request.
        """
        self.patch(self.main, "confirm", MainWindow.confirm.__get__(self.main))
        self.choose(self.member_menu(4), MemberPanel.BAN)
        (box,) = [b for b in self.main.findChildren(QMessageBox) if b.isVisible()]
        self.assertEqual(box.windowModality(), Qt.WindowModality.WindowModal)
        self.assertIn("tr(4)", box.text())
        self.assertEqual(self.requests("kick_from_room"), [])
        (ban,) = [b for b in box.buttons() if b.text() == "Ban"]
        click(ban)
        (request,) = self.requests("kick_from_room")
        self.assertEqual((request["user_id"], request["ban"]), (4, True))

    def test_no_request_once_the_member_is_gone(self) -> None:
        """
        A confirmation given after the member left sends nothing.
        """
        answers: list[Any] = []
        self.patch(self.main, "confirm", lambda title, text, action, on_yes: answers.append(on_yes))
        self.choose(self.member_menu(4), MemberPanel.REMOVE)
        self.server.push("someone_outroom", room_id=1, user_id=4)
        (on_yes,) = answers
        on_yes()
        self.assertEqual(self.requests("kick_from_room"), [])

    def test_errors_are_sentences(self) -> None:
        """
        A refused role change, removal or unban says why in a sentence, by
        error code.
        """
        self.choose(self.member_menu(4), MemberPanel.REMOVE)
        self.server.error(self.requests("kick_from_room")[0], "not_allowed", "Nope.")
        self.assertEqual(
            self.main.notice_bar.text(), texts.MODERATION_ERRORS["kick_from_room"]["not_allowed"]
        )
        self.choose(self.member_menu(3), MemberPanel.MAKE_MODERATOR)
        self.server.error(self.requests("set_role")[0], "not_in_room", "Nope.")
        self.assertEqual(self.main.notice_bar.text(), "That user is no longer in the room.")
        self.assertEqual(rows(self.main.members_model, RoleRole)[2], MEMBER)
        self.chat.unban(1, 9)
        self.server.error(self.requests("unban_from_room")[0], "no_such_user", "Nope.")
        self.assertEqual(self.main.notice_bar.text(), "That user no longer exists.")
        self.chat.unban(1, 5)
        self.server.error(self.requests("unban_from_room")[0], "internal_error", "It broke.")
        self.assertEqual(self.main.notice_bar.text(), "It broke.")

    def test_menus_follow_our_role(self) -> None:
        """
        Made a moderator by a push, we are offered removal of plain members
        and deletion of others' messages; made a member again, neither.
        """
        self.as_(MEMBER)
        self.assertEqual(self.entries(self.member_menu(4)), [])
        self.assertNotIn("Delete…", self.message_menu(0))
        self.server.push("member_role", room_id=1, user_id=1, role=MODERATOR)
        self.assertEqual(self.main.notice_bar.text(), "You are now a moderator of room room1(1).")
        self.assertEqual(self.entries(self.member_menu(4)), [MemberPanel.REMOVE, MemberPanel.BAN])
        self.assertEqual(self.entries(self.member_menu(3)), [])
        self.assertIn("Delete…", self.message_menu(0))
        self.server.push("member_role", room_id=1, user_id=1, role=MEMBER)
        self.assertEqual(self.entries(self.member_menu(4)), [])
        self.assertNotIn("Delete…", self.message_menu(0))
        self.assertIn("Delete…", self.message_menu(1))  # our own message

    def test_becoming_owner_by_hand_over(self) -> None:
        """
        When the owner quits and ownership passes to us, we are told and
        may now make moderators.
        """
        self.as_(MODERATOR)
        self.assertEqual(self.entries(self.member_menu(3)), [])
        self.server.push("someone_outroom", room_id=1, user_id=2)
        self.server.push("member_role", room_id=1, user_id=1, role=OWNER)
        self.assertEqual(self.main.notice_bar.text(), "You are now the owner of room room1(1).")
        self.assertEqual(
            self.entries(self.member_menu(3)),
            [MemberPanel.UNMAKE_MODERATOR, MemberPanel.REMOVE, MemberPanel.BAN],
        )


class TopicTests(RoomWindowTestCase):
    """
    The topic under the room's name: shown to all, edited in place by the
    owner and the moderators, updated live.
    """

    def test_shown_under_the_name(self) -> None:
        """
        The header shows the room's topic; its owner has an Edit button.
        """
        line = self.main.topic_line
        self.assertTrue(line.isVisible())
        self.assertEqual(line.label.full_text(), "Weekly plans")
        self.assertEqual(line.label.toolTip(), "Weekly plans")
        self.assertTrue(line.edit_button.isVisible())

    def test_long_topic_is_cut_to_one_line(self) -> None:
        """
        A long topic is cut to the header's width, whole in its tooltip,
        and does not widen the window.
        """
        width = self.main.width()
        topic = "word " * 40
        self.server.push("room_updated", room=room1(topic=topic))
        self.app.processEvents()
        label = self.main.topic_line.label
        self.assertEqual(label.toolTip(), topic)
        self.assertTrue(label.text().endswith("…"))
        self.assertEqual(self.main.width(), width)

    def test_edit_in_place(self) -> None:
        """
        A double click opens the field on the topic, at most 200
        characters; Enter sends set_topic and waits; the reply shows the
        new topic and closes the field.
        """
        line = self.main.topic_line
        QTest.mouseDClick(line.label, Qt.MouseButton.LeftButton)
        self.assertTrue(line.editing)
        self.assertEqual(line.field.text(), "Weekly plans")
        self.assertEqual(line.field.maxLength(), 200)
        line.field.clear()
        QTest.keyClicks(line.field, "Monthly plans")
        QTest.keyClick(line.field, Qt.Key.Key_Return)
        (request,) = self.requests("set_topic")
        self.assertEqual((request["room_id"], request["topic"]), (1, "Monthly plans"))
        self.assertTrue(line.saving)
        QTest.keyClick(line.field, Qt.Key.Key_Return)
        self.assertEqual(self.requests("set_topic"), [])
        self.server.reply(request, "room_updated", room=room1(topic="Monthly plans"))
        self.assertFalse(line.editing)
        self.assertEqual(line.label.full_text(), "Monthly plans")

    def test_escape_cancels(self) -> None:
        """
        Esc closes the field and sends nothing; Enter on the topic unchanged
        closes it too.
        """
        line = self.main.topic_line
        click(line.edit_button)
        QTest.keyClicks(line.field, "something else")
        QTest.keyClick(line.field, Qt.Key.Key_Escape)
        self.assertFalse(line.editing)
        self.assertEqual(line.label.full_text(), "Weekly plans")
        click(line.edit_button)
        QTest.keyClick(line.field, Qt.Key.Key_Return)
        self.assertFalse(line.editing)
        self.assertEqual(self.requests("set_topic"), [])

    def test_refused_topic_says_why_and_keeps_the_text(self) -> None:
        """
        A topic refused by the server (invalid_field, not_allowed) is said
        in a sentence; the field stays open with what was typed.  One with
        a control character is not sent at all.
        """
        line = self.main.topic_line
        click(line.edit_button)
        line.field.setText("bad\ttopic")
        QTest.keyClick(line.field, Qt.Key.Key_Return)
        self.assertEqual(self.requests("set_topic"), [])
        self.assertTrue(line.editing)
        self.assertEqual(line.hint.toolTip(), texts.TOPIC_RULE)
        line.field.setText("fine")
        QTest.keyClick(line.field, Qt.Key.Key_Return)
        self.server.error(self.requests("set_topic")[0], "invalid_field", "Bad field.")
        self.assertEqual(self.main.notice_bar.text(), texts.TOPIC_RULE)
        self.assertTrue(line.editing)
        self.assertFalse(line.saving)
        self.assertEqual(line.field.text(), "fine")
        QTest.keyClick(line.field, Qt.Key.Key_Return)
        self.server.error(self.requests("set_topic")[0], "not_allowed", "Nope.")
        self.assertEqual(
            self.main.notice_bar.text(),
            "Only the room's owner and moderators can change its topic.",
        )

    def test_pushed_topic_applies_live(self) -> None:
        """
        room_updated from someone else changes the topic shown, also under
        an edit under way, which stays open.
        """
        line = self.main.topic_line
        self.server.push("room_updated", room=room1(topic="Other plans"))
        self.assertEqual(line.label.full_text(), "Other plans")
        click(line.edit_button)
        self.server.push("room_updated", room=room1(topic="Yet other plans"))
        self.assertTrue(line.editing)
        self.assertEqual(line.label.full_text(), "Yet other plans")

    def test_members_only_see_it(self) -> None:
        """
        A plain member sees the topic, with no Edit button, and a double
        click does nothing; with no topic, the line is hidden from them.
        """
        self.relog(room1(me=MEMBER, topic="Weekly plans"))
        line = self.main.topic_line
        self.assertTrue(line.isVisible())
        self.assertFalse(line.edit_button.isVisible())
        QTest.mouseDClick(line.label, Qt.MouseButton.LeftButton)
        self.assertFalse(line.editing)
        self.server.push("room_updated", room=room1(topic=""))
        self.assertFalse(line.isVisible())

    def test_empty_topic_for_editors(self) -> None:
        """
        With no topic, the owner is offered to add one.
        """
        self.server.push("room_updated", room=room1(topic=""))
        line = self.main.topic_line
        self.assertTrue(line.isVisible())
        self.assertEqual(line.label.full_text(), NO_TOPIC)
        click(line.edit_button)
        self.assertEqual(line.field.text(), "")

    def test_losing_the_right_closes_the_edit(self) -> None:
        """
        Made a plain member while editing, the field closes and the Edit
        button goes.
        """
        self.relog(room1(me=MODERATOR, topic="Weekly plans"))
        line = self.main.topic_line
        click(line.edit_button)
        self.server.push("member_role", room_id=1, user_id=1, role=MEMBER)
        self.assertFalse(line.editing)
        self.assertFalse(line.edit_button.isVisible())

    def test_no_topic_line_for_a_friend(self) -> None:
        """
        A private conversation has no topic line.
        """
        self.main.select((0, 2))
        self.assertFalse(self.main.topic_line.isVisible())


class KickedTests(RoomWindowTestCase):
    """
    Removed from a room by someone else.
    """

    me = MEMBER

    def test_kicked_while_viewing(self) -> None:
        """
        me_outroom kicked takes the room off the list, the view goes back
        to nothing, and a notice says we were removed.
        """
        self.server.push("me_outroom", room_id=1, reason="kicked")
        self.assertEqual(rows(self.main.rooms_model), [])
        self.assertIsNone(self.main.current)
        self.assertEqual(self.main.pages.currentIndex(), 0)
        self.assertIsNone(self.main.history_view.timeline())
        self.assertFalse(self.main.member_panel.isVisible())
        self.assertFalse(self.main.topic_line.isVisible())
        self.assertEqual(self.main.notice_bar.text(), "You were removed from room room1(1).")

    def test_kicked_from_another_room(self) -> None:
        """
        Removed from a room not in view, the room leaves the list and the
        conversation in view stays.
        """
        self.relog(room1(me=MEMBER), room(2, "room2", member(1, "ncr")))
        self.server.push("me_outroom", room_id=2, reason="kicked")
        self.assertEqual(rows(self.main.rooms_model), ["room1(1)"])
        self.assertEqual(self.main.current, (ROOM, 1))
        self.assertEqual(self.main.notice_bar.text(), "You were removed from room room2(2).")


class JoinPanelTests(AppTestCase):
    """
    The join panel, as seen by someone already in the rooms listed.
    """

    ROOMS = [
        {"id": 1, "name": "room1", "topic": "Weekly plans " * 10, "member_count": 2},
        {"id": 2, "name": "a_rather_long_room_name_of_32_ch", "topic": "", "member_count": 1},
    ]

    def setUp(self) -> None:
        super().setUp()
        self.log_in(rooms=[room1(), room(2, "a_rather_long_room_name_of_32_ch", member(1, "ncr"))])
        self.main.show()
        self.app.processEvents()
        click(self.main.join_room_button)
        self.panel: JoinRoomPanel = self.main.join_room_panel
        self.server.reply(self.server.take("list_rooms"), "room_list", rooms=self.ROOMS)
        self.app.processEvents()

    def test_joined_rooms_are_marked(self) -> None:
        """
        Rooms we are in are marked joined, with their topic and member
        count; the hint says they can only be opened.
        """
        model = self.panel.results_model
        self.assertEqual(rows(model, JoinedRole), [True, True])
        self.assertEqual(rows(model, TopicRole), [self.ROOMS[0]["topic"], ""])
        self.assertEqual(rows(model, DetailRole)[1], "1 member")
        self.assertTrue(rows(model, DetailRole)[0].startswith("2 members · Weekly plans"))
        self.assertEqual(self.panel.hint.text(), JoinRoomPanel.ALL_JOINED)
        self.assertIn("You are in this room", model.index(0).data(Qt.ItemDataRole.ToolTipRole))

    def test_picking_a_joined_room_opens_it(self) -> None:
        """
        Picking a room we are in turns Join into Open, which shows the room
        and sends no join_room (which could only be already_in_room).
        """
        self.panel.results.setCurrentIndex(self.panel.results_model.index(1))
        self.assertEqual(self.panel.action_button.text(), "Open")
        self.assertEqual(self.panel.hint.text(), JoinRoomPanel.OPENS)
        self.server.sent()
        click(self.panel.action_button)
        self.assertEqual(self.main.current, (ROOM, 2))
        self.assertFalse(self.panel.isVisible())
        self.assertEqual([r["type"] for r in self.server.sent()], ["history"])

    def test_typed_name_of_a_joined_room_opens_it(self) -> None:
        """
        Enter on the name of a room we are in (in any case) opens it.
        """
        self.panel.field.setText("ROOM1")
        QTest.keyClick(self.panel.field, Qt.Key.Key_Return)
        self.assertEqual(self.main.current, (ROOM, 1))
        self.assertNotIn("join_room", [r["type"] for r in self.server.sent()])

    def test_leaving_unmarks(self) -> None:
        """
        A room we leave while the panel is open is no longer marked, and can
        be joined again.
        """
        self.server.push("me_outroom", room_id=2, reason="kicked")
        self.assertEqual(rows(self.panel.results_model, JoinedRole), [True, False])
        self.panel.results.setCurrentIndex(self.panel.results_model.index(1))
        self.assertEqual(self.panel.action_button.text(), "Join")
        click(self.panel.action_button)
        self.assertEqual(self.server.take("join_room")["name"], "a_rather_long_room_name_of_32_ch")

    def test_no_horizontal_scrollbar(self) -> None:
        """
        Long names and topics are cut to the list's width: it has no
        horizontal scrollbar, and no row is wider than it.
        """
        results = self.panel.results
        bar = results.horizontalScrollBar()
        self.assertEqual(results.horizontalScrollBarPolicy(), Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.assertFalse(bar.isVisible())
        self.assertEqual(bar.maximum(), 0)
        for row in range(2):
            rect = results.visualRect(self.panel.results_model.index(row))
            self.assertLessEqual(rect.right(), results.viewport().width())

    def test_room_list_stays_readable(self) -> None:
        """
        While the panel is open the friend list gives way, so that the room
        list keeps at least two whole rows; closed, the friend list comes
        back.
        """
        two_rows = 2 * ContactDelegate.HEIGHT
        self.assertGreaterEqual(self.main.room_list.height(), two_rows)
        self.assertTrue(self.panel.isVisible())
        self.assertTrue(self.panel.action_button.isVisible())
        click(self.panel.cancel_button)
        self.app.processEvents()
        self.assertGreater(self.main.friend_list.height(), ContactDelegate.HEIGHT + 4)
        self.assertGreaterEqual(self.main.room_list.height(), two_rows)
