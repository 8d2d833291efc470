"""
Tests for L{chatd.server}: the rules of PROTOCOL.md sections 3-6, with fake
sessions and a real store on a temporary SQLite file.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from argon2 import PasswordHasher
from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import SynchronousTestCase

from chatd import wire
from chatd.database import DatabaseHealth, DatabaseUnavailable, make_pool
from chatd.directory import Directory
from chatd.passwords import cheap_hasher
from chatd.wire import PRIVATE, ROOM, ChatError, Payload
from chatd.writer import GroupCommit
from tests.postgres import on_postgresql
from tests.support import FIXED_NOW, PLAIN, FakeSession, InlineThreadPool, ServerHarness
from tests.test_writer import HeldPool

#: The commit time of every message in these tests.
TIME = "2026-11-24T06:00:30.123Z"


def user(session: FakeSession) -> Payload:
    """
    @return: the PROTOCOL.md User object of C{session}'s user.
    """
    return {"id": session.user_id, "username": session.username}


def member(session: FakeSession, online: bool = True) -> Payload:
    """
    @return: the PROTOCOL.md Friend/Member object of C{session}'s user.
    """
    return {"id": session.user_id, "username": session.username, "online": online}


def in_room(session: FakeSession, role: str = "member", online: bool = True) -> Payload:
    """
    @return: the PROTOCOL.md Member object of C{session}'s user in a room.
    """
    return {**member(session, online), "role": role}


class FailingPool:
    """
    A writer pool whose every transaction fails as a broken database does.
    """

    def runInteraction(self, f: Any, *args: Any) -> Deferred[Any]:
        return fail(sqlite3.OperationalError("disk I/O error"))


class ServerTestCase(SynchronousTestCase):
    """
    A L{ServerHarness} and shortcuts for the requests the tests repeat.
    """

    def setUp(self) -> None:
        self.path = self.new_database()
        self.h = ServerHarness(self, self.path)

    def new_database(self) -> str:
        """
        @return: where the test's data goes: a new SQLite file.
        """
        return self.mktemp() + ".sqlite3"

    def refusal(self, session: FakeSession, kind: str, **fields: Any) -> ChatError:
        """
        @return: the L{ChatError} a request is refused with.
        """
        try:
            self.h.call(session, kind, **fields)
        except ChatError as e:
            return e
        raise self.failureException(f"{kind} {fields} was not refused")

    def login(self, name: str, password: str = "secret1") -> tuple[FakeSession, Payload]:
        """
        @return: a new session logged in as C{name}, and its C{login_info}.
        """
        session = FakeSession()
        reply, info = self.h.call(session, "login", username=name, password=password)
        self.assertEqual(reply["type"], "login_successful")
        self.assertEqual(info["type"], "login_info")
        return session, info

    def relogin(self, session: FakeSession) -> tuple[FakeSession, Payload]:
        """
        Log C{session} out and its user in again on a new session.
        """
        name = session.username
        assert name is not None
        self.h.call(session, "logout")
        return self.login(name)

    def offline(self, session: FakeSession) -> int:
        """
        Log C{session} out, forgetting what that pushes to others.

        @return: its user id.
        """
        user_id = session.user_id
        assert user_id is not None
        self.h.call(session, "logout")
        for other in self.h.sessions:
            other.frames.clear()  # type: ignore[attr-defined]
        return user_id

    def send(
        self, sender: FakeSession, target_type: int, target_id: int, text: str = "hi", **fields: Any
    ) -> Payload:
        """
        @return: the stored message a successful C{send_message} answers.
        """
        reply = self.h.call(
            sender,
            "send_message",
            target_type=target_type,
            target_id=target_id,
            message=text,
            **fields,
        )
        self.assertEqual(reply["type"], "on_new_message")
        return reply["message"]

    def history(self, session: FakeSession, target_type: int, target_id: int, **fields: Any) -> Any:
        reply = self.h.call(
            session, "history", target_type=target_type, target_id=target_id, **fields
        )
        self.assertEqual(
            (reply["type"], reply["target_type"], reply["target_id"]),
            ("history", target_type, target_id),
        )
        return reply

    def history_ids(
        self, session: FakeSession, target_type: int, target_id: int, **fields: Any
    ) -> tuple[list[int], bool]:
        reply = self.history(session, target_type, target_id, **fields)
        return [m["id"] for m in reply["messages"]], reply["has_more"]

    def create(self, owner: FakeSession, name: str) -> int:
        """
        @return: the id of a new room C{owner} created, with pushes forgotten.
        """
        room_id = self.h.call(owner, "create_room", name=name)["room"]["id"]
        self.clear()
        return int(room_id)

    def join(self, session: FakeSession, name: str) -> Payload:
        reply = self.h.call(session, "join_room", name=name)
        self.clear()
        return reply

    def clear(self) -> None:
        """
        Forget every push any online session got so far.
        """
        for session in self.h.sessions:
            session.frames.clear()  # type: ignore[attr-defined]

    def hold_writes(self) -> HeldPool:
        """
        From now on, every write of the store waits in flight until the test
        releases it.
        """
        pool = make_pool(self.path, self.h.reactor, 1)
        pool.threadpool = InlineThreadPool()  # type: ignore[assignment]
        self.addCleanup(pool.close)
        held = HeldPool(pool)
        self.h.store.writer = GroupCommit(held, DatabaseHealth(), lambda: FIXED_NOW)  # type: ignore[arg-type]
        return held

    def unread(self, info: Payload) -> dict[tuple[int, int], tuple[int, int]]:
        """
        @return: C{login_info.unread} as (type, id) -> (count, last id).
        """
        found = {}
        for entry in info["unread"]:
            key = (entry["target_type"], entry["target_id"])
            self.assertNotIn(key, found)
            found[key] = (entry["count"], entry["last_message_id"])
        return found


# Accounts.


class RegisterTests(ServerTestCase):
    """
    C{register}.
    """

    def test_register(self) -> None:
        """
        Registering answers the new User and does not log in.
        """
        session = FakeSession()
        reply = self.h.call(session, "register", username="Alice_1", password="secret1")
        self.assertEqual(
            reply,
            {
                "type": "register_successful",
                "user": {"id": reply["user"]["id"], "username": "Alice_1"},
            },
        )
        self.assertIsNone(session.user_id)
        self.assertEqual(self.h.error(session, "list_rooms"), wire.NOT_AUTHENTICATED)
        self.assertEqual(self.h.error(session, "logout"), wire.NOT_AUTHENTICATED)
        self.assertEqual(self.h.call(session, "ping"), {"type": "pong"})

    def test_invalid_username(self) -> None:
        """
        A username that is not 1-32 ASCII letters, digits or underscores is
        C{invalid_username}, and nothing is stored.
        """
        for name in ["", "a" * 33, "a b", "a-b", "al.ce", "é", "ali\n", "\uff41", "١٢"]:
            error = self.h.error(FakeSession(), "register", username=name, password="secret1")
            self.assertEqual(error, wire.INVALID_USERNAME, name)
        for name in ["a", "_", "9", "A" * 32, "a_B_9"]:
            self.h.call(FakeSession(), "register", username=name, password="secret1")
        snapshot = self.successResultOf(self.h.store.load_directory())
        self.assertEqual(
            sorted(snapshot.users.values()), sorted(["a", "_", "9", "A" * 32, "a_B_9"])
        )

    def test_invalid_password(self) -> None:
        """
        A password shorter than 6 or longer than 128 characters, or all
        whitespace, is C{invalid_password}.
        """
        for password in ["", "12345", "x" * 129, " " * 6, "\t\n \u3000\u00a0 ", " " * 128]:
            error = self.h.error(FakeSession(), "register", username="alice", password=password)
            self.assertEqual(error, wire.INVALID_PASSWORD, repr(password))
        for i, password in enumerate(["123456", "x" * 128, "пароль", "  a   ", "😀" * 6]):
            self.h.call(FakeSession(), "register", username=f"user{i}", password=password)
            self.login(f"user{i}", password)

    def test_username_taken(self) -> None:
        """
        A name taken in any case is C{username_taken}.
        """
        self.h.call(FakeSession(), "register", username="Alice", password="secret1")
        for name in ["Alice", "alice", "ALICE"]:
            error = self.h.error(FakeSession(), "register", username=name, password="other12")
            self.assertEqual(error, wire.USERNAME_TAKEN)
        self.login("alice")

    def test_missing_fields(self) -> None:
        """
        A missing or mistyped username or password is C{invalid_field}.
        """
        for fields in [
            {"username": "alice"},
            {"password": "secret1"},
            {"username": 1, "password": "x"},
        ]:
            self.assertEqual(self.h.error(FakeSession(), "register", **fields), wire.INVALID_FIELD)


class GateTests(ServerTestCase):
    """
    What may be asked before login, and unknown requests.
    """

    def test_login_gate(self) -> None:
        """
        Before login, every request but C{register}, C{login} and C{ping}
        is C{not_authenticated}.
        """
        session = FakeSession()
        for kind in [
            "logout",
            "send_message",
            "history",
            "mark_read",
            "add_friend",
            "resolve_friend_request",
            "remove_friend",
            "create_room",
            "join_room",
            "quit_room",
            "add_friend_to_room",
            "list_rooms",
        ]:
            self.assertEqual(self.h.error(session, kind), wire.NOT_AUTHENTICATED, kind)
        self.assertEqual(self.h.call(session, "ping"), {"type": "pong"})

    def test_unknown_type(self) -> None:
        """
        An unknown request type is C{unknown_type} after login; before it,
        like anything but register, login and ping, C{not_authenticated}.
        """
        self.assertEqual(self.h.error(FakeSession(), "fly"), wire.NOT_AUTHENTICATED)
        self.assertEqual(self.h.error(self.h.user("alice"), "fly"), wire.UNKNOWN_TYPE)

    def test_extra_fields_ignored(self) -> None:
        """
        Unknown extra fields in a request are ignored.
        """
        alice, bob = self.h.user("alice"), self.h.user("bob")
        self.h.friends(alice, bob)
        message = self.send(alice, PRIVATE, bob.user_id, "x", colour="red", id=7)
        self.assertEqual(message["message"], "x")
        self.assertEqual(self.h.call(alice, "ping", extra=[1, 2]), {"type": "pong"})


class LoginTests(ServerTestCase):
    """
    C{login}, C{login_info} and C{logout}.
    """

    def test_login_info_counts_mentions(self) -> None:
        """
        login_info.unread counts, beside the unread messages, those that
        mention the user (PROTOCOL.md section 5).
        """
        ncr, lzy = self.h.user("ncr"), self.h.user("lzy")
        self.h.friends(ncr, lzy)
        lzy_id = self.offline(lzy)
        self.successResultOf(
            self.h.store.add_message(ncr.user_id, PRIVATE, lzy_id, "@lzy look", mentions=(lzy_id,))
        )
        self.send(ncr, PRIVATE, lzy_id, "plain")
        _, info = self.login("lzy")
        [entry] = info["unread"]
        self.assertEqual((entry["count"], entry["mentions"]), (2, 1))

    def test_login(self) -> None:
        """
        A login answers the User, follows it with C{login_info}, and makes
        the user online.
        """
        user_id = self.h.call(FakeSession(), "register", username="alice", password="secret1")[
            "user"
        ]["id"]
        session = FakeSession()
        reply, info = self.h.call(session, "login", username="alice", password="secret1")
        token = reply.pop("token")
        self.assertRegex(token, r"^[A-Za-z0-9_-]{43}$")
        self.assertEqual(
            reply, {"type": "login_successful", "user": {"id": user_id, "username": "alice"}}
        )
        self.assertEqual(
            info,
            {
                "type": "login_info",
                "user": {"id": user_id, "username": "alice"},
                "friends": [],
                "rooms": [],
                "friend_requests": [],
                "unread": [],
            },
        )
        self.assertEqual((session.user_id, session.username), (user_id, "alice"))
        self.assertTrue(self.h.sessions.online(user_id))

    def test_login_failed_identical(self) -> None:
        """
        A wrong password, an unknown user and an impossible name are all
        refused with the same code and the same message.
        """
        self.h.user("alice")
        refusals = [
            self.refusal(FakeSession(), "login", username="alice", password="wrong12"),
            self.refusal(FakeSession(), "login", username="bob", password="secret1"),
            self.refusal(FakeSession(), "login", username="no body", password="secret1"),
        ]
        self.assertEqual(
            {(e.code, e.message) for e in refusals}, {(wire.LOGIN_FAILED, refusals[0].message)}
        )

    def test_already_authenticated(self) -> None:
        """
        A second login on a logged-in connection is C{already_authenticated},
        even as another user.
        """
        alice = self.h.user("alice")
        self.h.call(FakeSession(), "register", username="bob", password="secret1")
        for name in ["alice", "bob"]:
            error = self.h.error(alice, "login", username=name, password="secret1")
            self.assertEqual(error, wire.ALREADY_AUTHENTICATED)
        self.assertEqual(alice.username, "alice")

    def test_throttle(self) -> None:
        """
        After 5 failed logins for a name within 60 s, even the right
        password is C{rate_limited}; the throttle lifts after the window.
        """
        self.offline(self.h.user("alice"))
        for _ in range(5):
            error = self.h.error(FakeSession(), "login", username="alice", password="wrong12")
            self.assertEqual(error, wire.LOGIN_FAILED)
        self.h.reactor.advance(59)
        error = self.h.error(FakeSession(), "login", username="alice", password="secret1")
        self.assertEqual(error, wire.RATE_LIMITED)
        self.h.reactor.advance(1)
        self.login("alice")

    def test_throttle_unknown_username(self) -> None:
        """
        Failed logins for a name nobody has are throttled the same way.
        """
        for _ in range(5):
            error = self.h.error(FakeSession(), "login", username="ghost", password="secret1")
            self.assertEqual(error, wire.LOGIN_FAILED)
        error = self.h.error(FakeSession(), "login", username="ghost", password="secret1")
        self.assertEqual(error, wire.RATE_LIMITED)

    def test_throttle_per_name_any_case(self) -> None:
        """
        Failures count per name in any case, and do not hold back other names.
        """
        self.offline(self.h.user("alice"))
        self.offline(self.h.user("bob"))
        for name in ["alice", "Alice", "ALICE", "aLiCe", "alicE"]:
            self.h.error(FakeSession(), "login", username=name, password="wrong12")
        error = self.h.error(FakeSession(), "login", username="alice", password="secret1")
        self.assertEqual(error, wire.RATE_LIMITED)
        self.login("bob")

    def test_failures_spread_out_not_throttled(self) -> None:
        """
        Four failures, then a fifth more than 60 s later, do not throttle.
        """
        self.offline(self.h.user("alice"))
        for _ in range(4):
            self.h.error(FakeSession(), "login", username="alice", password="wrong12")
        self.h.reactor.advance(61)
        self.h.error(FakeSession(), "login", username="alice", password="wrong12")
        self.login("alice")

    def test_rehash(self) -> None:
        """
        A login whose stored hash has outdated parameters stores a new hash
        with the current ones, and the password still works.
        """
        user_id = self.offline(self.h.user("alice"))
        old = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1).hash("secret1")
        self.successResultOf(self.h.store.set_password_hash(user_id, old))
        self.login("alice")
        credentials = self.successResultOf(self.h.store.credentials("alice"))
        assert credentials is not None
        self.assertNotEqual(credentials.password_hash, old)
        self.assertFalse(cheap_hasher().check_needs_rehash(credentials.password_hash))
        self.login("alice")
        unchanged = self.successResultOf(self.h.store.credentials("alice"))
        self.assertEqual(unchanged, credentials)

    def test_login_info(self) -> None:
        """
        C{login_info} lists the user, friends with online flags, rooms with
        members and online flags, pending requests to the user, and unread
        conversations.
        """
        alice, bob, carol, dave = (self.h.user(n) for n in ["alice", "bob", "carol", "dave"])
        erin = self.h.user("erin")
        self.h.friends(alice, bob)
        self.h.friends(carol, alice)
        self.h.call(dave, "add_friend", username="alice")
        self.h.call(alice, "add_friend", username="erin")
        room = self.create(alice, "lobby")
        self.join(bob, "lobby")
        self.join(carol, "lobby")
        self.create(bob, "other")
        private = self.send(bob, PRIVATE, alice.user_id, "hi alice")
        seen = self.history(alice, ROOM, room)["messages"][-1]["id"]
        self.h.call(alice, "mark_read", target_type=ROOM, target_id=room, message_id=seen)
        alice_user, bob_user, carol_user = user(alice), user(bob), user(carol)
        self.offline(carol)
        self.offline(alice)
        in_room = self.send(bob, ROOM, room, "hi room")

        _, info = self.login("alice")
        info["friends"].sort(key=lambda f: f["id"])
        info["unread"].sort(key=lambda u: (u["target_type"], u["target_id"]))
        for each in info["rooms"]:
            each["members"].sort(key=lambda m: m["id"])
        self.assertEqual(
            info,
            {
                "type": "login_info",
                "user": alice_user,
                "friends": sorted(
                    [{**bob_user, "online": True}, {**carol_user, "online": False}],
                    key=lambda f: f["id"],
                ),
                "rooms": [
                    {
                        "id": room,
                        "name": "lobby",
                        "topic": "",
                        "members": [
                            {**alice_user, "online": True, "role": "owner"},
                            {**bob_user, "online": True, "role": "member"},
                            {**carol_user, "online": False, "role": "member"},
                        ],
                    }
                ],
                "friend_requests": [user(dave)],
                "unread": [
                    {
                        "target_type": PRIVATE,
                        "target_id": bob.user_id,
                        "count": 1,
                        "mentions": 0,
                        "last_message_id": private["id"],
                    },
                    {
                        "target_type": ROOM,
                        "target_id": room,
                        "count": 1,
                        "mentions": 0,
                        "last_message_id": in_room["id"],
                    },
                ],
            },
        )
        self.assertEqual(erin.pushes("friend_on_off_line"), [])

    def test_logout(self) -> None:
        """
        C{logout} answers C{logout_successful}, logs the session out, and
        the user is offline.
        """
        alice = self.h.user("alice")
        user_id = alice.user_id
        self.assertEqual(self.h.call(alice, "logout"), {"type": "logout_successful"})
        self.assertIsNone(alice.user_id)
        self.assertFalse(self.h.sessions.online(user_id))
        self.assertEqual(self.h.error(alice, "list_rooms"), wire.NOT_AUTHENTICATED)


class PresenceTests(ServerTestCase):
    """
    C{friend_on_off_line} and the duplicate-login kick.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice, self.bob, self.carol, self.dave, self.erin = (
            self.h.user(n) for n in ["alice", "bob", "carol", "dave", "erin"]
        )
        self.h.friends(self.alice, self.bob)
        self.h.call(self.dave, "add_friend", username="alice")
        self.h.call(self.alice, "add_friend", username="erin")
        self.clear()

    def test_friends_only(self) -> None:
        """
        Logging out and in pushes C{friend_on_off_line} to online friends
        only: not to strangers, pending requesters or targets, nor oneself.
        """
        alice_id = self.alice.user_id
        self.h.call(self.alice, "logout")
        event = {"type": "friend_on_off_line", "user_id": alice_id, "username": "alice"}
        self.assertEqual(self.bob.pushes(), [{**event, "online": False}])
        alice, _ = self.login("alice")
        self.assertEqual(self.bob.pushes(), [{**event, "online": True}])
        for other in [self.alice, alice, self.carol, self.dave, self.erin]:
            self.assertEqual(other.pushes(), [])

    def test_disconnect_after_logout(self) -> None:
        """
        The connection closing after a logout announces nothing more.
        """
        self.h.call(self.alice, "logout")
        self.assertEqual(len(self.bob.pushes()), 1)
        self.h.server.disconnected(self.alice)
        self.assertEqual(self.bob.pushes(), [])

    def test_disconnect_is_offline(self) -> None:
        """
        A connection lost without logout makes its user offline to friends.
        """
        alice_id = self.alice.user_id
        self.h.server.disconnected(self.alice)
        self.assertEqual(
            self.bob.pushes(),
            [
                {
                    "type": "friend_on_off_line",
                    "user_id": alice_id,
                    "username": "alice",
                    "online": False,
                }
            ],
        )
        self.assertFalse(self.h.sessions.online(alice_id))

    def test_duplicate_login(self) -> None:
        """
        A second login of an account kicks the older session with
        C{logged_in_elsewhere}, and friends and co-members see no offline or
        online flicker; pushes go to the new session.
        """
        room = self.create(self.alice, "lobby")
        self.join(self.carol, "lobby")
        old = self.alice
        new, info = self.login("alice")
        self.assertEqual(old.kicked, "logged_in_elsewhere")
        self.assertEqual(info["friends"], [member(self.bob)])
        self.h.server.disconnected(old)
        for other in [self.bob, self.carol, new]:
            self.assertEqual(other.pushes(), [], other.username)
        self.assertTrue(self.h.sessions.online(new.user_id))
        sent = self.send(self.bob, PRIVATE, new.user_id)
        in_room = self.send(self.carol, ROOM, room)
        self.assertEqual(
            new.pushes(),
            [
                {"type": "on_new_message", "message": sent},
                {"type": "on_new_message", "message": in_room},
            ],
        )
        self.assertEqual(old.pushes(), [])
        self.h.call(new, "logout")
        self.assertEqual(len(self.bob.pushes("friend_on_off_line")), 1)
        self.assertEqual(len(self.carol.pushes("room_user_on_off_line")), 1)

    def test_friend_online_flag(self) -> None:
        """
        Friend objects in C{login_info} say whether each friend is online.
        """
        bob_id = self.offline(self.bob)
        alice, info = self.relogin(self.alice)
        self.assertEqual(info["friends"], [{"id": bob_id, "username": "bob", "online": False}])
        bob, _ = self.login("bob")
        _, info = self.relogin(alice)
        self.assertEqual(info["friends"], [member(bob)])


