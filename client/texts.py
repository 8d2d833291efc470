"""
The client's sentences for people, in one place.

Error codes and kick reasons come from L{chatd.wire}, so that the client and
the server cannot disagree on a spelling.
"""

from __future__ import annotations

from typing import Final

from chatd import wire

#: The rule of PROTOCOL.md section 4 for a message text, as people read it.
MESSAGE_RULE: Final = "A message is 1-4000 characters, not only whitespace, with no NUL character."

#: Shown while a message waits for the connection to come back.
OFFLINE_SEND: Final = "You are offline: the message will go out on reconnect."

#: What people are told when the server closes the connection, by reason.
KICK_REASONS: Final = {
    wire.LOGGED_IN_ELSEWHERE: "You logged in from somewhere else, so this session ended.",
    wire.IDLE_TIMEOUT: "The server closed the idle connection; reconnecting.",
    wire.SHUTDOWN: "The server is shutting down; reconnecting when it is back.",
    wire.TOO_MANY_ERRORS: "The server closed the connection after errors; reconnecting.",
    wire.ACCOUNT_DISABLED: "The server's operator disabled this account.",
    wire.PASSWORD_CHANGED: "The server's operator reset your password; log in with the new one.",
}

#: The kicks after which coming back cannot work: the session ends at once,
#: and its stored token is forgotten (PROTOCOL.md section 15).
SESSION_ENDING_KICKS: Final = frozenset({wire.ACCOUNT_DISABLED, wire.PASSWORD_CHANGED})

#: Friendlier words for some error codes, where the server's are terse.
FRIENDLY_ERRORS: Final = {
    wire.LOGIN_FAILED: "Wrong username or password.",
    wire.USERNAME_TAKEN: "That username is taken; pick another one.",
    wire.RATE_LIMITED: "Too many attempts. Wait a minute, then try again.",
    wire.NO_SUCH_USER: "There is no user with that name.",
    wire.NO_SUCH_ROOM: "There is no room with that name.",
    wire.ROOM_EXISTS: "A room with that name exists already; join it instead.",
    wire.ALREADY_FRIENDS: "You are friends already.",
    wire.ALREADY_IN_ROOM: "You are in that room already.",
}

#: What a search that failed says, by error code (PROTOCOL.md section 11).
SEARCH_ERRORS: Final = {
    wire.INVALID_FIELD: "Search for 1-200 characters, not only spaces.",
    wire.NOT_FRIENDS: "You are no longer friends, so that conversation cannot be searched.",
    wire.NOT_IN_ROOM: "You are no longer in that room, so it cannot be searched.",
    wire.NO_SUCH_USER: "That user no longer exists, so the conversation cannot be searched.",
    wire.NO_SUCH_ROOM: "That room no longer exists, so it cannot be searched.",
    wire.RATE_LIMITED: "Too many searches at once. Wait a moment, then try again.",
}

#: What a search says when it cannot reach the server.
SEARCH_OFFLINE: Final = "You are offline: searching needs the connection."

#: What a search says when it failed for a reason the client cannot name.
SEARCH_FAILED: Final = "The search failed. Please try again."

#: What opening a message (a quote, a search result) says when the server
#: no longer shows it to us.
MESSAGE_GONE: Final = "That message is no longer in this conversation."

#: The rule of PROTOCOL.md section 12 for a room topic, as people read it.
TOPIC_RULE: Final = (
    f"A topic is at most {wire.MAX_TOPIC} characters on one line, with no control characters."
)

