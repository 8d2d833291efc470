"""
End to end over loopback TCP for PROTOCOL.md section 13 (resumable
sessions and account self-service): a real server on a loopback port, a
real SQLite file in the test's temporary directory, and bare wire clients;
for crash and restart, the real C{twistd chatd} process
(L{tests.chatd_process}).

Users are registered in a fixed order in every test, so their ids are known:
ncr is 1, lzy is 2, wsx is 3.  Flood control (section 8) is lifted for the
in-process servers; the failed-login throttle of section 8 is not a
per-connection limit and stays.  Section 2 closes a connection after 10
protocol errors in a row: every expected error here is followed by a
C{ping}.

Token expiry (C{--token-days}) is tested on an in-process server whose wall
clock the test moves (L{Clock}).
"""

from __future__ import annotations

import base64
import binascii
import glob
import json
import os
import re
from collections.abc import Iterable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.error import ConnectError
from twisted.trial.unittest import TestCase

from chatd import assembly, wire
from chatd.protocol import Limits
from tests.chatd_process import ServerProcess
from tests.postgres import on_postgresql
from tests.support import FIXED_NOW, WireClient, start_server, wire_client
from tests.test_e2e import befriend
from tests.test_process import start_process as start_real_process

NCR, LZY, WSX = 1, 2, 3

PASSWORD = "secret1"
NEW_PASSWORD = "n3w-secret"

UNLIMITED = Limits(rate=1e9, burst=10**9)

#: What section 13 asks of a token: 43 or more URL-safe characters.
TOKEN = re.compile(r"^[A-Za-z0-9_-]{43,}$")

#: The URL-safe alphabet (RFC 4648 section 5).
URL_SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

DAY = 86400.0

#: The pushes by which presence shows (PROTOCOL.md 6).
PRESENCE = {"friend_on_off_line", "room_user_on_off_line"}


