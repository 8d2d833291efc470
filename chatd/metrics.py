"""
Prometheus metrics: what chatd counts, and the HTTP page that shows it.

The parts count into one L{Metrics} as plain Python ints, dicts and lists:
a message crosses these counts hundreds of thousands of times a second,
and a C{prometheus_client} metric object would take a lock at each.  The
figures become Prometheus metric families only when someone scrapes
C{/metrics} (L{Metrics.collect}); the gauges (connections, users online,
bytes pending, hashes in flight) are not counted at all but read then from
the live objects, through the callables L{Metrics.watch} is given.

Everything here runs on the reactor thread, the scrape included, so
nothing needs a lock.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

#: The C{type} label of a request whose type is not a known route: any
#: string a client sends must not become a label value of its own.
UNKNOWN_TYPE = "unknown"
#: The C{type} label of an error answering a frame that could not be read
#: as a request (C{bad_frame}, C{frame_too_large}).
NO_TYPE = ""

#: The bounds of the C{chatd_commit_size} buckets: jobs per group commit.
COMMIT_SIZE_BOUNDS: tuple[float, ...] = tuple(float(2**n) for n in range(10))  # 1 .. 512
#: The bounds of the C{chatd_commit_seconds} buckets: 0.5 ms .. 2.048 s.
COMMIT_SECONDS_BOUNDS: tuple[float, ...] = tuple(0.0005 * 2**n for n in range(13))

#: The write job that stores a sent message (L{chatd.store}), whose
#: commits C{chatd_messages_committed_total} counts.
MESSAGE_JOB = "_add_message_txn"


def _zero() -> int:
    return 0


class Buckets:
    """
    A histogram's counts, kept as a plain list.

    @ivar bounds: the upper bounds of the buckets, ascending; a last
        bucket, C{+Inf}, takes what is above them all.
    @ivar counts: how many values fell in each bucket (not cumulative).
    @ivar sum: the sum of every value observed.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """
        Count C{value} in the first bucket whose bound it does not exceed.
        """
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        """
        @return: these counts as the Prometheus histogram C{name}, whose
            buckets are cumulative.
        """
        buckets: list[tuple[str, float]] = []
        total = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            buckets.append((floatToGoString(bound), total))
        return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=self.sum)


