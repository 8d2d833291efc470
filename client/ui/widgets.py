"""
The pieces the main window is made of: the message bar, the input box,
the timeline view, the action panels, the friend request prompt, the
room member panel and the message search panel.  Each renders a model or
a value and emits what the user wants; none of them talks to the server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

from PyQt5.QtCore import (
    QEvent,
    QMimeData,
    QModelIndex,
    QObject,
    QPoint,
    QPointF,
    QRectF,
    QStringListModel,
    Qt,
    pyqtSignal,
)
from PyQt5.QtGui import (
    QColor,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QGuiApplication,
    QImage,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPen,
    QPixmap,
    QPolygonF,
    QTextCursor,
    QWheelEvent,
)
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QCompleter,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QScrollBar,
    QShortcut,
    QSizePolicy,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from chatd.wire import MAX_EMOJI_LENGTH, valid_emoji, valid_name
from client.search import MAX_QUERY, SearchPage, SearchRequest, valid_query
from client.state import MEMBER, MODERATOR, Key, Member, Message, PendingMessage, User
from client.ui.delegates import (
    Hit,
    MemberDelegate,
    MessageDelegate,
    RoomResultDelegate,
    SearchResultDelegate,
    draw_avatar,
)
from client.ui.models import (
    EntryRole,
    MemberListModel,
    NameRole,
    RoomSearchModel,
    SearchResultsModel,
    TimelineModel,
    label,
)
from client.ui.style import ACCENT, MUTED, restyle

#: Seconds a notice stays in the message bar.
NOTICE_SECONDS: Final = 60.0
#: Seconds after the last keystroke before the search runs.
SEARCH_DELAY: Final = 0.3


def button(text: str, name: str | None = None, tip: str | None = None) -> QPushButton:
    """
    @return: a push button, styled by object C{name} (C{Primary}, C{Danger},
        C{Flat}, ...), that takes no keyboard focus unless primary.
    """
    result = QPushButton(text)
    if name:
        result.setObjectName(name)
    if tip:
        result.setToolTip(tip)
    result.setCursor(Qt.CursorShape.PointingHandCursor)
    return result


def avatar_pixmap(name: str, identifier: int, size: int = 30, round_: bool = True) -> QPixmap:
    """
    @return: an avatar of C{size} pixels for a label: round for a person,
        a rounded square with C{#} for a room.
    """
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    draw_avatar(painter, QRectF(0, 0, size, size), name, identifier, round_=round_)
    painter.end()
    return pixmap


class NoticeBar(QLabel):
    """
    A line at the bottom of the window for notices; each clears itself
    after L{NOTICE_SECONDS}.

    The delay runs on an injected clock (the reactor, or a test's
    L{twisted.internet.task.Clock}).
    """

    def __init__(self, clock: IReactorTime, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("NoticeBar")
        self._clock = clock
        self._clearing: IDelayedCall | None = None
        self.setMinimumHeight(30)
        self.setProperty("active", False)

    def show_notice(self, text: str) -> None:
        """
        Show C{text} for the next 60 s (replacing any notice shown).
        """
        self._cancel()
        self.setText(text)
        self._restyle(True)
        self._clearing = self._clock.callLater(NOTICE_SECONDS, self.clear)

    def withdraw(self, text: str) -> None:
        """
        Empty the bar if it still shows C{text}: a notice about a state
        that has ended goes when the state ends.
        """
        if self.text() == text:
            self.clear()

    def clear(self) -> None:
        """
        Empty the bar now.
        """
        self._cancel()
        self.setText("")
        self._restyle(False)

    def _cancel(self) -> None:
        if self._clearing is not None and self._clearing.active():
            self._clearing.cancel()
        self._clearing = None

    def _restyle(self, active: bool) -> None:
        self.setProperty("active", active)
        restyle(self)


def dropped_files(mime: QMimeData | None) -> list[str]:
    """
    @return: the local files (or folders) that a drop or a paste of
        C{mime} names, if any.
    """
    if mime is None or not mime.hasUrls():
        return []
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile() and url.toLocalFile()]


def dropped_image(mime: QMimeData | None) -> QImage | None:
    """
    @return: the image a drop or a paste of C{mime} carries (a picture
        copied from a browser or a screenshot tool), if any.
    """
    if mime is None or not mime.hasImage():
        return None
    image = mime.imageData()
    return image if isinstance(image, QImage) and not image.isNull() else None


class ComposeEdit(QPlainTextEdit):
    """
    The message input: Enter sends, Shift+Enter starts a new line, Up in an
    empty box edits our last message, Escape cancels a reply or an edit,
    and C{@} completes the names of the conversation's members.  Pasting
    (or dropping) an image or files sends them instead of inserting text.
    """

    submitted = pyqtSignal()
    edit_last_wanted = pyqtSignal()
    cancelled = pyqtSignal()
    files_pasted = pyqtSignal(list)  # local paths
    image_pasted = pyqtSignal(QImage)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Compose")
        self.setPlaceholderText("Write a message…")
        self.setTabChangesFocus(True)
        self.setFixedHeight(64)
        self._names = QStringListModel(self)
        self.completer = QCompleter(self._names, self)
        self.completer.setWidget(self)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.completer.setMaxVisibleItems(6)
        self.completer.activated[str].connect(self._complete)
        popup = self.completer.popup()
        if popup is not None:
            popup.setObjectName("Completions")

    def canInsertFromMimeData(self, source: QMimeData | None) -> bool:
        if dropped_files(source) or dropped_image(source) is not None:
            return True
        return super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: QMimeData | None) -> None:
        # Files and images are sent, not written into the box as paths.
        paths = dropped_files(source)
        if paths:
            self.files_pasted.emit(paths)
            return
        image = dropped_image(source)
        if image is not None and not (source is not None and source.hasText()):
            self.image_pasted.emit(image)
            return
        super().insertFromMimeData(source)

    def set_names(self, names: list[str]) -> None:
        """
        The names C{@} completes: the members of the conversation shown.
        """
        ordered = sorted(names, key=str.lower)
        self._names.setStringList(ordered)

    def _mention_prefix(self) -> str | None:
        """
        @return: the name typed after an C{@} just before the cursor, or
            L{None} when the cursor is not in a mention.
        """
        cursor = self.textCursor()
        before = self.toPlainText()[: cursor.position()]
        match = _MENTION_PREFIX.search(before)
        return match.group(1) if match else None

    def _complete(self, name: str) -> None:
        prefix = self._mention_prefix()
        if prefix is None:
            return
        cursor = self.textCursor()
        cursor.movePosition(
            QTextCursor.MoveOperation.Left, QTextCursor.MoveMode.KeepAnchor, len(prefix)
        )
        cursor.insertText(name + " ")
        self.setTextCursor(cursor)

    def keyPressEvent(self, event: QKeyEvent | None) -> None:
        assert event is not None
        popup = self.completer.popup()
        key = event.key()
        if popup is not None and popup.isVisible() and key in _COMPLETER_KEYS:
            # The completion list takes these keys.
            event.ignore()
            return
        enter = key in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if enter and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            event.accept()
            self.submitted.emit()
            return
        if enter:
            # Shift+Enter: a plain new line, not a paragraph separator.
            self.insertPlainText("\n")
            event.accept()
            return
        if key == Qt.Key.Key_Up and not self.toPlainText():
            event.accept()
            self.edit_last_wanted.emit()
            return
        if key == Qt.Key.Key_Escape:
            event.accept()
            self.cancelled.emit()
            return
        super().keyPressEvent(event)
        self._offer_names()

    def _offer_names(self) -> None:
        prefix = self._mention_prefix()
        popup = self.completer.popup()
        if prefix is None or popup is None:
            if popup is not None:
                popup.hide()
            return
        self.completer.setCompletionPrefix(prefix)
        if self.completer.completionCount() == 0:
            popup.hide()
            return
        completions = self.completer.completionModel()
        if completions is not None:
            popup.setCurrentIndex(completions.index(0, 0))
        rect = self.cursorRect()
        rect.setWidth(popup.sizeHintForColumn(0) + 40)
        self.completer.complete(rect)


#: An C{@} at the start or after a character that cannot be in a name, then
#: the start of a name, just before the cursor (PROTOCOL.md section 10).
_MENTION_PREFIX: Final = re.compile(r"(?:^|(?<=[^A-Za-z0-9_]))@([A-Za-z0-9_]*)$")

_COMPLETER_KEYS: Final = frozenset(
    {
        Qt.Key.Key_Return,
        Qt.Key.Key_Enter,
        Qt.Key.Key_Tab,
        Qt.Key.Key_Escape,
        Qt.Key.Key_Up,
        Qt.Key.Key_Down,
    }
)


class ComposeContext(QFrame):
    """
    The line above the input box while a reply or an edit is being
    written: what it answers or changes, and a button to cancel it.
    """

    cancelled = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ComposeContext")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(18, 6, 14, 0)
        layout.setSpacing(8)
        self.label = QLabel()
        self.label.setObjectName("ComposeContextLabel")
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.label, 1)
        close = button("✕", "Flat", "Cancel (Esc)")
        close.clicked.connect(self.cancelled)
        layout.addWidget(close)
        self.hide()

    def show_text(self, text: str) -> None:
        """
        Show C{text}, cut to one line.
        """
        one_line = " ".join(text.split())
        metrics = self.label.fontMetrics()
        width = max(200, self.width() - 80)
        self.label.setText(metrics.elidedText(one_line, Qt.TextElideMode.ElideRight, width))
        self.label.setToolTip(text)
        self.show()


#: The emoji the picker offers first: the most used in chat.
COMMON_EMOJI: Final = (
    "👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "🔥",
    "👀", "✅", "👏", "😄", "🤔", "😍", "🙌", "💯",
    "😅", "👌", "🚀", "😊", "😭", "🥳", "👎", "❌",
)  # fmt: skip


class EmojiPicker(QFrame):
    """
    A popup of common emoji and a field for any other (a symbol or a short
    word); picking one emits it and closes the popup.
    """

    picked = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setObjectName("EmojiPicker")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(8)
        grid = QGridLayout()
        grid.setSpacing(2)
        for n, emoji in enumerate(COMMON_EMOJI):
            choice = QToolButton()
            choice.setObjectName("EmojiChoice")
            choice.setText(emoji)
            choice.setAutoRaise(True)
            choice.setCursor(Qt.CursorShape.PointingHandCursor)
            choice.clicked.connect(lambda _=False, e=emoji: self._pick(e))
            grid.addWidget(choice, n // 8, n % 8)
        layout.addLayout(grid)
        row = QHBoxLayout()
        self.field = QLineEdit()
        self.field.setPlaceholderText("Any emoji or word")
        self.field.setMaxLength(MAX_EMOJI_LENGTH)
        self.field.returnPressed.connect(self._pick_typed)
        row.addWidget(self.field, 1)
        add = button("React", "Primary")
        add.clicked.connect(self._pick_typed)
        row.addWidget(add)
        layout.addLayout(row)

    def _pick_typed(self) -> None:
        emoji = self.field.text().strip()
        if valid_emoji(emoji):
            self._pick(emoji)
        else:
            self.field.setToolTip("No spaces, at most 32 characters.")
            self.field.selectAll()

    def _pick(self, emoji: str) -> None:
        self.picked.emit(emoji)
        self.close()


def typing_line(names: tuple[str, ...]) -> str:
    """
    @return: the line under a conversation saying who is typing.
    """
    if not names:
        return ""
    if len(names) == 1:
        return f"{names[0]} is typing…"
    if len(names) == 2:
        return f"{names[0]} and {names[1]} are typing…"
    return "Several people are typing…"


class TimelineView(QListView):
    """
    The history of a conversation: opens at the newest message, keeps its
    place when older pages arrive above, follows new messages when at the
    bottom, and asks for older pages when scrolled to the top.

    While the conversation is detached (its model holds a window far back,
    L{TimelineModel.has_newer}), scrolling to the bottom asks for newer
    pages instead, which arrive below without moving the view, and a
    "Jump to latest" button floats over the bottom of the view.  Only the
    user's scrolling asks for pages: not the view's own (opening at the
    newest message, marking one).

    @ivar latest_button: the "Jump to latest" button.
    """

    older_wanted = pyqtSignal()
    newer_wanted = pyqtSignal()
    latest_wanted = pyqtSignal()
    quote_clicked = pyqtSignal(int)  # the id of the quoted message
    reaction_clicked = pyqtSignal(object, str)  # Message, emoji
    reply_wanted = pyqtSignal(object)  # Message
    edit_wanted = pyqtSignal(object)  # Message
    delete_wanted = pyqtSignal(object)  # Message
    react_wanted = pyqtSignal(object, QPoint)  # Message, where to pick
    save_wanted = pyqtSignal(object)  # a file Message
    save_cancelled = pyqtSignal(str)  # the file id
    image_wanted = pyqtSignal(object)  # a file Message with an image
    upload_cancelled = pyqtSignal(str)  # the client_msg_id of a pending file message
    upload_retried = pyqtSignal(str)  # the client_msg_id of a pending file message
    files_dropped = pyqtSignal(list)  # local paths
    image_dropped = pyqtSignal(QImage)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("HistoryView")
        self.setMouseTracking(True)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setUniformItemSizes(False)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self._bar().valueChanged.connect(self._scrolled)
        self._stick_to_bottom = True
        self._anchor: tuple[int, int] | None = None
        # Above 0 while the view scrolls itself: that asks for no page.
        self._scrolling_itself = 0
        # Whether to scroll to the newest message once the model is attached.
        self._follow_latest = False
        self.latest_button = button("Jump to latest ↓", "JumpToLatest", "Show the newest messages")
        self.latest_button.setParent(self)
        self.latest_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.latest_button.clicked.connect(self.go_to_latest)
        self.latest_button.hide()
        # Files dropped on the conversation are sent to it.
        self.setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self.dropping = False

    def _bar(self) -> QScrollBar:
        bar = self.verticalScrollBar()
        assert bar is not None
        return bar

    def timeline(self) -> TimelineModel | None:
        """
        @return: the timeline shown, if any.
        """
        model = self.model()
        return model if isinstance(model, TimelineModel) else None

    def show_timeline(self, model: TimelineModel | None) -> None:
        """
        Show C{model}, scrolled to its newest message.
        """
        old = self.timeline()
        if old is not None:
            old.rowsAboutToBeInserted.disconnect(self._before_insert)
            old.rowsInserted.disconnect(self._after_insert)
            old.dataChanged.disconnect(self._row_changed)
            old.modelAboutToBeReset.disconnect(self._before_reset)
            old.modelReset.disconnect(self._after_reset)
            old.history_state_changed.disconnect(self._history_state_changed)
        self.setModel(model)
        self._follow_latest = False
        if model is not None:
            model.rowsAboutToBeInserted.connect(self._before_insert)
            model.rowsInserted.connect(self._after_insert)
            model.dataChanged.connect(self._row_changed)
            model.modelAboutToBeReset.connect(self._before_reset)
            model.modelReset.connect(self._after_reset)
            model.history_state_changed.connect(self._history_state_changed)
        self._history_state_changed()
        self.scroll_to_newest()

    def scroll_to_newest(self) -> None:
        """
        Lay the rows out now and scroll to the last one.
        """
        self._scrolling_itself += 1
        try:
            self.executeDelayedItemsLayout()
            self.scrollToBottom()
        finally:
            self._scrolling_itself -= 1

    def go_to_latest(self) -> None:
        """
        Scroll to the newest message; when the conversation is detached,
        ask for it (L{latest_wanted}) and scroll there once it arrives.
        """
        model = self.timeline()
        if model is not None and model.has_newer:
            self._follow_latest = True
            self.latest_wanted.emit()
        else:
            self.scroll_to_newest()

    def _history_state_changed(self) -> None:
        model = self.timeline()
        detached = model is not None and model.has_newer
        self.latest_button.setVisible(detached)
        if detached:
            self._place_latest_button()
            self.latest_button.raise_()
        elif self._follow_latest:
            self._follow_latest = False
            self.scroll_to_newest()

    def _place_latest_button(self) -> None:
        self.latest_button.adjustSize()
        size = self.latest_button.size()
        self.latest_button.move(
            (self.width() - size.width()) // 2, self.height() - size.height() - 14
        )

    def _before_reset(self) -> None:
        # Qt lays the new rows out from the top: that is not the user
        # scrolling there.
        self._scrolling_itself += 1

    def _after_reset(self) -> None:
        self._scrolling_itself -= 1
        self.scroll_to_newest()

    def at_bottom(self) -> bool:
        """
        @return: whether the newest message is in view.
        """
        bar = self._bar()
        return bar.value() >= bar.maximum() - 8

    def _before_insert(self, parent: QModelIndex, first: int, last: int) -> None:
        model = self.timeline()
        # A newer page of a detached conversation arrives below the bottom
        # of the view: following it would ask for the next one at once.
        self._stick_to_bottom = self.at_bottom() and not (model is not None and model.has_newer)
        self._anchor = None
        if first == 0 and model is not None and model.rowCount() > 0:
            # An older page is coming above: remember which row is at the
            # top of the view, and where, to keep it there.
            top = self.indexAt(QPoint(1, 1))
            if top.isValid():
                self._anchor = (top.row() + last - first + 1, self.visualRect(top).top())

    def _after_insert(self, parent: QModelIndex, first: int, last: int) -> None:
        self.executeDelayedItemsLayout()
        model = self.model()
        if self._anchor is not None and not self._stick_to_bottom and model is not None:
            row, offset = self._anchor
            rect = self.visualRect(model.index(row, 0))
            bar = self._bar()
            bar.setValue(bar.value() + rect.top() - offset)
        elif self._stick_to_bottom:
            self.scrollToBottom()
        self._anchor = None

    def _scrolled(self, value: int) -> None:
        if self._scrolling_itself:
            return
        if value <= self._bar().minimum():
            self._want_older()
        elif value >= self._bar().maximum():
            self._want_newer()

    def _row_changed(self, *_: Any) -> None:
        # An edit or a reaction may make a row taller: keep the newest
        # message in view if it was.
        stick = self.at_bottom()
        self.executeDelayedItemsLayout()
        if stick:
            self.scrollToBottom()

    def _want_older(self) -> None:
        model = self.timeline()
        if model is not None and model.has_older and not model.loading_older:
            self.older_wanted.emit()

    def _want_newer(self) -> None:
        model = self.timeline()
        if model is not None and model.has_newer and not model.loading_newer:
            self.newer_wanted.emit()

    def wheelEvent(self, event: QWheelEvent | None) -> None:
        assert event is not None
        bar = self._bar()
        if event.angleDelta().y() > 0 and bar.value() <= bar.minimum():
            self._want_older()
        elif event.angleDelta().y() < 0 and bar.value() >= bar.maximum():
            self._want_newer()
        super().wheelEvent(event)

    def resizeEvent(self, event: Any) -> None:
        stick = self.at_bottom()
        super().resizeEvent(event)
        self._place_latest_button()
        if stick:
            self.scroll_to_newest()

    def relayout(self) -> None:
        """
        Lay the rows out again (an image arrived: its row's height is
        known now), keeping the newest message in view if it was.
        """
        stick = self.at_bottom()
        self.scheduleDelayedItemsLayout()
        self.executeDelayedItemsLayout()
        if stick:
            self.scrollToBottom()

    def mouseReleaseEvent(self, event: QMouseEvent | None) -> None:
        assert event is not None
        super().mouseReleaseEvent(event)
        if event.button() != Qt.MouseButton.LeftButton:
            return
        hit = self._hit(event.pos())
        if hit is None:
            return
        entry, (part, value) = hit
        if isinstance(entry, PendingMessage):
            if part == "cancel_upload":
                self.upload_cancelled.emit(str(value))
            elif part == "retry_upload":
                self.upload_retried.emit(str(value))
        elif part == "quote":
            self.quote_clicked.emit(int(value))
        elif part == "image":
            self.image_wanted.emit(entry)
        elif part == "save":
            self.save_wanted.emit(entry)
        elif part == "cancel_save":
            self.save_cancelled.emit(str(value))
        elif part == "reaction":
            self.reaction_clicked.emit(entry, str(value))

    # Dropping files on the conversation.

    def _droppable(self, mime: QMimeData | None) -> bool:
        return self.timeline() is not None and (
            bool(dropped_files(mime)) or dropped_image(mime) is not None
        )

    def dragEnterEvent(self, event: QDragEnterEvent | None) -> None:
        assert event is not None
        if self._droppable(event.mimeData()):
            event.acceptProposedAction()
            self._set_dropping(True)
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent | None) -> None:
        assert event is not None
        if self._droppable(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragLeaveEvent(self, event: Any) -> None:
        self._set_dropping(False)

    def dropEvent(self, event: QDropEvent | None) -> None:
        assert event is not None
        self._set_dropping(False)
        mime = event.mimeData()
        if not self._droppable(mime):
            event.ignore()
            return
        event.acceptProposedAction()
        paths = dropped_files(mime)
        if paths:
            self.files_dropped.emit(paths)
            return
        image = dropped_image(mime)
        if image is not None:
            self.image_dropped.emit(image)

    def _set_dropping(self, dropping: bool) -> None:
        if self.dropping != dropping:
            self.dropping = dropping
            viewport = self.viewport()
            if viewport is not None:
                viewport.update()

    def paintEvent(self, event: Any) -> None:
        super().paintEvent(event)
        if not self.dropping:
            return
        viewport = self.viewport()
        if viewport is None:
            return
        painter = QPainter(viewport)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(viewport.rect()).adjusted(10, 10, -10, -10)
        pen = QPen(QColor(ACCENT), 2)
        pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        fill = QColor(ACCENT)
        fill.setAlpha(28)
        painter.setBrush(fill)
        painter.drawRoundedRect(rect, 14, 14)
        painter.setPen(QColor(ACCENT))
        font = painter.font()
        font.setPointSizeF(13)
        font.setBold(True)
        painter.setFont(font)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "Drop to send")
        painter.end()

    def mouseMoveEvent(self, event: QMouseEvent | None) -> None:
        assert event is not None
        super().mouseMoveEvent(event)
        pointing = self._hit(event.pos()) is not None
        viewport = self.viewport()
        if viewport is not None:
            viewport.setCursor(
                Qt.CursorShape.PointingHandCursor if pointing else Qt.CursorShape.ArrowCursor
            )

    def _hit(self, position: QPoint) -> tuple[Message | PendingMessage, Hit] | None:
        index = self.indexAt(position)
        delegate = self.itemDelegate()
        entry = index.data(EntryRole) if index.isValid() else None
        if not isinstance(delegate, MessageDelegate):
            return None
        if not isinstance(entry, Message) and not (
            isinstance(entry, PendingMessage) and entry.file is not None
        ):
            return None
        option = QStyleOptionViewItem()
        option.initFrom(self)
        option.rect = self.visualRect(index)
        point = QPointF(position - option.rect.topLeft())
        hit = delegate.hit(option, index, point)
        return None if hit is None else (entry, hit)

    def flash(self, row: int) -> None:
        """
        Scroll to C{row} and mark it for a moment.
        """
        model = self.model()
        if model is None:
            return
        index = model.index(row, 0)
        self._scrolling_itself += 1
        try:
            self.executeDelayedItemsLayout()
            self.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
            self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
            self.setCurrentIndex(index)
        finally:
            self._scrolling_itself -= 1

    def unflash(self) -> None:
        """
        Take away the mark of L{flash}.
        """
        self.clearSelection()
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)

    def _menu(self, position: QPoint) -> None:
        index = self.indexAt(position)
        if not index.isValid():
            return
        entry = index.data(EntryRole)
        # popup(), not exec_(): a slot must not run a nested event loop.
        menu = QMenu(self)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        if isinstance(entry, Message) and entry.editable:
            at = self.mapToGlobal(position)
            menu.addAction("Reply", lambda: self.reply_wanted.emit(entry))
            menu.addAction("React…", lambda: self.react_wanted.emit(entry, at))
            if entry.file is not None:
                if entry.file.image:
                    menu.addAction("Open image", lambda: self.image_wanted.emit(entry))
                menu.addAction("Save file…", lambda: self.save_wanted.emit(entry))
            menu.addAction("Copy text", lambda: self._copy(entry.text))
            model = self.timeline()
            mine = model is not None and entry.sender_id == model.me
            if mine:
                menu.addAction("Edit", lambda: self.edit_wanted.emit(entry))
            if mine or (model is not None and model.may_delete_others):
                menu.addSeparator()
                menu.addAction("Delete…", lambda: self.delete_wanted.emit(entry))
        elif not (isinstance(entry, Message) and entry.deleted):
            text = str(index.data())
            menu.addAction("Copy text", lambda: self._copy(text))
        if menu.isEmpty():
            menu.deleteLater()
            return
        menu.popup(self.mapToGlobal(position))

    def _copy(self, text: str) -> None:
        clipboard = QGuiApplication.clipboard()
        if clipboard is not None:
            clipboard.setText(text)


class ChoiceBox(QComboBox):
    """
    A combo box whose arrow is a small chevron drawn in the palette's
    muted colour (the style sheet hides the platform's arrow).
    """

    def paintEvent(self, event: Any) -> None:
        super().paintEvent(event)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(QColor(MUTED), 1.6)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        painter.setPen(pen)
        x = self.width() - 16.0
        y = self.height() / 2
        painter.drawPolyline(
            QPolygonF([QPointF(x - 4, y - 2), QPointF(x, y + 2), QPointF(x + 4, y - 2)])
        )
        painter.end()


class ActionPanel(QFrame):
    """
    A small card with one text field and a button: add a friend, create a
    room.  The name is checked against PROTOCOL.md section 4 first.
    """

    submitted = pyqtSignal(str)
    cancelled = pyqtSignal()

    def __init__(
        self, title: str, placeholder: str, action: str, hint: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("Panel")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 12)
        layout.setSpacing(8)
        heading = QLabel(title)
        heading.setStyleSheet("font-weight: 700;")
        layout.addWidget(heading)
        self.field = QLineEdit()
        self.field.setPlaceholderText(placeholder)
        self.field.returnPressed.connect(self.submit)
        layout.addWidget(self.field)
        self.hint = QLabel(hint)
        self.hint.setObjectName("Hint")
        self.hint.setWordWrap(True)
        layout.addWidget(self.hint)
        self._default_hint = hint
        self.extra = QVBoxLayout()
        self.extra.setSpacing(6)
        layout.addLayout(self.extra)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.cancel_button = button("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.action_button = button(action, "Primary")
        self.action_button.clicked.connect(self.submit)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.action_button)
        layout.addLayout(buttons)

    def open(self) -> None:
        """
        Show the panel, empty, with the cursor in its field.
        """
        self.field.clear()
        self.show_hint(self._default_hint)
        self.show()
        self.field.setFocus()

    def cancel(self) -> None:
        """
        Hide the panel.
        """
        self.hide()
        self.cancelled.emit()

    def show_hint(self, text: str, error: bool = False) -> None:
        """
        Show C{text} under the field (in red when it is an C{error}).
        """
        self.hint.setText(text)
        self.hint.setStyleSheet("color: #E5484D;" if error else "")

    def submit(self) -> None:
        """
        Emit the name typed, if it is a valid name.
        """
        name = self.field.text().strip()
        if not valid_name(name):
            self.show_hint("Use 1-32 letters (a-z), digits or _.", error=True)
            return
        self.submitted.emit(name)


class JoinRoomPanel(ActionPanel):
    """
    Join a room by name, with a search of the server's rooms
    (C{list_rooms}) to pick from.

    Each room found shows its member count and topic, cut to the width of
    the list; the rooms we are in already are marked "joined", and picking
    one of those offers to open it instead (its button says Open).  What
    to do with the name is the main window's choice: this only emits it.
    """

    search_requested = pyqtSignal(str)

    #: The hint while the rooms listed are all rooms we are in.
    ALL_JOINED: Final = "You are in every room listed: pick one to open it."
    #: The hint while a room we are in is picked.
    OPENS: Final = "You are in this room: Open shows it."

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            "Join a room",
            "Search rooms or type a name",
            "Join",
            "Press Enter to search; pick a room, then Join.",
            parent,
        )
        self.results_model = RoomSearchModel(self)
        self.results = QListView()
        self.results.setObjectName("SearchResults")
        self.results.setModel(self.results_model)
        self.results.setItemDelegate(RoomResultDelegate(self.results))
        self.results.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.results.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.results.setMouseTracking(True)
        # Three rooms, or two when the window is short.
        self.results.setMinimumHeight(2 * RoomResultDelegate.HEIGHT + 4)
        self.results.setMaximumHeight(3 * RoomResultDelegate.HEIGHT + 4)
        selection = self.results.selectionModel()
        assert selection is not None
        selection.currentChanged.connect(self._picked)
        self.results.doubleClicked.connect(lambda _: self.submit())
        self.extra.addWidget(self.results)
        self.field.returnPressed.disconnect(self.submit)
        self.field.returnPressed.connect(self._search_or_join)
        self.field.textChanged.connect(self._show_action)

    def open(self) -> None:
        super().open()
        self.results_model.set_rooms([])
        self.search_requested.emit("")

    def set_results(self, rooms: list[dict[str, Any]], joined: Iterable[int] = ()) -> None:
        """
        Show the rooms a search found.

        @param joined: the ids of the rooms we are in.
        """
        self.results_model.set_rooms(rooms, joined)
        self._show_hint()

    def set_joined(self, joined: Iterable[int]) -> None:
        """
        Note which rooms we are in now (we joined or left one meanwhile).
        """
        self.results_model.set_joined(joined)
        self._show_action()

    def _show_hint(self) -> None:
        model = self.results_model
        count = model.rowCount()
        if not count:
            self.show_hint("No room matches. Check the name, or create it.")
        elif self.opens:
            self.show_hint(self.OPENS)
        elif all(model.joined(row) for row in range(count)):
            self.show_hint(self.ALL_JOINED)
        else:
            self.show_hint(self._default_hint)

    def _matching_row(self) -> int | None:
        """
        @return: the row of the room found whose name is the one typed
            (names are unique, in any case), or L{None}.
        """
        text = self.field.text().strip().lower()
        for row in range(self.results_model.rowCount()):
            name = self.results_model.data(self.results_model.index(row), NameRole)
            if text and str(name).lower() == text:
                return row
        return None

    @property
    def opens(self) -> bool:
        """
        Whether the name typed is that of a room found that we are in: the
        button opens it rather than joining.
        """
        row = self._matching_row()
        return row is not None and self.results_model.joined(row)

    def _show_action(self) -> None:
        self.action_button.setText("Open" if self.opens else "Join")
        if self.results_model.rowCount():
            self._show_hint()

    def _search_or_join(self) -> None:
        # Enter on a name that a result matches exactly joins (or opens)
        # it; on anything else it searches.
        text = self.field.text().strip()
        if self._matching_row() is not None:
            self.submit()
            return
        self.search_requested.emit(text)

    def _picked(self, current: QModelIndex, previous: QModelIndex) -> None:
        if current.isValid():
            self.field.setText(str(current.data(NameRole)))


class RequestBanner(QFrame):
    """
    The prompt for incoming friend requests: the oldest one, with accept
    and decline.
    """

    answered = pyqtSignal(int, bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("RequestBanner")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(14, 10, 10, 10)
        layout.setSpacing(8)
        self.text = QLabel()
        self.text.setWordWrap(True)
        layout.addWidget(self.text, 1)
        self.decline_button = button("Decline")
        self.accept_button = button("Accept", "Primary")
        layout.addWidget(self.decline_button)
        layout.addWidget(self.accept_button)
        self.accept_button.clicked.connect(lambda: self._answer(True))
        self.decline_button.clicked.connect(lambda: self._answer(False))
        self.requests: tuple[User, ...] = ()
        self.hide()

    def set_requests(self, requests: tuple[User, ...]) -> None:
        """
        Show the first of C{requests}, or hide when there is none.
        """
        self.requests = tuple(requests)
        if not self.requests:
            self.hide()
            return
        first = self.requests[0]
        more = len(self.requests) - 1
        text = f"<b>{label(first.username, first.id)}</b> wants to be your friend."
        if more:
            text += f" <span style='color:#737D8C'>(and {more} more)</span>"
        self.text.setText(text)
        self.show()

    def _answer(self, accept: bool) -> None:
        if self.requests:
            self.answered.emit(self.requests[0].id, accept)


class MemberPanel(QFrame):
    """
    The selected room's members with their presence and role, inviting a
    friend, and leaving the room.

    A member's context menu offers what we may do to them (PROTOCOL.md
    section 12): the owner makes a member a moderator or a moderator a
    member again; the owner removes or bans anyone else, a moderator plain
    members.  Below the list, an owner or moderator who banned someone in
    this session may let them back.
    """

    invite_requested = pyqtSignal(int, int)
    quit_requested = pyqtSignal(int)
    role_requested = pyqtSignal(int, int, str)  # room id, user id, role
    remove_requested = pyqtSignal(int, int, bool)  # room id, user id, ban
    unban_requested = pyqtSignal(int, int)  # room id, user id

    #: The entries of a member's context menu.
    MAKE_MODERATOR: Final = "Make moderator"
    UNMAKE_MODERATOR: Final = "Remove as moderator"
    REMOVE: Final = "Remove from room…"
    BAN: Final = "Ban from room…"

    def __init__(self, model: MemberListModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MemberPanel")
        self.setFixedWidth(240)
        self.model = model
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 14, 8, 12)
        layout.setSpacing(6)
        self.title = QLabel("MEMBERS")
        self.title.setObjectName("SectionTitle")
        self.title.setContentsMargins(8, 0, 0, 0)
        layout.addWidget(self.title)
        self.members_view = QListView()
        self.members_view.setModel(model)
        self.members_view.setItemDelegate(MemberDelegate(self.members_view))
        self.members_view.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.members_view.setMouseTracking(True)
        self.members_view.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.members_view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.members_view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.members_view.customContextMenuRequested.connect(self._member_menu)
        layout.addWidget(self.members_view, 1)
        self.bans_button = button("", "Flat", "Let someone you banned join again")
        self.bans_button.clicked.connect(self._bans_menu)
        self.bans_button.hide()
        self._bans: tuple[User, ...] = ()
        layout.addWidget(self.bans_button)
        invite_title = QLabel("INVITE A FRIEND")
        invite_title.setObjectName("SectionTitle")
        invite_title.setContentsMargins(8, 6, 0, 0)
        layout.addWidget(invite_title)
        self.invite_combo = ChoiceBox()
        self.invite_combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        layout.addWidget(self.invite_combo)
        self.invite_button = button("Invite", "Primary")
        self.invite_button.clicked.connect(self._invite)
        layout.addWidget(self.invite_button)
        layout.addSpacing(8)
        self.quit_button = button("Leave room", "Danger")
        self.quit_button.clicked.connect(self._quit)
        layout.addWidget(self.quit_button)
        model.modelReset.connect(self._count)
        model.rowsInserted.connect(self._count)
        model.rowsRemoved.connect(self._count)

    def set_invitable(self, friends: list[Member]) -> None:
        """
        Offer C{friends} (those not in the room) to invite.
        """
        chosen = self.invite_combo.currentData()
        self.invite_combo.clear()
        for friend in friends:
            self.invite_combo.addItem(label(friend.username, friend.id), friend.id)
        if chosen is not None:
            row = self.invite_combo.findData(chosen)
            if row >= 0:
                self.invite_combo.setCurrentIndex(row)
        empty = not friends
        self.invite_combo.setEnabled(not empty)
        self.invite_button.setEnabled(not empty)
        if empty:
            self.invite_combo.addItem("All your friends are here")

    def _count(self) -> None:
        self.title.setText(f"MEMBERS · {self.model.rowCount()}")

    def actions_for(self, user_id: int) -> list[str]:
        """
        @return: the entries of member C{user_id}'s context menu: what we
            may do to them, as the state knows our roles.
        """
        room = self.model.room()
        me = self.model.me
        if room is None or user_id not in room.members or user_id == me:
            return []
        actions: list[str] = []
        if room.may_set_roles(me):
            target = room.members[user_id]
            actions.append(
                self.UNMAKE_MODERATOR if target.role == MODERATOR else self.MAKE_MODERATOR
            )
        if room.may_remove(me, user_id):
            actions += [self.REMOVE, self.BAN]
        return actions

    def _member_menu(self, position: QPoint) -> None:
        index = self.members_view.indexAt(position)
        viewport = self.members_view.viewport()
        room_id = self.model.room_id
        if not index.isValid() or viewport is None or room_id is None:
            return
        user_id = self.model.member(index.row()).id
        actions = self.actions_for(user_id)
        if not actions:
            return
        requests = {
            self.MAKE_MODERATOR: lambda: self.role_requested.emit(room_id, user_id, MODERATOR),
            self.UNMAKE_MODERATOR: lambda: self.role_requested.emit(room_id, user_id, MEMBER),
            self.REMOVE: lambda: self.remove_requested.emit(room_id, user_id, False),
            self.BAN: lambda: self.remove_requested.emit(room_id, user_id, True),
        }
        # popup(), not exec_(): a slot must not run a nested event loop.
        menu = QMenu(self.members_view)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        for action in actions:
            if action == self.REMOVE and not menu.isEmpty():
                menu.addSeparator()
            menu.addAction(action, requests[action])
        menu.popup(viewport.mapToGlobal(position))

    def set_bans(self, users: tuple[User, ...]) -> None:
        """
        Offer to let back C{users}: those we banned from the room shown in
        this session (none when we no longer moderate it).
        """
        self._bans = tuple(users)
        self.bans_button.setText(f"Banned by you ({len(users)})…")
        self.bans_button.setVisible(bool(users))

    def _bans_menu(self) -> None:
        room_id = self.model.room_id
        if room_id is None or not self._bans:
            return
        menu = QMenu(self.bans_button)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        for user in self._bans:
            menu.addAction(
                f"Unban {label(user.username, user.id)}",
                lambda _=False, user_id=user.id: self.unban_requested.emit(room_id, user_id),
            )
        menu.popup(self.bans_button.mapToGlobal(QPoint(0, self.bans_button.height())))

    def _invite(self) -> None:
        user_id = self.invite_combo.currentData()
        if self.model.room_id is not None and user_id is not None:
            self.invite_requested.emit(self.model.room_id, int(user_id))

    def _quit(self) -> None:
        if self.model.room_id is not None:
            self.quit_requested.emit(self.model.room_id)


class SearchPanel(QFrame):
    """
    Search of our messages: a field, whether to look in all our
    conversations or only in the one shown, and what was found, newest
    first.

    Typing searches once the user pauses for L{SEARCH_DELAY} seconds, or
    at once on Enter; scrolling to the bottom of the results asks for the
    next page.  Down goes from the field to the results; Enter or a click
    on one opens it; Esc closes the panel.  The delay runs on an injected
    clock, as the message bar's does.

    @ivar here: whether the search is of the conversation shown only.
    """

    search_requested = pyqtSignal(object)  # SearchRequest
    result_opened = pyqtSignal(object)  # Message
    closed = pyqtSignal()

    #: What the panel says before anything is typed.
    PROMPT: Final = "Type to search your messages.\n↓ and Enter open a result · Esc closes"
    #: What it says when nothing matches.
    NOTHING_FOUND: Final = "No messages found"

    def __init__(
        self, model: SearchResultsModel, clock: IReactorTime, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("SearchPanel")
        self.setFixedWidth(340)
        self.model = model
        self._clock = clock
        self._delayed: IDelayedCall | None = None
        self._key: Key | None = None
        self._name = ""
        self.here = False

        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 12, 10, 10)
        layout.setSpacing(8)
        top = QHBoxLayout()
        title = QLabel("SEARCH MESSAGES")
        title.setObjectName("SectionTitle")
        title.setContentsMargins(4, 0, 0, 0)
        top.addWidget(title)
        top.addStretch(1)
        self.close_button = button("✕", "Flat", "Close the search (Esc)")
        self.close_button.clicked.connect(self.close_search)
        top.addWidget(self.close_button)
        layout.addLayout(top)

        self.field = QLineEdit()
        self.field.setPlaceholderText("Search messages…")
        self.field.setMaxLength(MAX_QUERY)
        self.field.setClearButtonEnabled(True)
        self.field.textEdited.connect(self._edited)
        self.field.returnPressed.connect(self._enter)
        self.field.installEventFilter(self)
        layout.addWidget(self.field)

        segments = QFrame()
        segments.setObjectName("Segments")
        segments_layout = QHBoxLayout(segments)
        segments_layout.setContentsMargins(3, 3, 3, 3)
        segments_layout.setSpacing(3)
        self.all_button = button("All conversations", "Segment", "Search every conversation")
        self.here_button = button("This conversation", "Segment")
        self._scopes = QButtonGroup(self)
        for choice in (self.all_button, self.here_button):
            choice.setCheckable(True)
            choice.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            self._scopes.addButton(choice)
            segments_layout.addWidget(choice, 1)
        self.all_button.setChecked(True)
        self.all_button.clicked.connect(lambda: self.set_here(False))
        self.here_button.clicked.connect(lambda: self.set_here(True))
        layout.addWidget(segments)

        self.status = QLabel(self.PROMPT)
        self.status.setObjectName("SearchStatus")
        self.status.setWordWrap(True)
        self.status.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.status.setProperty("error", False)
        layout.addWidget(self.status)

        self.results = QListView()
        self.results.setObjectName("MessageResults")
        self.results.setModel(model)
        self.results.setItemDelegate(SearchResultDelegate(self.results))
        self.results.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.results.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.results.setResizeMode(QListView.ResizeMode.Adjust)
        self.results.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.results.setUniformItemSizes(False)
        self.results.setMouseTracking(True)
        self.results.setSpacing(2)
        self.results.clicked.connect(lambda index: self.open_result(index.row()))
        self.results.installEventFilter(self)
        viewport = self.results.viewport()
        if viewport is not None:
            viewport.setCursor(Qt.CursorShape.PointingHandCursor)
        bar = self.results.verticalScrollBar()
        assert bar is not None
        bar.valueChanged.connect(self._scrolled)
        layout.addWidget(self.results, 1)

        escape = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        escape.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        escape.activated.connect(self.close_search)
        self._show_conversation()

    # Opening and closing.

    def open(self, here: bool | None = None) -> None:
        """
        Show the panel with the cursor in its field, its text selected.

        @param here: whether to search only the conversation shown (when
            there is one), or L{None} to keep the choice made before.
        """
        if here is not None:
            self.set_here(here, search=False)
        self.show()
        self.field.setFocus()
        self.field.selectAll()
        if self._stale():
            self.search_now()

    def close_search(self) -> None:
        """
        Hide the panel; what was found stays for the next time.
        """
        self._cancel()
        if not self.isHidden():
            self.hide()
            self.closed.emit()

    def reset(self) -> None:
        """
        Forget the search (the session ended) and hide the panel.
        """
        self.field.clear()
        self.model.clear()
        self._show_status()
        self.close_search()

    # The scope.

    @property
    def scope(self) -> Key | None:
        """
        The conversation the search is about, or L{None} for all of ours.
        """
        return self._key if self.here else None

    def set_conversation(self, key: Key | None, name: str = "") -> None:
        """
        Note the conversation shown (C{name} is how it is called): the one
        "This conversation" searches.  When that is the search shown, it
        runs again for the new one.
        """
        self._key, self._name = key, name
        if key is None:
            self.here = False
        self._show_conversation()
        if not self.isHidden() and self._stale():
            self.search_now()

    def set_here(self, here: bool, search: bool = True) -> None:
        """
        Search only the conversation shown (C{here}), or all of ours; with
        C{search}, run the search again for the new choice.
        """
        self.here = here and self._key is not None
        self._show_conversation()
        if search and self._stale():
            self.search_now()

    def _show_conversation(self) -> None:
        (self.here_button if self.here else self.all_button).setChecked(True)
        self.here_button.setEnabled(self._key is not None)
        if self._key is None:
            self.here_button.setText("This conversation")
            self.here_button.setToolTip("Open a conversation to search only in it")
            return
        metrics = self.here_button.fontMetrics()
        name = metrics.elidedText(self._name, Qt.TextElideMode.ElideRight, 110)
        self.here_button.setText(f"In {name}")
        self.here_button.setToolTip(f"Search only in {self._name}")

    # Searching.

    def _stale(self) -> bool:
        """
        @return: whether the field or the scope differs from what the
            results shown (or on their way) were asked for.
        """
        text = self.field.text()
        if not valid_query(text):
            return bool(self.model.query)
        return text != self.model.query or self.scope != self.model.key

    def _edited(self, text: str) -> None:
        self._cancel()
        self._delayed = self._clock.callLater(SEARCH_DELAY, self.search_now)

    def _cancel(self) -> None:
        if self._delayed is not None and self._delayed.active():
            self._delayed.cancel()
        self._delayed = None

    def _enter(self) -> None:
        # Enter searches what was typed (again, after a failure); on a
        # search already shown, it opens the result picked (or the first).
        if self._delayed is not None or self._stale() or self.model.error is not None:
            self.search_now()
            return
        current = self.results.currentIndex()
        self.open_result(current.row() if current.isValid() else 0)

    def search_now(self) -> None:
        """
        Search for what the field holds, in the scope chosen.
        """
        self._cancel()
        text = self.field.text()
        if not valid_query(text):
            self.model.clear()
            self._show_status()
            return
        request = self.model.start(text, self.scope)
        self._show_status()
        self.search_requested.emit(request)

    def load_more(self) -> None:
        """
        Ask for the next page of results, if there is one to ask for.
        """
        request = self.model.more()
        if request is not None:
            self._show_status()
            self.search_requested.emit(request)

    def show_results(self, request: SearchRequest, page: SearchPage) -> None:
        """
        Show a page of results, unless a newer request replaced C{request}.
        """
        if not self.model.apply(request, page):
            return
        self._show_status()
        if not self.isHidden() and self.model.has_more:
            # A page that does not fill the list cannot be scrolled to its
            # bottom: ask for the next one now.
            self.results.executeDelayedItemsLayout()
            bar = self.results.verticalScrollBar()
            if bar is not None and bar.maximum() <= bar.minimum():
                self.load_more()

    def show_error(self, request: SearchRequest, text: str) -> None:
        """
        Say why C{request} failed, unless a newer request replaced it.
        """
        if self.model.fail(request, text):
            self._show_status()

    def _show_status(self) -> None:
        model = self.model
        count = model.rowCount()
        error = model.error is not None
        if error:
            text = str(model.error)
        elif not model.query:
            text = self.PROMPT
        elif model.loading:
            text = "Loading more…" if count else "Searching…"
        elif not count:
            text = self.NOTHING_FOUND
        else:
            text = f"{count}{'+' if model.has_more else ''} message{'s' if count != 1 else ''}"
            text += " found, newest first"
        self.status.setText(text)
        self.status.setProperty("error", error)
        restyle(self.status)

    def _scrolled(self, value: int) -> None:
        bar = self.results.verticalScrollBar()
        if bar is not None and value >= bar.maximum() - 40:
            self.load_more()

    # Results.

    def open_result(self, row: int) -> None:
        """
        Open the result at C{row}: its conversation, at that message.
        """
        if not 0 <= row < self.model.rowCount():
            return
        self.results.setCurrentIndex(self.model.index(row))
        self.result_opened.emit(self.model.message(row))

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:
        if event is None or event.type() != QEvent.Type.KeyPress:
            return False
        assert isinstance(event, QKeyEvent)
        key = event.key()
        if watched is self.field and key == Qt.Key.Key_Down and self.model.rowCount():
            self.results.setFocus()
            if not self.results.currentIndex().isValid():
                self.results.setCurrentIndex(self.model.index(0))
            return True
        if watched is self.results and key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            current = self.results.currentIndex()
            if current.isValid():
                self.open_result(current.row())
            return True
        if watched is self.results and key == Qt.Key.Key_Up:
            current = self.results.currentIndex()
            if not current.isValid() or current.row() == 0:
                self.field.setFocus()
                return True
        return False