# Friends.


class FriendTests(ServerTestCase):
    """
    C{add_friend}, C{resolve_friend_request} and C{remove_friend}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice, self.bob, self.carol = (self.h.user(n) for n in ["alice", "bob", "carol"])

    def test_request_pushed(self) -> None:
        """
        A request answers C{friend_request_sent} and pushes
        C{incoming_friend_request} to the online target only.
        """
        reply = self.h.call(self.alice, "add_friend", username="bob")
        self.assertEqual(reply, {"type": "friend_request_sent", "user": user(self.bob)})
        self.assertEqual(
            self.bob.pushes(), [{"type": "incoming_friend_request", "user": user(self.alice)}]
        )
        self.assertEqual(self.alice.pushes() + self.carol.pushes(), [])

    def test_request_to_offline_user(self) -> None:
        """
        A request to an offline user appears in their next C{login_info}.
        """
        self.offline(self.bob)
        self.h.call(self.alice, "add_friend", username="bob")
        self.h.call(self.carol, "add_friend", username="bob")
        _, info = self.login("bob")
        self.assertEqual(info["friend_requests"], [user(self.alice), user(self.carol)])

    def test_repeat_request(self) -> None:
        """
        Repeating a pending request answers C{friend_request_sent} again
        without a second push.
        """
        self.h.call(self.alice, "add_friend", username="bob")
        self.bob.pushes()
        reply = self.h.call(self.alice, "add_friend", username="bob")
        self.assertEqual(reply, {"type": "friend_request_sent", "user": user(self.bob)})
        self.assertEqual(self.bob.pushes(), [])
        _, info = self.relogin(self.bob)
        self.assertEqual(info["friend_requests"], [user(self.alice)])

    def test_request_back_accepts(self) -> None:
        """
        Asking someone who already asked us accepts: both get
        C{add_friend_result} and they are friends.
        """
        self.h.call(self.alice, "add_friend", username="bob")
        self.bob.pushes()
        reply = self.h.call(self.bob, "add_friend", username="alice")
        self.assertEqual(
            reply, {"type": "add_friend_result", "friend": member(self.alice), "accepted": True}
        )
        self.assertEqual(
            self.alice.pushes(),
            [{"type": "add_friend_result", "friend": member(self.bob), "accepted": True}],
        )
        self.assertEqual(self.bob.pushes(), [])
        self.send(self.alice, PRIVATE, self.bob.user_id)
        _, info = self.relogin(self.bob)
        self.assertEqual(info["friend_requests"], [])
        self.assertEqual(info["friends"], [member(self.alice)])

    def test_refusals(self) -> None:
        """
        Befriending oneself is C{invalid_target}, a friend C{already_friends},
        an unknown name C{no_such_user}.
        """
        self.h.friends(self.alice, self.bob)
        self.assertEqual(
            self.h.error(self.alice, "add_friend", username="alice"), wire.INVALID_TARGET
        )
        self.assertEqual(
            self.h.error(self.alice, "add_friend", username="bob"), wire.ALREADY_FRIENDS
        )
        self.assertEqual(
            self.h.error(self.bob, "add_friend", username="alice"), wire.ALREADY_FRIENDS
        )
        self.assertEqual(
            self.h.error(self.alice, "add_friend", username="ghost"), wire.NO_SUCH_USER
        )
        self.assertEqual(self.h.error(self.alice, "add_friend", username=7), wire.INVALID_FIELD)
        self.assertEqual(self.bob.pushes() + self.alice.pushes(), [])

    def test_accept(self) -> None:
        """
        Resolving without C{accept} accepts: the requester gets
        C{add_friend_result} with us as the friend.
        """
        self.h.call(self.alice, "add_friend", username="bob")
        self.bob.pushes()
        reply = self.h.call(self.bob, "resolve_friend_request", user_id=self.alice.user_id)
        self.assertEqual(
            reply, {"type": "add_friend_result", "friend": member(self.alice), "accepted": True}
        )
        self.assertEqual(
            self.alice.pushes(),
            [{"type": "add_friend_result", "friend": member(self.bob), "accepted": True}],
        )
        self.send(self.bob, PRIVATE, self.alice.user_id)

    def test_decline_silent(self) -> None:
        """
        Declining answers C{accepted: false}, tells the requester nothing,
        and removes the request.
        """
        self.h.call(self.alice, "add_friend", username="bob")
        reply = self.h.call(
            self.bob, "resolve_friend_request", user_id=self.alice.user_id, accept=False
        )
        self.assertEqual(
            reply, {"type": "add_friend_result", "friend": member(self.alice), "accepted": False}
        )
        self.assertEqual(self.alice.pushes(), [])
        error = self.h.error(
            self.alice, "send_message", target_type=PRIVATE, target_id=self.bob.user_id, message="x"
        )
        self.assertEqual(error, wire.NOT_FRIENDS)
        error = self.h.error(self.bob, "resolve_friend_request", user_id=self.alice.user_id)
        self.assertEqual(error, wire.NO_PENDING_REQUEST)
        _, info = self.relogin(self.bob)
        self.assertEqual(info["friend_requests"], [])

    def test_no_pending_request(self) -> None:
        """
        Resolving without a pending request from that user (none, unknown
        user, our own request, already friends) is C{no_pending_request}.
        """
        self.h.call(self.alice, "add_friend", username="bob")
        self.h.friends(self.carol, self.bob)
        for user_id in [self.carol.user_id, 999, self.bob.user_id, self.alice.user_id]:
            error = self.h.error(self.alice, "resolve_friend_request", user_id=user_id)
            self.assertEqual(error, wire.NO_PENDING_REQUEST, user_id)
        error = self.h.error(self.bob, "resolve_friend_request", user_id=self.carol.user_id)
        self.assertEqual(error, wire.NO_PENDING_REQUEST)
        error = self.h.error(
            self.bob, "resolve_friend_request", user_id=self.alice.user_id, accept=1
        )
        self.assertEqual(error, wire.INVALID_FIELD)
        self.h.call(self.bob, "resolve_friend_request", user_id=self.alice.user_id)

    def test_remove_friend(self) -> None:
        """
        Removing a friend tells both sides with C{friend_removed}, refuses
        private messages and history after, and they can befriend again.
        """
        self.h.friends(self.alice, self.bob)
        reply = self.h.call(self.alice, "remove_friend", user_id=self.bob.user_id)
        self.assertEqual(reply, {"type": "friend_removed", "user_id": self.bob.user_id})
        self.assertEqual(
            self.bob.pushes(), [{"type": "friend_removed", "user_id": self.alice.user_id}]
        )
        self.assertEqual(self.alice.pushes(), [])
        for a, b in [(self.alice, self.bob), (self.bob, self.alice)]:
            fields = {"target_type": PRIVATE, "target_id": b.user_id}
            self.assertEqual(
                self.h.error(a, "send_message", message="x", **fields), wire.NOT_FRIENDS
            )
            self.assertEqual(self.h.error(a, "history", **fields), wire.NOT_FRIENDS)
        error = self.h.error(self.bob, "remove_friend", user_id=self.alice.user_id)
        self.assertEqual(error, wire.NOT_FRIENDS)
        self.h.friends(self.bob, self.alice)
        self.send(self.alice, PRIVATE, self.bob.user_id)

    def test_remove_refusals(self) -> None:
        """
        Removing a non-friend is C{not_friends}, an unknown user
        C{no_such_user}.
        """
        self.assertEqual(
            self.h.error(self.alice, "remove_friend", user_id=self.bob.user_id), wire.NOT_FRIENDS
        )
        self.assertEqual(self.h.error(self.alice, "remove_friend", user_id=999), wire.NO_SUCH_USER)


# Private messages.


class PrivateMessageTests(ServerTestCase):
    """
    C{send_message} between friends.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice, self.bob, self.carol = (self.h.user(n) for n in ["alice", "bob", "carol"])
        self.h.friends(self.alice, self.bob)
        self.alice_id, self.bob_id = self.alice.user_id, self.bob.user_id

    def stored_bodies(self) -> list[str]:
        messages, _ = self.successResultOf(
            self.h.store.private_history(self.alice_id, self.bob_id, None, None, 100)
        )
        return [m.body for m in messages]

    def test_message_object(self) -> None:
        """
        The reply and the recipient's push carry the same stored Message,
        whose C{target_id} is the recipient.
        """
        reply = self.h.call(
            self.alice,
            "send_message",
            target_type=PRIVATE,
            target_id=self.bob.user_id,
            message="hello bob",
            client_msg_id="c-1",
        )
        message = reply["message"]
        self.assertEqual(
            reply,
            {
                "type": "on_new_message",
                "message": {
                    "id": message["id"],
                    "client_msg_id": "c-1",
                    "sender_id": self.alice.user_id,
                    "sender_name": "alice",
                    "target_type": PRIVATE,
                    "target_id": self.bob.user_id,
                    "kind": "text",
                    "message": "hello bob",
                    "time": TIME,
                    **PLAIN,
                },
            },
        )
        self.assertIsInstance(message["id"], int)
        self.assertEqual(self.bob.pushes(), [{"type": "on_new_message", "message": message}])
        self.assertEqual(self.alice.pushes() + self.carol.pushes(), [])
        back = self.send(self.bob, PRIVATE, self.alice.user_id, "hello alice")
        self.assertEqual(
            (back["sender_id"], back["target_id"], back["client_msg_id"]),
            (self.bob.user_id, self.alice.user_id, None),
        )
        self.assertGreater(back["id"], message["id"])

    def test_refusals(self) -> None:
        """
        A private message to a non-friend is C{not_friends}, to oneself
        C{invalid_target}, to nobody C{no_such_user}; a bad C{target_type}
        is C{invalid_field}; nothing is stored or pushed.
        """
        for target, code in [
            (self.carol.user_id, wire.NOT_FRIENDS),
            (self.alice.user_id, wire.INVALID_TARGET),
            (999, wire.NO_SUCH_USER),
        ]:
            error = self.h.error(
                self.alice, "send_message", target_type=PRIVATE, target_id=target, message="x"
            )
            self.assertEqual(error, code)
        for fields in [
            {"target_type": 2, "target_id": self.bob.user_id},
            {"target_type": "0", "target_id": self.bob.user_id},
            {"target_type": PRIVATE, "target_id": -1},
            {"target_type": PRIVATE},
        ]:
            error = self.h.error(self.alice, "send_message", message="x", **fields)
            self.assertEqual(error, wire.INVALID_FIELD, fields)
        self.assertEqual(self.bob.pushes() + self.carol.pushes(), [])
        self.assertEqual(self.stored_bodies(), [])

    def test_invalid_text(self) -> None:
        """
        Empty, whitespace-only, NUL-holding and 4001-character texts are
        C{invalid_message}; a missing text is C{invalid_field}.
        """
        for text in ["", " ", " \n\t\u3000 ", "a\0b", "\0", "a" * 4001, "😀" * 4001]:
            error = self.h.error(
                self.alice,
                "send_message",
                target_type=PRIVATE,
                target_id=self.bob.user_id,
                message=text,
            )
            self.assertEqual(error, wire.INVALID_MESSAGE, repr(text[:10]))
        error = self.h.error(
            self.alice, "send_message", target_type=PRIVATE, target_id=self.bob.user_id
        )
        self.assertEqual(error, wire.INVALID_FIELD)
        self.assertEqual(self.bob.pushes(), [])
        self.assertEqual(self.stored_bodies(), [])

    def test_text_stored_exactly(self) -> None:
        """
        4000 code points (emoji included) are accepted and come back from
        history exactly as sent, whitespace and all.
        """
        texts = ["😀" * 4000, "a" * 4000, "  two\nlines\r\n  ", "'; DROP TABLE users; --", "x"]
        for text in texts:
            self.send(self.alice, PRIVATE, self.bob.user_id, text)
        page = self.history(self.bob, PRIVATE, self.alice.user_id)
        self.assertEqual([m["message"] for m in page["messages"]], texts)
        self.assertEqual(
            [p["message"]["message"] for p in self.bob.pushes("on_new_message")], texts
        )

    def test_push_after_commit(self) -> None:
        """
        Neither the reply nor the recipient's push happens before the
        message's transaction commits.
        """
        held = self.hold_writes()
        d = self.h.server.dispatch(
            self.alice,
            {
                "type": "send_message",
                "target_type": PRIVATE,
                "target_id": self.bob.user_id,
                "message": "x",
            },
        )
        self.assertIsInstance(d, Deferred)
        self.assertNoResult(d)
        self.assertEqual(self.bob.pushes(), [])
        self.assertEqual(self.history(self.bob, PRIVATE, self.alice.user_id)["messages"], [])
        held.release()
        reply = self.successResultOf(d)
        # The push is the reply's bytes: the message is encoded once.
        self.assertEqual(self.bob.frames, [reply.frame()])

    def test_offline_friend(self) -> None:
        """
        A message to an offline friend is stored and reaches them through
        C{login_info.unread} and C{history}.
        """
        bob_id = self.offline(self.bob)
        first = self.send(self.alice, PRIVATE, bob_id, "one")
        second = self.send(self.alice, PRIVATE, bob_id, "two")
        bob, info = self.login("bob")
        self.assertEqual(self.unread(info), {(PRIVATE, self.alice.user_id): (2, second["id"])})
        page = self.history(bob, PRIVATE, self.alice.user_id)
        self.assertEqual(page["messages"], [first, second])
        self.assertEqual(bob.pushes(), [])

    def test_client_msg_id_retry(self) -> None:
        """
        Resending with the same C{client_msg_id} answers the first message
        and stores and pushes nothing, also after logging in again.
        """
        first = self.send(self.alice, PRIVATE, self.bob.user_id, "once", client_msg_id="abc")
        self.assertEqual(len(self.bob.pushes()), 1)
        again = self.send(self.alice, PRIVATE, self.bob.user_id, "twice", client_msg_id="abc")
        self.assertEqual(again, first)
        alice, _ = self.relogin(self.alice)
        self.bob.pushes()
        later = self.send(alice, PRIVATE, self.bob.user_id, "once", client_msg_id="abc")
        self.assertEqual(later, first)
        self.assertEqual(self.bob.pushes(), [])
        self.assertEqual(self.stored_bodies(), ["once"])
        other = self.send(alice, PRIVATE, self.bob.user_id, "new", client_msg_id="abd")
        self.assertGreater(other["id"], first["id"])

    def test_client_msg_id_length(self) -> None:
        """
        A C{client_msg_id} of 0 or 65 characters (or not a string) is
        C{invalid_field}; 1 and 64 are accepted.
        """
        fields = {"target_type": PRIVATE, "target_id": self.bob.user_id, "message": "x"}
        for bad in ["", "x" * 65, 5]:
            error = self.h.error(self.alice, "send_message", client_msg_id=bad, **fields)
            self.assertEqual(error, wire.INVALID_FIELD)
        self.assertEqual(self.stored_bodies(), [])
        for good in ["x", "😀" * 64]:
            message = self.send(self.alice, PRIVATE, self.bob.user_id, client_msg_id=good)
            self.assertEqual(message["client_msg_id"], good)


