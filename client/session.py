"""
A chat session that survives the network, without Qt.

L{ChatClient} keeps one connection (L{client.protocol.ChatClientProtocol})
up through a L{ClientService} with exponential backoff and, on every new
connection after the first login, resumes the session with its token
(PROTOCOL.md section 13: the password is not kept), resends the
C{send_message} requests that were never acknowledged (with their
C{client_msg_id}, so the server stores each once), and catches up every
conversation held with C{history after} its newest message id, so the
timeline has no gap and, deduplicated by message id, no duplicate (a
conversation showing a window far back is left as it is: it has no gap).  It
applies what arrives to a L{ClientState}, and changes that state only
through its methods, so that every change is announced.

Bots, the load generator and the end-to-end tests use it as it is; the Qt
client adds windows on top.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final, cast
from uuid import uuid4

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import Deferred, FirstError, fail, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatd import wire
from chatd.wire import valid_message, valid_password, valid_topic
from client import texts
from client.protocol import ChatClientFactory, ChatClientProtocol, ChatError, Disconnected
from client.search import SEARCH_PAGE, SearchPage
from client.state import (
    CONNECTING,
    OFFLINE,
    ONLINE,
    PRIVATE,
    ROOM,
    ClientState,
    File,
    Key,
    Message,
    Payload,
    PendingFile,
    PendingMessage,
    Quote,
    User,
)
from client.tokens import TokenFile
from client.transfers import (
    TransferCancelled,
    TransferFailed,
    TransferOffline,
    Upload,
    guess_mime,
    wire_name,
)

#: Messages asked for in one page of history.
PAGE_SIZE: Final = 50
#: Messages asked for on each side of a message far back (L{load_around}).
AROUND_PAGE: Final = 25
#: Messages asked for in one page when catching up.
CATCH_UP_PAGE: Final = 100
#: Seconds to wait before resending after C{rate_limited}.
RATE_LIMIT_PAUSE: Final = 1.0
#: Seconds between our C{typing: true} while the user types (PROTOCOL.md 10).
TYPING_EVERY: Final = 3.0
#: Seconds without a keystroke after which the user stopped typing.
TYPING_IDLE: Final = 5.0
#: Seconds someone shows as typing after their latest C{typing: true}.
TYPING_SHOWN: Final = 6.0
#: Uploads running at once: a connection may have 4 open (PROTOCOL.md 14);
#: the others wait their turn.
MAX_UPLOADS: Final = 4


def default_retry_policy(jitter: Callable[[], float] = random.random) -> Callable[[int], float]:
    """
    @param jitter: adds noise to each delay, so that clients cut off
        together do not all come back in the same instant.
    @return: the reconnect delays: 1 s, growing by half each failure, at
        most 30 s, plus the jitter (up to a second).
    """
    return backoffPolicy(initialDelay=1.0, maxDelay=30.0, factor=1.5, jitter=jitter)


@dataclass(frozen=True, slots=True)
class FileSource:
    """
    Where the content of a file being sent comes from: a local file, or
    bytes held in memory (a pasted image).
    """

    path: str | None
    data: bytes | None


@dataclass(slots=True)
class Credentials:
    """
    How each new connection of a session logs in again.

    @ivar username: who is logged in, as the server spells it.
    @ivar token: the session token to C{resume} with (PROTOCOL.md 13).
    @ivar password: kept only for a server whose C{login_successful}
        carries no token: then each new connection logs in with it.
    @ivar stored: whether the token is in the token file (the user stays
        logged in after this run), or in memory only.
    """

    username: str
    token: str | None
    password: str | None
    stored: bool


class ChatClient:
    """
    A chat session that survives the network, feeding a L{ClientState}.

    Every method that talks to the server returns at once; what comes back
    is applied to L{state} (whose listeners hear of it) and fires the
    returned L{Deferred}.

    @ivar state: what the session knows.
    """

    log = Logger()

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        state: ClientState,
        clock: IReactorTime,
        retry_policy: Callable[[int], float] | None = None,
        new_message_id: Callable[[], str] = lambda: uuid4().hex,
        tokens: TokenFile | None = None,
    ) -> None:
        """
        @param endpoint: where the server is.
        @param clock: for pings, reconnect delays and pauses.
        @param retry_policy: seconds to wait before reconnect attempt C{n}.
        @param new_message_id: makes the C{client_msg_id} of each message.
        @param tokens: where the tokens of the users who stay logged in are
            kept between runs; without it, tokens live in memory only.
        """
        self.state = state
        self._clock = clock
        self._new_message_id = new_message_id
        self._endpoint = endpoint
        self._retry_policy = retry_policy or default_retry_policy()
        self._service = self._new_service()
        self._protocol: ChatClientProtocol | None = None
        self._tokens = tokens
        # Set once the first login succeeds: every new connection logs in again.
        self._credentials: Credentials | None = None
        # Whether the current connection is logged in.
        self._ready = False
        self._in_flight: set[str] = set()
        self._resend_later: IDelayedCall | None = None
        self._loading_latest: set[Key] = set()
        # Our own typing: the conversation told, when, and the idle timer.
        self._typing_to: Key | None = None
        self._typing_since = 0.0
        self._typing_idle: IDelayedCall | None = None
        # Others' typing: when each shown "is typing" ends.
        self._typing_shown: dict[tuple[Key, int], IDelayedCall] = {}
        # The files being sent, by the client_msg_id of their message: where
        # each comes from (kept until it is stored, for a retry), the
        # uploads running, and those waiting their turn, in order.
        self._sources: dict[str, FileSource] = {}
        self._uploads: dict[str, Upload] = {}
        self._upload_queue: list[str] = []

    def _new_service(self) -> ClientService:
        return ClientService(
            self._endpoint,
            ChatClientFactory(self._clock, self),
            self._retry_policy,
            clock=self._clock,
        )

    @property
    def online(self) -> bool:
        """
        Whether a connection is open and logged in.
        """
        return self._ready and self._protocol is not None

    # The connection, as the protocol reports it.

    def connection_made(self, protocol: ChatClientProtocol) -> None:
        """
        A new connection is open: after the first login, resume the session
        with its token (or log in again, on a server that gives none).
        """
        self._protocol = protocol
        self._ready = False
        credentials = self._credentials
        if credentials is not None:
            if credentials.token is not None:
                d = protocol.request("resume", token=credentials.token)
            else:
                d = protocol.request(
                    "login", username=credentials.username, password=credentials.password
                )
            d.addCallbacks(
                self._logged_in_again,
                self._login_again_failed,
                callbackArgs=(protocol,),
                errbackArgs=(protocol,),
            )

    def connection_lost(self, protocol: ChatClientProtocol, reason: Failure) -> None:
        """
        The connection closed: unacknowledged sends stay pending, and the
        service reconnects unless the session ended.
        """
        if protocol is not self._protocol:
            return
        self._forget_connection()
        if self._credentials is None:
            # Never logged in (or logged out): nothing to come back to.
            self._stop_service().addErrback(self._bug)
            self.state.set_connection(OFFLINE)
        elif self._service.running:
            self.state.set_connection(CONNECTING)
            self.log.info("Connection lost; reconnecting")

    def push_received(self, payload: Payload) -> None:
        """
        Apply a push to the state, and act on what needs an answer.
        """
        kind = payload["type"]
        self.state.apply_push(payload)
        reason = payload.get("reason") if kind == "server_kick" else None
        if reason == wire.LOGGED_IN_ELSEWHERE:
            # Coming back would only push the other session out in turn.
            self._end_session(texts.kicked(reason))
        elif reason in texts.SESSION_ENDING_KICKS:
            # The operator ended the account's tokens: forget ours.
            self._forget_token()
            self._end_session(texts.kicked(str(reason)))
        elif kind == "login_info":
            self._synchronise()
        elif kind == "on_new_message":
            message = Message.from_payload(payload["message"])
            key = message.key_for(self.state.me)
            if message.sender_id is not None:
                self._typing_ended(key, message.sender_id)
            if key == self.state.viewed:
                self._mark_read(key)
        elif kind == "typing":
            self._typing_pushed(payload)

    def _typing_pushed(self, payload: Payload) -> None:
        """
        Someone is typing: they show as typing until their C{typing: false},
        their next message, or L{TYPING_SHOWN} seconds after this.
        """
        user_id = int(payload["user_id"])
        key = (int(payload["target_type"]), int(payload["target_id"]))
        if key[0] == PRIVATE:
            key = (PRIVATE, user_id)
        self._typing_ended(key, user_id)
        if payload.get("typing") and key in self.state.conversations:
            self._typing_shown[key, user_id] = self._clock.callLater(
                TYPING_SHOWN, self.state.set_typing, key, user_id, None
            )

    def _typing_ended(self, key: Key, user_id: int) -> None:
        shown = self._typing_shown.pop((key, user_id), None)
        if shown is not None and shown.active():
            shown.cancel()

    def _logged_in_again(self, reply: Payload, protocol: ChatClientProtocol) -> None:
        if protocol is self._protocol:
            self._ready = True
            self._took_token(reply)
            self.state.set_connection(ONLINE)
            self.log.info("Logged in again after a reconnect")

    def _login_again_failed(self, failure: Failure, protocol: ChatClientProtocol) -> None:
        failure.trap(ChatError, Disconnected)
        if protocol is not self._protocol or failure.check(Disconnected):
            return
        error = cast(ChatError, failure.value)
        credentials = self._credentials
        if error.code in texts.RESUME_REFUSED and credentials is not None:
            # The token ended (a password change, a logout elsewhere, an
            # operator): it cannot work again, not even after a restart.
            self._forget_token()
            self._end_session(texts.RESUME_REFUSED[error.code])
        elif error.code in texts.LOGIN_REFUSED:
            self._end_session(f"Logging in again failed: {error.message}")
        else:
            # rate_limited, internal_error, ...: try again on a new connection.
            protocol.transport.loseConnection()

    def _forget_token(self) -> None:
        """
        Remove the session's token from the token file, if it was stored.
        """
        credentials = self._credentials
        if credentials is not None and credentials.stored and self._tokens is not None:
            self._tokens.forget(credentials.username, credentials.token)

    def _end_session(self, reason: str | None) -> None:
        self._credentials = None
        self._ready = False
        self._forget_typing()
        self._forget_uploads()
        self._stop_service().addErrback(self._bug)
        self.state.sign_out(reason)

    def _synchronise(self) -> None:
        """
        Logged in (again): send what waits, and fill every gap.
        """
        protocol = self._protocol
        if protocol is None:
            return
        self._pump_outbox()
        self._start_uploads()
        Deferred.fromCoroutine(self._catch_up(protocol)).addErrback(self._bug)

    async def _catch_up(self, protocol: ChatClientProtocol) -> None:
        """
        Ask each held conversation for what it missed, page after page.
        """
        for key, last in self.state.catch_up_points():
            generation = self.state.conversation(key).generation
            while protocol is self._protocol:
                fields: dict[str, Any] = {"limit": CATCH_UP_PAGE}
                if last is not None:
                    fields["after"] = last
                try:
                    page = await protocol.request(
                        "history", target_type=key[0], target_id=key[1], **fields
                    )
                except ChatError:
                    break
                except Disconnected:
                    return
                if self.state.conversation(key).generation != generation:
                    break  # a window far back replaced what it was asked for
                self.state.apply_history(page, "latest" if last is None else "after")
                messages = page.get("messages") or []
                if last is None or not page.get("has_more") or not messages:
                    break
                last = int(messages[-1]["id"])
        viewed = self.state.viewed
        if viewed is not None and protocol is self._protocol:
            conversation = self.state.conversation(viewed)
            # A detached one keeps its window, where the user is reading.
            if not conversation.detached:
                if conversation.opened:
                    self._mark_read(viewed)
                self.load_latest(viewed)

    # Starting and ending the session.

    def _connect(self) -> Deferred[ChatClientProtocol]:
        """
        @return: fires with an open connection, starting one if need be;
            fails with L{Disconnected} when the first attempt fails.
        """
        if self._protocol is not None:
            return succeed(self._protocol)
        if not self._service.running:
            # A new service for each session: asked before it starts, it
            # counts even a first attempt that fails at once.
            self._service = self._new_service()
            d = self._service.whenConnected(failAfterFailures=1)
            self._service.startService()
        else:
            d = self._service.whenConnected(failAfterFailures=1)
        self.state.set_connection(CONNECTING)

        def unreachable(failure: Failure) -> Failure:
            self._offline_unless_signed_in()
            return Failure(Disconnected(f"Cannot reach the server: {failure.getErrorMessage()}"))

        return cast("Deferred[ChatClientProtocol]", d.addErrback(unreachable))

    def register(self, username: str, password: str) -> Deferred[User]:
        """
        Create an account (it does not log in).

        @return: fires with the new user, or fails with L{ChatError} or
            L{Disconnected}.
        """
        return Deferred.fromCoroutine(self._register(username, password))

    async def _register(self, username: str, password: str) -> User:
        _, reply = await self._account_request("register", username=username, password=password)
        return User.from_payload(reply["user"])

    async def _account_request(
        self, kind: str, **fields: str
    ) -> tuple[ChatClientProtocol, Payload]:
        """
        Connect if need be and send C{register}, C{login} or C{resume};
        when it fails outside a session, go offline again.

        @return: the connection it went over, and the reply.
        """
        protocol = await self._connect()
        try:
            return protocol, await protocol.request(kind, **fields)
        except BaseException:
            self._offline_unless_signed_in()
            raise

    def _offline_unless_signed_in(self) -> None:
        """
        Outside a session (never logged in, or logged out), stop the
        connection service: nothing is to be reconnected.
        """
        if self._credentials is None:
            self._stop_service().addErrback(self._bug)
            self.state.set_connection(OFFLINE)

    def login(self, username: str, password: str, stay_logged_in: bool = True) -> Deferred[User]:
        """
        Log in; from now on every new connection resumes the session by
        itself, until L{logout} or the server ends the session.

        @param stay_logged_in: whether to keep the session's token in the
            token file, for L{resume} in a later run; otherwise it is kept
            in memory only, and any token stored for the user is forgotten.
        @return: fires with the user, or fails with L{ChatError} or
            L{Disconnected}.
        """
        return Deferred.fromCoroutine(self._login(username, password, stay_logged_in))

    async def _login(self, username: str, password: str, stay_logged_in: bool) -> User:
        protocol, reply = await self._account_request("login", username=username, password=password)
        return self._signed_in(protocol, reply, password, stay_logged_in)

    @property
    def saved_username(self) -> str | None:
        """
        The user whose token L{resume} would use (the latest to log in to
        this server and stay logged in), or L{None}.
        """
        saved = self._tokens.newest() if self._tokens is not None else None
        return None if saved is None else saved[0]

    def resume(self) -> Deferred[User]:
        """
        Log in with the stored token of L{saved_username}, without a
        password; from then on the session is the same as after L{login}.

        @return: fires with the user; fails with L{Disconnected}, or with
            L{ChatError} (C{invalid_token}: the token ended and is
            forgotten; also when no token is stored).
        """
        return Deferred.fromCoroutine(self._resume())

    async def _resume(self) -> User:
        saved = self._tokens.newest() if self._tokens is not None else None
        if saved is None:
            raise ChatError(wire.INVALID_TOKEN, texts.SESSION_ENDED)
        username, token = saved
        try:
            protocol, reply = await self._account_request("resume", token=token)
        except ChatError as e:
            if e.code in texts.RESUME_REFUSED and self._tokens is not None:
                self._tokens.forget(username, token)
            raise
        if self._tokens is not None and reply.get("user", {}).get("username") != username:
            self._tokens.forget(username, token)  # stored under another spelling
        return self._signed_in(protocol, reply, None, True)

    def _signed_in(
        self,
        protocol: ChatClientProtocol,
        reply: Payload,
        password: str | None,
        stay_logged_in: bool,
    ) -> User:
        """
        C{login} or C{resume} worked: the session starts, and its token goes
        to the token file or, unless the user stays logged in, out of it.

        @param password: the password logged in with, kept only when the
            server gave no token.
        @return: the user.
        """
        user = User.from_payload(reply["user"])
        token = reply.get("token")
        token = token if isinstance(token, str) else None
        stored = stay_logged_in and token is not None and self._tokens is not None
        self._credentials = Credentials(
            user.username, token, password if token is None else None, stored
        )
        if self._tokens is not None:
            if stored and token is not None:
                self._tokens.save(user.username, token)
            else:
                self._tokens.forget(user.username)
        self._ready = protocol is self._protocol
        self.state.set_connection(ONLINE)
        self.log.info("Logged in as {username}", username=user.username)
        return user

    def _took_token(self, reply: Payload) -> None:
        """
        The server gave the session a token (a C{resume} may, a password
        change does): it replaces the old one, in the token file too.
        """
        credentials = self._credentials
        token = reply.get("token")
        if credentials is None or not isinstance(token, str) or token == credentials.token:
            return
        credentials.token = token
        credentials.password = None
        if credentials.stored and self._tokens is not None:
            self._tokens.save(credentials.username, token)

    def change_password(self, old_password: str, new_password: str) -> Deferred[None]:
        """
        Change our password (PROTOCOL.md section 13): every other token of
        the account ends, and the new token the reply carries replaces the
        session's.

        @raise ValueError: when C{new_password} breaks the rule of section 4.
        @return: fires when it is changed; fails with L{ChatError}
            (C{login_failed} for a wrong C{old_password}, C{invalid_password},
            C{rate_limited}) or L{Disconnected}.
        """
        if not valid_password(new_password):
            raise ValueError(texts.PASSWORD_RULE)
        d = self.request("change_password", old_password=old_password, new_password=new_password)
        return d.addCallback(self._took_token)

    def logout(self) -> Deferred[None]:
        """
        Log out, close the connection and forget the session and its
        stored token (the server ends the token).

        @return: fires when all that is done.
        """
        protocol = self._protocol if self._ready else None
        self._forget_token()
        self._credentials = None
        self._forget_typing()
        self._forget_uploads()
        d: Deferred[Any] = protocol.request("logout") if protocol is not None else succeed(None)
        d.addErrback(lambda failure: failure.trap(ChatError, Disconnected))
        d.addCallback(lambda _: self._stop_service())
        d.addCallback(lambda _: self.state.sign_out(None))
        return d

    def stop(self) -> Deferred[None]:
        """
        Close the connection and stop reconnecting (the program ends).
        """
        self._credentials = None
        return self._stop_service()

    def _forget_connection(self) -> None:
        """
        Stop using the current connection (it is closed, or closing).
        """
        self._protocol = None
        self._ready = False
        self._in_flight.clear()
        self._loading_latest.clear()
        self.state.stop_loading()

    def _stop_service(self) -> Deferred[None]:
        if self._resend_later is not None and self._resend_later.active():
            self._resend_later.cancel()
        self._resend_later = None
        # The connection may take a while to close: whatever comes next
        # (a login after a refused registration) must not use it.
        self._forget_connection()
        if not self._service.running:
            return succeed(None)
        return cast("Deferred[None]", self._service.stopService())

    # Requests.

    def request(self, kind: str, **fields: Any) -> Deferred[Payload]:
        """
        Send a request on the logged-in connection.

        @return: fires with the reply; fails with L{ChatError}, or with
            L{Disconnected} at once when offline.
        """
        if self._protocol is None or not self._ready:
            return fail(Disconnected())
        return self._protocol.request(kind, **fields)

    def _applied(self, reply: Payload) -> Payload:
        self.state.apply_reply(reply)
        return reply

    def add_friend(self, username: str) -> Deferred[Payload]:
        """
        Ask C{username} to be our friend (or accept their request).
        """
        return self.request("add_friend", username=username).addCallback(self._applied)

    def resolve_friend_request(self, user_id: int, accept: bool) -> Deferred[Payload]:
        """
        Accept or decline the friend request of C{user_id}.
        """
        d = self.request("resolve_friend_request", user_id=user_id, accept=accept)
        return d.addCallback(self._applied)

    def remove_friend(self, user_id: int) -> Deferred[Payload]:
        """
        End the friendship with C{user_id}.
        """
        return self.request("remove_friend", user_id=user_id).addCallback(self._applied)

    def create_room(self, name: str) -> Deferred[Payload]:
        """
        Create a room; we are its first member.
        """
        return self.request("create_room", name=name).addCallback(self._applied)

    def join_room(self, name: str) -> Deferred[Payload]:
        """
        Join the room called C{name}.
        """
        return self.request("join_room", name=name).addCallback(self._applied)

    def quit_room(self, room_id: int) -> Deferred[Payload]:
        """
        Leave a room.
        """
        return self.request("quit_room", room_id=room_id).addCallback(self._applied)

    def invite(self, room_id: int, user_id: int) -> Deferred[Payload]:
        """
        Add a friend to one of our rooms, then fetch the room's news (the
        server does not push its "added" message back to us).
        """
        d = self.request("add_friend_to_room", room_id=room_id, user_id=user_id)

        def added(reply: Payload) -> Payload:
            self._refresh((ROOM, room_id))
            return reply

        return d.addCallback(added)

    def list_rooms(self, query: str = "") -> Deferred[list[Payload]]:
        """
        @return: fires with the rooms whose name holds C{query}, each
            C{{id, name, topic, member_count}}.
        """
        d = self.request("list_rooms", query=query)
        return d.addCallback(lambda reply: list(reply.get("rooms", [])))

    # Room topics, roles and moderation (PROTOCOL.md section 12).

    def set_topic(self, room_id: int, topic: str) -> Deferred[Payload]:
        """
        Set the topic of a room we own or moderate; C{""} clears it.  The
        reply, C{room_updated}, changes it in the state.

        @raise ValueError: when C{topic} breaks the rule of section 12.
        """
        if not valid_topic(topic):
            raise ValueError(texts.TOPIC_RULE)
        d = self.request("set_topic", room_id=room_id, topic=topic)
        return d.addCallback(self._applied)

    def set_role(self, room_id: int, user_id: int, role: str) -> Deferred[Payload]:
        """
        Make a member of a room we own a moderator (C{role} C{"moderator"})
        or a plain member again (C{"member"}).  The server tells the others
        with C{member_role}, and us only C{ok}: the reply changes the role
        in the state.
        """
        d = self.request("set_role", room_id=room_id, user_id=user_id, role=role)

        def done(reply: Payload) -> Payload:
            self.state.set_role(room_id, user_id, role)
            return reply

        return d.addCallback(done)

    def kick(self, room_id: int, user_id: int, ban: bool = False) -> Deferred[Payload]:
        """
        Remove a member from a room; with C{ban}, keep them out until
        L{unban}.  They leave the member list with the C{someone_outroom}
        the server pushes us too; a ban is remembered in the state
        (L{ClientState.bans}), so that it can be lifted later.
        """
        room = self.state.rooms.get(room_id)
        member = room.members.get(user_id) if room is not None else None
        user = User(user_id, member.username if member is not None else "?")
        d = self.request("kick_from_room", room_id=room_id, user_id=user_id, ban=ban)

        def done(reply: Payload) -> Payload:
            if ban:
                self.state.note_ban(room_id, user)
            return reply

        return d.addCallback(done)

    def unban(self, room_id: int, user_id: int) -> Deferred[Payload]:
        """
        Let a user we banned join the room again.  Once lifted, or found
        lifted already (C{not_allowed} while we still moderate the room
        means they are not banned), the ban is forgotten.
        """
        d = self.request("unban_from_room", room_id=room_id, user_id=user_id)

        def done(reply: Payload) -> Payload:
            self.state.forget_ban(room_id, user_id)
            return reply

        def failed(failure: Failure) -> Failure:
            error = failure.value
            room = self.state.rooms.get(room_id)
            if (
                isinstance(error, ChatError)
                and error.code == wire.NOT_ALLOWED
                and room is not None
                and room.moderated_by(self.state.me)
            ):
                self.state.forget_ban(room_id, user_id)
            return failure

        return d.addCallbacks(done, failed)

    def search(
        self,
        query: str,
        key: Key | None = None,
        before: int | None = None,
        limit: int = SEARCH_PAGE,
    ) -> Deferred[SearchPage]:
        """
        Search our messages (PROTOCOL.md section 11).

        What is found is not added to the conversations held: their
        timelines hold one contiguous part of each conversation, and a
        match may lie anywhere in its past (L{load_around} shows it).

        @param key: the conversation to search, or L{None} for all of ours.
        @param before: for a later page, the oldest message id found so far.
        @return: fires with the matches, newest first; fails with
            L{ChatError} or L{Disconnected}.
        """
        fields: dict[str, Any] = {"query": query, "limit": limit}
        if key is not None:
            fields.update(target_type=key[0], target_id=key[1])
        if before is not None:
            fields["before"] = before
        return self.request("search", **fields).addCallback(SearchPage.from_payload)

    # Conversations.

    def view(self, key: Key | None) -> None:
        """
        Show conversation C{key} (or none): load its newest page the first
        time, and tell the server it is read.
        """
        self.state.set_viewed(key)
        if key is None or not self.state.knows(key):
            return
        if self.state.conversation(key).opened:
            self._mark_read(key)
        else:
            self.load_latest(key)

    def load_latest(self, key: Key) -> None:
        """
        Fetch the newest page of a conversation: the first time it is
        viewed; again after a reconnect, so that edits, deletions and
        reactions made while we were away replace the held copies
        (C{history after} brings only new messages); and, for a detached
        conversation, instead of its window, which attaches it again.
        """
        if key in self._loading_latest or not self.online:
            return
        self._loading_latest.add(key)
        d = self.request("history", target_type=key[0], target_id=key[1], limit=PAGE_SIZE)

        def loaded(page: Payload) -> None:
            self._loading_latest.discard(key)
            self.state.apply_history(page, "latest")
            if self.state.viewed == key:
                self._mark_read(key)

        def failed(failure: Failure) -> None:
            self._loading_latest.discard(key)
            failure.trap(ChatError, Disconnected)
            if failure.check(ChatError):
                self.state.notice(failure.getErrorMessage())

        d.addCallbacks(loaded, failed)

    def load_older(self, key: Key) -> None:
        """
        Fetch the page of messages before the oldest one held, if any.
        """
        conversation = self.state.conversation(key)
        if not conversation.opened:
            self.load_latest(key)
            return
        first = conversation.first_id
        if conversation.loading_older or not conversation.has_older or first is None:
            return
        if not self.online:
            return
        self.state.set_loading_older(key, True)
        generation = conversation.generation
        d = self.request(
            "history", target_type=key[0], target_id=key[1], before=first, limit=PAGE_SIZE
        )

        def loaded(page: Payload) -> None:
            if self._current(key, generation):
                self.state.apply_history(page, "before")

        def failed(failure: Failure) -> None:
            if self._current(key, generation):
                self.state.set_loading_older(key, False)
            failure.trap(ChatError, Disconnected)

        d.addCallbacks(loaded, failed)

    def load_newer(self, key: Key) -> None:
        """
        Fetch the page of messages after the newest one held, if the
        conversation is detached; the last such page attaches it again.
        """
        conversation = self.state.conversation(key)
        last = conversation.last_id
        if conversation.loading_newer or not conversation.has_newer or last is None:
            return
        if not self.online:
            return
        self.state.set_loading_newer(key, True)
        generation = conversation.generation
        d = self.request(
            "history", target_type=key[0], target_id=key[1], after=last, limit=PAGE_SIZE
        )

        def loaded(page: Payload) -> None:
            if not self._current(key, generation):
                return
            self.state.apply_history(page, "after")
            if self.state.viewed == key:
                self._mark_read(key)

        def failed(failure: Failure) -> None:
            if self._current(key, generation):
                self.state.set_loading_newer(key, False)
            failure.trap(ChatError, Disconnected)

        d.addCallbacks(loaded, failed)

    def load_around(self, key: Key, message_id: int) -> Deferred[bool]:
        """
        Hold the messages around C{message_id}, far back in conversation
        C{key}: it and the L{AROUND_PAGE} - 1 before it, and the
        L{AROUND_PAGE} after it, in place of what is held (the conversation
        is detached), or with it if the two overlap.

        @return: fires with whether the message is held now (it is not when
            the server no longer shows it to us: nothing changed then);
            fails with L{ChatError} or L{Disconnected}.
        """
        return Deferred.fromCoroutine(self._load_around(key, message_id))

    async def _load_around(self, key: Key, message_id: int) -> bool:
        target = {"target_type": key[0], "target_id": key[1], "limit": AROUND_PAGE}
        pages = gatherResults(
            [
                self.request("history", before=message_id + 1, **target),
                self.request("history", after=message_id, **target),
            ],
            consumeErrors=True,
        )
        try:
            older, newer = await pages
        except FirstError as e:
            e.subFailure.raiseException()
        if not any(int(m["id"]) == message_id for m in older.get("messages", ())):
            return False
        self.state.apply_window(older, newer)
        return self.state.conversation(key).holds(message_id)

    def _current(self, key: Key, generation: int) -> bool:
        """
        @return: whether what conversation C{key} holds is still what it
            held at C{generation}: a page asked for then still fits.
        """
        return self.state.conversation(key).generation == generation

    def _refresh(self, key: Key) -> None:
        """
        Fetch what a held conversation missed.
        """
        conversation = self.state.conversation(key)
        last = conversation.last_id
        if last is None:
            return
        generation = conversation.generation
        d = self.request("history", target_type=key[0], target_id=key[1], after=last)

        def loaded(page: Payload) -> None:
            if self._current(key, generation):
                self.state.apply_history(page, "after")

        d.addCallback(loaded)
        d.addErrback(lambda failure: failure.trap(ChatError, Disconnected))

    def _mark_read(self, key: Key) -> None:
        conversation = self.state.conversation(key)
        last = conversation.last_id
        if last is None or last <= conversation.read_up_to or not self.online:
            return
        if conversation.detached:
            return  # the messages after its window are not read
        before = conversation.read_up_to
        self.state.set_read_up_to(key, last)
        d = self.request("mark_read", target_type=key[0], target_id=key[1], message_id=last)

        def failed(failure: Failure) -> None:
            failure.trap(ChatError, Disconnected)
            if self.state.conversation(key).read_up_to == last:
                self.state.set_read_up_to(key, before)

        d.addErrback(failed)

    # Sending.

    def send(self, key: Key, text: str, reply_to: Message | None = None) -> PendingMessage:
        """
        Send a message, perhaps answering C{reply_to}.  It shows as pending
        at once, and goes out now or, when offline, as soon as the session
        is back; a detached conversation first loads its newest page again,
        so that the message shows after it.

        @raise ValueError: when C{text} breaks the rules of PROTOCOL.md
            section 4.
        """
        if not valid_message(text):
            raise ValueError(texts.MESSAGE_RULE)
        self.stop_typing()
        quote = None if reply_to is None else Quote.of(reply_to)
        pending = self.state.add_pending(key, text, self._new_message_id(), quote)
        self._pump_outbox()
        return pending

    def _pump_outbox(self) -> None:
        protocol = self._protocol
        if protocol is None or not self._ready:
            return
        for pending in self.state.outbox():
            if pending.client_msg_id in self._in_flight:
                continue
            if self.state.conversation(pending.key).detached:
                # Its reply comes after the newest page: the message, beyond
                # the window otherwise, is inserted after that page.
                self.load_latest(pending.key)
            self._in_flight.add(pending.client_msg_id)
            kind, target = pending.key
            fields: dict[str, Any] = {}
            if pending.file is not None:
                # A file message: its caption goes only when there is one.
                fields["file_id"] = pending.file.file_id
                if pending.text:
                    fields["message"] = pending.text
            else:
                fields["message"] = pending.text
            d = protocol.request(
                "send_message",
                target_type=kind,
                target_id=target,
                client_msg_id=pending.client_msg_id,
                reply_to=None if pending.reply_to is None else pending.reply_to.id,
                **fields,
            )
            d.addCallbacks(
                self._sent, self._not_sent, callbackArgs=(pending,), errbackArgs=(pending,)
            )

    def _sent(self, reply: Payload, pending: PendingMessage) -> None:
        self._in_flight.discard(pending.client_msg_id)
        self.state.apply_reply(reply)

    def _not_sent(self, failure: Failure, pending: PendingMessage) -> None:
        self._in_flight.discard(pending.client_msg_id)
        failure.trap(ChatError, Disconnected)
        if failure.check(Disconnected):
            return  # it stays pending, and goes out again after the reconnect
        error = cast(ChatError, failure.value)
        if error.code == wire.RATE_LIMITED:
            if self._resend_later is None or not self._resend_later.active():
                self._resend_later = self._clock.callLater(RATE_LIMIT_PAUSE, self._pump_outbox)
            return
        sentence = error.message
        if pending.file is not None:
            sentence = texts.file_error(error.code) or sentence
        self.state.fail_pending(pending.client_msg_id, sentence)

    # Files (PROTOCOL.md section 14).

    def send_file(
        self,
        key: Key,
        path: str | None = None,
        data: bytes | None = None,
        name: str | None = None,
        caption: str = "",
        reply_to: Message | None = None,
    ) -> PendingMessage:
        """
        Send a file to conversation C{key}, perhaps with a caption and
        answering C{reply_to}.  It shows at once as a pending message whose
        file tells how far its upload got; the upload starts now or, when
        L{MAX_UPLOADS} are running or the session is offline, as soon as it
        can (a connection lost meanwhile starts it again from the start,
        its upload being gone with the connection).  Once the server stored
        the file, the message goes out like any other, and the stored
        message takes its place.

        @param path: the local file to send; or
        @param data: its content, held in memory (a pasted image).
        @param name: the name it gets; by default the last part of C{path}.
        @raise ValueError: with a sentence for people, when the caption
            breaks the rules of section 4, or the file cannot be read or is
            empty.
        """
        if caption and not valid_message(caption):
            raise ValueError(texts.MESSAGE_RULE)
        if data is not None:
            size = len(data)
        else:
            if path is None:
                raise TypeError("give a path or data")
            try:
                size = os.stat(path).st_size
            except OSError as e:
                raise ValueError(texts.file_unreadable(path, e.strerror or str(e))) from e
        if size <= 0:
            raise ValueError(texts.FILE_EMPTY)
        shown = wire_name(name or os.path.basename(path or ""))
        file = PendingFile(shown, size, guess_mime(shown))
        quote = None if reply_to is None else Quote.of(reply_to)
        pending = self.state.add_pending(key, caption, self._new_message_id(), quote, file)
        self._sources[pending.client_msg_id] = FileSource(path, data)
        self._upload_queue.append(pending.client_msg_id)
        self._start_uploads()
        return pending

    def cancel_file(self, client_msg_id: str) -> bool:
        """
        Stop sending a file message: its upload stops and it leaves the
        timeline; a refused one is dismissed.  A message whose
        C{send_message} is on its way already cannot be called back.

        @return: whether it was stopped.
        """
        pending = self.state.pending(client_msg_id)
        if pending is None or pending.file is None or client_msg_id in self._in_flight:
            return False
        upload = self._uploads.pop(client_msg_id, None)
        if upload is not None:
            upload.cancel()
        if client_msg_id in self._upload_queue:
            self._upload_queue.remove(client_msg_id)
        self._sources.pop(client_msg_id, None)
        self.state.remove_pending(client_msg_id)
        self._start_uploads()
        return True

    def retry_file(self, client_msg_id: str) -> None:
        """
        Try again to send a file message that failed: its upload starts
        again (or, if its file was stored, the message goes out again).
        """
        pending = self.state.pending(client_msg_id)
        if pending is None or pending.file is None or pending.error is None:
            return
        if pending.file.file_id is not None:
            self.state.update_pending(client_msg_id, pending.file)
            self._pump_outbox()
            return
        if client_msg_id not in self._sources:
            return
        self.state.update_pending(client_msg_id, replace(pending.file, sent=0, uploading=False))
        self._upload_queue.append(client_msg_id)
        self._start_uploads()

    def _start_uploads(self) -> None:
        """
        Start the uploads waiting their turn, while fewer than
        L{MAX_UPLOADS} run and the session is online.
        """
        while self.online and self._upload_queue and len(self._uploads) < MAX_UPLOADS:
            client_msg_id = self._upload_queue.pop(0)
            pending = self.state.pending(client_msg_id)
            source = self._sources.get(client_msg_id)
            if pending is None or pending.file is None or source is None:
                self._sources.pop(client_msg_id, None)
                continue
            file = replace(pending.file, sent=0, uploading=True)
            self.state.update_pending(client_msg_id, file)
            upload = Upload(
                self.request,
                path=source.path,
                data=source.data,
                name=file.name,
                mime=file.mime,
                progress=self._upload_progress(client_msg_id),
                clock=self._clock,
            )
            self._uploads[client_msg_id] = upload
            upload.start().addCallbacks(
                self._uploaded,
                self._upload_failed,
                callbackArgs=(client_msg_id, upload),
                errbackArgs=(client_msg_id, upload),
            ).addErrback(self._bug)
            if client_msg_id in self._upload_queue:
                break  # the connection is going: it waits for the next one

    def _upload_progress(self, client_msg_id: str) -> Callable[[int, int], None]:
        """
        @return: what tells the state how far an upload got: in steps of a
            whole percent, so that a big file does not redraw its row at
            each of its hundreds of chunks.
        """
        shown = [-1]

        def progress(done: int, total: int) -> None:
            step = texts.percent(done, total)
            pending = self.state.pending(client_msg_id)
            if step != shown[0] and pending is not None and pending.file is not None:
                shown[0] = step
                self.state.update_pending(client_msg_id, replace(pending.file, sent=done))

        return progress

    def _uploaded(self, stored: File, client_msg_id: str, upload: Upload) -> None:
        if self._uploads.get(client_msg_id) is upload:
            del self._uploads[client_msg_id]
        self._sources.pop(client_msg_id, None)
        pending = self.state.pending(client_msg_id)
        if pending is not None and pending.file is not None:
            file = replace(pending.file, sent=pending.file.size, uploading=False, file_id=stored.id)
            self.state.update_pending(client_msg_id, file)
            self._pump_outbox()
        self._start_uploads()

    def _upload_failed(self, failure: Failure, client_msg_id: str, upload: Upload) -> None:
        failure.trap(TransferFailed, TransferCancelled)
        if self._uploads.get(client_msg_id) is not upload:
            return  # cancelled, or the session ended
        del self._uploads[client_msg_id]
        pending = self.state.pending(client_msg_id)
        if pending is not None and pending.file is not None:
            file = replace(pending.file, sent=0, uploading=False)
            if failure.check(TransferOffline):
                # Its upload went with the connection: it starts again, from
                # the start, once the session is back (_synchronise).
                self.state.update_pending(client_msg_id, file)
                self._upload_queue.insert(0, client_msg_id)
                return
            self.state.update_pending(client_msg_id, file, failure.getErrorMessage())
        self._start_uploads()

    def _forget_uploads(self) -> None:
        """
        The session ended: no file is sent any more.
        """
        uploads = list(self._uploads.values())
        self._uploads.clear()
        self._upload_queue.clear()
        self._sources.clear()
        for upload in uploads:
            upload.cancel(abandon=False)  # the connection goes, and its uploads

    # Version 2 messages (PROTOCOL.md section 10).

    def edit(self, message_id: int, text: str) -> Deferred[Payload]:
        """
        Replace the text of one of our messages.

        @raise ValueError: when C{text} breaks the rules of section 4.
        """
        if not valid_message(text):
            raise ValueError(texts.MESSAGE_RULE)
        d = self.request("edit_message", message_id=message_id, message=text)
        return d.addCallback(self._applied)

    def delete(self, message_id: int) -> Deferred[Payload]:
        """
        Delete a message: it becomes a tombstone for everyone.
        """
        return self.request("delete_message", message_id=message_id).addCallback(self._applied)

    def react(self, message_id: int, emoji: str, on: bool) -> Deferred[Payload]:
        """
        Add (C{on}) or take back our C{emoji} on a message.
        """
        d = self.request("react", message_id=message_id, emoji=emoji, on=on)
        return d.addCallback(self._applied)

    def typed(self, key: Key) -> None:
        """
        The user typed in the box of conversation C{key}: tell the others,
        at most every L{TYPING_EVERY} seconds, and that they stopped once no
        key was struck for L{TYPING_IDLE} seconds.
        """
        if self._typing_to != key:
            self.stop_typing()
        now = self._clock.seconds()
        if self._typing_to is None or now - self._typing_since >= TYPING_EVERY:
            self._tell_typing(key, True)
            self._typing_to, self._typing_since = key, now
        if self._typing_idle is not None and self._typing_idle.active():
            self._typing_idle.reset(TYPING_IDLE)
        else:
            self._typing_idle = self._clock.callLater(TYPING_IDLE, self.stop_typing)

    def stop_typing(self) -> None:
        """
        The user stopped typing (sent, emptied the box, left the
        conversation): tell the others, if they were told otherwise.
        """
        if self._typing_idle is not None and self._typing_idle.active():
            self._typing_idle.cancel()
        self._typing_idle = None
        key, self._typing_to = self._typing_to, None
        if key is not None:
            self._tell_typing(key, False)

    def _forget_typing(self) -> None:
        """
        The session ended: nobody's typing is shown or told any more.
        """
        self._typing_to = None
        for delayed in [self._typing_idle, *self._typing_shown.values()]:
            if delayed is not None and delayed.active():
                delayed.cancel()
        self._typing_idle = None
        self._typing_shown.clear()

    def _tell_typing(self, key: Key, typing: bool) -> None:
        if self.online and self.state.knows(key):
            d = self.request("typing", target_type=key[0], target_id=key[1], typing=typing)
            d.addErrback(lambda failure: failure.trap(ChatError, Disconnected))

    def _bug(self, failure: Failure) -> None:
        self.log.failure("The chat session failed", failure)
