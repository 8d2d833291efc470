"""
Who is online: user id -> the one session logged in as that user.

L{chatd.server.ChatServer} reaches other connections only through
L{Sessions}: it never touches a transport.  A push is encoded and framed
once, and the same bytes are handed to every recipient.

In a deployment of several processes (L{chatd.cluster}), the sessions of
the others are known by the process that holds them: a push to one of
their users is relayed to that process, and a user is online when they
are online on any process.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol

from twisted.internet.defer import Deferred, succeed

from chatd import wire
from chatd.metrics import Metrics


class Session(Protocol):
    """
    What the server needs of a connection.  L{chatd.protocol.ChatProtocol}
    is the real one; tests use a fake.

    @ivar user_id: the logged-in user, or L{None} before login.
    @ivar username: that user's name, or L{None} before login.
    @ivar token_hash: the SHA-256 of the token it logged in with (or got
        from a password change), which C{logout} ends; L{None} before login.
    @ivar connected: L{False} once the connection is gone.
    """

    user_id: int | None
    username: str | None
    token_hash: bytes | None
    connected: bool

    def send(self, frame: bytes) -> None:
        """
        Write one framed push (see L{wire.frame}).
        """

    def kick(self, reason: str) -> None:
        """
        Push C{server_kick} with C{reason} and close the connection.
        """

    def stop_reading(self) -> None:
        """
        Read no more requests (those already read still get their replies).
        """


class Peers(Protocol):
    """
    The other processes of a deployment, as L{Sessions} tells them what
    happens here (L{chatd.cluster.Cluster} is the real one).
    """

    def claim(self, user_id: int) -> None:
        """
        C{user_id} logged in here: their sessions elsewhere end.
        """

    def gone(self, user_id: int) -> None:
        """
        C{user_id}'s session here ended.
        """

    def relay(self, process: str, entries: list[bytes]) -> None:
        """
        Deliver the pushes L{pack} made to the sessions of C{process}.
        """

    def kick(self, user_id: int, reason: str) -> None:
        """
        Kick C{user_id}'s session wherever it is.
        """


#: How a relayed push begins: its message id (0 for other pushes) and how
#: many recipients it has, whose ids follow, then its frame.
_ENTRY = struct.Struct("!QH")
_FRAME_LENGTH = struct.Struct("!I")

#: The most recipients one relayed push names (more go in several).
MAX_RECIPIENTS = 0xFFFF


def pack(message_id: int, user_ids: list[int], frame: bytes) -> bytes:
    """
    @return: the push of C{frame} to C{user_ids}, as L{Peers.relay} carries
        it; C{message_id} is the id of the message it carries, or 0.
    """
    count = len(user_ids)
    return b"".join((_ENTRY.pack(message_id, count), struct.pack(f"!{count}I", *user_ids), frame))


def unpack(data: bytes) -> Iterator[tuple[int, tuple[int, ...], bytes]]:
    """
    @return: the C{(message_id, user_ids, frame)} of each push that
        L{pack} made and C{data} joins.
    @raise struct.error: when C{data} is not such pushes.
    """
    at, end = 0, len(data)
    while at < end:
        message_id, count = _ENTRY.unpack_from(data, at)
        at += _ENTRY.size
        user_ids = struct.unpack_from(f"!{count}I", data, at)
        at += 4 * count
        (length,) = _FRAME_LENGTH.unpack_from(data, at)
        frame = data[at : at + 4 + length]
        if len(frame) != 4 + length:
            raise struct.error("a push is cut short")
        at += 4 + length
        yield message_id, user_ids, frame


class _Run:
    """
    Pushes of a batch, one after the other, to the same sessions: each of
    C{frames} goes to every one of C{sessions} but the one beside it in
    C{skipped} (its sender, or L{None}).
    """

    __slots__ = ("frames", "sessions", "skipped")

    def __init__(self, sessions: list[Session], frame: bytes, skipped: Session | None) -> None:
        self.sessions = sessions
        self.frames = [frame]
        self.skipped = [skipped]

    def hand_out(self, held: defaultdict[Session, list[bytes]]) -> None:
        """
        Add the frames to what C{held} holds for each session, in order.
        """
        frames, skipped = self.frames, self.skipped
        senders = set(skipped)
        for session in self.sessions:
            if session in senders:
                held[session].extend(
                    [
                        frame
                        for frame, but in zip(frames, skipped, strict=True)
                        if but is not session
                    ]
                )
            else:
                held[session].extend(frames)


class Sessions:
    """
    Every open connection, and the logged-in sessions, one per user.

    @ivar last_message_id: the highest id of a message pushed here.
    @ivar delivered: while not L{None}, the ids of the messages pushed here
        lately (L{chatd.cluster} keeps it, to catch up with those it
        missed): a message in it is not pushed again.
    @ivar presence: called with a user id and whether they are now online,
        each time that changes (here or on another process).
    """

    def __init__(self, metrics: Metrics | None = None) -> None:
        """
        @param metrics: where the pushes are counted; by default, figures
            of its own that nobody reads.
        """
        self._metrics = Metrics() if metrics is None else metrics
        self._open: set[Session] = set()
        self._by_user: dict[int, Session] = {}
        self._all_closed: list[Deferred[None]] = []
        # While a batch is open: its pushes (L{_Run}s), and process -> the
        # pushes to relay to it.
        self._batched: list[_Run] | None = None
        self._relayed: dict[str, list[bytes]] = {}
        self._at_end: list[tuple[Session, Callable[[], None]]] = []
        self.peers: Peers | None = None
        # The users logged in on other processes: user id -> process.
        self._remote: dict[int, str] = {}
        self.last_message_id = 0
        self.delivered: set[int] | None = None
        self.presence: Callable[[int, bool], None] = lambda user_id, online: None

    def __len__(self) -> int:
        return len(self._by_user)

    def everywhere(self) -> int:
        """
        @return: how many users are online on any process.
        """
        return len(self._by_user.keys() | self._remote.keys())

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._by_user.values()))

    def connections(self) -> int:
        """
        @return: how many connections are open, logged in or not.
        """
        return len(self._open)

    def opened(self, session: Session) -> None:
        """
        A connection opened.
        """
        self._open.add(session)

    def closed(self, session: Session) -> None:
        """
        A connection closed.
        """
        self._open.discard(session)
        if not self._open:
            waiters, self._all_closed = self._all_closed, []
            for d in waiters:
                d.callback(None)

    def all_closed(self) -> Deferred[None]:
        """
        @return: fires once no connection is open.
        """
        if not self._open:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._all_closed.append(d)
        return d

    def everyone(self) -> list[Session]:
        """
        @return: every open connection, logged in or not.
        """
        return list(self._open)

    def online(self, user_id: int) -> bool:
        """
        @return: whether C{user_id} has a session, here or elsewhere.
        """
        return user_id in self._by_user or user_id in self._remote

    def current(self, user_id: int) -> Session | None:
        """
        @return: the logged-in session of C{user_id}, or L{None}.
        """
        return self._by_user.get(user_id)

    def local(self) -> list[int]:
        """
        @return: the users logged in here.
        """
        return list(self._by_user)

    def attach(self, session: Session, user_id: int, username: str) -> Session | None:
        """
        Log C{session} in as C{user_id}, replacing any older session of the
        same user (here, or on another process, which kicks it).

        @return: the replaced session here (which the caller kicks), or
            L{None}.
        """
        was_online = self.online(user_id)
        session.user_id = user_id
        session.username = username
        older = self._by_user.get(user_id)
        self._by_user[user_id] = session
        if self.peers is not None:
            self.peers.claim(user_id)
        if not was_online:
            self.presence(user_id, True)
        return older

    def detach(self, session: Session) -> bool:
        """
        Log C{session} out.

        @return: whether it was its user's current session here (a session
            replaced by a newer one was not).
        """
        user_id = session.user_id
        session.user_id = None
        session.username = None
        if user_id is None or self._by_user.get(user_id) is not session:
            return False
        del self._by_user[user_id]
        if self.peers is not None:
            self.peers.gone(user_id)
        if not self.online(user_id):
            self.presence(user_id, False)
        return True

    def kick(self, user_id: int, reason: str) -> None:
        """
        Kick C{user_id}'s session with C{reason}, wherever it is.
        """
        session = self._by_user.get(user_id)
        if session is not None:
            session.kick(reason)
        if self.peers is not None:
            self.peers.kick(user_id, reason)

    # What other processes hold (L{chatd.cluster}).

    def where(self, user_id: int) -> str | None:
        """
        @return: the process holding C{user_id}'s session elsewhere, or
            L{None}.
        """
        return self._remote.get(user_id)

    def moved(self, user_id: int, process: str | None) -> None:
        """
        C{user_id}'s session is now on C{process} (another process), or on
        none elsewhere: a session of theirs here is replaced, and kicked.
        """
        was_online = self.online(user_id)
        if process is None:
            self._remote.pop(user_id, None)
        else:
            self._remote[user_id] = process
            older = self._by_user.pop(user_id, None)
            if older is not None:
                older.kick(wire.LOGGED_IN_ELSEWHERE)
        if self.online(user_id) != was_online:
            self.presence(user_id, not was_online)

    def held_by(self, process: str) -> list[int]:
        """
        @return: the users whose session is on C{process}.
        """
        return [user_id for user_id, where in self._remote.items() if where == process]

    def kick_here(self, user_id: int, reason: str) -> None:
        """
        Kick C{user_id}'s session here, if it has one.
        """
        session = self._by_user.get(user_id)
        if session is not None:
            session.kick(reason)

    def deliver(self, data: bytes) -> None:
        """
        Push what another process relayed (see L{pack}) to the sessions
        here.
        """
        with self.batch():
            for message_id, user_ids, frame in unpack(data):
                self._push_frame(user_ids, frame, message_id, relay=False)

    def push(
        self,
        user_ids: Iterable[int],
        payload: wire.Payload | bytes,
        message_id: int = 0,
        relay: bool = True,
        but: int | None = None,
    ) -> None:
        """
        Send C{payload} to each of C{user_ids} that is online, encoding it
        once (or already framed: bytes).

        @param message_id: the id of the message C{payload} carries, or 0.
        @param relay: whether to push to the users on other processes too.
        @param but: a user of C{user_ids} not to push to (a message's
            sender, among a room's members).
        """
        self._push_frame(user_ids, payload, message_id, relay, but)

    def _push_frame(
        self,
        user_ids: Iterable[int],
        content: wire.Payload | bytes,
        message_id: int,
        relay: bool,
        but: int | None = None,
    ) -> None:
        if message_id:
            if message_id > self.last_message_id:
                self.last_message_id = message_id
            delivered = self.delivered
            if delivered is not None:
                if message_id in delivered:
                    return
                delivered.add(message_id)
        by_user = self._by_user
        remote = self._remote if relay else None
        elsewhere: dict[str, list[int]] | None = None
        skipped: Session | None = None
        if not remote:
            sessions = [s for s in map(by_user.get, user_ids) if s is not None]
            if but is not None and (skipped := by_user.get(but)) not in sessions:
                skipped = None
        else:
            sessions = []
            for user_id in user_ids:
                if user_id == but:
                    continue
                session = by_user.get(user_id)
                if session is not None:
                    sessions.append(session)
                elif user_id in remote:
                    if elsewhere is None:
                        elsewhere = {}
                    elsewhere.setdefault(remote[user_id], []).append(user_id)
        if not sessions and elsewhere is None:
            return
        frame = content if isinstance(content, bytes) else wire.frame(content)
        if elsewhere is not None:
            self._relay(elsewhere, message_id, frame)
        if not sessions:
            return
        self._metrics.pushes += len(sessions) - (skipped is not None)
        batched = self._batched
        if batched is None:
            for session in sessions:
                if session is not skipped:
                    session.send(frame)
        elif batched and batched[-1].sessions == sessions:
            run = batched[-1]
            run.frames.append(frame)
            run.skipped.append(skipped)
        else:
            batched.append(_Run(sessions, frame, skipped))

    def at_batch_end(self, session: Session, flush: Callable[[], None]) -> bool:
        """
        If a batch is open, call C{flush} when it ends: C{session} holds
        what it writes within the batch (its replies), gets the pushes the
        batch held for it, then writes all at once.  Such sessions, which
        wait for the answers, go before the others.

        @return: whether a batch is open.
        """
        if self._batched is None:
            return False
        self._at_end.append((session, flush))
        return True

    @contextmanager
    def batch(self) -> Iterator[None]:
        """
        Hold the pushes made within, then give each session all of its own
        in one write, in the order they were made.  The message writer runs
        each committed group's callbacks within one batch: a room of 50
        then costs 50 writes per group rather than 50 per message.

        Pushes to the same sessions one after the other (the messages of a
        busy room, whoever of its members sent each) cost one append each,
        not one per recipient; sessions that get the very same frames (the
        members who sent nothing in the group) share one joined copy.
        """
        if self._batched is not None:
            yield
            return
        self._batched = []
        try:
            yield
        finally:
            batched, self._batched = self._batched, None
            at_end, self._at_end = self._at_end, []
            held: defaultdict[Session, list[bytes]] = defaultdict(list)
            for run in batched:
                run.hand_out(held)
            for session, flush in at_end:
                frames = held.pop(session, None)
                if frames:
                    session.send(b"".join(frames))
                flush()
            joined: dict[tuple[int, int, int], tuple[list[bytes], bytes]] = {}
            for session, frames in held.items():
                if not frames:
                    continue
                if len(frames) == 1:
                    data = frames[0]
                else:
                    # The frames are alive until the loop ends: their ids
                    # cannot be reused meanwhile.
                    key = (len(frames), id(frames[0]), id(frames[-1]))
                    known = joined.get(key)
                    if known is not None and known[0] == frames:
                        data = known[1]
                    else:
                        data = b"".join(frames)
                        joined[key] = (frames, data)
                session.send(data)
            relayed, self._relayed = self._relayed, {}
            if relayed:
                assert self.peers is not None
                for process, entries in relayed.items():
                    self.peers.relay(process, entries)

    def _relay(self, elsewhere: dict[str, list[int]], message_id: int, frame: bytes) -> None:
        assert self.peers is not None
        for process, user_ids in elsewhere.items():
            entries = [
                pack(message_id, user_ids[at : at + MAX_RECIPIENTS], frame)
                for at in range(0, len(user_ids), MAX_RECIPIENTS)
            ]
            if self._batched is None:
                self.peers.relay(process, entries)
            else:
                self._relayed.setdefault(process, []).extend(entries)
