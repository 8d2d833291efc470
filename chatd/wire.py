"""
The chatd wire format: JSON payloads, the error codes, and the field rules.

PROTOCOL.md sections 1, 2 and 7.  A frame's payload is one JSON object in
UTF-8 (no BOM, no NaN/Infinity, nesting at most 32 deep, no lone
surrogates) with a string C{type}; integers are JSON integers in
[0, 2**53), booleans are C{true}/C{false}.  Everything the client got wrong
is a L{ChatError} carrying one of the codes below; only the protocol turns
it into an C{error} frame.

This module is a leaf: it knows nothing of transports, sessions or SQL.
"""

from __future__ import annotations

import functools
import json
import re
import struct
import unicodedata
from typing import Any, Final

#: Largest payload the server accepts by default (C{--max-frame}).
MAX_FRAME: Final = 65536
#: Deepest nesting of arrays and objects a payload may have.
MAX_DEPTH: Final = 32
#: Integer fields lie in [0, MAX_INT).
MAX_INT: Final = 2**53

Payload = dict[str, Any]

#: C{target_type} of a private (1:1) conversation.
PRIVATE: Final = 0
#: C{target_type} of a room.
ROOM: Final = 1

# The error codes of PROTOCOL.md section 7, in one place.
BAD_FRAME: Final = "bad_frame"
FRAME_TOO_LARGE: Final = "frame_too_large"
UNKNOWN_TYPE: Final = "unknown_type"
INVALID_FIELD: Final = "invalid_field"
NOT_AUTHENTICATED: Final = "not_authenticated"
ALREADY_AUTHENTICATED: Final = "already_authenticated"
LOGIN_FAILED: Final = "login_failed"
USERNAME_TAKEN: Final = "username_taken"
INVALID_USERNAME: Final = "invalid_username"
INVALID_PASSWORD: Final = "invalid_password"
NO_SUCH_USER: Final = "no_such_user"
NO_SUCH_ROOM: Final = "no_such_room"
ROOM_EXISTS: Final = "room_exists"
INVALID_ROOM_NAME: Final = "invalid_room_name"
INVALID_MESSAGE: Final = "invalid_message"
INVALID_TARGET: Final = "invalid_target"
NOT_FRIENDS: Final = "not_friends"
ALREADY_FRIENDS: Final = "already_friends"
NO_PENDING_REQUEST: Final = "no_pending_request"
NOT_IN_ROOM: Final = "not_in_room"
ALREADY_IN_ROOM: Final = "already_in_room"
RATE_LIMITED: Final = "rate_limited"
NO_SUCH_MESSAGE: Final = "no_such_message"
NOT_ALLOWED: Final = "not_allowed"
INVALID_TOKEN: Final = "invalid_token"
ACCOUNT_DISABLED: Final = "account_disabled"
NO_SUCH_FILE: Final = "no_such_file"
FILE_TOO_LARGE: Final = "file_too_large"
UPLOAD_INCOMPLETE: Final = "upload_incomplete"
QUOTA_EXCEEDED: Final = "quota_exceeded"
INTERNAL_ERROR: Final = "internal_error"

# The reasons of a server_kick push (PROTOCOL.md sections 5 and 8).
LOGGED_IN_ELSEWHERE: Final = "logged_in_elsewhere"
IDLE_TIMEOUT: Final = "idle_timeout"
SHUTDOWN: Final = "shutdown"
TOO_MANY_ERRORS: Final = "too_many_errors"
PASSWORD_CHANGED: Final = "password_changed"
# ACCOUNT_DISABLED is both an error code and a kick reason.

#: Every code, with the sentence people see when the raiser gives none.
MESSAGES: Final[dict[str, str]] = {
    BAD_FRAME: "The frame is not a JSON object with a string type.",
    FRAME_TOO_LARGE: "The frame is larger than the server accepts.",
    UNKNOWN_TYPE: "The server does not know this request type.",
    INVALID_FIELD: "A field is missing or has the wrong type.",
    NOT_AUTHENTICATED: "Log in first.",
    ALREADY_AUTHENTICATED: "This connection is already logged in.",
    LOGIN_FAILED: "Wrong username or password.",
    USERNAME_TAKEN: "That username is taken.",
    INVALID_USERNAME: "A username is 1-32 ASCII letters, digits or underscores.",
    INVALID_PASSWORD: "A password is 6-128 characters, not all whitespace.",
    NO_SUCH_USER: "There is no such user.",
    NO_SUCH_ROOM: "There is no such room.",
    ROOM_EXISTS: "A room with that name exists.",
    INVALID_ROOM_NAME: "A room name is 1-32 ASCII letters, digits or underscores.",
    INVALID_MESSAGE: "A message is 1-4000 characters, not only whitespace, no NUL.",
    INVALID_TARGET: "That target is not allowed here.",
    NOT_FRIENDS: "You are not friends.",
    ALREADY_FRIENDS: "You are already friends.",
    NO_PENDING_REQUEST: "There is no pending friend request from that user.",
    NO_SUCH_MESSAGE: "There is no such message.",
    NOT_ALLOWED: "That is not allowed.",
    INVALID_TOKEN: "That session token does not work (any more); log in with your password.",
    ACCOUNT_DISABLED: "This account is disabled; ask the server's operator.",
    NO_SUCH_FILE: "There is no such file.",
    FILE_TOO_LARGE: "The file is larger than the server accepts.",
    UPLOAD_INCOMPLETE: "The upload's size or SHA-256 does not match what was sent.",
    QUOTA_EXCEEDED: "Your files would take more room than the server allows you.",
    NOT_IN_ROOM: "Not a member of that room.",
    ALREADY_IN_ROOM: "Already a member of that room.",
    RATE_LIMITED: "Too many requests; slow down.",
    INTERNAL_ERROR: "The server failed to handle this request.",
}

