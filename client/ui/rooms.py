"""
The room's topic under its name in the conversation header, shown on one
line and, for its owner and moderators, edited in place (PROTOCOL.md
section 12).  Like every widget, it renders a value and emits what the user
wants; it does not talk to the server.
"""

from __future__ import annotations

from typing import Any, Final

from PyQt5.QtCore import QEvent, QObject, Qt, pyqtSignal
from PyQt5.QtGui import QKeyEvent, QMouseEvent
from PyQt5.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QStackedWidget,
    QWidget,
)

from chatd.wire import MAX_TOPIC, valid_topic
from client import texts
from client.ui.style import restyle
from client.ui.widgets import button

#: What the topic line says to an owner or moderator when there is none.
NO_TOPIC: Final = "Add a topic"
#: The hint beside the field while editing.
EDIT_HINT: Final = "Enter saves · Esc cancels"


class ElidedLabel(QLabel):
    """
    A one-line label that shows as much of its text as fits, ending in
    "…", with the whole text as its tooltip; it never asks for more width
    than it gets, so a long text cannot widen the window.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def set_full_text(self, text: str) -> None:
        """
        Show C{text}, cut to the label's width.
        """
        self._full = text
        self.setToolTip(text)
        self._elide()

    def full_text(self) -> str:
        """
        @return: the whole text, as given to L{set_full_text}.
        """
        return self._full

    def _elide(self) -> None:
        width = max(0, self.width() - 2)
        self.setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, width))

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._elide()


class _TopicField(QLineEdit):
    """
    The topic's field: Escape cancels the edit.
    """

    cancelled = pyqtSignal()

    def keyPressEvent(self, event: QKeyEvent | None) -> None:
        assert event is not None
        if event.key() == Qt.Key.Key_Escape:
            event.accept()
            self.cancelled.emit()
            return
        super().keyPressEvent(event)


class TopicLine(QStackedWidget):
    """
    A room's topic on one line, cut to fit (the whole of it on hover).

    For the owner and the moderators (L{editable}), a double click on it or
    its Edit button turns it into a field of at most 200 characters: Enter
    emits L{submitted} with the new topic (the field waits, read-only,
    until L{saved} or L{failed} says how it went), Escape gives up.  Others
    only see the topic; with none, the line is hidden from them.

    @ivar editable: whether we may change the topic.
    """

    submitted = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("TopicLine")
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.topic = ""
        self.editable = False

        viewing = QWidget()
        row = QHBoxLayout(viewing)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        self.label = ElidedLabel()
        self.label.setObjectName("Topic")
        self.label.setProperty("empty", False)
        self.label.installEventFilter(self)
        row.addWidget(self.label, 1)
        self.edit_button = button("Edit", "Flat", "Change the topic (owner and moderators)")
        self.edit_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.edit_button.clicked.connect(self.start_edit)
        row.addWidget(self.edit_button)
        self.addWidget(viewing)

        editing = QWidget()
        row = QHBoxLayout(editing)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(8)
        self.field = _TopicField()
        self.field.setObjectName("TopicField")
        self.field.setMaxLength(MAX_TOPIC)
        self.field.setPlaceholderText(f"What is this room about? (at most {MAX_TOPIC} characters)")
        self.field.setClearButtonEnabled(True)
        self.field.returnPressed.connect(self._submit)
        self.field.cancelled.connect(self.cancel_edit)
        row.addWidget(self.field, 1)
        self.hint = QLabel(EDIT_HINT)
        self.hint.setObjectName("Hint")
        row.addWidget(self.hint)
        self.addWidget(editing)
        self.hide()

    @property
    def editing(self) -> bool:
        """
        Whether the field is open.
        """
        return self.currentIndex() == 1

    @property
    def saving(self) -> bool:
        """
        Whether a topic submitted waits for the server's answer.
        """
        return self.editing and self.field.isReadOnly()

    def show_topic(self, topic: str, editable: bool) -> None:
        """
        Show C{topic}; let the user edit it when C{editable}.  An edit
        under way stays open (someone else changed the topic meanwhile),
        unless the right to edit is gone.
        """
        self.topic, self.editable = topic, editable
        empty = not topic
        self.label.set_full_text(NO_TOPIC if empty and editable else topic)
        self.label.setProperty("empty", empty)
        restyle(self.label)
        self.edit_button.setVisible(editable)
        if self.editing and not editable:
            self.cancel_edit()
        self.setVisible(bool(topic) or editable)
        self.label.setCursor(
            Qt.CursorShape.PointingHandCursor if editable else Qt.CursorShape.ArrowCursor
        )

    def start_edit(self) -> None:
        """
        Open the field on the current topic, if we may edit it.
        """
        if not self.editable:
            return
        self.field.setReadOnly(False)
        self.field.setText(self.topic)
        self.field.selectAll()
        self.hint.setText(EDIT_HINT)
        self.setCurrentIndex(1)
        self.field.setFocus()

    def cancel_edit(self) -> None:
        """
        Close the field; the topic stays as it was.
        """
        self.field.setReadOnly(False)
        self.setCurrentIndex(0)

    def saved(self) -> None:
        """
        The topic submitted was set: close the field.
        """
        if self.saving:
            self.cancel_edit()

    def failed(self, text: str) -> None:
        """
        The topic submitted was refused: the field is editable again, with
        what was typed, and says why.
        """
        if self.saving:
            self.field.setReadOnly(False)
            self.hint.setText("Not saved")
            self.hint.setToolTip(text)
            self.field.setFocus()

    def _submit(self) -> None:
        if self.saving:
            return
        topic = self.field.text().strip()
        if topic == self.topic:
            self.cancel_edit()
            return
        if not valid_topic(topic):
            self.hint.setText("No line breaks or control characters")
            self.hint.setToolTip(texts.TOPIC_RULE)
            return
        self.field.setReadOnly(True)
        self.hint.setText("Saving…")
        self.submitted.emit(topic)

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:
        if (
            watched is self.label
            and event is not None
            and event.type() == QEvent.Type.MouseButtonDblClick
            and isinstance(event, QMouseEvent)
            and event.button() == Qt.MouseButton.LeftButton
        ):
            self.start_edit()
            return True
        return False
