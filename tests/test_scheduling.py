"""
Tests for L{chatd.scheduling.RequestQueue}: when requests start, and the
order their answers leave in.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from chatd.scheduling import RequestQueue


class Requests:
    """
    Requests whose answers the test gives by hand, and what was delivered.
    """

    def __init__(self, stop_after: str | None = None) -> None:
        self.started: list[str] = []
        self.delivered: list[str] = []
        self.pending: dict[str, Deferred[str]] = {}
        self._stop_after = stop_after
        self.queue: RequestQueue[str] = RequestQueue(self.deliver)

    def deliver(self, answer: str) -> bool:
        self.delivered.append(answer)
        return answer != self._stop_after

    def slow(self, name: str, concurrent: bool = False) -> None:
        """
        Submit a request that answers when L{finish} is called.
        """

        def run() -> Deferred[str]:
            self.started.append(name)
            d: Deferred[str] = Deferred()
            self.pending[name] = d
            return d

        self.queue.submit(run, concurrent)

    def quick(self, name: str, concurrent: bool = False) -> None:
        """
        Submit a request that answers as it runs.
        """

        def run() -> str:
            self.started.append(name)
            return name

        self.queue.submit(run, concurrent)

    def finish(self, name: str) -> None:
        self.pending.pop(name).callback(name)


class StartTests(SynchronousTestCase):
    def test_one_after_another(self) -> None:
        """
        A request that runs alone starts once the one before it is done.
        """
        r = Requests()
        r.slow("a")
        r.slow("b")
        self.assertEqual(r.started, ["a"])
        r.finish("a")
        self.assertEqual(r.started, ["a", "b"])

    def test_concurrent_beside_each_other(self) -> None:
        """
        Consecutive concurrent requests all start at once.
        """
        r = Requests()
        for name in "abc":
            r.slow(name, concurrent=True)
        self.assertEqual(r.started, ["a", "b", "c"])

    def test_concurrent_waits_for_alone(self) -> None:
        """
        A concurrent request waits for a request running alone.
        """
        r = Requests()
        r.slow("a")
        r.slow("b", concurrent=True)
        self.assertEqual(r.started, ["a"])
        r.finish("a")
        self.assertEqual(r.started, ["a", "b"])

    def test_alone_waits_for_all_concurrent(self) -> None:
        """
        A request that runs alone waits until every concurrent request
        before it is done, and holds back the concurrent ones after it.
        """
        r = Requests()
        r.slow("a", concurrent=True)
        r.slow("b", concurrent=True)
        r.slow("c")
        r.slow("d", concurrent=True)
        r.finish("b")
        self.assertEqual(r.started, ["a", "b"])
        r.finish("a")
        self.assertEqual(r.started, ["a", "b", "c"])
        r.finish("c")
        self.assertEqual(r.started, ["a", "b", "c", "d"])

    def test_quick_answers_run_in_a_loop(self) -> None:
        """
        Many requests that answer at once all run and are delivered, one
        after another, without growing the stack.
        """
        r = Requests()
        r.slow("first")
        names = [str(i) for i in range(5000)]
        for name in names:
            r.quick(name)
        r.finish("first")
        self.assertEqual(r.delivered, ["first", *names])


class OrderTests(SynchronousTestCase):
    def test_answers_in_arrival_order(self) -> None:
        """
        A concurrent request answered first waits for the ones before it.
        """
        r = Requests()
        for name in "abc":
            r.slow(name, concurrent=True)
        r.finish("c")
        r.finish("b")
        self.assertEqual(r.delivered, [])
        r.finish("a")
        self.assertEqual(r.delivered, ["a", "b", "c"])

    def test_answered_on_arrival_keeps_its_place(self) -> None:
        """
        An answer given on arrival waits behind the requests before it, and
        the requests after it wait behind it.
        """
        r = Requests()
        r.slow("a")
        r.queue.answered("refused")
        r.quick("b")
        self.assertEqual(r.delivered, [])
        r.finish("a")
        self.assertEqual(r.delivered, ["a", "refused", "b"])

    def test_answered_alone_goes_at_once(self) -> None:
        r = Requests()
        r.queue.answered("refused")
        self.assertEqual(r.delivered, ["refused"])


class StopTests(SynchronousTestCase):
    def test_deliver_stops(self) -> None:
        """
        Once C{deliver} says stop, nothing more is delivered or started.
        """
        r = Requests(stop_after="b")
        r.slow("a", concurrent=True)
        r.slow("b", concurrent=True)
        r.slow("c", concurrent=True)
        r.slow("d")
        r.finish("c")
        r.finish("b")
        r.finish("a")
        self.assertEqual(r.delivered, ["a", "b"])
        self.assertEqual(r.started, ["a", "b", "c"])

    def test_stop(self) -> None:
        """
        After L{RequestQueue.stop}, running requests may finish but nothing
        is delivered and nothing waiting starts.
        """
        r = Requests()
        r.slow("a")
        r.slow("b")
        r.queue.stop()
        r.finish("a")
        self.assertEqual((r.delivered, r.started), ([], ["a"]))
        r.quick("c")
        self.assertEqual(r.started, ["a"])