class Clock:
    """
    A wall clock the test moves: the C{now} of an in-process server.
    """

    def __init__(self, start: float = FIXED_NOW) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Client(WireClient):
    """
    A L{WireClient} that also keeps every frame it received, in order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[wire.Payload] = []

    def stringReceived(self, data: bytes) -> None:
        self.frames.append(json.loads(data))
        super().stringReceived(data)


async def connect(testcase: TestCase, port: int) -> Client:
    """
    @return: a L{Client} connected to C{port} on loopback, closed when the
        test ends.
    """
    client = await wire_client(testcase, port, Client)
    assert isinstance(client, Client)
    return client


async def drain(client: WireClient) -> list[wire.Payload]:
    """
    @return: every push C{client} received and did not take so far, which
        it forgets: a ping's reply comes after every push the server wrote
        to this connection before it.
    """
    reply = await client.request("ping")
    assert reply["type"] == "pong", reply
    return client.pending_pushes()


class Base(TestCase):
    """
    Set-ups and checks the tests share.
    """

    def assertToken(self, token: Any) -> None:
        self.assertIsInstance(token, str)
        self.assertRegex(token, TOKEN)

    def assertLoginSuccessful(self, reply: wire.Payload, user_id: int, name: str) -> str:
        """
        Check that C{reply} is C{login_successful} {user, token} for the
        user, with a well-formed token.

        @return: the token.
        """
        self.assertEqual(reply["type"], "login_successful", reply)
        self.assertEqual(set(reply), {"type", "id", "user", "token"}, reply)
        self.assertEqual(reply["user"], {"id": user_id, "username": name})
        self.assertToken(reply["token"])
        token: str = reply["token"]
        return token

    async def register(self, client: WireClient, name: str, password: str = PASSWORD) -> None:
        reply = await client.request("register", username=name, password=password)
        self.assertEqual(reply["type"], "register_successful", reply)

    async def login(
        self, client: Client, name: str, password: str = PASSWORD
    ) -> tuple[wire.Payload, wire.Payload]:
        """
        Log C{client} in with a password.

        @return: the reply and the C{login_info} that follows it.
        """
        reply = await client.request("login", username=name, password=password)
        self.assertEqual(reply["type"], "login_successful", reply)
        info = await client.push("login_info")
        self.assertFollows(client, reply, info)
        return reply, info

    async def resume(self, client: Client, token: str) -> tuple[wire.Payload, wire.Payload]:
        """
        Log C{client} in with C{token}.

        @return: the reply and the C{login_info} that follows it.
        """
        reply = await client.request("resume", token=token)
        self.assertEqual(reply["type"], "login_successful", reply)
        self.assertToken(reply.get("token"))
        info = await client.push("login_info")
        self.assertFollows(client, reply, info)
        return reply, info

    def assertFollows(self, client: Client, reply: wire.Payload, info: wire.Payload) -> None:
        """
        Check that the push C{info} came right after the reply C{reply}.
        """
        at = next(i for i, f in enumerate(client.frames) if f == reply)
        self.assertEqual(client.frames[at + 1], info, "login_info must follow login_successful")
        self.assertNotIn("id", info)

    async def account(
        self, port: int, name: str, password: str = PASSWORD, *, register: bool = True
    ) -> tuple[Client, str]:
        """
        @return: a new connection logged in as C{name} (registered first,
            unless told otherwise) with a password, and its token.
        """
        client = await connect(self, port)
        if register:
            await self.register(client, name, password)
        reply, _ = await self.login(client, name, password)
        token: str = reply["token"]
        return client, token

    async def refused(self, client: WireClient, code: str, kind: str, **fields: Any) -> None:
        """
        Check that a request gets C{error} C{code} (with the request's id),
        then ping, so that expected errors never pile up to the 10 in a row
        that close a connection (section 2).
        """
        reply = await client.request(kind, **fields)
        self.assertEqual((reply["type"], reply.get("code")), ("error", code), (kind, fields, reply))
        self.assertIsInstance(reply.get("id"), int)
        self.assertIsInstance(reply.get("message"), str)
        pong = await client.request("ping")
        self.assertEqual(pong["type"], "pong", pong)

    async def assertTokenWorks(self, port: int, token: str, user_id: int, name: str) -> str:
        """
        Check that C{token} logs C{name} in on a new connection (which
        stays open: it replaces the account's session).

        @return: the token of the reply.
        """
        client = await connect(self, port)
        reply, info = await self.resume(client, token)
        self.assertLoginSuccessful(reply, user_id, name)
        self.assertEqual(info["user"], {"id": user_id, "username": name})
        result: str = reply["token"]
        return result

    async def assertTokensEnded(self, port: int, tokens: Iterable[str]) -> None:
        """
        Check that every one of C{tokens} gets C{invalid_token}, on one new
        connection that stays logged out.
        """
        probe = await connect(self, port)
        for token in tokens:
            await self.refused(probe, "invalid_token", "resume", token=token)
        await self.refused(probe, "not_authenticated", "list_rooms")
        await probe.close()


class TokenTests(Base):
    """
    What login_successful carries, and what the server keeps of it.
    """

    async def test_login_carries_token(self) -> None:
        """
        login_successful is {user, token}, the token a string of 43 or more
        URL-safe characters; every login gives a different one.
        """
        running = await start_server(self, limits=UNLIMITED)
        client = await connect(self, running.port)
        await self.register(client, "ncr")
        reply, _ = await self.login(client, "ncr")
        tokens = [self.assertLoginSuccessful(reply, NCR, "ncr")]
        for _ in range(9):
            client = await connect(self, running.port)
            reply, _ = await self.login(client, "ncr")
            tokens.append(self.assertLoginSuccessful(reply, NCR, "ncr"))
        self.assertEqual(len(set(tokens)), len(tokens), "two logins gave the same token")

    async def test_login_any_case_same_user(self) -> None:
        """
        A login in another case of the name logs in the same account, and
        its token resumes it under its registered name.
        """
        running = await start_server(self, limits=UNLIMITED)
        client = await connect(self, running.port)
        await self.register(client, "ncr")
        reply, _ = await self.login(client, "NCR")
        token = self.assertLoginSuccessful(reply, NCR, "ncr")
        await self.assertTokenWorks(running.port, token, NCR, "ncr")

    async def test_only_a_hash_is_stored(self) -> None:
        """
        No token the server gave out, nor the bytes it encodes, is found in
        the database files: the server stores only a hash of each.
        """
        path = os.path.abspath(self.mktemp() + ".sqlite3")
        running = await start_server(self, path, limits=UNLIMITED)
        _, token = await self.account(running.port, "ncr")
        tokens = [token]
        again = await connect(self, running.port)
        reply, _ = await self.resume(again, token)
        tokens.append(reply["token"])
        changed = await again.request(
            "change_password", old_password=PASSWORD, new_password=NEW_PASSWORD
        )
        self.assertEqual(changed["type"], "password_changed", changed)
        tokens.append(changed["token"])
        await drain(again)
        data = b""
        for name in filter(os.path.isfile, glob.glob(path + "*")):
            with open(name, "rb") as f:
                data += f.read()
        self.assertIn(b"ncr", data, "the database files were not found")
        for token in set(tokens):
            forms = [token.encode()]
            try:
                forms.append(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            except (binascii.Error, ValueError):
                pass
            for form in forms:
                self.assertNotIn(form, data, "a token is stored as it is")


class ResumeTests(Base):
    """
    resume: login with a token, in every other respect as login.
    """

    async def setUpWorld(self) -> tuple[int, Client, Client, int]:
        """
        ncr and lzy are friends and share room1; wsx asked ncr to be
        friends; while ncr was away lzy sent a private and a room message.

        @return: the port, lzy's and wsx's connections, and room1's id.
        """
        running = await start_server(self, limits=UNLIMITED)
        port = running.port
        ncr, _ = await self.account(port, "ncr")
        lzy, _ = await self.account(port, "lzy")
        wsx, _ = await self.account(port, "wsx")
        await befriend(ncr, lzy, "lzy")
        room = (await ncr.request("create_room", name="room1"))["room"]["id"]
        joined = await lzy.request("join_room", name="room1")
        self.assertEqual(joined["type"], "join_successful")
        requested = await wsx.request("add_friend", username="ncr")
        self.assertEqual(requested["type"], "friend_request_sent")
        await ncr.close()
        for kind in ("friend_on_off_line", "room_user_on_off_line"):
            gone = await lzy.push(kind)
            self.assertFalse(gone["online"])
        for target_type, target_id in ((0, NCR), (1, room)):
            sent = await lzy.request(
                "send_message", target_type=target_type, target_id=target_id, message="hi"
            )
            self.assertEqual(sent["type"], "on_new_message")
        await drain(lzy)
        await drain(wsx)
        return port, lzy, wsx, room

    async def test_resume_is_login(self) -> None:
        """
        resume with a login's token on a new connection replies
        login_successful {user, token}, then pushes login_info with the
        same content as the login's; the older session gets server_kick
        logged_in_elsewhere and is closed; a friend and a co-member online
        see no offline/online flicker.
        """
        port, lzy, wsx, room = await self.setUpWorld()
        first = await connect(self, port)
        reply, by_password = await self.login(first, "ncr")
        token = self.assertLoginSuccessful(reply, NCR, "ncr")
        self.assertEqual(by_password["friend_requests"], [{"id": WSX, "username": "wsx"}])
        self.assertEqual(len(by_password["unread"]), 2)
        online = [p for p in await drain(lzy) if p["type"] in PRESENCE]
        self.assertEqual(len(online), 2, online)

        second = await connect(self, port)
        reply, by_token = await self.resume(second, token)
        self.assertLoginSuccessful(reply, NCR, "ncr")
        self.assertEqual(by_token, by_password)
        kick = await first.push("server_kick")
        self.assertEqual(kick, {"type": "server_kick", "reason": "logged_in_elsewhere"})
        await first.lost
        self.assertEqual(first.frames[-1], kick, "nothing may follow the kick")
        self.assertEqual([p for p in await drain(lzy) if p["type"] in PRESENCE], [])
        self.assertEqual(await drain(wsx), [])

        # The resumed session is a session: it works, and its end is seen.
        created = await second.request("create_room", name="room2")
        self.assertEqual(created["type"], "create_successful", created)
        self.assertEqual(
            created["room"]["members"],
            [{"id": NCR, "username": "ncr", "online": True, "role": "owner"}],
        )
        await second.close()
        gone = await lzy.push("friend_on_off_line")
        self.assertEqual(
            gone, {"type": "friend_on_off_line", "user_id": NCR, "username": "ncr", "online": False}
        )
        gone = await lzy.push("room_user_on_off_line")
        self.assertEqual(
            gone,
            {"type": "room_user_on_off_line", "room_id": room, "user_id": NCR, "online": False},
        )

    async def test_resume_announces_presence(self) -> None:
        """
        A resume when the account has no session tells online friends and
        co-members, as a login does; its login_info is the one a login
        would give.
        """
        port, lzy, _, room = await self.setUpWorld()
        first = await connect(self, port)
        reply, _ = await self.login(first, "ncr")
        token = reply["token"]
        await drain(lzy)
        await first.close()
        for kind in ("friend_on_off_line", "room_user_on_off_line"):
            gone = await lzy.push(kind)
            self.assertFalse(gone["online"])
        await drain(lzy)

        again = await connect(self, port)
        reply, by_token = await self.resume(again, token)
        self.assertLoginSuccessful(reply, NCR, "ncr")
        pushes = [p for p in await drain(lzy) if p["type"] in PRESENCE]
        self.assertCountEqual(
            pushes,
            [
                {"type": "friend_on_off_line", "user_id": NCR, "username": "ncr", "online": True},
                {"type": "room_user_on_off_line", "room_id": room, "user_id": NCR, "online": True},
            ],
        )
        self.assertEqual(by_token["friends"], [{"id": LZY, "username": "lzy", "online": True}])
        self.assertEqual(by_token["friend_requests"], [{"id": WSX, "username": "wsx"}])
        self.assertEqual(
            sorted((u["target_type"], u["target_id"], u["count"]) for u in by_token["unread"]),
            [(0, LZY, 1), (1, room, 2)],  # "lzy joined the room", then "hi"
        )
        # A login by password now finds the very same state.
        third = await connect(self, port)
        _, by_password = await self.login(third, "ncr")
        self.assertEqual(by_password, by_token)

    async def test_resume_kicks_session_of_other_token(self) -> None:
        """
        A resume with the token of an older, kicked session kicks the
        account's current session, whatever token it logged in with.
        """
        running = await start_server(self, limits=UNLIMITED)
        first, old = await self.account(running.port, "ncr")
        second, _ = await self.account(running.port, "ncr", register=False)
        self.assertEqual((await first.push("server_kick"))["reason"], "logged_in_elsewhere")
        third = await connect(self, running.port)
        await self.resume(third, old)
        kick = await second.push("server_kick")
        self.assertEqual(kick, {"type": "server_kick", "reason": "logged_in_elsewhere"})
        await second.lost
        self.assertEqual((await third.request("ping"))["type"], "pong")

    async def test_resume_before_login(self) -> None:
        """
        Before login, resume is allowed beside register, login and ping
        (section 5) and logs the connection in; anything else is
        not_authenticated until then.
        """
        running = await start_server(self, limits=UNLIMITED)
        _, token = await self.account(running.port, "ncr")
        client = await connect(self, running.port)
        self.assertEqual((await client.request("ping"))["type"], "pong")
        await self.register(client, "lzy")
        await self.refused(client, "not_authenticated", "list_rooms")
        await self.refused(client, "not_authenticated", "create_room", name="room1")
        reply, _ = await self.resume(client, token)
        self.assertLoginSuccessful(reply, NCR, "ncr")
        created = await client.request("create_room", name="room1")
        self.assertEqual(created["type"], "create_successful", created)

    async def test_resume_when_logged_in(self) -> None:
        """
        resume on a logged-in connection is already_authenticated, with its
        own token, another token of the account or another user's; it
        changes nothing: the connection stays who it was, and the tokens
        keep working.
        """
        running = await start_server(self, limits=UNLIMITED)
        first, first_token = await self.account(running.port, "ncr")
        lzy, lzy_token = await self.account(running.port, "lzy")
        ncr, token = await self.account(running.port, "ncr", register=False)
        await first.lost
        for candidate in (token, first_token, lzy_token):
            await self.refused(ncr, "already_authenticated", "resume", token=candidate)
        self.assertFalse(lzy.lost.called)
        self.assertEqual(await drain(lzy), [])
        created = await ncr.request("create_room", name="room1")
        self.assertEqual([m["id"] for m in created["room"]["members"]], [NCR])

        # A connection logged in by resume cannot log in again either.
        resumed = await connect(self, running.port)
        reply, _ = await self.resume(resumed, first_token)
        await self.refused(
            resumed, "already_authenticated", "login", username="ncr", password=PASSWORD
        )
        await self.refused(resumed, "already_authenticated", "resume", token=reply["token"])
        await self.assertTokenWorks(running.port, token, NCR, "ncr")
        await self.assertTokenWorks(running.port, lzy_token, LZY, "lzy")

    async def test_reply_token_works(self) -> None:
        """
        The token of resume's reply logs in again: it is the same one, or a
        new one and then the old one stops working.
        """
        running = await start_server(self, limits=UNLIMITED)
        client, token = await self.account(running.port, "ncr")
        for _ in range(3):
            await client.close()
            client = await connect(self, running.port)
            reply, _ = await self.resume(client, token)
            new = self.assertLoginSuccessful(reply, NCR, "ncr")
            if new != token:
                await self.assertTokensEnded(running.port, [token])
            token = new

    async def test_resume_after_lost_connection(self) -> None:
        """
        A client whose connection dropped (no logout) comes back in with
        its token, and finds what was sent to it meanwhile.
        """
        running = await start_server(self, limits=UNLIMITED)
        ncr, token = await self.account(running.port, "ncr")
        lzy, _ = await self.account(running.port, "lzy")
        await befriend(ncr, lzy, "lzy")
        ncr.transport.abortConnection()
        await ncr.lost
        await lzy.push("friend_on_off_line")
        sent = await lzy.request("send_message", target_type=0, target_id=NCR, message="back?")
        back = await connect(self, running.port)
        _, info = await self.resume(back, token)
        self.assertEqual(
            info["unread"],
            [
                {
                    "target_type": 0,
                    "target_id": LZY,
                    "count": 1,
                    "mentions": 0,
                    "last_message_id": sent["message"]["id"],
                }
            ],
        )


class InvalidTokenTests(Base):
    """
    resume with what is no token.
    """

    async def test_other_strings(self) -> None:
        """
        Every string that is not a working token gets invalid_token: an
        unknown one, the empty string, the token with one character
        changed (first, middle or last), cut short or lengthened; the
        connection stays logged out, and the real token still works on it.
        """
        running = await start_server(self, limits=UNLIMITED)
        ncr, token = await self.account(running.port, "ncr")
        client = await connect(self, running.port)

        def changed(at: int) -> str:
            other = next(c for c in URL_SAFE if c != token[at])
            return token[:at] + other + token[at + 1 :]

        candidates = [
            "A" * 43,
            "".join(reversed(token)) if token != token[::-1] else "B" * 43,
            "",
            changed(0),
            changed(len(token) // 2),
            changed(len(token) - 1),
            token[:-1],
            token + "A",
            " " + token,
            token + "\n",
            token.swapcase() if token.swapcase() != token else "C" * 43,
            "x" * 10000,
            "\u00e9" * 43,
        ]
        for candidate in candidates:
            self.assertNotEqual(candidate, token)
            await self.refused(client, "invalid_token", "resume", token=candidate)
        await self.refused(client, "not_authenticated", "list_rooms")
        self.assertFalse(ncr.lost.called, "a failed resume must not kick the session")
        reply, _ = await self.resume(client, token)
        self.assertLoginSuccessful(reply, NCR, "ncr")
        await ncr.lost

    async def test_not_a_string(self) -> None:
        """
        A token that is not a string, or none, is invalid_field, before
        login and on a logged-in connection alike (fields before rules).
        """
        running = await start_server(self, limits=UNLIMITED)
        ncr, token = await self.account(running.port, "ncr")
        client = await connect(self, running.port)
        for connection in (client, ncr):
            for value in (43, 0, -1, 1.5, None, True, False, [token], {"token": token}):
                await self.refused(connection, "invalid_field", "resume", token=value)
            await self.refused(connection, "invalid_field", "resume")
            await self.refused(connection, "invalid_field", "resume", tokens=token)
        await self.refused(client, "not_authenticated", "list_rooms")
        self.assertFalse(ncr.lost.called)
        reply, _ = await self.resume(client, token)
        self.assertLoginSuccessful(reply, NCR, "ncr")


class LogoutTests(Base):
    """
    logout ends that session's token only.
    """

    async def test_logout_ends_that_token_only(self) -> None:
        """
        After logout its session's token gets invalid_token; the tokens of
        the account's earlier sessions (kicked since) keep working; a
        session started by resume ends the token it was given.
        """
        running = await start_server(self, limits=UNLIMITED)
        port = running.port
        _, first = await self.account(port, "ncr")
        _, second = await self.account(port, "ncr", register=False)
        third_client, third = await self.account(port, "ncr", register=False)
        self.assertEqual(len({first, second, third}), 3)
        reply = await third_client.request("logout")
        self.assertEqual(reply["type"], "logout_successful", reply)
        await third_client.lost
        await self.assertTokensEnded(port, [third])

        resumed = await connect(self, port)
        reply, _ = await self.resume(resumed, first)
        given = reply["token"]
        reply = await resumed.request("logout")
        self.assertEqual(reply["type"], "logout_successful", reply)
        await resumed.lost
        await self.assertTokensEnded(port, {first, given})
        await self.assertTokenWorks(port, second, NCR, "ncr")

    async def test_logout_keeps_other_accounts_tokens(self) -> None:
        """
        One user's logout ends none of another user's tokens.
        """
        running = await start_server(self, limits=UNLIMITED)
        ncr, _ = await self.account(running.port, "ncr")
        _, lzy_token = await self.account(running.port, "lzy")
        await ncr.request("logout")
        await ncr.lost
        await self.assertTokenWorks(running.port, lzy_token, LZY, "lzy")

    async def test_logout_after_change_password(self) -> None:
        """
        The token a password change gave a session is that session's: its
        logout ends it.
        """
        running = await start_server(self, limits=UNLIMITED)
        ncr, _ = await self.account(running.port, "ncr")
        changed = await ncr.request(
            "change_password", old_password=PASSWORD, new_password=NEW_PASSWORD
        )
        self.assertEqual(changed["type"], "password_changed", changed)
        reply = await ncr.request("logout")
        self.assertEqual(reply["type"], "logout_successful", reply)
        await ncr.lost
        await self.assertTokensEnded(running.port, [changed["token"]])


class ChangePasswordTests(Base):
    """
    change_password {old_password, new_password}.
    """

    async def assertPassword(self, port: int, name: str, right: str, wrong: str) -> None:
        """
        Check, on a new connection, that C{wrong} no longer logs C{name} in
        and C{right} does.  (One failed login, towards the throttle.)
        """
        client = await connect(self, port)
        await self.refused(client, "login_failed", "login", username=name, password=wrong)
        await self.login(client, name, right)

    async def test_not_authenticated(self) -> None:
        """
        Before login, change_password is not_authenticated, and the
        password stays.
        """
        running = await start_server(self, limits=UNLIMITED)
        client = await connect(self, running.port)
        await self.register(client, "ncr")
        for old in (PASSWORD, "wrong-one"):
            await self.refused(
                client,
                "not_authenticated",
                "change_password",
                old_password=old,
                new_password=NEW_PASSWORD,
            )
        await self.assertPassword(running.port, "ncr", PASSWORD, NEW_PASSWORD)

    async def test_fields(self) -> None:
        """
        A missing or mistyped old_password or new_password is
        invalid_field, whatever the other field holds; nothing changes.
        """
        running = await start_server(self, limits=UNLIMITED)
        ncr, token = await self.account(running.port, "ncr")
        good = {"old_password": PASSWORD, "new_password": NEW_PASSWORD}
        cases: list[dict[str, Any]] = [
            {},
            {"old_password": PASSWORD},
            {"new_password": NEW_PASSWORD},
            {"old_password": "wrong-one"},
            {"oldpassword": PASSWORD, "newpassword": NEW_PASSWORD},
        ]
        for field in good:
            for value in (None, 123456, 1.5, True, [PASSWORD], {"p": PASSWORD}):
                cases.append({**good, field: value})
                cases.append({**good, "old_password": "wrong-one", field: value})
        for fields in cases:
            await self.refused(ncr, "invalid_field", "change_password", **fields)
        self.assertFalse(ncr.lost.called)
        await self.assertTokenWorks(running.port, token, NCR, "ncr")
        await self.assertPassword(running.port, "ncr", PASSWORD, NEW_PASSWORD)

    async def test_invalid_new_password(self) -> None:
        """
        A new password that breaks section 4 (under 6 characters, all
        whitespace, over 128) is invalid_password, with the right old
        password or a wrong one (fields before rules); nothing changes,
        and those refusals are no failed logins.
        """
        running = await start_server(self, limits=UNLIMITED)
        ncr, token = await self.account(running.port, "ncr")
        invalid = [
            "",
            "x",
            "abcde",
            "\u00e9\u00e9\u00e9\u00e9\u00e9",
            " " * 6,
            "\t\n \u3000\u2003\u00a0",
            " " * 200,
            "x" * 129,
            "\u00e9" * 129,
        ]
        for new in invalid:
            for old in (PASSWORD, "wrong-one"):
                await self.refused(
                    ncr, "invalid_password", "change_password", old_password=old, new_password=new
                )
        self.assertFalse(ncr.lost.called)
        # More than 5 of those named a wrong old password: had they counted
        # as failed logins, the right password would now be rate_limited.
        await self.assertTokenWorks(running.port, token, NCR, "ncr")
        await self.assertPassword(running.port, "ncr", PASSWORD, "x" * 129)

    async def test_wrong_old_password(self) -> None:
        """
        A wrong old_password is login_failed; the session stays, its token
        and the password too.
        """
        running = await start_server(self, limits=UNLIMITED)
        ncr, token = await self.account(running.port, "ncr")
        for old in ("wrong-one", PASSWORD.upper()):
            await self.refused(
                ncr, "login_failed", "change_password", old_password=old, new_password=NEW_PASSWORD
            )
        self.assertEqual(await drain(ncr), [])
        created = await ncr.request("create_room", name="room1")
        self.assertEqual(created["type"], "create_successful")
        await self.assertTokenWorks(running.port, token, NCR, "ncr")
        await self.assertPassword(running.port, "ncr", PASSWORD, NEW_PASSWORD)

    async def test_wrong_old_password_throttles_login(self) -> None:
        """
        Five wrong old_passwords within 60 s throttle the name (section 8):
        a login with the right password is then rate_limited.
        """
        running = await start_server(self, limits=UNLIMITED)
        ncr, _ = await self.account(running.port, "ncr")
        for _ in range(5):
            await self.refused(
                ncr,
                "login_failed",
                "change_password",
                old_password="wrong-one",
                new_password=NEW_PASSWORD,
            )
        client = await connect(self, running.port)
        await self.refused(client, "rate_limited", "login", username="ncr", password=PASSWORD)
        await self.refused(client, "rate_limited", "login", username="NCR", password=PASSWORD)
        self.assertFalse(ncr.lost.called, "a refused login must not kick the session")

    async def test_throttle_counts_both(self) -> None:
        """
        Failed logins and wrong old_passwords count together, one each:
        four do not throttle the name, the fifth does.
        """
        running = await start_server(self, limits=UNLIMITED)
        ncr, _ = await self.account(running.port, "ncr")
        stranger = await connect(self, running.port)
        for _ in range(2):
            await self.refused(stranger, "login_failed", "login", username="ncr", password="nope12")
            await self.refused(
                ncr, "login_failed", "change_password", old_password="nope12", new_password="abcdef"
            )
        again, _ = await self.account(running.port, "ncr", register=False)
        await self.refused(
            again, "login_failed", "change_password", old_password="nope12", new_password="abcdef"
        )
        await self.refused(stranger, "rate_limited", "login", username="ncr", password=PASSWORD)

    async def test_throttled_change_password(self) -> None:
        """
        Once the name is throttled, further attempts get rate_limited
        whatever the password (section 8), a change_password with the
        right old password included, and it does nothing: the session's
        token still works.
        """
        running = await start_server(self, limits=UNLIMITED)
        ncr, token = await self.account(running.port, "ncr")
        for _ in range(5):
            await self.refused(
                ncr, "login_failed", "change_password", old_password="nope12", new_password="abcdef"
            )
        await self.refused(
            ncr, "rate_limited", "change_password", old_password=PASSWORD, new_password=NEW_PASSWORD
        )
        await self.refused(
            ncr, "rate_limited", "change_password", old_password="nope12", new_password=NEW_PASSWORD
        )
        await self.assertTokenWorks(running.port, token, NCR, "ncr")

    async def test_success(self) -> None:
        """
        password_changed {token} carries a fresh token that works with
        resume; every older token of the account ends, the one this
        session logged in with included, but the session goes on; the old
        password fails and the new one works; other accounts' tokens stay.
        """
        running = await start_server(self, limits=UNLIMITED)
        port = running.port
        _, first = await self.account(port, "ncr")
        _, lzy_token = await self.account(port, "lzy")
        second_client, second = await self.account(port, "ncr", register=False)
        session = await connect(self, port)
        reply, _ = await self.resume(session, first)
        resumed = reply["token"]
        await second_client.lost
        older = {first, second, resumed}

        changed = await session.request(
            "change_password", old_password=PASSWORD, new_password=NEW_PASSWORD
        )
        self.assertEqual(changed["type"], "password_changed", changed)
        self.assertEqual(set(changed), {"type", "id", "token"}, changed)
        fresh = changed["token"]
        self.assertToken(fresh)
        self.assertNotIn(fresh, older)

        # The session goes on: no kick, requests work.
        self.assertEqual([p for p in await drain(session) if p["type"] == "server_kick"], [])
        created = await session.request("create_room", name="room1")
        self.assertEqual(created["type"], "create_successful", created)
        self.assertFalse(session.lost.called)

        await self.assertTokensEnded(port, older)
        self.assertFalse(session.lost.called, "a failed resume must not kick the session")
        await self.assertPassword(port, "ncr", NEW_PASSWORD, PASSWORD)
        await session.lost
        await self.assertTokenWorks(port, fresh, NCR, "ncr")
        await self.assertTokenWorks(port, lzy_token, LZY, "lzy")

    async def test_fresh_token_resumes(self) -> None:
        """
        The fresh token logs in on a new connection, kicking the session
        that changed the password with logged_in_elsewhere.
        """
        running = await start_server(self, limits=UNLIMITED)
        ncr, _ = await self.account(running.port, "ncr")
        changed = await ncr.request(
            "change_password", old_password=PASSWORD, new_password=NEW_PASSWORD
        )
        client = await connect(self, running.port)
        reply, _ = await self.resume(client, changed["token"])
        self.assertLoginSuccessful(reply, NCR, "ncr")
        kick = await ncr.push("server_kick")
        self.assertEqual(kick["reason"], "logged_in_elsewhere")
        await ncr.lost

    async def test_password_bounds(self) -> None:
        """
        New passwords at the bounds of section 4 are taken: 128 characters,
        6 characters of any Unicode, whitespace inside; each change works
        from the password set last.
        """
        running = await start_server(self, limits=UNLIMITED)
        ncr, _ = await self.account(running.port, "ncr")
        old = PASSWORD
        for new in ("x" * 128, "\u043f\u0430\u0440\u043e\u043b\u044c", "  a   ", "\U0001f600" * 6):
            changed = await ncr.request("change_password", old_password=old, new_password=new)
            self.assertEqual(changed["type"], "password_changed", (new, changed))
            old = new
        await self.assertPassword(running.port, "ncr", old, PASSWORD)


class RestartableServer:
    """
    An in-process chatd server on loopback that a test can stop before it
    ends (and start again on the same database).
    """

    def __init__(self, assembled: assembly.Assembly, listening: Any) -> None:
        self.assembled = assembled
        self.listening = listening
        self.port: int = listening.getHost().port
        self._stopped = False

    async def stop(self) -> None:
        """
        Shut down cleanly: stop listening, commit, kick everyone, close
        the database.  Idempotent.
        """
        if self._stopped:
            return
        self._stopped = True
        await self.listening.stopListening()
        await self.assembled.shut_down(reactor, 3.0)


async def serve(
    testcase: TestCase, path: str, clock: Clock, token_days: float = 30.0
) -> RestartableServer:
    """
    Start a L{RestartableServer} on C{path} with the wall clock C{clock};
    it stops when the test ends, if it was not stopped before.
    """
    assembled = await assembly.open(
        path, reactor, UNLIMITED, insecure_fast_hashes=True, token_days=token_days, now=clock
    )
    listening = reactor.listenTCP(0, assembled.factory, interface="127.0.0.1")
    server = RestartableServer(assembled, listening)
    testcase.addCleanup(lambda: Deferred.fromCoroutine(server.stop()))
    return server


class ExpiryTests(Base):
    """
    A token unused for --token-days (30 by default) works no more; the
    server's wall clock is the test's.
    """

    async def test_unused_token_expires(self) -> None:
        """
        With the default of 30 days, a token unused for longer gets
        invalid_token; one used meanwhile (a resume) works for 30 days from
        that use; the password still logs in.
        """
        clock = Clock()
        running = await start_server(self, limits=UNLIMITED, now=clock)
        port = running.port
        ncr, ncr_token = await self.account(port, "ncr")
        lzy, lzy_token = await self.account(port, "lzy")
        await ncr.close()
        await lzy.close()

        clock.advance(29 * DAY)
        lzy_token = await self.assertTokenWorks(port, lzy_token, LZY, "lzy")
        clock.advance(2 * DAY)
        await self.assertTokensEnded(port, [ncr_token])
        lzy_token = await self.assertTokenWorks(port, lzy_token, LZY, "lzy")
        clock.advance(30 * DAY + 3600)
        await self.assertTokensEnded(port, [lzy_token])
        client = await connect(self, port)
        reply, _ = await self.login(client, "ncr")
        await self.assertTokenWorks(port, reply["token"], NCR, "ncr")

    async def test_token_days(self) -> None:
        """
        With token_days 2 (--token-days), a token works after a day unused,
        and no more after two more.
        """
        clock = Clock()
        running = await start_server(self, limits=UNLIMITED, now=clock, token_days=2)
        port = running.port
        _, token = await self.account(port, "ncr")
        _, other = await self.account(port, "lzy")
        clock.advance(DAY)
        token = await self.assertTokenWorks(port, token, NCR, "ncr")
        clock.advance(DAY + 3600)
        await self.assertTokensEnded(port, [other])
        token = await self.assertTokenWorks(port, token, NCR, "ncr")
        clock.advance(2 * DAY + 3600)
        await self.assertTokensEnded(port, [token])

    async def test_last_use_survives_restart(self) -> None:
        """
        Tokens survive a clean restart on the same database, and so does
        when each was last used: a token used on day 20 still works on day
        40 after a restart, one unused since day 0 does not.
        """
        clock = Clock()
        path = os.path.abspath(self.mktemp() + ".sqlite3")
        server = await serve(self, path, clock)
        _, used = await self.account(server.port, "ncr")
        _, unused = await self.account(server.port, "lzy")
        clock.advance(20 * DAY)
        used = await self.assertTokenWorks(server.port, used, NCR, "ncr")
        await server.stop()

        server = await serve(self, path, clock)
        clock.advance(20 * DAY)
        await self.assertTokensEnded(server.port, [unused])
        await self.assertTokenWorks(server.port, used, NCR, "ncr")


async def start_process(testcase: TestCase, db: str) -> tuple[ServerProcess, int]:
    """
    Start C{twistd -n chatd} on C{db} (L{tests.test_process.start_process})
    with cheap password hashing and tokens of 7 days.

    @return: the process protocol and the port.
    """
    process, _, port = await start_real_process(
        testcase, db, "--insecure-fast-hashes", "--token-days", "7"
    )
    return process, port


class RestartTests(Base):
    """
    Tokens survive a restart of the real server process, clean or kill -9.
    """

    timeout = 120

    async def test_clean_restart(self) -> None:
        """
        After a SIGTERM shutdown and a start on the same database, the
        tokens logged in with before work, a resumed one included.
        """
        db = os.path.abspath(self.mktemp() + ".sqlite3")
        process, port = await start_process(self, db)
        ncr, ncr_token = await self.account(port, "ncr")
        _, lzy_token = await self.account(port, "lzy")
        back = await connect(self, port)
        reply, _ = await self.resume(back, ncr_token)
        ncr_token = reply["token"]
        await ncr.lost
        process.transport.signalProcess("TERM")
        self.assertEqual(await process.ended, 0)
        await back.lost
        self.assertEqual(back.frames[-1], {"type": "server_kick", "reason": "shutdown"})

        process, port = await start_process(self, db)
        await self.assertTokenWorks(port, ncr_token, NCR, "ncr")
        await self.assertTokenWorks(port, lzy_token, LZY, "lzy")

    async def logins_until_killed(
        self, process: ServerProcess, port: int, names: list[str], enough: int
    ) -> dict[str, str]:
        """
        Each of C{names} logs in again and again, on a new connection each
        time, all at once; once C{enough} logins were answered, the server
        gets SIGKILL.

        @return: the name of each token that reached its client.
        """
        received: dict[str, str] = {}
        clients: list[Client] = []
        killed = False

        async def keep_logging_in(name: str) -> None:
            nonlocal killed
            while not killed:
                try:
                    client = await connect(self, port)
                except (ConnectError, ConnectionError):
                    return
                clients.append(client)
                if client.lost.called:
                    return
                try:
                    reply = await client.request("login", username=name, password=PASSWORD)
                except ConnectionError:
                    return
                self.assertEqual(reply["type"], "login_successful", reply)
                received[reply["token"]] = name
                if len(received) >= enough and not killed:
                    killed = True
                    process.transport.signalProcess("KILL")

        await gatherResults([Deferred.fromCoroutine(keep_logging_in(name)) for name in names])
        self.assertEqual(await process.ended, 9)
        for client in clients:
            if not client.lost.called:
                await client.lost
        return received

    async def test_sigkill(self) -> None:
        """
        A kill -9 while logins stream in: every token whose
        login_successful reached its client works after a restart (the
        server sends it only once the token is durably stored).  Four
        rounds, so the tokens of each are checked again after the later
        ones.
        """
        db = os.path.abspath(self.mktemp() + ".sqlite3")
        process, port = await start_process(self, db)
        names = [f"u{i}" for i in range(24)]
        setup = await connect(self, port)
        for name in names:
            await self.register(setup, name)
        await setup.close()

        tokens: dict[str, str] = {}
        for _ in range(4):
            tokens.update(await self.logins_until_killed(process, port, names, 2 * len(names)))
            process, port = await start_process(self, db)
            for token, name in list(tokens.items()):
                given = await self.assertTokenWorks(port, token, names.index(name) + 1, name)
                if given != token:
                    del tokens[token]
                    tokens[given] = name


# Every suite runs on PostgreSQL too.
on_postgresql(
    globals(),
    TokenTests,
    ResumeTests,
    InvalidTokenTests,
    LogoutTests,
    ChangePasswordTests,
    ExpiryTests,
)
