"""
The "Change password" dialog (PROTOCOL.md section 13): the current
password, the new one twice; the new one's rule (section 4) and the match
are checked here, before anything is sent.  It emits what the user wants
and L{client.ui.app.ChatApp} sends it; the answer comes back through
L{PasswordDialog.show_error} or L{PasswordDialog.finish}.  Opened with
C{open()}, it never blocks the loop.
"""

from __future__ import annotations

from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from chatd.wire import valid_password
from client import texts
from client.ui.style import restyle
from client.ui.widgets import button


class PasswordDialog(QDialog):
    """
    Ask for the current password and a new one, twice.
    """

    #: The user wants to change the password: the current one, the new one.
    change_requested = pyqtSignal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("PasswordDialog")
        self.setWindowTitle("Change password")
        self.setMinimumWidth(360)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 18, 20, 16)
        layout.setSpacing(6)

        self.current = QLineEdit()
        self.new = QLineEdit()
        self.again = QLineEdit()
        for caption, field in (
            ("Current password", self.current),
            ("New password", self.new),
            ("New password, again", self.again),
        ):
            field.setEchoMode(QLineEdit.EchoMode.Password)
            field.setMinimumHeight(32)
            field.textEdited.connect(lambda _: self.clear_message())
            text = QLabel(caption)
            text.setStyleSheet("font-weight: 600; font-size: 9pt;")
            layout.addWidget(text)
            layout.addWidget(field)
        self.rule = QLabel(texts.PASSWORD_RULE)
        self.rule.setObjectName("Hint")
        self.rule.setWordWrap(True)
        layout.addWidget(self.rule)

        self.message = QLabel()
        self.message.setObjectName("ErrorLabel")
        self.message.setWordWrap(True)
        self.message.setContentsMargins(10, 7, 10, 7)
        self.message.hide()
        layout.addWidget(self.message)

        buttons = QDialogButtonBox()
        self.change_button = button("Change password", "Primary")
        self.change_button.setDefault(True)
        self.cancel_button = button("Cancel")
        buttons.addButton(self.change_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.RejectRole)
        buttons.accepted.connect(self.submit)
        buttons.rejected.connect(self.reject)
        layout.addSpacing(6)
        layout.addWidget(buttons)

    def start(self) -> None:
        """
        Show the dialog, empty, over its window.
        """
        for field in (self.current, self.new, self.again):
            field.clear()
        self.clear_message()
        self.set_busy(False)
        self.open()
        self.current.setFocus()

    def submit(self) -> None:
        """
        Check the fields, then ask for the change.
        """
        if not self.change_button.isEnabled():
            return
        current, new = self.current.text(), self.new.text()
        if not current:
            self.show_error("Enter your current password.")
            self.current.setFocus()
            return
        if not valid_password(new):
            self.show_error(texts.PASSWORD_RULE)
            self.new.setFocus()
            return
        if new != self.again.text():
            self.show_error("The two new passwords differ.")
            self.again.clear()
            self.again.setFocus()
            return
        self.set_busy(True)
        self.change_requested.emit(current, new)

    def set_busy(self, busy: bool) -> None:
        """
        While the request is on its way, the form is disabled.
        """
        for widget in (self.current, self.new, self.again, self.change_button):
            widget.setEnabled(not busy)
        self.change_button.setText("Changing…" if busy else "Change password")

    def show_error(self, text: str) -> None:
        """
        The change failed (or was not sent): say why, and let the user try
        again.
        """
        self.set_busy(False)
        self.message.setText(text)
        restyle(self.message)
        self.message.show()

    def clear_message(self) -> None:
        """
        Hide the error line.
        """
        self.message.hide()
        self.message.setText("")

    def finish(self) -> None:
        """
        The password is changed: forget what was typed, and close.
        """
        for field in (self.current, self.new, self.again):
            field.clear()
        self.set_busy(False)
        self.accept()
