"""
The order of one connection's requests and of their answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred

A = TypeVar("A")


class _Place(Generic[A]):
    """
    A request's place in the line of answers: empty until it is answered.
    """

    __slots__ = ("answer", "filled")

    def __init__(self) -> None:
        self.answer: A | None = None
        self.filled = False


class RequestQueue(Generic[A]):
    """
    Runs a connection's requests in the order they arrived, and hands their
    answers out in that order.

    A request runs alone (the default) or beside others (C{concurrent}): a
    concurrent request starts while only concurrent ones run; one that runs
    alone waits for everything before it, and everything after it waits
    for it.  Each request takes its place in the line of answers when it
    arrives, and the answers at the head of the line are handed to
    C{deliver} as they come: a quick answer waits for the slower ones
    before it.

    Lists, not deques: an empty deque costs 600 bytes, and most connections
    sit idle with an empty queue.
    """

    __slots__ = ("_alone", "_deliver", "_line", "_running", "_starting", "_stopped", "_waiting")

    def __init__(self, deliver: Callable[[A], bool]) -> None:
        """
        @param deliver: writes one answer; returns L{False} when nothing
            more is to be delivered or started (the connection closes).
        """
        self._deliver = deliver
        self._line: list[_Place[A]] = []
        self._waiting: list[tuple[_Place[A], Callable[[], A | Deferred[A]], bool]] = []
        self._running = 0
        self._alone = False
        self._starting = False
        self._stopped = False

    def answered(self, answer: A) -> None:
        """
        A request answered as it arrived (one refused before it could run):
        its answer takes its place in the line.
        """
        place: _Place[A] = _Place()
        self._line.append(place)
        self._fill(place, answer)

    def submit(self, run: Callable[[], A | Deferred[A]], concurrent: bool = False) -> None:
        """
        Queue a request.

        @param run: runs it, returning its answer or a Deferred of it that
            never fails: turning errors into answers is the caller's job.
        @param concurrent: whether it may run beside other concurrent ones.
        """
        place: _Place[A] = _Place()
        self._line.append(place)
        self._waiting.append((place, run, concurrent))
        self._start_ready()

    def stop(self) -> None:
        """
        Start and deliver nothing more.
        """
        self._stopped = True

    def _start_ready(self) -> None:
        # A request that answers at once finishes inside run(), which calls
        # back here: the flag keeps the loop flat.
        if self._starting:
            return
        self._starting = True
        try:
            waiting = self._waiting
            while waiting and not self._stopped:
                place, run, concurrent = waiting[0]
                if self._running and (self._alone or not concurrent):
                    return
                del waiting[0]
                self._running += 1
                self._alone = not concurrent
                result = run()
                if isinstance(result, Deferred):
                    result.addCallback(self._done, place)
                else:
                    self._done(result, place)
        finally:
            self._starting = False

    def _done(self, answer: A, place: _Place[A]) -> None:
        self._running -= 1
        if not self._running:
            self._alone = False
        self._fill(place, answer)
        self._start_ready()

    def _fill(self, place: _Place[A], answer: A) -> None:
        place.answer = answer
        place.filled = True
        line = self._line
        while line and line[0].filled and not self._stopped:
            head = line.pop(0)
            if not self._deliver(head.answer):  # type: ignore[arg-type]
                self._stopped = True