#: What a refused room moderation request says, by request type and error
#: code (PROTOCOL.md section 12); codes not listed here fall back to
#: L{MODERATION_FALLBACK}, then to the server's own sentence.
MODERATION_ERRORS: Final = {
    "set_topic": {
        wire.NOT_ALLOWED: "Only the room's owner and moderators can change its topic.",
        wire.INVALID_FIELD: TOPIC_RULE,
    },
    "set_role": {
        wire.NOT_ALLOWED: "Only the room's owner can make or unmake moderators.",
        wire.NOT_IN_ROOM: "That user is no longer in the room.",
    },
    "kick_from_room": {
        wire.NOT_ALLOWED: (
            "You may not remove that member: the owner may remove anyone,"
            " moderators only plain members."
        ),
        wire.NOT_IN_ROOM: "That user is no longer in the room.",
    },
    "unban_from_room": {
        wire.NOT_ALLOWED: ("That user is not banned from the room, or you no longer moderate it."),
    },
}

#: What any refused moderation request says, by error code, unless
#: L{MODERATION_ERRORS} says better.
MODERATION_FALLBACK: Final = {
    wire.NOT_IN_ROOM: "You are no longer in that room.",
    wire.NO_SUCH_ROOM: "That room no longer exists.",
    wire.NO_SUCH_USER: "That user no longer exists.",
    wire.RATE_LIMITED: "Too many requests at once. Wait a moment, then try again.",
}


def moderation_error(request: str, code: str) -> str | None:
    """
    @param request: the type of the request refused (C{set_topic}, ...).
    @return: the sentence for a moderation request refused with C{code},
        or L{None} when the client has none (the server's sentence is
        shown then).
    """
    return MODERATION_ERRORS.get(request, {}).get(code) or MODERATION_FALLBACK.get(code)


def removed_from(room: str, room_id: int) -> str:
    """
    @return: what we are told when a moderator removed us from a room
        (the wire does not say who did).
    """
    return f"You were removed from room {room}({room_id})."


def role_now(role: str, room: str, room_id: int) -> str:
    """
    @return: what we are told when our own role in a room changed.
    """
    if role == "owner":
        return f"You are now the owner of room {room}({room_id})."
    if role == "moderator":
        return f"You are now a moderator of room {room}({room_id})."
    return f"You are no longer a moderator of room {room}({room_id})."


#: The codes after which logging in again cannot work: the session ends.
LOGIN_REFUSED: Final = frozenset({wire.LOGIN_FAILED, wire.INVALID_USERNAME, wire.INVALID_PASSWORD})

#: Said when the server no longer takes the session's token (PROTOCOL.md 13).
SESSION_ENDED: Final = "Your session ended; please log in again."

#: The codes after which resuming with a token cannot work, and what the
#: login window then says.  C{account_disabled} is PROTOCOL.md section 15's.
RESUME_REFUSED: Final = {
    wire.INVALID_TOKEN: SESSION_ENDED,
    wire.ACCOUNT_DISABLED: "This account is disabled; ask the server's operator.",
}

#: Shown while the client signs in with a stored token at start.
SIGNING_IN: Final = "Signing in as {username}…"

#: The rule of PROTOCOL.md section 4 for a password, as people read it.
PASSWORD_RULE: Final = "A password is 6-128 characters, not only spaces."

#: What a password change that failed says, by error code.
PASSWORD_ERRORS: Final = {
    wire.LOGIN_FAILED: "The current password is wrong.",
    wire.INVALID_PASSWORD: f"The new password is not allowed. {PASSWORD_RULE}",
    wire.RATE_LIMITED: "Too many attempts. Wait a minute, then try again.",
}

#: What a password change says when it cannot reach the server.
PASSWORD_OFFLINE: Final = "You are offline: changing the password needs the connection."

#: Shown once the password is changed.
PASSWORD_CHANGED: Final = "Password changed."


def kicked(reason: str) -> str:
    """
    @return: the sentence for a C{server_kick} with C{reason}.
    """
    return KICK_REASONS.get(reason, f"The server closed the connection ({reason}).")


