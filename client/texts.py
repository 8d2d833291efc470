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
}

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

#: The codes after which logging in again cannot work: the session ends.
LOGIN_REFUSED: Final = frozenset({wire.LOGIN_FAILED, wire.INVALID_USERNAME, wire.INVALID_PASSWORD})


def kicked(reason: str) -> str:
    """
    @return: the sentence for a C{server_kick} with C{reason}.
    """
    return KICK_REASONS.get(reason, f"The server closed the connection ({reason}).")
