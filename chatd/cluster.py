"""
The processes of one deployment, joined through Redis pub/sub
(C{twistd chatd --redis redis://host:port/N}, beside a PostgreSQL C{--db}).

Every process subscribes to two channels: the deployment's events, which
every process hears, and its own, on which the others relay the pushes
for the users logged in here.  Events are small JSON objects; Redis hands
them to every subscriber in one order, the order in which it received
them, and each process applies them in that order:

  - C{claim}: a process now holds sessions of these users.  The latest
    claim of a user wins: a process holding an older session of theirs
    kicks it with C{logged_in_elsewhere}.  A process that claimed a user
    ignores the claims of others until its own comes back to it, since
    its own comes later.
  - C{gone}: a session ended; the user is offline unless another process
    has claimed them since.
  - C{hello}: a process (re)joined; every other one answers with C{state},
    the list of the users it holds, which replaces what was known of it.
  - C{beat}: a process is alive.  One unheard for L{SILENCE} seconds is
    taken for dead, and its users for offline.
  - C{user}, C{room}: the account or room changed; every process reads it
    again from the database into its directory.
  - C{kick}, C{failed}, C{unlock}: the operator's kicks and the
    failed-login throttle, for the whole deployment.

Each process tells its own users who came online or went offline
(L{chatd.sessions.Sessions.presence}), so presence costs no relaying.

When Redis goes away, pushes between processes stop and each process
serves its own users; when it comes back, the process reads its directory
again and pushes to its users the messages committed since where its
delivery stood a silence (L{SILENCE}) before, but those it delivered.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import txredisapi
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatd import wire
from chatd.directory import Directory
from chatd.server import ChatServer
from chatd.sessions import Sessions
from chatd.store import Store

log = Logger()

#: Seconds between two heartbeats of a process.
BEAT = 2.0

#: Seconds after which a process not heard from is taken for dead (and,
#: when Redis is away that long, every other process).
SILENCE = 5 * BEAT


class RedisURL:
    """
    Where Redis is: C{redis://[:password@]host[:port][/db]}.
    """

    def __init__(self, url: str) -> None:
        """
        @raise ValueError: when C{url} is not such a URL.
        """
        parts = urlsplit(url)
        if parts.scheme != "redis" or not parts.hostname:
            raise ValueError(f"not a redis://host:port/N URL: {url!r}")
        self.host: str = parts.hostname
        self.port: int = parts.port or 6379
        self.password: str | None = parts.password
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ValueError(f"the database of a Redis URL is a number: {url!r}")
        self.db = int(path or 0)

    def __repr__(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"


def is_redis_url(text: str) -> bool:
    """
    @return: whether C{text} is meant as a Redis URL.
    """
    return text.startswith("redis://")


class _Subscriber(txredisapi.SubscriberProtocol):
    received: Callable[[bytes, bytes], None]

    def messageReceived(self, pattern: Any, channel: bytes, message: bytes) -> None:
        self.received(channel, message)


class _RedisFactory(Factory):
    """
    Builds the connections of L{RedisLink}, and hands each to C{ready}
    once it may be used.
    """

    # What txredisapi's protocols read of their factory.
    isLazy = False
    # Each reconnection would log two lines.
    noisy = False

    def __init__(self, protocol: type, url: RedisURL, ready: Callable[[Any], None]) -> None:
        self._protocol = protocol
        self._url = url
        self._ready = ready

    def buildProtocol(self, addr: Any) -> Any:
        connection = self._protocol(
            charset=None, password=self._url.password, dbid=self._url.db, convertNumbers=False
        )
        connection.factory = self
        connection.whenConnected().addCallback(self._ready)
        return connection

    def stopTrying(self) -> None:
        pass

    def connectionError(self, why: str) -> None:
        log.error("Redis refused chatd: {why}", why=why)


class RedisLink:
    """
    Two connections to Redis, made again whenever they are lost: one
    subscribed to the channels, one that publishes.

    @ivar up: whether both are connected (and subscribed).
    """

    def __init__(
        self,
        reactor: Any,
        url: RedisURL,
        channels: list[bytes],
        received: Callable[[bytes, bytes], None],
        changed: Callable[[bool], None],
    ) -> None:
        """
        @param channels: what to subscribe to.
        @param received: called with the channel and the content of each
            message published on them.
        @param changed: called with L{up} each time it changes.
        """
        self._channels = channels
        self._received = received
        self._changed = changed
        self._publisher: Any = None
        self._subscriber: Any = None
        self.up = False
        endpoint = HostnameEndpoint(reactor, url.host, url.port, timeout=5)
        policy = backoffPolicy(initialDelay=0.2, maxDelay=2.0)
        self._services = [
            ClientService(
                endpoint,
                _RedisFactory(txredisapi.RedisProtocol, url, self._publisher_ready),
                retryPolicy=policy,
                clock=reactor,
            ),
            ClientService(
                endpoint,
                _RedisFactory(_Subscriber, url, self._subscriber_ready),
                retryPolicy=policy,
                clock=reactor,
            ),
        ]

    def start(self) -> None:
        for service in self._services:
            service.startService()

    async def stop(self) -> None:
        await defer.gatherResults([service.stopService() for service in self._services])

    def reconnect(self) -> None:
        """
        Drop both connections (which are made again): one that looks
        alive may be dead (a network that lost it silently).
        """
        for connection in (self._publisher, self._subscriber):
            if connection is not None and connection.transport is not None:
                connection.transport.abortConnection()

    def publish(self, channel: bytes, data: bytes) -> bool:
        """
        Publish C{data} on C{channel}, if connected.

        @return: whether it was sent (not whether anyone heard it).
        """
        if not self.up:
            return False
        self._publisher.publish(channel, data).addErrback(_not_published)
        return True

    def _publisher_ready(self, connection: Any) -> None:
        self._publisher = connection
        connection.whenDisconnected().addCallback(self._publisher_lost)
        self._check()

    def _publisher_lost(self, connection: Any) -> None:
        if self._publisher is connection:
            self._publisher = None
            self._check()

    def _subscriber_ready(self, connection: Any) -> None:
        connection.received = self._received
        connection.whenDisconnected().addCallback(self._subscriber_lost)
        connection.subscribe(self._channels).addCallback(self._subscribed, connection)

    def _subscribed(self, reply: Any, connection: Any) -> None:
        if connection.connected:
            self._subscriber = connection
            self._check()

    def _subscriber_lost(self, connection: Any) -> None:
        if self._subscriber is connection:
            self._subscriber = None
            self._check()

    def _check(self) -> None:
        up = self._publisher is not None and self._subscriber is not None
        if up != self.up:
            self.up = up
            self._changed(up)


def _not_published(failure: Failure) -> None:
    # The connection went: the link is down, and the catch-up covers
    # messages; other pushes are lost, as they are for a client away.
    failure.trap(txredisapi.ConnectionError)


class Cluster:
    """
    This process as one of a deployment: what L{Sessions} and
    L{ChatServer} tell the others, and what the others tell this one.

    @ivar process: this process's name in the deployment, new at each start.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        namespace: str,
        sessions: Sessions,
        directory: Directory,
        store: Store,
        server: ChatServer,
    ) -> None:
        """
        @param namespace: what the deployment's channels are named after
            (Redis's channels do not belong to its numbered databases).
        """
        self.process = secrets.token_hex(8)
        self._clock = reactor
        self._sessions = sessions
        self._directory = directory
        self._store = store
        self._server = server
        self._events = f"{namespace}:events".encode()
        self._prefix = f"{namespace}:to:"
        self.channels = [self._events, (self._prefix + self.process).encode()]
        self.publish: Callable[[bytes, bytes], bool] = lambda channel, data: False
        self._link: RedisLink | None = None
        self._left = False
        # user id -> how many claims of ours have not come back yet.
        self._pending: dict[int, int] = {}
        # process -> when it was last heard of.
        self._heard: dict[str, float] = {}
        # How many claims and gones were applied here, the count at which
        # each user's last one was, and at which each recent hello came:
        # a state answering a hello says nothing of the users claimed or
        # gone since that hello.
        self._applied = 0
        self._touched: dict[int, int] = {}
        self._hellos: dict[str, int] = {}
        # When this process last heard its own heartbeat come back, and
        # the last message id delivered at each recent heartbeat.
        self._echoed = reactor.seconds()
        self._marks: list[int] = []
        self._up = False
        self._down_since: float | None = None
        # Where the catch-up starts, while one is due (the link went down,
        # or has not come up yet).
        self._cut_at: int | None = None
        self._beat = LoopingCall(self._tick)
        self._beat.clock = reactor
        # While the directory is read again: what was received since,
        # applied once it is read, in order.
        self._backlog: list[tuple[bytes, bytes]] | None = None
        self._catching_up: defer.Deferred[None] | None = None
        # How many times the link came up: a catch-up interrupted by the
        # link going down starts again.
        self._ups = 0
        self._waiting: list[tuple[bool, defer.Deferred[None]]] = []
        # The syncs of ours on their way.
        self._syncs: dict[str, defer.Deferred[None]] = {}
        sessions.peers = self
        sessions.delivered = set()
        server.deployment = self

    async def join(self, url: RedisURL) -> None:
        """
        Connect to the deployment's Redis at C{url}, and stay connected.
        What others commit until the link is up is caught up with then.
        """
        self._cut_at = self._sessions.last_message_id = await self._store.last_message_id()
        self._link = RedisLink(self._clock, url, self.channels, self.received, self.changed)
        self.publish = self._link.publish
        self._link.start()
        self.start()

    def start(self) -> None:
        """
        Start the heartbeat.
        """
        self._beat.start(BEAT, now=False)

    async def leave(self) -> None:
        """
        Leave the deployment: the others take this process's users for
        offline at once.
        """
        if self._beat.running:
            self._beat.stop()
        self._event("state", u=[])
        self._left = True
        if self._link is not None:
            await self._link.stop()

    # Peers (for Sessions).

    def claim(self, user_id: int) -> None:
        if self._event("claim", u=[user_id]):
            self._pending[user_id] = self._pending.get(user_id, 0) + 1

    def gone(self, user_id: int) -> None:
        self._event("gone", u=[user_id])

    def relay(self, process: str, entries: list[bytes]) -> None:
        self.publish(
            (self._prefix + process).encode(),
            entries[0] if len(entries) == 1 else b"".join(entries),
        )

    def kick(self, user_id: int, reason: str) -> None:
        self._event("kick", u=user_id, r=reason)

    # Deployment (for ChatServer and the operator's socket).

    # Every process reads the change again, this one too: a change the
    # others made may have been read here before one of this process's
    # own, still uncommitted, which the directory held already.

    def user_changed(self, user_id: int) -> None:
        self._event("user", id=user_id)

    def room_changed(self, room_id: int) -> None:
        self._event("room", id=room_id)

    def login_failed(self, username: str) -> None:
        self._event("failed", n=username)

    def throttle_lifted(self, username: str) -> None:
        self._event("unlock", n=username)

    # The link.

    def when(self, up: bool) -> defer.Deferred[None]:
        """
        @return: fires once the link to Redis is up (or down, with
            C{up=False}), at once if it is.
        """
        if self._up == up:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._waiting.append((up, d))
        return d

    def changed(self, up: bool) -> None:
        """
        The link to Redis came up or went down.
        """
        self._up = up
        if self._left:
            pass
        elif up:
            self._came_up()
        else:
            log.warn("Redis is unreachable: pushes to other processes stop")
            self._down_since = self._clock.seconds()
            self._pending.clear()
            if self._cut_at is None:
                # A relayed push in flight when the link went may carry a
                # smaller id than one delivered here since: start from
                # where delivery stood a silence ago.
                self._cut_at = min(self._marks, default=self._sessions.last_message_id)
        self._report(up)

    def _came_up(self) -> None:
        now = self._clock.seconds()
        self._down_since = None
        self._ups += 1
        self._echoed = now
        for process in self._heard:
            self._heard[process] = now
        # Who is here, for those that heard otherwise meanwhile (a state),
        # and a claim that ends the sessions opened elsewhere meanwhile.
        hello = secrets.token_hex(8)
        self._event("hello", h=hello)
        local = self._sessions.local()
        self._event("state", u=local, h=hello)
        if local and self._event("claim", u=local):
            for user_id in local:
                self._pending[user_id] = self._pending.get(user_id, 0) + 1
        if self._ups == 1:
            log.info("Joined the deployment as process {process}", process=self.process)
        else:
            log.info("Redis is reachable again: catching up")
        if self._cut_at is not None:
            self._start_catch_up()

    def synced(self) -> defer.Deferred[None]:
        """
        @return: fires once this process has applied every event published
            before, from any process (and read again what they changed);
            fails with L{txredisapi.ConnectionError} while Redis is away.
        """
        nonce = secrets.token_hex(8)
        if not self._event("sync", n=nonce):
            return defer.fail(txredisapi.ConnectionError("Redis is unreachable"))
        d: defer.Deferred[None] = defer.Deferred()
        self._syncs[nonce] = d
        return d

    def _report(self, up: bool) -> None:
        waiting, self._waiting = self._waiting, []
        for wanted, d in waiting:
            if wanted == up:
                d.callback(None)
            else:
                self._waiting.append((wanted, d))

    def _event(self, kind: str, **fields: Any) -> bool:
        fields["e"] = kind
        fields["p"] = self.process
        return self.publish(self._events, json.dumps(fields).encode())

    def received(self, channel: bytes, data: bytes) -> None:
        """
        Something was published on one of L{channels}.  It is applied in
        the order received: what follows a change of the directory waits
        until the change is read, so that a push never reaches a user
        before what it tells of (a friendship, say) holds here.
        """
        if self._backlog is not None:
            self._backlog.append((channel, data))
        else:
            self._receive(channel, data)

    def _receive(self, channel: bytes, data: bytes) -> None:
        try:
            if channel == self._events:
                self._apply(json.loads(data))
            else:
                self._sessions.deliver(data)
        except Exception:
            log.failure("Could not apply what another process published")

    def _apply(self, event: dict[str, Any]) -> None:
        kind, process = event["e"], event["p"]
        mine = process == self.process
        if mine:
            if kind == "beat":
                self._echoed = self._clock.seconds()
        else:
            if process not in self._heard and kind not in ("hello", "state"):
                # Taken for dead, or not heard of yet: ask for its state.
                self._event("hello")
            self._heard[process] = self._clock.seconds()
        if kind in ("claim", "gone"):
            self._applied += 1
            for user_id in event["u"]:
                self._touched[user_id] = self._applied
                if kind == "claim":
                    self._claimed(user_id, process, mine)
                elif not mine and self._sessions.where(user_id) == process:
                    self._sessions.moved(user_id, None)
        elif kind == "state":
            if not mine:
                self._state(process, event["u"], event.get("h"))
        elif kind == "hello":
            hello = event.get("h")
            if hello is not None:
                self._hellos[hello] = self._applied
                if len(self._hellos) > 64:
                    del self._hellos[next(iter(self._hellos))]
            if not mine:
                self._event("state", u=self._sessions.local(), h=hello)
        elif kind == "kick":
            if not mine:
                self._sessions.kick_here(event["u"], event["r"])
        elif kind in ("user", "room"):
            entity_id = int(event["id"])
            self._backlog = []
            defer.ensureDeferred(self._read_again(kind, entity_id))
        elif kind == "failed":
            if not mine:
                self._server.throttle.failed(event["n"])
        elif kind == "unlock":
            if not mine:
                self._server.throttle.unlock(event["n"])
        elif kind == "sync":
            waiting = self._syncs.pop(event["n"], None) if mine else None
            if waiting is not None:
                waiting.callback(None)

    def _claimed(self, user_id: int, process: str, mine: bool) -> None:
        if mine:
            left = self._pending.get(user_id, 0) - 1
            if left > 0:
                self._pending[user_id] = left
                return
            self._pending.pop(user_id, None)
            # Ours is the latest claim: whatever was known of them
            # elsewhere is older.
            self._sessions.moved(user_id, None)
        elif user_id not in self._pending:
            self._sessions.moved(user_id, process)

    def _state(self, process: str, user_ids: list[int], hello: str | None) -> None:
        # What was claimed or gone since the hello this answers is newer
        # than the state (which was made before that news reached its
        # process); a state of no hello (a process leaving) is current.
        since = self._hellos.get(hello, self._applied) if hello is not None else None
        held = set(user_ids)
        for user_id in self._sessions.held_by(process):
            if user_id not in held and not self._newer(user_id, since):
                self._sessions.moved(user_id, None)
        for user_id in held:
            # A state tells who is where, but ends no session here (a
            # claim does).
            if (
                user_id not in self._pending
                and self._sessions.current(user_id) is None
                and not self._newer(user_id, since)
            ):
                self._sessions.moved(user_id, process)

    def _newer(self, user_id: int, since: int | None) -> bool:
        return since is not None and self._touched.get(user_id, 0) > since

    def _tick(self) -> None:
        try:
            self._check_liveness()
        except Exception:
            log.failure("The heartbeat failed")

    def _check_liveness(self) -> None:
        now = self._clock.seconds()
        if self._up:
            if now - self._echoed > SILENCE and self._link is not None:
                log.warn("Redis did not echo this process's heartbeat: connecting again")
                self._link.reconnect()
                return
            self._event("beat")
            self._marks.append(self._sessions.last_message_id)
            del self._marks[: -int(SILENCE / BEAT) - 1]
            if self._cut_at is None:
                # No catch-up will start below the oldest mark.
                oldest = self._marks[0]
                delivered = self._sessions.delivered
                if delivered:
                    self._sessions.delivered = {i for i in delivered if i > oldest}
            silent = [p for p, heard in self._heard.items() if now - heard > SILENCE]
        elif self._down_since is not None and now - self._down_since > SILENCE:
            silent = list(self._heard)
        else:
            silent = []
        for process in silent:
            log.warn("Process {process} is silent: its users are offline", process=process)
            del self._heard[process]
            for user_id in self._sessions.held_by(process):
                self._sessions.moved(user_id, None)

    # Reading the directory again.

    async def _read_again(self, kind: str, entity_id: int) -> None:
        try:
            if kind == "user":
                self._directory.refresh_user(entity_id, await self._store.load_user(entity_id))
            else:
                self._directory.refresh_room(entity_id, await self._store.load_room(entity_id))
        except Exception:
            log.failure("Could not read {kind} {id} again", kind=kind, id=entity_id)
        self._drain()

    def _drain(self) -> None:
        """
        Apply what was received while the directory was read.
        """
        backlog, self._backlog = self._backlog or [], None
        while backlog and self._backlog is None:
            self._receive(*backlog.pop(0))
        if self._backlog is not None:
            # Another change to read: the rest waits for it.
            self._backlog[:0] = backlog

    def _start_catch_up(self) -> None:
        if self._catching_up is None:
            self._catching_up = defer.ensureDeferred(self._catch_up())

    async def _catch_up(self) -> None:
        try:
            while self._cut_at is not None and self._up:
                ups, after = self._ups, self._cut_at
                delivered = self._sessions.delivered
                assert delivered is not None
                try:
                    # What is received while the directory is read waits,
                    # as for one user or room, and is applied after.
                    self._backlog = self._backlog or []
                    try:
                        snapshot = await self._store.load_directory()
                        self._directory.reload(snapshot)
                        for user_id in self._sessions.local():
                            if user_id in self._directory.disabled:
                                self._sessions.kick_here(user_id, wire.ACCOUNT_DISABLED)
                    finally:
                        self._drain()
                    pushed = await self._server.catch_up(after, delivered)
                except Exception:
                    log.failure("Could not catch up; trying again")
                    await deferLater(self._clock, BEAT, lambda: None)
                    continue
                if self._up and ups == self._ups:
                    self._cut_at = None
                    if ups > 1 or pushed:
                        log.info("Caught up: {count} messages pushed", count=pushed)
        finally:
            self._catching_up = None
