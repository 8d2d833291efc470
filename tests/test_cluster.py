"""
Tests for L{chatd.cluster}: the rules by which the processes of one
deployment share pushes, presence, sessions, the directory, the login
throttle and the operator's actions.

Two or three servers (L{ServerHarness}, synchronous) share one SQLite file
as the processes of a deployment share PostgreSQL, and a L{FakeRedis}
stands for Redis: it holds what is published until the test delivers it,
in the one order Redis would, so that every interleaving a test needs is
written out.  L{tests.test_redis} runs the same parts on real PostgreSQL
and Redis servers.
"""

from __future__ import annotations

import struct
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from chatd import wire
from chatd.admin import Operator
from chatd.cluster import BEAT, SILENCE, Cluster, RedisURL, is_redis_url
from chatd.sessions import pack, unpack
from tests.support import FakeSession, ServerHarness, unframe


class FakeRedis:
    """
    Pub/sub in memory: what is published waits in one queue until
    L{deliver}, which hands each message to every cluster subscribed to
    its channel, in the order of publication.
    """

    def __init__(self) -> None:
        self.queue: list[tuple[bytes, bytes]] = []
        self.clusters: list[Cluster] = []
        self.up = True

    def join(self, cluster: Cluster) -> None:
        self.clusters.append(cluster)
        cluster.publish = self.publish
        cluster.changed(True)

    def publish(self, channel: bytes, data: bytes) -> bool:
        if not self.up:
            return False
        self.queue.append((channel, data))
        return True

    def deliver(self) -> None:
        while self.queue:
            channel, data = self.queue.pop(0)
            for cluster in list(self.clusters):
                if channel in cluster.channels:
                    cluster.received(channel, data)

    def go_down(self) -> None:
        self.up = False
        self.queue.clear()
        for cluster in self.clusters:
            cluster.changed(False)

    def come_back(self) -> None:
        self.up = True
        for cluster in self.clusters:
            cluster.changed(True)
        self.deliver()


class Process:
    """
    One process of the deployment: a server and its cluster.
    """

    def __init__(self, testcase: SynchronousTestCase, path: str, redis: FakeRedis) -> None:
        self.harness = ServerHarness(testcase, path)
        self.server = self.harness.server
        self.sessions = self.harness.sessions
        self.directory = self.harness.directory
        self.cluster = Cluster(
            self.harness.reactor,
            "chatd:0",
            self.sessions,
            self.directory,
            self.harness.store,
            self.server,
        )
        self.cluster.start()
        testcase.addCleanup(self._stop)
        redis.join(self.cluster)
        redis.deliver()

    def _stop(self) -> None:
        beat = self.cluster._beat
        if beat.running:
            beat.stop()

    def login(self, name: str, password: str = "secret1") -> FakeSession:
        """
        @return: a session logged in here as C{name} (registered on first
            use), its login pushes forgotten.
        """
        session = FakeSession()
        try:
            self.harness.call(session, "register", username=name, password=password)
        except wire.ChatError as e:
            # Registered by another process.
            assert e.code == wire.USERNAME_TAKEN
        self.harness.call(session, "login", username=name, password=password)
        session.frames.clear()
        return session

    def call(self, session: FakeSession, kind: str, **fields: Any) -> Any:
        return self.harness.call(session, kind, **fields)

    def error(self, session: FakeSession, kind: str, **fields: Any) -> str:
        return self.harness.error(session, kind, **fields)

    def logout(self, session: FakeSession) -> None:
        self.server.disconnected(session)


class DeploymentTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = self.mktemp() + ".sqlite3"
        self.redis = FakeRedis()
        self.a = Process(self, self.path, self.redis)
        self.b = Process(self, self.path, self.redis)

    def process(self) -> Process:
        """
        @return: one more process of the deployment.
        """
        return Process(self, self.path, self.redis)

    def friends(self, one: Process, a: FakeSession, other: Process, b: FakeSession) -> None:
        one.call(a, "add_friend", username=b.username)
        self.redis.deliver()
        other.call(b, "resolve_friend_request", user_id=a.user_id)
        self.redis.deliver()
        a.frames.clear()
        b.frames.clear()


