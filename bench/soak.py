"""
A soak run: many clients chatting for minutes against the real C{twistd
chatd}, with random disconnects and server restarts (SIGKILL and SIGTERM in
turn), then a check that every acknowledged message is in history exactly
once.

    .venv/bin/python -m bench.soak --clients 60 --minutes 5 --restarts 4

Every client logs in, joins the soak room and is friends with the next
client.  Each one sends a private or a room message every 0.2-1 s (on
average) with a fresh C{client_msg_id}, drops its connection now and then,
and on every reconnect resends what was not acknowledged with the same
C{client_msg_id}, as a real client does.  At the end the room's history
and every private conversation are read back in full.

Prints one line per server process (its RSS at start and at end) and the
totals; exits 1 if an acknowledged message is missing or stored twice.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import LoopingCall
from twisted.protocols.basic import Int32StringReceiver

from bench.proc import rss_kib
from tests.chatd_process import ServerProcess, spawn_chatd

PASSWORD = "soak-password"


class Server:
    """
    One C{twistd -n chatd} process on the soak database.
    """

    def __init__(self, db: str) -> None:
        self.db = db
        self.process: ServerProcess | None = None
        self.rss_start = 0

    def start(self) -> defer.Deferred[int]:
        """
        Start the process.

        @return: fires with its port once it serves.
        """
        self.process = spawn_chatd(self.db, "--rate", "1000", "--burst", "1000")
        return self.process.ready.addCallback(self._serving)

    def _serving(self, port: int) -> int:
        self.rss_start = rss_kib(self.pid) or 0
        return port

    @property
    def pid(self) -> int:
        """
        The process id.
        """
        assert self.process is not None
        return self.process.pid

    @property
    def ended(self) -> defer.Deferred[int]:
        """
        Fires when the process has ended.
        """
        assert self.process is not None
        return self.process.ended


class SoakClient(Int32StringReceiver):
    """
    One user's connection; replaced by a new one on every reconnect.
    """

    MAX_LENGTH = 1 << 20
    transport: Any

    def __init__(self, user: User) -> None:
        self.user = user
        self.next_id = 0
        self.replies: dict[int, defer.Deferred[dict[str, Any]]] = {}
        self.lost: defer.Deferred[None] = defer.Deferred()

    def stringReceived(self, data: bytes) -> None:
        payload = json.loads(data)
        d = self.replies.pop(payload.get("id", -1), None)
        if d is not None:
            d.callback(payload)

    def connectionLost(self, reason: Any = None) -> None:
        for d in self.replies.values():
            d.errback(ConnectionError())
        self.replies.clear()
        self.lost.callback(None)

    def request(self, kind: str, **fields: Any) -> defer.Deferred[dict[str, Any]]:
        self.next_id += 1
        d: defer.Deferred[dict[str, Any]] = defer.Deferred()
        self.replies[self.next_id] = d
        self.sendString(json.dumps({"type": kind, "id": self.next_id, **fields}).encode())
        return d


class User:
    """
    A soak user: its messages pending and acknowledged, and its connection.
    """

    def __init__(self, soak: Soak, index: int) -> None:
        self.soak = soak
        self.name = f"soak{index}"
        self.id = 0
        self.sequence = 0
        self.client: SoakClient | None = None
        # client_msg_id -> (target_type, target_id, text), not yet acknowledged
        self.pending: dict[str, tuple[int, int, str]] = {}

    async def connect(self) -> None:
        """
        Connect and log in (retrying while the server is away), then resend
        every message not yet acknowledged.
        """
        while self.soak.running or self.pending:
            port = await self.soak.port()
            client = SoakClient(self)
            try:
                await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
                reply = await client.request("login", username=self.name, password=PASSWORD)
            except Exception:
                await pause(0.2)
                continue
            if reply["type"] != "login_successful":
                raise RuntimeError(f"{self.name} cannot log in: {reply}")
            self.id = reply["user"]["id"]
            self.client = client
            client.lost.addCallback(self._lost, client)
            for cid, target in list(self.pending.items()):
                self._send(cid, *target)
            return

    def _lost(self, _: None, client: SoakClient) -> None:
        if self.client is client:
            self.client = None
            self.soak.disconnects += 1
            if self.soak.running or self.pending:
                defer.ensureDeferred(self.connect())

    def tick(self) -> None:
        """
        Do what a user does now: mostly send a message, sometimes hang up.
        """
        client = self.client
        if client is None:
            return
        if random.random() < 0.01:
            client.transport.abortConnection()
            return
        self.sequence += 1
        cid = f"{self.name}-{self.sequence}"
        if random.random() < 0.5:
            target = (1, self.soak.room_id, f"room {cid}")
        else:
            target = (0, self.soak.friend_of(self).id, f"private {cid}")
        self.pending[cid] = target
        self._send(cid, *target)

    def _send(self, cid: str, target_type: int, target_id: int, text: str) -> None:
        assert self.client is not None
        d = self.client.request(
            "send_message",
            target_type=target_type,
            target_id=target_id,
            message=text,
            client_msg_id=cid,
        )
        d.addCallbacks(self._acknowledged, lambda _: None, callbackArgs=(cid,))

    def _acknowledged(self, reply: dict[str, Any], cid: str) -> None:
        if reply["type"] != "on_new_message":
            raise RuntimeError(f"{self.name}: {reply}")
        if self.pending.pop(cid, None) is not None:
            self.soak.acked[cid] = reply["message"]["id"]


class Soak:
    """
    The whole run.
    """

    def __init__(self, clients: int, seconds: float, restarts: int, db: str) -> None:
        self.users = [User(self, i) for i in range(clients)]
        self.seconds = seconds
        self.restarts = restarts
        self.db = db
        self.server: Server | None = None
        self._port: int | None = None
        self._port_waiters: list[defer.Deferred[int]] = []
        self.running = True
        self.room_id = 0
        self.acked: dict[str, int] = {}
        self.disconnects = 0
        self.servers: list[tuple[int, int, int]] = []

    def friend_of(self, user: User) -> User:
        index = self.users.index(user)
        return self.users[(index + 1) % len(self.users)]

    def port(self) -> defer.Deferred[int]:
        """
        @return: fires with the server's port once it serves.
        """
        if self._port is not None:
            return defer.succeed(self._port)
        d: defer.Deferred[int] = defer.Deferred()
        self._port_waiters.append(d)
        return d

    def start_server(self) -> None:
        self.server = Server(self.db)
        self.server.start().addCallback(self._serving)

    def _serving(self, port: int) -> None:
        self._port = port
        waiters, self._port_waiters = self._port_waiters, []
        for d in waiters:
            d.callback(port)

    async def stop_server(self, signal: str) -> None:
        server = self.server
        assert server is not None
        rss_end = rss_kib(server.pid) or 0
        self._port = None
        os.kill(server.pid, {"KILL": 9, "TERM": 15}[signal])
        await server.ended
        self.servers.append((server.pid, server.rss_start, rss_end))
        print(
            f"server {server.pid}: RSS {server.rss_start} KiB at start,"
            f" {rss_end} KiB before {signal}",
            flush=True,
        )

    async def run(self) -> int:
        self.start_server()
        port = await self.port()
        setup = SoakClient(self.users[0])
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), setup)
        for user in self.users:
            await setup.request("register", username=user.name, password=PASSWORD)
        await setup.request("login", username=self.users[0].name, password=PASSWORD)
        created = await setup.request("create_room", name="soak")
        self.room_id = created["room"]["id"]
        setup.transport.loseConnection()
        await setup.lost
        await defer.gatherResults([defer.ensureDeferred(u.connect()) for u in self.users])
        for user in self.users[1:]:
            assert user.client is not None
            await user.client.request("join_room", name="soak")
        for user in self.users:
            friend = self.friend_of(user)
            assert user.client is not None and friend.client is not None
            reply = await user.client.request("add_friend", username=friend.name)
            if reply["type"] == "friend_request_sent":
                await friend.client.request("resolve_friend_request", user_id=user.id)

        # Each user acts about every 0.6 s, at random moments.
        ticking = LoopingCall(self._tick_some)
        ticking.start(0.05)
        sampling = LoopingCall(self._sample_memory)
        sampling.start(60, now=False)
        step = self.seconds / (self.restarts + 1)
        for restart in range(self.restarts):
            await pause(step)
            await self.stop_server("KILL" if restart % 2 == 0 else "TERM")
            self.start_server()
        await pause(step)
        self.running = False
        ticking.stop()
        sampling.stop()
        while any(user.pending for user in self.users):
            await pause(0.5)
        missing, duplicates, found = await self.verify()
        await self.stop_server("TERM")
        sent = sum(user.sequence for user in self.users)
        print(
            f"{len(self.users)} clients, {self.seconds / 60:.1f} min, {self.restarts} restarts,"
            f" {self.disconnects} disconnects: {sent} sent, {len(self.acked)} acknowledged,"
            f" {found} found in history, {missing} missing, {duplicates} stored twice"
        )
        return 1 if missing or duplicates else 0

    def _sample_memory(self) -> None:
        if self.server is not None and self._port is not None:
            print(f"server {self.server.pid}: RSS {rss_kib(self.server.pid)} KiB", flush=True)

    def _tick_some(self) -> None:
        for user in self.users:
            if random.random() < 0.05 / 0.6:
                user.tick()

    async def verify(self) -> tuple[int, int, int]:
        """
        Read back the room (its creator sees all of it) and every private
        conversation (each holds one user's messages to the next).

        @return: acknowledged messages missing, messages stored twice, and
            the text messages found.
        """
        seen: dict[str, int] = {}
        conversations = [(self.users[0], 1, self.room_id)]
        conversations += [(u, 0, self.friend_of(u).id) for u in self.users]
        for user, target_type, target_id in conversations:
            assert user.client is not None
            after = 0
            while True:
                page = await user.client.request(
                    "history", target_type=target_type, target_id=target_id, after=after, limit=100
                )
                for message in page["messages"]:
                    cid = message["client_msg_id"]
                    if cid is not None:
                        seen[cid] = seen.get(cid, 0) + 1
                if not page["has_more"]:
                    break
                after = page["messages"][-1]["id"]
        missing = sum(1 for cid in self.acked if cid not in seen)
        duplicates = sum(1 for count in seen.values() if count > 1)
        return missing, duplicates, len(seen)


def pause(seconds: float) -> defer.Deferred[None]:
    """
    @return: fires after C{seconds}.
    """
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


def main() -> None:
    """
    Run a soak from the command line.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=60)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--restarts", type=int, default=4)
    args = parser.parse_args()
    db = os.path.join(tempfile.mkdtemp(prefix="chatd-soak-"), "soak.sqlite3")
    soak = Soak(args.clients, args.minutes * 60, args.restarts, db)
    outcome: list[int] = []

    async def go() -> None:
        try:
            outcome.append(await soak.run())
        finally:
            reactor.stop()

    reactor.callWhenRunning(lambda: defer.ensureDeferred(go()))
    reactor.run()
    sys.exit(outcome[0] if outcome else 2)


if __name__ == "__main__":
    main()
