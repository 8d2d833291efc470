"""
End to end: a real chatd server on loopback, two desktop clients in this
process (their windows built but Qt's loop not running: the Twisted reactor
drives the network), used through their windows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtTest import QTest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from chatd.protocol import Limits
from client.session import ChatClient
from client.state import ONLINE, PRIVATE, ROOM, Change, ClientState
from client.ui.app import ChatApp
from client.ui.models import KindRole, SenderRole, StatusRole, UnreadRole
from tests.qt_support import qapp
from tests.support import logged_in, start_server


def until(state: ClientState, condition: Callable[[], bool]) -> Deferred[None]:
    """
    @return: fires once C{condition()} holds, checked now and after every
        change of C{state}; it fires from the reactor's next turn, so the
        test resumes after the change (and whatever the client does with
        the same reply) is complete, never in the middle of it.
    """
    from twisted.internet import reactor

    d: Deferred[None] = Deferred()
    if condition():
        d.callback(None)
        return d

    def check(change: Change) -> None:
        if not d.called and condition():
            state.remove_listener(check)
            reactor.callLater(0, d.callback, None)

    state.add_listener(check)
    return d


def rows(model: Any, role: int = Qt.ItemDataRole.DisplayRole) -> list[Any]:
    """
    @return: C{role} of every row of a list model.
    """
    return [model.data(model.index(row), role) for row in range(model.rowCount())]


def click(widget: Any) -> None:
    """
    Click C{widget}.
    """
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


class TwoClientsTests(TestCase):
    """
    Two people register, befriend, chat one to one and in a room, and
    open a message far back in a busy room.
    """

    timeout = 30

    async def start_app(self, port: int, username: str, register: bool = True) -> ChatApp:
        """
        @param register: whether to register C{username} first, or only
            log in.
        @return: a client app that registered C{username} through its login
            window and is logged in.
        """
        from twisted.internet import reactor
        from twisted.internet.endpoints import TCP4ClientEndpoint

        qapp()
        client = ChatClient(TCP4ClientEndpoint(reactor, "127.0.0.1", port), ClientState(), reactor)
        app = ChatApp(client, Clock(), f"127.0.0.1:{port}")

        async def close() -> None:
            app._leaving = True
            app.main_window.hide()
            app.login_window.hide()
            await client.stop()
            app.bridge.detach()

        self.addCleanup(lambda: Deferred.fromCoroutine(close()))
        app.start()
        login = app.login_window
        if register:
            click(login.register_tab)
        login.username.setText(username)
        login.password.setText("secret1")
        login.password_again.setText("secret1")
        click(login.submit_button)
        state = client.state
        await until(state, lambda: state.user is not None and state.connection == ONLINE)
        self.assertTrue(app.main_window.isVisible())
        return app

    async def test_two_users_chat(self) -> None:
        """
        ncr and lzy become friends through the panels and the prompt,
        exchange private and room messages, and both main windows show
        them, with unread badges where they are not looking.
        """
        running = await start_server(self)
        ncr = await self.start_app(running.port, "ncr")
        lzy = await self.start_app(running.port, "lzy")
        a, b = ncr.main_window, lzy.main_window
        sa, sb = ncr.state, lzy.state
        me_a, me_b = sa.me, sb.me

        # Friends: ncr asks through the panel, lzy accepts in the prompt.
        click(a.add_friend_button)
        a.add_friend_panel.field.setText("lzy")
        click(a.add_friend_panel.action_button)
        await until(sb, lambda: bool(sb.requests))
        self.assertTrue(b.request_banner.isVisibleTo(b))
        self.assertIn(f"ncr({me_a})", b.request_banner.text.text())
        click(b.request_banner.accept_button)
        await until(sa, lambda: me_b in sa.friends)
        await until(sb, lambda: me_a in sb.friends)
        self.assertEqual(rows(a.friends_model), [f"lzy({me_b})"])
        self.assertEqual(rows(b.friends_model), [f"ncr({me_a})"])
        self.assertFalse(b.request_banner.isVisibleTo(b))

        # A room: ncr creates it and invites lzy from the member panel.
        click(a.create_room_button)
        a.create_room_panel.field.setText("room1")
        click(a.create_room_panel.action_button)
        await until(sa, lambda: bool(sa.rooms))
        (room_id,) = sa.rooms
        room = (ROOM, room_id)
        self.assertEqual(a.current, room)
        await until(sa, lambda: sa.conversation(room).opened)
        self.assertEqual(a.member_panel.invite_combo.currentText(), f"lzy({me_b})")
        click(a.member_panel.invite_button)
        await until(sb, lambda: room_id in sb.rooms)
        await until(sa, lambda: len(sa.conversation(room).messages) == 2)
        self.assertEqual(rows(b.rooms_model), [f"room1({room_id})"])
        self.assertEqual(rows(a.members_model), [f"ncr({me_a})", f"lzy({me_b})"])

        # One to one: ncr writes; lzy sees a badge and a notification, opens
        # the conversation and answers.
        a.select((PRIVATE, me_b))
        QTest.keyClicks(a.compose, "hello lzy")
        QTest.keyClick(a.compose, Qt.Key.Key_Return)
        await until(sb, lambda: sb.conversation((PRIVATE, me_a)).unread == 1)
        self.assertEqual(rows(b.friends_model, UnreadRole), [1])
        notified = lzy.notifier.last
        assert notified is not None
        self.assertEqual(notified[:2], ("ncr", "hello lzy"))
        b.select((PRIVATE, me_a))
        await until(sb, lambda: sb.conversation((PRIVATE, me_a)).opened)
        self.assertEqual(rows(b.friends_model, UnreadRole), [0])
        b.compose.setPlainText("hi ncr")
        click(b.send_button)
        await until(sa, lambda: len(sa.conversation((PRIVATE, me_b)).messages) == 2)

        # In the room, both ways.
        a.select(room)
        QTest.keyClicks(a.compose, "hello room")
        QTest.keyClick(a.compose, Qt.Key.Key_Return)
        await until(sb, lambda: any(m.text == "hello room" for m in sb.conversation(room).messages))
        # Unread in the room: the system message of the invitation, and this.
        self.assertEqual(rows(b.rooms_model, UnreadRole), [2])
        b.select(room)
        await until(sb, lambda: sb.conversation(room).opened)
        b.compose.setPlainText("hi room")
        click(b.send_button)
        await until(sa, lambda: len(sa.conversation(room).messages) == 4)
        await until(sb, lambda: not sb.conversation(room).pending)

        # What both windows show.
        self.assertEqual(
            rows(a.history_view.model()),
            [
                "ncr created the room",
                "ncr added lzy to the room",
                "hello room",
                "hi room",
            ],
        )
        self.assertEqual(
            rows(a.history_view.model(), KindRole), ["system", "system", "text", "text"]
        )
        self.assertEqual(
            rows(b.history_view.model()),
            [
                "ncr added lzy to the room",
                "hello room",
                "hi room",
            ],
        )
        self.assertEqual(rows(b.history_view.model(), SenderRole), ["ncr", "ncr", "lzy"])
        self.assertEqual(rows(b.history_view.model(), StatusRole), ["sent"] * 3)
        a.select((PRIVATE, me_b))
        self.assertEqual(rows(a.history_view.model()), ["hello lzy", "hi ncr"])
        self.assertEqual(rows(a.history_view.model(), SenderRole), ["ncr", "lzy"])
        self.assertEqual(rows(a.rooms_model, UnreadRole), [0])
        self.assertEqual(b.conversation_title.text(), f"room1({room_id})")

    async def test_open_a_search_result_far_back(self) -> None:
        """
        A search result far back in a busy room opens as the window around
        it (not every page from now back to it), and "Jump to latest" comes
        back to the newest messages.
        """
        running = await start_server(self, limits=Limits(rate=10_000.0, burst=10_000))
        ncr = await logged_in(self, running.port, "ncr")
        lzy = await logged_in(self, running.port, "lzy")
        created = await lzy.request("create_room", name="busy")
        room_id = created["room"]["id"]
        await ncr.request("join_room", name="busy")
        await ncr.close()
        sent = []
        for n in range(200):
            text = "the needle" if n == 59 else f"chatter {n}"
            reply = await lzy.request(
                "send_message", target_type=ROOM, target_id=room_id, message=text
            )
            sent.append(reply["message"]["id"])
        needle = sent[59]

        app = await self.start_app(running.port, "ncr", register=False)
        state, main = app.state, app.main_window
        room = (ROOM, room_id)
        page = await app.client.search("needle")
        (found,) = page.messages
        self.assertEqual(found.id, needle)
        main.open_search_result(found)
        conversation = state.conversation(room)
        await until(state, lambda: conversation.holds(needle) and conversation.detached)
        self.assertEqual([m.id for m in conversation.messages], sent[35:85])
        view = main.history_view
        self.assertEqual(view.currentIndex().data(), "the needle")
        self.assertTrue(view.latest_button.isVisibleTo(main))

        click(view.latest_button)
        await until(state, lambda: not conversation.detached)
        self.assertEqual([m.id for m in conversation.messages], sent[150:])
        self.assertEqual(rows(view.model())[-1], "chatter 199")
        self.assertFalse(view.latest_button.isVisibleTo(main))