class PushTests(DeploymentTestCase):
    """
    A push reaches its recipients whichever process they are on.
    """

    def test_private_message(self) -> None:
        ann, bob = self.a.login("ann"), self.b.login("bob")
        self.redis.deliver()
        self.friends(self.a, ann, self.b, bob)
        reply = self.a.call(ann, "send_message", target_type=0, target_id=bob.user_id, message="hi")
        self.assertEqual(bob.pushes(), [])
        self.redis.deliver()
        [push] = bob.pushes()
        self.assertEqual(push, {"type": "on_new_message", "message": reply["message"]})

    def test_room_message_once_to_each(self) -> None:
        ann, bob, cat = self.a.login("ann"), self.b.login("bob"), self.b.login("cat")
        self.redis.deliver()
        room = self.a.call(ann, "create_room", name="club")["room"]
        self.redis.deliver()
        for session in (bob, cat):
            self.b.call(session, "join_room", name="club")
            self.redis.deliver()
        for session in (ann, bob, cat):
            session.frames.clear()
        self.a.call(ann, "send_message", target_type=1, target_id=room["id"], message="hello")
        self.redis.deliver()
        for session in (bob, cat):
            [push] = session.pushes()
            self.assertEqual(push["message"]["message"], "hello")
        self.assertEqual(ann.pushes(), [])

    def test_relayed_in_one_publication_per_group(self) -> None:
        """
        The pushes of one batch (a group commit's) to the users of another
        process go in one publication.
        """
        ann, bob = self.a.login("ann"), self.b.login("bob")
        self.redis.deliver()
        self.friends(self.a, ann, self.b, bob)
        with self.a.sessions.batch():
            for n in range(3):
                self.a.sessions.push([bob.user_id], {"type": "x", "n": n})
        self.assertEqual(len(self.redis.queue), 1)
        self.redis.deliver()
        self.assertEqual([p["n"] for p in unframe(b"".join(bob.frames))], [0, 1, 2])

    def test_pack(self) -> None:
        frames = [wire.frame({"type": "x"}), wire.frame({"type": "y", "n": 1})]
        data = pack(7, [1, 70000], frames[0]) + pack(0, [], frames[1])
        self.assertEqual(list(unpack(data)), [(7, (1, 70000), frames[0]), (0, (), frames[1])])
        with self.assertRaises(struct.error):
            list(unpack(data[:-1]))

    def test_bad_publication_is_logged_and_changes_nothing(self) -> None:
        ann = self.a.login("ann")
        events = self.a.cluster.channels[0]
        self.a.cluster.received(self.a.cluster.channels[1], b"\x00\x01")
        self.a.cluster.received(events, b"{not json")
        self.a.cluster.received(events, b'{"e": "room", "p": "x"}')
        self.assertEqual(len(self.flushLoggedErrors()), 3)
        self.assertTrue(self.a.sessions.online(ann.user_id))
        # Nothing waits behind them.
        self.a.cluster.received(
            events, b'{"e": "kick", "p": "x", "u": %d, "r": "shutdown"}' % ann.user_id
        )
        self.assertEqual(ann.kicked, "shutdown")

    def test_a_message_is_pushed_once(self) -> None:
        """
        A message pushed again (relayed and caught up, say) reaches nobody
        twice.
        """
        ann = self.a.login("ann")
        for _ in range(2):
            self.a.sessions.push([ann.user_id], {"type": "on_new_message"}, 7)  # type: ignore[list-item]
        self.assertEqual(len(ann.pushes()), 1)


