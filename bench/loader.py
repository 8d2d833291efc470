"""
The load generator of the chatd benchmark: one process, one Twisted reactor.

L{bench.__main__} runs it as a subprocess, pinned to its own CPU, against
chatd or the baseline; it prints one JSON object per line on stdout (the
results) and its progress on stderr.

    python -m bench.loader --port P --server-pid PID session   # (a), (b), (c) and (f)
    python -m bench.loader --port P --server-pid PID idle      # (d)
    python -m bench.loader --port P --server-pid PID history   # (e)
    python -m bench.loader --port P --server-pid PID login     # (g)
    python -m bench.loader --port P --server-pid PID search --users A,B   # (h)
    python -m bench.loader --port P --server-pid PID resume    # (i), told on stdin
    python -m bench.loader --port P --server-pid PID files     # (j)

Every message text starts with C{LDT:<sender>:<seq>:<send-ns>:} (the
marker chatload uses), padded to 100 characters; C{<send-ns>} is
C{time.time_ns()} just before the write.  A receiver takes the arrival time
of what it reads from the kernel (C{SO_TIMESTAMPNS}: when the bytes reached
its socket, on the same clock), not from when this process got round to
reading it, so latency is end to end on one clock and a busy loader does
not add to it.  A delivery is one message reaching one member other than
its sender; the sender's own C{on_new_message} reply is its echo, and what
frees a slot of its window.

The measuring path does no per-frame work in Python: once set up, a
connection scans each chunk it reads with one regular expression that
returns the send times of the markers in it (C{findall}, in C), and keeps
the chunk's arrival time beside that list; latencies are computed after
the run.  This is what lets one loader process on one CPU keep up with the
baseline.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import re
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from twisted.internet import main as reasons
from twisted.internet import task
from twisted.internet.defer import Deferred, DeferredSemaphore, ensureDeferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from bench.build_history_db import SEARCHES
from bench.proc import CpuSample, pin, rss_kib

Payload = dict[str, Any]
#: A part of a run: its name, and its length in seconds or an action that
#: lasts as long as it (and returns what it did).
Window = tuple[str, float | Callable[[], Awaitable[Payload]]]

#: The password of every benchmark account (see L{bench.build_history_db}).
PASSWORD = "benchpass1"
#: Characters of every message text, marker included (chatload's default).
TEXT_SIZE = 100

_PREFIX = struct.Struct("!I")
# The marker: sender, sequence number, send time.  The closing ':' makes a
# marker cut off at the end of a chunk fail to match instead of matching a
# shorter number.
_MARKER = re.compile(rb"LDT:(\d+):\d+:(\d+):")
_MARKER_TIME = re.compile(rb"LDT:\d+:\d+:(\d+):")
_MARKER_START = b"LDT:"
# Longer than any marker: a marker still incomplete at the end of a chunk
# starts within this many bytes of its end.
_MARKER_REACH = 64
_ERROR = b'"type":"error"'
_KICK = b'"type":"server_kick"'
# Bytes kept from the end of a chunk: enough for all but the last byte of an
# error or a kick, and less than a marker (28 bytes or more: its send time
# has 19 digits).
_KEEP = max(len(_ERROR), len(_KICK)) - 1
# Kernel receive timestamps (CLOCK_REALTIME, struct timespec) on Linux.
_SO_TIMESTAMPNS: int = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)
_READ_SIZE = 65536
#: The bytes of one file chunk: chatd's C{chunk_size} (PROTOCOL.md 14).
CHUNK_SIZE = 32768
MIB = 1024 * 1024


def log(message: str) -> None:
    """
    Print a progress line on stderr.
    """
    print(f"  loader: {message}", file=sys.stderr, flush=True)


def emit(result: Payload) -> None:
    """
    Print one result as a JSON line on stdout.
    """
    print(json.dumps(result), flush=True)


class RequestError(Exception):
    """
    The server answered a request with C{error}.
    """

    def __init__(self, kind: str, code: str) -> None:
        super().__init__(f"{kind}: {code}")
        self.code = code


class Client(Protocol):
    """
    One connection to the server under test.

    While it is being set up it parses every frame and matches replies to
    requests by C{id} (L{request}); after L{measure} it only scans what it
    reads for markers, errors and kicks, for the L{Run} it serves.

    @ivar received_at: C{time_ns()} when the last chunk was read, before
        L{measure}.
    @ivar unstamped: chunks read without a kernel timestamp (timed by
        C{time_ns()} when read instead).
    @ivar run: the run whose deliveries this connection counts, if any.
    @ivar sender: the sender that writes on this connection, if any.
    """

    transport: Any

    def __init__(self, name: str) -> None:
        self.name = name
        self.connected_ = False
        self.measuring = False
        self.received_at = 0
        self.run: Run | None = None
        self.sender: Sender | None = None
        self.errors = 0
        self.kicks = 0
        self.unstamped = 0
        self._buffer = b""
        self._tail = b""
        self._next_id = 1
        self._waiting: dict[int, tuple[str, Deferred[Payload]]] = {}
        self._pushes: dict[str, Deferred[Payload]] = {}

    def connectionMade(self) -> None:
        self.connected_ = True
        self.transport.setTcpNoDelay(True)
        self.transport.socket.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)

    def measure(self) -> None:
        """
        From now on only scan what arrives for markers, and time each chunk
        by the kernel's receive timestamp: when its last byte reached the
        socket, however long this process took to get to it.
        """
        self.measuring = True
        self._buffer = b""
        recvmsg = self.transport.socket.recvmsg
        scan = self._scan

        # Replaces the transport's doRead (twisted.internet.tcp.Connection):
        # the same outcomes, with recvmsg instead of recv.
        def read() -> object:
            try:
                data, ancillary, _, _ = recvmsg(_READ_SIZE, _CMSG_SPACE)
            except BlockingIOError:
                return None
            except OSError:
                return reasons.CONNECTION_LOST
            if not data:
                return reasons.CONNECTION_DONE
            arrived = 0
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                    seconds, nanoseconds = _TIMESPEC.unpack_from(value)
                    arrived = seconds * 1_000_000_000 + nanoseconds
            if not arrived:
                self.unstamped += 1
                arrived = time.time_ns()
            scan(data, arrived)
            return None

        self.transport.doRead = read

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.connected_ = False
        waiting, self._waiting = self._waiting, {}
        for kind, d in waiting.values():
            d.errback(RequestError(kind, "connection_lost"))

    def dataReceived(self, data: bytes) -> None:
        self.received_at = time.time_ns()
        buffer = self._buffer + data
        at = 0
        while len(buffer) - at >= 4:
            (size,) = _PREFIX.unpack_from(buffer, at)
            if len(buffer) - at - 4 < size:
                break
            message = json.loads(buffer[at + 4 : at + 4 + size])
            at += 4 + size
            waiting = self._waiting.pop(message.get("id", -1), None)
            if waiting is not None:
                waiting[1].callback(message)
            elif message.get("type") == "server_kick":
                self.kicks += 1
            elif message.get("type") in self._pushes:
                self._pushes.pop(message["type"]).callback(message)
        self._buffer = buffer[at:]

    def _scan(self, data: bytes, now: int) -> None:
        tail = self._tail
        if tail:
            data = tail + data
        # What lies wholly in the tail was counted with the chunk before.
        errors = data.count(_ERROR) - tail.count(_ERROR) if _ERROR in data else 0
        if _KICK in data:
            self.kicks += data.count(_KICK) - tail.count(_KICK)
        self.errors += errors
        run = self.run
        if run is not None:
            sender = self.sender
            if sender is None:
                found = _MARKER_TIME.findall(data)
                if found:
                    run.delivered += len(found)
                    if run.recording:
                        run.samples.append((now, found))
            else:
                own = sender.tag
                deliveries: list[bytes] = []
                echoes: list[bytes] = []
                for who, sent_at in _MARKER.findall(data):
                    (echoes if who == own else deliveries).append(sent_at)
                if deliveries:
                    run.delivered += len(deliveries)
                    if run.recording:
                        run.samples.append((now, deliveries))
                if echoes and run.recording:
                    run.echo_samples.append((now, echoes))
                # A refused send (an error reply) frees its slot too.
                if echoes or errors:
                    sender.on_ack(len(echoes) + errors)
        # Keep what may be the start of a marker, an error or a kick cut off
        # by the chunk's end; too short to hold a whole marker, so that none
        # is counted twice.
        keep = len(data) - _KEEP
        start = data.rfind(_MARKER_START, max(0, len(data) - _MARKER_REACH))
        if 0 <= start < keep and _MARKER.match(data, start) is None:
            keep = start
        self._tail = data[max(0, keep) :]

    def request(self, kind: str, **fields: Any) -> Deferred[Payload]:
        """
        Send a request.

        @return: fires with its reply (an C{error} reply too).
        """
        request_id = self._next_id
        self._next_id += 1
        data = json.dumps({"type": kind, "id": request_id, **fields}).encode()
        d: Deferred[Payload] = Deferred()
        self._waiting[request_id] = (kind, d)
        self.transport.write(_PREFIX.pack(len(data)) + data)
        return d

    def send_now(self, data: bytes) -> None:
        """
        Write timed messages (their send times taken just before) and have
        them leave at once: a write is otherwise sent at the reactor's next
        turn, after whatever else this turn holds (in (i), 2000 replies to
        read), and that wait would count as the server's.
        """
        self.transport.write(data)
        if self.transport.connected:
            self.transport.doWrite()

    def push(self, kind: str) -> Deferred[Payload]:
        """
        @return: fires with the next push of type C{kind} (before
            L{measure} only).
        """
        d: Deferred[Payload] = Deferred()
        self._pushes[kind] = d
        return d

    async def call(self, kind: str, **fields: Any) -> Payload:
        """
        Send a request.

        @return: its reply.
        @raise RequestError: when the reply is an C{error}.
        """
        reply = await self.request(kind, **fields)
        if reply["type"] == "error":
            raise RequestError(kind, reply["code"])
        return reply

    def close(self) -> None:
        """
        Close the connection.
        """
        if self.connected_:
            self.transport.loseConnection()


@dataclass(slots=True)
class Run:
    """
    The counters and samples of one run of a shape.

    @ivar delivered: deliveries received since the run started.
    @ivar recording: whether arrivals are kept for latencies.
    @ivar samples: C{(arrival ns, [send ns, ...])} per chunk that held
        deliveries, while recording.
    @ivar echo_samples: the same for senders' own replies.
    """

    delivered: int = 0
    recording: bool = False
    samples: list[tuple[int, list[bytes]]] = field(default_factory=list)
    echo_samples: list[tuple[int, list[bytes]]] = field(default_factory=list)


class Sender:
    """
    Writes C{send_message} requests to a room on one connection.

    @ivar tag: the sender number in the markers it writes, as bytes.
    @ivar sent: messages written.
    @ivar acked: messages answered (echoed or refused).
    """

    def __init__(self, client: Client, number: int, room_id: int) -> None:
        self.client = client
        self.number = number
        self.tag = str(number).encode()
        self.room_id = room_id
        self.sent = 0
        self.acked = 0
        self.running = False

    def _message(self) -> bytes:
        seq = self.sent
        self.sent += 1
        text = f"LDT:{self.number}:{seq}:{time.time_ns()}:".ljust(TEXT_SIZE, "x")
        data = (
            f'{{"type":"send_message","id":{seq + 1000},"target_type":1,'
            f'"target_id":{self.room_id},"message":"{text}"}}'
        ).encode()
        return _PREFIX.pack(len(data)) + data

    def start(self) -> None:
        """
        Start sending.
        """
        self.running = True

    def stop(self) -> None:
        """
        Stop sending.
        """
        self.running = False

    def on_ack(self, count: int) -> None:
        """
        C{count} more messages were answered.
        """
        self.acked += count


class WindowSender(Sender):
    """
    Sends flat out with at most C{window} messages unanswered.  Like
    chatload, a full window is refilled once half of it is answered, so a
    sender wakes once per half window, not once per reply.
    """

    def __init__(self, client: Client, number: int, room_id: int, window: int) -> None:
        super().__init__(client, number, room_id)
        self.window = window
        self._resume = window // 2

    def start(self) -> None:
        super().start()
        self._fill()

    def on_ack(self, count: int) -> None:
        self.acked += count
        if self.running and self.sent - self.acked <= self._resume:
            self._fill()

    def _fill(self) -> None:
        free = self.window - (self.sent - self.acked)
        if free > 0:
            self.client.send_now(b"".join([self._message() for _ in range(free)]))


class RateSender(Sender):
    """
    Sends C{rate} messages per second on a fixed schedule (open loop),
    whatever the replies do; starting C{offset} seconds late, so that
    several senders take turns.
    """

    def __init__(
        self,
        client: Client,
        number: int,
        room_id: int,
        clock: IReactorTime,
        rate: float,
        offset: float,
    ) -> None:
        super().__init__(client, number, room_id)
        self._clock = clock
        self._interval = int(1e9 / rate)
        self._offset = int(offset * 1e9)
        self._start = 0
        self._call: Any = None

    def start(self) -> None:
        super().start()
        self._start = time.monotonic_ns() + self._offset
        self._tick()

    def stop(self) -> None:
        super().stop()
        if self._call is not None and self._call.active():
            self._call.cancel()

    def _tick(self) -> None:
        now = time.monotonic_ns()
        due = self._start + self.sent * self._interval
        burst = []
        while due <= now:
            burst.append(self._message())
            due = self._start + self.sent * self._interval
        if burst:
            self.client.send_now(b"".join(burst))
        self._call = self._clock.callLater(max(0.0, (due - time.monotonic_ns()) / 1e9), self._tick)


def percentiles(values: list[int]) -> Payload | None:
    """
    @param values: latencies in nanoseconds.
    @return: their p50, p90, p99, p99.9 and maximum in milliseconds, and
        their count; L{None} for no values.
    """
    if not values:
        return None
    values.sort()
    n = len(values)

    def at(q: float) -> float:
        return round(values[min(n - 1, int(n * q))] / 1e6, 3)

    return {
        "p50": at(0.5),
        "p90": at(0.9),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": at(1.0),
        "n": n,
    }


def latencies(samples: list[tuple[int, list[bytes]]], start: int, end: int) -> list[int]:
    """
    @return: the latencies in nanoseconds of the deliveries in C{samples}
        that arrived in [C{start}, C{end}).
    """
    return [
        arrived - int(sent_at)
        for arrived, sent in samples
        if start <= arrived < end
        for sent_at in sent
    ]


def chunked(content: bytes) -> list[str]:
    """
    @return: C{content} cut into chunks of L{CHUNK_SIZE}, each as base64.
    """
    return [
        base64.b64encode(content[at : at + CHUNK_SIZE]).decode("ascii")
        for at in range(0, len(content), CHUNK_SIZE)
    ]


def _reply(reply: Payload, kind: str) -> Payload:
    if reply["type"] == "error":
        raise RequestError(kind, reply["code"])
    return reply


async def upload(client: Client, content: bytes, chunks: Sequence[str], window: int) -> Payload:
    """
    Upload C{content} (whose base64 chunks are C{chunks}) on C{client},
    with at most C{window} chunks unanswered (a connection's requests are
    answered in order, so the oldest is the next to come back).

    @return: the stored File, and C{"took_ns"}: C{upload_start} written to
        C{file_stored} read.
    """
    started = time.time_ns()
    ready = await client.call(
        "upload_start", name="bench.bin", size=len(content), mime="application/octet-stream"
    )
    if ready["chunk_size"] != CHUNK_SIZE:
        raise RuntimeError(f"chunk_size {ready['chunk_size']}, the loader cuts {CHUNK_SIZE}")
    upload_id = ready["upload_id"]
    pending: deque[Deferred[Payload]] = deque()
    for index, data in enumerate(chunks):
        if len(pending) >= window:
            _reply(await pending.popleft(), "upload_chunk")
        pending.append(
            client.request(
                "upload_chunk", upload_id=upload_id, offset=index * CHUNK_SIZE, data=data
            )
        )
    while pending:
        _reply(await pending.popleft(), "upload_chunk")
    stored = await client.call(
        "upload_finish", upload_id=upload_id, sha256=hashlib.sha256(content).hexdigest()
    )
    return {**stored["file"], "took_ns": client.received_at - started}


async def download(client: Client, file_id: int, size: int, window: int) -> tuple[bytes, int]:
    """
    Download file C{file_id} of C{size} bytes on C{client}, with at most
    C{window} requests unanswered.

    @return: its content, and the nanoseconds from the first C{download}
        written to the last C{file_chunk} read.
    """
    started = time.time_ns()
    parts: list[bytes] = []
    pending: deque[Deferred[Payload]] = deque()

    def take(reply: Payload) -> None:
        parts.append(base64.b64decode(_reply(reply, "download")["data"]))

    for offset in range(0, size, CHUNK_SIZE):
        if len(pending) >= window:
            take(await pending.popleft())
        pending.append(
            client.request("download", file_id=file_id, offset=offset, length=CHUNK_SIZE)
        )
    while pending:
        take(await pending.popleft())
    return b"".join(parts), client.received_at - started


async def transfer(
    sender: Client, receiver: Client, friend_id: int, args: argparse.Namespace
) -> Payload:
    """
    One round of shape (j): a fresh random file of C{--size} bytes
    uploaded by C{sender}, sent to its friend C{receiver} (whose
    C{on_new_message} push names the file), downloaded by C{receiver} and
    checked against its SHA-256.

    @return: the MiB/s of each way, and whether the content came back whole.
    """
    content = random.randbytes(args.size)
    chunks = chunked(content)
    stored = await upload(sender, content, chunks, args.window)
    pushed = receiver.push("on_new_message")
    await sender.call("send_message", target_type=0, target_id=friend_id, file_id=stored["id"])
    message = (await pushed)["message"]
    file_id = message["file"]["id"]
    got, took = await download(receiver, file_id, args.size, args.window)
    return {
        "upload_mib_s": round(args.size / MIB / (stored["took_ns"] / 1e9), 1),
        "download_mib_s": round(args.size / MIB / (took / 1e9), 1),
        "upload_s": round(stored["took_ns"] / 1e9, 3),
        "download_s": round(took / 1e9, 3),
        "intact": hashlib.sha256(got).digest() == hashlib.sha256(content).digest(),
    }


class Loader:
    """
    Connections to one server (or to the processes of one deployment, in
    turn), and the shapes of load run over them.
    """

    def __init__(self, reactor: Any, ports: Sequence[int], server_pid: int | None) -> None:
        self.reactor = reactor
        self.ports = ports
        self.server_pid = server_pid
        self._next_sender = 0
        self._next_port = 0

    def sleep(self, seconds: float) -> Deferred[None]:
        """
        @return: fires after C{seconds}.
        """
        return task.deferLater(self.reactor, seconds, lambda: None)

    def cpu(self) -> CpuSample:
        """
        @return: the CPU times of the loader, the server and the machine now.
        """
        return CpuSample.take(self.server_pid)

    async def connect(self, name: str) -> Client:
        """
        @return: a new connection.
        """
        reactor: IReactorTCP = self.reactor
        port = self.ports[self._next_port % len(self.ports)]
        self._next_port += 1
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=30)
        return await connectProtocol(endpoint, Client(name))

    async def register(self, names: Sequence[str]) -> None:
        """
        Register C{names} (a taken name is fine: chatd's database may hold
        them already), all pipelined on one connection.
        """
        client = await self.connect("registrar")
        replies = await gatherResults(
            [client.request("register", username=name, password=PASSWORD) for name in names]
        )
        client.close()
        for name, reply in zip(names, replies, strict=True):
            if reply["type"] == "error" and reply["code"] != "username_taken":
                raise RequestError(f"register {name}", reply["code"])

    async def log_in(self, names: Sequence[str], at_once: int) -> list[Client]:
        """
        Connect and log in as each of C{names}, at most C{at_once} logins
        in flight, so that none waits long enough for the server's login
        deadline.

        @return: the connections, in the order of C{names}.
        """
        semaphore = DeferredSemaphore(at_once)
        done = 0

        async def one(name: str) -> Client:
            nonlocal done
            client = await self.connect(name)
            await client.call("login", username=name, password=PASSWORD)
            done += 1
            if done % 100 == 0:
                log(f"{done} of {len(names)} logged in")
            return client

        return await gatherResults(
            [semaphore.run(lambda name: ensureDeferred(one(name)), name) for name in names]
        )

    async def room(self, clients: Sequence[Client], name: str) -> int:
        """
        Have the first of C{clients} create room C{name} and the others join it.

        @return: the room's id.
        """
        reply = await clients[0].call("create_room", name=name)
        await gatherResults(
            [ensureDeferred(client.call("join_room", name=name)) for client in clients[1:]]
        )
        return int(reply["room"]["id"])

    async def run(
        self,
        shape: str,
        members: Sequence[Client],
        senders: list[Sender],
        windows: Sequence[Window],
        drain: float = 5.0,
    ) -> list[Payload]:
        """
        Run senders to the members of a room and measure.

        @param windows: after a C{("warmup", seconds)}, the measured
            windows in order: C{(name, seconds)}, or C{(name, action)} for
            a window that lasts as long as the action (which returns what
            it did).
        @return: one result per measured window.
        """
        run = Run()
        for client in members:
            client.run = run
        for sender in senders:
            sender.client.sender = sender
        errors_before = sum(client.errors for client in members)
        kicks_before = sum(client.kicks for client in members)
        closed_before = sum(not client.connected_ for client in members)
        unstamped_before = sum(client.unstamped for client in members)
        for sender in senders:
            sender.start()
        marks: list[tuple[str, int, CpuSample, Payload]] = []
        for name, length in windows:
            if name != "warmup":
                run.recording = True
            marks.append((name, time.time_ns(), self.cpu(), {}))
            if callable(length):
                extra = await length()
                marks[-1][3].update(extra)
            else:
                await self.sleep(length)
        marks.append(("end", time.time_ns(), self.cpu(), {}))
        run.recording = False
        for sender in senders:
            sender.stop()
        sent = sum(sender.sent for sender in senders)
        expected = sent * (len(members) - 1)
        deadline = time.monotonic() + drain
        while time.monotonic() < deadline and (
            run.delivered < expected or sum(sender.acked for sender in senders) < sent
        ):
            await self.sleep(0.02)
        for client in members:
            client.run = None
            client.sender = None
        common = {
            "sent": sent,
            "deliveries_total": run.delivered,
            "missing": expected - run.delivered,
            "unanswered": sent - sum(sender.acked for sender in senders),
            "errors": sum(client.errors for client in members) - errors_before,
            "kicks": sum(client.kicks for client in members) - kicks_before,
            "closed": sum(not client.connected_ for client in members) - closed_before,
            "unstamped_reads": sum(client.unstamped for client in members) - unstamped_before,
            "members": len(members),
            "senders": len(senders),
        }
        results = []
        for (name, start, cpu_start, extra), (_, end, cpu_end, _) in pairwise(marks):
            if name == "warmup":
                continue
            seconds = (end - start) / 1e9
            delivered = latencies(run.samples, start, end)
            results.append(
                {
                    "shape": shape,
                    "window": name,
                    "seconds": round(seconds, 3),
                    "deliveries": len(delivered),
                    "deliveries_per_s": round(len(delivered) / seconds, 1),
                    "latency_ms": percentiles(delivered),
                    "echo_latency_ms": percentiles(latencies(run.echo_samples, start, end)),
                    "cpu": cpu_end.percent_since(cpu_start),
                    **common,
                    **extra,
                }
            )
        return results

    def window_senders(self, clients: Sequence[Client], room_id: int, window: int) -> list[Sender]:
        """
        @return: a flat-out sender on each of C{clients}.
        """
        senders: list[Sender] = []
        for client in clients:
            senders.append(WindowSender(client, self._next_sender, room_id, window))
            self._next_sender += 1
        return senders

    def rate_senders(self, clients: Sequence[Client], room_id: int, rate: float) -> list[Sender]:
        """
        @return: a sender of C{rate} messages per second on each of
            C{clients}, their schedules spread evenly.
        """
        senders: list[Sender] = []
        for i, client in enumerate(clients):
            offset = i / rate / len(clients)
            senders.append(
                RateSender(client, self._next_sender, room_id, self.reactor, rate, offset)
            )
            self._next_sender += 1
        return senders

    async def storm(self, names: Sequence[str], cap: float, least: float = 1.0) -> Payload:
        """
        Connect and log in as all of C{names} at once; return when all are
        in (but not before C{least} seconds), or after C{cap} seconds, and
        close those connections.

        @return: how many logged in, and how long their logins took.
        """
        started = time.time_ns()
        took: list[int] = []
        failed: list[str] = []
        clients: list[Client] = []

        async def one(name: str) -> None:
            client = await self.connect(name)
            clients.append(client)
            sent_at = time.time_ns()
            reply = await client.request("login", username=name, password=PASSWORD)
            if reply["type"] == "error":
                failed.append(reply["code"])
            else:
                took.append(client.received_at - sent_at)

        for name in names:
            ensureDeferred(one(name)).addErrback(lambda f: failed.append(f.getErrorMessage()))
        deadline = started + int(cap * 1e9)
        while len(took) + len(failed) < len(names) and time.time_ns() < deadline:
            await self.sleep(0.005)
        ended = time.time_ns()
        # A storm over in a few milliseconds would leave a window with too
        # few deliveries for a p99: it lasts at least a second.
        await self.sleep(max(0.0, least - (ended - started) / 1e9))
        for client in clients:
            client.close()
        return {
            "storm": {
                "logins": len(names),
                "logged_in": len(took),
                "failed": len(failed),
                "failures": sorted(set(failed))[:5],
                "seconds": round((ended - started) / 1e9, 3),
                "capped": len(took) + len(failed) < len(names),
                "login_ms": percentiles(took),
            }
        }


async def session(loader: Loader, args: argparse.Namespace) -> None:
    """
    Shapes (a), (b), (c) and (f) on one server (those of C{args.shapes}):
    log the members in once, put them in two rooms, then run the shapes
    one after the other.
    """
    started = time.monotonic()
    names = [f"bu{i}" for i in range(args.members_c)]
    storm_names = [f"bs{i}" for i in range(args.storm)]
    log(f"registering {len(names) + len(storm_names)} users")
    await loader.register(names + storm_names)
    log(f"logging {len(names)} users in")
    clients = await loader.log_in(names, args.login_concurrency)
    log("creating the rooms")
    # Room names of their own, so that loaders can take turns on one server.
    room_a = await loader.room(clients[: args.members_a], f"bench_a_{os.getpid()}")
    room_c = await loader.room(clients, f"bench_c_{os.getpid()}")
    await loader.sleep(0.5)
    for client in clients:
        client.measure()
    if args.pin_server is not None and loader.server_pid is not None:
        pin(loader.server_pid, {args.pin_server})
    emit({"event": "setup", "seconds": round(time.monotonic() - started, 2)})
    await loader.sleep(0.3)
    measure: list[Window] = [("warmup", args.warmup), ("main", args.duration)]
    for shape, window in (("a", args.window_a), ("b", args.window_b)):
        if shape not in args.shapes:
            continue
        log(
            f"shape ({shape}): {args.members_a} members, {args.senders_ab} senders, window {window}"
        )
        members = clients[: args.members_a]
        senders = loader.window_senders(members[: args.senders_ab], room_a, window)
        for result in await loader.run(shape, members, senders, measure):
            emit({**result, "window_size": window})
    if "c" in args.shapes:
        log(
            f"shape (c): {len(clients)} members, {args.senders_c} senders at {args.rate} msg/s;"
            f" then (f): {args.storm} logins"
        )
        senders = loader.rate_senders(clients[: args.senders_c], room_c, args.rate)

        def storm() -> Awaitable[Payload]:
            return ensureDeferred(loader.storm(storm_names, args.storm_cap))

        windows = [*measure, ("storm", storm)] if args.storm else measure
        for result in await loader.run("c", clients, senders, windows):
            emit({**result, "rate": args.rate})
    for client in clients:
        client.close()


async def idle(loader: Loader, args: argparse.Namespace) -> None:
    """
    Shape (d): the server's memory per idle logged-in connection.
    """
    if loader.server_pid is None:
        raise SystemExit("idle needs --server-pid")
    names = [f"bi{i}" for i in range(args.connections)]
    log(f"registering {len(names) + 1} users")
    await loader.register([*names, "biw"])
    # One connection first, so that what the first login loads or builds
    # (code, caches) is not counted against the others.
    first = await loader.connect("biw")
    await first.call("login", username="biw", password=PASSWORD)
    await loader.sleep(1.0)
    before = rss_kib(loader.server_pid)
    log(f"opening {len(names)} connections")
    started = time.monotonic()
    clients = await loader.log_in(names, args.login_concurrency)
    setup = time.monotonic() - started
    await loader.sleep(args.hold)
    after = rss_kib(loader.server_pid)
    open_ = sum(client.connected_ for client in clients)
    emit(
        {
            "shape": "d",
            "connections": open_,
            "rss_before_kib": before,
            "rss_after_kib": after,
            "kib_per_connection": (
                round((after - before) / open_, 2) if before and after and open_ else None
            ),
            "setup_seconds": round(setup, 2),
        }
    )
    for client in [first, *clients]:
        client.close()


async def history(loader: Loader, args: argparse.Namespace) -> None:
    """
    Shape (e): pages of 50 at random places of a room's history, one
    request at a time.
    """
    client = await loader.connect(args.user)
    await client.call("login", username=args.user, password=PASSWORD)
    room = {"target_type": 1, "target_id": args.room_id}
    newest = (await client.call("history", **room, limit=1))["messages"][-1]["id"]
    oldest = (await client.call("history", **room, after=0, limit=1))["messages"][0]["id"]
    log(f"paging through room {args.room_id}, message ids {oldest}..{newest}")
    rng = random.Random(8)
    took: list[int] = []
    short = 0
    warm_until = time.monotonic() + args.warmup
    while time.monotonic() < warm_until:
        await client.call("history", **room, before=rng.randint(oldest + 51, newest + 1), limit=50)
    cpu_start = loader.cpu()
    started = time.monotonic()
    while time.monotonic() - started < args.duration:
        before = rng.randint(oldest + 51, newest + 1)
        sent_at = time.time_ns()
        reply = await client.call("history", **room, before=before, limit=50)
        took.append(client.received_at - sent_at)
        short += len(reply["messages"]) != 50
    emit(
        {
            "shape": "e",
            "pages": len(took),
            "pages_per_s": round(len(took) / (time.monotonic() - started), 1),
            "short_pages": short,
            "latency_ms": percentiles(took),
            "cpu": loader.cpu().percent_since(cpu_start),
        }
    )
    client.close()


async def login(loader: Loader, args: argparse.Namespace) -> None:
    """
    Shape (g): one account with many friends and rooms logs in, again and
    again, one login at a time; each login is timed from the C{login}
    request until its C{login_info} arrived, then the session logs out.
    """

    async def once() -> tuple[int, Payload]:
        client = await loader.connect(args.user)
        info = client.push("login_info")
        sent_at = time.time_ns()
        await client.call("login", username=args.user, password=PASSWORD)
        payload = await info
        took = client.received_at - sent_at
        await client.call("logout")
        client.close()
        return took, payload

    _, info = await once()
    log(
        f"logging in as {args.user}: {len(info['friends'])} friends, {len(info['rooms'])} rooms,"
        f" {len(info['unread'])} conversations unread"
    )
    warm_until = time.monotonic() + args.warmup
    while time.monotonic() < warm_until:
        await once()
    took: list[int] = []
    cpu_start = loader.cpu()
    started = time.monotonic()
    while time.monotonic() - started < args.duration:
        took.append((await once())[0])
    emit(
        {
            "shape": "g",
            "logins": len(took),
            "logins_per_s": round(len(took) / (time.monotonic() - started), 1),
            "friends": len(info["friends"]),
            "rooms": len(info["rooms"]),
            "unread": len(info["unread"]),
            "login_info_bytes": len(json.dumps(info)),
            "latency_ms": percentiles(took),
            "cpu": loader.cpu().percent_since(cpu_start),
        }
    )


async def search(loader: Loader, args: argparse.Namespace) -> None:
    """
    Shape (h): the searches of L{SEARCHES}, each by every one of several
    users (each in 20 rooms of a million-message database), one request at
    a time, taking turns: each search's latency, and how many messages the
    first page held.
    """
    clients = []
    for name in args.users.split(","):
        client = await loader.connect(name)
        await client.call("login", username=name, password=PASSWORD)
        clients.append(client)
    took: dict[str, list[int]] = {label: [] for label in SEARCHES}
    found: dict[str, list[int]] = {label: [] for label in SEARCHES}

    async def once(client: Client, label: str) -> None:
        sent_at = time.time_ns()
        reply = await client.call("search", query=SEARCHES[label], limit=20)
        took[label].append(client.received_at - sent_at)
        found[label].append(len(reply["messages"]))

    log(f"searching as {len(clients)} users: {', '.join(SEARCHES.values())}")
    warm_until = time.monotonic() + args.warmup
    while time.monotonic() < warm_until:
        for label in SEARCHES:
            await once(clients[0], label)
    for label in SEARCHES:
        took[label].clear()
        found[label].clear()
    cpu_start = loader.cpu()
    started = time.monotonic()
    turn = 0
    # At least two rounds, whatever the duration, so that every user asks
    # every search.
    while time.monotonic() - started < args.duration or turn < 2 * len(clients):
        for label in SEARCHES:
            await once(clients[turn % len(clients)], label)
        turn += 1
    emit(
        {
            "shape": "h",
            "users": len(clients),
            "searches": {
                label: {
                    "query": SEARCHES[label],
                    "count": len(took[label]),
                    "results": round(sum(found[label]) / len(found[label]), 1),
                    "latency_ms": percentiles(took[label]),
                }
                for label in SEARCHES
            },
            "cpu": loader.cpu().percent_since(cpu_start),
        }
    )
    for client in clients:
        client.close()


async def resume(loader: Loader, args: argparse.Namespace) -> None:
    """
    Shape (i): C{--users} accounts logged in, C{--members} of them in a
    room where two send C{--rate} messages per second each; then, told on
    stdin that the server restarted (after this loader printed
    C{{"phase": "restart"}}), every account resumes at once with its
    token.  Measures the time from "go" until the last C{login_info}, and
    the room's delivery latency before the restart and while the others
    resume.
    """
    from twisted.internet.threads import deferToThread

    names = [f"{args.prefix}{i}" for i in range(args.users)]
    tokens: dict[str, str] = {}
    semaphore = DeferredSemaphore(args.login_concurrency)

    async def first(name: str) -> Client:
        client = await loader.connect(name)
        tokens[name] = (await client.call("login", username=name, password=PASSWORD))["token"]
        return client

    clients = await gatherResults(
        [semaphore.run(lambda name: ensureDeferred(first(name)), name) for name in names]
    )
    log(f"{len(clients)} logged in")
    members = clients[: args.members]
    room_id = await loader.room(members, "resumeroom")

    def listen(client: Client, run: Run, speaks: bool) -> Sender | None:
        """
        Count what C{client} receives in C{run}; if it C{speaks}, it sends
        C{--rate} messages per second to the room from now on.
        """
        client.measure()
        client.run = run
        if not speaks:
            return None
        (sender,) = loader.rate_senders([client], room_id, args.rate)
        client.sender = sender
        sender.start()
        return sender

    before = Run(recording=True)
    senders = [listen(client, before, i < 2) for i, client in enumerate(members)]
    start = time.time_ns()
    await loader.sleep(args.duration)
    end = time.time_ns()
    for sender in senders:
        if sender is not None:
            sender.stop()
    log(f"before the restart: {before.delivered} deliveries")

    print(json.dumps({"phase": "restart"}), flush=True)
    await deferToThread(sys.stdin.readline)
    for client in clients:
        client.close()
    during = Run(recording=True)
    took: list[int] = []
    failed = 0
    speakers: list[Sender] = []
    went = time.time_ns()

    async def again(index: int, name: str) -> Client | None:
        nonlocal failed
        sent_at = time.time_ns()
        try:
            client = await loader.connect(name)
            info = client.push("login_info")
            await client.call("resume", token=tokens[name])
            await info
        except Exception:
            failed += 1
            return None
        took.append(client.received_at - sent_at)
        if index < args.members:
            sender = listen(client, during, index < 2)
            if sender is not None:
                speakers.append(sender)
        return client

    back = await gatherResults([ensureDeferred(again(i, name)) for i, name in enumerate(names)])
    last = time.time_ns()
    for sender in speakers:
        sender.stop()
    emit(
        {
            "shape": "i",
            "users": len(names),
            "resumed": len(took),
            "failed": failed,
            "resume_seconds": round((last - went) / 1e9, 3),
            "resume_ms": percentiles(took),
            "before_latency_ms": percentiles(latencies(before.samples, start, end)),
            "during_latency_ms": percentiles(latencies(during.samples, went, last)),
        }
    )
    for returned in back:
        if returned is not None:
            returned.close()


async def files(loader: Loader, args: argparse.Namespace) -> None:
    """
    Shape (j): two friends (C{bf0}, C{bf1}) send each other files of
    C{--size} random bytes: upload with a window of C{--window} chunks,
    C{send_message} with the C{file_id}, download with a window, SHA-256
    checked.  First C{--rounds} transfers with nothing else running (the
    MiB/s each way); then shape (c)'s load (C{--members} in a room, two
    senders of C{--rate} messages/s): C{--duration} s of it alone, then as
    long again while transfers loop, for its delivery p99 alone and during,
    in one sitting.
    """
    names = [f"bu{i}" for i in range(args.members)]
    log(f"registering {len(names) + 2} users")
    await loader.register([*names, "bf0", "bf1"])
    clients = await loader.log_in(names, args.login_concurrency)
    sender, receiver = await loader.log_in(["bf0", "bf1"], 2)
    friend = await sender.call("add_friend", username="bf1")
    friend_id = int(friend["user"]["id"])
    accepted = await receiver.call("add_friend", username="bf0")
    if accepted["type"] != "add_friend_result":
        raise RuntimeError(f"bf1 and bf0 are not friends: {accepted}")
    room_c = await loader.room(clients, f"bench_j_{os.getpid()}") if clients else 0
    await loader.sleep(0.5)
    for client in clients:
        client.measure()
    if args.pin_server is not None and loader.server_pid is not None:
        pin(loader.server_pid, {args.pin_server})
    log(f"shape (j): {args.rounds} transfers of {args.size} bytes alone, window {args.window}")
    quiet = []
    for _ in range(args.rounds):
        cpu_start = loader.cpu()
        one = await transfer(sender, receiver, friend_id, args)
        quiet.append({**one, "cpu": loader.cpu().percent_since(cpu_start)})
        log(f"  upload {one['upload_mib_s']} MiB/s, download {one['download_mib_s']} MiB/s")

    def median(key: str, rounds: Sequence[Payload]) -> float:
        values = sorted(one[key] for one in rounds)
        return float(values[len(values) // 2])

    result = {
        "shape": "j",
        "size": args.size,
        "window_size": args.window,
        "upload_mib_s": median("upload_mib_s", quiet),
        "download_mib_s": median("download_mib_s", quiet),
        "intact": all(one["intact"] for one in quiet),
        "transfers": quiet,
        "rate": args.rate,
    }
    if not clients:
        # --members 0: the transfers alone (for profiling).
        emit(result)
        return

    async def looping() -> Payload:
        rounds: list[Payload] = []
        until = time.monotonic() + args.duration
        while time.monotonic() < until or not rounds:
            rounds.append(await transfer(sender, receiver, friend_id, args))
        return {"transfers": rounds}

    log(f"shape (j): (c) alone for {args.duration} s, then with transfers looping")
    senders = loader.rate_senders(clients[: args.senders], room_c, args.rate)
    windows: list[Window] = [
        ("warmup", args.warmup),
        ("alone", args.duration),
        ("during", lambda: ensureDeferred(looping())),
    ]
    alone, during = await loader.run("j", clients, senders, windows)
    result["intact"] = result["intact"] and all(one["intact"] for one in during["transfers"])
    emit({**result, "alone": alone, "during": during})
    for client in [*clients, sender, receiver]:
        client.close()


def main(argv: list[str] | None = None) -> None:
    """
    Parse the command line and run one of L{session}, L{idle}, L{history},
    L{login}, L{search}, L{resume}, L{files}.
    """
    parser = argparse.ArgumentParser(prog="python -m bench.loader", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--also-port",
        type=int,
        action="append",
        default=[],
        help="another process of the same deployment: connections go to each port in turn",
    )
    parser.add_argument("--server-pid", type=int, help="for the server's CPU and memory")
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--login-concurrency", type=int, default=8)
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("session", help="shapes (a), (b), (c) and (f)")
    one.add_argument("--shapes", default="abc", help="which of a, b, c to run ((f) is in c)")
    one.add_argument("--members-a", type=int, default=50)
    one.add_argument("--senders-ab", type=int, default=5)
    one.add_argument("--window-a", type=int, default=128)
    one.add_argument("--window-b", type=int, default=8)
    one.add_argument("--members-c", type=int, default=200)
    one.add_argument("--senders-c", type=int, default=2)
    one.add_argument("--rate", type=float, default=100.0)
    one.add_argument("--storm", type=int, default=200, help="logins of (f); 0 for none")
    one.add_argument("--storm-cap", type=float, default=6.0, help="longest (f) window, s")
    one.add_argument("--pin-server", type=int, help="CPU to pin the server to after set-up")
    two = commands.add_parser("idle", help="shape (d)")
    two.add_argument("--connections", type=int, default=2000)
    two.add_argument("--hold", type=float, default=2.0)
    three = commands.add_parser("history", help="shape (e)")
    three.add_argument("--user", default="hist0")
    three.add_argument("--room-id", type=int, default=1)
    four = commands.add_parser("login", help="shape (g)")
    four.add_argument("--user", default="lg0")
    five = commands.add_parser("search", help="shape (h)")
    five.add_argument("--users", required=True, help="comma-separated account names")
    six = commands.add_parser("resume", help="shape (i)")
    six.add_argument("--users", type=int, default=2000)
    six.add_argument("--prefix", default="rs", help="account names: <prefix>0, <prefix>1, ...")
    six.add_argument("--members", type=int, default=50)
    six.add_argument("--rate", type=float, default=100.0)
    seven = commands.add_parser("files", help="shape (j)")
    seven.add_argument("--size", type=int, default=20 * MIB, help="bytes of each file")
    seven.add_argument("--window", type=int, default=16, help="chunks or requests in flight")
    seven.add_argument("--rounds", type=int, default=3, help="transfers with nothing else running")
    seven.add_argument("--members", type=int, default=200)
    seven.add_argument("--senders", type=int, default=2)
    seven.add_argument("--rate", type=float, default=100.0)
    seven.add_argument("--pin-server", type=int, help="CPU to pin the server to after set-up")
    args = parser.parse_args(argv)
    command = {
        "session": session,
        "idle": idle,
        "history": history,
        "login": login,
        "search": search,
        "resume": resume,
        "files": files,
    }[args.command]

    def start(reactor: Any) -> Deferred[None]:
        return ensureDeferred(
            command(Loader(reactor, [args.port, *args.also_port], args.server_pid), args)
        )

    task.react(start)


if __name__ == "__main__":
    main()