class HistoryTests(ServerTestCase):
    """
    C{history} of a private conversation.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice, self.bob, self.carol = (self.h.user(n) for n in ["alice", "bob", "carol"])
        self.h.friends(self.alice, self.bob)
        self.h.friends(self.alice, self.carol)

    def fill(self, count: int) -> list[int]:
        ids = []
        for i in range(count):
            a, b = (self.alice, self.bob) if i % 3 else (self.bob, self.alice)
            ids.append(self.send(a, PRIVATE, b.user_id, f"m{i}")["id"])
            if i % 7 == 0:
                self.send(self.alice, PRIVATE, self.carol.user_id, "elsewhere")
        return ids

    def test_friends_only(self) -> None:
        """
        History with a non-friend is C{not_friends}, with oneself
        C{invalid_target}, with nobody C{no_such_user}.
        """
        for target, code in [
            (self.bob.user_id, wire.NOT_FRIENDS),
            (self.carol.user_id, wire.INVALID_TARGET),
            (999, wire.NO_SUCH_USER),
        ]:
            self.assertEqual(
                self.h.error(self.carol, "history", target_type=PRIVATE, target_id=target), code
            )

    def test_default_newest_50(self) -> None:
        """
        Without paging fields, history is the newest 50 messages, oldest
        first, with C{has_more}.
        """
        ids = self.fill(60)
        page = self.history(self.alice, PRIVATE, self.bob.user_id)
        self.assertEqual([m["id"] for m in page["messages"]], ids[10:])
        self.assertTrue(page["has_more"])
        self.assertEqual(page["messages"][-1]["message"], "m59")
        self.assertEqual(
            self.history_ids(self.bob, PRIVATE, self.alice.user_id, limit=100), (ids, False)
        )

    def test_before(self) -> None:
        """
        C{before} pages backwards, each page oldest first, C{has_more} exact.
        """
        ids = self.fill(12)
        self.assertEqual(
            self.history_ids(self.alice, PRIVATE, self.bob.user_id, limit=5), (ids[7:], True)
        )
        self.assertEqual(
            self.history_ids(self.alice, PRIVATE, self.bob.user_id, before=ids[7], limit=5),
            (ids[2:7], True),
        )
        self.assertEqual(
            self.history_ids(self.alice, PRIVATE, self.bob.user_id, before=ids[5], limit=5),
            (ids[0:5], False),
        )
        self.assertEqual(
            self.history_ids(self.alice, PRIVATE, self.bob.user_id, before=ids[2], limit=5),
            (ids[0:2], False),
        )

    def test_after(self) -> None:
        """
        C{after} pages forwards from a message, oldest first, C{has_more}
        exact.
        """
        ids = self.fill(12)
        self.assertEqual(
            self.history_ids(self.alice, PRIVATE, self.bob.user_id, after=0, limit=5),
            (ids[:5], True),
        )
        self.assertEqual(
            self.history_ids(self.alice, PRIVATE, self.bob.user_id, after=ids[5], limit=5),
            (ids[6:11], True),
        )
        self.assertEqual(
            self.history_ids(self.alice, PRIVATE, self.bob.user_id, after=ids[6], limit=5),
            (ids[7:], False),
        )
        self.assertEqual(
            self.history_ids(self.alice, PRIVATE, self.bob.user_id, after=ids[11]), ([], False)
        )

    def test_has_more_exact(self) -> None:
        """
        C{has_more} is false with exactly C{limit} messages and true with
        one more.
        """
        ids = self.fill(5)
        self.assertEqual(
            self.history_ids(self.alice, PRIVATE, self.bob.user_id, limit=5), (ids, False)
        )
        ids.append(self.send(self.alice, PRIVATE, self.bob.user_id)["id"])
        self.assertEqual(
            self.history_ids(self.alice, PRIVATE, self.bob.user_id, limit=5), (ids[1:], True)
        )

    def test_invalid_fields(self) -> None:
        """
        A limit outside 1-100 or not an integer, or C{before} with C{after},
        is C{invalid_field}.
        """
        ids = self.fill(3)
        target = {"target_type": PRIVATE, "target_id": self.bob.user_id}
        for fields in [
            {"limit": 0},
            {"limit": 101},
            {"limit": "5"},
            {"limit": 5.0},
            {"limit": True},
            {"before": ids[2], "after": ids[0]},
            {"before": "3"},
            {"after": -1},
        ]:
            self.assertEqual(
                self.h.error(self.alice, "history", **target, **fields), wire.INVALID_FIELD
            )
        self.assertEqual(
            self.history_ids(self.alice, PRIVATE, self.bob.user_id, limit=1), (ids[2:], True)
        )
        self.assertEqual(
            self.history_ids(self.alice, PRIVATE, self.bob.user_id, limit=100), (ids, False)
        )


class ReadMarkerTests(ServerTestCase):
    """
    C{mark_read} and C{login_info.unread}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice, self.bob, self.carol = (self.h.user(n) for n in ["alice", "bob", "carol"])
        self.h.friends(self.alice, self.bob)
        self.h.friends(self.carol, self.bob)

    def test_unread_counts_others_after_marker(self) -> None:
        """
        Unread counts only the other side's messages after the marker, with
        the conversation's newest message as C{last_message_id}.
        """
        m = [self.send(self.alice, PRIVATE, self.bob.user_id, str(i))["id"] for i in range(3)]
        self.send(self.bob, PRIVATE, self.alice.user_id, "mine")
        last = self.send(self.alice, PRIVATE, self.bob.user_id, "last")["id"]
        self.send(self.carol, PRIVATE, self.bob.user_id, "carol")
        reply = self.h.call(
            self.bob,
            "mark_read",
            target_type=PRIVATE,
            target_id=self.alice.user_id,
            message_id=m[0],
        )
        self.assertEqual(reply, {"type": "ok"})
        _, info = self.relogin(self.bob)
        self.assertEqual(
            self.unread(info),
            {
                (PRIVATE, self.alice.user_id): (3, last),
                (PRIVATE, self.carol.user_id): (1, last + 1),
            },
        )

    def test_marker_never_backwards(self) -> None:
        """
        Marking an older message read does not move the marker back.
        """
        m = [self.send(self.alice, PRIVATE, self.bob.user_id, str(i))["id"] for i in range(3)]
        target = {"target_type": PRIVATE, "target_id": self.alice.user_id}
        self.h.call(self.bob, "mark_read", message_id=m[2], **target)
        self.h.call(self.bob, "mark_read", message_id=m[0], **target)
        bob, info = self.relogin(self.bob)
        self.assertEqual(info["unread"], [])
        newer = self.send(self.alice, PRIVATE, bob.user_id, "newer")["id"]
        _, info = self.relogin(bob)
        self.assertEqual(self.unread(info), {(PRIVATE, self.alice.user_id): (1, newer)})

    def test_mark_read_refusals(self) -> None:
        """
        Marking a conversation one may not see is refused like history; a
        missing message id is C{invalid_field}.
        """
        fields = {"target_type": PRIVATE, "message_id": 1}
        self.assertEqual(
            self.h.error(self.alice, "mark_read", target_id=self.carol.user_id, **fields),
            wire.NOT_FRIENDS,
        )
        self.assertEqual(
            self.h.error(self.alice, "mark_read", target_id=999, **fields), wire.NO_SUCH_USER
        )
        self.assertEqual(
            self.h.error(self.alice, "mark_read", target_type=ROOM, target_id=1, message_id=1),
            wire.NO_SUCH_ROOM,
        )
        self.assertEqual(
            self.h.error(self.alice, "mark_read", target_type=PRIVATE, target_id=self.bob.user_id),
            wire.INVALID_FIELD,
        )


