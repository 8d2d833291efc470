"""
The composition root: the one place where chatd's parts are made and
wired to each other.

The service (L{chatd.service}) and the tests both get their server from
here, so a new collaborator is wired once.  Every part is handed what it
needs through its constructor: the sessions' L{Sessions.batch} reaches the
group commit through the store, the server reaches the factory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from chatd import wire
from chatd.cluster import Cluster, RedisURL
from chatd.database import make_pool
from chatd.directory import Directory
from chatd.files import FileLimits, Folder, RunInThread, Transfers
from chatd.metrics import Metrics
from chatd.passwords import Passwords, cheap_hasher
from chatd.protocol import ChatFactory, Limits
from chatd.server import ChatServer
from chatd.sessions import Sessions
from chatd.store import Store

log = Logger()

#: A server's limits unless told otherwise: those of PROTOCOL.md 8.
_DEFAULT_LIMITS = Limits()
_DEFAULT_FILE_LIMITS = FileLimits()


@dataclass(frozen=True, slots=True)
class Assembly:
    """
    A chatd server and the parts it is made of, wired, its database open
    and its password threads started.

    @ivar factory: what a port listens with.
    @ivar metrics: what the parts count, for L{chatd.metrics.listen}.
    @ivar cluster: this process as one of a deployment, or L{None} when
        it serves alone.
    """

    store: Store
    passwords: Passwords
    sessions: Sessions
    directory: Directory
    transfers: Transfers
    server: ChatServer
    factory: ChatFactory
    metrics: Metrics
    cluster: Cluster | None = None

    async def shut_down(self, clock: IReactorTime, grace: float) -> None:
        """
        Stop reading requests, let every write commit (and its pushes go
        out), kick everyone with C{shutdown}, wait up to C{grace} seconds
        for them to close, then L{close}.  The port must have stopped
        listening first.
        """
        for session in self.sessions.everyone():
            session.stop_reading()
        await self.store.writer.idle()
        for session in self.sessions.everyone():
            session.kick(wire.SHUTDOWN)
        # The reactor drops what is still buffered when it stops: give the
        # kicks time to reach clients that are reading.
        closed = self.sessions.all_closed()
        closed.addTimeout(grace, clock)
        try:
            await closed
        except defer.TimeoutError:
            log.warn("Some clients did not read their shutdown notice")
        await self.close()

    async def close(self) -> None:
        """
        Let every write submitted so far commit, leave the deployment, stop
        the password threads and close the database.
        """
        await self.store.writer.idle()
        if self.cluster is not None:
            await self.cluster.leave()
        self.transfers.stop()
        self.passwords.stop()
        self.store.close()


async def assemble(
    writer_pool: ConnectionPool,
    reader_pool: ConnectionPool,
    passwords: Passwords,
    reactor: Any,
    limits: Limits = _DEFAULT_LIMITS,
    *,
    files_folder: str,
    file_limits: FileLimits = _DEFAULT_FILE_LIMITS,
    run_in_thread: RunInThread = deferToThread,
    now: Callable[[], float] = time.time,
    token_days: float = 30.0,
    redis: RedisURL | None = None,
) -> Assembly:
    """
    Wire a chatd server on the database the pools reach: bring its schema
    up to date, load the directory, prepare the files folder, start the
    password threads.  When the database cannot be opened the pools are
    closed again and the error raised.

    @param writer_pool: a pool of exactly one connection, for every write.
    @param reader_pool: the pool for reads.
    @param passwords: the password hasher, not started yet.
    @param reactor: the clock of the server and its connections, and the
        reactor the pools and the password threads report to.
    @param limits: the per-connection limits.
    @param files_folder: where the content of files is stored
        (L{chatd.files}), created if missing.
    @param file_limits: the largest file and each user's quota.
    @param run_in_thread: runs the blocking work on files in a thread.
    @param now: the wall clock of the commit timestamps and token ages.
    @param token_days: how long a session token works unused.
    @param redis: the Redis of the deployment this process is one of
        (L{chatd.cluster}), or L{None} when it serves alone.
    """
    metrics = Metrics()
    sessions = Sessions(metrics)
    store = Store(
        writer_pool,
        reader_pool,
        deliveries=sessions.batch,
        now=now,
        token_days=token_days,
        metrics=metrics,
    )
    directory = Directory()
    transfers = Transfers(
        store,
        directory,
        Folder(files_folder, shared=redis is not None),
        reactor,
        file_limits,
        run_in_thread=run_in_thread,
    )
    try:
        await store.migrate()
        directory.load(await store.load_directory())
        await transfers.start()
    except BaseException:
        store.close()
        raise
    passwords.start()
    server = ChatServer(store, passwords, sessions, directory, transfers, reactor)
    factory = ChatFactory(server, limits, reactor, metrics)
    metrics.watch(
        connections=sessions.connections,
        users_online=lambda: len(sessions),
        pending_bytes=factory.unsent,
        hashes_in_flight=lambda: passwords.in_flight,
    )
    cluster = None
    if redis is not None:
        cluster = Cluster(reactor, f"chatd:{redis.db}", sessions, directory, store, server)
        try:
            await cluster.join(redis)
        except BaseException:
            passwords.stop()
            store.close()
            raise
    return Assembly(
        store, passwords, sessions, directory, transfers, server, factory, metrics, cluster
    )


async def open(
    path: str,
    reactor: Any,
    limits: Limits = _DEFAULT_LIMITS,
    *,
    insecure_fast_hashes: bool = False,
    token_days: float = 30.0,
    files_folder: str | None = None,
    file_limits: FileLimits = _DEFAULT_FILE_LIMITS,
    now: Callable[[], float] = time.time,
    redis: str | None = None,
) -> Assembly:
    """
    Open (creating it if need be) the database at C{path} and wire a chatd
    server on it with L{assemble}.

    @param insecure_fast_hashes: hash passwords with the cheapest argon2
        parameters (L{cheap_hasher}), for tests and benchmarks only: such
        hashes protect nothing, and every login rehashes an account's
        password with them.
    @param token_days: how long a session token works unused.
    @param files_folder: where files are stored; by default C{path} with
        C{.files} added.
    @param file_limits: the largest file and each user's quota.
    @param now: the wall clock (see L{assemble}).
    @param redis: the URL of the deployment's Redis, when this process is
        one of several on a PostgreSQL database; the database is then
        claimed for the deployment, not for this process alone.
    """
    hasher = cheap_hasher() if insecure_fast_hashes else None
    return await assemble(
        make_pool(path, reactor, 1, claim="alone" if redis is None else "shared"),
        make_pool(path, reactor, 2),
        Passwords(reactor, hasher),
        reactor,
        limits,
        files_folder=path + ".files" if files_folder is None else files_folder,
        file_limits=file_limits,
        now=now,
        token_days=token_days,
        redis=None if redis is None else RedisURL(redis),
    )
