"""
The real C{twistd chatd} in a subprocess: crash safety under SIGKILL and a
clean shutdown on SIGTERM.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.chatd_process import ServerProcess, spawn_chatd
from tests.support import WireClient, logged_in, wire_client

PASSWORD = "secret1"


async def start_process(
    testcase: TestCase, db: str, *options: str
) -> tuple[ServerProcess, Any, int]:
    """
    Start C{twistd -n chatd} on C{db} and a free loopback port, flood
    control lifted, with C{options} besides; it is killed when the test ends
    if it still runs.

    @return: the process protocol, its transport, and the port.
    """
    process = spawn_chatd(db, "--rate", "10000", "--burst", "10000", *options)
    transport = process.transport

    def kill() -> Deferred[Any] | None:
        if process.ended.called:
            return None
        transport.signalProcess("KILL")
        return process.ended

    testcase.addCleanup(kill)
    port = await process.ready
    return process, transport, port


async def stream(
    client: WireClient,
    room_id: int,
    tag: str,
    window: int,
    acked: list[str],
    on_ack: Any,
) -> None:
    """
    Send room messages with C{window} of them unacknowledged at a time until
    the connection is lost, recording the client_msg_id of each one
    acknowledged and calling C{on_ack()} after each.
    """
    sequence = 0
    done: Deferred[None] = Deferred()
    in_flight = 0

    def send_one() -> None:
        nonlocal sequence, in_flight
        sequence += 1
        cid = f"{tag}-{sequence}"
        in_flight += 1
        d = client.request(
            "send_message", target_type=1, target_id=room_id, message=f"m {cid}", client_msg_id=cid
        )
        d.addCallbacks(acknowledged, lost, callbackArgs=(cid,))

    def acknowledged(reply: dict, cid: str) -> None:
        nonlocal in_flight
        in_flight -= 1
        assert reply["type"] == "on_new_message", reply
        acked.append(cid)
        on_ack()
        send_one()

    def lost(failure: Failure) -> None:
        nonlocal in_flight
        in_flight -= 1
        if in_flight == 0 and not done.called:
            done.callback(None)

    for _ in range(window):
        send_one()
    await done


async def all_history(client: WireClient, target_type: int, target_id: int) -> list[dict]:
    """
    @return: every message of a conversation the client may see, oldest
        first, read forwards page by page.
    """
    messages: list[dict] = []
    after = 0
    while True:
        page = await client.request(
            "history", target_type=target_type, target_id=target_id, after=after, limit=100
        )
        messages += page["messages"]
        if not page["has_more"]:
            return messages
        after = messages[-1]["id"]


class CrashTests(TestCase):
    """
    A kill -9 mid-stream loses nothing acknowledged.
    """

    timeout = 120

    async def test_sigkill_mid_stream(self) -> None:
        """
        Every message whose reply reached its sender before a SIGKILL is in
        history after a restart, once; ids keep growing; accounts,
        friendships, requests, rooms, memberships and read markers survive.
        """
        db = os.path.abspath(self.mktemp() + ".sqlite3")
        process, transport, port = await start_process(self, db)
        names = ["ann", "bob", "cat", "dan"]
        clients = [await logged_in(self, port, name) for name in names]
        ann, bob, cat, _ = clients
        room = (await ann.request("create_room", name="stream"))["room"]["id"]
        for client in clients[1:]:
            await client.request("join_room", name="stream")
        await ann.request("add_friend", username="bob")
        await bob.request("resolve_friend_request", user_id=1)
        await cat.request("add_friend", username="ann")
        private = await ann.request("send_message", target_type=0, target_id=2, message="hi bob")
        await bob.request(
            "mark_read", target_type=0, target_id=1, message_id=private["message"]["id"]
        )

        acked: list[str] = []
        enough: Deferred[None] = Deferred()

        def on_ack() -> None:
            if len(acked) >= 400 and not enough.called:
                enough.callback(None)

        streams = [
            Deferred.fromCoroutine(stream(client, room, name, 16, acked, on_ack))
            for client, name in zip(clients, names, strict=True)
        ]
        await enough
        transport.signalProcess("KILL")
        self.assertEqual(await process.ended, 9)
        for d in streams:
            await d
        for client in clients:
            if not client.lost.called:
                await client.lost

        process, transport, port = await start_process(self, db)
        ann = await wire_client(self, port)
        await ann.request("login", username="ann", password=PASSWORD)
        info = await ann.push("login_info")
        self.assertEqual(info["friends"], [{"id": 2, "username": "bob", "online": False}])
        self.assertEqual(info["friend_requests"], [{"id": 3, "username": "cat"}])
        self.assertEqual([r["name"] for r in info["rooms"]], ["stream"])
        self.assertEqual([m["username"] for m in info["rooms"][0]["members"]], names)

        found = await all_history(ann, 1, room)
        ids = [m["id"] for m in found]
        self.assertEqual(ids, sorted(set(ids)))
        cids = [m["client_msg_id"] for m in found if m["kind"] == "text"]
        self.assertEqual(len(cids), len(set(cids)), "a message was stored twice")
        self.assertEqual(set(acked) - set(cids), set(), "an acknowledged message was lost")

        after = await ann.request("send_message", target_type=1, target_id=room, message="again")
        self.assertGreater(after["message"]["id"], max(ids))

        bob = await wire_client(self, port)
        await bob.request("login", username="bob", password=PASSWORD)
        info = await bob.push("login_info")
        self.assertNotIn(0, [u["target_type"] for u in info["unread"]], "the read marker was lost")


class ShutdownTests(TestCase):
    """
    SIGTERM shuts down cleanly.
    """

    timeout = 120

    async def test_sigterm(self) -> None:
        """
        On SIGTERM every committed message is pushed, then every connection
        (logged in or not) gets server_kick shutdown, and the process exits 0
        within a few seconds.
        """
        db = os.path.abspath(self.mktemp() + ".sqlite3")
        process, transport, port = await start_process(self, db)
        ann = await logged_in(self, port, "ann")
        bob = await logged_in(self, port, "bob")
        stranger = await wire_client(self, port)
        room = (await ann.request("create_room", name="lobby"))["room"]["id"]
        await bob.request("join_room", name="lobby")
        replies = [
            ann.request("send_message", target_type=1, target_id=room, message=f"last words {i}")
            for i in range(50)
        ]
        first = await replies[0]
        self.assertEqual(first["type"], "on_new_message")
        transport.signalProcess("TERM")
        timer = reactor.callLater(10, transport.signalProcess, "KILL")
        self.addCleanup(lambda: timer.active() and timer.cancel())
        self.assertEqual(await process.ended, 0)

        acknowledged = [first["message"]["id"]]
        for d in replies[1:]:
            try:
                reply = await d
            except ConnectionError:
                continue
            acknowledged.append(reply["message"]["id"])
        for client in (ann, bob, stranger):
            if not client.lost.called:
                await client.lost
        pushes = bob.pending_pushes()
        kinds = [p["type"] for p in pushes]
        self.assertEqual(kinds[-1], "server_kick")
        self.assertEqual(pushes[-1]["reason"], "shutdown")
        pushed = [p["message"]["id"] for p in pushes if p["type"] == "on_new_message"]
        self.assertEqual(set(acknowledged) - set(pushed), set())
        self.assertEqual(
            [p["reason"] for p in stranger.pending_pushes() if p["type"] == "server_kick"],
            ["shutdown"],
        )
        self.assertIn(b"chatd stopped", process.output)
