"""
Who is online: user id -> the one session logged in as that user.

L{chatd.server.ChatServer} reaches other connections only through
L{Sessions}: it never touches a transport.  A push is encoded and framed
once, and the same bytes are handed to every recipient.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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


class Sessions:
    """
    Every open connection, and the logged-in sessions, one per user.
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
        # While a batch is open: session -> the frames held for it.
        self._batched: dict[Session, list[bytes]] | None = None

    def __len__(self) -> int:
        return len(self._by_user)

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
        @return: whether C{user_id} has a session.
        """
        return user_id in self._by_user

    def current(self, user_id: int) -> Session | None:
        """
        @return: the logged-in session of C{user_id}, or L{None}.
        """
        return self._by_user.get(user_id)

    def attach(self, session: Session, user_id: int, username: str) -> Session | None:
        """
        Log C{session} in as C{user_id}, replacing any older session of the
        same user.

        @return: the replaced session (which the caller kicks), or L{None}
            when this is the user's first session, i.e. they came online.
        """
        session.user_id = user_id
        session.username = username
        older = self._by_user.get(user_id)
        self._by_user[user_id] = session
        return older

    def detach(self, session: Session) -> bool:
        """
        Log C{session} out.

        @return: whether it was its user's current session, i.e. the user
            went offline (a session replaced by a newer one was not).
        """
        user_id = session.user_id
        session.user_id = None
        session.username = None
        if user_id is None or self._by_user.get(user_id) is not session:
            return False
        del self._by_user[user_id]
        return True

    def push(self, user_ids: Iterable[int], payload: wire.Payload) -> None:
        """
        Send C{payload} to each of C{user_ids} that is online, encoding it
        once.
        """
        sessions = [s for s in map(self._by_user.get, user_ids) if s is not None]
        if not sessions:
            return
        self._metrics.pushes += len(sessions)
        frame = wire.frame(payload)
        batched = self._batched
        if batched is None:
            for session in sessions:
                session.send(frame)
            return
        for session in sessions:
            held = batched.get(session)
            if held is None:
                batched[session] = [frame]
            else:
                held.append(frame)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """
        Hold the pushes made within, then give each session all of its own
        in one write, in the order they were made.  The message writer runs
        each committed group's callbacks within one batch: a room of 50
        then costs 50 writes per group rather than 50 per message.
        """
        if self._batched is not None:
            yield
            return
        self._batched = {}
        try:
            yield
        finally:
            batched, self._batched = self._batched, None
            for session, frames in batched.items():
                session.send(frames[0] if len(frames) == 1 else b"".join(frames))
