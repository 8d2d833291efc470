"""
Group commit: every write of chatd goes through one L{GroupCommit}.

SQLite has one writer and every commit costs an fsync (C{synchronous=FULL}).
The writer keeps at most one transaction in flight: jobs that arrive
while it runs wait in a queue and all go together into the next
transaction.  At low load a job commits alone, with no added wait; under
load one fsync serves every job that queued meanwhile.

Each job runs inside its own savepoint (or, if it makes one change only,
in the statement SQLite undoes by itself: L{single_change}), so a job that
raises (a L{ChatError}, or a bug) is undone alone and fails alone while the
rest of its group commits.  A database failure (locked, read-only, disk full) fails
the whole group: nothing of it was stored, and every job's Deferred fails
with L{chatd.database.DatabaseUnavailable}.

A job may also say how several of its submissions run at once
(L{together}): consecutive submissions of it then run as one call, one
statement for the lot, and only if that call fails does each run alone,
so that only the one at fault fails.  Sending messages is such a job: a
group of a hundred messages is one C{INSERT} of a hundred rows.

Jobs run in submission order and their Deferreds fire in that order after
the commit, so message ids grow strictly in commit order, and pushes made
from those callbacks leave in that order too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timezone
from typing import Any, Concatenate, ParamSpec, TypeVar

from twisted.enterprise.adbapi import ConnectionPool, Transaction
from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from chatd.database import OPERATIONAL_ERRORS, DatabaseHealth, is_postgresql_txn
from chatd.metrics import Metrics

P = ParamSpec("P")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: A write job: called in the writer thread with the open transaction and
#: the commit's timestamp, then its own arguments.
Job = Callable[Concatenate[Transaction, str, P], T]

#: Makes the context a committed group's callbacks run within.
Deliveries = Callable[[], AbstractContextManager[Any]]


def single_change(job: F) -> F:
    """
    Mark a write job whose only change to the database is one statement, so
    that the writer runs it without a savepoint of its own.
    """
    job.single_change = True  # type: ignore[attr-defined]
    return job


#: Runs several submissions of one job at once: called with the open
#: transaction, the commit's timestamp and each submission's arguments;
#: returns their results in order, or raises (and then each runs alone).
Many = Callable[[Transaction, str, list[tuple[Any, ...]]], list[Any]]


def together(many: Many) -> Callable[[F], F]:
    """
    Mark a write job whose consecutive submissions the writer may run as
    one call of C{many} (see L{Many}).  C{many} must change nothing when
    it raises but what its savepoint undoes.
    """

    def mark(job: F) -> F:
        job.together = many  # type: ignore[attr-defined]
        return job

    return mark


def utc_stamp(seconds: float) -> str:
    """
    @return: C{seconds} since the epoch as ISO 8601 UTC with milliseconds,
        like C{2020-01-02T12:46:20.123Z}.
    """
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class GroupCommit:
    """
    Runs write jobs on the single writing connection, grouped into as few
    transactions as the load allows.

    @ivar batches: how many transactions committed (for tests and metrics).
    @ivar largest_batch: the most jobs one transaction committed.
    @ivar metrics: where each committed group is counted: its size, its
        time, its jobs.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        health: DatabaseHealth,
        now: Callable[[], float] = time.time,
        *,
        deliveries: Deliveries = nullcontext,
        metrics: Metrics | None = None,
    ) -> None:
        """
        @param pool: a pool with exactly one connection (C{cp_max=1}).
        @param health: where database failures are told.
        @param now: the wall clock, read in the writer thread for each
            transaction's timestamp.
        @param deliveries: what each committed group's callbacks run within:
            the server's L{chatd.sessions.Sessions.batch}, which gathers
            their pushes into one write per connection.  By default,
            nothing.
        @param metrics: where to count the groups; by default, figures of
            its own that nobody reads.
        """
        self._pool = pool
        self._health = health
        self._now = now
        self._deliveries = deliveries
        self._queue: list[tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any]]] = []
        self._in_flight: Deferred[None] | None = None
        self._idle_waiters: list[Deferred[None]] = []
        self.batches = 0
        self.largest_batch = 0
        self.metrics = Metrics() if metrics is None else metrics

    def submit(self, job: Job[P, T], *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        """
        Queue C{job(txn, stamp, *args)} for the next transaction.

        @return: fires with the job's result after its transaction commits,
            or fails with what the job raised, or with
            L{chatd.database.DatabaseUnavailable} when the transaction failed.
        """
        assert not kwargs, "write jobs take positional arguments"
        d: Deferred[T] = Deferred()
        self._queue.append((job, args, d))
        if self._in_flight is None:
            self._flush()
        return d

    def idle(self) -> Deferred[None]:
        """
        @return: fires when every job submitted so far has committed (or
            failed): used by a clean shutdown.
        """
        if self._in_flight is None:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle_waiters.append(d)
        return d

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        jobs = [(job, args) for job, args, _ in batch]
        waiters = [d for _, _, d in batch]
        started = time.perf_counter()
        self._in_flight = self._pool.runInteraction(self._run, jobs, self._now)
        self._in_flight.addBoth(self._committed, jobs, waiters, started)

    @staticmethod
    def _run(
        txn: Transaction,
        jobs: list[tuple[Callable[..., Any], tuple[Any, ...]]],
        now: Callable[[], float],
    ) -> list[tuple[bool, Any]]:
        """
        Run a group of jobs in one transaction (in the writer thread).

        @return: for each job, C{(True, result)} or C{(False, failure)}.
        """
        txn.execute("BEGIN IMMEDIATE")
        stamp = utc_stamp(now())
        outcomes: list[tuple[bool, Any]] = []
        start = 0
        while start < len(jobs):
            job = jobs[start][0]
            end = start + 1
            many: Many | None = getattr(job, "together", None)
            if many is not None:
                while end < len(jobs) and jobs[end][0] is job:
                    end += 1
                if end - start > 1:
                    results = _run_together(txn, stamp, many, [a for _, a in jobs[start:end]])
                    if results is not None:
                        outcomes.extend((True, result) for result in results)
                        start = end
                        continue
            outcomes.extend(_run_alone(txn, stamp, job, args) for job, args in jobs[start:end])
            start = end
        return outcomes

    def _committed(
        self,
        outcome: Any,
        jobs: list[tuple[Callable[..., Any], tuple[Any, ...]]],
        waiters: list[Deferred[Any]],
        started: float,
    ) -> None:
        seconds = time.perf_counter() - started
        self._in_flight = None
        # Start the next group before running this one's callbacks, so the
        # next fsync overlaps with the pushes of this group.
        if self._queue:
            self._flush()
        if isinstance(outcome, Failure):
            failure = self._health.failed(outcome)
            for d in waiters:
                d.errback(failure)
        else:
            self._health.succeeded()
            self.batches += 1
            self.largest_batch = max(self.largest_batch, len(waiters))
            self._count(jobs, outcome, seconds)
            with self._deliveries():
                for d, (ok, value) in zip(waiters, outcome, strict=True):
                    if ok:
                        d.callback(value)
                    else:
                        d.errback(value)
        if self._in_flight is None:
            idle, self._idle_waiters = self._idle_waiters, []
            for d in idle:
                d.callback(None)

    def _count(
        self,
        jobs: list[tuple[Callable[..., Any], tuple[Any, ...]]],
        outcome: list[tuple[bool, Any]],
        seconds: float,
    ) -> None:
        """
        Count a committed group: its size, its time and the jobs that
        succeeded in it.
        """
        metrics = self.metrics
        metrics.commit_size.observe(len(jobs))
        metrics.commit_seconds.observe(seconds)
        writes = metrics.writes
        for (job, _), (ok, _) in zip(jobs, outcome, strict=True):
            if ok:
                writes[job] += 1


def _run_alone(
    txn: Transaction, stamp: str, job: Callable[..., Any], args: tuple[Any, ...]
) -> tuple[bool, Any]:
    """
    Run one job in its own savepoint (or none, for a L{single_change}).

    @return: C{(True, result)} or C{(False, failure)}.
    @raise OPERATIONAL_ERRORS: the database itself failed.
    """
    # A job whose only change is one statement needs no savepoint: SQLite
    # undoes a failed statement by itself.  PostgreSQL fails the whole
    # transaction instead: every job has one there.
    savepoint = not getattr(job, "single_change", False) or is_postgresql_txn(txn)
    if savepoint:
        txn.execute("SAVEPOINT job")
    try:
        outcome: tuple[bool, Any] = (True, job(txn, stamp, *args))
    except OPERATIONAL_ERRORS:
        raise
    except Exception:
        outcome = (False, Failure())
        if savepoint:
            txn.execute("ROLLBACK TO job")
    if savepoint:
        txn.execute("RELEASE job")
    return outcome


def _run_together(
    txn: Transaction, stamp: str, many: Many, calls: list[tuple[Any, ...]]
) -> list[Any] | None:
    """
    Run several submissions of one job as one call of C{many}.

    @return: their results, or L{None} when C{many} raised (and what it did
        was undone).
    @raise OPERATIONAL_ERRORS: the database itself failed.
    """
    txn.execute("SAVEPOINT together")
    try:
        results = many(txn, stamp, calls)
    except OPERATIONAL_ERRORS:
        raise
    except Exception:
        txn.execute("ROLLBACK TO together")
        results = None
    txn.execute("RELEASE together")
    return results
