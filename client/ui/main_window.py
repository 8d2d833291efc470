"""
The main window: friends and rooms on the left, the selected conversation
in the middle, the selected room's members (or the search of our messages)
on the right, notices at the bottom.

It renders models fed by the L{StateBridge} and emits what the user wants
(select, send, add a friend, ...); L{client.ui.app.ChatApp} turns those
wishes into requests.  Nothing here waits for the network, nor for the
user: what needs confirming (removing a friend, leaving a room) is asked
with L{MainWindow.confirm}, which returns at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Final

from PyQt5.QtCore import QItemSelection, QPoint, QStandardPaths, Qt, pyqtSignal
from PyQt5.QtGui import QCloseEvent, QImage, QKeySequence, QTextCursor
from PyQt5.QtWidgets import (
    QWIDGETSIZE_MAX,
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QMainWindow,
    QMenu,
    QMessageBox,
    QShortcut,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatd.wire import valid_message
from client import texts
from client.search import SearchPage, SearchRequest
from client.session import PAGE_SIZE
from client.state import (
    OFFLINE,
    ONLINE,
    PRIVATE,
    ROOM,
    BansChanged,
    Contact,
    HistoryStateChanged,
    Key,
    MembersChanged,
    Message,
    TopicChanged,
    TypingChanged,
    User,
)
from client.transfers import TransferCancelled, TransferFailed
from client.ui.bridge import StateBridge
from client.ui.delegates import ContactDelegate, MessageDelegate
from client.ui.files import FileStore, FileToSend, ImageViewer, ask_file, pasted_name, png_bytes
from client.ui.models import (
    ContactListModel,
    MemberListModel,
    SearchResultsModel,
    TimelineModel,
    label,
)
from client.ui.rooms import TopicLine
from client.ui.style import ACCENT_DARK, app_icon, restyle
from client.ui.widgets import (
    ActionPanel,
    ComposeContext,
    ComposeEdit,
    EmojiPicker,
    JoinRoomPanel,
    MemberPanel,
    NoticeBar,
    RequestBanner,
    SearchPanel,
    TimelineView,
    avatar_pixmap,
    button,
    typing_line,
)

#: What the status chip says for each connection status.
STATUS_TEXT: Final = {ONLINE: "Online", OFFLINE: "Offline"}
CONNECTING_TEXT: Final = "Reconnecting…"
#: Seconds a message reached from a quote stays marked.
FLASH_SECONDS: Final = 1.5


def _section(title: str, *buttons: QWidget) -> QHBoxLayout:
    row = QHBoxLayout()
    row.setContentsMargins(16, 12, 10, 4)
    heading = QLabel(title)
    heading.setObjectName("SectionTitle")
    row.addWidget(heading)
    row.addStretch(1)
    for widget in buttons:
        row.addWidget(widget)
    return row


class MainWindow(QMainWindow):
    """
    The chat window of a logged-in user.

    @ivar friends_model: the friend list.
    @ivar rooms_model: the room list.
    @ivar members_model: the selected room's members.
    """

    log = Logger()

    conversation_selected = pyqtSignal(object)  # Key | None
    older_requested = pyqtSignal(object)  # Key
    newer_requested = pyqtSignal(object)  # Key
    latest_requested = pyqtSignal(object)  # Key
    around_requested = pyqtSignal(object, int)  # Key, message id
    send_requested = pyqtSignal(object, str, object)  # Key, text, Message replied to | None
    edit_requested = pyqtSignal(int, str)  # message id, new text
    delete_requested = pyqtSignal(int)  # message id
    react_requested = pyqtSignal(int, str, bool)  # message id, emoji, on
    upload_requested = pyqtSignal(object)  # FileToSend
    upload_cancel_requested = pyqtSignal(str)  # client_msg_id
    upload_retry_requested = pyqtSignal(str)  # client_msg_id
    save_requested = pyqtSignal(object, str)  # File, local path
    typed = pyqtSignal(object)  # Key
    typing_stopped = pyqtSignal()
    add_friend_requested = pyqtSignal(str)
    create_room_requested = pyqtSignal(str)
    join_room_requested = pyqtSignal(str)
    room_search_requested = pyqtSignal(str)
    invite_requested = pyqtSignal(int, int)  # room id, user id
    quit_room_requested = pyqtSignal(int)
    topic_requested = pyqtSignal(int, str)  # room id, topic
    role_requested = pyqtSignal(int, int, str)  # room id, user id, role
    kick_requested = pyqtSignal(int, int, bool)  # room id, user id, ban
    unban_requested = pyqtSignal(int, int)  # room id, user id
    remove_friend_requested = pyqtSignal(int)  # user id
    message_search_requested = pyqtSignal(object)  # SearchRequest
    friend_request_answered = pyqtSignal(int, bool)  # user id, accept
    logout_requested = pyqtSignal()
    change_password_requested = pyqtSignal()
    closed = pyqtSignal()

    def __init__(
        self,
        bridge: StateBridge,
        clock: IReactorTime,
        files: FileStore | None = None,
        parent: QWidget | None = None,
    ) -> None:
        """
        @param clock: runs the message bar's 60 s timer.
        @param files: the images and saves file messages show.
        """
        super().__init__(parent)
        self.bridge = bridge
        self.state = bridge.state
        self.files = files or FileStore(parent=self)
        #: The latest window opened on an image.
        self.image_viewer: ImageViewer | None = None
        self.setWindowTitle("chatd")
        self.setWindowIcon(app_icon())
        self.resize(1120, 720)
        self.setMinimumSize(820, 520)
        self._current: Key | None = None
        self._timelines: dict[Key, TimelineModel] = {}
        self._removing = False
        # What the input box is writing besides a new message.
        self._replying: Message | None = None
        self._editing: Message | None = None
        # The message a click on a quote or a search result asked for,
        # while pages load; and whose window around it is on its way.
        self._jumping_to: int | None = None
        self._around: int | None = None
        self._unflash: IDelayedCall | None = None
        self._clock = clock

        self.friends_model = ContactListModel(bridge, PRIVATE, self)
        self.rooms_model = ContactListModel(bridge, ROOM, self)
        self.members_model = MemberListModel(bridge, self)
        self.search_model = SearchResultsModel(bridge, self)

        central = QWidget()
        outer = QVBoxLayout(central)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        outer.addWidget(self._build_header())
        body = QHBoxLayout()
        body.setSpacing(0)
        body.addWidget(self._build_sidebar())
        body.addWidget(self._build_conversation(), 1)
        self.member_panel = MemberPanel(self.members_model)
        self.member_panel.hide()
        body.addWidget(self.member_panel)
        self.search_panel = SearchPanel(self.search_model, clock)
        self.search_panel.hide()
        body.addWidget(self.search_panel)
        outer.addLayout(body, 1)
        self.notice_bar = NoticeBar(clock)
        outer.addWidget(self.notice_bar)
        self.setCentralWidget(central)

        self.member_panel.invite_requested.connect(self.invite_requested)
        self.member_panel.quit_requested.connect(self.ask_quit_room)
        self.member_panel.role_requested.connect(self.role_requested)
        self.member_panel.remove_requested.connect(self.ask_remove_member)
        self.member_panel.unban_requested.connect(self.unban_requested)
        self.request_banner.answered.connect(self.friend_request_answered)
        self.search_panel.search_requested.connect(self.message_search_requested)
        self.search_panel.result_opened.connect(self.open_search_result)
        self.search_panel.closed.connect(self._search_closed)
        # Ctrl+F finds in the conversation shown, Ctrl+K in all of them.
        self.find_shortcut = QShortcut(QKeySequence("Ctrl+F"), self)
        self.find_shortcut.activated.connect(lambda: self.open_search(here=True))
        self.search_shortcut = QShortcut(QKeySequence("Ctrl+K"), self)
        self.search_shortcut.activated.connect(lambda: self.open_search(here=False))

        bridge.reset.connect(self._reset)
        bridge.contact_removed.connect(self._contact_removed)
        bridge.contact_changed.connect(self._contact_changed)
        bridge.contact_added.connect(self._contact_added)
        bridge.members_changed.connect(self._members_changed)
        bridge.topic_changed.connect(self._topic_changed)
        bridge.bans_changed.connect(self._bans_changed)
        bridge.typing_changed.connect(self._typing_changed)
        bridge.history_state_changed.connect(self._history_state_changed)
        bridge.requests_changed.connect(self.request_banner.set_requests)
        bridge.connection_changed.connect(self._connection_changed)
        bridge.notice.connect(self.notice_bar.show_notice)
        self._reset()
        self._connection_changed(self.state.connection)

    # Building.

    def _build_header(self) -> QWidget:
        header = QFrame()
        header.setObjectName("Header")
        layout = QHBoxLayout(header)
        layout.setContentsMargins(16, 10, 14, 10)
        layout.setSpacing(10)
        logo = QLabel()
        logo.setPixmap(app_icon().pixmap(28, 28))
        layout.addWidget(logo)
        title = QLabel("chatd")
        title.setObjectName("AppTitle")
        layout.addWidget(title)
        layout.addStretch(1)
        self.search_button = button(
            "Search messages", None, "Search all conversations (Ctrl+K), or this one (Ctrl+F)"
        )
        self.search_button.clicked.connect(lambda: self.open_search())
        layout.addWidget(self.search_button)
        layout.addSpacing(6)
        self.user_avatar = QLabel()
        layout.addWidget(self.user_avatar)
        self.user_label = QLabel()
        self.user_label.setStyleSheet("font-weight: 600;")
        layout.addWidget(self.user_label)
        self.status_chip = QLabel()
        self.status_chip.setObjectName("StatusChip")
        layout.addWidget(self.status_chip)
        layout.addSpacing(6)
        self.change_password_button = button("Change password…", None, "Change your password")
        self.change_password_button.clicked.connect(self.change_password_requested)
        layout.addWidget(self.change_password_button)
        self.logout_button = button("Log out")
        self.logout_button.clicked.connect(self.logout_requested)
        layout.addWidget(self.logout_button)
        return header

    def _list_view(self, model: ContactListModel) -> QListView:
        view = QListView()
        # A row removed under the selection makes the view select its
        # neighbour: that is not the user picking it.  Connected before the
        # view connects its own, to be told first.
        model.rowsAboutToBeRemoved.connect(lambda *_: self._set_removing(True))
        view.setModel(model)
        model.rowsRemoved.connect(lambda *_: self._set_removing(False))
        view.setItemDelegate(ContactDelegate(view))
        view.setMouseTracking(True)
        view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        selection = view.selectionModel()
        assert selection is not None
        selection.selectionChanged.connect(lambda selected, _: self._picked(model, selected))
        return view

    def _set_removing(self, removing: bool) -> None:
        self._removing = removing

    def _build_sidebar(self) -> QWidget:
        sidebar = QFrame()
        sidebar.setObjectName("Sidebar")
        sidebar.setFixedWidth(280)
        layout = QVBoxLayout(sidebar)
        layout.setContentsMargins(0, 0, 0, 10)
        layout.setSpacing(2)

        self.add_friend_button = button("+ Add", "Flat", "Add a friend")
        layout.addLayout(_section("FRIENDS", self.add_friend_button))
        self.friend_list = self._list_view(self.friends_model)
        self.friend_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.friend_list.customContextMenuRequested.connect(self._friend_menu)
        layout.addWidget(self.friend_list, 1)

        self.join_room_button = button("Join", "Flat", "Join a room")
        self.create_room_button = button("+ New", "Flat", "Create a room")
        layout.addLayout(_section("ROOMS", self.join_room_button, self.create_room_button))
        self.room_list = self._list_view(self.rooms_model)
        layout.addWidget(self.room_list, 1)

        self.add_friend_panel = ActionPanel(
            "Add a friend",
            "Their username",
            "Send request",
            "They will be asked to accept.",
        )
        self.create_room_panel = ActionPanel(
            "Create a room",
            "Room name",
            "Create",
            "Letters, digits and _; you will be its first member.",
        )
        self.join_room_panel = JoinRoomPanel()
        self._panels: list[ActionPanel] = [
            self.add_friend_panel,
            self.create_room_panel,
            self.join_room_panel,
        ]
        for panel in self._panels:
            panel.hide()
            holder = QHBoxLayout()
            holder.setContentsMargins(10, 6, 10, 0)
            holder.addWidget(panel)
            layout.addLayout(holder)
            panel.cancelled.connect(self._fit_sidebar)
        self.add_friend_button.clicked.connect(lambda: self.open_panel(self.add_friend_panel))
        self.create_room_button.clicked.connect(lambda: self.open_panel(self.create_room_panel))
        self.join_room_button.clicked.connect(lambda: self.open_panel(self.join_room_panel))
        self.add_friend_panel.submitted.connect(self.add_friend_requested)
        self.create_room_panel.submitted.connect(self.create_room_requested)
        self.join_room_panel.submitted.connect(self._join_or_open)
        self.join_room_panel.search_requested.connect(self.room_search_requested)
        return sidebar

    def _build_conversation(self) -> QWidget:
        column = QWidget()
        layout = QVBoxLayout(column)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)

        self.request_banner = RequestBanner()
        banner_holder = QVBoxLayout()
        banner_holder.setContentsMargins(14, 10, 14, 0)
        banner_holder.addWidget(self.request_banner)
        layout.addLayout(banner_holder)

        self.pages = QStackedWidget()
        layout.addWidget(self.pages, 1)

        placeholder = QWidget()
        placeholder_layout = QVBoxLayout(placeholder)
        placeholder_layout.addStretch(1)
        icon = QLabel()
        icon.setPixmap(app_icon().pixmap(72, 72))
        icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
        placeholder_layout.addWidget(icon)
        self.placeholder_label = QLabel("Pick a friend or a room to start chatting.")
        self.placeholder_label.setObjectName("Placeholder")
        self.placeholder_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        placeholder_layout.addWidget(self.placeholder_label)
        placeholder_layout.addStretch(1)
        self.pages.addWidget(placeholder)

        chat = QWidget()
        chat_layout = QVBoxLayout(chat)
        chat_layout.setContentsMargins(0, 0, 0, 0)
        chat_layout.setSpacing(0)
        header = QFrame()
        header.setObjectName("ConversationHeader")
        header_layout = QHBoxLayout(header)
        header_layout.setContentsMargins(18, 10, 18, 10)
        header_layout.setSpacing(10)
        self.conversation_avatar = QLabel()
        header_layout.addWidget(self.conversation_avatar)
        titles = QVBoxLayout()
        titles.setSpacing(2)
        title_row = QHBoxLayout()
        title_row.setSpacing(10)
        self.conversation_title = QLabel()
        self.conversation_title.setObjectName("ConversationTitle")
        self.conversation_detail = QLabel()
        self.conversation_detail.setObjectName("ConversationDetail")
        title_row.addWidget(self.conversation_title)
        title_row.addWidget(self.conversation_detail, 0, Qt.AlignmentFlag.AlignBaseline)
        title_row.addStretch(1)
        titles.addLayout(title_row)
        # A room's topic, under its name; owner and moderators edit it here.
        self.topic_line = TopicLine()
        self.topic_line.submitted.connect(self._topic_submitted)
        titles.addWidget(self.topic_line)
        header_layout.addLayout(titles, 1)
        self.remove_friend_button = button("Remove friend…", "Danger", "End this friendship")
        self.remove_friend_button.clicked.connect(self._remove_current_friend)
        self.remove_friend_button.hide()
        header_layout.addWidget(self.remove_friend_button)
        chat_layout.addWidget(header)

        self.history_view = TimelineView()
        self.history_view.setItemDelegate(MessageDelegate(self.history_view, self.files))
        self.files.changed.connect(self._files_changed)
        self.files.resized.connect(self.history_view.relayout)
        self.files.notice.connect(self.show_notice)
        self.history_view.image_wanted.connect(self.open_image)
        self.history_view.save_cancelled.connect(self.files.cancel_save)
        self.history_view.upload_cancelled.connect(self.upload_cancel_requested)
        self.history_view.upload_retried.connect(self.upload_retry_requested)
        self.history_view.files_dropped.connect(self.send_files)
        self.history_view.image_dropped.connect(self.send_image)
        self.history_view.older_wanted.connect(self._older_wanted)
        self.history_view.newer_wanted.connect(self._newer_wanted)
        self.history_view.latest_wanted.connect(self._latest_wanted)
        self.history_view.quote_clicked.connect(self.jump_to)
        self.history_view.reaction_clicked.connect(self._toggle_reaction)
        self.history_view.reply_wanted.connect(self.start_reply)
        self.history_view.edit_wanted.connect(self.start_edit)
        self.history_view.delete_wanted.connect(self.ask_delete)
        self.history_view.react_wanted.connect(self.pick_reaction)
        self.history_view.save_wanted.connect(self.save_file)
        chat_layout.addWidget(self.history_view, 1)
        self.typing_label = QLabel()
        self.typing_label.setObjectName("Typing")
        self.typing_label.setContentsMargins(18, 2, 18, 2)
        chat_layout.addWidget(self.typing_label)
        self.compose_context = ComposeContext()
        self.compose_context.cancelled.connect(self.cancel_compose)
        chat_layout.addWidget(self.compose_context)

        composer = QFrame()
        composer.setObjectName("Composer")
        composer_layout = QHBoxLayout(composer)
        composer_layout.setContentsMargins(14, 10, 14, 10)
        composer_layout.setSpacing(8)
        self.compose = ComposeEdit()
        self.compose.submitted.connect(self.send)
        self.compose.edit_last_wanted.connect(self._edit_last)
        self.compose.cancelled.connect(self.cancel_compose)
        self.compose.textChanged.connect(self._compose_changed)
        self.compose.files_pasted.connect(self.send_files)
        self.compose.image_pasted.connect(self.send_image)
        composer_layout.addWidget(self.compose, 1)
        buttons = QVBoxLayout()
        buttons.setSpacing(6)
        self.send_button = button("Send", "Primary", "Send (Enter)")
        self.send_button.clicked.connect(self.send)
        self.clear_button = button("Clear", None, "Clear the input box")
        self.clear_button.clicked.connect(self.compose.clear)
        self.attach_button = button(
            "Attach…", None, "Send a file or an image (or drop it here, or paste an image)"
        )
        self.attach_button.clicked.connect(self.attach)
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.clear_button)
        buttons.addWidget(self.attach_button)
        composer_layout.addLayout(buttons)
        chat_layout.addWidget(composer)
        hint = QLabel("Enter sends · Shift+Enter starts a new line · ↑ edits your last message")
        hint.setObjectName("Hint")
        hint.setContentsMargins(18, 0, 0, 6)
        hint.setStyleSheet("background: #FFFFFF;")
        chat_layout.addWidget(hint)
        self.pages.addWidget(chat)
        return column

    # What the user does.

    @property
    def current(self) -> Key | None:
        """
        The conversation shown, or L{None}.
        """
        return self._current

    def timeline(self, key: Key) -> TimelineModel:
        """
        @return: the model of conversation C{key}'s timeline (made once,
            kept while the conversation exists).
        """
        model = self._timelines.get(key)
        if model is None:
            model = self._timelines[key] = TimelineModel(self.bridge, key, self)
        return model

    def select(self, key: Key | None) -> None:
        """
        Show conversation C{key} (or none), selecting it in its list.
        """
        if key is not None and not self.state.knows(key):
            key = None
        self._sync_selection(key)
        if key == self._current:
            return
        self._current = key
        self.close_panels()
        self.cancel_compose()
        self.topic_line.cancel_edit()
        self._jumping_to = self._around = None
        self.typing_stopped.emit()
        self._update_names()
        typing = self.state.conversations[key].typing if key in self.state.conversations else {}
        self.typing_label.setText(typing_line(tuple(typing.values())))
        self.search_panel.set_conversation(key, "" if key is None else self.state.name_of(key))
        if key is None:
            self.pages.setCurrentIndex(0)
            self.history_view.show_timeline(None)
            self.member_panel.hide()
            self.members_model.set_room(None)
            self.topic_line.hide()
            self.conversation_selected.emit(None)
            return
        self.pages.setCurrentIndex(1)
        self.history_view.show_timeline(self.timeline(key))
        self._show_header()
        self.remove_friend_button.setVisible(key[0] == PRIVATE)
        if key[0] == ROOM:
            self.members_model.set_room(key[1])
            self._update_invitable()
            self._update_bans()
            self.member_panel.setVisible(self.search_panel.isHidden())
        else:
            self.members_model.set_room(None)
            self.member_panel.hide()
        self.compose.setFocus()
        self.conversation_selected.emit(key)

    def _sync_selection(self, key: Key | None) -> None:
        for view, model in (
            (self.friend_list, self.friends_model),
            (self.room_list, self.rooms_model),
        ):
            row = model.row_of(key) if key is not None else None
            selection = view.selectionModel()
            assert selection is not None
            selection.blockSignals(True)
            if row is None:
                selection.clearSelection()
                selection.clearCurrentIndex()
            else:
                view.setCurrentIndex(model.index(row))
            selection.blockSignals(False)
            view.update()

    def _picked(self, model: ContactListModel, selected: QItemSelection) -> None:
        indexes = selected.indexes()
        if indexes and not self._removing:
            self.select(model.contact(indexes[0].row()).key)

    def send(self) -> None:
        """
        Send what the input box holds to the conversation shown: a new
        message (perhaps a reply), or the new text of the message edited.
        """
        key = self._current
        text = self.compose.toPlainText()
        if key is None or not text.strip():
            return
        if not valid_message(text):
            self.show_notice(texts.MESSAGE_RULE)
            return
        editing, replying = self._editing, self._replying
        self.cancel_compose()
        self.compose.clear()
        if editing is not None:
            if text != editing.text:
                self.edit_requested.emit(editing.id, text)
            return
        # In a detached conversation the message shows after the newest
        # page, which the session loads first.
        self.history_view.go_to_latest()
        self.send_requested.emit(key, text, replying)

    def ask_file(self, title: str, save_as: str | None, chosen: Callable[[str], None]) -> None:
        """
        Ask for a file to send (or, with C{save_as}, where to save one);
        returns at once, C{chosen} is called with the path once picked.
        """
        ask_file(self, title, save_as, chosen)

    def attach(self) -> None:
        """
        Ask for a file, and send it to the conversation shown.
        """
        key = self._current
        if key is None:
            return

        def chosen(path: str) -> None:
            if path and self._current == key:
                self.send_files([path])

        self.ask_file("Send a file", None, chosen)

    def send_files(self, paths: list[str]) -> None:
        """
        Send the local files at C{paths} (attached, dropped or pasted) to
        the conversation shown; the first takes what the input box holds as
        its caption, and answers the message replied to, if any.
        """
        key = self._current
        if key is None:
            return
        folders = [path for path in paths if os.path.isdir(path)]
        if folders:
            self.show_notice(texts.FOLDER_DROPPED)
        files = [path for path in paths if path not in folders]
        for i, path in enumerate(files):
            caption, reply_to = self._take_caption() if i == 0 else ("", None)
            self._upload(FileToSend(key, path=path, caption=caption, reply_to=reply_to))

    def send_image(self, image: QImage) -> None:
        """
        Send an image pasted or dropped (not a file) to the conversation
        shown, as a PNG file, with what the input box holds as its caption.
        """
        key = self._current
        if key is None or image.isNull():
            return
        caption, reply_to = self._take_caption()
        file = FileToSend(
            key, data=png_bytes(image), name=pasted_name(), caption=caption, reply_to=reply_to
        )
        self._upload(file)

    def _upload(self, file: FileToSend) -> None:
        # In a detached conversation the message shows after the newest
        # page, which the session loads first.
        self.history_view.go_to_latest()
        self.upload_requested.emit(file)

    def _take_caption(self) -> tuple[str, Message | None]:
        """
        @return: what the input box holds, as a file's caption (it is
            emptied), and the message replied to; nothing while editing,
            and no caption when its text cannot be one (it stays).
        """
        if self._editing is not None:
            return "", None
        replying = self._replying
        text = self.compose.toPlainText()
        caption = ""
        if text.strip() and valid_message(text):
            caption = text
            self.compose.clear()
        self.cancel_compose()
        return caption, replying

    def save_file(self, message: Message) -> None:
        """
        Ask where to save the file C{message} carries (in the Downloads
        folder, by default), then fetch it there.
        """
        file = message.file
        if file is None:
            return

        def chosen(path: str) -> None:
            if path:
                self.save_requested.emit(file, path)

        folder = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DownloadLocation)
        self.ask_file("Save file", os.path.join(folder, file.name) if folder else file.name, chosen)

    def open_image(self, message: Message) -> None:
        """
        Show the image C{message} carries at its full size, in a window of
        its own; one that could not be fetched is fetched again.
        """
        file = message.file
        if file is None or not file.image:
            return
        path = self.files.full_path(file)
        if path is None:
            if self.files.image_error(file) is not None:
                self.files.retry(file)
                return
            # Gone from the disk cache since it was shown: fetch it again.
            d = self.files.cache.fetch(file)
            d.addCallbacks(self._show_image, self._image_not_fetched, callbackArgs=(message,))
            return
        self._show_image(path, message)

    def _image_not_fetched(self, failure: Failure) -> None:
        if failure.check(TransferFailed):
            self.show_notice(failure.getErrorMessage())
        elif not failure.check(TransferCancelled):
            self.log.failure("Opening an image failed", failure)

    def _show_image(self, path: str, message: Message) -> None:
        assert message.file is not None
        viewer = ImageViewer(path, message.file, self)
        viewer.save_wanted.connect(lambda: self.save_file(message))
        viewer.show()
        self.image_viewer = viewer

    def _files_changed(self) -> None:
        viewport = self.history_view.viewport()
        if viewport is not None:
            viewport.update()

    def _compose_changed(self) -> None:
        key = self._current
        if key is None or self._editing is not None:
            return
        if self.compose.toPlainText():
            self.typed.emit(key)
        else:
            self.typing_stopped.emit()

    # Replies, edits, deletions and reactions.

    def start_reply(self, message: Message) -> None:
        """
        Write a reply to C{message}: its quote shows above the input box.
        """
        self.cancel_compose()
        self._replying = message
        who = message.sender_name or "?"
        text = message.text
        if message.file is not None:
            text = texts.with_file(message.file.name, text)
        self.compose_context.show_text(f"Replying to {who}: {text}")
        self.compose.setFocus()

    def start_edit(self, message: Message) -> None:
        """
        Edit one of our messages in the input box.
        """
        self.cancel_compose()
        self._editing = message
        self.send_button.setText("Save")
        self.compose_context.show_text("Editing your message · Enter saves, Esc cancels")
        self.compose.setPlainText(message.text)
        self.compose.moveCursor(QTextCursor.MoveOperation.End)
        self.compose.setFocus()

    def cancel_compose(self) -> None:
        """
        Stop replying or editing; an edit's text leaves the input box.
        """
        editing = self._editing
        self._replying = self._editing = None
        self.compose_context.hide()
        self.send_button.setText("Send")
        if editing is not None:
            self.compose.clear()

    def _edit_last(self) -> None:
        key = self._current
        if key is None:
            return
        message = self.state.conversation(key).last_own(self.state.me)
        if message is not None:
            self.start_edit(message)

    def ask_delete(self, message: Message) -> None:
        """
        Ask, then delete C{message} for everyone.
        """
        self.confirm(
            "Delete message",
            "Delete this message for everyone? This cannot be undone.",
            "Delete",
            lambda: self.delete_requested.emit(message.id),
        )

    def pick_reaction(self, message: Message, where: QPoint) -> None:
        """
        Open the emoji picker to react to C{message}.
        """
        picker = EmojiPicker(self)
        picker.picked.connect(lambda emoji: self._react(message, emoji))
        picker.move(where)
        picker.show()
        picker.field.setFocus()

    def _reacted(self, message: Message, emoji: str) -> bool:
        return any(r.emoji == emoji and self.state.me in r.user_ids for r in message.reactions)

    def _react(self, message: Message, emoji: str) -> None:
        if not self._reacted(message, emoji):
            self.react_requested.emit(message.id, emoji, True)

    def _toggle_reaction(self, message: Message, emoji: str) -> None:
        self.react_requested.emit(message.id, emoji, not self._reacted(message, emoji))

    def jump_to(self, message_id: int) -> None:
        """
        Scroll to the message C{message_id} and mark it for a moment.

        When it is not held: within a page of what is held, the page
        before (or after) is loaded, as many times as it takes; farther,
        a window of messages around it replaces what is held (the
        conversation is detached).
        """
        key = self._current
        if key is None:
            return
        row = self.timeline(key).row_of(message_id)
        if row is not None:
            self._jumping_to = None
            self._flash(row)
            return
        # The state, not the model: this runs from a history state change
        # that the model may not have heard of yet.
        conversation = self.state.conversation(key)
        self._jumping_to = message_id
        if not conversation.opened:
            # Where it is from what is held is known once the newest page is.
            self.older_requested.emit(key)
            return
        first, last = conversation.first_id, conversation.last_id
        # Message ids grow across the whole server: between an id within a
        # page of those held and them, at most a page of this conversation.
        if first is None or last is None:
            self._request_around(key, message_id)
        elif message_id < first:
            if not conversation.has_older:
                self._not_there()
            elif first - message_id > PAGE_SIZE:
                self._request_around(key, message_id)
            elif not conversation.loading_older:
                self.older_requested.emit(key)
        elif message_id > last:
            if not conversation.has_newer:
                self._not_there()
            elif message_id - last > PAGE_SIZE:
                self._request_around(key, message_id)
            elif not conversation.loading_newer:
                self.newer_requested.emit(key)
        else:
            self._not_there()  # among those held, but not shown to us

    def _request_around(self, key: Key, message_id: int) -> None:
        if self._around != message_id:
            self._around = message_id
            self.around_requested.emit(key, message_id)

    def around_loaded(self, key: Key, message_id: int, problem: str | None) -> None:
        """
        The window around C{message_id} that L{around_requested} asked for
        was loaded, or not.

        @param problem: why it was not (the message is gone, the request
            failed), for people; L{None} when it is held now.
        """
        if self._around == message_id:
            self._around = None
        if key != self._current or self._jumping_to != message_id:
            return  # the user went on to something else meanwhile
        row = self.timeline(key).row_of(message_id)
        if row is not None:
            self._jumping_to = None
            self._flash(row)
        elif problem is not None:
            self._jumping_to = None
            self.show_notice(problem)

    def _not_there(self) -> None:
        self._jumping_to = None
        self.show_notice(texts.MESSAGE_GONE)

    def _flash(self, row: int) -> None:
        self.history_view.flash(row)
        if self._unflash is not None and self._unflash.active():
            self._unflash.cancel()
        self._unflash = self._clock.callLater(FLASH_SECONDS, self.history_view.unflash)

    def _history_state_changed(self, change: HistoryStateChanged) -> None:
        if (
            change.key == self._current
            and self._jumping_to is not None
            and not change.loading_older
            and not change.loading_newer
        ):
            self.jump_to(self._jumping_to)

    def _typing_changed(self, change: TypingChanged) -> None:
        if change.key == self._current:
            self.typing_label.setText(typing_line(change.names))

    def _update_names(self) -> None:
        key = self._current
        if key is None:
            self.compose.set_names([])
        elif key[0] == ROOM:
            room = self.state.rooms.get(key[1])
            members = room.members.values() if room is not None else ()
            self.compose.set_names([m.username for m in members if m.id != self.state.me])
        else:
            self.compose.set_names([self.state.name_of(key)])

    def _older_wanted(self) -> None:
        if self._current is not None:
            self.older_requested.emit(self._current)

    def _newer_wanted(self) -> None:
        if self._current is not None:
            self.newer_requested.emit(self._current)

    def _latest_wanted(self) -> None:
        if self._current is not None:
            self._jumping_to = None
            self.latest_requested.emit(self._current)

    # Searching messages.

    def open_search(self, here: bool | None = None) -> None:
        """
        Open the search panel (in place of a room's members), with the
        cursor in its field.

        @param here: whether to search only the conversation shown, or
            L{None} to keep the choice made before.
        """
        self.member_panel.hide()
        self.search_panel.open(here)

    def close_search(self) -> None:
        """
        Close the search panel; a room's members come back.
        """
        self.search_panel.close_search()

    def _search_closed(self) -> None:
        key = self._current
        if key is not None:
            if key[0] == ROOM:
                self.member_panel.show()
            self.compose.setFocus()

    def show_search_results(self, request: SearchRequest, page: SearchPage) -> None:
        """
        Show a page of results of C{request}, unless it is out of date.
        """
        self.search_panel.show_results(request, page)

    def show_search_error(self, request: SearchRequest, text: str) -> None:
        """
        Say why C{request} failed, unless it is out of date.
        """
        self.search_panel.show_error(request, text)

    def open_search_result(self, message: Message) -> None:
        """
        Show the conversation of a message found, scrolled to it and marked,
        loading the pages around it if need be (as for a quote).  The
        results stay, to go on to the next one.
        """
        key = message.key_for(self.state.me)
        if not self.state.knows(key):
            self.show_notice("That conversation is no longer in your lists.")
            return
        self.select(key)
        self.jump_to(message.id)
        self.search_panel.results.setFocus()

    def open_panel(self, panel: ActionPanel) -> None:
        """
        Open one of the add-friend, create-room and join-room panels,
        closing the others.
        """
        for other in self._panels:
            if other is not panel:
                other.hide()
        panel.open()
        self._fit_sidebar()

    def close_panels(self) -> None:
        """
        Close every action panel.
        """
        for panel in self._panels:
            panel.hide()
        self._fit_sidebar()

    def _fit_sidebar(self) -> None:
        """
        While a room panel is open, the friend list gives way (to a row at
        most, to nothing when the window is short), so that the room list
        above the panel keeps at least two rows.
        """
        rooms = not (self.join_room_panel.isHidden() and self.create_room_panel.isHidden())
        row = ContactDelegate.HEIGHT
        self.friend_list.setMaximumHeight(row + 4 if rooms else QWIDGETSIZE_MAX)
        self.friend_list.setMinimumHeight(1 if rooms else 0)
        self.room_list.setMinimumHeight(2 * row + 4 if rooms else 0)

    def _join_or_open(self, name: str) -> None:
        """
        Join the room called C{name}, or show it if we are in it already.
        """
        for room in self.state.rooms.values():
            if room.name.lower() == name.lower():
                self.close_panels()
                self.select((ROOM, room.id))
                return
        self.join_room_requested.emit(name)

    def _friend_menu(self, position: QPoint) -> None:
        index = self.friend_list.indexAt(position)
        viewport = self.friend_list.viewport()
        if not index.isValid() or viewport is None:
            return
        user_id = self.friends_model.contact(index.row()).id
        # popup(), not exec_(): a slot must not run a nested event loop.
        menu = QMenu(self.friend_list)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.addAction("Open conversation", lambda: self.select((PRIVATE, user_id)))
        menu.addSeparator()
        menu.addAction("Remove friend…", lambda: self.ask_remove_friend(user_id))
        menu.popup(viewport.mapToGlobal(position))

    def _remove_current_friend(self) -> None:
        if self._current is not None and self._current[0] == PRIVATE:
            self.ask_remove_friend(self._current[1])

    def ask_remove_friend(self, user_id: int) -> None:
        """
        Ask whether to end the friendship with C{user_id}, and if the user
        agrees, emit L{remove_friend_requested}.
        """
        key = (PRIVATE, user_id)
        if not self.state.knows(key):
            return
        name = label(self.state.name_of(key), user_id)

        def remove() -> None:
            # They may have removed us while the question was open.
            if self.state.knows(key):
                self.remove_friend_requested.emit(user_id)

        self.confirm(
            "Remove friend",
            f"Remove {name} from your friends?\n\n"
            "You will no longer be able to message each other, and your"
            " conversation closes.",
            "Remove",
            remove,
        )

    def ask_quit_room(self, room_id: int) -> None:
        """
        Ask whether to leave room C{room_id}, and if the user agrees, emit
        L{quit_room_requested}.
        """
        key = (ROOM, room_id)
        if not self.state.knows(key):
            return
        name = label(self.state.name_of(key), room_id)

        def leave() -> None:
            if self.state.knows(key):
                self.quit_room_requested.emit(room_id)

        self.confirm(
            "Leave room",
            f"Leave room {name}?\n\n"
            "You will stop receiving its messages; to come back, join it again.",
            "Leave",
            leave,
        )

    def ask_remove_member(self, room_id: int, user_id: int, ban: bool) -> None:
        """
        Ask whether to remove (with C{ban}, to ban) member C{user_id} from
        room C{room_id}, and if the user agrees, emit L{kick_requested}.
        """
        room = self.state.rooms.get(room_id)
        member = room.members.get(user_id) if room is not None else None
        if room is None or member is None:
            return
        who, where = label(member.username, user_id), label(room.name, room_id)

        def remove() -> None:
            # They may have left, or we may have lost the right, meanwhile.
            room = self.state.rooms.get(room_id)
            if room is not None and room.may_remove(self.state.me, user_id):
                self.kick_requested.emit(room_id, user_id, ban)

        if ban:
            self.confirm(
                "Ban from room",
                f"Ban {who} from room {where}?\n\n"
                "They are removed and cannot join again, nor be added, until"
                " an owner or moderator lifts the ban.",
                "Ban",
                remove,
            )
        else:
            self.confirm(
                "Remove from room",
                f"Remove {who} from room {where}?\n\nThey may join again later.",
                "Remove",
                remove,
            )

    def _topic_submitted(self, topic: str) -> None:
        if self._current is not None and self._current[0] == ROOM:
            self.topic_requested.emit(self._current[1], topic)

    def topic_saved(self, room_id: int) -> None:
        """
        The topic L{topic_requested} asked for room C{room_id} was set.
        """
        if self._current == (ROOM, room_id):
            self.topic_line.saved()

    def topic_failed(self, room_id: int, text: str) -> None:
        """
        The topic L{topic_requested} asked for room C{room_id} was refused,
        for the reason C{text} (a sentence for people): the field opens
        again with what was typed.
        """
        self.show_notice(text)
        if self._current == (ROOM, room_id):
            self.topic_line.failed(text)

    def confirm(self, title: str, text: str, action: str, on_yes: Callable[[], None]) -> None:
        """
        Ask the user to confirm something, and call C{on_yes} if they do.

        The question is a window-modal message box opened with C{open()},
        not C{exec_()}: this returns at once and no nested event loop runs
        in the slot that asks, so replies and pushes keep arriving while
        it is open (C{on_yes} should check that what it acts on is still
        there).  Tests replace this method to answer without a dialog.

        @param action: the text of the button that confirms; the other one,
            the default, is Cancel.
        """
        box = QMessageBox(
            QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.Cancel, self
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        yes = box.addButton(action, QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)

        def answered(result: int) -> None:
            if box.clickedButton() is yes:
                on_yes()

        box.finished.connect(answered)
        box.open()

    def _close_questions(self) -> None:
        for box in self.findChildren(QMessageBox):
            box.reject()

    def show_notice(self, text: str) -> None:
        """
        Show C{text} in the message bar for 60 s.
        """
        self.notice_bar.show_notice(text)

    def withdraw_notice(self, text: str) -> None:
        """
        Take C{text} out of the message bar if it is still shown.
        """
        self.notice_bar.withdraw(text)

    def show_room_search(self, rooms: list[dict[str, Any]]) -> None:
        """
        Show the rooms a C{list_rooms} search found, marking those we are
        in.
        """
        self.join_room_panel.set_results(rooms, self.state.rooms)

    # What the state says.

    def _reset(self) -> None:
        user = self.state.user
        if user is not None:
            self._show_user(user)
        for key in [k for k in self._timelines if k not in self.state.conversations]:
            self._drop_timeline(key)
        current = self._current
        if current is not None and not self.state.knows(current):
            self.select(None)
        else:
            self._sync_selection(current)
            if current is not None:
                self._show_header()
        if user is None:
            self.close_panels()
            self._close_questions()
            self.compose.clear()
            self.search_panel.reset()

    def _show_user(self, user: User) -> None:
        self.user_label.setText(label(user.username, user.id))
        self.user_avatar.setPixmap(avatar_pixmap(user.username, user.id, 28))
        self.setWindowTitle(f"chatd: {user.username}")

    def _drop_timeline(self, key: Key) -> None:
        model = self._timelines.pop(key, None)
        if model is not None:
            if self.history_view.timeline() is model:
                self.history_view.show_timeline(None)
            model.detach()
            model.deleteLater()

    def _contact_added(self, contact: Contact) -> None:
        if contact.key[0] == PRIVATE and self._current and self._current[0] == ROOM:
            self._update_invitable()
        if contact.key[0] == ROOM:
            self.join_room_panel.set_joined(self.state.rooms)

    def _contact_removed(self, key: Key) -> None:
        if key == self._current:
            self.select(None)
        self._drop_timeline(key)
        if key[0] == PRIVATE and self._current and self._current[0] == ROOM:
            self._update_invitable()
        if key[0] == ROOM:
            self.join_room_panel.set_joined(self.state.rooms)

    def _contact_changed(self, contact: Contact) -> None:
        if contact.key == self._current:
            self._show_header()

    def _members_changed(self, change: MembersChanged) -> None:
        if self._current == (ROOM, change.room_id):
            self._update_invitable()
            self._update_names()
            # Our own role may have changed: what we may do changes with it.
            self._show_topic()
            self._update_bans()

    def _topic_changed(self, change: TopicChanged) -> None:
        if self._current == (ROOM, change.room_id):
            self._show_topic()

    def _bans_changed(self, change: BansChanged) -> None:
        if self._current == (ROOM, change.room_id):
            self._update_bans()

    def _show_topic(self) -> None:
        key = self._current
        room = self.state.rooms.get(key[1]) if key is not None and key[0] == ROOM else None
        if room is None:
            self.topic_line.cancel_edit()
            self.topic_line.hide()
            return
        self.topic_line.show_topic(room.topic, room.moderated_by(self.state.me))

    def _update_bans(self) -> None:
        key = self._current
        room = self.state.rooms.get(key[1]) if key is not None and key[0] == ROOM else None
        if room is None or not room.moderated_by(self.state.me):
            self.member_panel.set_bans(())
        else:
            self.member_panel.set_bans(self.state.banned(room.id))

    def _show_header(self) -> None:
        key = self._current
        if key is None or not self.state.knows(key):
            return
        contact = self.state.contact(key)
        self.conversation_title.setText(label(contact.name, contact.id))
        self.conversation_detail.setText(contact.detail)
        online_friend = key[0] == PRIVATE and contact.online
        self.conversation_detail.setStyleSheet(f"color: {ACCENT_DARK};" if online_friend else "")
        pixmap = avatar_pixmap(contact.name, contact.id, 36, round_=key[0] == PRIVATE)
        self.conversation_avatar.setPixmap(pixmap)
        self.compose.setPlaceholderText(f"Message {contact.name}…")
        self._show_topic()
        self._update_bans()

    def _update_invitable(self) -> None:
        members = self.members_model.member_ids()
        friends = [f for f in self.state.friends.values() if f.id not in members]
        self.member_panel.set_invitable(friends)

    def _connection_changed(self, status: str) -> None:
        self.status_chip.setText(STATUS_TEXT.get(status, CONNECTING_TEXT))
        self.status_chip.setProperty("status", status)
        restyle(self.status_chip)

    def closeEvent(self, event: QCloseEvent | None) -> None:
        self.closed.emit()
        super().closeEvent(event)