class PresenceTests(DeploymentTestCase):
    """
    A user online on any process is online on all of them.
    """

    def test_online_elsewhere(self) -> None:
        ann = self.a.login("ann")
        bob = self.b.login("bob")
        bob_id = bob.user_id
        assert bob_id is not None
        self.redis.deliver()
        self.friends(self.a, ann, self.b, bob)
        self.b.logout(bob)
        self.redis.deliver()
        self.assertEqual(
            ann.pushes("friend_on_off_line"),
            [{"type": "friend_on_off_line", "user_id": bob_id, "username": "bob", "online": False}],
        )
        self.assertFalse(self.a.sessions.online(bob_id))
        self.b.login("bob")
        self.redis.deliver()
        [push] = ann.pushes("friend_on_off_line")
        self.assertTrue(push["online"])
        self.assertTrue(self.a.sessions.online(bob_id))
        self.assertEqual(self.a.sessions.everywhere(), 2)

    def test_login_info_says_who_is_online_elsewhere(self) -> None:
        ann = self.a.login("ann")
        bob = self.b.login("bob")
        self.redis.deliver()
        self.friends(self.a, ann, self.b, bob)
        self.a.logout(ann)
        self.redis.deliver()
        session = FakeSession()
        [_, info] = self.a.call(session, "login", username="ann", password="secret1")
        self.assertEqual([f["online"] for f in info["friends"]], [True])

    def test_moving_does_not_flicker(self) -> None:
        """
        Logging in on another process kicks the older session with
        C{logged_in_elsewhere}; friends see no offline in between.
        """
        ann = self.a.login("ann")
        bob = self.a.login("bob")
        self.redis.deliver()
        self.friends(self.a, ann, self.a, bob)
        cat = self.process()
        carl = cat.login("carl")
        self.redis.deliver()
        self.friends(self.a, bob, cat, carl)
        bob_id = bob.user_id
        assert bob_id is not None
        newer = self.b.login("bob")
        self.redis.deliver()
        self.assertEqual(bob.kicked, wire.LOGGED_IN_ELSEWHERE)
        self.a.logout(bob)
        self.redis.deliver()
        self.assertEqual(ann.pushes("friend_on_off_line"), [])
        self.assertEqual(carl.pushes("friend_on_off_line"), [])
        self.assertTrue(self.a.sessions.online(bob_id))
        self.assertEqual(self.a.sessions.where(bob_id), self.b.cluster.process)
        self.assertIsNone(newer.kicked)

    def test_logins_at_once_leave_one(self) -> None:
        """
        Two logins of one account on two processes at once: the one Redis
        heard last stays, the other is kicked.
        """
        first = self.a.login("bob")
        second = self.b.login("bob")
        self.redis.deliver()
        self.assertEqual(first.kicked, wire.LOGGED_IN_ELSEWHERE)
        self.assertIsNone(second.kicked)
        bob_id = self.a.directory.user_id("bob")
        self.assertEqual(self.a.sessions.where(bob_id), self.b.cluster.process)  # type: ignore[arg-type]
        self.assertIsNone(self.b.sessions.where(bob_id))  # type: ignore[arg-type]

    def test_quick_logout_after_move(self) -> None:
        """
        A session that ends before its own claim comes back leaves its user
        offline everywhere.
        """
        ann = self.a.login("ann")
        bob = self.b.login("bob")
        self.redis.deliver()
        self.friends(self.a, ann, self.b, bob)
        moved = self.a.login("bob")
        self.a.logout(moved)
        self.redis.deliver()
        self.assertEqual(bob.kicked, wire.LOGGED_IN_ELSEWHERE)
        bob_id = self.a.directory.user_id("bob")
        self.b.logout(bob)
        self.redis.deliver()
        for process in (self.a, self.b):
            self.assertFalse(process.sessions.online(bob_id))  # type: ignore[arg-type]
        self.assertEqual([p["online"] for p in ann.pushes("friend_on_off_line")], [False])

    def test_late_state_does_not_undo_a_newer_claim(self) -> None:
        """
        A state made before its process heard of a claim (it answers a
        hello that came before the claim) leaves that user where the claim
        put them.
        """
        self.b.login("bob")
        self.redis.deliver()
        bob_id = self.a.directory.user_id("bob")
        assert bob_id is not None
        cat = self.process()
        cat.cluster._event("hello", h="late")
        moved = self.a.login("bob")
        self.redis.deliver()
        self.assertEqual(cat.sessions.where(bob_id), self.a.cluster.process)
        self.a.logout(moved)
        self.redis.deliver()
        self.assertFalse(cat.sessions.online(bob_id))

    def test_short_drop_of_one_process(self) -> None:
        """
        One process loses Redis for a moment while a user of it leaves:
        back, it tells the others who it holds, and the user is offline
        there too.
        """
        ann = self.a.login("ann")
        bob = self.b.login("bob")
        self.redis.deliver()
        self.friends(self.a, ann, self.b, bob)
        bob_id = bob.user_id
        self.b.cluster.publish = lambda channel, data: False
        self.b.cluster.changed(False)
        self.b.logout(bob)
        self.assertTrue(self.a.sessions.online(bob_id))  # type: ignore[arg-type]
        self.b.cluster.publish = self.redis.publish
        self.b.cluster.changed(True)
        self.redis.deliver()
        self.assertFalse(self.a.sessions.online(bob_id))  # type: ignore[arg-type]
        self.assertEqual([p["online"] for p in ann.pushes("friend_on_off_line")], [False])

    def test_newcomer_learns_who_is_online(self) -> None:
        ann = self.a.login("ann")
        self.redis.deliver()
        cat = self.process()
        self.assertTrue(cat.sessions.online(ann.user_id))  # type: ignore[arg-type]
        self.assertEqual(cat.sessions.where(ann.user_id), self.a.cluster.process)  # type: ignore[arg-type]

    def test_silent_process_is_taken_for_dead(self) -> None:
        ann = self.a.login("ann")
        bob = self.b.login("bob")
        self.redis.deliver()
        self.friends(self.a, ann, self.b, bob)
        # b stops beating (it crashed); a beats on.
        self.b._stop()
        self.redis.clusters.remove(self.b.cluster)
        for _ in range(int(SILENCE / BEAT) + 1):
            self.a.harness.reactor.advance(BEAT)
            self.redis.deliver()
        self.assertFalse(self.a.sessions.online(bob.user_id))  # type: ignore[arg-type]
        self.assertEqual([p["online"] for p in ann.pushes("friend_on_off_line")], [False])

    def test_leaving_takes_users_offline_at_once(self) -> None:
        ann = self.a.login("ann")
        bob = self.b.login("bob")
        self.redis.deliver()
        self.friends(self.a, ann, self.b, bob)
        Deferred.fromCoroutine(self.b.cluster.leave())
        self.redis.deliver()
        self.assertFalse(self.a.sessions.online(bob.user_id))  # type: ignore[arg-type]


