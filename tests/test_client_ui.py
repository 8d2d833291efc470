"""
The Qt windows, driven with QTest offscreen: no reactor runs; a scripted
server on memory transports answers, and the tests assert on the models and
widgets.
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import QAbstractListModel, QModelIndex, QPoint, Qt
from PyQt5.QtGui import QContextMenuEvent
from PyQt5.QtTest import QSignalSpy, QTest
from PyQt5.QtWidgets import QApplication, QMenu, QMessageBox
from twisted.trial.unittest import SynchronousTestCase

from client.state import PRIVATE, ROOM
from client.ui.app import ChatApp
from client.ui.delegates import day_label
from client.ui.login import LOGIN, REGISTER, LoginWindow
from client.ui.main_window import MainWindow
from client.ui.models import (
    FAILED,
    PENDING,
    SENT,
    DetailRole,
    KindRole,
    OnlineRole,
    OwnRole,
    SenderRole,
    StatusRole,
    TimeRole,
    UnreadRole,
)
from tests.qt_support import (
    LZY,
    NCR,
    TOKEN,
    WH,
    Session,
    check_model,
    login_info,
    member,
    message,
    qapp,
    room,
    user,
)


def rows(model: Any, role: int = Qt.ItemDataRole.DisplayRole) -> list[Any]:
    """
    @return: C{role} of every row of a list model.
    """
    return [model.data(model.index(row), role) for row in range(model.rowCount())]


def click(widget: Any) -> None:
    """
    Click C{widget} with the left mouse button.
    """
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


class LoginWindowTests(SynchronousTestCase):
    """
    The login window alone: switching modes and checking input before
    anything is sent.
    """

    def setUp(self) -> None:
        qapp()
        self.window = LoginWindow("localhost:8998")
        self.window.show()
        self.addCleanup(self.window.hide)
        self.logins = QSignalSpy(self.window.login_requested)
        self.registers = QSignalSpy(self.window.register_requested)

    def fill(self, username: str, password: str, again: str | None = None) -> None:
        self.window.username.setText(username)
        self.window.password.setText(password)
        if again is not None:
            self.window.password_again.setText(again)

    def test_switches_between_login_and_register(self) -> None:
        """
        Register shows the second password field and the rules; login hides
        them again.
        """
        window = self.window
        self.assertFalse(window.password_again.isVisibleTo(window))
        click(window.register_tab)
        self.assertEqual(window.mode, REGISTER)
        self.assertTrue(window.password_again.isVisibleTo(window))
        self.assertTrue(window.rules.isVisibleTo(window))
        self.assertEqual(window.submit_button.text(), "Create account")
        click(window.login_tab)
        self.assertEqual(window.mode, LOGIN)
        self.assertFalse(window.password_again.isVisibleTo(window))

    def test_login_asks_for_both_fields(self) -> None:
        """
        Login with an empty password shows an error and sends nothing.
        """
        self.fill("ncr", "")
        click(self.window.submit_button)
        self.assertEqual(len(self.logins), 0)
        self.assertFalse(self.window.message.isHidden())
        self.assertIn("password", self.window.message.text())

    def test_enter_logs_in(self) -> None:
        """
        Enter in the password field asks to log in with what was typed.
        """
        self.fill("ncr", "secret1")
        QTest.keyClick(self.window.password, Qt.Key.Key_Return)
        self.assertEqual(list(self.logins), [["ncr", "secret1"]])

    def test_register_checks_the_rules_first(self) -> None:
        """
        Register refuses a bad name, a short password and two different
        passwords in the window, and sends a good registration.
        """
        self.window.set_mode(REGISTER)
        for username, password, again, error in [
            ("bad name", "secret1", "secret1", "username"),
            ("x" * 33, "secret1", "secret1", "username"),
            ("lzy", "short", "short", "password"),
            ("lzy", "      ", "      ", "password"),
            ("lzy", "secret1", "secret2", "differ"),
        ]:
            self.fill(username, password, again)
            click(self.window.submit_button)
            self.assertEqual(len(self.registers), 0, username)
            self.assertIn(error, self.window.message.text())
            self.assertFalse(self.window.message.isHidden())
        self.fill("lzy_2", "pässwörd", "pässwörd")
        click(self.window.submit_button)
        self.assertEqual(list(self.registers), [["lzy_2", "pässwörd"]])

    def test_typing_clears_the_error(self) -> None:
        """
        An error goes away once the user edits a field.
        """
        self.window.show_error("Wrong username or password.")
        QTest.keyClicks(self.window.username, "n")
        self.assertTrue(self.window.message.isHidden())


class AppTestCase(SynchronousTestCase):
    """
    The whole client (login window, main window, tray) on a scripted
    server.
    """

    def setUp(self) -> None:
        self.app = qapp()
        self.session = Session()
        self.chat = ChatApp(self.session.client, self.session.clock, "localhost:8998")
        self.main = self.chat.main_window
        self.login = self.chat.login_window
        self.chat.start()
        self.addCleanup(self._close)
        # Questions are answered without a dialog: yes, unless a test sets
        # C{self.answer} to no.  Each is recorded as (title, text).
        self.questions: list[tuple[str, str]] = []
        self.answer = True
        self.patch(self.main, "confirm", self._confirm)

    def _confirm(self, title: str, text: str, action: str, on_yes: Any) -> None:
        self.questions.append((title, text))
        if self.answer:
            on_yes()

    def _close(self) -> None:
        self.chat._leaving = True
        self.main.hide()
        self.login.hide()
        self.chat.bridge.detach()

    @property
    def server(self) -> Any:
        return self.session.server

    def log_in(self, **info: Any) -> None:
        """
        Log in through the login window as ncr, the server answering with
        C{login_info(**info)}.
        """
        self.login.username.setText("ncr")
        self.login.password.setText("secret1")
        click(self.login.submit_button)
        fields = login_info(**info)
        self.server.reply(
            self.server.take("login"), "login_successful", user=fields["user"], token=TOKEN
        )
        self.server.push("login_info", **fields)
        self.main.resize(1100, 700)
        self.app.processEvents()

    def open(self, key: Any, messages: list[dict[str, Any]], has_more: bool = False) -> None:
        """
        Select conversation C{key} and answer its first history page.
        """
        self.main.select(key)
        page = self.server.take("history")
        self.server.reply(
            page,
            "history",
            target_type=key[0],
            target_id=key[1],
            messages=messages,
            has_more=has_more,
        )
        self.app.processEvents()


class LoginFlowTests(AppTestCase):
    """
    From the login window to the main window and back.
    """

    def test_login_shows_the_main_window(self) -> None:
        """
        A successful login hides the login window and shows the main window
        with the user, the friends and the rooms.
        """
        self.log_in()
        self.assertTrue(self.main.isVisible())
        self.assertFalse(self.login.isVisible())
        self.assertEqual(self.main.user_label.text(), "ncr(1)")
        self.assertEqual(rows(self.main.friends_model), ["lzy(2)", "wh(3)"])
        self.assertEqual(rows(self.main.rooms_model), ["room1(1)"])
        self.assertEqual(self.main.status_chip.text(), "Online")

    def test_login_failure_shows_in_the_window(self) -> None:
        """
        A refused login leaves the login window up with the error and an
        empty password field.
        """
        self.login.username.setText("ncr")
        self.login.password.setText("wrong00")
        click(self.login.submit_button)
        self.assertFalse(self.login.submit_button.isEnabled())
        self.server.error(self.server.take("login"), "login_failed", "Wrong username or password.")
        self.assertEqual(self.login.message.text(), "Wrong username or password.")
        self.assertEqual(self.login.password.text(), "")
        self.assertTrue(self.login.submit_button.isEnabled())
        self.assertFalse(self.main.isVisible())

    def test_unreachable_server_shows_in_the_window(self) -> None:
        """
        When the server cannot be reached the login window says so.
        """
        self.session.endpoint.refuse = True
        self.login.username.setText("ncr")
        self.login.password.setText("secret1")
        click(self.login.submit_button)
        self.assertIn("Cannot reach the server", self.login.message.text())

    def test_register_then_log_in(self) -> None:
        """
        A registration that succeeds logs in with the same name and
        password; a taken name shows an error.
        """
        self.login.set_mode(REGISTER)
        self.login.username.setText("ncr")
        self.login.password.setText("secret1")
        self.login.password_again.setText("secret1")
        click(self.login.submit_button)
        self.server.error(self.server.take("register"), "username_taken")
        self.assertIn("taken", self.login.message.text())
        self.login.password_again.setText("secret1")
        click(self.login.submit_button)
        self.server.reply(self.server.take("register"), "register_successful", user=user(*NCR))
        request = self.server.take("login")
        self.assertEqual((request["username"], request["password"]), ("ncr", "secret1"))

    def test_logout(self) -> None:
        """
        Log out brings the login window back and forgets the session.
        """
        self.log_in()
        click(self.main.logout_button)
        self.server.reply(self.server.take("logout"), "logout_successful")
        self.assertTrue(self.login.isVisible())
        self.assertFalse(self.main.isVisible())
        self.assertEqual(self.login.message.text(), "You have logged out.")
        self.assertEqual(self.main.friends_model.rowCount(), 0)

    def test_kicked_by_another_login(self) -> None:
        """
        When the account logs in elsewhere, the login window comes back and
        says why.
        """
        self.log_in()
        self.server.push("server_kick", reason="logged_in_elsewhere")
        self.assertTrue(self.login.isVisible())
        self.assertIn("somewhere else", self.login.message.text())

    def test_connection_status(self) -> None:
        """
        The status chip says when the connection is lost and when it is back.
        """
        self.log_in()
        self.server.drop()
        self.assertEqual(self.main.status_chip.text(), "Reconnecting…")
        self.session.clock.advance(1.0)
        self.session.answer_login_again()
        self.assertEqual(self.main.status_chip.text(), "Online")


class ListTests(AppTestCase):
    """
    The friend and room lists: name(id), online markers, unread badges.
    """

    def setUp(self) -> None:
        super().setUp()
        check_model(self, self.main.friends_model)
        check_model(self, self.main.rooms_model)
        self.log_in(
            unread=[{"target_type": 1, "target_id": 1, "count": 3, "last_message_id": 9}],
        )

    def test_markers_and_badges(self) -> None:
        """
        Friends carry their presence, rooms their unread count from
        login_info.
        """
        friends = self.main.friends_model
        self.assertEqual(rows(friends, OnlineRole), [True, False])
        self.assertEqual(rows(friends, DetailRole), ["online", "offline"])
        self.assertEqual(rows(self.main.rooms_model, UnreadRole), [3])

    def test_presence_push_updates_marker_and_notice(self) -> None:
        """
        A friend going offline turns their marker off and says so in the
        message bar.
        """
        self.server.push("friend_on_off_line", user_id=2, username="lzy", online=False)
        self.assertEqual(rows(self.main.friends_model, OnlineRole), [False, False])
        self.assertEqual(self.main.notice_bar.text(), "lzy is offline.")

    def test_message_raises_badge(self) -> None:
        """
        A message from a friend not in view raises their unread badge.
        """
        self.server.push("on_new_message", message=message(10, LZY, 0, 1, "hi"))
        self.server.push("on_new_message", message=message(11, LZY, 0, 1, "there"))
        self.assertEqual(rows(self.main.friends_model, UnreadRole), [2, 0])

    def test_viewing_clears_badge_and_marks_read(self) -> None:
        """
        Opening a conversation clears its badge and marks its newest
        message read on the server.
        """
        self.open((ROOM, 1), [message(9, LZY, 1, 1)])
        self.assertEqual(rows(self.main.rooms_model, UnreadRole), [0])
        mark = self.server.take("mark_read")
        self.assertEqual((mark["target_type"], mark["target_id"], mark["message_id"]), (1, 1, 9))

    def test_friend_added_and_removed(self) -> None:
        """
        A friend accepting our request joins the list; a friend removing us
        leaves it, closing their conversation.
        """
        self.server.push("add_friend_result", friend=member(4, "tr"), accepted=True)
        self.assertEqual(rows(self.main.friends_model), ["lzy(2)", "wh(3)", "tr(4)"])
        self.open((PRIVATE, 2), [])
        self.server.push("friend_removed", user_id=2)
        self.assertEqual(rows(self.main.friends_model), ["wh(3)", "tr(4)"])
        self.assertIsNone(self.main.current)
        self.assertEqual(self.main.pages.currentIndex(), 0)

    def test_clicking_a_friend_selects_them(self) -> None:
        """
        Clicking a row of the friend list shows that conversation.
        """
        self.main.show()
        self.app.processEvents()
        view = self.main.friend_list
        rect = view.visualRect(self.main.friends_model.index(1))
        QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        self.assertEqual(self.main.current, (PRIVATE, 3))
        self.assertEqual(self.main.conversation_title.text(), "wh(3)")
        self.assertEqual(self.server.take("history")["target_id"], 3)


class ConversationTests(AppTestCase):
    """
    The history of the selected conversation and the input box.
    """

    def setUp(self) -> None:
        super().setUp()
        self.log_in()
        self.main.show()
        self.app.processEvents()

    def timeline(self) -> Any:
        model = self.main.history_view.model()
        self.assertIsNotNone(model)
        return model

    def test_history_shows_sender_time_text(self) -> None:
        """
        Each message row has its sender, its local time and its text;
        system messages are marked apart and ours are marked own.
        """
        when = "2026-11-24T06:00:30.123Z"
        self.open(
            (ROOM, 1),
            [
                message(1, NCR, 1, 1, "ncr created the room", kind="system", time=when),
                message(2, LZY, 1, 1, "hi", time=when),
                message(3, NCR, 1, 1, "hello", time=when),
            ],
        )
        model = self.timeline()
        check_model(self, model)
        self.assertEqual(rows(model), ["ncr created the room", "hi", "hello"])
        self.assertEqual(rows(model, SenderRole), ["ncr", "lzy", "ncr"])
        self.assertEqual(rows(model, KindRole), ["system", "text", "text"])
        self.assertEqual(rows(model, OwnRole), [False, False, True])
        from client.state import parse_time

        local = parse_time(when).astimezone().strftime("%H:%M")
        self.assertEqual(rows(model, TimeRole), [local] * 3)

    def test_opens_at_the_newest_and_pages_back(self) -> None:
        """
        The history opens scrolled to the newest message; scrolling to the
        top asks for the page before the oldest, which appears above
        without moving the view.
        """
        texts = [message(i, LZY, 0, 1, f"message {i}") for i in range(100, 150)]
        self.open((PRIVATE, 2), texts, has_more=True)
        self.server.sent()
        view = self.main.history_view
        bar = view.verticalScrollBar()
        self.assertGreater(bar.maximum(), 0)
        self.assertEqual(bar.value(), bar.maximum())
        bar.setValue(0)
        self.assertEqual(view.indexAt(QPoint(10, 10)).row(), 0)
        (page,) = [r for r in self.server.sent() if r["type"] == "history"]
        self.assertEqual(page["before"], 100)
        older = [message(i, LZY, 0, 1, f"message {i}") for i in range(60, 100)]
        self.server.reply(
            page, "history", target_type=0, target_id=2, messages=older, has_more=False
        )
        self.assertEqual(self.timeline().rowCount(), 90)
        self.assertEqual(rows(self.timeline())[0], "message 60")
        self.assertGreater(bar.value(), 0)
        self.assertEqual(view.indexAt(QPoint(10, 10)).row(), 40)
        bar.setValue(0)
        self.assertEqual([r for r in self.server.sent() if r["type"] == "history"], [])

    def test_enter_sends_and_shift_enter_breaks_line(self) -> None:
        """
        Shift+Enter adds a line; Enter sends the text, clears the box and
        shows the message as pending until the server has it.
        """
        self.open((PRIVATE, 2), [])
        compose = self.main.compose
        QTest.keyClicks(compose, "hello")
        QTest.keyClick(compose, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
        QTest.keyClicks(compose, "world")
        self.assertEqual([r for r in self.server.sent() if r["type"] == "send_message"], [])
        QTest.keyClick(compose, Qt.Key.Key_Return)
        request = self.server.take("send_message")
        self.assertEqual(request["message"], "hello\nworld")
        self.assertEqual(compose.toPlainText(), "")
        model = self.timeline()
        self.assertEqual(rows(model, StatusRole), [PENDING])
        self.server.reply(
            request,
            "on_new_message",
            message=message(5, NCR, 0, 2, "hello\nworld", request["client_msg_id"]),
        )
        self.assertEqual(rows(model), ["hello\nworld"])
        self.assertEqual(rows(model, StatusRole), [SENT])

    def test_send_and_clear_buttons(self) -> None:
        """
        Clear empties the box; Send sends it; blank text is not sent.
        """
        self.open((PRIVATE, 2), [])
        compose = self.main.compose
        compose.setPlainText("oops")
        click(self.main.clear_button)
        self.assertEqual(compose.toPlainText(), "")
        compose.setPlainText("   \n ")
        click(self.main.send_button)
        self.assertEqual([r for r in self.server.sent() if r["type"] == "send_message"], [])
        compose.setPlainText("hi")
        click(self.main.send_button)
        self.assertEqual(self.server.take("send_message")["message"], "hi")

    def test_offline_message_is_pending_then_sent(self) -> None:
        """
        A message written while offline shows as pending, with a notice,
        and goes out on reconnect.
        """
        self.open((PRIVATE, 2), [])
        self.server.drop()
        self.main.compose.setPlainText("are you there?")
        click(self.main.send_button)
        self.assertEqual(rows(self.timeline(), StatusRole), [PENDING])
        self.assertIn("offline", self.main.notice_bar.text())
        self.session.clock.advance(1.0)
        self.session.answer_login_again()
        self.assertEqual(self.server.take("send_message")["message"], "are you there?")
        # Online again: the notice about being offline has ended with it.
        self.assertEqual(self.main.notice_bar.text(), "")

    def test_other_notice_outlives_reconnect(self) -> None:
        """
        Coming back online takes only the offline notice away, not a newer
        one.
        """
        self.open((PRIVATE, 2), [])
        self.server.drop()
        self.main.show_notice("Something else.")
        self.session.clock.advance(1.0)
        self.session.answer_login_again()
        self.assertEqual(self.main.notice_bar.text(), "Something else.")

    def test_refused_message_is_marked(self) -> None:
        """
        A message the server refuses stays in view, marked failed.
        """
        self.open((PRIVATE, 2), [])
        self.main.compose.setPlainText("hi")
        click(self.main.send_button)
        self.server.error(self.server.take("send_message"), "not_friends", "You are not friends.")
        self.assertEqual(rows(self.timeline(), StatusRole), [FAILED])

    def test_new_message_in_view_follows_bottom(self) -> None:
        """
        A message arriving in the conversation in view is appended, marked
        read, and the view stays at the bottom.
        """
        self.open((PRIVATE, 2), [message(i, LZY, 0, 1, f"m{i}") for i in range(1, 40)])
        self.server.sent()
        self.server.push("on_new_message", message=message(40, LZY, 0, 1, "latest"))
        bar = self.main.history_view.verticalScrollBar()
        self.assertEqual(bar.value(), bar.maximum())
        self.assertEqual(rows(self.timeline())[-1], "latest")
        self.assertEqual(self.server.take("mark_read")["message_id"], 40)


class NotificationTests(AppTestCase):
    """
    Desktop notifications for conversations not in view.
    """

    def setUp(self) -> None:
        super().setUp()
        self.log_in()
        self.main.show()
        QApplication.setActiveWindow(self.main)

    def test_notifies_for_other_conversations(self) -> None:
        """
        A message to a conversation not in view is notified with sender,
        room and text; one in view is not.
        """
        self.open((PRIVATE, 2), [])
        self.assertTrue(self.main.isActiveWindow())
        self.server.push("on_new_message", message=message(5, LZY, 0, 1, "seen"))
        self.assertIsNone(self.chat.notifier.last)
        self.server.push("on_new_message", message=message(6, LZY, 1, 1, "in the room"))
        self.assertEqual(self.chat.notifier.last, ("lzy in room1", "in the room", (ROOM, 1)))

    def test_no_notification_for_system_or_history(self) -> None:
        """
        System messages and history pages make no notification.
        """
        self.server.push("on_new_message", message=message(5, LZY, 1, 1, "x", kind="system"))
        self.open((PRIVATE, 3), [message(6, WH, 0, 1, "old")])
        self.assertIsNone(self.chat.notifier.last)


class PanelTests(AppTestCase):
    """
    Adding friends, creating, joining, inviting to and leaving rooms, and
    answering friend requests.
    """

    def setUp(self) -> None:
        super().setUp()
        self.log_in()
        self.main.show()
        self.app.processEvents()

    def test_add_friend_panel(self) -> None:
        """
        The add-friend panel refuses a bad name, sends a good one and closes
        with a notice when the request is sent.
        """
        click(self.main.add_friend_button)
        panel = self.main.add_friend_panel
        self.assertTrue(panel.isVisible())
        QTest.keyClicks(panel.field, "no way")
        QTest.keyClick(panel.field, Qt.Key.Key_Return)
        self.assertEqual(self.server.sent(), [])
        self.assertIn("letters", panel.hint.text())
        panel.field.setText("tr")
        QTest.keyClick(panel.field, Qt.Key.Key_Return)
        request = self.server.take("add_friend")
        self.assertEqual(request["username"], "tr")
        self.server.reply(request, "friend_request_sent", user=user(4, "tr"))
        self.assertFalse(panel.isVisible())
        self.assertEqual(self.main.notice_bar.text(), "Friend request sent to tr(4).")

    def test_add_friend_error_keeps_panel(self) -> None:
        """
        A refused request shows the server's reason and keeps the panel.
        """
        click(self.main.add_friend_button)
        self.main.add_friend_panel.field.setText("ghost")
        click(self.main.add_friend_panel.action_button)
        self.server.error(self.server.take("add_friend"), "no_such_user")
        self.assertTrue(self.main.add_friend_panel.isVisible())
        self.assertEqual(self.main.notice_bar.text(), "There is no user with that name.")

    def test_create_room_panel(self) -> None:
        """
        Creating a room adds it to the list and shows it with its members.
        """
        click(self.main.create_room_button)
        self.main.create_room_panel.field.setText("room2")
        click(self.main.create_room_panel.action_button)
        self.server.reply(
            self.server.take("create_room"),
            "create_successful",
            room=room(2, "room2", member(1, "ncr")),
        )
        self.assertEqual(rows(self.main.rooms_model), ["room1(1)", "room2(2)"])
        self.assertEqual(self.main.current, (ROOM, 2))
        self.assertTrue(self.main.member_panel.isVisible())
        self.assertEqual(rows(self.main.members_model), ["ncr(1)"])
        self.assertEqual(self.server.take("history")["target_id"], 2)

    def test_join_room_panel_searches(self) -> None:
        """
        The join panel lists the server's rooms, a pick fills the name, and
        Join joins it.
        """
        click(self.main.join_room_button)
        search = self.server.take("list_rooms")
        self.assertEqual(search["query"], "")
        panel = self.main.join_room_panel
        self.server.reply(
            search,
            "room_list",
            rooms=[
                {"id": 1, "name": "room1", "member_count": 2},
                {"id": 3, "name": "games", "member_count": 1},
            ],
        )
        self.assertEqual(
            rows(panel.results_model), ["room1(1)  ·  2 members", "games(3)  ·  1 member"]
        )
        QTest.keyClicks(panel.field, "gam")
        QTest.keyClick(panel.field, Qt.Key.Key_Return)
        self.assertEqual(self.server.take("list_rooms")["query"], "gam")
        panel.results.setCurrentIndex(panel.results_model.index(1))
        self.assertEqual(panel.field.text(), "games")
        click(panel.action_button)
        request = self.server.take("join_room")
        self.assertEqual(request["name"], "games")
        self.server.reply(
            request, "join_successful", room=room(3, "games", member(4, "tr"), member(1, "ncr"))
        )
        self.assertEqual(self.main.current, (ROOM, 3))
        self.assertFalse(panel.isVisible())

    def test_members_invite_and_quit(self) -> None:
        """
        The room's member panel lists members with presence, invites a
        friend who is not in yet, and leaves the room.
        """
        self.open((ROOM, 1), [])
        check_model(self, self.main.members_model)
        panel = self.main.member_panel
        self.assertEqual(rows(self.main.members_model), ["ncr(1)", "lzy(2)"])
        self.assertEqual(panel.invite_combo.currentText(), "wh(3)")
        click(panel.invite_button)
        request = self.server.take("add_friend_to_room")
        self.assertEqual((request["room_id"], request["user_id"]), (1, 3))
        self.server.reply(request, "ok")
        self.server.push("someone_inroom", room_id=1, user=member(3, "wh", online=False))
        self.assertEqual(rows(self.main.members_model), ["ncr(1)", "lzy(2)", "wh(3)"])
        self.assertFalse(panel.invite_button.isEnabled())
        self.assertEqual(self.main.notice_bar.text(), "You added wh(3) to room1.")
        click(panel.quit_button)
        request = self.server.take("quit_room")
        self.assertEqual(request["room_id"], 1)
        self.server.reply(request, "me_outroom", room_id=1)
        self.assertEqual(self.main.rooms_model.rowCount(), 0)
        self.assertFalse(panel.isVisible())
        self.assertEqual(self.main.pages.currentIndex(), 0)

    def test_member_rows_updated_in_place(self) -> None:
        """
        Presence changes update a member's row, a newcomer is inserted and
        someone who left is removed: the list is never reset, so its
        selection stays.
        """
        self.open((ROOM, 1), [])
        model = self.main.members_model
        check_model(self, model)
        view = self.main.member_panel.members_view
        view.setCurrentIndex(model.index(1))
        events: list[str] = []
        model.modelReset.connect(lambda: events.append("reset"))
        model.dataChanged.connect(lambda first, last: events.append(f"changed {first.row()}"))
        model.rowsInserted.connect(lambda parent, first, last: events.append(f"inserted {first}"))
        model.rowsRemoved.connect(lambda parent, first, last: events.append(f"removed {first}"))
        self.server.push("room_user_on_off_line", room_id=1, user_id=2, online=False)
        self.server.push("someone_inroom", room_id=1, user=member(3, "wh", online=False))
        self.assertEqual(view.currentIndex().row(), 1)
        self.server.push("someone_outroom", room_id=1, user_id=2)
        self.assertEqual(events, ["changed 1", "inserted 2", "removed 1"])
        self.assertEqual(rows(model), ["ncr(1)", "wh(3)"])
        self.assertFalse(model.index(1).data(OnlineRole))

    def test_friend_request_prompt(self) -> None:
        """
        An incoming request shows a prompt; Accept sends the answer and the
        requester becomes a friend; Decline answers no.
        """
        banner = self.main.request_banner
        self.assertFalse(banner.isVisible())
        self.server.push("incoming_friend_request", user=user(4, "tr"))
        self.server.push("incoming_friend_request", user=user(5, "wy"))
        self.assertTrue(banner.isVisible())
        self.assertIn("tr(4)", banner.text.text())
        self.assertIn("1 more", banner.text.text())
        click(banner.accept_button)
        request = self.server.take("resolve_friend_request")
        self.assertEqual((request["user_id"], request["accept"]), (4, True))
        self.server.reply(request, "add_friend_result", friend=member(4, "tr"), accepted=True)
        self.assertIn("tr(4)", rows(self.main.friends_model))
        self.assertIn("wy(5)", banner.text.text())
        click(banner.decline_button)
        request = self.server.take("resolve_friend_request")
        self.assertEqual((request["user_id"], request["accept"]), (5, False))
        self.server.reply(request, "add_friend_result", friend=member(5, "wy"), accepted=False)
        self.assertFalse(banner.isVisible())
        self.assertNotIn("wy(5)", rows(self.main.friends_model))


class NoticeBarTests(AppTestCase):
    """
    The message bar clears itself after 60 s.
    """

    def test_clears_after_a_minute(self) -> None:
        """
        A notice stays 60 s, a newer one restarts the minute, and then the
        bar is empty.
        """
        self.log_in()
        bar = self.main.notice_bar
        self.assertEqual(bar.text(), "Welcome, ncr!")
        self.session.clock.advance(59)
        self.server.push("friend_on_off_line", user_id=3, username="wh", online=True)
        self.assertEqual(bar.text(), "wh is online.")
        self.session.clock.advance(59)
        self.assertEqual(bar.text(), "wh is online.")
        self.session.clock.advance(1)
        self.assertEqual(bar.text(), "")


class ModelCheckerTests(SynchronousTestCase):
    """
    The model checker the tests rely on does catch a broken model.
    """

    def test_catches_rows_inserted_without_rows(self) -> None:
        """
        A model announcing a row it does not add is reported.
        """
        qapp()

        class Broken(QAbstractListModel):
            def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
                return 0

            def data(self, index: QModelIndex, role: int = 0) -> Any:
                return None

        class Recorder:
            def __init__(self) -> None:
                self.cleanups: list[Any] = []

            def addCleanup(self, f: Any) -> None:
                self.cleanups.append(f)

            assertEqual = SynchronousTestCase().assertEqual
            assertIs = SynchronousTestCase().assertIs

        model = Broken()
        recorder = Recorder()
        check_model(recorder, model)
        model.beginInsertRows(QModelIndex(), 0, 0)
        model.endInsertRows()
        self.assertRaises(self.failureException, recorder.cleanups[0])


class DayLabelTests(SynchronousTestCase):
    """
    Day separators name today and yesterday.
    """

    def test_day_label(self) -> None:
        """
        Today and yesterday are named; other days are dated.
        """
        from datetime import date

        today = date(2026, 11, 24)
        self.assertEqual(day_label(today, today), "Today")
        self.assertEqual(day_label(date(2026, 11, 23), today), "Yesterday")
        self.assertEqual(day_label(date(2026, 1, 2), today), "Friday, 02 January 2026")


class RemoveAndLeaveTests(AppTestCase):
    """
    Removing a friend from the friend list's context menu or the
    conversation header, and leaving a room, each only after the user
    confirms.
    """

    def setUp(self) -> None:
        super().setUp()
        self.log_in()
        self.main.show()
        self.app.processEvents()
        self.addCleanup(self._close_popups)

    def _close_popups(self) -> None:
        for widget in [*self.main.findChildren(QMenu), *self.main.findChildren(QMessageBox)]:
            widget.close()

    def friend_menu(self, row: int) -> QMenu | None:
        """
        Right-click row C{row} of the friend list (or below the last row).

        @return: the context menu that opened, if any.
        """
        view = self.main.friend_list
        index = self.main.friends_model.index(row)
        if index.isValid():
            position = view.visualRect(index).center()
        else:
            position = QPoint(10, view.viewport().height() - 5)
        event = QContextMenuEvent(
            QContextMenuEvent.Reason.Mouse, position, view.viewport().mapToGlobal(position)
        )
        QApplication.sendEvent(view.viewport(), event)
        menus = [m for m in view.findChildren(QMenu) if m.isVisible()]
        self.assertLessEqual(len(menus), 1)
        return menus[0] if menus else None

    def choose(self, menu: QMenu, text: str) -> None:
        """
        Click the entry C{text} of C{menu}.
        """
        (action,) = [a for a in menu.actions() if a.text() == text]
        QTest.mouseClick(menu, Qt.MouseButton.LeftButton, pos=menu.actionGeometry(action).center())

    def requests(self, kind: str) -> list[dict[str, Any]]:
        """
        @return: the requests of type C{kind} sent since last asked.
        """
        return [r for r in self.server.sent() if r["type"] == kind]

    def test_context_menu_removes_after_confirmation(self) -> None:
        """
        "Remove friend…" in a friend's context menu asks first, then sends
        C{remove_friend}; the reply takes the friend off the list with a
        notice.
        """
        self.assertIsNone(self.friend_menu(5))
        menu = self.friend_menu(0)
        assert menu is not None
        self.assertIn("Remove friend…", [a.text() for a in menu.actions()])
        self.answer = False
        self.choose(menu, "Remove friend…")
        self.assertEqual(len(self.questions), 1)
        self.assertIn("lzy(2)", self.questions[0][1])
        self.assertEqual(self.requests("remove_friend"), [])
        self.answer = True
        menu = self.friend_menu(0)
        assert menu is not None
        self.choose(menu, "Remove friend…")
        self.assertEqual(len(self.questions), 2)
        (request,) = self.requests("remove_friend")
        self.assertEqual(request["user_id"], 2)
        self.assertEqual(rows(self.main.friends_model), ["lzy(2)", "wh(3)"])
        self.server.reply(request, "friend_removed", user_id=2)
        self.assertEqual(rows(self.main.friends_model), ["wh(3)"])
        self.assertEqual(self.main.notice_bar.text(), "You removed lzy(2) from your friends.")

    def test_header_button_removes_the_open_friend(self) -> None:
        """
        The private conversation's header offers "Remove friend…" (a room's
        does not); once confirmed and done, the conversation closes.
        """
        self.open((ROOM, 1), [])
        self.assertFalse(self.main.remove_friend_button.isVisible())
        self.open((PRIVATE, 3), [message(5, WH, 0, 1, "hi")])
        self.assertTrue(self.main.remove_friend_button.isVisible())
        self.answer = False
        click(self.main.remove_friend_button)
        self.assertEqual(self.requests("remove_friend"), [])
        self.assertEqual(self.main.current, (PRIVATE, 3))
        self.answer = True
        click(self.main.remove_friend_button)
        self.assertIn("wh(3)", self.questions[-1][1])
        (request,) = self.requests("remove_friend")
        self.assertEqual(request["user_id"], 3)
        self.server.reply(request, "friend_removed", user_id=3)
        self.assertEqual(rows(self.main.friends_model), ["lzy(2)"])
        self.assertIsNone(self.main.current)
        self.assertEqual(self.main.pages.currentIndex(), 0)
        self.assertIsNone(self.main.history_view.timeline())
        self.assertEqual(self.main.notice_bar.text(), "You removed wh(3) from your friends.")

    def test_removed_by_the_friend(self) -> None:
        """
        A C{friend_removed} push takes the friend off the list, closes
        their open conversation and says so.
        """
        self.open((PRIVATE, 2), [])
        self.server.push("friend_removed", user_id=2)
        self.assertEqual(rows(self.main.friends_model), ["wh(3)"])
        self.assertIsNone(self.main.current)
        self.assertEqual(self.main.pages.currentIndex(), 0)
        self.assertEqual(self.main.notice_bar.text(), "lzy removed you from their friends.")

    def test_no_request_for_a_friend_gone_while_asking(self) -> None:
        """
        A confirmation given after the friend already removed us sends
        nothing.
        """
        answers: list[Any] = []
        self.patch(self.main, "confirm", lambda title, text, action, on_yes: answers.append(on_yes))
        self.open((PRIVATE, 2), [])
        click(self.main.remove_friend_button)
        self.server.push("friend_removed", user_id=2)
        (on_yes,) = answers
        on_yes()
        self.assertEqual(self.requests("remove_friend"), [])

    def test_leave_room_asks_first(self) -> None:
        """
        "Leave room" asks which room is left; cancel sends nothing and
        keeps the room, confirm sends C{quit_room}.
        """
        self.open((ROOM, 1), [])
        self.answer = False
        click(self.main.member_panel.quit_button)
        self.assertEqual(len(self.questions), 1)
        self.assertIn("room1(1)", self.questions[0][1])
        self.assertEqual(self.requests("quit_room"), [])
        self.assertEqual(self.main.current, (ROOM, 1))
        self.answer = True
        click(self.main.member_panel.quit_button)
        (request,) = self.requests("quit_room")
        self.assertEqual(request["room_id"], 1)

    def test_real_question_does_not_block(self) -> None:
        """
        Without the test's answers, "Leave room" opens a window-modal
        message box and returns at once; its Cancel sends nothing and its
        Leave button sends C{quit_room}.
        """
        self.patch(self.main, "confirm", MainWindow.confirm.__get__(self.main))
        self.open((ROOM, 1), [])

        def question() -> QMessageBox:
            (box,) = [b for b in self.main.findChildren(QMessageBox) if b.isVisible()]
            self.assertEqual(box.windowModality(), Qt.WindowModality.WindowModal)
            return box

        click(self.main.member_panel.quit_button)
        box = question()
        self.assertIn("room1(1)", box.text())
        click(box.button(QMessageBox.StandardButton.Cancel))
        self.app.processEvents()
        self.assertFalse(box.isVisible())
        self.assertEqual(self.requests("quit_room"), [])
        click(self.main.member_panel.quit_button)
        box = question()
        (leave,) = [b for b in box.buttons() if b.text() == "Leave"]
        click(leave)
        (request,) = self.requests("quit_room")
        self.assertEqual(request["room_id"], 1)
