"""
The one place where L{ClientState} meets Qt: its changes become signals.
"""

from __future__ import annotations

from PyQt5.QtCore import QObject, pyqtSignal

from client.state import (
    BansChanged,
    Change,
    ClientState,
    ConnectionChanged,
    ContactAdded,
    ContactChanged,
    ContactRemoved,
    FriendRequestsChanged,
    HistoryStateChanged,
    MembersChanged,
    MessageChanged,
    MessageOutsideWindow,
    MessagesInserted,
    Notice,
    PendingAdded,
    PendingChanged,
    PendingRemoved,
    ReadUpToChanged,
    Reset,
    SignedOut,
    TimelineReset,
    TopicChanged,
    TypingChanged,
)


class StateBridge(QObject):
    """
    Listens to a L{ClientState} and emits one signal per kind of change.

    Each signal carries the L{Change} itself (or its one field), so models
    update their own rows from it without reading the state back.

    @ivar state: the state listened to.
    """

    reset = pyqtSignal()
    contact_added = pyqtSignal(object)  # Contact
    contact_removed = pyqtSignal(object)  # Key
    contact_changed = pyqtSignal(object)  # Contact
    members_changed = pyqtSignal(object)  # MembersChanged
    topic_changed = pyqtSignal(object)  # TopicChanged
    bans_changed = pyqtSignal(object)  # BansChanged
    messages_inserted = pyqtSignal(object)  # MessagesInserted
    message_changed = pyqtSignal(object)  # MessageChanged
    timeline_reset = pyqtSignal(object)  # TimelineReset
    message_outside_window = pyqtSignal(object)  # MessageOutsideWindow
    typing_changed = pyqtSignal(object)  # TypingChanged
    pending_added = pyqtSignal(object)  # PendingAdded
    pending_removed = pyqtSignal(object)  # PendingRemoved
    pending_changed = pyqtSignal(object)  # PendingChanged
    history_state_changed = pyqtSignal(object)  # HistoryStateChanged
    read_up_to_changed = pyqtSignal(object)  # ReadUpToChanged
    requests_changed = pyqtSignal(object)  # tuple[User, ...]
    connection_changed = pyqtSignal(str)
    notice = pyqtSignal(str)
    signed_out = pyqtSignal(object)  # str | None

    def __init__(self, state: ClientState, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        state.add_listener(self._changed)

    def detach(self) -> None:
        """
        Stop listening to the state.
        """
        self.state.remove_listener(self._changed)

    def _changed(self, change: Change) -> None:
        if isinstance(change, MessagesInserted):
            self.messages_inserted.emit(change)
        elif isinstance(change, MessageChanged):
            self.message_changed.emit(change)
        elif isinstance(change, TimelineReset):
            self.timeline_reset.emit(change)
        elif isinstance(change, MessageOutsideWindow):
            self.message_outside_window.emit(change)
        elif isinstance(change, TypingChanged):
            self.typing_changed.emit(change)
        elif isinstance(change, PendingAdded):
            self.pending_added.emit(change)
        elif isinstance(change, PendingRemoved):
            self.pending_removed.emit(change)
        elif isinstance(change, PendingChanged):
            self.pending_changed.emit(change)
        elif isinstance(change, ContactChanged):
            self.contact_changed.emit(change.contact)
        elif isinstance(change, ContactAdded):
            self.contact_added.emit(change.contact)
        elif isinstance(change, ContactRemoved):
            self.contact_removed.emit(change.key)
        elif isinstance(change, MembersChanged):
            self.members_changed.emit(change)
        elif isinstance(change, TopicChanged):
            self.topic_changed.emit(change)
        elif isinstance(change, BansChanged):
            self.bans_changed.emit(change)
        elif isinstance(change, HistoryStateChanged):
            self.history_state_changed.emit(change)
        elif isinstance(change, ReadUpToChanged):
            self.read_up_to_changed.emit(change)
        elif isinstance(change, FriendRequestsChanged):
            self.requests_changed.emit(change.requests)
        elif isinstance(change, ConnectionChanged):
            self.connection_changed.emit(change.status)
        elif isinstance(change, Notice):
            self.notice.emit(change.text)
        elif isinstance(change, Reset):
            self.reset.emit()
        elif isinstance(change, SignedOut):
            self.signed_out.emit(change.reason)
