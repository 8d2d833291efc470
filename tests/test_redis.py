"""
Several chatd processes of one deployment on real PostgreSQL and Redis
servers on loopback (L{tests.postgres}, L{tests.redis}): two servers in
this process, each with its own port, database pool and Redis link, as
two processes would have, driven by clients over TCP; and two real
C{twistd chatd --redis} processes.

A test waits for what it expects to arrive (a push, a reply), and for
L{chatd.cluster.Cluster.synced} where it needs everything published so far
applied everywhere; it never sleeps.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from chatd import wire
from chatd.wire import PRIVATE, ROOM
from tests.postgres import SKIP as NO_POSTGRESQL
from tests.postgres import new_database
from tests.redis import SKIP as NO_REDIS
from tests.redis import redis_server
from tests.support import RunningServer, WireClient, logged_in, start_server
from tests.test_process import start_process


async def synced(*servers: RunningServer) -> None:
    """
    Wait until every server has applied what any of them published so far.
    """
    for server in servers:
        assert server.cluster is not None
        await server.cluster.synced()


class DeploymentTests(TestCase):
    """
    Two servers on one PostgreSQL database and one Redis.
    """

    timeout = 60
    skip = NO_POSTGRESQL or NO_REDIS

    async def _deployment(self) -> tuple[RunningServer, RunningServer]:
        self.redis = redis_server(self)
        db = new_database(self)
        a = await start_server(self, db, redis=self.redis.url)
        b = await start_server(self, db, redis=self.redis.url)
        for server in (a, b):
            assert server.cluster is not None
            await server.cluster.when(up=True)
        await synced(a, b)
        return a, b

    async def _friends(self, a: WireClient, b: WireClient, b_name: str) -> dict[str, Any]:
        reply = await a.request("add_friend", username=b_name)
        request = await b.push("incoming_friend_request")
        await b.request("resolve_friend_request", user_id=request["user"]["id"])
        await a.push("add_friend_result")
        return reply

    async def test_pushes_presence_and_one_session(self) -> None:
        """
        A private message reaches its recipient on the other process;
        presence crosses too; a login on one process kicks the session on
        the other with C{logged_in_elsewhere}, and friends see no flicker.
        """
        a, b = await self._deployment()
        ann = await logged_in(self, a.port, "ann")
        bob = await logged_in(self, b.port, "bob")
        await synced(a, b)
        bob_id = (await self._friends(ann, bob, "bob"))["user"]["id"]

        sent = await ann.request(
            "send_message", target_type=PRIVATE, target_id=bob_id, message="hi"
        )
        got = await bob.push("on_new_message")
        self.assertEqual(got["message"], sent["message"])

        await bob.close()
        offline = await ann.push("friend_on_off_line")
        self.assertEqual((offline["user_id"], offline["online"]), (bob_id, False))
        bob = await logged_in(self, b.port, "bob")
        online = await ann.push("friend_on_off_line")
        self.assertEqual((online["user_id"], online["online"]), (bob_id, True))

        moved = await logged_in(self, a.port, "bob")
        kick = await bob.push("server_kick")
        self.assertEqual(kick["reason"], wire.LOGGED_IN_ELSEWHERE)
        await bob.lost
        await synced(a, b)
        self.assertEqual([p for p in ann.pending_pushes() if p["type"] == "friend_on_off_line"], [])
        self.assertEqual((await moved.request("ping"))["type"], "pong")

    async def test_rooms_across(self) -> None:
        """
        A room made on one process is joined on the other; messages and
        membership pushes go both ways; a ban on one holds on the other.
        """
        a, b = await self._deployment()
        ann = await logged_in(self, a.port, "ann")
        bob = await logged_in(self, b.port, "bob")
        room = (await ann.request("create_room", name="club"))["room"]
        await synced(a, b)
        joined = await bob.request("join_room", name="club")
        self.assertEqual(joined["type"], "join_successful")
        await ann.push("someone_inroom")
        await synced(a, b)
        await ann.request("send_message", target_type=ROOM, target_id=room["id"], message="one")
        got = await bob.push("on_new_message")
        self.assertEqual(got["message"]["message"], "one")
        bob_id = joined["room"]["members"][-1]["id"]
        await ann.request("kick_from_room", room_id=room["id"], user_id=bob_id, ban=True)
        await bob.push("me_outroom")
        await synced(a, b)
        refused = await bob.request("join_room", name="club")
        self.assertEqual(refused["code"], wire.NOT_ALLOWED)

    async def test_ids_grow_in_commit_order(self) -> None:
        """
        Senders on both processes commit at once; every conversation read
        back with C{after} from the start gives every acknowledged message,
        in id order, with no gap (PROTOCOL.md section 3).
        """
        a, b = await self._deployment()
        senders = [
            await logged_in(self, server.port, f"u{i}") for i, server in enumerate((a, b, a, b))
        ]
        room = (await senders[0].request("create_room", name="race"))["room"]["id"]
        await synced(a, b)
        for sender in senders[1:]:
            await sender.request("join_room", name="race")
        await synced(a, b)

        async def send(sender: WireClient, n: int) -> list[int]:
            ids = []
            for i in range(n):
                reply = await sender.request(
                    "send_message", target_type=ROOM, target_id=room, message=f"m{i}"
                )
                ids.append(reply["message"]["id"])
            return ids

        sent = await gatherResults([Deferred.fromCoroutine(send(sender, 40)) for sender in senders])
        acknowledged = sorted(i for ids in sent for i in ids)
        read: list[int] = []
        after = 0
        while True:
            page = await senders[1].request(
                "history", target_type=ROOM, target_id=room, after=after, limit=50
            )
            ids = [m["id"] for m in page["messages"] if m["kind"] == "text"]
            read.extend(ids)
            if not page["messages"]:
                break
            after = page["messages"][-1]["id"]
        self.assertEqual(read, acknowledged)

    async def test_redis_going_away(self) -> None:
        """
        Without Redis each process serves its own users; when it is back,
        what one process committed meanwhile reaches the other's users,
        once.
        """
        a, b = await self._deployment()
        ann = await logged_in(self, a.port, "ann")
        cat = await logged_in(self, a.port, "cat")
        bob = await logged_in(self, b.port, "bob")
        room = (await ann.request("create_room", name="club"))["room"]["id"]
        await synced(a, b)
        for client in (cat, bob):
            await client.request("join_room", name="club")
        await synced(a, b)
        for client in (ann, cat, bob):
            client.pending_pushes()

        self.redis.stop()
        assert a.cluster is not None and b.cluster is not None
        await gatherResults([a.cluster.when(up=False), b.cluster.when(up=False)])
        missed = await ann.request("send_message", target_type=ROOM, target_id=room, message="1")
        local = await cat.push("on_new_message")
        self.assertEqual(local["message"]["id"], missed["message"]["id"])
        answer = await bob.request("send_message", target_type=ROOM, target_id=room, message="2")

        self.redis.start()
        caught_up = await bob.push("on_new_message")
        self.assertEqual(caught_up["message"]["id"], missed["message"]["id"])
        for client in (ann, cat):
            got = await client.push("on_new_message")
            self.assertEqual(got["message"]["id"], answer["message"]["id"])
        await synced(a, b)
        await ann.request("send_message", target_type=ROOM, target_id=room, message="3")
        for client in (cat, bob):
            later = await client.push("on_new_message")
            self.assertEqual(later["message"]["message"], "3")
        for client in (ann, cat, bob):
            self.assertEqual(
                [p for p in client.pending_pushes() if p["type"] == "on_new_message"], []
            )


class MixedTests(TestCase):
    """
    A process without C{--redis} and the processes of a deployment do not
    serve one database together.
    """

    timeout = 60
    skip = NO_POSTGRESQL or NO_REDIS

    async def test_alone_beside_a_deployment(self) -> None:
        url = redis_server(self).url
        db = new_database(self)
        await start_server(self, db, redis=url)
        with self.assertRaises(RuntimeError) as caught:
            await start_server(self, db)
        self.assertIn("another chatd is running on this database", str(caught.exception))

    async def test_deployment_beside_one_alone(self) -> None:
        url = redis_server(self).url
        db = new_database(self)
        await start_server(self, db)
        with self.assertRaises(RuntimeError) as caught:
            await start_server(self, db, redis=url)
        self.assertIn("without --redis", str(caught.exception))


class ProcessTests(TestCase):
    """
    Two real C{twistd chatd} processes of one deployment.
    """

    timeout = 120
    skip = NO_POSTGRESQL or NO_REDIS

    async def test_two_processes_one_deployment(self) -> None:
        """
        With C{--redis}, a second process on the database serves too, and
        a message sent through one reaches its recipient on the other.
        """
        redis = redis_server(self)
        db = new_database(self)
        ports = []
        for _ in range(2):
            folder = tempfile.mkdtemp(prefix="chatd-redis-")
            self.addCleanup(_remove, folder)
            options = (
                "--admin-socket",
                os.path.join(folder, "admin"),
                "--files",
                os.path.join(folder, "files"),
                "--redis",
                redis.url,
            )
            _, _, port = await start_process(self, db, *options)
            ports.append(port)
        ann = await logged_in(self, ports[0], "ann")
        bob = await logged_in(self, ports[1], "bob")
        await ann.request("add_friend", username="bob")
        request = await bob.push("incoming_friend_request")
        await bob.request("resolve_friend_request", user_id=request["user"]["id"])
        accepted = await ann.push("add_friend_result")
        bob_id = accepted["friend"]["id"]
        await ann.request("send_message", target_type=PRIVATE, target_id=bob_id, message="hi")
        got = await bob.push("on_new_message")
        self.assertEqual(got["message"]["message"], "hi")


def _remove(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)