#: What a file transfer that failed says, by error code (PROTOCOL.md 14).
FILE_ERRORS: Final = {
    wire.FILE_TOO_LARGE: "That file is too large to send.",
    wire.QUOTA_EXCEEDED: "You have no room left for more files; the server's quota is full.",
    wire.NO_SUCH_FILE: "That file is no longer on the server.",
    wire.UPLOAD_INCOMPLETE: "The server did not receive the whole file; please send it again.",
    wire.NOT_ALLOWED: "Too many files are being sent at once; wait for one to finish.",
    wire.RATE_LIMITED: "Too many transfers at once. Wait a moment, then try again.",
    wire.INVALID_FIELD: "The server refused that file (its name or type is not allowed).",
    wire.NOT_FRIENDS: "You are no longer friends, so the file cannot be sent.",
    wire.NOT_IN_ROOM: "You are no longer in that room, so the file cannot be sent.",
}

#: What a transfer says when the connection is gone (or lost meanwhile).
FILE_OFFLINE: Final = "You are offline: the file transfer stopped."

#: What a download says when what arrived is not the file that was sent.
FILE_CORRUPT: Final = "The downloaded file does not match the one sent; it was discarded."

#: What a transfer says when the server's answer makes no sense.
FILE_BROKEN_REPLY: Final = "The server sent a broken file chunk; the transfer stopped."

#: What sending an empty file says (the server takes 1 byte or more).
FILE_EMPTY: Final = "That file is empty; there is nothing to send."

#: Why a local file could not be read to the end while it was sent.
FILE_SHRANK: Final = "it became shorter while it was being sent"

#: What dropping a folder says.
FOLDER_DROPPED: Final = "Folders cannot be sent; send the files in it instead."

#: What a file being sent shows, by how far it got.
UPLOAD_WAITING: Final = "Waiting to send…"
UPLOAD_SENDING: Final = "Sending…"

#: What an image shows while it is fetched.
IMAGE_LOADING: Final = "Loading image…"

#: What an image that arrived but cannot be decoded shows.
IMAGE_UNREADABLE: Final = "This image cannot be shown. Right-click to save the file."

#: What saving a file says when it is being saved already.
SAVE_RUNNING: Final = "That file is being saved already."


def uploading(done: int, total: int) -> str:
    """
    @return: how far a file being sent got: C{"Uploading 40% of 2.5 MiB"}.
    """
    return f"Uploading {percent(done, total)}% of {human_size(total)}"


def saving(done: int, total: int) -> str:
    """
    @return: how far a file being saved got: C{"Saving 40% of 2.5 MiB"}.
    """
    return f"Saving {percent(done, total)}% of {human_size(total)}"


def percent(done: int, total: int) -> int:
    """
    @return: C{done} of C{total} as a whole percentage, 100 only when done.
    """
    if total <= 0 or done >= total:
        return 100
    return min(99, done * 100 // total)


def file_saved(name: str, path: str) -> str:
    """
    @return: what a finished save says.
    """
    return f"Saved {name} as {path}."


def image_unavailable(reason: str) -> str:
    """
    @return: what an image that could not be fetched shows in its place.
    """
    return f"Image not available: {reason}"


def file_error(code: str) -> str | None:
    """
    @return: the sentence for a file transfer refused with C{code}, or
        L{None} when the client has none (the server's sentence is shown).
    """
    return FILE_ERRORS.get(code)


def file_unreadable(path: str, reason: str) -> str:
    """
    @return: what an upload says when its local file cannot be read.
    """
    return f"Cannot read {path}: {reason}"


def file_unwritable(path: str, reason: str) -> str:
    """
    @return: what a download says when its local file cannot be written.
    """
    return f"Cannot write {path}: {reason}"


def human_size(size: int) -> str:
    """
    @return: C{size} bytes as people read it: C{"512 B"}, C{"1.5 KiB"}.
    """
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def with_file(name: str, caption: str) -> str:
    """
    @return: a file message on one line, where there is no room for its
        card (a notification, a reply being written): its file's name, then
        its caption.
    """
    return f"[{name}] {caption}" if caption else f"[{name}]"