# Rooms.


class CreateRoomTests(ServerTestCase):
    """
    C{create_room}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice, self.bob = (self.h.user(n) for n in ["alice", "bob"])

    def test_create(self) -> None:
        """
        The creator is the first member, and "X created the room" is the
        room's first message, a system message.
        """
        reply = self.h.call(self.alice, "create_room", name="Lobby")
        room = reply["room"]["id"]
        self.assertEqual(
            reply,
            {
                "type": "create_successful",
                "room": {
                    "id": room,
                    "name": "Lobby",
                    "topic": "",
                    "members": [in_room(self.alice, "owner")],
                },
            },
        )
        page = self.history(self.alice, ROOM, room)
        self.assertEqual(
            page["messages"],
            [
                {
                    "id": page["messages"][0]["id"],
                    "client_msg_id": None,
                    "sender_id": self.alice.user_id,
                    "sender_name": "alice",
                    "target_type": ROOM,
                    "target_id": room,
                    "room_name": "Lobby",
                    "kind": "system",
                    "message": "alice created the room",
                    "time": TIME,
                    **PLAIN,
                }
            ],
        )
        self.assertEqual(self.alice.pushes() + self.bob.pushes(), [])

    def test_room_exists(self) -> None:
        """
        A name taken in any case is C{room_exists}.
        """
        self.h.call(self.alice, "create_room", name="Lobby")
        for name in ["Lobby", "lobby", "LOBBY"]:
            self.assertEqual(self.h.error(self.bob, "create_room", name=name), wire.ROOM_EXISTS)
        self.assertEqual(len(self.h.call(self.bob, "list_rooms")["rooms"]), 1)

    def test_invalid_room_name(self) -> None:
        """
        A name that is not 1-32 ASCII letters, digits or underscores is
        C{invalid_room_name}; a missing one C{invalid_field}.
        """
        for name in ["", "a" * 33, "a b", "lob-by", "é", "%", "lobby\n"]:
            self.assertEqual(
                self.h.error(self.alice, "create_room", name=name), wire.INVALID_ROOM_NAME
            )
        self.assertEqual(self.h.error(self.alice, "create_room"), wire.INVALID_FIELD)
        self.assertEqual(self.h.call(self.alice, "list_rooms")["rooms"], [])
        self.h.call(self.alice, "create_room", name="a" * 32)
        self.h.call(self.alice, "create_room", name="_9")


class JoinRoomTests(ServerTestCase):
    """
    C{join_room}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice, self.bob, self.carol, self.dave = (
            self.h.user(n) for n in ["alice", "bob", "carol", "dave"]
        )
        self.room = self.create(self.alice, "lobby")
        self.join(self.carol, "lobby")
        self.carol_id = self.offline(self.carol)

    def test_join(self) -> None:
        """
        Joining answers the room with its members' online flags; online
        members get C{someone_inroom} and "X joined the room", the joiner
        neither, strangers nothing.
        """
        reply = self.h.call(self.bob, "join_room", name="lobby")
        members = reply["room"]["members"]
        self.assertEqual(
            reply,
            {
                "type": "join_successful",
                "room": {"id": self.room, "name": "lobby", "topic": "", "members": members},
            },
        )
        self.assertCountEqual(
            members,
            [
                in_room(self.alice, "owner"),
                in_room(self.bob),
                {"id": self.carol_id, "username": "carol", "online": False, "role": "member"},
            ],
        )
        pushes = self.alice.pushes()
        self.assertCountEqual([p["type"] for p in pushes], ["someone_inroom", "on_new_message"])
        self.assertIn(
            {"type": "someone_inroom", "room_id": self.room, "user": in_room(self.bob)}, pushes
        )
        [message] = [p["message"] for p in pushes if p["type"] == "on_new_message"]
        self.assertEqual(
            message,
            {
                "id": message["id"],
                "client_msg_id": None,
                "sender_id": self.bob.user_id,
                "sender_name": "bob",
                "target_type": ROOM,
                "target_id": self.room,
                "room_name": "lobby",
                "kind": "system",
                "message": "bob joined the room",
                "time": TIME,
                **PLAIN,
            },
        )
        self.assertEqual(self.bob.pushes() + self.dave.pushes(), [])
        self.assertEqual(self.history(self.bob, ROOM, self.room)["messages"], [message])

    def test_refusals(self) -> None:
        """
        Joining an unknown room is C{no_such_room}, a joined one
        C{already_in_room}.
        """
        self.assertEqual(self.h.error(self.bob, "join_room", name="nowhere"), wire.NO_SUCH_ROOM)
        self.assertEqual(self.h.error(self.alice, "join_room", name="lobby"), wire.ALREADY_IN_ROOM)
        self.assertEqual(self.h.error(self.bob, "join_room", name=3), wire.INVALID_FIELD)
        self.assertEqual(self.alice.pushes(), [])


