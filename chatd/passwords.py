"""
Password hashing: argon2id through argon2-cffi, off the reactor thread.

Hashing is deliberately slow (tens of milliseconds and 64 MiB with the
RFC 9106 low-memory profile that L{PasswordHasher} uses by default), so it
runs in a thread pool of its own, sized to leave one core to the reactor,
at the lowest CPU priority: a storm of logins must not slow the messages of
people already logged in.
The parameters live in each stored hash: a login whose hash was made with
other parameters is rehashed.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")


def cheap_hasher() -> PasswordHasher:
    """
    @return: a hasher with the smallest parameters argon2 allows, for tests
        and benchmarks only (C{twistd chatd --insecure-fast-hashes}): a test
        suite or a benchmark that logs in hundreds of times stays fast.
        Its hashes protect nothing.
    """
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@dataclass(frozen=True, slots=True)
class Verdict:
    """
    The outcome of checking a password.

    @ivar ok: whether the password matched.
    @ivar new_hash: when it matched with outdated parameters, the hash to
        store instead; else L{None}.
    """

    ok: bool
    new_hash: str | None = None


class Passwords:
    """
    Hash and verify passwords in a thread pool.

    @ivar in_flight: the hashes and verifications asked for and not
        finished: running, or queued behind the others.
    """

    def __init__(
        self,
        reactor: IReactorFromThreads,
        hasher: PasswordHasher | None = None,
        pool: ThreadPool | None = None,
    ) -> None:
        """
        @param hasher: the argon2 parameters; the default is argon2-cffi's
            RFC 9106 low-memory profile.
        @param pool: the threads to hash in; by default a pool of one
            thread fewer than the machine has cores (at least one), running
            at the lowest CPU priority.
        """
        self._reactor = reactor
        self._hasher = hasher or PasswordHasher()
        # Our own threads run at the lowest priority; a pool handed in (the
        # tests' inline one runs on the caller's thread) is left as it is.
        self._idle = pool is None
        if pool is None:
            pool = ThreadPool(1, max(1, (os.cpu_count() or 2) - 1), "chatd-passwords")
        self._pool = pool
        # Verifying against this when a username does not exist does the
        # same work as a wrong password, so timing does not tell them apart.
        # Made in a hashing thread at start.
        self._dummy_hash: str | None = None
        self.in_flight = 0

    def start(self) -> None:
        """
        Start the hashing threads, and make the dummy hash in one of them.
        """
        self._pool.start()
        self._pool.callInThread(self._make_dummy_hash)

    def _in_hashing_thread(self) -> None:
        if self._idle:
            _lower_priority()

    def _make_dummy_hash(self) -> str:
        self._in_hashing_thread()
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash("chatd: no such user")
        return self._dummy_hash

    def stop(self) -> None:
        """
        Stop the hashing threads (waiting for the current hashes).
        """
        self._pool.stop()

    def hash(self, password: str) -> Deferred[str]:
        """
        @return: fires with the argon2id hash of C{password}.
        """
        return self._tracked(deferToThreadPool(self._reactor, self._pool, self._hash, password))

    def _hash(self, password: str) -> str:
        self._in_hashing_thread()
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> Deferred[Verdict]:
        """
        Check C{password} against C{stored_hash}; with no hash (an unknown
        user), check it against a dummy hash and fail, doing the same work.

        @return: fires with the L{Verdict}.
        """
        return self._tracked(
            deferToThreadPool(self._reactor, self._pool, self._verify, stored_hash, password)
        )

    def _tracked(self, work: Deferred[T]) -> Deferred[T]:
        """
        Count C{work} in L{in_flight} until it fires.
        """
        self.in_flight += 1
        return work.addBoth(self._finished)

    def _finished(self, result: T) -> T:
        self.in_flight -= 1
        return result

    def _verify(self, stored_hash: str | None, password: str) -> Verdict:
        self._in_hashing_thread()
        try:
            self._hasher.verify(stored_hash or self._make_dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            return Verdict(False)
        if stored_hash is None:
            return Verdict(False)
        if self._hasher.check_needs_rehash(stored_hash):
            return Verdict(True, self._hasher.hash(password))
        return Verdict(True)


_niced = threading.local()


def _lower_priority() -> None:
    """
    Give the calling thread (and the threads argon2 starts from it) the
    lowest CPU priority, once: nice 19 and, on Linux, SCHED_IDLE.
    """
    if getattr(_niced, "done", False):
        return
    _niced.done = True
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, 19)
        # SCHED_IDLE: run only when nothing else wants the CPU.
        os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        # Not Linux, or not allowed: hashing keeps the normal priority.
        pass
