"""
Message retention (C{--retention-days}): once a day, the messages older
than the retention period are deleted, with everything that is theirs.

A pass deletes in batches, each one job of the writer
(L{chatd.store.Store.expire_messages}), and waits for each batch to commit
before it submits the next: the writer is never held longer than one batch
takes, and the messages sent meanwhile commit between the batches.  The
oldest messages go first, so what stays is every message from some id on:
histories begin later, replies to a deleted message lose their quote, and
search forgets the deleted texts.

A pass that fails (the database refused a batch, or a bug) is logged and
ends; the next day's pass starts again where it stopped.  Nothing here
raises into the reactor.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from chatd.database import DatabaseUnavailable
from chatd.store import Store
from chatd.writer import utc_stamp

#: Seconds in a day, the unit of C{--retention-days}.
DAY = 86400.0


class Retention:
    """
    Deletes the messages older than C{days} days: a first pass soon after
    L{start}, then one every C{every} seconds.

    @ivar passes: how many passes ended (for tests and metrics).
    """

    log = Logger()

    def __init__(
        self,
        store: Store,
        clock: IReactorTime,
        days: float,
        *,
        now: Callable[[], float] = time.time,
        batch: int = 500,
        every: float = DAY,
        delay: float = 60.0,
    ) -> None:
        """
        @param store: the database.
        @param clock: what schedules the passes (the reactor).
        @param days: how old a message may grow: older ones are deleted.
        @param now: the wall clock, against which messages' commit times
            (from the writer's own wall clock) are compared.
        @param batch: the most messages one writer job deletes.  500 hold
            the writer a few milliseconds (README, Message retention).
        @param every: seconds from the start of one pass to the next.
        @param delay: seconds from L{start} to the first pass: the server
            finishes starting, and the clients that a restart brought back
            log in, before the first pass writes.
        """
        self._store = store
        self._clock = clock
        self._days = days
        self._now = now
        self._batch = batch
        self._every = every
        self._delay = delay
        self._next: IDelayedCall | None = None
        self._running = False
        self._stopping = False
        self._stopped: list[Deferred[None]] = []
        self.passes = 0

    def start(self) -> None:
        """
        Schedule the first pass, C{delay} seconds from now (or, started
        again while the pass that L{stop} ends still runs, let it go on).
        """
        self._stopping = False
        if not self._running and self._next is None:
            self._next = self._clock.callLater(self._delay, self._run)

    def stop(self) -> Deferred[None]:
        """
        Schedule no more passes, and end the one in progress after its
        current batch.

        @return: fires when no pass runs any more: the store may then close.
        """
        self._stopping = True
        if self._next is not None:
            self._next.cancel()
            self._next = None
        if not self._running:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._stopped.append(d)
        return d

    def _run(self) -> None:
        self._next = None
        self._running = True
        # The pass handles its own errors; this errback is for a bug in
        # that handling, so that nothing goes unlogged.
        d = Deferred.fromCoroutine(self._pass())
        d.addErrback(lambda failure: self.log.failure("Retention: a pass failed", failure))
        d.addBoth(self._ran)

    def _ran(self, ignored: object) -> None:
        self._running = False
        self.passes += 1
        if not self._stopping:
            self._next = self._clock.callLater(self._every, self._run)
        stopped, self._stopped = self._stopped, []
        for d in stopped:
            d.callback(None)

    async def _pass(self) -> None:
        """
        Delete every message older than the retention period, one batch at
        a time, until a batch finds fewer than it may delete (or L{stop} was
        called, or a batch failed); then log one line.
        """
        # One cutoff for the whole pass: messages that grow old while it
        # runs wait for the next one, and the pass ends.
        cutoff = utc_stamp(self._now() - self._days * DAY)
        deleted = 0
        try:
            while not self._stopping:
                count = await self._store.expire_messages(cutoff, self._batch)
                deleted += count
                if count < self._batch:
                    break
        except DatabaseUnavailable as e:
            # The cause was logged with its traceback where it happened
            # (chatd.database.DatabaseHealth).
            self.log.warn(
                "Retention: deleted {count} messages older than {days:g} days, then"
                " stopped: the database failed ({why}); the next pass tries again",
                count=deleted,
                days=self._days,
                why=e,
            )
        except Exception:
            self.log.failure(
                "Retention: deleted {count} messages older than {days:g} days, then a batch"
                " failed; the next pass tries again",
                count=deleted,
                days=self._days,
            )
        else:
            self.log.info(
                "Retention: deleted {count} messages older than {days:g} days",
                count=deleted,
                days=self._days,
            )