class QuitRoomTests(ServerTestCase):
    """
    C{quit_room}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice, self.bob, self.carol = (self.h.user(n) for n in ["alice", "bob", "carol"])
        self.room = self.create(self.alice, "lobby")
        self.join(self.bob, "lobby")

    def test_quit(self) -> None:
        """
        Quitting answers C{me_outroom}; the other members get
        C{someone_outroom} and "X left the room"; the quitter is then out.
        """
        reply = self.h.call(self.bob, "quit_room", room_id=self.room)
        self.assertEqual(reply, {"type": "me_outroom", "room_id": self.room})
        pushes = self.alice.pushes()
        self.assertIn(
            {"type": "someone_outroom", "room_id": self.room, "user_id": self.bob.user_id}, pushes
        )
        [message] = [p["message"] for p in pushes if p["type"] == "on_new_message"]
        self.assertEqual(len(pushes), 2)
        self.assertEqual(
            (message["kind"], message["sender_id"], message["message"], message["target_id"]),
            ("system", self.bob.user_id, "bob left the room", self.room),
        )
        self.assertEqual(self.bob.pushes() + self.carol.pushes(), [])
        target = {"target_type": ROOM, "target_id": self.room}
        self.assertEqual(
            self.h.error(self.bob, "send_message", message="x", **target), wire.NOT_IN_ROOM
        )
        self.assertEqual(self.h.error(self.bob, "history", **target), wire.NOT_IN_ROOM)
        self.send(self.alice, ROOM, self.room)
        self.assertEqual(self.bob.pushes(), [])

    def test_refusals(self) -> None:
        """
        Quitting a room not joined is C{not_in_room}, an unknown room
        C{no_such_room}.
        """
        self.assertEqual(self.h.error(self.carol, "quit_room", room_id=self.room), wire.NOT_IN_ROOM)
        self.assertEqual(self.h.error(self.alice, "quit_room", room_id=999), wire.NO_SUCH_ROOM)
        self.assertEqual(self.h.error(self.alice, "quit_room", room_id="1"), wire.INVALID_FIELD)
        self.assertEqual(self.alice.pushes() + self.bob.pushes(), [])

    def test_empty_room_lives_on(self) -> None:
        """
        A room whose last member quits keeps existing with its history, and
        can be joined again.
        """
        self.h.call(self.bob, "quit_room", room_id=self.room)
        self.h.call(self.alice, "quit_room", room_id=self.room)
        self.assertEqual(
            self.h.call(self.carol, "list_rooms")["rooms"],
            [{"id": self.room, "name": "lobby", "topic": "", "member_count": 0}],
        )
        self.assertEqual(self.h.error(self.carol, "create_room", name="Lobby"), wire.ROOM_EXISTS)
        reply = self.h.call(self.carol, "join_room", name="lobby")
        self.assertEqual(
            reply["room"],
            {
                "id": self.room,
                "name": "lobby",
                "topic": "",
                "members": [in_room(self.carol, "owner")],
            },
        )
        stored, _ = self.successResultOf(self.h.store.room_history(self.room, 0, None, None, 100))
        self.assertEqual(
            [m.body for m in stored],
            [
                "alice created the room",
                "bob joined the room",
                "bob left the room",
                "alice left the room",
                "carol joined the room",
            ],
        )

    def test_login_info_drops_quit_room(self) -> None:
        """
        A quit room is no longer in the user's C{login_info.rooms}, and
        unread messages in it are not counted.
        """
        other = self.create(self.bob, "other")
        self.h.call(self.bob, "quit_room", room_id=self.room)
        self.send(self.alice, ROOM, self.room)
        _, info = self.relogin(self.bob)
        self.assertEqual([r["id"] for r in info["rooms"]], [other])
        self.assertEqual(info["unread"], [])


class AddFriendToRoomTests(ServerTestCase):
    """
    C{add_friend_to_room}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice, self.bob, self.carol, self.dave, self.erin = (
            self.h.user(n) for n in ["alice", "bob", "carol", "dave", "erin"]
        )
        self.h.friends(self.alice, self.bob)
        self.h.friends(self.alice, self.carol)
        self.h.friends(self.alice, self.dave)
        self.h.friends(self.erin, self.bob)
        self.room = self.create(self.alice, "lobby")
        self.join(self.carol, "lobby")

    def test_add(self) -> None:
        """
        The invited friend joins at once and gets C{join_successful} and
        "X added Y to the room"; the other members get C{someone_inroom},
        and the message unless they sent it.
        """
        reply = self.h.call(
            self.alice, "add_friend_to_room", room_id=self.room, user_id=self.bob.user_id
        )
        self.assertEqual(reply, {"type": "ok"})
        bob_pushes = self.bob.pushes()
        self.assertEqual([p["type"] for p in bob_pushes], ["join_successful", "on_new_message"])
        room = bob_pushes[0]["room"]
        self.assertEqual((room["id"], room["name"]), (self.room, "lobby"))
        self.assertCountEqual(
            room["members"],
            [in_room(self.alice, "owner"), in_room(self.carol), in_room(self.bob)],
        )
        message = bob_pushes[1]["message"]
        self.assertEqual(
            (message["kind"], message["sender_id"], message["message"], message["target_id"]),
            ("system", self.alice.user_id, "alice added bob to the room", self.room),
        )
        inroom = {"type": "someone_inroom", "room_id": self.room, "user": in_room(self.bob)}
        self.assertCountEqual(
            self.carol.pushes(), [inroom, {"type": "on_new_message", "message": message}]
        )
        # The inviter gets the system message too: their reply does not
        # carry it, and their timeline would miss it.
        self.assertEqual(
            self.alice.pushes(), [inroom, {"type": "on_new_message", "message": message}]
        )
        self.assertEqual(self.dave.pushes() + self.erin.pushes(), [])
        self.assertEqual(self.history(self.bob, ROOM, self.room)["messages"], [message])
        self.send(self.bob, ROOM, self.room)

    def test_offline_invitee(self) -> None:
        """
        A friend added while offline finds the room in their next
        C{login_info}.
        """
        dave_id = self.offline(self.dave)
        self.h.call(self.alice, "add_friend_to_room", room_id=self.room, user_id=dave_id)
        _, info = self.login("dave")
        self.assertEqual([r["id"] for r in info["rooms"]], [self.room])
        self.assertIn(
            {"id": dave_id, "username": "dave", "online": True, "role": "member"},
            info["rooms"][0]["members"],
        )

    def test_refusals(self) -> None:
        """
        The inviter must be in the room (C{not_in_room}), the invitee their
        friend (C{not_friends}) and not a member (C{already_in_room}).
        """
        fields = {"room_id": self.room}
        cases = [
            (self.erin, self.bob.user_id, wire.NOT_IN_ROOM),
            (self.alice, self.erin.user_id, wire.NOT_FRIENDS),
            (self.alice, self.carol.user_id, wire.ALREADY_IN_ROOM),
            (self.alice, 999, wire.NO_SUCH_USER),
        ]
        for inviter, invitee, code in cases:
            error = self.h.error(inviter, "add_friend_to_room", user_id=invitee, **fields)
            self.assertEqual(error, code, (inviter.username, invitee))
        error = self.h.error(
            self.alice, "add_friend_to_room", room_id=999, user_id=self.bob.user_id
        )
        self.assertEqual(error, wire.NO_SUCH_ROOM)
        for session in [self.alice, self.bob, self.carol, self.erin]:
            self.assertEqual(session.pushes(), [])
        self.assertEqual(self.h.call(self.alice, "list_rooms")["rooms"][0]["member_count"], 2)


