"""
The client's memory: who we are, our friends and rooms, what each
conversation holds, and what changed.

L{ClientState} applies the server's replies and pushes (PROTOCOL.md
sections 5 and 6) and tells its listeners what changed with small
L{Change} values.  It does no I/O and imports no Qt: the Qt layer adapts it
(a bridge turns changes into signals), and L{client.session.ChatClient}
feeds it.

A conversation is keyed by C{(target_type, target_id)}: C{(0, friend_id)}
for a private conversation, C{(1, room_id)} for a room.  Its timeline is
its messages, sorted by id and never duplicated, followed by the messages
we sent that the server has not acknowledged yet (pending).  The messages
held are always one contiguous part of the conversation, with no gap.

Usually that part is the newest one (the conversation is I{attached}):
pushes arrive in order while online, and after a reconnect the client fills
the gap with C{history after} before anything older is paged in with
C{history before}.  To show a message far back (a search result, a quote),
the client holds instead a window of messages around it (the conversation
is I{detached}, L{Conversation.has_newer}): new messages pushed meanwhile
are not held, which would leave a gap, but counted as unread; they come
with the pages after the window (C{history after}), the last of which
attaches the conversation again, or with its newest page loaded anew.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Final

from chatd.wire import PRIVATE, ROOM
from client import texts

Payload = dict[str, Any]

#: A conversation: C{(target_type, target_id)}.
Key = tuple[int, int]

#: Connection statuses, as L{ConnectionChanged} reports them.
OFFLINE: Final = "offline"
CONNECTING: Final = "connecting"
ONLINE: Final = "online"

#: A room member's roles (PROTOCOL.md section 12), highest first.
OWNER: Final = "owner"
MODERATOR: Final = "moderator"
MEMBER: Final = "member"
ROLES: Final = (OWNER, MODERATOR, MEMBER)


# The objects of PROTOCOL.md section 3, as the client keeps them.


@dataclass(frozen=True, slots=True)
class User:
    """
    A user as the server names it.
    """

    id: int
    username: str

    @classmethod
    def from_payload(cls, payload: Payload) -> User:
        """
        @return: the user a C{User} object of the wire describes.
        """
        return cls(int(payload["id"]), str(payload["username"]))


@dataclass(frozen=True, slots=True)
class Member:
    """
    A friend, or a member of a room, with their presence.
    """

    id: int
    username: str
    online: bool
    role: str = MEMBER

    @classmethod
    def from_payload(cls, payload: Payload) -> Member:
        """
        @return: the person a C{Friend} or C{Member} object of the wire
            describes.
        """
        return cls(
            int(payload["id"]),
            str(payload["username"]),
            bool(payload["online"]),
            str(payload.get("role", MEMBER)),
        )

    @property
    def moderates(self) -> bool:
        """
        Whether, as a room member, they are its owner or a moderator: they
        may delete others' messages, set the topic and lift bans.
        """
        return self.role in (OWNER, MODERATOR)

    @property
    def rank(self) -> int:
        """
        Where their role stands in L{ROLES}: 0 for the owner, 1 for a
        moderator, 2 for a plain member (or a role this client does not
        know).
        """
        return ROLES.index(self.role) if self.role in ROLES else len(ROLES) - 1


@dataclass(slots=True)
class Room:
    """
    A room we are in, with its members in the server's order.

    The rights below are those of PROTOCOL.md section 12, as far as the
    client knows the roles; the server has the last word.

    @ivar topic: what the room is for, or C{""}.
    """

    id: int
    name: str
    members: dict[int, Member] = field(default_factory=dict)
    topic: str = ""

    @classmethod
    def from_payload(cls, payload: Payload) -> Room:
        """
        @return: the room a C{Room} object of the wire describes.
        """
        members = (Member.from_payload(m) for m in payload.get("members", ()))
        return cls(
            int(payload["id"]),
            str(payload["name"]),
            {m.id: m for m in members},
            str(payload.get("topic") or ""),
        )

    def role_of(self, user_id: int) -> str | None:
        """
        @return: the role of member C{user_id}, or L{None} if they are not
            a member.
        """
        member = self.members.get(user_id)
        return member.role if member is not None else None

    def moderated_by(self, user_id: int) -> bool:
        """
        @return: whether C{user_id} is its owner or one of its moderators:
            they may set the topic, delete others' messages and lift bans.
        """
        member = self.members.get(user_id)
        return member is not None and member.moderates

    def may_set_roles(self, user_id: int) -> bool:
        """
        @return: whether C{user_id} may make members moderators and back:
            only the owner may.
        """
        return self.role_of(user_id) == OWNER

    def may_remove(self, user_id: int, target_id: int) -> bool:
        """
        @return: whether C{user_id} may remove (or ban) member C{target_id}:
            the owner anyone but themself, a moderator plain members only.
        """
        role, target = self.role_of(user_id), self.role_of(target_id)
        if target is None or user_id == target_id:
            return False
        return role == OWNER or (role == MODERATOR and target == MEMBER)


@dataclass(frozen=True, slots=True)
class Quote:
    """
    What a reply shows of the message it answers: its sender and the start
    of its current text, or nothing once it was deleted.
    """

    id: int
    sender_id: int | None
    sender_name: str | None
    text: str
    deleted: bool

    @classmethod
    def from_payload(cls, payload: Payload) -> Quote:
        """
        @return: the quote a C{Quote} object of the wire describes.
        """
        sender_id = payload.get("sender_id")
        return cls(
            int(payload["id"]),
            None if sender_id is None else int(sender_id),
            payload.get("sender_name"),
            str(payload.get("message", "")),
            bool(payload.get("deleted", False)),
        )

    @classmethod
    def of(cls, message: Message) -> Quote:
        """
        @return: the quote of C{message} as the server would make it.
        """
        return cls(
            message.id,
            message.sender_id,
            message.sender_name,
            message.text[:QUOTE_LENGTH],
            message.deleted,
        )


#: Code points of the quoted text a reply carries (PROTOCOL.md section 10).
QUOTE_LENGTH: Final = 200


@dataclass(frozen=True, slots=True)
class Reaction:
    """
    One emoji on a message and who put it there, ascending.
    """

    emoji: str
    user_ids: tuple[int, ...]


def reactions_from(payloads: Iterable[Payload]) -> tuple[Reaction, ...]:
    """
    @return: the reactions of a C{reactions} list of the wire.
    """
    return tuple(
        Reaction(str(r["emoji"]), tuple(int(u) for u in r.get("user_ids", ()))) for r in payloads
    )


@dataclass(frozen=True, slots=True)
class File:
    """
    A stored file that a file message carries (PROTOCOL.md section 14).

    @ivar id: what C{download} names it by.
    @ivar size: its length in bytes.
    @ivar sha256: the SHA-256 of its content, 64 lower-case hex digits.
    """

    id: str
    name: str
    size: int
    mime: str
    sha256: str

    @classmethod
    def from_payload(cls, payload: Payload) -> File:
        """
        @return: the file a C{File} object of the wire describes.
        """
        return cls(
            str(payload["id"]),
            str(payload["name"]),
            int(payload["size"]),
            str(payload.get("mime") or "application/octet-stream"),
            str(payload["sha256"]).lower(),
        )

    @property
    def image(self) -> bool:
        """
        Whether the client shows it inline, as an image.
        """
        return self.mime in IMAGE_TYPES


#: The types of the files shown inline as images (PROTOCOL.md section 14).
IMAGE_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


@dataclass(frozen=True, slots=True)
class Message:
    """
    A message the server stored.

    @ivar time: the server's commit time in UTC, as the wire has it.
    @ivar edited_at: the time of its latest edit, or L{None}.
    @ivar deleted: a tombstone: its text is gone.
    @ivar reply_to: the quote of the message it answers, or L{None}.
    @ivar mentions: the ids of the users it mentions, ascending.
    @ivar file: what a file message (C{kind} "file") carries, or L{None}
        (any other kind, or a deleted file message).
    """

    id: int
    client_msg_id: str | None
    sender_id: int | None
    sender_name: str | None
    target_type: int
    target_id: int
    kind: str
    text: str
    time: str
    edited_at: str | None = None
    deleted: bool = False
    reply_to: Quote | None = None
    mentions: tuple[int, ...] = ()
    reactions: tuple[Reaction, ...] = ()
    file: File | None = None

    @classmethod
    def from_payload(cls, payload: Payload) -> Message:
        """
        @return: the message a C{Message} object of the wire describes.
        """
        sender_id = payload.get("sender_id")
        quote = payload.get("reply_to")
        carried = payload.get("file")
        return cls(
            id=int(payload["id"]),
            client_msg_id=payload.get("client_msg_id"),
            sender_id=None if sender_id is None else int(sender_id),
            sender_name=payload.get("sender_name"),
            target_type=int(payload["target_type"]),
            target_id=int(payload["target_id"]),
            kind=str(payload.get("kind", "text")),
            text=str(payload["message"]),
            time=str(payload["time"]),
            edited_at=payload.get("edited_at"),
            deleted=bool(payload.get("deleted", False)),
            reply_to=None if quote is None else Quote.from_payload(quote),
            mentions=tuple(int(u) for u in payload.get("mentions", ())),
            reactions=reactions_from(payload.get("reactions", ())),
            file=File.from_payload(carried) if isinstance(carried, dict) else None,
        )

    def tombstone(self) -> Message:
        """
        @return: this message as the server keeps it once deleted.
        """
        return replace(
            self,
            text="",
            deleted=True,
            edited_at=None,
            reply_to=None,
            mentions=(),
            reactions=(),
            file=None,
        )

    @property
    def editable(self) -> bool:
        """
        Whether its sender may still edit or delete it.
        """
        return self.kind in ("text", "file") and not self.deleted

    @property
    def system(self) -> bool:
        """
        Whether the server wrote this message about the room itself.
        """
        return self.kind == "system"

    def key_for(self, me: int) -> Key:
        """
        @param me: our own user id.
        @return: the conversation this message belongs to, seen by C{me}.
        """
        if self.target_type == ROOM:
            return (ROOM, self.target_id)
        other = self.target_id if self.sender_id == me else self.sender_id
        return (PRIVATE, other if other is not None else self.target_id)

    def local_time(self) -> datetime:
        """
        @return: when the server committed this message, in local time.
        """
        return parse_time(self.time).astimezone()


def parse_time(text: str) -> datetime:
    """
    @param text: a time of the wire, ISO 8601 in UTC (C{...Z}).
    @return: that moment as an aware L{datetime}.
    """
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment


@dataclass(frozen=True, slots=True)
class PendingFile:
    """
    The file a message we are sending carries (PROTOCOL.md section 14):
    first its content is uploaded, then the message goes out with its id.

    @ivar size: its length in bytes.
    @ivar sent: the bytes of it the server acknowledged so far.
    @ivar uploading: whether its upload is running (else it waits for the
        connection, or for one of the uploads running to end).
    @ivar file_id: once the server stored it, its id: the message then
        waits in the outbox like any other.
    """

    name: str
    size: int
    mime: str
    sent: int = 0
    uploading: bool = False
    file_id: str | None = None

    @property
    def image(self) -> bool:
        """
        Whether it will show inline, as an image.
        """
        return self.mime in IMAGE_TYPES


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """
    A message we sent that the server has not acknowledged yet.

    @ivar client_msg_id: the id that makes resending it safe.
    @ivar text: its text; for a file message, the caption (may be empty).
    @ivar error: why the server refused it, or L{None} while it waits.
    @ivar file: the file it carries, or L{None} for a text message.
    """

    client_msg_id: str
    key: Key
    text: str
    reply_to: Quote | None = None
    error: str | None = None
    file: PendingFile | None = None

    @property
    def ready(self) -> bool:
        """
        Whether it can go out: it carries no file, or one stored already.
        """
        return self.file is None or self.file.file_id is not None


#: What a conversation's timeline holds: stored messages, then pending ones.
Entry = Message | PendingMessage


@dataclass(frozen=True, slots=True)
class Contact:
    """
    One row of the friend list or the room list.

    @ivar online: for a friend, whether they are online; for a room, whether
        any other member is.
    @ivar detail: a short line under the name (presence, member count).
    @ivar mentions: how many of the unread messages mention us.
    """

    key: Key
    name: str
    online: bool
    unread: int
    detail: str
    mentions: int = 0

    @property
    def id(self) -> int:
        """
        The friend's user id or the room's id.
        """
        return self.key[1]


class Conversation:
    """
    What we hold of one conversation.

    @ivar messages: stored messages, sorted by id, without duplicates.
    @ivar pending: our unacknowledged messages, oldest first.
    @ivar opened: whether a page of its history was loaded (it was viewed).
    @ivar has_older: whether older messages may exist on the server.
    @ivar loading_older: whether a C{history before} page is on its way.
    @ivar has_newer: whether newer messages than those held may exist on
        the server: the conversation is L{detached}.
    @ivar loading_newer: whether a C{history after} page is on its way.
    @ivar generation: how many times the messages held were replaced
        (L{TimelineReset}): a page asked for before is no longer of use.
    @ivar newest_unheld: the id of the newest message pushed while
        detached, which was not held (0 for none).
    @ivar unread: messages from others we have not seen.
    @ivar mentions: how many of those mention us.
    @ivar read_up_to: the newest message id we told the server we read.
    @ivar typing: who is typing in it now: user id -> name.
    """

    def __init__(self, key: Key) -> None:
        self.key = key
        self.messages: list[Message] = []
        self._ids: list[int] = []
        self.pending: list[PendingMessage] = []
        self.opened = False
        self.has_older = True
        self.loading_older = False
        self.has_newer = False
        self.loading_newer = False
        self.generation = 0
        self.newest_unheld = 0
        self.unread = 0
        self.mentions = 0
        self.read_up_to = 0
        self.typing: dict[int, str] = {}

    def timeline(self) -> list[Entry]:
        """
        @return: the rows a view of this conversation shows, in order.
        """
        return [*self.messages, *self.pending]

    @property
    def first_id(self) -> int | None:
        """
        The oldest message id held, or L{None}.
        """
        return self._ids[0] if self._ids else None

    @property
    def last_id(self) -> int | None:
        """
        The newest message id held, or L{None}.
        """
        return self._ids[-1] if self._ids else None

    @property
    def detached(self) -> bool:
        """
        Whether the messages held are a window that does not reach the
        newest message of the conversation.
        """
        return self.has_newer

    def beyond(self, message_id: int) -> bool:
        """
        @return: whether a message with this id would leave a gap after the
            messages held: the conversation is detached and it is newer
            than them.
        """
        return self.has_newer and (self.last_id is None or message_id > self.last_id)

    def holds(self, message_id: int) -> bool:
        """
        @return: whether the message with this id is held.
        """
        return self.find(message_id) is not None

    def find(self, message_id: int) -> int | None:
        """
        @return: the row of the message with this id, or L{None}.
        """
        i = bisect_left(self._ids, message_id)
        return i if i < len(self._ids) and self._ids[i] == message_id else None

    def last_own(self, me: int) -> Message | None:
        """
        @return: the newest message of ours we may still edit, or L{None}.
        """
        for message in reversed(self.messages):
            if message.sender_id == me and message.editable:
                return message
        return None

    def insert(self, messages: Iterable[Message]) -> list[tuple[int, list[Message]]]:
        """
        Insert messages at their places, skipping those already held.

        @return: the runs inserted, each as (first row, messages), in the
            order they were inserted, with rows as they were at that moment.
        """
        runs: list[tuple[int, list[Message]]] = []
        for message in sorted(messages, key=lambda m: m.id):
            i = bisect_left(self._ids, message.id)
            if i < len(self._ids) and self._ids[i] == message.id:
                continue
            self._ids.insert(i, message.id)
            self.messages.insert(i, message)
            if runs and runs[-1][0] + len(runs[-1][1]) == i:
                runs[-1][1].append(message)
            else:
                runs.append((i, [message]))
        return runs

    def replace(self, messages: Iterable[Message]) -> None:
        """
        Hold C{messages} instead of every message held (the pending ones
        stay).
        """
        by_id = {m.id: m for m in messages}
        self._ids = sorted(by_id)
        self.messages = [by_id[i] for i in self._ids]
        self.generation += 1


# What changed, as listeners are told.


class Change:
    """
    Something in L{ClientState} changed; subclasses say what.
    """

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Reset(Change):
    """
    The user, the friend and room lists and the friend requests were all
    replaced (a login, a C{login_info} after a reconnect, a logout).
    Conversations still held keep their timelines.
    """


@dataclass(frozen=True, slots=True)
class ContactAdded(Change):
    """
    A friend or a room joined the end of its list.
    """

    contact: Contact


@dataclass(frozen=True, slots=True)
class ContactRemoved(Change):
    """
    A friend or a room left its list, and its conversation is forgotten.
    """

    key: Key


@dataclass(frozen=True, slots=True)
class ContactChanged(Change):
    """
    A friend's or room's row changed (presence, unread count, members).
    """

    contact: Contact


@dataclass(frozen=True, slots=True)
class MembersChanged(Change):
    """
    A room's member list changed (someone joined, left, came or went).
    """

    room_id: int
    members: tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class TopicChanged(Change):
    """
    A room's topic changed (C{""}: it has none).
    """

    room_id: int
    topic: str


@dataclass(frozen=True, slots=True)
class BansChanged(Change):
    """
    The users we banned from a room in this session, and have not let back
    since, changed.
    """

    room_id: int
    users: tuple[User, ...]


@dataclass(frozen=True, slots=True)
class MessagesInserted(Change):
    """
    Stored messages entered a conversation's timeline at C{row}.

    @ivar live: whether they arrived as a push (a new message from someone
        else), rather than as history or as the reply to our own send.
    """

    key: Key
    row: int
    messages: tuple[Message, ...]
    live: bool


@dataclass(frozen=True, slots=True)
class TimelineReset(Change):
    """
    Every row of a conversation's timeline was replaced by C{entries}: its
    messages now are a window around one far back, or its newest page
    instead of such a window.
    """

    key: Key
    entries: tuple[Entry, ...]
    has_older: bool
    has_newer: bool


@dataclass(frozen=True, slots=True)
class MessageOutsideWindow(Change):
    """
    Someone else's message was pushed to a detached conversation: newer
    than the window held, it is not held (that would leave a gap) but
    counts as unread.
    """

    key: Key
    message: Message


@dataclass(frozen=True, slots=True)
class MessageChanged(Change):
    """
    The stored message at C{row} changed: edited, deleted, reacted to, or
    the message it quotes changed.
    """

    key: Key
    row: int
    message: Message


@dataclass(frozen=True, slots=True)
class TypingChanged(Change):
    """
    Who is typing in C{key} changed.
    """

    key: Key
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PendingAdded(Change):
    """
    A message we sent entered the end of its conversation's timeline.
    """

    key: Key
    row: int
    pending: PendingMessage


@dataclass(frozen=True, slots=True)
class PendingRemoved(Change):
    """
    A pending message left the timeline (acknowledged: its stored copy is
    inserted separately; or cancelled).
    """

    key: Key
    row: int


@dataclass(frozen=True, slots=True)
class PendingChanged(Change):
    """
    A pending message at C{row} changed (the server refused it, or its
    file's upload moved on).
    """

    key: Key
    row: int
    pending: PendingMessage


@dataclass(frozen=True, slots=True)
class HistoryStateChanged(Change):
    """
    Whether older or newer messages exist, or are loading, changed.
    """

    key: Key
    has_older: bool
    loading_older: bool
    has_newer: bool
    loading_newer: bool


@dataclass(frozen=True, slots=True)
class ReadUpToChanged(Change):
    """
    The newest message we told the server we read in C{key} moved.
    """

    key: Key
    message_id: int


@dataclass(frozen=True, slots=True)
class FriendRequestsChanged(Change):
    """
    The pending incoming friend requests changed.
    """

    requests: tuple[User, ...]


@dataclass(frozen=True, slots=True)
class ConnectionChanged(Change):
    """
    The connection went L{OFFLINE}, L{CONNECTING} or L{ONLINE}.
    """

    status: str


@dataclass(frozen=True, slots=True)
class Notice(Change):
    """
    Something worth a line in the message bar happened.
    """

    text: str


@dataclass(frozen=True, slots=True)
class SignedOut(Change):
    """
    The session ended: we logged out, or the server ended it for good.

    @ivar reason: a sentence for people, or L{None} after our own logout.
    """

    reason: str | None


Listener = Callable[[Change], None]


class ClientState:
    """
    The client's memory of one session.

    @ivar user: who we are logged in as, or L{None}.
    @ivar friends: our friends by id, in the order they were listed.
    @ivar rooms: our rooms by id, in the order they were listed.
    @ivar requests: pending incoming friend requests, by requester id.
    @ivar conversations: what we hold of each conversation.
    @ivar viewed: the conversation on screen, or L{None}.
    @ivar connection: L{OFFLINE}, L{CONNECTING} or L{ONLINE}.
    @ivar bans: by room id, the users we banned from it in this session
        and have not let back since, by user id.  The server lists no bans
        (PROTOCOL.md section 12), so these are the only ones the client
        knows of.
    """

    def __init__(self) -> None:
        self.user: User | None = None
        self.friends: dict[int, Member] = {}
        self.rooms: dict[int, Room] = {}
        self.requests: dict[int, User] = {}
        self.bans: dict[int, dict[int, User]] = {}
        self.conversations: dict[Key, Conversation] = {}
        self.viewed: Key | None = None
        self.connection = OFFLINE
        self._listeners: list[Listener] = []
        self._handlers: dict[str, Callable[[Payload, bool], None]] = {
            "login_info": self._login_info,
            "on_new_message": self._on_new_message,
            "friend_on_off_line": self._friend_on_off_line,
            "room_user_on_off_line": self._room_user_on_off_line,
            "incoming_friend_request": self._incoming_friend_request,
            "add_friend_result": self._add_friend_result,
            "friend_removed": self._friend_removed,
            "join_successful": self._room_joined,
            "create_successful": self._room_joined,
            "someone_inroom": self._someone_inroom,
            "someone_outroom": self._someone_outroom,
            "me_outroom": self._me_outroom,
            "server_kick": self._server_kick,
            "message_edited": self._message_edited,
            "message_deleted": self._message_deleted,
            "reactions_changed": self._reactions_changed,
            "typing": self._typing,
            "room_updated": self._room_updated,
            "member_role": self._member_role,
        }

    # Listeners.

    def add_listener(self, listener: Listener) -> None:
        """
        Call C{listener} with every L{Change} from now on.
        """
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """
        Stop calling C{listener}.
        """
        self._listeners.remove(listener)

    def _tell(self, change: Change) -> None:
        for listener in list(self._listeners):
            listener(change)

    # Reading.

    @property
    def me(self) -> int:
        """
        Our user id (C{-1} when logged out, which matches nobody).
        """
        return self.user.id if self.user is not None else -1

    def conversation(self, key: Key) -> Conversation:
        """
        @return: the conversation C{key}, created empty if need be.
        """
        conversation = self.conversations.get(key)
        if conversation is None:
            conversation = self.conversations[key] = Conversation(key)
        return conversation

    def knows(self, key: Key) -> bool:
        """
        @return: whether C{key} is one of our friends or rooms.
        """
        kind, target = key
        return target in (self.friends if kind == PRIVATE else self.rooms)

    def name_of(self, key: Key) -> str:
        """
        @return: the friend's username or the room's name, or C{"?"}.
        """
        kind, target = key
        if kind == PRIVATE:
            friend = self.friends.get(target)
            return friend.username if friend else "?"
        room = self.rooms.get(target)
        return room.name if room else "?"

    def contact(self, key: Key) -> Contact:
        """
        @return: the list row of a friend or room we have.
        """
        kind, target = key
        conversation = self.conversations.get(key)
        unread = conversation.unread if conversation is not None else 0
        mentions = conversation.mentions if conversation is not None else 0
        if kind == PRIVATE:
            friend = self.friends[target]
            detail = "online" if friend.online else "offline"
            return Contact(key, friend.username, friend.online, unread, detail, mentions)
        room = self.rooms[target]
        others_online = any(m.online and m.id != self.me for m in room.members.values())
        count = len(room.members)
        online = sum(1 for m in room.members.values() if m.online)
        detail = f"{count} member{'s' if count != 1 else ''}, {online} online"
        return Contact(key, room.name, others_online, unread, detail, mentions)

    def contacts(self, kind: int) -> list[Contact]:
        """
        @return: the rows of the friend list (L{PRIVATE}) or the room list
            (L{ROOM}), in order.
        """
        ids = self.friends if kind == PRIVATE else self.rooms
        return [self.contact((kind, target)) for target in ids]

    def outbox(self) -> list[PendingMessage]:
        """
        @return: the messages still to be acknowledged (not refused) that
            can go out (a file message once its file is stored), each
            conversation's in the order they were written.
        """
        return [
            pending
            for conversation in self.conversations.values()
            for pending in conversation.pending
            if pending.error is None and pending.ready
        ]

    def pending(self, client_msg_id: str) -> PendingMessage | None:
        """
        @return: our pending message C{client_msg_id}, or L{None} (it was
            acknowledged, dismissed, or never was).
        """
        found = self._pending(client_msg_id)
        return None if found is None else found[0].pending[found[1]]

    def _pending(self, client_msg_id: str) -> tuple[Conversation, int] | None:
        """
        @return: the conversation holding the pending message
            C{client_msg_id} and its index there, or L{None}.
        """
        for conversation in self.conversations.values():
            for index, pending in enumerate(conversation.pending):
                if pending.client_msg_id == client_msg_id:
                    return conversation, index
        return None

    def catch_up_points(self) -> list[tuple[Key, int | None]]:
        """
        @return: every attached conversation we hold something of, with
            the newest message id held (L{None} for an opened, empty one):
            after a reconnect each is caught up from there.  A detached one
            is left as it is: its window has no gap, and what came after it
            comes with its next pages.
        """
        return [
            (key, c.last_id)
            for key, c in self.conversations.items()
            if (c.messages or c.opened) and not c.detached and self.knows(key)
        ]

    # Replies and pushes.

    def apply_reply(self, payload: Payload) -> None:
        """
        Apply the reply to one of our requests.
        """
        self._apply(payload, pushed=False)

    def apply_push(self, payload: Payload) -> None:
        """
        Apply a push from the server.
        """
        self._apply(payload, pushed=True)

    def _apply(self, payload: Payload, pushed: bool) -> None:
        handler = self._handlers.get(payload.get("type", ""))
        if handler is not None:
            handler(payload, pushed)

    def _login_info(self, payload: Payload, pushed: bool) -> None:
        self.user = User.from_payload(payload["user"])
        self.friends = {m.id: m for m in map(Member.from_payload, payload.get("friends", ()))}
        self.rooms = {r.id: r for r in map(Room.from_payload, payload.get("rooms", ()))}
        self.requests = {
            u.id: u for u in map(User.from_payload, payload.get("friend_requests", ()))
        }
        for key in [k for k in self.conversations if not self.knows(k)]:
            self._forget(key)
        for room_id in [r for r in self.bans if r not in self.rooms]:
            del self.bans[room_id]
        for conversation in self.conversations.values():
            conversation.unread = conversation.mentions = 0
        for entry in payload.get("unread", ()):
            key = (int(entry["target_type"]), int(entry["target_id"]))
            if self.knows(key) and not self._seen(key):
                conversation = self.conversation(key)
                conversation.unread = int(entry["count"])
                conversation.mentions = int(entry.get("mentions", 0))
        self._tell(Reset())
        self._tell(FriendRequestsChanged(tuple(self.requests.values())))

    def _seen(self, key: Key) -> bool:
        """
        @return: whether new messages of C{key} are seen as they come: it
            is on screen, and attached.
        """
        conversation = self.conversations.get(key)
        return key == self.viewed and not (conversation is not None and conversation.detached)

    def _forget(self, key: Key) -> None:
        self.conversations.pop(key, None)
        if self.viewed == key:
            self.viewed = None

    def _on_new_message(self, payload: Payload, pushed: bool) -> None:
        message = Message.from_payload(payload["message"])
        key = message.key_for(self.me)
        from_others = message.sender_id != self.me
        conversation = self.conversation(key)
        if conversation.holds(message.id):
            self._settle(conversation, [message])
            return
        live = pushed and from_others
        if conversation.beyond(message.id):
            # It comes with the page after the window, or the newest one.
            conversation.newest_unheld = max(conversation.newest_unheld, message.id)
            self._settle(conversation, [message])
            if live:
                self._tell(MessageOutsideWindow(key, message))
        else:
            self._insert(conversation, [message], live=live)
        if live and message.sender_id in conversation.typing:
            self.set_typing(key, message.sender_id, None)
        if live and not self._seen(key) and self.knows(key):
            conversation.unread += 1
            if self.me in message.mentions:
                conversation.mentions += 1
            self._tell(ContactChanged(self.contact(key)))

    def _message_edited(self, payload: Payload, pushed: bool) -> None:
        self._change(Message.from_payload(payload["message"]))

    def _message_deleted(self, payload: Payload, pushed: bool) -> None:
        held = self._held(payload)
        if held is not None:
            self._change(held.tombstone())

    def _reactions_changed(self, payload: Payload, pushed: bool) -> None:
        held = self._held(payload)
        if held is not None:
            self._change(replace(held, reactions=reactions_from(payload.get("reactions", ()))))

    def _held(self, payload: Payload) -> Message | None:
        """
        @return: the held message a push about C{message_id} is about.
        """
        key = (int(payload["target_type"]), int(payload["target_id"]))
        if key[0] == PRIVATE and key[1] == self.me:
            # A private message to us: its conversation is its sender's,
            # which the push does not name; look in every friend's.
            candidates = [c for k, c in self.conversations.items() if k[0] == PRIVATE]
        else:
            candidates = [self.conversations[key]] if key in self.conversations else []
        message_id = int(payload["message_id"])
        for conversation in candidates:
            row = conversation.find(message_id)
            if row is not None:
                return conversation.messages[row]
        return None

    def _change(self, message: Message) -> None:
        """
        Replace the held copy of C{message}, and the quotes of it that
        replies hold.
        """
        conversation = self.conversations.get(message.key_for(self.me))
        if conversation is None:
            return
        row = conversation.find(message.id)
        if row is None:
            return
        self._replace(conversation, row, message)
        quote = Quote.of(message)
        for index, reply in enumerate(conversation.messages):
            if reply.reply_to is not None and reply.reply_to.id == message.id:
                self._replace(conversation, index, replace(reply, reply_to=quote))

    def _replace(self, conversation: Conversation, row: int, message: Message) -> None:
        if conversation.messages[row] != message:
            conversation.messages[row] = message
            self._tell(MessageChanged(conversation.key, row, message))

    def _typing(self, payload: Payload, pushed: bool) -> None:
        key = (int(payload["target_type"]), int(payload["target_id"]))
        user_id = int(payload["user_id"])
        if key[0] == PRIVATE:
            key = (PRIVATE, user_id)
        if not self.knows(key) or user_id == self.me:
            return
        if not payload.get("typing"):
            self.set_typing(key, user_id, None)
            return
        if key[0] == PRIVATE:
            name = self.friends[user_id].username
        else:
            member = self.rooms[key[1]].members.get(user_id)
            name = member.username if member is not None else "?"
        self.set_typing(key, user_id, name)

    def _insert(self, conversation: Conversation, messages: list[Message], live: bool) -> None:
        """
        Insert stored messages, then drop the pending copies they settle.
        """
        for row, run in conversation.insert(messages):
            self._tell(MessagesInserted(conversation.key, row, tuple(run), live))
        self._settle(conversation, messages)

    def _settle(self, conversation: Conversation, messages: Iterable[Message]) -> None:
        mine = {m.client_msg_id for m in messages if m.sender_id == self.me and m.client_msg_id}
        if not mine:
            return
        for index in range(len(conversation.pending) - 1, -1, -1):
            pending = conversation.pending[index]
            if pending.client_msg_id in mine:
                del conversation.pending[index]
                self._tell(PendingRemoved(conversation.key, len(conversation.messages) + index))

    def _friend_on_off_line(self, payload: Payload, pushed: bool) -> None:
        user_id = int(payload["user_id"])
        online = bool(payload["online"])
        friend = self.friends.get(user_id)
        if friend is None or friend.online == online:
            return
        self.friends[user_id] = replace(friend, online=online)
        self._tell(ContactChanged(self.contact((PRIVATE, user_id))))
        self._tell(Notice(f"{friend.username} is {'online' if online else 'offline'}."))
        self._set_presence_in_rooms(user_id, online)

    def _room_user_on_off_line(self, payload: Payload, pushed: bool) -> None:
        room = self.rooms.get(int(payload["room_id"]))
        user_id = int(payload["user_id"])
        if room is None or user_id not in room.members:
            return
        self._set_member(room, replace(room.members[user_id], online=bool(payload["online"])))

    def _set_presence_in_rooms(self, user_id: int, online: bool) -> None:
        # A friend's presence holds in every room we share with them too,
        # whether or not the room's own push has arrived yet.
        for room in self.rooms.values():
            member = room.members.get(user_id)
            if member is not None and member.online != online:
                self._set_member(room, replace(member, online=online))

    def _set_member(self, room: Room, member: Member) -> None:
        if room.members.get(member.id) == member:
            return
        room.members[member.id] = member
        self._tell(MembersChanged(room.id, tuple(room.members.values())))
        self._tell(ContactChanged(self.contact((ROOM, room.id))))

    def _incoming_friend_request(self, payload: Payload, pushed: bool) -> None:
        user = User.from_payload(payload["user"])
        if user.id in self.requests or user.id in self.friends:
            return
        self.requests[user.id] = user
        self._tell(FriendRequestsChanged(tuple(self.requests.values())))
        self._tell(Notice(f"{user.username}({user.id}) wants to be your friend."))

    def _add_friend_result(self, payload: Payload, pushed: bool) -> None:
        friend = Member.from_payload(payload["friend"])
        if self.requests.pop(friend.id, None) is not None:
            self._tell(FriendRequestsChanged(tuple(self.requests.values())))
        if not payload.get("accepted", True) or friend.id in self.friends:
            return
        self.friends[friend.id] = friend
        self._tell(ContactAdded(self.contact((PRIVATE, friend.id))))
        if pushed:
            self._tell(Notice(f"{friend.username} accepted your friend request."))

    def _friend_removed(self, payload: Payload, pushed: bool) -> None:
        user_id = int(payload["user_id"])
        friend = self.friends.pop(user_id, None)
        if friend is None:
            return
        self._forget((PRIVATE, user_id))
        self._tell(ContactRemoved((PRIVATE, user_id)))
        if pushed:
            self._tell(Notice(f"{friend.username} removed you from their friends."))

    def _room_joined(self, payload: Payload, pushed: bool) -> None:
        room = Room.from_payload(payload["room"])
        known = self.rooms.get(room.id)
        self.rooms[room.id] = room
        key = (ROOM, room.id)
        if known is not None:
            self._tell(MembersChanged(room.id, tuple(room.members.values())))
            self._tell(ContactChanged(self.contact(key)))
            if known.topic != room.topic:
                self._tell(TopicChanged(room.id, room.topic))
            return
        self._tell(ContactAdded(self.contact(key)))
        if pushed:
            self._tell(Notice(f"You were added to room {room.name}({room.id})."))

    def _someone_inroom(self, payload: Payload, pushed: bool) -> None:
        room = self.rooms.get(int(payload["room_id"]))
        if room is not None:
            member = Member.from_payload(payload["user"])
            self._set_member(room, member)
            # Someone else lifted our ban: they are back.
            self.forget_ban(room.id, member.id)

    def _someone_outroom(self, payload: Payload, pushed: bool) -> None:
        room = self.rooms.get(int(payload["room_id"]))
        user_id = int(payload["user_id"])
        if room is None or room.members.pop(user_id, None) is None:
            return
        self._tell(MembersChanged(room.id, tuple(room.members.values())))
        self._tell(ContactChanged(self.contact((ROOM, room.id))))

    def _me_outroom(self, payload: Payload, pushed: bool) -> None:
        room_id = int(payload["room_id"])
        room = self.rooms.pop(room_id, None)
        if room is None:
            return
        self.bans.pop(room_id, None)
        self._forget((ROOM, room_id))
        self._tell(ContactRemoved((ROOM, room_id)))
        if pushed and payload.get("reason") == "kicked":
            # Who removed us is not on the wire: the system message saying
            # so goes to the members left.
            self._tell(Notice(texts.removed_from(room.name, room.id)))

    def _room_updated(self, payload: Payload, pushed: bool) -> None:
        updated = Room.from_payload(payload["room"])
        room = self.rooms.get(updated.id)
        if room is None or room.topic == updated.topic:
            return
        room.topic = updated.topic
        self._tell(TopicChanged(room.id, room.topic))

    def _member_role(self, payload: Payload, pushed: bool) -> None:
        self.set_role(int(payload["room_id"]), int(payload["user_id"]), str(payload["role"]))

    def set_role(self, room_id: int, user_id: int, role: str) -> None:
        """
        Note that member C{user_id} of room C{room_id} now has C{role}: from
        a C{member_role} push, or the C{ok} to our own C{set_role} (the
        server pushes nothing back to the owner who asked).  When it is our
        own role that changed, say so.
        """
        room = self.rooms.get(room_id)
        member = room.members.get(user_id) if room is not None else None
        if room is None or member is None or member.role == role:
            return
        self._set_member(room, replace(member, role=role))
        if user_id == self.me:
            self._tell(Notice(texts.role_now(role, room.name, room.id)))

    def _server_kick(self, payload: Payload, pushed: bool) -> None:
        self._tell(Notice(texts.kicked(str(payload.get("reason")))))

    def apply_history(self, payload: Payload, direction: str) -> None:
        """
        Add a C{history} reply's messages to their conversation.

        @param direction: C{"latest"} (no C{before}/C{after}: the newest
            page, which attaches a detached conversation), C{"before"} (an
            older page) or C{"after"} (the page after the newest held: when
            catching up, or paging forward from a window).
        """
        key = (int(payload["target_type"]), int(payload["target_id"]))
        if not self.knows(key):
            return
        conversation = self.conversation(key)
        messages = [Message.from_payload(m) for m in payload.get("messages", ())]
        has_more = bool(payload.get("has_more"))
        if direction == "latest":
            self._take_window(conversation, messages, has_more, False)
            return
        self._refresh_held(conversation, messages)
        self._insert(conversation, messages, live=False)
        if direction == "before":
            conversation.has_older = has_more
            conversation.loading_older = False
            self._tell_history(conversation)
        elif conversation.detached:
            conversation.loading_newer = False
            self._set_has_newer(conversation, has_more)
            self._tell_history(conversation)

    def apply_window(self, older: Payload, newer: Payload) -> None:
        """
        Hold the window of messages around one far back: instead of what is
        held, unless the two overlap, when they make one longer run.

        @param older: the reply to C{history before: M+1}: the message M
            and those before it.
        @param newer: the reply to C{history after: M}: those after it.
        """
        key = (int(older["target_type"]), int(older["target_id"]))
        if not self.knows(key):
            return
        pages = [*older.get("messages", ()), *newer.get("messages", ())]
        messages = [Message.from_payload(m) for m in pages]
        self._take_window(
            self.conversation(key),
            messages,
            bool(older.get("has_more")),
            bool(newer.get("has_more")),
        )

    def _take_window(
        self, conversation: Conversation, messages: list[Message], has_older: bool, has_newer: bool
    ) -> None:
        """
        Hold C{messages}, a contiguous run of the conversation, with what is
        held when the two overlap (then they make one contiguous run), or
        instead of it.

        @param has_older: whether messages older than the run exist.
        @param has_newer: whether messages newer than the run exist.
        """
        messages.sort(key=lambda m: m.id)
        first, last = conversation.first_id, conversation.last_id
        if (
            first is None
            or last is None
            or (messages and messages[0].id <= last and messages[-1].id >= first)
        ):
            if first is not None and last is not None and messages:
                if messages[0].id > first:
                    has_older = conversation.has_older
                if messages[-1].id < last:
                    has_newer = conversation.has_newer
            self._refresh_held(conversation, messages)
            self._insert(conversation, messages, live=False)
            conversation.has_older = has_older
            self._set_has_newer(conversation, has_newer)
        else:
            conversation.replace(messages)
            conversation.has_older = has_older
            self._set_has_newer(conversation, has_newer)
            self._tell(
                TimelineReset(
                    conversation.key,
                    tuple(conversation.timeline()),
                    conversation.has_older,
                    conversation.has_newer,
                )
            )
            self._settle(conversation, messages)
        conversation.opened = True
        conversation.loading_older = conversation.loading_newer = False
        self._tell_history(conversation)

    def _refresh_held(self, conversation: Conversation, messages: list[Message]) -> None:
        # A message held already may have been edited, deleted or reacted
        # to meanwhile.
        for message in messages:
            row = conversation.find(message.id)
            if row is not None:
                self._replace(conversation, row, message)

    def _set_has_newer(self, conversation: Conversation, has_newer: bool) -> None:
        """
        Note whether newer messages than those held exist: a message pushed
        and not held says they do, whatever a page said.  Attached again
        while on screen, the conversation's unread messages are seen.
        """
        last = conversation.last_id or 0
        was = conversation.has_newer
        conversation.has_newer = has_newer or conversation.newest_unheld > last
        if conversation.has_newer:
            return
        conversation.newest_unheld = 0
        if was and conversation.key == self.viewed:
            self.set_viewed(conversation.key)

    def _tell_history(self, conversation: Conversation) -> None:
        self._tell(
            HistoryStateChanged(
                conversation.key,
                conversation.has_older,
                conversation.loading_older,
                conversation.has_newer,
                conversation.loading_newer,
            )
        )

    # What the client itself does.

    def set_loading_older(self, key: Key, loading: bool) -> None:
        """
        Note that an older page of C{key} is (or is no longer) on its way.
        """
        conversation = self.conversation(key)
        if conversation.loading_older != loading:
            conversation.loading_older = loading
            self._tell_history(conversation)

    def set_loading_newer(self, key: Key, loading: bool) -> None:
        """
        Note that a newer page of a detached C{key} is (or is no longer) on
        its way.
        """
        conversation = self.conversation(key)
        if conversation.loading_newer != loading:
            conversation.loading_newer = loading
            self._tell_history(conversation)

    def stop_loading(self) -> None:
        """
        Note that no older nor newer page is on its way any more (the
        connection that asked for them is gone).
        """
        for conversation in self.conversations.values():
            if conversation.loading_older or conversation.loading_newer:
                conversation.loading_older = conversation.loading_newer = False
                self._tell_history(conversation)

    def set_read_up_to(self, key: Key, message_id: int) -> None:
        """
        Note the newest message of C{key} we told the server we read.
        """
        conversation = self.conversation(key)
        if conversation.read_up_to != message_id:
            conversation.read_up_to = message_id
            self._tell(ReadUpToChanged(key, message_id))

    def add_pending(
        self,
        key: Key,
        text: str,
        client_msg_id: str,
        reply_to: Quote | None = None,
        file: PendingFile | None = None,
    ) -> PendingMessage:
        """
        Show a message we are sending at the end of its conversation.

        @param file: the file it carries, to be uploaded first.
        """
        pending = PendingMessage(client_msg_id, key, text, reply_to, file=file)
        conversation = self.conversation(key)
        conversation.pending.append(pending)
        row = len(conversation.messages) + len(conversation.pending) - 1
        self._tell(PendingAdded(key, row, pending))
        return pending

    def fail_pending(self, client_msg_id: str, error: str) -> None:
        """
        Mark a pending message as refused by the server: it is not resent.
        """
        found = self._pending(client_msg_id)
        if found is None:
            return
        conversation, index = found
        failed = replace(conversation.pending[index], error=error)
        conversation.pending[index] = failed
        self._tell(PendingChanged(conversation.key, len(conversation.messages) + index, failed))

    def update_pending(
        self, client_msg_id: str, file: PendingFile | None, error: str | None = None
    ) -> None:
        """
        Note how far the file of a pending message got (its upload's
        progress, or its stored id), and whether it failed (C{error}) or
        waits again (L{None}: a retry).
        """
        found = self._pending(client_msg_id)
        if found is None:
            return
        conversation, index = found
        old = conversation.pending[index]
        changed = replace(old, file=file, error=error)
        if changed != old:
            conversation.pending[index] = changed
            self._tell(
                PendingChanged(conversation.key, len(conversation.messages) + index, changed)
            )

    def remove_pending(self, client_msg_id: str) -> None:
        """
        Take a pending message away: it will not be sent (the user
        cancelled it, or dismissed it once refused).
        """
        found = self._pending(client_msg_id)
        if found is None:
            return
        conversation, index = found
        del conversation.pending[index]
        self._tell(PendingRemoved(conversation.key, len(conversation.messages) + index))

    def set_viewed(self, key: Key | None) -> None:
        """
        Note which conversation is on screen; its unread count drops to 0,
        unless it is detached: the messages after its window are not seen.
        """
        self.viewed = key
        if key is None or not self.knows(key) or not self._seen(key):
            return
        conversation = self.conversation(key)
        if conversation.unread or conversation.mentions:
            conversation.unread = conversation.mentions = 0
            self._tell(ContactChanged(self.contact(key)))

    def set_typing(self, key: Key, user_id: int, name: str | None) -> None:
        """
        Note that C{user_id} is typing in C{key} (as C{name}), or, with
        L{None}, no longer is.
        """
        conversation = self.conversations.get(key)
        if conversation is None:
            if name is None:
                return
            conversation = self.conversation(key)
        typing = conversation.typing
        if name is None:
            if typing.pop(user_id, None) is None:
                return
        elif typing.get(user_id) == name:
            return
        else:
            typing[user_id] = name
        self._tell(TypingChanged(key, tuple(typing.values())))

    def banned(self, room_id: int) -> tuple[User, ...]:
        """
        @return: the users we banned from room C{room_id} in this session
            and have not let back since, in the order we banned them.
        """
        return tuple(self.bans.get(room_id, {}).values())

    def note_ban(self, room_id: int, user: User) -> None:
        """
        Remember that we banned C{user} from room C{room_id}, to offer to
        lift the ban.
        """
        if room_id not in self.rooms:
            return
        self.bans.setdefault(room_id, {})[user.id] = user
        self._tell(BansChanged(room_id, self.banned(room_id)))

    def forget_ban(self, room_id: int, user_id: int) -> None:
        """
        Forget our ban of C{user_id} from room C{room_id}: it was lifted.
        """
        bans = self.bans.get(room_id)
        if bans is None or bans.pop(user_id, None) is None:
            return
        if not bans:
            del self.bans[room_id]
        self._tell(BansChanged(room_id, self.banned(room_id)))

    def set_connection(self, status: str) -> None:
        """
        Note the connection's status.
        """
        if status != self.connection:
            self.connection = status
            self._tell(ConnectionChanged(status))

    def notice(self, text: str) -> None:
        """
        Tell the listeners something worth a line in the message bar.
        """
        self._tell(Notice(text))

    def sign_out(self, reason: str | None) -> None:
        """
        Forget the session: the user, the lists, every conversation.
        """
        self.user = None
        self.friends.clear()
        self.rooms.clear()
        self.requests.clear()
        self.bans.clear()
        self.conversations.clear()
        self.viewed = None
        self._tell(Reset())
        self._tell(FriendRequestsChanged(()))
        self.set_connection(OFFLINE)
        self._tell(SignedOut(reason))
