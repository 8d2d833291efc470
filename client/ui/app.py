"""
The desktop client put together: the windows, the tray notifications, and
the wiring from what the user wants to the L{ChatClient}'s requests.

Every slot here returns at once: it starts a request, and the reply, when
it comes, updates the state (and through the bridge, the models) or shows a
notice.
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import QObject, pyqtSignal
from PyQt5.QtWidgets import QSystemTrayIcon
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from client import texts
from client.protocol import ChatError, Disconnected
from client.search import SearchPage, SearchRequest
from client.session import ChatClient
from client.state import (
    MODERATOR,
    ONLINE,
    ROOM,
    Key,
    Message,
    MessageOutsideWindow,
    MessagesInserted,
    Payload,
    User,
)
from client.ui.bridge import StateBridge
from client.ui.files import FileStore, FileToSend
from client.ui.login import LOGIN, LoginWindow
from client.ui.main_window import MainWindow
from client.ui.models import label
from client.ui.password import PasswordDialog
from client.ui.style import app_icon


def describe(failure: Failure) -> str:
    """
    @return: a sentence for people about a failed request.
    """
    error = failure.value
    if isinstance(error, ChatError):
        return texts.FRIENDLY_ERRORS.get(error.code, error.message)
    return str(error)


def describe_password_failure(failure: Failure) -> str:
    """
    @return: a sentence for people about a password change that failed.
    """
    error = failure.value
    if isinstance(error, ChatError):
        return texts.PASSWORD_ERRORS.get(error.code, error.message)
    if isinstance(error, Disconnected):
        return texts.PASSWORD_OFFLINE
    return str(error)


def describe_moderation_failure(failure: Failure, request: str) -> str:
    """
    @param request: the type of the request that failed (C{set_topic},
        C{set_role}, C{kick_from_room}, C{unban_from_room}).
    @return: a sentence for people about a refused room moderation request
        (PROTOCOL.md section 12).
    """
    error = failure.value
    if isinstance(error, ChatError):
        return texts.moderation_error(request, error.code) or error.message
    return str(error)


def describe_search_failure(failure: Failure) -> str:
    """
    @return: a sentence for people about a failed search.
    """
    error = failure.value
    if isinstance(error, ChatError):
        return texts.SEARCH_ERRORS.get(error.code, error.message)
    if isinstance(error, Disconnected):
        return texts.SEARCH_OFFLINE
    return texts.SEARCH_FAILED


class TrayNotifier(QObject):
    """
    Desktop notifications through the system tray.

    @ivar last: the latest notification, as (title, text, conversation), or
        L{None}: a click on the tray's message opens its conversation (the
        tray shows one message at a time, so nothing older is kept).
    """

    #: A notification was clicked: show its conversation.
    activated = pyqtSignal(object)  # Key

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.last: tuple[str, str, Key] | None = None
        self._tray = QSystemTrayIcon(app_icon(), self)
        self._tray.setToolTip("chatd")
        self._tray.messageClicked.connect(self._clicked)
        if QSystemTrayIcon.isSystemTrayAvailable():
            self._tray.show()

    def notify(self, title: str, text: str, key: Key) -> None:
        """
        Show a notification about conversation C{key}.
        """
        self.last = (title, text, key)
        if self._tray.isVisible() and QSystemTrayIcon.supportsMessages():
            self._tray.showMessage(title, text, app_icon(), 8000)

    def _clicked(self) -> None:
        if self.last is not None:
            self.activated.emit(self.last[2])

    def hide(self) -> None:
        """
        Take the icon out of the tray (the program ends).
        """
        self._tray.hide()


class ChatApp(QObject):
    """
    The login window, the main window and the tray, wired to a
    L{ChatClient}.
    """

    log = Logger()

    #: The user closed a window: the program should end.
    quit_requested = pyqtSignal()

    def __init__(
        self,
        client: ChatClient,
        clock: IReactorTime,
        server: str = "",
        notifier: TrayNotifier | None = None,
        parent: QObject | None = None,
        cache_directory: str | None = None,
    ) -> None:
        """
        @param clock: for the message bar.
        @param server: where the server is, for people.
        @param cache_directory: where downloaded files are kept; by
            default C{~/.cache/chatd/files}.
        """
        super().__init__(parent)
        self.client = client
        self.state = client.state
        self.bridge = StateBridge(self.state, self)
        self.notifier = notifier or TrayNotifier(self)
        self.files = FileStore(client.request, cache_directory, clock, self)
        self.login_window = LoginWindow(server)
        self.main_window = MainWindow(self.bridge, clock, self.files)
        self.password_dialog = PasswordDialog(self.main_window)
        self.password_dialog.change_requested.connect(self.change_password)

        login = self.login_window
        login.login_requested.connect(self.log_in)
        login.register_requested.connect(self.register)
        login.closed.connect(self._window_closed)

        main = self.main_window
        main.conversation_selected.connect(client.view)
        main.older_requested.connect(client.load_older)
        main.newer_requested.connect(client.load_newer)
        main.latest_requested.connect(client.load_latest)
        main.around_requested.connect(self.load_around)
        main.send_requested.connect(self.send)
        main.upload_requested.connect(self.upload)
        main.upload_cancel_requested.connect(self.cancel_upload)
        main.upload_retry_requested.connect(client.retry_file)
        main.save_requested.connect(self.files.save)
        main.edit_requested.connect(self.edit)
        main.delete_requested.connect(self.delete)
        main.react_requested.connect(self.react)
        main.typed.connect(client.typed)
        main.typing_stopped.connect(client.stop_typing)
        main.add_friend_requested.connect(self.add_friend)
        main.create_room_requested.connect(self.create_room)
        main.join_room_requested.connect(self.join_room)
        main.room_search_requested.connect(self.search_rooms)
        main.message_search_requested.connect(self.search_messages)
        main.invite_requested.connect(self.invite)
        main.quit_room_requested.connect(self.quit_room)
        main.topic_requested.connect(self.set_topic)
        main.role_requested.connect(self.set_role)
        main.kick_requested.connect(self.kick)
        main.unban_requested.connect(self.unban)
        main.remove_friend_requested.connect(self.remove_friend)
        main.friend_request_answered.connect(self.answer_friend_request)
        main.logout_requested.connect(self.log_out)
        main.change_password_requested.connect(self.password_dialog.start)
        main.closed.connect(self._window_closed)

        self.bridge.messages_inserted.connect(self._messages_inserted)
        self.bridge.message_outside_window.connect(self._message_outside_window)
        self.bridge.signed_out.connect(self._signed_out)
        self.bridge.connection_changed.connect(self._connection_changed)
        self.notifier.activated.connect(self._show_conversation)
        self._leaving = False

    def start(self) -> None:
        """
        Sign in with the stored session token, if there is one, showing the
        main window while it happens; otherwise show the login window.
        """
        username = self.client.saved_username
        if username is None:
            self.login_window.show()
            self.login_window.username.setFocus()
            return
        signing_in = texts.SIGNING_IN.format(username=username)
        self.main_window.show()
        self.main_window.show_notice(signing_in)

        def resumed(user: User) -> None:
            self.main_window.withdraw_notice(signing_in)
            self._logged_in(user)

        def failed(failure: Failure) -> None:
            failure.trap(ChatError, Disconnected)
            self.main_window.withdraw_notice(signing_in)
            self._resume_failed(failure, username)

        self.client.resume().addCallbacks(resumed, failed).addErrback(self._bug)

    def _resume_failed(self, failure: Failure, username: str) -> None:
        """
        Signing in with the stored token at start failed: the login window
        says why, the username filled in.
        """
        login = self.login_window
        error = failure.value
        if isinstance(error, ChatError) and error.code in texts.RESUME_REFUSED:
            text = texts.RESUME_REFUSED[error.code]
        else:
            text = describe(failure)
        login.username.setText(username)
        login.show()
        self.main_window.hide()
        login.password.setFocus()
        login.show_error(text)

    # Logging in and out.

    def log_in(self, username: str, password: str) -> None:
        """
        Log in, staying logged in after this run if the login window says
        so; the main window replaces the login window when it works.
        """
        self.login_window.set_busy(True, "Logging in…")
        stay = self.login_window.stay_logged_in.isChecked()
        d = self.client.login(username, password, stay_logged_in=stay)
        d.addCallbacks(self._logged_in, self._login_failed)

    def _logged_in(self, user: User) -> None:
        login = self.login_window
        login.set_busy(False)
        login.clear_message()
        login.password.clear()
        login.password_again.clear()
        self.main_window.show()
        self.main_window.raise_()
        login.hide()
        self.main_window.show_notice(f"Welcome, {user.username}!")

    def _login_failed(self, failure: Failure) -> None:
        failure.trap(ChatError, Disconnected)
        self.login_window.set_busy(False)
        self.login_window.password.clear()
        self.login_window.show_error(describe(failure))

    def register(self, username: str, password: str) -> None:
        """
        Register, then log in with the same name and password.
        """
        self.login_window.set_busy(True, "Creating your account…")
        d = self.client.register(username, password)
        d.addCallbacks(lambda user: self.log_in(username, password), self._register_failed)

    def _register_failed(self, failure: Failure) -> None:
        failure.trap(ChatError, Disconnected)
        self.login_window.set_busy(False)
        self.login_window.show_error(describe(failure))

    def log_out(self) -> None:
        """
        Log out; the login window comes back.
        """
        self.main_window.logout_button.setEnabled(False)
        self.client.logout().addErrback(self._bug)

    def change_password(self, current: str, new: str) -> None:
        """
        Change the password; the dialog closes and a notice says so when it
        worked, or the dialog says why not.
        """
        dialog = self.password_dialog
        try:
            d = self.client.change_password(current, new)
        except ValueError as e:
            dialog.show_error(str(e))
            return

        def changed(_: None) -> None:
            dialog.finish()
            self.main_window.show_notice(texts.PASSWORD_CHANGED)

        def failed(failure: Failure) -> None:
            failure.trap(ChatError, Disconnected)
            text = describe_password_failure(failure)
            if dialog.isVisible():
                dialog.show_error(text)
            else:
                self.main_window.show_notice(text)

        d.addCallbacks(changed, failed).addErrback(self._bug)

    def _signed_out(self, reason: str | None) -> None:
        main, login = self.main_window, self.login_window
        self.files.stop()
        main.logout_button.setEnabled(True)
        self.password_dialog.reject()
        main.select(None)
        if self._leaving:
            return
        login.set_mode(LOGIN)
        login.show()
        main.hide()
        if reason:
            login.show_error(reason)
        else:
            login.show_info("You have logged out.")

    def _window_closed(self) -> None:
        if not self._leaving:
            self._leaving = True
            self.notifier.hide()
            self.quit_requested.emit()

    # Conversations.

    def send(self, key: Key, text: str, reply_to: Message | None = None) -> None:
        """
        Send C{text}, perhaps answering C{reply_to}; it shows as pending
        until the server has it.
        """
        try:
            self.client.send(key, text, reply_to)
        except ValueError as e:
            self.main_window.show_notice(str(e))
            return
        if not self.client.online:
            self.main_window.show_notice(texts.OFFLINE_SEND)

    def upload(self, file: FileToSend) -> None:
        """
        Send a file: it shows at once in its conversation, with its
        upload's progress and a Cancel button, and the message takes its
        place once sent; what cannot even start is said in the message bar.
        """
        try:
            self.client.send_file(
                file.key,
                path=file.path,
                data=file.data,
                name=file.name,
                caption=file.caption,
                reply_to=file.reply_to,
            )
        except ValueError as e:
            self.main_window.show_notice(str(e))
            return
        if not self.client.online:
            self.main_window.show_notice(texts.OFFLINE_SEND)

    def cancel_upload(self, client_msg_id: str) -> None:
        """
        Stop sending a file (or dismiss one that failed).
        """
        self.client.cancel_file(client_msg_id)

    def edit(self, message_id: int, text: str) -> None:
        """
        Replace the text of one of our messages.
        """
        try:
            d = self.client.edit(message_id, text)
        except ValueError as e:
            self.main_window.show_notice(str(e))
            return
        d.addErrback(self._report)

    def delete(self, message_id: int) -> None:
        """
        Delete a message for everyone.
        """
        self.client.delete(message_id).addErrback(self._report)

    def react(self, message_id: int, emoji: str, on: bool) -> None:
        """
        Add or take back our reaction.
        """
        self.client.react(message_id, emoji, on).addErrback(self._report)

    def _connection_changed(self, status: str) -> None:
        self.files.connection_changed(status)
        if status == ONLINE:
            self.main_window.withdraw_notice(texts.OFFLINE_SEND)

    def load_around(self, key: Key, message_id: int) -> None:
        """
        Load the window of messages around C{message_id}, far back in
        C{key}, and tell the main window how it went.
        """

        def loaded(found: bool) -> None:
            self.main_window.around_loaded(key, message_id, None if found else texts.MESSAGE_GONE)

        def failed(failure: Failure) -> None:
            failure.trap(ChatError, Disconnected)
            self.main_window.around_loaded(key, message_id, describe(failure))

        d = self.client.load_around(key, message_id)
        d.addCallbacks(loaded, failed).addErrback(self._bug)

    def _messages_inserted(self, change: MessagesInserted) -> None:
        if change.live:
            self._notify(change.key, change.messages)

    def _message_outside_window(self, change: MessageOutsideWindow) -> None:
        self._notify(change.key, (change.message,))

    def _notify(self, key: Key, messages: tuple[Message, ...]) -> None:
        """
        Notify of new messages from others in C{key}, unless it is in view.
        """
        if self._in_view(key):
            return
        for message in messages:
            if message.system:
                continue
            mentioned = self.state.me in message.mentions
            sender = message.sender_name or "?"
            if mentioned:
                title = f"{sender} mentioned you"
                if key[0] == ROOM:
                    title += f" in {self.state.name_of(key)}"
            elif key[0] == ROOM:
                title = f"{sender} in {self.state.name_of(key)}"
            else:
                title = sender
            text = message.text
            if message.file is not None:
                text = texts.with_file(message.file.name, text)
            text = text if len(text) <= 140 else text[:139] + "…"
            self.notifier.notify(title, text, key)

    def _in_view(self, key: Key) -> bool:
        window = self.main_window
        return (
            key == self.state.viewed
            and window.isVisible()
            and not window.isMinimized()
            and window.isActiveWindow()
        )

    def _show_conversation(self, key: Key) -> None:
        self.main_window.showNormal()
        self.main_window.activateWindow()
        self.main_window.select(key)

    # Friends and rooms.

    def _report(self, failure: Failure) -> None:
        failure.trap(ChatError, Disconnected)
        self.main_window.show_notice(describe(failure))

    def add_friend(self, username: str) -> None:
        """
        Ask C{username} to be a friend.
        """

        def done(reply: Payload) -> None:
            self.main_window.close_panels()
            if reply["type"] == "friend_request_sent":
                user = reply["user"]
                self.main_window.show_notice(
                    f"Friend request sent to {label(user['username'], user['id'])}."
                )
            else:
                friend = reply["friend"]
                self.main_window.show_notice(
                    f"You and {label(friend['username'], friend['id'])} are now friends."
                )

        self.client.add_friend(username).addCallbacks(done, self._report)

    def answer_friend_request(self, user_id: int, accept: bool) -> None:
        """
        Accept or decline the friend request of C{user_id}.
        """

        def done(reply: Payload) -> None:
            friend = reply["friend"]
            name = label(friend["username"], friend["id"])
            if reply.get("accepted"):
                self.main_window.show_notice(f"You and {name} are now friends.")
            else:
                self.main_window.show_notice(f"You declined {name}'s request.")

        d = self.client.resolve_friend_request(user_id, accept)
        d.addCallbacks(done, self._report)

    def remove_friend(self, user_id: int) -> None:
        """
        End the friendship with C{user_id}; the friend leaves the list and
        their conversation closes when the server confirms.
        """
        friend = self.state.friends.get(user_id)
        name = label(friend.username, user_id) if friend else f"user {user_id}"

        def done(reply: Payload) -> None:
            self.main_window.show_notice(f"You removed {name} from your friends.")

        self.client.remove_friend(user_id).addCallbacks(done, self._report)

    def create_room(self, name: str) -> None:
        """
        Create room C{name} and show it.
        """

        def done(reply: Payload) -> None:
            room = reply["room"]
            self.main_window.close_panels()
            self.main_window.select((ROOM, int(room["id"])))
            self.main_window.show_notice(
                f"You created room {label(room['name'], room['id'])}. Invite your friends!"
            )

        self.client.create_room(name).addCallbacks(done, self._report)

    def join_room(self, name: str) -> None:
        """
        Join room C{name} and show it.
        """

        def done(reply: Payload) -> None:
            room = reply["room"]
            self.main_window.close_panels()
            self.main_window.select((ROOM, int(room["id"])))
            self.main_window.show_notice(f"You joined room {label(room['name'], room['id'])}.")

        self.client.join_room(name).addCallbacks(done, self._report)

    def search_rooms(self, query: str) -> None:
        """
        Search the server's rooms for the join panel.
        """
        d = self.client.list_rooms(query)
        d.addCallbacks(self.main_window.show_room_search, self._report)

    def search_messages(self, request: SearchRequest) -> None:
        """
        Ask the server for the page of search results C{request} names;
        the main window shows it, or why it failed, unless the user has
        searched for something else meanwhile.
        """
        d = self.client.search(request.query, request.key, request.before)

        def found(page: SearchPage) -> None:
            self.main_window.show_search_results(request, page)

        def failed(failure: Failure) -> None:
            if not failure.check(ChatError, Disconnected):
                # Not the server's refusal nor the network: a bug.
                self.log.failure("A search failed", failure)
            self.main_window.show_search_error(request, describe_search_failure(failure))

        d.addCallbacks(found, failed).addErrback(self._bug)

    def invite(self, room_id: int, user_id: int) -> None:
        """
        Add friend C{user_id} to room C{room_id}.
        """
        friend = self.state.friends.get(user_id)
        name = label(friend.username, user_id) if friend else f"user {user_id}"

        def done(reply: Payload) -> None:
            room = self.state.name_of((ROOM, room_id))
            self.main_window.show_notice(f"You added {name} to {room}.")

        self.client.invite(room_id, user_id).addCallbacks(done, self._report)

    def quit_room(self, room_id: int) -> None:
        """
        Leave room C{room_id}.
        """
        room = label(self.state.name_of((ROOM, room_id)), room_id)

        def done(reply: Payload) -> None:
            self.main_window.show_notice(f"You left room {room}.")

        self.client.quit_room(room_id).addCallbacks(done, self._report)

    # Room topics, roles and moderation (PROTOCOL.md section 12).

    def _moderation_failed(self, request: str) -> Any:
        """
        @return: an errback telling a refused C{request} in the message bar.
        """

        def failed(failure: Failure) -> None:
            failure.trap(ChatError, Disconnected)
            self.main_window.show_notice(describe_moderation_failure(failure, request))

        return failed

    def _names(self, room_id: int, user_id: int) -> tuple[str, str]:
        """
        @return: how the notices name member C{user_id} and room C{room_id}.
        """
        room = self.state.rooms.get(room_id)
        member = room.members.get(user_id) if room is not None else None
        who = label(member.username, user_id) if member is not None else f"user {user_id}"
        return who, label(self.state.name_of((ROOM, room_id)), room_id)

    def set_topic(self, room_id: int, topic: str) -> None:
        """
        Set the topic of room C{room_id}; the header shows it once the
        server has it, or the field opens again saying why not.
        """
        try:
            d = self.client.set_topic(room_id, topic)
        except ValueError as e:
            self.main_window.topic_failed(room_id, str(e))
            return

        def failed(failure: Failure) -> None:
            failure.trap(ChatError, Disconnected)
            text = describe_moderation_failure(failure, "set_topic")
            self.main_window.topic_failed(room_id, text)

        d.addCallbacks(lambda reply: self.main_window.topic_saved(room_id), failed)

    def set_role(self, room_id: int, user_id: int, role: str) -> None:
        """
        Make member C{user_id} of room C{room_id} a moderator, or a plain
        member again.
        """
        who, where = self._names(room_id, user_id)

        def done(reply: Payload) -> None:
            if role == MODERATOR:
                self.main_window.show_notice(f"{who} is now a moderator of {where}.")
            else:
                self.main_window.show_notice(f"{who} is no longer a moderator of {where}.")

        d = self.client.set_role(room_id, user_id, role)
        d.addCallbacks(done, self._moderation_failed("set_role"))

    def kick(self, room_id: int, user_id: int, ban: bool) -> None:
        """
        Remove member C{user_id} from room C{room_id}; with C{ban}, keep
        them out.
        """
        who, where = self._names(room_id, user_id)

        def done(reply: Payload) -> None:
            if ban:
                self.main_window.show_notice(
                    f"You banned {who} from {where}. To let them back, use"
                    " “Banned by you” under the members."
                )
            else:
                self.main_window.show_notice(f"You removed {who} from {where}.")

        d = self.client.kick(room_id, user_id, ban)
        d.addCallbacks(done, self._moderation_failed("kick_from_room"))

    def unban(self, room_id: int, user_id: int) -> None:
        """
        Lift our ban of C{user_id} from room C{room_id}.
        """
        banned = {u.id: u for u in self.state.banned(room_id)}.get(user_id)
        who = label(banned.username, user_id) if banned is not None else f"user {user_id}"
        where = label(self.state.name_of((ROOM, room_id)), room_id)

        def done(reply: Payload) -> None:
            self.main_window.show_notice(f"{who} may join {where} again.")

        d = self.client.unban(room_id, user_id)
        d.addCallbacks(done, self._moderation_failed("unban_from_room"))

    def _bug(self, failure: Failure) -> Any:
        self.log.failure("A client action failed", failure)