class ListRoomsTests(ServerTestCase):
    """
    C{list_rooms}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice, self.bob = (self.h.user(n) for n in ["alice", "bob"])

    def names(self, **fields: Any) -> list[str]:
        return [r["name"] for r in self.h.call(self.bob, "list_rooms", **fields)["rooms"]]

    def test_literal_substring(self) -> None:
        """
        The query is a plain substring in any case: C{%}, C{_} and quotes
        are no wildcards and break nothing.
        """
        for name in ["a_b", "axb", "ab", "xAb_C", "zzz"]:
            self.create(self.alice, name)
        self.assertEqual(self.names(query="_"), ["a_b", "xAb_C"])
        self.assertEqual(self.names(query="a_b"), ["a_b"])
        self.assertEqual(self.names(query="AB"), ["ab", "xAb_C"])
        for query in ["%", "a%b", "'", '"', "' OR 1=1 --", "\\", "*"]:
            self.assertEqual(self.names(query=query), [], query)
        self.assertEqual(self.names(query=""), self.names())
        self.assertEqual(self.h.error(self.bob, "list_rooms", query=1), wire.INVALID_FIELD)

    def test_order_limit_and_count(self) -> None:
        """
        At most 100 rooms are listed, by name, each with its member count.
        """
        for i in reversed(range(105)):
            self.create(self.alice, f"r{i:03d}")
        self.join(self.bob, "r001")
        rooms = self.h.call(self.bob, "list_rooms")["rooms"]
        self.assertEqual([r["name"] for r in rooms], [f"r{i:03d}" for i in range(100)])
        self.assertEqual([r["member_count"] for r in rooms[:3]], [1, 2, 1])
        self.assertEqual(set(rooms[0]), {"id", "name", "topic", "member_count"})
        self.assertEqual(self.names(query="r10"), ["r100", "r101", "r102", "r103", "r104"])


class RoomMessageTests(ServerTestCase):
    """
    Messages in rooms.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice, self.bob, self.carol, self.dave = (
            self.h.user(n) for n in ["alice", "bob", "carol", "dave"]
        )
        self.room = self.create(self.alice, "lobby")
        self.join(self.bob, "lobby")
        self.join(self.carol, "lobby")

    def test_members_only(self) -> None:
        """
        A non-member's message is C{not_in_room}, one to an unknown room
        C{no_such_room}; nothing is pushed.
        """
        error = self.h.error(
            self.dave, "send_message", target_type=ROOM, target_id=self.room, message="x"
        )
        self.assertEqual(error, wire.NOT_IN_ROOM)
        error = self.h.error(
            self.alice, "send_message", target_type=ROOM, target_id=999, message="x"
        )
        self.assertEqual(error, wire.NO_SUCH_ROOM)
        self.assertEqual(
            self.h.error(self.dave, "history", target_type=ROOM, target_id=self.room),
            wire.NOT_IN_ROOM,
        )
        for session in [self.alice, self.bob, self.carol, self.dave]:
            self.assertEqual(session.pushes(), [])

    def test_pushed_to_other_members(self) -> None:
        """
        A room message is pushed once to every other online member, as the
        same bytes, never to the sender, offline members or strangers.
        """
        self.offline(self.carol)
        self.join(self.dave, "lobby")
        message = self.send(self.bob, ROOM, self.room, "hello room")
        self.assertEqual(
            message,
            {
                "id": message["id"],
                "client_msg_id": None,
                "sender_id": self.bob.user_id,
                "sender_name": "bob",
                "target_type": ROOM,
                "target_id": self.room,
                "room_name": "lobby",
                "kind": "text",
                "message": "hello room",
                "time": TIME,
                **PLAIN,
            },
        )
        self.assertEqual(self.alice.frames, self.dave.frames)
        self.assertEqual(len(self.alice.frames), 1)
        self.assertEqual(self.alice.pushes(), [{"type": "on_new_message", "message": message}])
        self.assertEqual(self.bob.pushes() + self.carol.pushes(), [])

    def test_push_after_commit(self) -> None:
        """
        Room members get a message only after it commits.
        """
        held = self.hold_writes()
        d = self.h.server.dispatch(
            self.bob,
            {"type": "send_message", "target_type": ROOM, "target_id": self.room, "message": "x"},
        )
        self.assertNoResult(d)
        self.assertEqual(self.alice.pushes() + self.carol.pushes(), [])
        held.release()
        reply = self.successResultOf(d)
        self.assertEqual(self.alice.frames, [reply.frame()])

    def test_history_since_latest_join(self) -> None:
        """
        Room history shows a member only messages since their latest join:
        quitting and rejoining hides the gap and what came before.
        """
        before = self.send(self.alice, ROOM, self.room, "before")
        self.h.call(self.bob, "quit_room", room_id=self.room)
        self.send(self.alice, ROOM, self.room, "gap")
        self.h.call(self.bob, "join_room", name="lobby")
        after = self.send(self.alice, ROOM, self.room, "after")
        page = self.history(self.bob, ROOM, self.room)
        self.assertEqual([m["message"] for m in page["messages"]], ["bob joined the room", "after"])
        self.assertFalse(page["has_more"])
        ids, _ = self.history_ids(self.bob, ROOM, self.room, after=0)
        self.assertNotIn(before["id"], ids)
        self.assertEqual(ids[-1], after["id"])
        self.assertEqual(self.history_ids(self.bob, ROOM, self.room, before=ids[0]), ([], False))
        everything = [m["message"] for m in self.history(self.alice, ROOM, self.room)["messages"]]
        self.assertIn("gap", everything)

    def test_room_unread(self) -> None:
        """
        Unread in a room counts others' messages after the marker, not one's
        own, with the room's newest message as C{last_message_id}.
        """
        seen = self.history(self.bob, ROOM, self.room)["messages"][-1]
        self.assertEqual(seen["message"], "carol joined the room")
        self.h.call(
            self.bob, "mark_read", target_type=ROOM, target_id=self.room, message_id=seen["id"]
        )
        self.offline(self.bob)
        first = self.send(self.alice, ROOM, self.room, "1")
        self.send(self.carol, ROOM, self.room, "2")
        third = self.send(self.alice, ROOM, self.room, "3")
        bob, info = self.login("bob")
        self.assertEqual(self.unread(info), {(ROOM, self.room): (3, third["id"])})
        self.h.call(bob, "mark_read", target_type=ROOM, target_id=self.room, message_id=first["id"])
        mine = self.send(bob, ROOM, self.room, "mine")
        _, info = self.relogin(bob)
        self.assertEqual(self.unread(info), {(ROOM, self.room): (2, mine["id"])})