#: Codes that say the client does not speak the protocol; ten of these in a
#: row close the connection.  Rule violations (C{not_friends}, ...) and
#: throttling (C{rate_limited}) are ordinary answers and do not count.
PROTOCOL_ERRORS: Final = frozenset(
    {BAD_FRAME, UNKNOWN_TYPE, INVALID_FIELD, NOT_AUTHENTICATED, ALREADY_AUTHENTICATED}
)


class ChatError(Exception):
    """
    A request the server refuses: it becomes an C{error} frame with C{code}.

    @ivar code: one of the codes of PROTOCOL.md section 7.
    @ivar message: a short English sentence for people.
    """

    def __init__(self, code: str, message: str | None = None) -> None:
        if code not in MESSAGES:
            raise ValueError(f"unknown error code {code!r}")
        self.code = code
        self.message = message if message is not None else MESSAGES[code]
        super().__init__(code, self.message)


# The JSON text of a lone surrogate escape can only come from a \uD800-\uDFFF
# escape; payloads without one skip the walk over their strings.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_BOM = b"\xef\xbb\xbf"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_decoder = json.JSONDecoder(parse_constant=_reject_constant)
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _too_deep(value: Any, depth: int) -> bool:
    """
    @return: whether C{value} nests arrays and objects more than
        C{MAX_DEPTH} levels deep, counting C{value} itself as level C{depth}.
    """
    if isinstance(value, dict):
        children: Any = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return False
    if depth > MAX_DEPTH:
        return True
    return any(_too_deep(child, depth + 1) for child in children)