class DirectoryTests(DeploymentTestCase):
    """
    Rooms, friendships, roles and bans changed on one process are seen at
    once by the others' directories.
    """

    def test_new_user_and_friendship(self) -> None:
        ann = self.a.login("ann")
        self.redis.deliver()
        bob = self.b.login("bob")
        self.redis.deliver()
        self.assertEqual(self.a.directory.user_id("bob"), bob.user_id)
        self.friends(self.a, ann, self.b, bob)
        self.assertTrue(self.a.directory.are_friends(ann.user_id, bob.user_id))  # type: ignore[arg-type]
        # bob, on b, may now write to ann, on a.
        self.b.call(bob, "send_message", target_type=0, target_id=ann.user_id, message="hi")
        self.redis.deliver()
        self.assertEqual([p["type"] for p in ann.pushes()], ["on_new_message"])
        self.a.call(ann, "remove_friend", user_id=bob.user_id)
        self.redis.deliver()
        self.assertEqual(
            self.b.error(bob, "send_message", target_type=0, target_id=ann.user_id, message="x"),
            wire.NOT_FRIENDS,
        )

    def test_room_membership_roles_and_bans(self) -> None:
        ann, bob = self.a.login("ann"), self.b.login("bob")
        self.redis.deliver()
        room_id = self.a.call(ann, "create_room", name="club")["room"]["id"]
        self.redis.deliver()
        self.b.call(bob, "join_room", name="club")
        self.redis.deliver()
        self.assertIn(bob.user_id, self.a.directory.rooms[room_id].members)
        self.a.call(ann, "set_role", room_id=room_id, user_id=bob.user_id, role="moderator")
        self.redis.deliver()
        self.assertEqual(self.b.directory.rooms[room_id].role(bob.user_id), "moderator")  # type: ignore[arg-type]
        self.b.call(bob, "set_topic", room_id=room_id, topic="chess")
        self.redis.deliver()
        self.assertEqual(self.a.directory.rooms[room_id].topic, "chess")
        self.a.call(ann, "kick_from_room", room_id=room_id, user_id=bob.user_id, ban=True)
        self.redis.deliver()
        self.assertNotIn(bob.user_id, self.b.directory.rooms[room_id].members)
        self.assertEqual(self.b.error(bob, "join_room", name="club"), wire.NOT_ALLOWED)
        self.assertEqual(
            [p["type"] for p in bob.pushes() if p["type"] == "me_outroom"], ["me_outroom"]
        )
        self.a.call(ann, "unban_from_room", room_id=room_id, user_id=bob.user_id)
        self.redis.deliver()
        self.b.call(bob, "join_room", name="club")
        self.redis.deliver()
        self.a.call(ann, "quit_room", room_id=room_id)
        self.redis.deliver()
        self.assertEqual(self.b.directory.rooms[room_id].owner_id, bob.user_id)
        self.assertEqual(self.a.directory.rooms[room_id].owner_id, bob.user_id)

    def test_names_not_heard_of_yet(self) -> None:
        """
        A room or a user made on another process whose news has not come
        yet is found in the database.
        """
        ann = self.a.login("ann")
        self.a.call(ann, "create_room", name="club")
        bob = self.b.login("bob")
        self.assertEqual(self.b.call(bob, "join_room", name="club")["type"], "join_successful")
        self.assertEqual(
            self.b.call(bob, "add_friend", username="ann")["type"], "friend_request_sent"
        )
        self.assertEqual(self.b.error(bob, "join_room", name="nowhere"), wire.NO_SUCH_ROOM)

    def test_read_again_after_a_change_of_its_own(self) -> None:
        """
        A process's own change comes back to it and is read again: what it
        read of another's change before its own committed is corrected.
        """
        ann = self.a.login("ann")
        room_id = self.a.call(ann, "create_room", name="club")["room"]["id"]
        self.redis.deliver()
        # Stale on purpose: b believes ann left.
        self.b.directory.leave(room_id, ann.user_id)  # type: ignore[arg-type]
        self.a.call(ann, "set_topic", room_id=room_id, topic="x")
        self.redis.deliver()
        self.assertIn(ann.user_id, self.b.directory.rooms[room_id].members)