class RoomPresenceTests(ServerTestCase):
    """
    C{room_user_on_off_line}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice, self.bob, self.carol, self.dave = (
            self.h.user(n) for n in ["alice", "bob", "carol", "dave"]
        )
        self.h.friends(self.bob, self.carol)
        self.one = self.create(self.alice, "one")
        self.two = self.create(self.alice, "two")
        for name in ["one", "two"]:
            self.join(self.bob, name)
        self.join(self.carol, "one")

    def presence(self, room_id: int, user_id: int | None, online: bool) -> Payload:
        return {
            "type": "room_user_on_off_line",
            "room_id": room_id,
            "user_id": user_id,
            "online": online,
        }

    def test_one_push_per_shared_room(self) -> None:
        """
        A co-member going offline and online is announced once per shared
        room; a friend who is also a co-member gets both kinds.
        """
        bob_id = self.offline_keeping_pushes(self.bob)
        self.assertCountEqual(
            self.alice.pushes(),
            [self.presence(self.one, bob_id, False), self.presence(self.two, bob_id, False)],
        )
        self.assertCountEqual(
            self.carol.pushes(),
            [
                self.presence(self.one, bob_id, False),
                {
                    "type": "friend_on_off_line",
                    "user_id": bob_id,
                    "username": "bob",
                    "online": False,
                },
            ],
        )
        self.assertEqual(self.dave.pushes(), [])
        self.login("bob")
        self.assertCountEqual(
            self.alice.pushes(),
            [self.presence(self.one, bob_id, True), self.presence(self.two, bob_id, True)],
        )
        self.assertEqual(len(self.carol.pushes()), 2)
        self.assertEqual(self.dave.pushes(), [])

    def test_none_after_quit(self) -> None:
        """
        After a user quits a room, its members no longer hear of their
        presence.
        """
        self.h.call(self.bob, "quit_room", room_id=self.one)
        self.h.call(self.bob, "quit_room", room_id=self.two)
        self.clear()
        bob_id = self.offline_keeping_pushes(self.bob)
        self.assertEqual(self.alice.pushes(), [])
        self.assertEqual(
            self.carol.pushes(),
            [{"type": "friend_on_off_line", "user_id": bob_id, "username": "bob", "online": False}],
        )

    def test_login_info_member_flags(self) -> None:
        """
        Members in C{login_info.rooms} carry their online flags.
        """
        carol_id = self.offline(self.carol)
        alice, info = self.relogin(self.alice)
        [one] = [r for r in info["rooms"] if r["id"] == self.one]
        self.assertCountEqual(
            one["members"],
            [
                in_room(alice, "owner"),
                in_room(self.bob),
                {"id": carol_id, "username": "carol", "online": False, "role": "member"},
            ],
        )

    def offline_keeping_pushes(self, session: FakeSession) -> int:
        user_id = session.user_id
        assert user_id is not None
        self.h.call(session, "logout")
        return user_id


class FanOutTests(ServerTestCase):
    """
    One message to a crowded room.
    """

    def test_fifty_members(self) -> None:
        """
        With 50 members online, one message reaches each other member
        exactly once, as the same bytes, and the sender not at all.
        """
        sessions = [self.h.user(f"user{i:02d}") for i in range(50)]
        room = self.create(sessions[0], "crowd")
        for session in sessions[1:]:
            self.join(session, "crowd")
        sender = sessions[17]
        message = self.send(sender, ROOM, room, "to all")
        self.assertEqual(sender.frames, [])
        others = [s for s in sessions if s is not sender]
        frames = {bytes(f) for s in others for f in s.frames}
        self.assertEqual([len(s.frames) for s in others], [1] * 49)
        self.assertEqual(len(frames), 1)
        self.assertEqual(others[0].pushes(), [{"type": "on_new_message", "message": message}])


class DirectoryConsistencyTests(ServerTestCase):
    """
    The in-memory directory and the database agree.
    """

    def assert_consistent(self) -> None:
        fresh = Directory.from_snapshot(self.successResultOf(self.h.store.load_directory()))
        live = self.h.directory
        self.assertEqual(fresh.usernames, live.usernames)
        for user_id, name in live.usernames.items():
            self.assertEqual(set(fresh.friends(user_id)), set(live.friends(user_id)), name)
            self.assertEqual(set(fresh.rooms_of(user_id)), set(live.rooms_of(user_id)), name)
            self.assertEqual(fresh.user_id(name.upper()), user_id)
        self.assertEqual(fresh.rooms, live.rooms)
        for room in live.rooms.values():
            self.assertEqual(fresh.room_id(room.name.upper()), room.id)

    def test_after_operations(self) -> None:
        """
        After friend and room operations, refused ones included, a directory
        loaded afresh from the database equals the live one.
        """
        h = self.h
        alice, bob, carol, dave = (h.user(n) for n in ["alice", "bob", "carol", "dave"])
        h.friends(alice, bob)
        h.call(carol, "add_friend", username="alice")
        h.call(alice, "add_friend", username="carol")
        h.call(dave, "add_friend", username="bob")
        h.call(bob, "resolve_friend_request", user_id=dave.user_id, accept=False)
        h.call(alice, "add_friend", username="dave")
        h.error(alice, "add_friend", username="bob")
        self.assert_consistent()
        lobby = self.create(alice, "Lobby")
        self.create(bob, "empty")
        self.join(carol, "lobby")
        h.call(alice, "add_friend_to_room", room_id=lobby, user_id=bob.user_id)
        h.error(alice, "add_friend_to_room", room_id=lobby, user_id=dave.user_id)
        h.call(bob, "quit_room", room_id=lobby)
        h.call(bob, "quit_room", room_id=h.directory.room_id("empty"))
        h.call(bob, "join_room", name="LOBBY")
        h.error(bob, "join_room", name="lobby")
        h.call(alice, "remove_friend", user_id=bob.user_id)
        h.call(carol, "remove_friend", user_id=alice.user_id)
        h.call(carol, "add_friend", username="alice")
        h.call(alice, "resolve_friend_request", user_id=carol.user_id)
        self.assert_consistent()
        self.assertTrue(h.directory.are_friends(alice.user_id, carol.user_id))
        self.assertFalse(h.directory.are_friends(alice.user_id, bob.user_id))

    def test_failed_removals_put_back(self) -> None:
        """
        A C{remove_friend} or C{quit_room} whose transaction fails leaves
        the directory as the database is: still friends, still a member.
        """
        alice, bob = self.h.user("alice"), self.h.user("bob")
        self.h.friends(alice, bob)
        room = self.create(alice, "lobby")
        self.join(bob, "lobby")
        self.h.store.writer = GroupCommit(FailingPool(), DatabaseHealth())  # type: ignore[arg-type]
        self.assertRaises(
            DatabaseUnavailable, self.h.call, alice, "remove_friend", user_id=bob.user_id
        )
        self.assertRaises(DatabaseUnavailable, self.h.call, bob, "quit_room", room_id=room)
        self.flushLoggedErrors(sqlite3.OperationalError)
        self.assert_consistent()
        self.assertTrue(self.h.directory.are_friends(alice.user_id, bob.user_id))
        self.assertIn(bob.user_id, self.h.directory.rooms[room].members)
        self.assertEqual(alice.pushes() + bob.pushes(), [])


class TypingTests(ServerTestCase):
    """
    C{typing}: pushed at once, stored nowhere, at most one push a second
    per user and conversation (PROTOCOL.md section 10).
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice, self.bob, self.carol = (self.h.user(n) for n in ["alice", "bob", "carol"])
        self.h.friends(self.alice, self.bob)
        self.room = self.create(self.alice, "lobby")
        self.join(self.carol, "lobby")
        for session in [self.alice, self.bob, self.carol]:
            session.frames.clear()

    def typing(self, session: FakeSession, target_type: int, target_id: int, typing: bool) -> None:
        reply = self.h.call(
            session, "typing", target_type=target_type, target_id=target_id, typing=typing
        )
        self.assertEqual(reply, {"type": "ok"})

    def test_one_push_a_second(self) -> None:
        """
        Within a second of a push, further C{typing} requests for the same
        conversation are answered C{ok} and dropped; a second later one
        goes through again.  Each conversation has its own second.
        """
        assert self.bob.user_id is not None and self.alice.user_id is not None
        self.typing(self.alice, PRIVATE, self.bob.user_id, True)
        self.typing(self.alice, PRIVATE, self.bob.user_id, False)
        self.typing(self.alice, ROOM, self.room, True)
        self.h.reactor.advance(0.999)
        self.typing(self.alice, PRIVATE, self.bob.user_id, True)
        pushed = {
            "type": "typing",
            "target_type": PRIVATE,
            "target_id": self.bob.user_id,
            "user_id": self.alice.user_id,
            "typing": True,
        }
        self.assertEqual(self.bob.pushes(), [pushed])
        self.assertEqual(
            self.carol.pushes(),
            [{**pushed, "target_type": ROOM, "target_id": self.room}],
        )
        self.h.reactor.advance(0.001)
        self.typing(self.alice, PRIVATE, self.bob.user_id, False)
        self.assertEqual(self.bob.pushes(), [{**pushed, "typing": False}])
        self.assertEqual(self.alice.pushes(), [])

    def test_others_have_their_own_second(self) -> None:
        """
        One user's typing does not hold back another's in the same room.
        """
        self.typing(self.alice, ROOM, self.room, True)
        self.typing(self.carol, ROOM, self.room, True)
        self.assertEqual([p["user_id"] for p in self.alice.pushes()], [self.carol.user_id])
        self.assertEqual([p["user_id"] for p in self.carol.pushes()], [self.alice.user_id])

    def test_not_stored(self) -> None:
        """
        Typing leaves no trace in history.
        """
        assert self.bob.user_id is not None
        self.typing(self.alice, PRIVATE, self.bob.user_id, True)
        page = self.h.call(self.alice, "history", target_type=PRIVATE, target_id=self.bob.user_id)
        self.assertEqual(page["messages"], [])


