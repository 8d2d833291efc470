"""
The route table's entries: what chatd knows of a request type besides its
rules.

L{chatd.server.ChatServer.routes} maps each request type of PROTOCOL.md
section 5 to one L{Route}: how its fields are parsed, which handler keeps
its rules, and the few facts the connection needs to schedule it.  Adding a
request type is one entry there, one parser in L{chatd.requests} and one
handler; the connection (L{chatd.protocol}) never learns its name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chatd.wire import Payload


@dataclass(frozen=True, slots=True)
class User:
    """
    The logged-in user a request comes from.

    @ivar token_hash: the hash of the session token its session logged in
        with.
    """

    id: int
    name: str
    token_hash: bytes | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """
    One request type.

    @ivar parse: turns the decoded request into its value (see
        L{chatd.requests}), raising L{chatd.wire.ChatError} for a bad field.
    @ivar handler: called with the caller and the parsed request; returns
        the reply, a list (the reply, then pushes that must follow it at
        once), a Deferred of either, or a coroutine of either.
    @ivar before_login: the request is allowed before login.  Such a request
        is about the connection, and its handler gets the connection's
        L{chatd.sessions.Session}; every other handler gets the L{User}.
    @ivar concurrent: the request may run beside the connection's other
        concurrent requests instead of after them (it is ordered the moment
        it starts, as a send is by the group commit).
    @ivar holds_pushes: pushes to the connection wait until this request's
        reply is written, so that they cannot come before it.
    @ivar closes: the request ends the session: the user is logged out
        before the handler runs, and the connection closes once its reply
        is written.
    @ivar on_connection: the handler gets the connection's
        L{chatd.sessions.Session} (logged in), not the L{User}: what it
        does belongs to the connection (an upload, PROTOCOL.md section 14).
    @ivar transfer_cost: for a file chunk, the bytes it moves, from the
        decoded request: counted against the connection's transfer rate
        instead of its request rate (PROTOCOL.md section 8).
    """

    parse: Callable[[Payload], Any]
    handler: Callable[[Any, Any], Any]
    before_login: bool = False
    concurrent: bool = False
    holds_pushes: bool = False
    closes: bool = False
    on_connection: bool = False
    transfer_cost: Callable[[Payload], int] | None = None