class Metrics(Collector):
    """
    What one chatd server counts, and the collector that shows it.

    The counts are bumped by the parts that see the events; the gauges are
    callables, read at each scrape (L{watch}).

    @ivar requests: request type (or L{UNKNOWN_TYPE}) -> requests received,
        refused ones included (L{chatd.protocol.ChatProtocol}).
    @ivar errors: (request type, or L{UNKNOWN_TYPE}, or L{NO_TYPE}; error
        code) -> C{error} replies sent (L{chatd.protocol.ChatProtocol}).
    @ivar writes: write job -> how many of it committed
        (L{chatd.writer.GroupCommit}).
    @ivar commit_size: the jobs of each committed group.
    @ivar commit_seconds: each committed group's time from the start of
        its transaction to its commit, as the reactor sees it.
    @ivar pushes: push frames handed to recipients' connections, one per
        recipient (L{chatd.sessions.Sessions.push}).
    """

    def __init__(self) -> None:
        # defaultdict rather than Counter: on the hot path, a Counter's += costs
        # over twice as much (measured).
        self.requests: defaultdict[str, int] = defaultdict(int)
        self.errors: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.writes: defaultdict[Callable[..., Any], int] = defaultdict(int)
        self.commit_size = Buckets(COMMIT_SIZE_BOUNDS)
        self.commit_seconds = Buckets(COMMIT_SECONDS_BOUNDS)
        self.pushes = 0
        self._connections: Callable[[], int] = _zero
        self._users_online: Callable[[], int] = _zero
        self._pending_bytes: Callable[[], int] = _zero
        self._hashes_in_flight: Callable[[], int] = _zero

    def watch(
        self,
        *,
        connections: Callable[[], int],
        users_online: Callable[[], int],
        pending_bytes: Callable[[], int],
        hashes_in_flight: Callable[[], int],
    ) -> None:
        """
        Say where the gauges are read at each scrape.

        @param connections: the open connections, logged in or not.
        @param users_online: the users with a session.
        @param pending_bytes: the bytes written to connections whose peers
            stopped reading, waiting unsent.
        @param hashes_in_flight: the password hashes and verifications
            started and not finished.
        """
        self._connections = connections
        self._users_online = users_online
        self._pending_bytes = pending_bytes
        self._hashes_in_flight = hashes_in_flight

    def collect(self) -> Iterator[Metric]:
        """
        @return: every figure, as Prometheus metric families.
        """
        yield GaugeMetricFamily(
            "chatd_connections", "Open client connections.", value=self._connections()
        )
        yield GaugeMetricFamily(
            "chatd_users_online", "Users logged in (one session each).", value=self._users_online()
        )
        requests = CounterMetricFamily(
            "chatd_requests", "Requests received, by request type.", labels=["type"]
        )
        for kind, count in sorted(self.requests.items()):
            requests.add_metric([kind], count)
        yield requests
        errors = CounterMetricFamily(
            "chatd_errors",
            "Error replies sent, by request type (empty when the frame was not a request)"
            " and error code.",
            labels=["type", "code"],
        )
        for (kind, code), count in sorted(self.errors.items()):
            errors.add_metric([kind, code], count)
        yield errors
        writes = CounterMetricFamily(
            "chatd_writes", "Write jobs committed, by job.", labels=["job"]
        )
        messages = 0
        for job, count in sorted(self.writes.items(), key=lambda item: _job_label(item[0])):
            writes.add_metric([_job_label(job)], count)
            if getattr(job, "__name__", None) == MESSAGE_JOB:
                messages += count
        yield writes
        yield CounterMetricFamily(
            "chatd_messages_committed",
            "Messages sent and committed to the database.",
            value=messages,
        )
        yield self.commit_size.family("chatd_commit_size", "Write jobs per group commit.")
        yield self.commit_seconds.family(
            "chatd_commit_seconds",
            "Seconds from a group's transaction start to its commit, seen from the reactor.",
        )
        yield CounterMetricFamily(
            "chatd_pushes", "Push frames written to clients, one per recipient.", value=self.pushes
        )
        yield GaugeMetricFamily(
            "chatd_pending_bytes",
            "Bytes written to connections whose peers stopped reading, not yet sent.",
            value=self._pending_bytes(),
        )
        yield GaugeMetricFamily(
            "chatd_password_hashes_in_flight",
            "Password hashes and verifications started and not finished.",
            value=self._hashes_in_flight(),
        )


def _job_label(job: Callable[..., Any]) -> str:
    """
    @return: the C{job} label of a write job: C{add_message} for
        C{_add_message_txn}.
    """
    name: str = getattr(job, "__name__", "job")
    return name.removeprefix("_").removesuffix("_txn")


class MetricsPage(Resource):
    """
    The Prometheus exposition of one registry, in the format the scraper
    asks for (text by default, OpenMetrics when its C{Accept} says so).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self._registry = registry

    def render_GET(self, request: Request) -> bytes:
        accept = request.getHeader(b"accept")
        encoder, content_type = choose_encoder(accept.decode("latin-1") if accept else "")
        request.setHeader(b"content-type", content_type.encode("ascii"))
        return encoder(self._registry)


class _QuietSite(Site):
    """
    A L{Site} that writes no access log: a scrape every few seconds would
    fill the server's log with nothing worth reading.
    """

    noisy = False

    def log(self, request: Any) -> None:
        pass


def listen(reactor: Any, endpoint: str, metrics: Metrics) -> Deferred[IListeningPort]:
    """
    Serve C{metrics} at C{/metrics} over HTTP; every other path is 404.

    @param endpoint: a Twisted server endpoint description, such as
        C{tcp:9464:interface=127.0.0.1}.
    @return: fires with the listening port.
    """
    # A registry of our own, not prometheus_client's global one: several
    # servers in one process (the tests) each show their own figures.
    registry = CollectorRegistry()
    registry.register(metrics)
    root = Resource()
    root.putChild(b"metrics", MetricsPage(registry))
    return serverFromString(reactor, endpoint).listen(_QuietSite(root))
