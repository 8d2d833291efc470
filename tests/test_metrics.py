"""
L{chatd.metrics}: what the parts count, the collector's Prometheus text,
and the C{/metrics} page over real HTTP.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool, readBody

from chatd import metrics
from chatd.metrics import Buckets, Metrics
from chatd.passwords import Passwords, cheap_hasher
from chatd.protocol import ChatProtocol
from chatd.sessions import Sessions
from tests.postgres import on_postgresql
from tests.support import (
    FakeSession,
    ImmediateReactor,
    ServerHarness,
    frame,
    logged_in,
    received,
    start_server,
    wire_client,
)

#: A sample's name and labels -> its value.
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """
    @return: every sample of a Prometheus text exposition.
    """
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(collected: Metrics) -> Samples:
    """
    @return: the samples C{collected} shows, through a registry of its own.
    """
    registry = CollectorRegistry()
    registry.register(collected)
    return parse(generate_latest(registry).decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    """
    @return: the value of the sample C{name} with exactly C{labels}.
    """
    return samples[(name, frozenset(labels.items()))]


class CollectorTests(SynchronousTestCase):
    """
    L{Metrics.collect} shows the counts and reads the gauges at each scrape.
    """

    def test_empty(self) -> None:
        """
        A fresh L{Metrics} shows every family, at zero.
        """
        samples = scrape(Metrics())
        for name in (
            "chatd_connections",
            "chatd_users_online",
            "chatd_messages_committed_total",
            "chatd_pushes_total",
            "chatd_pending_bytes",
            "chatd_password_hashes_in_flight",
            "chatd_commit_size_count",
            "chatd_commit_seconds_count",
        ):
            self.assertEqual(value(samples, name), 0, name)

    def test_counters(self) -> None:
        """
        Requests, errors, pushes and write jobs show with their labels; the
        message jobs are also the messages committed.
        """

        def _add_message_txn() -> None:
            pass

        def _mark_read_txn() -> None:
            pass

        counted = Metrics()
        counted.requests["ping"] += 3
        counted.errors[("", "bad_frame")] += 1
        counted.errors[("login", "login_failed")] += 2
        counted.pushes = 7
        counted.writes[_add_message_txn] += 5
        counted.writes[_mark_read_txn] += 1
        samples = scrape(counted)
        self.assertEqual(value(samples, "chatd_requests_total", type="ping"), 3)
        self.assertEqual(value(samples, "chatd_errors_total", type="", code="bad_frame"), 1)
        self.assertEqual(value(samples, "chatd_errors_total", type="login", code="login_failed"), 2)
        self.assertEqual(value(samples, "chatd_pushes_total"), 7)
        self.assertEqual(value(samples, "chatd_writes_total", job="add_message"), 5)
        self.assertEqual(value(samples, "chatd_writes_total", job="mark_read"), 1)
        self.assertEqual(value(samples, "chatd_messages_committed_total"), 5)

    def test_gauges_read_at_scrape(self) -> None:
        """
        The gauges are what the callables given to L{Metrics.watch} say at
        the moment of the scrape.
        """
        live = {"connections": 3, "users": 2, "pending": 4096, "hashes": 1}
        watched = Metrics()
        watched.watch(
            connections=lambda: live["connections"],
            users_online=lambda: live["users"],
            pending_bytes=lambda: live["pending"],
            hashes_in_flight=lambda: live["hashes"],
        )
        samples = scrape(watched)
        self.assertEqual(value(samples, "chatd_connections"), 3)
        self.assertEqual(value(samples, "chatd_users_online"), 2)
        self.assertEqual(value(samples, "chatd_pending_bytes"), 4096)
        self.assertEqual(value(samples, "chatd_password_hashes_in_flight"), 1)
        live["connections"] = 5
        self.assertEqual(value(scrape(watched), "chatd_connections"), 5)

    def test_histograms(self) -> None:
        """
        The commit histograms have cumulative buckets with C{le} bounds,
        from 1 to 512 jobs and from 0.5 ms to about 2 s, and their sum and
        count.
        """
        counted = Metrics()
        for size in (1, 1, 3, 600):
            counted.commit_size.observe(size)
        counted.commit_seconds.observe(0.0004)
        counted.commit_seconds.observe(0.003)
        samples = scrape(counted)
        bucket = "chatd_commit_size_bucket"
        self.assertEqual(value(samples, bucket, le="1.0"), 2)
        self.assertEqual(value(samples, bucket, le="2.0"), 2)
        self.assertEqual(value(samples, bucket, le="4.0"), 3)
        self.assertEqual(value(samples, bucket, le="512.0"), 3)
        self.assertEqual(value(samples, bucket, le="+Inf"), 4)
        self.assertEqual(value(samples, "chatd_commit_size_count"), 4)
        self.assertEqual(value(samples, "chatd_commit_size_sum"), 605)
        bounds = sorted(
            float(dict(labels)["le"])
            for name, labels in samples
            if name == "chatd_commit_seconds_bucket"
        )
        self.assertEqual(bounds[0], 0.0005)
        self.assertAlmostEqual(bounds[-2], 2.048)
        self.assertEqual(value(samples, "chatd_commit_seconds_bucket", le="0.0005"), 1)
        self.assertEqual(value(samples, "chatd_commit_seconds_bucket", le="0.004"), 2)
        self.assertEqual(value(samples, "chatd_commit_seconds_count"), 2)

    def test_bucket_bounds_are_inclusive(self) -> None:
        """
        A value equal to a bound falls in that bound's bucket (C{le}: less
        than or equal).
        """
        buckets = Buckets([1.0, 2.0])
        for observed in (1.0, 2.0, 2.5):
            buckets.observe(observed)
        self.assertEqual(buckets.counts, [1, 1, 1])
        self.assertEqual(buckets.sum, 5.5)


class InstrumentationTests(SynchronousTestCase):
    """
    Each part counts what it sees into the server's L{Metrics}.
    """

    def setUp(self) -> None:
        self.h = ServerHarness(self)
        self.metrics = self.h.assembly.metrics

    def connect(self) -> tuple[ChatProtocol, StringTransport]:
        protocol = self.h.assembly.factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def test_requests_and_errors_by_type(self) -> None:
        """
        Every request read counts under its type; an error counts under its
        request's type and code.  A type that is no route counts as
        C{unknown}, a frame that is no request as C{""}.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(frame({"type": "ping", "id": 1}))
        protocol.dataReceived(frame({"type": "no such thing", "id": 2}))
        protocol.dataReceived(frame(b"not json"))
        protocol.dataReceived(frame({"type": "login", "id": 3, "username": "x", "password": "y"}))
        codes = [reply.get("code") for reply in received(transport)]
        self.assertEqual(codes, [None, "not_authenticated", "bad_frame", "login_failed"])
        self.assertEqual(self.metrics.requests, {"ping": 1, "unknown": 1, "login": 1})
        self.assertEqual(
            self.metrics.errors,
            {
                ("unknown", "not_authenticated"): 1,
                ("", "bad_frame"): 1,
                ("login", "login_failed"): 1,
            },
        )

    def test_group_commits(self) -> None:
        """
        Each committed group counts its size and time, and its jobs by
        kind: a sent message is a message committed.
        """
        alice, bob = self.h.user("alice"), self.h.user("bob")
        self.h.friends(alice, bob)
        before = sum(self.metrics.commit_size.counts)
        self.h.call(alice, "send_message", target_type=0, target_id=bob.user_id, message="hi")
        self.assertEqual(sum(self.metrics.commit_size.counts), before + 1)
        self.assertEqual(sum(self.metrics.commit_seconds.counts), before + 1)
        samples = scrape(self.metrics)
        self.assertEqual(value(samples, "chatd_messages_committed_total"), 1)
        self.assertEqual(value(samples, "chatd_writes_total", job="add_user"), 2)

    def test_pushes_per_recipient(self) -> None:
        """
        A push counts once per recipient that is online, batched or not.
        """
        sessions = Sessions(self.metrics)
        for user_id in (1, 2):
            session = FakeSession()
            sessions.opened(session)
            sessions.attach(session, user_id, f"u{user_id}")
        sessions.push([1, 2, 3], {"type": "pong"})
        with sessions.batch():
            sessions.push([2], {"type": "pong"})
        self.assertEqual(self.metrics.pushes, 3)

    def test_connections_and_users_online(self) -> None:
        """
        The gauges follow the open connections and the logged-in users.
        """
        protocol, _ = self.connect()
        self.connect()
        self.h.user("alice")
        samples = scrape(self.metrics)
        self.assertEqual(value(samples, "chatd_connections"), 2)
        self.assertEqual(value(samples, "chatd_users_online"), 1)
        protocol.connectionLost()
        self.assertEqual(value(scrape(self.metrics), "chatd_connections"), 1)

    def test_pending_bytes(self) -> None:
        """
        What is written to a connection whose peer stopped reading counts
        as pending until it reads again.
        """
        protocol, transport = self.connect()
        producer = transport.producer
        assert producer is not None
        producer.pauseProducing()
        push = frame({"type": "pong"})
        protocol.send(push)
        protocol.send(push)
        self.assertEqual(value(scrape(self.metrics), "chatd_pending_bytes"), 2 * len(push))
        producer.resumeProducing()
        self.assertEqual(value(scrape(self.metrics), "chatd_pending_bytes"), 0)


