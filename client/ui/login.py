"""
The login window: log in, or register an account (the password asked
twice, the name and password checked against PROTOCOL.md section 4 before
anything is sent), and choose whether to stay logged in after this run
(PROTOCOL.md section 13; the default).  Errors appear in the window itself.
"""

from __future__ import annotations

from typing import Final

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtGui import QCloseEvent
from PyQt5.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from chatd.wire import valid_name, valid_password
from client.ui.style import app_icon, restyle
from client.ui.widgets import button

LOGIN: Final = "login"
REGISTER: Final = "register"

USERNAME_RULE: Final = "1-32 letters (a-z, A-Z), digits or _"
PASSWORD_RULE: Final = "6-128 characters, not only spaces"


class LoginWindow(QWidget):
    """
    Log in or register.

    @ivar mode: L{LOGIN} or L{REGISTER}.
    @ivar stay_logged_in: checked (the default) to keep the session's token
        for the next run; unchecked, it is kept for this run only.
    """

    login_requested = pyqtSignal(str, str)
    register_requested = pyqtSignal(str, str)
    closed = pyqtSignal()

    def __init__(self, server: str = "", parent: QWidget | None = None) -> None:
        """
        @param server: where the server is, shown at the bottom.
        """
        super().__init__(parent)
        self.setObjectName("LoginWindow")
        self.setWindowTitle("chatd: log in")
        self.setWindowIcon(app_icon())
        self.setFixedWidth(420)
        self.mode = LOGIN

        outer = QVBoxLayout(self)
        outer.setContentsMargins(36, 32, 36, 24)
        outer.setSpacing(0)

        logo = QLabel()
        logo.setPixmap(app_icon().pixmap(56, 56))
        logo.setAlignment(Qt.AlignmentFlag.AlignCenter)
        outer.addWidget(logo)
        outer.addSpacing(10)
        title = QLabel("chatd")
        title.setObjectName("AppTitle")
        title.setStyleSheet("font-size: 20pt;")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        outer.addWidget(title)
        outer.addSpacing(2)
        self.subtitle = QLabel()
        self.subtitle.setObjectName("Muted")
        self.subtitle.setAlignment(Qt.AlignmentFlag.AlignCenter)
        outer.addWidget(self.subtitle)
        outer.addSpacing(22)

        segments = QFrame()
        segments.setObjectName("Segments")
        segments_layout = QHBoxLayout(segments)
        segments_layout.setContentsMargins(3, 3, 3, 3)
        segments_layout.setSpacing(3)
        self.login_tab = button("Log in", "Segment")
        self.register_tab = button("Register", "Segment")
        self._tabs = QButtonGroup(self)
        for tab in (self.login_tab, self.register_tab):
            tab.setCheckable(True)
            tab.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            self._tabs.addButton(tab)
            segments_layout.addWidget(tab, 1)
        self.login_tab.clicked.connect(lambda: self.set_mode(LOGIN))
        self.register_tab.clicked.connect(lambda: self.set_mode(REGISTER))
        outer.addWidget(segments)
        outer.addSpacing(18)

        self.username = QLineEdit()
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password_again = QLineEdit()
        self.password_again.setEchoMode(QLineEdit.EchoMode.Password)
        self.password_again.setPlaceholderText("Password, again")
        self._field(outer, "Username", self.username)
        self._field(outer, "Password", self.password)
        self.password_again_row = self._field(outer, "Confirm password", self.password_again)
        for field in (self.username, self.password, self.password_again):
            field.returnPressed.connect(self.submit)
            field.textEdited.connect(lambda _: self.clear_message())
        self.stay_logged_in = QCheckBox("Stay logged in")
        self.stay_logged_in.setChecked(True)
        self.stay_logged_in.setToolTip(
            "Keep this session on this computer: the next start needs no password"
        )
        self.stay_logged_in.setContentsMargins(0, 0, 0, 10)
        outer.addWidget(self.stay_logged_in)
        outer.addSpacing(10)

        self.rules = QLabel(
            f"Username: {USERNAME_RULE}.<br>Password: {PASSWORD_RULE}.",
        )
        self.rules.setObjectName("Hint")
        self.rules.setWordWrap(True)
        self.rules.setContentsMargins(0, 0, 0, 10)
        outer.addWidget(self.rules)

        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setContentsMargins(10, 7, 10, 7)
        self.message.hide()
        outer.addWidget(self.message)
        outer.addSpacing(8)

        self.submit_button = button("Log in", "Primary")
        self.submit_button.setMinimumHeight(38)
        self.submit_button.clicked.connect(self.submit)
        outer.addWidget(self.submit_button)
        outer.addSpacing(16)

        self.server_label = QLabel(f"Server: {server}" if server else "")
        self.server_label.setObjectName("ServerLabel")
        self.server_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        outer.addWidget(self.server_label)
        self.set_mode(LOGIN)

    def _field(self, layout: QVBoxLayout, caption: str, field: QLineEdit) -> QWidget:
        row = QWidget()
        row_layout = QVBoxLayout(row)
        row_layout.setContentsMargins(0, 0, 0, 12)
        row_layout.setSpacing(4)
        text = QLabel(caption)
        text.setStyleSheet("font-weight: 600; font-size: 9pt;")
        row_layout.addWidget(text)
        field.setMinimumHeight(34)
        row_layout.addWidget(field)
        layout.addWidget(row)
        return row

    def set_mode(self, mode: str) -> None:
        """
        Switch between L{LOGIN} and L{REGISTER}.
        """
        self.mode = mode
        registering = mode == REGISTER
        (self.register_tab if registering else self.login_tab).setChecked(True)
        self.password_again_row.setVisible(registering)
        self.rules.setVisible(registering)
        self.password_again.clear()
        if registering:
            self.subtitle.setText("Create an account")
            self.username.setPlaceholderText(USERNAME_RULE)
            self.password.setPlaceholderText("At least 6 characters")
            self.submit_button.setText("Create account")
            self.setWindowTitle("chatd: register")
        else:
            self.subtitle.setText("Welcome back! Log in to chat.")
            self.username.setPlaceholderText("Your username")
            self.password.setPlaceholderText("Your password")
            self.submit_button.setText("Log in")
            self.setWindowTitle("chatd: log in")
        self.clear_message()
        self.adjustSize()

    def submit(self) -> None:
        """
        Check the fields, then ask to log in or to register.
        """
        if not self.submit_button.isEnabled():
            return
        username = self.username.text().strip()
        password = self.password.text()
        if self.mode == LOGIN:
            if not username or not password:
                self.show_error("Enter your username and your password.")
                return
            self.login_requested.emit(username, password)
            return
        if not valid_name(username):
            self.show_error(f"A username is {USERNAME_RULE}.")
            self.username.setFocus()
            return
        if not valid_password(password):
            self.show_error(f"A password is {PASSWORD_RULE}.")
            self.password.setFocus()
            return
        if password != self.password_again.text():
            self.show_error("The two passwords differ.")
            self.password_again.clear()
            self.password_again.setFocus()
            return
        self.register_requested.emit(username, password)

    def set_busy(self, busy: bool, text: str = "") -> None:
        """
        While a request is on its way, disable the form and say what
        happens.
        """
        for widget in (
            self.username,
            self.password,
            self.password_again,
            self.stay_logged_in,
            self.submit_button,
            self.login_tab,
            self.register_tab,
        ):
            widget.setEnabled(not busy)
        if busy:
            self.submit_button.setText(text or "Please wait…")
        else:
            self.submit_button.setText("Create account" if self.mode == REGISTER else "Log in")

    def show_error(self, text: str) -> None:
        """
        Show C{text} as an error in the window.
        """
        self._show_message(text, "ErrorLabel")

    def show_info(self, text: str) -> None:
        """
        Show C{text} as information in the window.
        """
        self._show_message(text, "InfoLabel")

    def _show_message(self, text: str, name: str) -> None:
        self.message.setObjectName(name)
        self.message.setText(text)
        restyle(self.message)
        self.message.show()
        self.adjustSize()

    def clear_message(self) -> None:
        """
        Hide the error or information line.
        """
        self.message.hide()
        self.message.setText("")

    def closeEvent(self, event: QCloseEvent | None) -> None:
        self.closed.emit()
        super().closeEvent(event)
