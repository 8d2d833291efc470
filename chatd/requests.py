"""
The requests of PROTOCOL.md sections 5 and 10-13, each parsed into a frozen
value.

A request's fields are checked here, before any rule runs (PROTOCOL.md
section 2): a missing or mistyped field, an integer out of range and a
value that breaks the rules of section 4 (a name, a password, a message
text) are refused by C{parse} with the code those sections give, whatever
state the request names.  What is left for the server are the rules that
depend on state: who is a friend, who is in which room.

This module is a leaf beside L{chatd.wire}: it knows neither sessions nor
the store.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from chatd import wire
from chatd.wire import PRIVATE, ROOM, ChatError, Payload

HISTORY_LIMIT: Final = 50
MAX_HISTORY_LIMIT: Final = 100
MAX_CLIENT_MSG_ID: Final = 64
SEARCH_LIMIT: Final = 20
MAX_SEARCH_LIMIT: Final = 50
MAX_QUERY: Final = 200

#: The most bytes of one upload or download chunk (PROTOCOL.md section 14).
CHUNK_SIZE: Final = 32768
MAX_FILE_NAME: Final = 255
MAX_MIME: Final = 127
DEFAULT_MIME: Final = "application/octet-stream"

# RFC 6838 section 4.2: a restricted-name, twice.
_NAME_PART = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MIME = re.compile(rf"{_NAME_PART}/{_NAME_PART}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Target:
    """
    A conversation: a friend (C{PRIVATE}) or a room (C{ROOM}) by id.
    """

    type: int
    id: int

    @classmethod
    def parse(cls, request: Payload) -> Target:
        target_type = wire.integer(request, "target_type")
        if target_type not in (PRIVATE, ROOM):
            raise ChatError(wire.INVALID_FIELD, "Field 'target_type' must be 0 or 1.")
        return cls(target_type, wire.integer(request, "target_id"))


@dataclass(frozen=True, slots=True)
class NoFields:
    """
    A request that has no fields of its own: C{logout}, C{ping}.
    """

    @classmethod
    def parse(cls, request: Payload) -> NoFields:
        return _NO_FIELDS


_NO_FIELDS: Final = NoFields()


@dataclass(frozen=True, slots=True)
class Register:
    username: str
    password: str

    @classmethod
    def parse(cls, request: Payload) -> Register:
        username = wire.string(request, "username")
        password = wire.string(request, "password")
        if not wire.valid_name(username):
            raise ChatError(wire.INVALID_USERNAME)
        if not wire.valid_password(password):
            raise ChatError(wire.INVALID_PASSWORD)
        return cls(username, password)


@dataclass(frozen=True, slots=True)
class Login:
    """
    A name and a password; neither is checked against section 4, so that a
    malformed name fails like a wrong one (C{login_failed}).
    """

    username: str
    password: str

    @classmethod
    def parse(cls, request: Payload) -> Login:
        return cls(wire.string(request, "username"), wire.string(request, "password"))


@dataclass(frozen=True, slots=True)
class Resume:
    """
    A session token; any string is well-formed (an unknown one is
    C{invalid_token}).
    """

    token: str

    @classmethod
    def parse(cls, request: Payload) -> Resume:
        return cls(wire.string(request, "token"))


@dataclass(frozen=True, slots=True)
class ChangePassword:
    """
    The current password (checked like a login's) and a new one, which
    follows section 4.
    """

    old_password: str
    new_password: str

    @classmethod
    def parse(cls, request: Payload) -> ChangePassword:
        old = wire.string(request, "old_password")
        new = wire.string(request, "new_password")
        if not wire.valid_password(new):
            raise ChatError(wire.INVALID_PASSWORD)
        return cls(old, new)


@dataclass(frozen=True, slots=True)
class SendMessage:
    """
    A message to send, perhaps answering another (C{reply_to}).
    """

    target: Target
    message: str
    client_msg_id: str | None
    reply_to: int | None
    file_id: str | None = None

    @classmethod
    def parse(cls, request: Payload) -> SendMessage:
        target = Target.parse(request)
        file_id = wire.optional_string(request, "file_id")
        if file_id is None:
            text = wire.string(request, "message")
        else:
            # A file's caption may be empty, and absent means empty.
            text = wire.optional_string(request, "message") or ""
        client_msg_id = wire.optional_string(request, "client_msg_id")
        reply_to = wire.optional_integer(request, "reply_to")
        if client_msg_id is not None and not 0 < len(client_msg_id) <= MAX_CLIENT_MSG_ID:
            raise ChatError(wire.INVALID_FIELD, "Field 'client_msg_id' must be 1-64 characters.")
        if (text or file_id is None) and not wire.valid_message(text):
            raise ChatError(wire.INVALID_MESSAGE)
        return cls(target, text, client_msg_id, reply_to, file_id)


@dataclass(frozen=True, slots=True)
class EditMessage:
    """
    A message's new text.  An empty text passes here: it is a valid caption
    of a file message (PROTOCOL.md section 10), which only the message's
    kind can tell.
    """

    message_id: int
    message: str

    @classmethod
    def parse(cls, request: Payload) -> EditMessage:
        message_id = wire.integer(request, "message_id")
        text = wire.string(request, "message")
        if text and not wire.valid_message(text):
            raise ChatError(wire.INVALID_MESSAGE)
        return cls(message_id, text)


@dataclass(frozen=True, slots=True)
class DeleteMessage:
    message_id: int

    @classmethod
    def parse(cls, request: Payload) -> DeleteMessage:
        return cls(wire.integer(request, "message_id"))


@dataclass(frozen=True, slots=True)
class React:
    """
    Add (C{on}, the default) or remove one's C{emoji} on a message.
    """

    message_id: int
    emoji: str
    on: bool

    @classmethod
    def parse(cls, request: Payload) -> React:
        message_id = wire.integer(request, "message_id")
        emoji = wire.string(request, "emoji")
        on = wire.boolean(request, "on", True)
        if not wire.valid_emoji(emoji):
            raise ChatError(
                wire.INVALID_FIELD,
                "Field 'emoji' must be 1-32 characters without spaces or control characters.",
            )
        return cls(message_id, emoji, on)


@dataclass(frozen=True, slots=True)
class Typing:
    target: Target
    typing: bool

    @classmethod
    def parse(cls, request: Payload) -> Typing:
        return cls(Target.parse(request), wire.boolean(request, "typing"))


@dataclass(frozen=True, slots=True)
class History:
    """
    A page of a conversation: newest first unless C{after} is given.
    """

    target: Target
    before: int | None
    after: int | None
    limit: int

    @classmethod
    def parse(cls, request: Payload) -> History:
        target = Target.parse(request)
        before = wire.optional_integer(request, "before")
        after = wire.optional_integer(request, "after")
        limit = wire.integer(request, "limit", HISTORY_LIMIT)
        if before is not None and after is not None:
            raise ChatError(wire.INVALID_FIELD, "Give 'before' or 'after', not both.")
        if not 0 < limit <= MAX_HISTORY_LIMIT:
            raise ChatError(wire.INVALID_FIELD, "Field 'limit' must be 1-100.")
        return cls(target, before, after, limit)


@dataclass(frozen=True, slots=True)
class Search:
    """
    A search of every conversation of the user (C{target} L{None}) or of
    one, newest first: the messages whose case-folded text contains every
    one of C{terms}, each case-folded already, in the order given, once.
    """

    terms: tuple[str, ...]
    target: Target | None
    before: int | None
    limit: int

    @classmethod
    def parse(cls, request: Payload) -> Search:
        query = wire.string(request, "query")
        target = None
        if request.get("target_type") is not None or request.get("target_id") is not None:
            target = Target.parse(request)
        before = wire.optional_integer(request, "before")
        limit = wire.integer(request, "limit", SEARCH_LIMIT)
        terms = tuple(dict.fromkeys(term.casefold() for term in wire.words(query)))
        if not terms or len(query) > MAX_QUERY:
            raise ChatError(
                wire.INVALID_FIELD, "Field 'query' must be 1-200 characters, not only spaces."
            )
        if not 0 < limit <= MAX_SEARCH_LIMIT:
            raise ChatError(wire.INVALID_FIELD, "Field 'limit' must be 1-50.")
        return cls(terms, target, before, limit)


@dataclass(frozen=True, slots=True)
class MarkRead:
    target: Target
    message_id: int

    @classmethod
    def parse(cls, request: Payload) -> MarkRead:
        return cls(Target.parse(request), wire.integer(request, "message_id"))


@dataclass(frozen=True, slots=True)
class AddFriend:
    """
    A malformed name names no one: the rules answer it C{no_such_user}.
    """

    username: str

    @classmethod
    def parse(cls, request: Payload) -> AddFriend:
        return cls(wire.string(request, "username"))


@dataclass(frozen=True, slots=True)
class CreateRoom:
    name: str

    @classmethod
    def parse(cls, request: Payload) -> CreateRoom:
        name = wire.string(request, "name")
        if not wire.valid_name(name):
            raise ChatError(wire.INVALID_ROOM_NAME)
        return cls(name)


@dataclass(frozen=True, slots=True)
class ResolveFriendRequest:
    user_id: int
    accept: bool

    @classmethod
    def parse(cls, request: Payload) -> ResolveFriendRequest:
        return cls(wire.integer(request, "user_id"), wire.boolean(request, "accept", True))


@dataclass(frozen=True, slots=True)
class RemoveFriend:
    user_id: int

    @classmethod
    def parse(cls, request: Payload) -> RemoveFriend:
        return cls(wire.integer(request, "user_id"))


@dataclass(frozen=True, slots=True)
class JoinRoom:
    """
    A malformed name names no room: the rules answer it C{no_such_room}.
    """

    name: str

    @classmethod
    def parse(cls, request: Payload) -> JoinRoom:
        return cls(wire.string(request, "name"))


@dataclass(frozen=True, slots=True)
class QuitRoom:
    room_id: int

    @classmethod
    def parse(cls, request: Payload) -> QuitRoom:
        return cls(wire.integer(request, "room_id"))


@dataclass(frozen=True, slots=True)
class RoomMember:
    """
    A room and a user: C{add_friend_to_room}, C{unban_from_room}.
    """

    room_id: int
    user_id: int

    @classmethod
    def parse(cls, request: Payload) -> RoomMember:
        return cls(wire.integer(request, "room_id"), wire.integer(request, "user_id"))


@dataclass(frozen=True, slots=True)
class ListRooms:
    query: str

    @classmethod
    def parse(cls, request: Payload) -> ListRooms:
        return cls(wire.optional_string(request, "query") or "")


# Room moderation (PROTOCOL.md section 12).

#: The roles C{set_role} gives; ownership passes only when the owner quits.
ROLES: Final = ("moderator", "member")


@dataclass(frozen=True, slots=True)
class SetTopic:
    room_id: int
    topic: str

    @classmethod
    def parse(cls, request: Payload) -> SetTopic:
        room_id = wire.integer(request, "room_id")
        topic = wire.string(request, "topic")
        if not wire.valid_topic(topic):
            raise ChatError(wire.INVALID_FIELD, "Field 'topic' must be 0-200 characters, one line.")
        return cls(room_id, topic)


@dataclass(frozen=True, slots=True)
class SetRole:
    room_id: int
    user_id: int
    role: str

    @classmethod
    def parse(cls, request: Payload) -> SetRole:
        room_id = wire.integer(request, "room_id")
        user_id = wire.integer(request, "user_id")
        role = wire.string(request, "role")
        if role not in ROLES:
            raise ChatError(wire.INVALID_FIELD, "Field 'role' must be 'moderator' or 'member'.")
        return cls(room_id, user_id, role)


@dataclass(frozen=True, slots=True)
class KickFromRoom:
    room_id: int
    user_id: int
    ban: bool

    @classmethod
    def parse(cls, request: Payload) -> KickFromRoom:
        return cls(
            wire.integer(request, "room_id"),
            wire.integer(request, "user_id"),
            wire.boolean(request, "ban", False),
        )


# Files (PROTOCOL.md section 14).


@dataclass(frozen=True, slots=True)
class UploadStart:
    """
    A file about to be sent: its name, size in bytes and type.
    """

    name: str
    size: int
    mime: str

    @classmethod
    def parse(cls, request: Payload) -> UploadStart:
        name = wire.string(request, "name")
        size = wire.integer(request, "size")
        mime = wire.optional_string(request, "mime")
        if mime is None:
            mime = DEFAULT_MIME
        if not 0 < len(name) <= MAX_FILE_NAME or any(
            c in "/\\" or unicodedata.category(c) == "Cc" for c in name
        ):
            raise ChatError(
                wire.INVALID_FIELD,
                "Field 'name' must be 1-255 characters without '/', '\\' or control characters.",
            )
        if len(mime) > MAX_MIME or _MIME.fullmatch(mime) is None:
            raise ChatError(wire.INVALID_FIELD, "Field 'mime' must be a type like image/png.")
        if size < 1:
            raise ChatError(wire.FILE_TOO_LARGE, "A file has 1 byte or more.")
        return cls(name, size, mime)


@dataclass(frozen=True, slots=True)
class UploadChunk:
    """
    The next bytes of an upload, decoded.
    """

    upload_id: str
    offset: int
    data: bytes

    @classmethod
    def parse(cls, request: Payload) -> UploadChunk:
        upload_id = wire.string(request, "upload_id")
        offset = wire.integer(request, "offset")
        encoded = wire.string(request, "data")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            data = b""
        if not 0 < len(data) <= CHUNK_SIZE:
            raise ChatError(
                wire.INVALID_FIELD,
                f"Field 'data' must be the padded base64 of 1 to {CHUNK_SIZE} bytes.",
            )
        return cls(upload_id, offset, data)

    @staticmethod
    def cost(request: Payload) -> int:
        """
        @return: the bytes the chunk's C{data} decodes to, counted against
            the connection's transfer rate before the request is parsed
            (0 for a field that is no string: parsing refuses it).
        """
        encoded = request.get("data")
        if not isinstance(encoded, str):
            return 0
        return len(encoded) * 3 // 4 - encoded.endswith("=") - encoded.endswith("==")


@dataclass(frozen=True, slots=True)
class UploadFinish:
    """
    The end of an upload, with the SHA-256 of everything sent.
    """

    upload_id: str
    sha256: str

    @classmethod
    def parse(cls, request: Payload) -> UploadFinish:
        upload_id = wire.string(request, "upload_id")
        digest = wire.string(request, "sha256")
        if _SHA256.fullmatch(digest) is None:
            raise ChatError(
                wire.INVALID_FIELD, "Field 'sha256' must be 64 lower-case hexadecimal digits."
            )
        return cls(upload_id, digest)


@dataclass(frozen=True, slots=True)
class Download:
    """
    Up to C{length} bytes of a file, from C{offset}.
    """

    file_id: str
    offset: int
    length: int

    @classmethod
    def parse(cls, request: Payload) -> Download:
        file_id = wire.string(request, "file_id")
        offset = wire.integer(request, "offset", 0)
        length = wire.integer(request, "length", CHUNK_SIZE)
        if not 0 < length <= CHUNK_SIZE:
            raise ChatError(wire.INVALID_FIELD, f"Field 'length' must be 1 to {CHUNK_SIZE}.")
        return cls(file_id, offset, length)

    @staticmethod
    def cost(request: Payload) -> int:
        """
        @return: the most bytes the download returns, counted against the
            connection's transfer rate.
        """
        length = request.get("length")
        return length if type(length) is int and 0 < length < CHUNK_SIZE else CHUNK_SIZE