class HeldThreadPool:
    """
    A thread pool whose work runs only when the test says.
    """

    def __init__(self) -> None:
        self.held: list[tuple[Any, Any, tuple[Any, ...]]] = []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def callInThread(self, f: Any, *args: Any) -> None:
        pass

    def callInThreadWithCallback(self, on_result: Any, f: Any, *args: Any) -> None:
        self.held.append((on_result, f, args))

    def run_all(self) -> None:
        held, self.held = self.held, []
        for on_result, f, args in held:
            on_result(True, f(*args))


class HashesInFlightTests(SynchronousTestCase):
    """
    L{Passwords.in_flight} counts the hashes and verifications not finished.
    """

    def test_in_flight(self) -> None:
        pool = HeldThreadPool()
        passwords = Passwords(ImmediateReactor(), cheap_hasher(), pool)  # type: ignore[arg-type]
        hashed = passwords.hash("secret1")
        checked = passwords.verify(None, "secret1")
        self.assertEqual(passwords.in_flight, 2)
        pool.run_all()
        self.assertEqual(passwords.in_flight, 0)
        self.successResultOf(hashed)
        self.assertFalse(self.successResultOf(checked).ok)


class EndToEndTests(TestCase):
    """
    A real server on loopback, scraped over real HTTP.
    """

    async def serve_metrics(self, collected: Metrics) -> int:
        """
        Listen for scrapes on a loopback port, closed when the test ends.

        @return: the port number.
        """
        from twisted.internet import reactor

        port = await metrics.listen(reactor, "tcp:0:interface=127.0.0.1", collected)
        self.addCleanup(port.stopListening)
        host = port.getHost()
        assert isinstance(host, IPv4Address)
        return host.port

    async def get(self, port: int, path: str) -> tuple[int, str, bytes]:
        """
        @return: the status, content type and body of C{GET path}.
        """
        from twisted.internet import reactor

        pool = HTTPConnectionPool(reactor)
        self.addCleanup(pool.closeCachedConnections)
        response = await Agent(reactor, pool=pool).request(
            b"GET", f"http://127.0.0.1:{port}{path}".encode()
        )
        body = await readBody(response)
        content_type = response.headers.getRawHeaders(b"content-type", [b""])[0].decode()
        return response.code, content_type, body

    async def test_scrape(self) -> None:
        """
        After two users log in, send messages and get errors, C{/metrics}
        shows it all: connections, users online, requests and errors by
        type and code, messages committed, commits, pushes.
        """
        running = await start_server(self)
        alice = await logged_in(self, running.port, "alice")
        bob = await logged_in(self, running.port, "bob")
        stranger = await wire_client(self, running.port)
        room = (await alice.request("create_room", name="lobby"))["room"]
        await bob.request("join_room", name="lobby")
        for text in ("hello", "again"):
            reply = await alice.request(
                "send_message", target_type=1, target_id=room["id"], message=text
            )
            self.assertEqual(reply["type"], "on_new_message")
            await bob.push("on_new_message")
        self.assertEqual((await alice.request("no_such_type"))["code"], "unknown_type")
        reply = await stranger.request("login", username="alice", password="wrong-one")
        self.assertEqual(reply["code"], "login_failed")

        # start_server keeps its assembly to itself; the writer has the
        # same Metrics as every other part.
        port = await self.serve_metrics(running.store.writer.metrics)
        status, content_type, body = await self.get(port, "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(content_type.startswith("text/plain"), content_type)
        samples = parse(body.decode())
        self.assertEqual(value(samples, "chatd_connections"), 3)
        self.assertEqual(value(samples, "chatd_users_online"), 2)
        self.assertEqual(value(samples, "chatd_requests_total", type="send_message"), 2)
        self.assertEqual(value(samples, "chatd_requests_total", type="unknown"), 1)
        self.assertEqual(value(samples, "chatd_errors_total", type="login", code="login_failed"), 1)
        self.assertEqual(
            value(samples, "chatd_errors_total", type="unknown", code="unknown_type"), 1
        )
        self.assertEqual(value(samples, "chatd_messages_committed_total"), 2)
        self.assertGreater(value(samples, "chatd_commit_size_count"), 0)
        self.assertGreater(value(samples, "chatd_commit_seconds_count"), 0)
        self.assertGreater(value(samples, "chatd_pushes_total"), 0)
        self.assertEqual(value(samples, "chatd_pending_bytes"), 0)
        self.assertEqual(value(samples, "chatd_password_hashes_in_flight"), 0)

    async def test_other_paths_not_found(self) -> None:
        """
        Only C{/metrics} is served: every other path is 404.
        """
        port = await self.serve_metrics(Metrics())
        for path in ("/", "/metric", "/metrics/extra", "/favicon.ico"):
            status, _, _ = await self.get(port, path)
            self.assertEqual(status, 404, path)

    async def test_openmetrics_when_asked(self) -> None:
        """
        A scraper that asks for OpenMetrics gets it.
        """
        from twisted.internet import reactor
        from twisted.web.http_headers import Headers

        port = await self.serve_metrics(Metrics())
        pool = HTTPConnectionPool(reactor)
        self.addCleanup(pool.closeCachedConnections)
        response = await Agent(reactor, pool=pool).request(
            b"GET",
            f"http://127.0.0.1:{port}/metrics".encode(),
            Headers({b"accept": [b"application/openmetrics-text; version=1.0.0"]}),
        )
        body = await readBody(response)
        content_type = response.headers.getRawHeaders(b"content-type")[0]
        self.assertTrue(content_type.startswith(b"application/openmetrics-text"))
        self.assertTrue(body.endswith(b"# EOF\n"))


# These suites run on PostgreSQL too.
on_postgresql(
    globals(),
    InstrumentationTests,
)