class RoomOwnerTests(ServerTestCase):
    """
    Until roles (PROTOCOL.md section 12), a room's creator is its owner and
    may delete anyone's messages there; the owner is stored, so it survives
    a restart.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice, self.bob, self.carol = (self.h.user(n) for n in ["alice", "bob", "carol"])
        self.room = self.create(self.alice, "lobby")
        self.join(self.bob, "lobby")
        self.join(self.carol, "lobby")

    def test_owner_deletes_anyones(self) -> None:
        """
        The creator deletes a member's message; another member may not.
        """
        first = self.send(self.bob, ROOM, self.room, "one")
        second = self.send(self.bob, ROOM, self.room, "two")
        self.assertEqual(
            self.refusal(self.carol, "delete_message", message_id=first["id"]).code,
            wire.NOT_ALLOWED,
        )
        self.h.call(self.alice, "delete_message", message_id=first["id"])
        self.h.store.close()
        restarted = ServerHarness(self, self.path)
        alice = self.login_on(restarted, "alice")
        restarted.call(alice, "delete_message", message_id=second["id"])
        page = restarted.call(alice, "history", target_type=ROOM, target_id=self.room)
        self.assertEqual([m["deleted"] for m in page["messages"][-2:]], [True, True])

    def login_on(self, harness: ServerHarness, name: str) -> FakeSession:
        session = FakeSession()
        harness.call(session, "login", username=name, password="secret1")
        return session

    def test_edit_mentions_only_readers(self) -> None:
        """
        An edit mentions only members who can read the message: one who
        joined after it is not listed, nor the sender.
        """
        dave = self.h.user("dave")
        message = self.send(self.bob, ROOM, self.room, "hello")
        self.join(dave, "lobby")
        edited = self.h.call(
            self.bob,
            "edit_message",
            message_id=message["id"],
            message="hello @carol @dave @bob @ALICE",
        )["message"]
        self.assertEqual(edited["mentions"], sorted([self.alice.user_id, self.carol.user_id]))
        self.assertEqual(
            self.refusal(dave, "react", message_id=message["id"], emoji="x").code,
            wire.NO_SUCH_MESSAGE,
        )


# Every suite runs on PostgreSQL too.
on_postgresql(
    globals(),
    RegisterTests,
    GateTests,
    LoginTests,
    PresenceTests,
    FriendTests,
    PrivateMessageTests,
    HistoryTests,
    ReadMarkerTests,
    CreateRoomTests,
    JoinRoomTests,
    QuitRoomTests,
    AddFriendToRoomTests,
    ListRoomsTests,
    RoomMessageTests,
    RoomPresenceTests,
    FanOutTests,
    DirectoryConsistencyTests,
    TypingTests,
    RoomOwnerTests,
)
