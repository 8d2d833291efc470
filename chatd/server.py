"""
The rules of chatd: one method per request type of PROTOCOL.md sections 5
and 10.

L{ChatServer} knows neither bytes nor SQL.  Its route table
(L{ChatServer.routes}) names, for each request type, the parser of its
fields (L{chatd.requests}) and its handler.  A handler gets the parsed
request and the logged-in L{User} (or, for the requests allowed before
login, the L{Session}), checks the rules against the in-memory
L{Directory}, changes the L{Store}, and pushes to other users through
L{Sessions}.  It returns its reply payload (or a list: the reply, then
pushes that must follow it at once), or a Deferred of it, and raises
L{ChatError} for anything the client got wrong.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Container, Iterable
from inspect import iscoroutine
from typing import Final, TypeVar

from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatd import requests, wire
from chatd.deployment import ALONE, Deployment
from chatd.directory import MEMBER, OWNER, Directory, Room
from chatd.files import Transfers, file_object
from chatd.mentions import mentioned_names
from chatd.passwords import Passwords
from chatd.requests import Target
from chatd.routes import Route, User
from chatd.sessions import Session, Sessions
from chatd.store import Store, StoredMessage
from chatd.wire import PRIVATE, ROOM, ChatError, Payload

T = TypeVar("T")
Reply = Payload | list[Payload] | wire.Spliced

MAX_ROOM_LIST: Final = 100

#: The kinds of message their sender may edit and delete.
EDITABLE: Final = frozenset({"text", "file"})


class LoginThrottle:
    """
    Failed logins per username: after C{limit} failures within C{window}
    seconds, every attempt for that name is refused until the window ends.
    """

    def __init__(self, clock: IReactorTime, limit: int = 5, window: float = 60.0) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        # lower-cased username -> [start of its window, failures in it]
        self._failures: dict[str, list[float]] = {}

    def check(self, username: str) -> None:
        """
        @raise ChatError: C{rate_limited} while C{username} is throttled.
        """
        entry = self._failures.get(username.lower())
        if (
            entry is not None
            and entry[1] >= self._limit
            and self._clock.seconds() - entry[0] < self._window
        ):
            raise ChatError(wire.RATE_LIMITED, "Too many failed logins; try again later.")

    def failed(self, username: str) -> None:
        """
        Count a failed login for C{username}.
        """
        now = self._clock.seconds()
        key = username.lower()
        entry = self._failures.get(key)
        if entry is None or now - entry[0] >= self._window:
            if len(self._failures) >= 4096:
                self._forget_before(now - self._window)
            entry = self._failures[key] = [now, 0]
        entry[1] += 1

    def unlock(self, username: str) -> bool:
        """
        Lift the throttle of C{username} (the operator's C{chatd-admin
        unlock}).

        @return: whether it was throttled.
        """
        entry = self._failures.pop(username.lower(), None)
        return (
            entry is not None
            and entry[1] >= self._limit
            and self._clock.seconds() - entry[0] < self._window
        )

    def _forget_before(self, moment: float) -> None:
        for key in [k for k, (start, _) in self._failures.items() if start <= moment]:
            del self._failures[key]


class TypingThrottle:
    """
    At most one C{typing} push a second per user and conversation.
    """

    def __init__(self, clock: IReactorTime, interval: float = 1.0) -> None:
        self._clock = clock
        self._interval = interval
        # user id -> conversation -> when its latest push went out
        self._pushed: dict[int, dict[Target, float]] = {}

    def allow(self, user_id: int, target: Target) -> bool:
        """
        @return: whether C{user_id} may push a C{typing} to C{target} now;
            if so, it counts as pushed.
        """
        now = self._clock.seconds()
        pushed = self._pushed.setdefault(user_id, {})
        if now - pushed.get(target, -self._interval) < self._interval:
            return False
        pushed[target] = now
        return True

    def forget(self, user_id: int) -> None:
        """
        C{user_id} went offline.
        """
        self._pushed.pop(user_id, None)


#: How many messages L{ChatServer.catch_up} reads at a time.
CATCH_UP_PAGE: Final = 500

#: How many resumes run at once (see L{ChatServer.resume}).
RESUMES_AT_ONCE: Final = 2


class ChatServer:
    """
    The request handlers, and what happens when a session ends.
    """

    log = Logger()

    def __init__(
        self,
        store: Store,
        passwords: Passwords,
        sessions: Sessions,
        directory: Directory,
        transfers: Transfers,
        clock: IReactorTime,
    ) -> None:
        self._store = store
        self._transfers = transfers
        self._passwords = passwords
        self.sessions = sessions
        sessions.presence = self._announce_presence
        self._directory = directory
        #: The other processes of the deployment, told of what changes here.
        self.deployment: Deployment = ALONE
        #: The failed-login throttle of PROTOCOL.md section 8.
        self.throttle = LoginThrottle(clock)
        self._typing = TypingThrottle(clock)
        #: Resumes in progress at once: a whole server's clients resuming
        #: after a restart queue here, so that messages are not stuck
        #: behind thousands of login_info reads.
        self._resuming = DeferredSemaphore(RESUMES_AT_ONCE)
        #: Every request type: its parser, its handler, its scheduling.
        self.routes: dict[str, Route] = {
            "register": Route(requests.Register.parse, self.register, before_login=True),
            "login": Route(requests.Login.parse, self.login, before_login=True, holds_pushes=True),
            "resume": Route(
                requests.Resume.parse, self.resume, before_login=True, holds_pushes=True
            ),
            "change_password": Route(requests.ChangePassword.parse, self.change_password),
            "ping": Route(requests.NoFields.parse, self.ping, before_login=True),
            "logout": Route(requests.NoFields.parse, self.logout, closes=True),
            "send_message": Route(requests.SendMessage.parse, self.send_message, concurrent=True),
            "history": Route(requests.History.parse, self.history),
            "mark_read": Route(requests.MarkRead.parse, self.mark_read),
            "add_friend": Route(requests.AddFriend.parse, self.add_friend),
            "resolve_friend_request": Route(
                requests.ResolveFriendRequest.parse, self.resolve_friend_request
            ),
            "remove_friend": Route(requests.RemoveFriend.parse, self.remove_friend),
            "create_room": Route(requests.CreateRoom.parse, self.create_room),
            "join_room": Route(requests.JoinRoom.parse, self.join_room),
            "quit_room": Route(requests.QuitRoom.parse, self.quit_room),
            "add_friend_to_room": Route(requests.RoomMember.parse, self.add_friend_to_room),
            "list_rooms": Route(requests.ListRooms.parse, self.list_rooms),
            "edit_message": Route(requests.EditMessage.parse, self.edit_message),
            "delete_message": Route(requests.DeleteMessage.parse, self.delete_message),
            "react": Route(requests.React.parse, self.react),
            "typing": Route(requests.Typing.parse, self.typing),
            "search": Route(requests.Search.parse, self.search),
            "set_topic": Route(requests.SetTopic.parse, self.set_topic),
            "set_role": Route(requests.SetRole.parse, self.set_role),
            "kick_from_room": Route(requests.KickFromRoom.parse, self.kick_from_room),
            "unban_from_room": Route(requests.RoomMember.parse, self.unban_from_room),
            "upload_start": Route(
                requests.UploadStart.parse, transfers.upload_start, on_connection=True
            ),
            "upload_chunk": Route(
                requests.UploadChunk.parse,
                transfers.upload_chunk,
                on_connection=True,
                transfer_cost=requests.UploadChunk.cost,
            ),
            "upload_finish": Route(
                requests.UploadFinish.parse, transfers.upload_finish, on_connection=True
            ),
            "download": Route(
                requests.Download.parse,
                transfers.download,
                on_connection=True,
                transfer_cost=requests.Download.cost,
            ),
        }

    def dispatch(self, session: Session, request: Payload) -> Reply | Deferred[Reply]:
        """
        Handle one request: the login gate, then its fields, then its rules.

        @return: the reply, or a Deferred of it.
        @raise ChatError: what the client got wrong.
        """
        kind = request["type"]
        route = self.routes.get(kind)
        user_id = session.user_id
        if user_id is None:
            if route is None or not route.before_login:
                raise ChatError(wire.NOT_AUTHENTICATED)
        elif route is None:
            raise ChatError(wire.UNKNOWN_TYPE, f"Unknown request type {kind!r}.")
        parsed = route.parse(request)
        if route.before_login or route.on_connection:
            result = route.handler(session, parsed)
        else:
            assert user_id is not None and session.username is not None
            caller = User(user_id, session.username, session.token_hash)
            if route.closes:
                self._logged_out(session)
            result = route.handler(caller, parsed)
        if iscoroutine(result):
            return Deferred.fromCoroutine(result)
        return result

    def connected(self, session: Session) -> None:
        """
        A connection opened.
        """
        self.sessions.opened(session)

    def disconnected(self, session: Session) -> None:
        """
        A connection closed: its user goes offline unless a newer session
        of theirs replaced it.
        """
        self.sessions.closed(session)
        self._transfers.disconnected(session)
        self._logged_out(session)

    def _logged_out(self, session: Session) -> None:
        user_id = session.user_id
        if user_id is not None and self.sessions.detach(session):
            self.log.info("User {user_id} is offline", user_id=user_id)
            self._store.user_seen(user_id).addErrback(self._seen_not_stored, user_id)
            self._typing.forget(user_id)

    def _seen_not_stored(self, failure: Failure, user_id: int) -> None:
        # Only what chatd-admin shows as "last seen" is lost.
        self.log.warn(
            "Could not store when user {user_id} was last seen: {why}",
            user_id=user_id,
            why=failure.getErrorMessage(),
        )

    # Objects of PROTOCOL.md section 3.

    def _user(self, user_id: int) -> Payload:
        return {"id": user_id, "username": self._directory.usernames[user_id]}

    def _friend(self, user_id: int) -> Payload:
        return {
            "id": user_id,
            "username": self._directory.usernames[user_id],
            "online": self.sessions.online(user_id),
        }

    def _member(self, room: Room, user_id: int) -> Payload:
        member = self._friend(user_id)
        member["role"] = room.role(user_id)
        return member

    def _room(self, room: Room) -> Payload:
        members = sorted(room.members.items(), key=lambda item: item[1])
        return {
            "id": room.id,
            "name": room.name,
            "topic": room.topic,
            "members": [self._member(room, user_id) for user_id, _ in members],
        }

    def _message(self, message: StoredMessage) -> Payload:
        usernames = self._directory.usernames
        payload: Payload = {
            "id": message.id,
            "client_msg_id": message.client_msg_id,
            "sender_id": message.sender_id,
            "sender_name": usernames.get(message.sender_id),
            "target_type": message.target_type,
            "target_id": message.target_id,
        }
        if message.target_type == ROOM:
            payload["room_name"] = self._directory.rooms[message.target_id].name
        quote = message.reply_to
        payload["kind"] = message.kind
        payload["message"] = message.body
        payload["time"] = message.time
        payload["edited_at"] = message.edited_at
        payload["deleted"] = message.deleted
        payload["reply_to"] = quote and {
            "id": quote.id,
            "sender_id": quote.sender_id,
            "sender_name": usernames.get(quote.sender_id),
            "message": quote.body,
            "deleted": quote.deleted,
        }
        payload["mentions"] = list(message.mentions)
        payload["reactions"] = _reactions(message)
        payload["file"] = message.file and file_object(message.file)
        return payload

    # Presence.

    def _announce_presence(self, user_id: int, online: bool) -> None:
        """
        Tell the friends and room mates of C{user_id} who are logged in
        here that they came online or went offline (every process of a
        deployment tells its own).
        """
        directory = self._directory
        if user_id not in directory.usernames:
            return
        self.sessions.push(
            directory.friends(user_id),
            {
                "type": "friend_on_off_line",
                "user_id": user_id,
                "username": directory.usernames[user_id],
                "online": online,
            },
            relay=False,
        )
        for room_id, others in directory.co_members(user_id):
            self.sessions.push(
                others,
                {
                    "type": "room_user_on_off_line",
                    "room_id": room_id,
                    "user_id": user_id,
                    "online": online,
                },
                relay=False,
            )

    # Accounts.

    async def register(self, session: Session, request: requests.Register) -> Reply:
        """
        Create an account.  Registering does not log in.
        """
        username = request.username
        if self._directory.user_id(username) is not None:
            raise ChatError(wire.USERNAME_TAKEN)
        password_hash = await self._passwords.hash(request.password)
        user_id = await self._store.add_user(username, password_hash)
        self._directory.add_user(user_id, username)
        self.deployment.user_changed(user_id)
        self.log.info("User {user_id} registered", user_id=user_id)
        return {"type": "register_successful", "user": self._user(user_id)}

    async def login(self, session: Session, request: requests.Login) -> Reply:
        """
        Log in, replacing the account's older session, and follow the reply
        with C{login_info}.
        """
        if session.user_id is not None:
            raise ChatError(wire.ALREADY_AUTHENTICATED)
        username = request.username
        self.throttle.check(username)
        credentials = None
        if wire.valid_name(username):
            credentials = await self._store.credentials(username)
        verdict = await self._passwords.verify(
            credentials.password_hash if credentials else None, request.password
        )
        if credentials is None or not verdict.ok:
            self._login_failed(username)
            raise ChatError(wire.LOGIN_FAILED)
        user_id = credentials.id
        self._check_enabled(user_id)
        if verdict.new_hash is not None:
            await self._store.set_password_hash(user_id, verdict.new_hash)
        token, token_hash = _new_token()
        await self._store.add_token(user_id, token_hash)
        self.log.info("User {user_id} logged in", user_id=user_id)
        return await self._start_session(session, user_id, token, token_hash)

    async def resume(self, session: Session, request: requests.Resume) -> Reply:
        """
        Log in again with a session token instead of a password (PROTOCOL.md
        section 13): no password hash to compute, everything else as
        L{login}.  The token stays the same.
        """
        if session.user_id is not None:
            raise ChatError(wire.ALREADY_AUTHENTICATED)
        token_hash = _token_hash(request.token)
        await self._resuming.acquire()
        try:
            user_id = await self._store.use_token(token_hash)
            self.log.info("User {user_id} resumed a session", user_id=user_id)
            return await self._start_session(session, user_id, request.token, token_hash)
        finally:
            self._resuming.release()

    async def _start_session(
        self, session: Session, user_id: int, token: str, token_hash: bytes
    ) -> Reply:
        """
        Log C{session} in as C{user_id} with the token C{token}, replacing
        the account's older session (which is kicked; presence stays on).

        @return: C{login_successful}, then C{login_info}.
        """
        await self._know_user(user_id)
        reply: Payload = {"type": "login_successful", "user": self._user(user_id), "token": token}
        if not session.connected:
            return reply
        # Checked again here: the operator may have disabled the account
        # while its login was on its way.
        self._check_enabled(user_id)
        session.token_hash = token_hash
        older = self.sessions.attach(session, user_id, self._directory.usernames[user_id])
        if older is not None:
            older.kick(wire.LOGGED_IN_ELSEWHERE)
        return [reply, await self._login_info(user_id)]

    # Another process of the deployment may have made a user or a room
    # whose news has not come yet: a name not found is looked for in the
    # database too.

    async def _find_user(self, name: str) -> int | None:
        user_id = self._directory.user_id(name)
        if user_id is None and self.deployment is not ALONE:
            user_id = await self._store.named("users", name)
            if user_id is not None:
                await self._know_user(user_id)
        return user_id

    async def _find_room(self, name: str) -> int | None:
        room_id = self._directory.room_id(name)
        if room_id is None and self.deployment is not ALONE:
            room_id = await self._store.named("rooms", name)
            if room_id is not None:
                self._directory.refresh_room(room_id, await self._store.load_room(room_id))
                for member in self._directory.rooms[room_id].members:
                    await self._know_user(member)
        return room_id

    async def _know_user(self, user_id: int) -> None:
        if user_id not in self._directory.usernames:
            self._directory.refresh_user(user_id, await self._store.load_user(user_id))

    def _check_enabled(self, user_id: int) -> None:
        if user_id in self._directory.disabled:
            raise ChatError(wire.ACCOUNT_DISABLED)

    def _login_failed(self, username: str) -> None:
        self.throttle.failed(username)
        self.deployment.login_failed(username)

    def unlock(self, username: str) -> bool:
        """
        Lift the failed-login throttle of C{username} on every process.

        @return: whether it was throttled here.
        """
        self.deployment.throttle_lifted(username)
        return self.throttle.unlock(username)

    async def change_password(self, user: User, request: requests.ChangePassword) -> Reply:
        """
        Replace one's password, knowing the current one (a wrong one counts
        as a failed login), ending every session token of the account: the
        reply carries a new one for this session.
        """
        self.throttle.check(user.name)
        credentials = await self._store.credentials(user.name)
        verdict = await self._passwords.verify(
            credentials.password_hash if credentials else None, request.old_password
        )
        if credentials is None or not verdict.ok:
            self._login_failed(user.name)
            raise ChatError(wire.LOGIN_FAILED, "The current password is wrong.")
        password_hash = await self._passwords.hash(request.new_password)
        token, token_hash = _new_token()
        await self._store.change_password(user.id, password_hash, token_hash)
        session = self.sessions.current(user.id)
        if session is not None:
            session.token_hash = token_hash
        self.log.info("User {user_id} changed credentials; older tokens ended", user_id=user.id)
        return {"type": "password_changed", "token": token}

    async def _login_info(self, user_id: int) -> Payload:
        directory = self._directory
        friend_ids = sorted(directory.friends(user_id))
        rooms = {room_id: directory.rooms[room_id] for room_id in directory.rooms_of(user_id)}
        requests = await self._store.friend_requests(user_id)
        unread = await self._store.unread(
            user_id,
            friend_ids,
            {room_id: room.members[user_id] for room_id, room in rooms.items()},
        )
        return {
            "type": "login_info",
            "user": self._user(user_id),
            "friends": [self._friend(friend_id) for friend_id in friend_ids],
            "rooms": [self._room(rooms[room_id]) for room_id in sorted(rooms)],
            "friend_requests": [self._user(requester) for requester in requests],
            "unread": [
                {
                    "target_type": entry.target_type,
                    "target_id": entry.target_id,
                    "count": entry.count,
                    "mentions": entry.mentions,
                    "last_message_id": entry.last_message_id,
                }
                for entry in unread
            ],
        }

    async def logout(self, user: User, request: requests.NoFields) -> Reply:
        """
        Log out, ending the session's token: its route ends the session
        before this runs, and the protocol closes the connection after the
        reply.
        """
        if user.token_hash is not None:
            await self._store.end_token(user.token_hash)
        self.log.info("User {user_id} logged out", user_id=user.id)
        return {"type": "logout_successful"}

    def ping(self, session: Session, request: requests.NoFields) -> Reply:
        """
        Answer C{pong}: the client is alive.
        """
        return {"type": "pong"}

    # Messages.

    def _check_conversation(self, user_id: int, target: Target) -> None:
        """
        Check that C{user_id} may use the conversation C{target}.
        """
        target_id = target.id
        if target.type == PRIVATE:
            if target_id == user_id:
                raise ChatError(wire.INVALID_TARGET, "That is you.")
            if not self._directory.are_friends(user_id, target_id):
                if target_id in self._directory.usernames:
                    raise ChatError(wire.NOT_FRIENDS)
                raise ChatError(wire.NO_SUCH_USER)
        else:
            room = self._directory.rooms.get(target_id)
            if room is None:
                raise ChatError(wire.NO_SUCH_ROOM)
            if user_id not in room.members:
                raise ChatError(wire.NOT_IN_ROOM)

    def send_message(self, user: User, request: requests.SendMessage) -> Deferred[Reply]:
        """
        Store a message; after the commit, answer the sender with it and
        push it to the recipient or to the room's other members.
        """
        target = request.target
        self._check_conversation(user.id, target)
        readers: Container[int]
        if target.type == PRIVATE:
            readers, since = (target.id,), 0
        else:
            readers = members = self._directory.rooms[target.id].members
            since = members[user.id]
        d = self._store.add_message(
            user.id,
            target.type,
            target.id,
            request.message,
            request.client_msg_id,
            reply_to=request.reply_to,
            since=since,
            mentions=self._mentions(request.message, user.id, readers),
            file_id=request.file_id,
        )
        return d.addCallback(self._message_stored)

    def _mentions(self, text: str, sender_id: int, readers: Container[int]) -> tuple[int, ...]:
        """
        @return: the ids of the users C{text} mentions among C{readers}, but
            its sender, ascending.
        """
        if "@" not in text:
            return ()
        mentioned = {self._directory.user_id(name) for name in mentioned_names(text)}
        return tuple(
            sorted(
                user_id
                for user_id in mentioned
                if user_id is not None and user_id != sender_id and user_id in readers
            )
        )

    def _message_stored(self, result: tuple[StoredMessage, bool]) -> wire.Spliced:
        # The message is encoded once, for the reply and the push alike.
        stored, new = result
        reply = wire.Spliced("on_new_message", "message", wire.encode(self._message(stored)))
        if new:
            self._push_message(stored, reply)
        return reply

    def _push_message(
        self, stored: StoredMessage, push: wire.Spliced | None = None, to_sender: bool = False
    ) -> None:
        """
        Push a committed message to everyone who gets it but its sender.

        @param push: its C{on_new_message}, if already made.
        @param to_sender: push it to the sender too: a system message about
            what the sender did to a room they stay in (an invitation, a
            topic, a removal), which their reply does not carry and their
            timeline would otherwise miss.
        """
        recipients: Iterable[int]
        if stored.target_type == PRIVATE:
            recipients = (stored.target_id,)
        else:
            recipients = self._directory.rooms[stored.target_id].members
        if push is None:
            frame = wire.frame({"type": "on_new_message", "message": self._message(stored)})
        else:
            frame = push.frame()
        self.sessions.push(
            recipients, frame, stored.id, but=None if to_sender else stored.sender_id
        )

    async def catch_up(self, after: int, delivered: set[int]) -> int:
        """
        Push to the users logged in here the messages committed after
        C{after} that they did not get: those another process committed
        while the deployment's pushes could not reach this one
        (L{chatd.cluster}).

        @param delivered: the ids of the messages pushed here since, which
            are not pushed again.
        @return: how many messages were pushed.
        """
        pushed = 0
        while True:
            page = await self._store.messages_after(after, CATCH_UP_PAGE)
            for stored in page:
                if stored.id in delivered:
                    continue
                readers = [
                    reader
                    for reader in self._directory.readers(stored)
                    if reader != stored.sender_id
                ]
                payload = {"type": "on_new_message", "message": self._message(stored)}
                self.sessions.push(readers, payload, stored.id, relay=False)
                pushed += 1
            if len(page) < CATCH_UP_PAGE:
                return pushed
            after = page[-1].id

    def history(self, user: User, request: requests.History) -> Deferred[Reply]:
        """
        A page of a conversation's messages, oldest first.
        """
        target = request.target
        self._check_conversation(user.id, target)
        before, after, limit = request.before, request.after, request.limit
        if target.type == PRIVATE:
            d = self._store.private_history(user.id, target.id, before, after, limit)
        else:
            since = self._directory.rooms[target.id].members[user.id]
            d = self._store.room_history(target.id, since, before, after, limit)

        def page(result: tuple[list[StoredMessage], bool]) -> Reply:
            messages, has_more = result
            return {
                "type": "history",
                "target_type": target.type,
                "target_id": target.id,
                "messages": [self._message(message) for message in messages],
                "has_more": has_more,
            }

        return d.addCallback(page)

    def mark_read(self, user: User, request: requests.MarkRead) -> Deferred[Reply]:
        """
        Move the read marker of a conversation forward.
        """
        target = request.target
        self._check_conversation(user.id, target)
        d = self._store.mark_read(user.id, target.type, target.id, request.message_id)
        return d.addCallback(lambda _: {"type": "ok"})

    def search(self, user: User, request: requests.Search) -> Deferred[Reply]:
        """
        The newest messages the user may read, of all their conversations
        or of one, that contain every term of the query.
        """
        directory, target = self._directory, request.target
        friend_ids: Iterable[int] = ()
        rooms: dict[int, int] = {}
        if target is None:
            friend_ids = directory.friends(user.id)
            rooms = {r: directory.rooms[r].members[user.id] for r in directory.rooms_of(user.id)}
        else:
            self._check_conversation(user.id, target)
            if target.type == PRIVATE:
                friend_ids = (target.id,)
            else:
                rooms = {target.id: directory.rooms[target.id].members[user.id]}
        d = self._store.search(
            user.id, request.terms, friend_ids, rooms, request.before, request.limit
        )

        def results(result: tuple[list[StoredMessage], bool]) -> Reply:
            messages, has_more = result
            return {
                "type": "search_results",
                "messages": [self._message(message) for message in messages],
                "has_more": has_more,
            }

        return d.addCallback(results)

    # Version 2 messages (PROTOCOL.md section 10).

    async def _readable(self, user_id: int, message_id: int) -> StoredMessage:
        """
        @return: the message C{message_id} as stored now.
        @raise ChatError: C{no_such_message} unless it exists and C{user_id}
            may read it.
        """
        message = await self._store.message(message_id)
        if message is None or not self._directory.can_read(user_id, message):
            raise ChatError(wire.NO_SUCH_MESSAGE)
        return message

    def _push_to_readers(self, user_id: int, message: StoredMessage, payload: Payload) -> None:
        """
        Push C{payload}, about C{message}, to everyone online who may read
        it but C{user_id}.
        """
        readers = self._directory.readers(message)
        self.sessions.push([reader for reader in readers if reader != user_id], payload)

    async def edit_message(self, user: User, request: requests.EditMessage) -> Reply:
        """
        Replace the text of one's own message; its mentions are found again.
        """
        message = await self._readable(user.id, request.message_id)
        if message.sender_id != user.id or message.kind not in EDITABLE or message.deleted:
            raise ChatError(wire.NOT_ALLOWED, "Only its sender may edit a message.")
        if not request.message and message.kind != "file":
            raise ChatError(wire.INVALID_MESSAGE)
        readers = self._directory.readers(message)
        edited, changed = await self._store.edit_message(
            message.id, request.message, self._mentions(request.message, user.id, readers)
        )
        payload = {"type": "message_edited", "message": self._message(edited)}
        if changed:
            self._push_to_readers(user.id, edited, payload)
        return payload

    async def delete_message(self, user: User, request: requests.DeleteMessage) -> Reply:
        """
        Make a message a tombstone: one's own, or any in a room one owns.
        """
        message = await self._readable(user.id, request.message_id)
        if message.kind not in EDITABLE or message.deleted or not self._may_delete(user, message):
            raise ChatError(wire.NOT_ALLOWED, "You may not delete that message.")
        await self._store.delete_message(message.id)
        payload = {
            "type": "message_deleted",
            "target_type": message.target_type,
            "target_id": message.target_id,
            "message_id": message.id,
        }
        self._push_to_readers(user.id, message, payload)
        return payload

    def _may_delete(self, user: User, message: StoredMessage) -> bool:
        if message.sender_id == user.id:
            return True
        if message.target_type == ROOM:
            return self._directory.rooms[message.target_id].moderates(user.id)
        return False

    async def react(self, user: User, request: requests.React) -> Reply:
        """
        Add or remove one's reaction to a message.
        """
        message = await self._readable(user.id, request.message_id)
        reacted, changed = await self._store.react(message.id, user.id, request.emoji, request.on)
        payload = {
            "type": "reactions_changed",
            "target_type": reacted.target_type,
            "target_id": reacted.target_id,
            "message_id": reacted.id,
            "reactions": _reactions(reacted),
        }
        if changed:
            self._push_to_readers(user.id, reacted, payload)
        return payload

    def typing(self, user: User, request: requests.Typing) -> Reply:
        """
        Tell the others of a conversation that we started or stopped
        typing: at once, stored nowhere, at most once a second per
        conversation (extras are dropped).
        """
        target = request.target
        self._check_conversation(user.id, target)
        if self._typing.allow(user.id, target):
            payload: Payload = {
                "type": "typing",
                "target_type": target.type,
                "target_id": target.id,
                "user_id": user.id,
                "typing": request.typing,
            }
            if target.type == PRIVATE:
                self.sessions.push((target.id,), payload)
            else:
                members = self._directory.rooms[target.id].members
                self.sessions.push([m for m in members if m != user.id], payload)
        return {"type": "ok"}

    # Friends.

    def _check_user(self, user_id: int) -> None:
        if user_id not in self._directory.usernames:
            raise ChatError(wire.NO_SUCH_USER)

    async def add_friend(self, user: User, request: requests.AddFriend) -> Reply:
        """
        Ask someone to be our friend, or accept their request if they
        already asked us.
        """
        user_id = user.id
        target_id = await self._find_user(request.username)
        if target_id is None:
            raise ChatError(wire.NO_SUCH_USER)
        if target_id == user_id:
            raise ChatError(wire.INVALID_TARGET, "You cannot befriend yourself.")
        if self._directory.are_friends(user_id, target_id):
            raise ChatError(wire.ALREADY_FRIENDS)
        outcome = await self._store.add_friend(user_id, target_id)
        if outcome == "accepted":
            return self._befriended(user_id, target_id)
        if outcome == "sent":
            self.sessions.push(
                (target_id,),
                {"type": "incoming_friend_request", "user": self._user(user_id)},
            )
        return {"type": "friend_request_sent", "user": self._user(target_id)}

    def _befriended(self, user_id: int, requester_id: int) -> Reply:
        """
        C{user_id} accepted C{requester_id}'s request: tell the requester,
        and answer C{user_id}.
        """
        self._directory.befriend(user_id, requester_id)
        self.deployment.user_changed(user_id)
        self.sessions.push(
            (requester_id,),
            {
                "type": "add_friend_result",
                "friend": self._friend(user_id),
                "accepted": True,
            },
        )
        return {
            "type": "add_friend_result",
            "friend": self._friend(requester_id),
            "accepted": True,
        }

    async def resolve_friend_request(
        self, user: User, request: requests.ResolveFriendRequest
    ) -> Reply:
        """
        Accept (the default) or decline a pending friend request.
        """
        requester_id = request.user_id
        if requester_id not in self._directory.usernames:
            raise ChatError(wire.NO_PENDING_REQUEST)
        await self._store.resolve_friend_request(user.id, requester_id, request.accept)
        if request.accept:
            return self._befriended(user.id, requester_id)
        return {
            "type": "add_friend_result",
            "friend": self._friend(requester_id),
            "accepted": False,
        }

    async def remove_friend(self, user: User, request: requests.RemoveFriend) -> Reply:
        """
        End a friendship; both sides are told.
        """
        user_id, friend_id = user.id, request.user_id
        self._check_user(friend_id)
        if not self._directory.are_friends(user_id, friend_id):
            raise ChatError(wire.NOT_FRIENDS)
        # Refuse messages between them from now on, even those queued
        # behind the removal; put the friendship back if it fails.
        self._directory.unfriend(user_id, friend_id)
        await _undo_on_failure(
            self._store.remove_friend(user_id, friend_id),
            lambda: self._directory.befriend(user_id, friend_id),
        )
        self.deployment.user_changed(user_id)
        self.sessions.push((friend_id,), {"type": "friend_removed", "user_id": user_id})
        return {"type": "friend_removed", "user_id": friend_id}

    # Rooms.

    def _existing_room(self, room_id: int) -> Room:
        room = self._directory.rooms.get(room_id)
        if room is None:
            raise ChatError(wire.NO_SUCH_ROOM)
        return room

    def _join(self, room: Room, user_id: int, stored: StoredMessage) -> None:
        """
        Record that C{user_id} joined C{room} with the system message
        C{stored}, owning it if nobody was in it (as the store decided).
        """
        self._directory.join(room.id, user_id, stored.id)
        if room.owner_id is None:
            room.owner_id = user_id
        self.deployment.room_changed(room.id)

    def _joined(self, room: Room, user_id: int, stored: StoredMessage) -> None:
        """
        C{user_id} joined C{room} with the system message C{stored}: tell
        the other members, and push the message to all but its sender.
        """
        others = [m for m in room.members if m != user_id]
        self.sessions.push(
            others,
            {
                "type": "someone_inroom",
                "room_id": room.id,
                "user": self._member(room, user_id),
            },
        )
        self._push_message(stored, to_sender=stored.sender_id != user_id)

    async def create_room(self, user: User, request: requests.CreateRoom) -> Reply:
        """
        Create a room; its creator is its first member.
        """
        user_id, name = user.id, request.name
        if self._directory.room_id(name) is not None:
            raise ChatError(wire.ROOM_EXISTS)
        stored = await self._store.create_room(name, user_id, f"{user.name} created the room")
        room = self._directory.add_room(stored.target_id, name, user_id)
        self._directory.join(room.id, user_id, stored.id)
        self.deployment.room_changed(room.id)
        self.log.info("User {user_id} created room {room_id}", user_id=user_id, room_id=room.id)
        return {"type": "create_successful", "room": self._room(room)}

    async def join_room(self, user: User, request: requests.JoinRoom) -> Reply:
        """
        Join a room by name.
        """
        user_id = user.id
        room_id = await self._find_room(request.name)
        if room_id is None:
            raise ChatError(wire.NO_SUCH_ROOM)
        room = self._directory.rooms[room_id]
        if user_id in room.members:
            raise ChatError(wire.ALREADY_IN_ROOM)
        if user_id in room.banned:
            raise ChatError(wire.NOT_ALLOWED, "You are banned from that room.")
        stored = await self._store.join_room(
            room_id, user_id, user_id, f"{user.name} joined the room"
        )
        self._join(room, user_id, stored)
        self._joined(room, user_id, stored)
        return {"type": "join_successful", "room": self._room(room)}

    async def quit_room(self, user: User, request: requests.QuitRoom) -> Reply:
        """
        Leave a room; it keeps existing, with its history.
        """
        user_id = user.id
        room = self._existing_room(request.room_id)
        if user_id not in room.members:
            raise ChatError(wire.NOT_IN_ROOM)
        # No more messages to or from this member from now on, and the
        # room has its next owner at once (so that their own quit, right
        # after, hands it on); both undone if the transaction fails.
        joined, owner, moderators = room.members[user_id], room.owner_id, set(room.moderators)
        new_owner = room.successor() if owner == user_id else owner
        self._directory.leave(room.id, user_id)
        room.owner_id = new_owner
        room.moderators.discard(new_owner)

        def undo() -> None:
            self._directory.join(room.id, user_id, joined)
            room.owner_id, room.moderators = owner, moderators

        stored = await _undo_on_failure(
            self._store.quit_room(room.id, user_id, f"{user.name} left the room", new_owner),
            undo,
        )
        self.deployment.room_changed(room.id)
        self.sessions.push(
            room.members,
            {"type": "someone_outroom", "room_id": room.id, "user_id": user_id},
        )
        if new_owner != owner and new_owner is not None:
            self.sessions.push(
                room.members,
                {"type": "member_role", "room_id": room.id, "user_id": new_owner, "role": OWNER},
            )
        self._push_message(stored)
        return {"type": "me_outroom", "room_id": room.id}

    async def add_friend_to_room(self, user: User, request: requests.RoomMember) -> Reply:
        """
        Add a friend to one of our rooms; they join at once.
        """
        user_id, friend_id = user.id, request.user_id
        room = self._existing_room(request.room_id)
        self._check_user(friend_id)
        if user_id not in room.members:
            raise ChatError(wire.NOT_IN_ROOM)
        if not self._directory.are_friends(user_id, friend_id):
            raise ChatError(wire.NOT_FRIENDS)
        if friend_id in room.members:
            raise ChatError(wire.ALREADY_IN_ROOM)
        if friend_id in room.banned:
            raise ChatError(wire.NOT_ALLOWED, "Your friend is banned from that room.")
        friend_name = self._directory.usernames[friend_id]
        stored = await self._store.join_room(
            room.id, user_id, friend_id, f"{user.name} added {friend_name} to the room"
        )
        self._join(room, friend_id, stored)
        self.sessions.push((friend_id,), {"type": "join_successful", "room": self._room(room)})
        self._joined(room, friend_id, stored)
        return {"type": "ok"}

    def list_rooms(self, user: User, request: requests.ListRooms) -> Reply:
        """
        Rooms whose name holds C{query} (literally, in any case), at most
        100, by name.
        """
        query = request.query.lower()
        matches = sorted(
            (room for room in self._directory.rooms.values() if query in room.name.lower()),
            key=lambda room: (room.name.lower(), room.id),
        )
        return {
            "type": "room_list",
            "rooms": [
                {
                    "id": room.id,
                    "name": room.name,
                    "topic": room.topic,
                    "member_count": len(room.members),
                }
                for room in matches[:MAX_ROOM_LIST]
            ],
        }

    # Room moderation (PROTOCOL.md section 12).

    def _member_room(self, user_id: int, room_id: int) -> Room:
        """
        @return: the room C{room_id}, of which C{user_id} is a member.
        @raise ChatError: C{no_such_room}; C{not_in_room}.
        """
        room = self._existing_room(room_id)
        if user_id not in room.members:
            raise ChatError(wire.NOT_IN_ROOM)
        return room

    def _target_member(self, room: Room, user_id: int) -> None:
        """
        @raise ChatError: C{no_such_user}; C{not_in_room} unless C{user_id}
            is a member of C{room}.
        """
        self._check_user(user_id)
        if user_id not in room.members:
            raise ChatError(wire.NOT_IN_ROOM, "That user is not in the room.")

    async def set_topic(self, user: User, request: requests.SetTopic) -> Reply:
        """
        Set (or, with C{""}, clear) what a room is for: its owner and its
        moderators may.
        """
        room = self._member_room(user.id, request.room_id)
        if not room.moderates(user.id):
            raise ChatError(wire.NOT_ALLOWED, "Only the owner and moderators set the topic.")
        topic = request.topic
        if topic != room.topic:
            text = (
                f"{user.name} set the topic to: {topic}"
                if topic
                else f"{user.name} cleared the topic"
            )
            stored = await self._store.set_topic(room.id, user.id, topic, text)
            room.topic = topic
            self.deployment.room_changed(room.id)
            payload = {"type": "room_updated", "room": self._room(room)}
            self.sessions.push([m for m in room.members if m != user.id], payload)
            self._push_message(stored, to_sender=True)
        return {"type": "room_updated", "room": self._room(room)}

    async def set_role(self, user: User, request: requests.SetRole) -> Reply:
        """
        Make a member a moderator, or a moderator a plain member again:
        only the owner may, and not of themself.
        """
        room = self._member_room(user.id, request.room_id)
        target_id, role = request.user_id, request.role
        self._target_member(room, target_id)
        if user.id != room.owner_id or target_id == room.owner_id:
            raise ChatError(wire.NOT_ALLOWED, "Only the owner sets roles, and not their own.")
        if room.role(target_id) == role:
            return {"type": "ok"}
        # Rights taken away go at once (put back if the write fails); rights
        # given come with the commit.
        if role == MEMBER:
            room.moderators.discard(target_id)
            await _undo_on_failure(
                self._store.set_role(room.id, target_id, role),
                lambda: room.moderators.add(target_id),
            )
        else:
            await self._store.set_role(room.id, target_id, role)
            if target_id in room.members:
                room.moderators.add(target_id)
        self.deployment.room_changed(room.id)
        self.sessions.push(
            [m for m in room.members if m != user.id],
            {"type": "member_role", "room_id": room.id, "user_id": target_id, "role": role},
        )
        return {"type": "ok"}

    async def kick_from_room(self, user: User, request: requests.KickFromRoom) -> Reply:
        """
        Remove a member from a room, and with C{ban} keep them out: the
        owner may remove anyone else, a moderator plain members.
        """
        room = self._member_room(user.id, request.room_id)
        target_id = request.user_id
        self._target_member(room, target_id)
        if not room.may_remove(user.id, target_id):
            raise ChatError(wire.NOT_ALLOWED, "You may not remove that member.")
        joined, was_moderator = room.members[target_id], target_id in room.moderators
        self._directory.leave(room.id, target_id)
        if request.ban:
            room.banned.add(target_id)

        def undo() -> None:
            self._directory.join(room.id, target_id, joined)
            if was_moderator:
                room.moderators.add(target_id)
            if request.ban:
                room.banned.discard(target_id)

        name = self._directory.usernames[target_id]
        stored = await _undo_on_failure(
            self._store.kick(
                room.id,
                user.id,
                target_id,
                request.ban,
                f"{user.name} removed {name} from the room",
            ),
            undo,
        )
        self.deployment.room_changed(room.id)
        self.log.info(
            "User {user_id} removed user {target_id} from room {room_id} (ban: {ban})",
            user_id=user.id,
            target_id=target_id,
            room_id=room.id,
            ban=request.ban,
        )
        self.sessions.push(
            (target_id,), {"type": "me_outroom", "room_id": room.id, "reason": "kicked"}
        )
        self.sessions.push(
            room.members,
            {"type": "someone_outroom", "room_id": room.id, "user_id": target_id},
        )
        self._push_message(stored, to_sender=True)
        return {"type": "ok"}

    async def unban_from_room(self, user: User, request: requests.RoomMember) -> Reply:
        """
        Let a banned user join a room again: its owner and moderators may.
        """
        room = self._member_room(user.id, request.room_id)
        target_id = request.user_id
        self._check_user(target_id)
        if not room.moderates(user.id):
            raise ChatError(wire.NOT_ALLOWED, "Only the owner and moderators lift bans.")
        if target_id not in room.banned:
            raise ChatError(wire.NOT_ALLOWED, "That user is not banned from the room.")
        await self._store.unban(room.id, target_id)
        room.banned.discard(target_id)
        self.deployment.room_changed(room.id)
        return {"type": "ok"}


def _new_token() -> tuple[str, bytes]:
    """
    @return: a new session token (256 random bits, 43 URL-safe characters)
        and the hash of it that the database keeps.
    """
    token = secrets.token_urlsafe(32)
    return token, _token_hash(token)


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _reactions(message: StoredMessage) -> list[Payload]:
    return [{"emoji": emoji, "user_ids": list(users)} for emoji, users in message.reactions]


async def _undo_on_failure(change: Deferred[T], undo: Callable[[], None]) -> T:
    """
    Wait for a write whose effect on the directory was applied ahead of its
    commit, and call C{undo} if the database failed it.  A L{ChatError} means
    the database disagreed with the directory's premise: nothing to undo.
    """
    try:
        return await change
    except ChatError:
        raise
    except BaseException:
        undo()
        raise