class OperatorTests(DeploymentTestCase):
    """
    The failed-login throttle and the operator's actions hold for the
    whole deployment.
    """

    def test_throttle(self) -> None:
        self.a.login("ann")
        self.redis.deliver()
        for _ in range(5):
            self.a.error(FakeSession(), "login", username="ann", password="wrong99")
        self.redis.deliver()
        self.assertEqual(
            self.b.error(FakeSession(), "login", username="ann", password="secret1"),
            wire.RATE_LIMITED,
        )
        self.assertTrue(self.b.server.unlock("ann"))
        self.redis.deliver()
        for process in (self.a, self.b):
            process.call(FakeSession(), "login", username="ann", password="secret1")
            self.redis.deliver()

    def test_disable_and_reset_password(self) -> None:
        ann = self.b.login("ann")
        self.redis.deliver()
        operator = Operator(self.a.harness.assembly, self.path, self.a.harness.reactor)
        self.a.harness.testcase.successResultOf(
            Deferred.fromCoroutine(operator.disable({"name": "ann"}))
        )
        self.redis.deliver()
        self.assertEqual(ann.kicked, wire.ACCOUNT_DISABLED)
        self.assertEqual(
            self.b.error(FakeSession(), "login", username="ann", password="secret1"),
            wire.ACCOUNT_DISABLED,
        )
        self.successResultOf(Deferred.fromCoroutine(operator.enable({"name": "ann"})))
        self.redis.deliver()
        ann = self.b.login("ann")
        self.redis.deliver()
        self.successResultOf(
            Deferred.fromCoroutine(operator.reset_password({"name": "ann", "password": "newpass1"}))
        )
        self.redis.deliver()
        self.assertEqual(ann.kicked, wire.PASSWORD_CHANGED)