def _has_lone_surrogate(value: Any) -> bool:
    """
    @return: whether any string in C{value} (keys included) cannot be
        encoded as UTF-8, which for a decoded JSON string means it holds a
        lone surrogate.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


def decode(payload: bytes) -> Payload:
    """
    Parse one frame's payload into a request.

    @param payload: the bytes of one frame, without its length prefix.
    @return: the JSON object, which has a string C{type}.
    @raise ChatError: C{bad_frame} when the payload breaks PROTOCOL.md
        section 1 or 2.
    """
    if payload.startswith(_BOM):
        raise ChatError(BAD_FRAME, "A payload must not start with a BOM.")
    try:
        text = payload.decode("utf-8")
        value = _decoder.decode(text)
    except UnicodeDecodeError:
        raise ChatError(BAD_FRAME, "The payload is not valid UTF-8.") from None
    except (ValueError, RecursionError):
        raise ChatError(BAD_FRAME, "The payload is not valid JSON.") from None
    if not isinstance(value, dict):
        raise ChatError(BAD_FRAME, "The payload is not a JSON object.")
    # Depth cannot exceed the number of opening brackets: most requests have
    # a handful, so the walk runs only for the rare payload with many.
    if payload.count(b"{") + payload.count(b"[") > MAX_DEPTH and _too_deep(value, 1):
        raise ChatError(BAD_FRAME, f"The payload nests deeper than {MAX_DEPTH}.")
    if _SURROGATE_ESCAPE.search(payload) and _has_lone_surrogate(value):
        raise ChatError(BAD_FRAME, "The payload holds a lone surrogate.")
    if not isinstance(value.get("type"), str):
        raise ChatError(BAD_FRAME, "The payload has no string type.")
    return value


def encode(payload: Payload) -> bytes:
    """
    @return: C{payload} as compact UTF-8 JSON.
    """
    return _encoder.encode(payload).encode("utf-8")


_PREFIX = struct.Struct("!I")


def frame(payload: Payload) -> bytes:
    """
    @return: C{payload} encoded and framed (a 4-byte big-endian length, then
        the bytes), ready to be written to any number of transports.
    """
    data = encode(payload)
    return _PREFIX.pack(len(data)) + data


@functools.cache
def _spliced_parts(type: str, name: str) -> tuple[bytes, bytes]:
    return encode({"type": type})[:-1], encode({name: 0})[1:-2]


class Spliced:
    """
    A payload C{{"type": type, name: value}} whose one object field is
    already encoded, so that a reply and the pushes that share its object
    encode it once: a sender's C{on_new_message} and the push of the same
    message to every other member.
    """

    __slots__ = ("_field", "_type", "_value")

    def __init__(self, type: str, name: str, value: bytes) -> None:
        """
        @param value: the field's value, encoded (L{encode}).
        """
        self._type, self._field = _spliced_parts(type, name)
        self._value = value

    def frame(self, request_id: int | None = None) -> bytes:
        """
        @return: the payload framed, with C{id} after C{type} when
            C{request_id} is given, as every reply has it.
        """
        if request_id is None:
            data = b"%b,%b%b}" % (self._type, self._field, self._value)
        else:
            data = b'%b,"id":%d,%b%b}' % (self._type, request_id, self._field, self._value)
        return _PREFIX.pack(len(data)) + data


def error(code: str, message: str | None = None, request_id: int | None = None) -> Payload:
    """
    @return: an C{error} payload for C{code}, answering C{request_id}.
    """
    payload: Payload = {"type": "error"}
    if request_id is not None:
        payload["id"] = request_id
    payload["code"] = code
    payload["message"] = message if message is not None else MESSAGES[code]
    return payload


def request_id(request: Payload) -> int | None:
    """
    @return: the request's C{id} when it has a valid one, else L{None}.
    """
    value = request.get("id")
    if type(value) is int and 0 <= value < MAX_INT:
        return value
    return None


# Field accessors: each raises invalid_field naming the field at fault.


def _invalid(name: str, what: str) -> ChatError:
    return ChatError(INVALID_FIELD, f"Field {name!r} must be {what}.")


def integer(request: Payload, name: str, default: int | None = None) -> int:
    """
    @return: the integer field C{name}, or C{default} when it is absent
        and a default is given.
    @raise ChatError: C{invalid_field} when it is missing (without a
        default) or not a JSON integer in [0, 2**53).
    """
    value = request.get(name)
    if value is None and default is not None:
        return default
    if type(value) is not int or not 0 <= value < MAX_INT:
        raise _invalid(name, "an integer from 0 to 2**53 - 1")
    return value


def optional_integer(request: Payload, name: str) -> int | None:
    """
    @return: the integer field C{name}, or L{None} when absent or null.
    @raise ChatError: C{invalid_field} when it is present and not an integer
        in [0, 2**53).
    """
    if request.get(name) is None:
        return None
    return integer(request, name)


def string(request: Payload, name: str) -> str:
    """
    @return: the string field C{name}.
    @raise ChatError: C{invalid_field} when it is missing or not a string.
    """
    value = request.get(name)
    if not isinstance(value, str):
        raise _invalid(name, "a string")
    return value


def optional_string(request: Payload, name: str) -> str | None:
    """
    @return: the string field C{name}, or L{None} when absent or null.
    @raise ChatError: C{invalid_field} when it is present and not a string.
    """
    if request.get(name) is None:
        return None
    return string(request, name)


def boolean(request: Payload, name: str, default: bool | None = None) -> bool:
    """
    @return: the boolean field C{name}, or C{default} when it is absent or
        null and a default is given.
    @raise ChatError: C{invalid_field} when it is missing (without a
        default) or not C{true}/C{false}.
    """
    value = request.get(name)
    if value is None and default is not None:
        return default
    if not isinstance(value, bool):
        raise _invalid(name, "true or false")
    return value


# The value rules of PROTOCOL.md section 4, shared by the server and the
# client (which checks a registration before sending it).

_NAME = re.compile(r"[A-Za-z0-9_]{1,32}")
MAX_MESSAGE: Final = 4000


def valid_name(name: str) -> bool:
    """
    @return: whether C{name} is a valid username or room name: 1-32 ASCII
        letters, digits and underscores.
    """
    return _NAME.fullmatch(name) is not None


def valid_password(password: str) -> bool:
    """
    @return: whether C{password} is 6-128 characters, not all whitespace.
    """
    return 6 <= len(password) <= 128 and not password.isspace()


def valid_message(text: str) -> bool:
    """
    @return: whether C{text} is 1-4000 code points, not whitespace only,
        without NUL.
    """
    return 0 < len(text) <= MAX_MESSAGE and not text.isspace() and "\0" not in text


# Unicode's White_Space property, every character of it (str.isspace also
# takes U+001C-U+001F, which are not White_Space).
_WHITE_SPACE = re.compile("[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")


def words(text: str) -> list[str]:
    """
    @return: the runs of C{text} between Unicode White_Space characters
        (U+3000, the ideographic space, included), none empty.
    """
    return [word for word in _WHITE_SPACE.split(text) if word]


MAX_TOPIC: Final = 200


def valid_topic(topic: str) -> bool:
    """
    @return: whether C{topic} is 0-200 code points without a control
        character (category Cc: no newline, no tab).
    """
    return len(topic) <= MAX_TOPIC and not any(unicodedata.category(c) == "Cc" for c in topic)


MAX_EMOJI_LENGTH: Final = 32


def valid_emoji(emoji: str) -> bool:
    """
    @return: whether C{emoji} is 1-32 code points with no Unicode
        White_Space and no control character (category Cc): any short
        symbol or word, so that a sequence joined by U+200D is one emoji.
    """
    return 0 < len(emoji) <= MAX_EMOJI_LENGTH and not any(
        c.isspace() or unicodedata.category(c) == "Cc" for c in emoji
    )
