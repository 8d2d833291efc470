"""
Qt models of the client: each owns its rows and keeps them in step with the
L{StateBridge}'s signals, inserting and removing rows the Qt way so views
keep their selection and scroll position.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from PyQt5.QtCore import QAbstractListModel, QModelIndex, QObject, Qt, pyqtSignal

from client.search import SearchPage, SearchRequest, Span, find_terms, search_terms, snippet
from client.state import (
    MEMBER,
    MODERATOR,
    OWNER,
    PRIVATE,
    ROLES,
    ROOM,
    Contact,
    Entry,
    HistoryStateChanged,
    Key,
    Member,
    MembersChanged,
    Message,
    MessageChanged,
    MessagesInserted,
    PendingAdded,
    PendingChanged,
    PendingMessage,
    PendingRemoved,
    Room,
    TimelineReset,
    parse_time,
)
from client.ui.bridge import StateBridge

# Item data roles shared by the models and their delegates.
KeyRole: Final = Qt.ItemDataRole.UserRole + 1
IdRole: Final = Qt.ItemDataRole.UserRole + 2
NameRole: Final = Qt.ItemDataRole.UserRole + 3
OnlineRole: Final = Qt.ItemDataRole.UserRole + 4
UnreadRole: Final = Qt.ItemDataRole.UserRole + 5
DetailRole: Final = Qt.ItemDataRole.UserRole + 6
SenderRole: Final = Qt.ItemDataRole.UserRole + 7
SenderIdRole: Final = Qt.ItemDataRole.UserRole + 8
TimeRole: Final = Qt.ItemDataRole.UserRole + 9
DateRole: Final = Qt.ItemDataRole.UserRole + 10
KindRole: Final = Qt.ItemDataRole.UserRole + 11
StatusRole: Final = Qt.ItemDataRole.UserRole + 12
OwnRole: Final = Qt.ItemDataRole.UserRole + 13
ErrorRole: Final = Qt.ItemDataRole.UserRole + 14
IsMeRole: Final = Qt.ItemDataRole.UserRole + 15
MomentRole: Final = Qt.ItemDataRole.UserRole + 16
#: The timeline row itself: a L{Message} or a L{PendingMessage}.
EntryRole: Final = Qt.ItemDataRole.UserRole + 17
#: Whether a timeline row mentions us.
MentionsMeRole: Final = Qt.ItemDataRole.UserRole + 18
#: How many unread messages of a contact mention us.
MentionsRole: Final = Qt.ItemDataRole.UserRole + 19
#: The name of the conversation a search result is in.
ConversationRole: Final = Qt.ItemDataRole.UserRole + 20
#: Where the terms searched for are in a search result's text: a list of
#: C{(start, end)} spans of its C{DisplayRole}.
HighlightRole: Final = Qt.ItemDataRole.UserRole + 21
#: A room member's role: C{"owner"}, C{"moderator"} or C{"member"}.
RoleRole: Final = Qt.ItemDataRole.UserRole + 22
#: The heading of the group of members a row starts (L{SECTIONS}), or
#: L{None} for a row within a group.
SectionRole: Final = Qt.ItemDataRole.UserRole + 23
#: Whether we are in a room a C{list_rooms} search found.
JoinedRole: Final = Qt.ItemDataRole.UserRole + 24
#: A room's topic (C{""} for none).
TopicRole: Final = Qt.ItemDataRole.UserRole + 25
#: How many members a room a C{list_rooms} search found has.
CountRole: Final = Qt.ItemDataRole.UserRole + 26

#: The headings of the member list's groups, by role.
SECTIONS: Final = {OWNER: "Owner", MODERATOR: "Moderators", MEMBER: "Members"}

#: The invisible root of a list model.
_ROOT: Final = QModelIndex()

#: L{StatusRole} values of a timeline row.
SENT: Final = "sent"
PENDING: Final = "pending"
FAILED: Final = "failed"


def label(name: str, identifier: int) -> str:
    """
    @return: how the client names a user or a room: C{name(id)}.
    """
    return f"{name}({identifier})"


class ContactListModel(QAbstractListModel):
    """
    The friend list or the room list: one L{Contact} per row.
    """

    def __init__(self, bridge: StateBridge, kind: int, parent: QObject | None = None) -> None:
        """
        @param kind: L{PRIVATE} for friends, L{ROOM} for rooms.
        """
        super().__init__(parent)
        self._bridge = bridge
        self.kind = kind
        self._rows: list[Contact] = bridge.state.contacts(kind) if bridge.state.user else []
        bridge.reset.connect(self._reset)
        bridge.contact_added.connect(self._added)
        bridge.contact_removed.connect(self._removed)
        bridge.contact_changed.connect(self._changed)

    def rowCount(self, parent: QModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        contact = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return label(contact.name, contact.id)
        if role == KeyRole:
            return contact.key
        if role == IdRole:
            return contact.id
        if role == NameRole:
            return contact.name
        if role == OnlineRole:
            return contact.online
        if role == UnreadRole:
            return contact.unread
        if role == MentionsRole:
            return contact.mentions
        if role == DetailRole:
            return contact.detail
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{label(contact.name, contact.id)}: {contact.detail}"
        return None

    def contact(self, row: int) -> Contact:
        """
        @return: the contact at C{row}.
        """
        return self._rows[row]

    def row_of(self, key: Key) -> int | None:
        """
        @return: the row of C{key}, or L{None}.
        """
        for row, contact in enumerate(self._rows):
            if contact.key == key:
                return row
        return None

    def _reset(self) -> None:
        self.beginResetModel()
        state = self._bridge.state
        self._rows = state.contacts(self.kind) if state.user else []
        self.endResetModel()

    def _added(self, contact: Contact) -> None:
        if contact.key[0] != self.kind or self.row_of(contact.key) is not None:
            return
        row = len(self._rows)
        self.beginInsertRows(QModelIndex(), row, row)
        self._rows.append(contact)
        self.endInsertRows()

    def _removed(self, key: Key) -> None:
        row = self.row_of(key)
        if row is None:
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._rows[row]
        self.endRemoveRows()

    def _changed(self, contact: Contact) -> None:
        row = self.row_of(contact.key)
        if row is None:
            return
        self._rows[row] = contact
        index = self.index(row)
        self.dataChanged.emit(index, index)


class TimelineModel(QAbstractListModel):
    """
    One conversation's timeline: stored messages by id, then our pending
    ones.

    When the conversation's messages are replaced (L{TimelineReset}: a
    window far back, or the newest page instead of one), the model is
    reset.

    @ivar key: the conversation.
    @ivar has_older: whether older messages may exist on the server.
    @ivar loading_older: whether an older page is on its way.
    @ivar has_newer: whether newer messages than those shown may exist on
        the server (the conversation is detached).
    @ivar loading_newer: whether a newer page is on its way.
    """

    #: L{has_older}, L{loading_older}, L{has_newer} or L{loading_newer}
    #: changed.
    history_state_changed = pyqtSignal()

    def __init__(self, bridge: StateBridge, key: Key, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self._bridge = bridge
        conversation = bridge.state.conversation(key)
        self._rows: list[Entry] = conversation.timeline()
        self.has_older = conversation.has_older
        self.loading_older = conversation.loading_older
        self.has_newer = conversation.has_newer
        self.loading_newer = conversation.loading_newer
        self._times: dict[int, datetime] = {}
        bridge.timeline_reset.connect(self._reset)
        bridge.messages_inserted.connect(self._inserted)
        bridge.message_changed.connect(self._changed)
        bridge.pending_added.connect(self._pending_added)
        bridge.pending_removed.connect(self._pending_removed)
        bridge.pending_changed.connect(self._pending_changed)
        bridge.history_state_changed.connect(self._history_state)

    def detach(self) -> None:
        """
        Stop following the bridge (the conversation is gone).
        """
        bridge = self._bridge
        bridge.timeline_reset.disconnect(self._reset)
        bridge.messages_inserted.disconnect(self._inserted)
        bridge.message_changed.disconnect(self._changed)
        bridge.pending_added.disconnect(self._pending_added)
        bridge.pending_removed.disconnect(self._pending_removed)
        bridge.pending_changed.disconnect(self._pending_changed)
        bridge.history_state_changed.disconnect(self._history_state)

    def rowCount(self, parent: QModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def entry(self, row: int) -> Entry:
        """
        @return: the message or pending message at C{row}.
        """
        return self._rows[row]

    def _time(self, message: Message) -> datetime:
        moment = self._times.get(message.id)
        if moment is None:
            moment = self._times[message.id] = message.local_time()
        return moment

    def _date(self, row: int) -> date:
        # A pending message belongs to the day of the row before it (or today).
        for i in range(row, -1, -1):
            entry = self._rows[i]
            if isinstance(entry, Message):
                return self._time(entry).date()
        return datetime.now().astimezone().date()

    @property
    def me(self) -> int:
        """
        Our own user id.
        """
        return self._bridge.state.me

    @property
    def may_delete_others(self) -> bool:
        """
        Whether we may delete others' messages here: in a room we own or
        moderate.
        """
        state = self._bridge.state
        room = state.rooms.get(self.key[1]) if self.key[0] == ROOM else None
        member = room.members.get(state.me) if room is not None else None
        return member is not None and member.moderates

    def row_of(self, message_id: int) -> int | None:
        """
        @return: the row of the stored message C{message_id}, or L{None}.
        """
        for row, entry in enumerate(self._rows):
            if isinstance(entry, Message) and entry.id == message_id:
                return row
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        entry = self._rows[index.row()]
        if role == EntryRole:
            return entry
        if isinstance(entry, PendingMessage):
            return self._pending_data(entry, index.row(), role)
        if role == Qt.ItemDataRole.DisplayRole:
            return entry.text
        if role == MentionsMeRole:
            return self._bridge.state.me in entry.mentions
        if role == SenderRole:
            return entry.sender_name or ""
        if role == SenderIdRole:
            return entry.sender_id
        if role == TimeRole:
            return self._time(entry).strftime("%H:%M")
        if role == DateRole:
            return self._date(index.row())
        if role == MomentRole:
            return self._time(entry)
        if role == KindRole:
            return entry.kind
        if role == StatusRole:
            return SENT
        if role == OwnRole:
            return entry.sender_id == self._bridge.state.me and not entry.system
        if role == IdRole:
            return entry.id
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = self._time(entry).strftime("%A %d %B %Y, %H:%M:%S")
            if entry.edited_at is not None:
                edited = parse_time(entry.edited_at).astimezone()
                tip += edited.strftime("\nEdited %A %d %B %Y, %H:%M:%S")
            return tip
        return None

    def _pending_data(self, entry: PendingMessage, row: int, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return entry.text
        if role == SenderRole:
            user = self._bridge.state.user
            return user.username if user else ""
        if role == SenderIdRole:
            return self._bridge.state.me
        if role == TimeRole:
            return ""
        if role == DateRole:
            return self._date(row)
        if role == KindRole:
            return "text"
        if role == StatusRole:
            return FAILED if entry.error else PENDING
        if role == OwnRole:
            return True
        if role == ErrorRole:
            return entry.error
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"Not sent: {entry.error}" if entry.error else "Waiting to be sent"
        return None

    def _reset(self, change: TimelineReset) -> None:
        if change.key != self.key:
            return
        self.beginResetModel()
        self._rows = list(change.entries)
        self.has_older, self.has_newer = change.has_older, change.has_newer
        self.loading_older = self.loading_newer = False
        self.endResetModel()
        self.history_state_changed.emit()

    def _inserted(self, change: MessagesInserted) -> None:
        if change.key != self.key:
            return
        last = change.row + len(change.messages) - 1
        self.beginInsertRows(QModelIndex(), change.row, last)
        self._rows[change.row : change.row] = change.messages
        self.endInsertRows()
        # The row after the run may have lost its date separator.
        if last + 1 < len(self._rows):
            following = self.index(last + 1)
            self.dataChanged.emit(following, following)

    def _changed(self, change: MessageChanged) -> None:
        self._replace(change.key, change.row, change.message)

    def _pending_added(self, change: PendingAdded) -> None:
        if change.key != self.key:
            return
        self.beginInsertRows(QModelIndex(), change.row, change.row)
        self._rows.insert(change.row, change.pending)
        self.endInsertRows()

    def _pending_removed(self, change: PendingRemoved) -> None:
        if change.key != self.key:
            return
        self.beginRemoveRows(QModelIndex(), change.row, change.row)
        del self._rows[change.row]
        self.endRemoveRows()

    def _pending_changed(self, change: PendingChanged) -> None:
        self._replace(change.key, change.row, change.pending)

    def _replace(self, key: Key, row: int, entry: Entry) -> None:
        if key != self.key:
            return
        self._rows[row] = entry
        index = self.index(row)
        self.dataChanged.emit(index, index)

    def _history_state(self, change: HistoryStateChanged) -> None:
        if change.key == self.key:
            self.has_older = change.has_older
            self.loading_older = change.loading_older
            self.has_newer = change.has_newer
            self.loading_newer = change.loading_newer
            self.history_state_changed.emit()


class MemberListModel(QAbstractListModel):
    """
    The members of the selected room, with their presence and role, in
    groups: the owner, then the moderators, then the plain members (each
    group in the order they joined).  The first row of each group carries
    the group's heading (L{SectionRole}).

    @ivar room_id: the room shown, or L{None}.
    """

    def __init__(self, bridge: StateBridge, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._bridge = bridge
        self.room_id: int | None = None
        self._rows: list[Member] = []
        bridge.members_changed.connect(self._members_changed)
        bridge.reset.connect(lambda: self.set_room(self.room_id))

    def set_room(self, room_id: int | None) -> None:
        """
        Show the members of C{room_id} (or nobody).
        """
        room = self._bridge.state.rooms.get(room_id) if room_id is not None else None
        self.beginResetModel()
        self.room_id = room_id if room is not None else None
        self._rows = _grouped(room.members.values()) if room is not None else []
        self.endResetModel()

    def room(self) -> Room | None:
        """
        @return: the room shown, as the state has it now, or L{None}.
        """
        return self._bridge.state.rooms.get(self.room_id) if self.room_id is not None else None

    @property
    def me(self) -> int:
        """
        Our own user id.
        """
        return self._bridge.state.me

    def rowCount(self, parent: QModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def member(self, row: int) -> Member:
        """
        @return: the member at C{row}.
        """
        return self._rows[row]

    def member_ids(self) -> set[int]:
        """
        @return: the user ids of every member shown.
        """
        return {m.id for m in self._rows}

    def _section(self, row: int) -> str | None:
        role = self._rows[row].rank
        if row > 0 and self._rows[row - 1].rank == role:
            return None
        return SECTIONS[ROLES[role]]

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        member = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return label(member.username, member.id)
        if role == IdRole:
            return member.id
        if role == NameRole:
            return member.username
        if role == OnlineRole:
            return member.online
        if role == IsMeRole:
            return member.id == self._bridge.state.me
        if role == RoleRole:
            return member.role
        if role == SectionRole:
            return self._section(index.row())
        if role == DetailRole:
            if member.id == self._bridge.state.me:
                return "you"
            return "online" if member.online else "offline"
        if role == Qt.ItemDataRole.ToolTipRole:
            presence = "you" if member.id == self._bridge.state.me else None
            presence = presence or ("online" if member.online else "offline")
            return f"{label(member.username, member.id)} · {member.role} · {presence}"
        if role == KeyRole:
            return (PRIVATE, member.id)
        return None

    def _members_changed(self, change: MembersChanged) -> None:
        """
        Bring the rows to C{change.members}, grouped, in place: rows of
        those who left are removed, rows of those who came or went are
        updated, a member whose role changed moves to their new group, and
        newcomers are inserted where they stand, so selection and scrolling
        stay.
        """
        if change.room_id != self.room_id:
            return
        new = _grouped(change.members)
        sections = [self._section(row) for row in range(len(self._rows))]
        staying = {m.id for m in new}
        for row in range(len(self._rows) - 1, -1, -1):
            if self._rows[row].id not in staying:
                self.beginRemoveRows(_ROOT, row, row)
                del self._rows[row]
                del sections[row]
                self.endRemoveRows()
        for row, member in enumerate(new):
            ids = [m.id for m in self._rows]
            if row < len(ids) and ids[row] == member.id:
                if self._rows[row] != member:
                    self._rows[row] = member
                    self._changed(row)
            elif member.id in ids:
                source = ids.index(member.id)
                self.beginMoveRows(_ROOT, source, source, _ROOT, row)
                self._rows.insert(row, self._rows.pop(source))
                sections.insert(row, sections.pop(source))
                self.endMoveRows()
                self._rows[row] = member
                self._changed(row)
            else:
                self.beginInsertRows(_ROOT, row, row)
                self._rows.insert(row, member)
                sections.insert(row, self._section(row))
                self.endInsertRows()
        # A group that gained or lost its first row moves its heading.
        for row, before in enumerate(sections):
            if self._section(row) != before:
                self._changed(row)

    def _changed(self, row: int) -> None:
        index = self.index(row)
        self.dataChanged.emit(index, index)


def _grouped(members: Iterable[Member]) -> list[Member]:
    """
    @return: C{members} grouped by role, highest first, each group in the
        order given (the order they joined).
    """
    return sorted(members, key=lambda m: m.rank)


class RoomSearchModel(QAbstractListModel):
    """
    The rooms a C{list_rooms} search found, each marked when we are in it
    already.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[dict[str, Any]] = []
        self._joined: set[int] = set()

    def set_rooms(self, rooms: list[dict[str, Any]], joined: Iterable[int] = ()) -> None:
        """
        Show C{rooms}, each C{{id, name, topic, member_count}}.

        @param joined: the ids of the rooms we are in.
        """
        self.beginResetModel()
        self._rows = list(rooms)
        self._joined = set(joined)
        self.endResetModel()

    def set_joined(self, joined: Iterable[int]) -> None:
        """
        Note which rooms we are in now (we joined or left one meanwhile).
        """
        joined = set(joined)
        if joined != self._joined:
            self._joined = joined
            if self._rows:
                self.dataChanged.emit(self.index(0), self.index(len(self._rows) - 1))

    def joined(self, row: int) -> bool:
        """
        @return: whether we are in the room at C{row}.
        """
        return int(self._rows[row]["id"]) in self._joined

    def rowCount(self, parent: QModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        room = self._rows[index.row()]
        count = int(room.get("member_count", 0))
        members = f"{count} member{'s' if count != 1 else ''}"
        topic = str(room.get("topic") or "")
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{label(room['name'], room['id'])}  ·  {members}"
        if role == NameRole:
            return room["name"]
        if role == IdRole:
            return room["id"]
        if role == TopicRole:
            return topic
        if role == CountRole:
            return count
        if role == JoinedRole:
            return self.joined(index.row())
        if role == DetailRole:
            return f"{members} · {topic}" if topic else members
        if role == Qt.ItemDataRole.ToolTipRole:
            joined = (
                " You are in this room: pick it to open it." if self.joined(index.row()) else ""
            )
            about = f"\n{topic}" if topic else ""
            return f"{label(room['name'], room['id'])}, {members}.{joined}{about}"
        return None


def result_time(moment: datetime, today: date | None = None) -> str:
    """
    @param moment: when a message was sent, in local time.
    @return: how a search result says when: the time for today's
        messages, "Yesterday" and the time, else the date and the time
        (and the year, for another year's).
    """
    today = today or datetime.now().astimezone().date()
    day = moment.date()
    if day == today:
        return moment.strftime("%H:%M")
    if day == today - timedelta(days=1):
        return moment.strftime("Yesterday %H:%M")
    if day.year == today.year:
        return moment.strftime("%d %b, %H:%M")
    return moment.strftime("%d %b %Y")


@dataclass(frozen=True, slots=True)
class _Result:
    """
    One search result as its row shows it.

    @ivar text: the message's text on one line, cut around the first match.
    @ivar spans: where the terms are in C{text}.
    """

    message: Message
    key: Key
    conversation: str
    sender: str
    moment: datetime
    text: str
    spans: tuple[Span, ...]


class SearchResultsModel(QAbstractListModel):
    """
    The messages a search found, newest first, one page after another.

    It names each request it wants answered (L{start} for a new search,
    L{more} for the next page) and takes only the reply to the latest one:
    the reply to a query the user has since changed is dropped.

    @ivar query: the query shown, or C{""}.
    @ivar key: the conversation searched, or L{None} for all of ours.
    @ivar terms: the terms of L{query}, case folded.
    @ivar has_more: whether older matches exist.
    @ivar loading: whether a page is on its way.
    @ivar done: whether the first page of L{query} arrived.
    @ivar error: why the latest request failed, or L{None}.
    """

    def __init__(self, bridge: StateBridge, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._bridge = bridge
        self._rows: list[_Result] = []
        self._ids: set[int] = set()
        self._serial = 0
        self._waiting: SearchRequest | None = None
        self.query = ""
        self.key: Key | None = None
        self.terms: tuple[str, ...] = ()
        self.has_more = False
        self.loading = False
        self.done = False
        self.error: str | None = None

    def rowCount(self, parent: QModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def message(self, row: int) -> Message:
        """
        @return: the message found at C{row}.
        """
        return self._rows[row].message

    def _request(self, before: int | None = None) -> SearchRequest:
        self._serial += 1
        self._waiting = SearchRequest(self._serial, self.query, self.key, before)
        self.loading = True
        self.error = None
        return self._waiting

    def start(self, query: str, key: Key | None) -> SearchRequest:
        """
        Forget the results shown, and name the request for the first page
        of a new search.

        @param key: the conversation to search, or L{None} for all.
        """
        self._set_rows([])
        self.query, self.key = query, key
        self.terms = search_terms(query)
        self.has_more = self.done = False
        return self._request()

    def more(self) -> SearchRequest | None:
        """
        @return: the request for the page after the results shown, or
            L{None} when there is none to ask for (none left, one on its
            way, or the search failed).
        """
        if not self._rows or not self.has_more or self.loading or self.error is not None:
            return None
        return self._request(before=min(self._ids))

    def clear(self) -> None:
        """
        Show no search at all; any reply on its way is dropped.
        """
        self._set_rows([])
        self._waiting = None
        self.query, self.key, self.terms = "", None, ()
        self.has_more = self.loading = self.done = False
        self.error = None

    def apply(self, request: SearchRequest, page: SearchPage) -> bool:
        """
        Show a page of results, if it answers the latest request.

        @return: whether it did (otherwise nothing changed).
        """
        if request != self._waiting:
            return False
        self._waiting = None
        self.loading = False
        self.done = True
        self.has_more = page.has_more
        new = [self._result(m) for m in page.messages if m.id not in self._ids]
        if new:
            first = len(self._rows)
            self.beginInsertRows(_ROOT, first, first + len(new) - 1)
            self._rows.extend(new)
            self._ids.update(r.message.id for r in new)
            self.endInsertRows()
        return True

    def fail(self, request: SearchRequest, error: str) -> bool:
        """
        Note why the latest request failed, if C{request} is it.

        @param error: a sentence for people.
        @return: whether it was the latest request.
        """
        if request != self._waiting:
            return False
        self._waiting = None
        self.loading = False
        self.error = error
        return True

    def _set_rows(self, rows: list[_Result]) -> None:
        self.beginResetModel()
        self._rows = rows
        self._ids = {r.message.id for r in rows}
        self.endResetModel()

    def _result(self, message: Message) -> _Result:
        state = self._bridge.state
        key = message.key_for(state.me)
        if state.knows(key):
            conversation = state.name_of(key)
        elif key[0] == PRIVATE and message.sender_id == key[1] and message.sender_name:
            conversation = message.sender_name
        else:
            conversation = "?"
        sender = "You" if message.sender_id == state.me else message.sender_name or "?"
        text = snippet(message.text, self.terms)
        spans = tuple(find_terms(text, self.terms))
        return _Result(message, key, conversation, sender, message.local_time(), text, spans)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        result = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return result.text
        if role == HighlightRole:
            return list(result.spans)
        if role == ConversationRole:
            return result.conversation
        if role == SenderRole:
            return result.sender
        if role == SenderIdRole:
            return result.message.sender_id
        if role == TimeRole:
            return result_time(result.moment)
        if role == MomentRole:
            return result.moment
        if role == KeyRole:
            return result.key
        if role == IdRole:
            return result.message.id
        if role == EntryRole:
            return result.message
        if role == Qt.ItemDataRole.ToolTipRole:
            return result.moment.strftime("%A %d %B %Y, %H:%M:%S")
        return None