class OutageTests(DeploymentTestCase):
    """
    Redis going away: each process serves its own users; when it is back,
    each catches up with what it missed, once.
    """

    def test_catch_up(self) -> None:
        ann, bob, cat = self.a.login("ann"), self.b.login("bob"), self.b.login("cat")
        self.redis.deliver()
        room_id = self.a.call(ann, "create_room", name="club")["room"]["id"]
        self.redis.deliver()
        for session in (bob, cat):
            self.b.call(session, "join_room", name="club")
            self.redis.deliver()
        self.redis.go_down()
        for session in (ann, bob, cat):
            session.frames.clear()
        missed = self.a.call(ann, "send_message", target_type=1, target_id=room_id, message="1")
        local = self.b.call(bob, "send_message", target_type=1, target_id=room_id, message="2")
        # Within b, cat got bob's at once; nobody got ann's.
        self.assertEqual([p["message"]["message"] for p in cat.pushes()], ["2"])
        self.assertEqual(bob.pushes(), [])
        self.assertEqual(ann.pushes(), [])
        self.redis.come_back()
        self.assertEqual(
            [p["message"]["id"] for p in cat.pushes("on_new_message")], [missed["message"]["id"]]
        )
        self.assertEqual(
            [p["message"]["id"] for p in bob.pushes("on_new_message")], [missed["message"]["id"]]
        )
        self.assertEqual(
            [p["message"]["id"] for p in ann.pushes("on_new_message")], [local["message"]["id"]]
        )
        # Pushes go between the processes again.
        self.a.call(ann, "send_message", target_type=1, target_id=room_id, message="3")
        self.redis.deliver()
        self.assertEqual([p["message"]["message"] for p in cat.pushes()], ["3"])

    def test_directory_read_again(self) -> None:
        ann, bob = self.a.login("ann"), self.b.login("bob")
        self.redis.deliver()
        room_id = self.a.call(ann, "create_room", name="club")["room"]["id"]
        self.redis.deliver()
        self.redis.go_down()
        self.b.call(bob, "join_room", name="club")
        self.assertNotIn(bob.user_id, self.a.directory.rooms[room_id].members)
        self.redis.come_back()
        self.assertIn(bob.user_id, self.a.directory.rooms[room_id].members)

    def test_logins_during_outage_leave_one(self) -> None:
        self.redis.go_down()
        first = self.a.login("bob")
        second = self.b.login("bob")
        self.redis.come_back()
        kicks = [first.kicked, second.kicked]
        self.assertEqual(kicks.count(wire.LOGGED_IN_ELSEWHERE), 1, kicks)
        self.assertIn(None, kicks)

    def test_long_outage_takes_the_others_offline(self) -> None:
        ann, bob = self.a.login("ann"), self.b.login("bob")
        self.redis.deliver()
        self.friends(self.a, ann, self.b, bob)
        self.redis.go_down()
        self.a.harness.reactor.advance(SILENCE + BEAT)
        self.assertFalse(self.a.sessions.online(bob.user_id))  # type: ignore[arg-type]
        self.assertEqual([p["online"] for p in ann.pushes("friend_on_off_line")], [False])
        self.redis.come_back()
        self.assertTrue(self.a.sessions.online(bob.user_id))  # type: ignore[arg-type]
        self.assertEqual([p["online"] for p in ann.pushes("friend_on_off_line")], [True])


class RedisURLTests(SynchronousTestCase):
    def test_parts(self) -> None:
        url = RedisURL("redis://:pw@example.org:6380/3")
        self.assertEqual((url.host, url.port, url.password, url.db), ("example.org", 6380, "pw", 3))
        url = RedisURL("redis://localhost")
        self.assertEqual((url.port, url.password, url.db), (6379, None, 0))

    def test_bad(self) -> None:
        for bad in ("http://x", "redis://", "redis://h/x"):
            with self.assertRaises(ValueError):
                RedisURL(bad)
        self.assertTrue(is_redis_url("redis://h"))
        self.assertFalse(is_redis_url("chatd.sqlite3"))
