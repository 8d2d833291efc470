"""
The client's session tokens (PROTOCOL.md section 13): the token file
(L{client.tokens.TokenFile}), resuming at start and on every reconnect,
staying logged in or not, logging out, and changing the password, from the
session (memory transports, a fake clock) up to the windows (offscreen Qt),
and once end to end against a real server on loopback.

Every token file lives in the test's temporary directory, never in the
real home.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

from PyQt5.QtTest import QSignalSpy
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from client import texts
from client.protocol import ChatClientProtocol, ChatError
from client.session import ChatClient
from client.state import OFFLINE, ONLINE, ClientState, SignedOut
from client.tokens import TokenFile
from client.ui.app import ChatApp
from tests import test_client_e2e as e2e
from tests.qt_support import NCR, TOKEN, Session, login_info, qapp, user
from tests.support import start_server

SERVER = "localhost:8998"
NEW_TOKEN = "n" * 43


def mode(path: str) -> int:
    """
    @return: the permission bits of C{path}.
    """
    return stat.S_IMODE(os.stat(path).st_mode)


def contents(path: str) -> Any:
    """
    @return: the token file's JSON.
    """
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class TokenFileTests(SynchronousTestCase):
    """
    The token file: per server and user, owner-only, replaced whole.
    """

    def setUp(self) -> None:
        self.path = os.path.join(self.mktemp(), "chatd", "tokens.json")
        self.tokens = TokenFile(self.path, SERVER)

    def test_missing_file(self) -> None:
        """
        With no file there is no token, and reading creates nothing.
        """
        self.assertIsNone(self.tokens.newest())
        self.assertIsNone(self.tokens.token("ncr"))
        self.tokens.forget("ncr")
        self.assertFalse(os.path.exists(self.path))

    def test_saved_owner_only(self) -> None:
        """
        Saving creates the folder and a file of mode 0600 holding the token
        under the server and the user.
        """
        self.tokens.save("ncr", TOKEN)
        self.assertEqual(mode(self.path), 0o600)
        self.assertEqual(contents(self.path), {"version": 1, "servers": {SERVER: {"ncr": TOKEN}}})
        self.assertEqual(self.tokens.newest(), ("ncr", TOKEN))

    def test_per_server_and_user(self) -> None:
        """
        Each server keeps each user's token; the newest is the user who
        logged in last; forgetting one leaves the others.
        """
        other = TokenFile(self.path, "example.org:8998")
        self.tokens.save("ncr", "a" * 43)
        other.save("ncr", "b" * 43)
        self.tokens.save("lzy", "c" * 43)
        self.assertEqual(self.tokens.newest(), ("lzy", "c" * 43))
        self.tokens.save("ncr", "d" * 43)
        self.assertEqual(self.tokens.newest(), ("ncr", "d" * 43))
        self.assertEqual(self.tokens.token("lzy"), "c" * 43)
        self.assertEqual(other.newest(), ("ncr", "b" * 43))
        self.tokens.forget("ncr")
        self.assertEqual(self.tokens.newest(), ("lzy", "c" * 43))
        self.tokens.forget("lzy")
        self.assertIsNone(self.tokens.newest())
        self.assertEqual(
            contents(self.path), {"version": 1, "servers": {"example.org:8998": {"ncr": "b" * 43}}}
        )

    def test_forget_only_that_token(self) -> None:
        """
        Forgetting a given token leaves a different one (stored by another
        run meanwhile).
        """
        self.tokens.save("ncr", TOKEN)
        self.tokens.forget("ncr", NEW_TOKEN)
        self.assertEqual(self.tokens.token("ncr"), TOKEN)
        self.tokens.forget("ncr", TOKEN)
        self.assertIsNone(self.tokens.token("ncr"))

    def test_rewrite_keeps_owner_only(self) -> None:
        """
        Each change replaces the file by a new one of mode 0600, even when
        the old file or a leftover temporary file was readable by others,
        and leaves no temporary file behind.
        """
        self.tokens.save("ncr", TOKEN)
        os.chmod(self.path, 0o644)
        leftover = f"{self.path}.{os.getpid()}.tmp"
        with open(leftover, "w") as f:
            f.write("junk")
        os.chmod(leftover, 0o644)
        self.tokens.save("ncr", NEW_TOKEN)
        self.assertEqual(mode(self.path), 0o600)
        self.assertEqual(self.tokens.token("ncr"), NEW_TOKEN)
        self.assertEqual(os.listdir(os.path.dirname(self.path)), ["tokens.json"])

    def test_same_token_not_rewritten(self) -> None:
        """
        Saving the newest token again (a resume that kept it) writes
        nothing.
        """
        self.tokens.save("ncr", TOKEN)
        writes: list[Any] = []
        self.patch(self.tokens, "_write", writes.append)
        self.tokens.save("ncr", TOKEN)
        self.tokens.forget("lzy")
        self.assertEqual(writes, [])

    def test_unreadable_file_is_replaced(self) -> None:
        """
        A file that is not the token file's JSON holds no token, and the
        next save replaces it.
        """
        os.makedirs(os.path.dirname(self.path))
        for junk in ("not json", "[1]", '{"version": 2, "servers": {}}'):
            with open(self.path, "w") as f:
                f.write(junk)
            self.assertIsNone(self.tokens.newest(), junk)
        self.tokens.save("ncr", TOKEN)
        self.assertEqual(self.tokens.newest(), ("ncr", TOKEN))

    def test_write_failure_is_not_raised(self) -> None:
        """
        When the file cannot be written the session goes on: nothing is
        raised, nothing is stored.
        """
        blocker = self.mktemp()
        with open(blocker, "w") as f:
            f.write("a file where the folder should be")
        tokens = TokenFile(os.path.join(blocker, "tokens.json"), SERVER)
        tokens.save("ncr", TOKEN)
        self.assertIsNone(tokens.newest())


class SessionTokenTests(SynchronousTestCase):
    """
    L{ChatClient} with a token file: what it stores, and what it sends.
    """

    def setUp(self) -> None:
        self.path = os.path.join(self.mktemp(), "tokens.json")
        self.tokens = TokenFile(self.path, SERVER)
        self.session = Session(tokens=self.tokens)
        self.changes: list[Any] = []
        self.session.state.add_listener(self.changes.append)

    @property
    def server(self) -> Any:
        return self.session.server

    def resume_at_start(self, token: str = TOKEN, reply_token: str | None = None) -> Deferred[Any]:
        """
        Store C{token} for ncr, resume with it, and answer as the server
        does (with C{reply_token}, by default the same token).
        """
        self.tokens.save("ncr", token)
        d = self.session.client.resume()
        request = self.server.take("resume")
        self.assertEqual(request["token"], token)
        fields = login_info()
        self.server.reply(
            request, "login_successful", user=fields["user"], token=reply_token or token
        )
        self.server.push("login_info", **fields)
        return d

    def test_login_stores_the_token_not_the_password(self) -> None:
        """
        Logging in (staying logged in, the default) stores the token for
        the server and the user; the password is neither stored nor kept.
        """
        self.successResultOf(self.session.log_in())
        self.assertEqual(self.tokens.newest(), ("ncr", TOKEN))
        with open(self.path, encoding="utf-8") as f:
            self.assertNotIn("secret1", f.read())
        self.assertEqual(mode(self.path), 0o600)
        credentials = self.session.client._credentials
        assert credentials is not None
        self.assertIsNone(credentials.password)

    def test_reconnect_resumes_with_the_token(self) -> None:
        """
        Every reconnect sends C{resume} with the token, never C{login}.
        """
        self.session.log_in()
        for _ in range(2):
            self.server.drop()
            self.session.clock.advance(1.0)
            (request,) = self.server.sent()
            self.assertEqual(request, {"type": "resume", "id": 1, "token": TOKEN})
            self.server.reply(request, "login_successful", user=user(*NCR), token=TOKEN)
            self.assertEqual(self.session.state.connection, ONLINE)

    def test_resume_at_start(self) -> None:
        """
        With a stored token, resume sends it (no login, no password) and
        the session starts as after a login, then reconnects with it.
        """
        self.assertIsNone(self.session.client.saved_username)
        self.tokens.save("ncr", TOKEN)
        self.assertEqual(self.session.client.saved_username, "ncr")
        d = self.resume_at_start()
        self.assertEqual(self.successResultOf(d).username, "ncr")
        state = self.session.state
        self.assertEqual(state.connection, ONLINE)
        self.assertEqual(sorted(state.friends), [2, 3])
        self.session.reconnect()
        self.assertEqual(self.session.state.connection, ONLINE)

    def test_resume_gives_a_new_token(self) -> None:
        """
        A resume whose reply carries another token stores that one, and
        the next reconnect uses it.
        """
        self.successResultOf(self.resume_at_start(reply_token=NEW_TOKEN))
        self.assertEqual(self.tokens.newest(), ("ncr", NEW_TOKEN))
        self.server.drop()
        self.session.clock.advance(1.0)
        self.assertEqual(self.server.take("resume")["token"], NEW_TOKEN)

    def test_resume_at_start_refused(self) -> None:
        """
        A stored token the server no longer takes fails the resume with
        C{invalid_token}, is forgotten, and nothing reconnects.
        """
        self.tokens.save("ncr", TOKEN)
        d = self.session.client.resume()
        self.server.error(self.server.take("resume"), "invalid_token")
        self.assertEqual(self.failureResultOf(d, ChatError).value.code, "invalid_token")
        self.assertIsNone(self.tokens.newest())
        self.assertIsNone(self.session.client.saved_username)
        self.assertFalse(self.server.open)
        self.assertEqual(self.session.state.connection, OFFLINE)
        self.session.clock.advance(60)
        self.assertEqual(len(self.session.endpoint.connections), 1)

    def test_resume_at_start_rate_limited_keeps_the_token(self) -> None:
        """
        A resume refused for another reason keeps the token for later.
        """
        self.tokens.save("ncr", TOKEN)
        d = self.session.client.resume()
        self.server.error(self.server.take("resume"), "rate_limited")
        self.failureResultOf(d, ChatError)
        self.assertEqual(self.tokens.newest(), ("ncr", TOKEN))

    def test_resume_without_a_token(self) -> None:
        """
        Resuming with nothing stored fails at once, sending nothing.
        """
        d = self.session.client.resume()
        self.assertEqual(self.failureResultOf(d, ChatError).value.code, "invalid_token")
        self.assertEqual(self.session.endpoint.connections, [])

    def test_not_staying_logged_in(self) -> None:
        """
        Without "stay logged in" nothing is written; reconnects still
        resume with the token kept in memory.
        """
        d = self.session.client.login("ncr", "secret1", stay_logged_in=False)
        self.server.reply(
            self.server.take("login"), "login_successful", user=user(*NCR), token=TOKEN
        )
        self.successResultOf(d)
        self.assertFalse(os.path.exists(self.path))
        self.server.drop()
        self.session.clock.advance(1.0)
        self.assertEqual(self.server.take("resume")["token"], TOKEN)

    def test_not_staying_forgets_an_older_token(self) -> None:
        """
        Logging in without "stay logged in" forgets the token stored for
        that user by an earlier run, so the next start asks for a password.
        """
        self.tokens.save("ncr", "o" * 43)
        self.tokens.save("lzy", "l" * 43)
        d = self.session.client.login("ncr", "secret1", stay_logged_in=False)
        self.server.reply(
            self.server.take("login"), "login_successful", user=user(*NCR), token=TOKEN
        )
        self.successResultOf(d)
        self.assertIsNone(self.tokens.token("ncr"))
        self.assertEqual(self.tokens.newest(), ("lzy", "l" * 43))

    def test_logout_forgets_the_token(self) -> None:
        """
        Logging out asks the server (which ends the token) and forgets the
        stored token; other users' tokens stay.
        """
        self.tokens.save("lzy", "l" * 43)
        self.session.log_in()
        d = self.session.client.logout()
        self.server.reply(self.server.take("logout"), "logout_successful")
        self.successResultOf(d)
        self.assertIsNone(self.tokens.token("ncr"))
        self.assertEqual(self.tokens.newest(), ("lzy", "l" * 43))

    def test_quitting_keeps_the_token(self) -> None:
        """
        Closing the program (stop) keeps the stored token for the next
        start.
        """
        self.session.log_in()
        self.successResultOf(self.session.client.stop())
        self.assertEqual(self.tokens.newest(), ("ncr", TOKEN))

    def test_token_refused_on_reconnect(self) -> None:
        """
        A token refused on a reconnect (the password changed elsewhere)
        ends the session with a sentence, forgets the token, and does not
        reconnect.
        """
        self.session.log_in()
        self.server.drop()
        self.session.clock.advance(1.0)
        self.server.error(self.server.take("resume"), "invalid_token")
        self.assertIsNone(self.session.state.user)
        self.assertIn(SignedOut(texts.SESSION_ENDED), self.changes)
        self.assertIsNone(self.tokens.newest())
        self.session.clock.advance(60)
        self.assertEqual(len(self.session.endpoint.connections), 2)

    def test_account_disabled_on_reconnect(self) -> None:
        """
        An account disabled by the operator ends the session too.
        """
        self.session.log_in()
        self.server.drop()
        self.session.clock.advance(1.0)
        self.server.error(self.server.take("resume"), "account_disabled")
        (signed_out,) = [c for c in self.changes if isinstance(c, SignedOut)]
        self.assertIn("disabled", signed_out.reason or "")
        self.assertIsNone(self.tokens.newest())

    def test_operator_kicks_end_the_session(self) -> None:
        """
        A kick because the operator disabled the account or reset its
        password ends the session with its sentence, forgets the token, and
        does not reconnect (the token cannot work any more).
        """
        for reason in ("account_disabled", "password_changed"):
            self.session.log_in()
            self.assertEqual(self.tokens.newest(), ("ncr", TOKEN))
            connections = len(self.session.endpoint.connections)
            self.server.push("server_kick", reason=reason)
            self.server.drop()
            self.assertIsNone(self.session.state.user)
            self.assertIn(SignedOut(texts.kicked(reason)), self.changes)
            self.assertIsNone(self.tokens.newest())
            self.session.clock.advance(60)
            self.assertEqual(len(self.session.endpoint.connections), connections)

    def test_server_without_tokens(self) -> None:
        """
        From a server whose login gives no token, nothing is stored and a
        reconnect logs in with the password as before.
        """
        d = self.session.client.login("ncr", "secret1")
        self.server.reply(self.server.take("login"), "login_successful", user=user(*NCR))
        self.successResultOf(d)
        self.assertFalse(os.path.exists(self.path))
        self.server.drop()
        self.session.clock.advance(1.0)
        request = self.server.take("login")
        self.assertEqual((request["username"], request["password"]), ("ncr", "secret1"))
        self.server.error(request, "login_failed", "Wrong.")
        self.assertIsNone(self.session.state.user)

    def test_change_password(self) -> None:
        """
        A password change sends both passwords; its new token replaces the
        stored one, and the next reconnect resumes with it.
        """
        self.session.log_in()
        d = self.session.client.change_password("secret1", "n3w-secret")
        request = self.server.take("change_password")
        self.assertEqual(
            (request["old_password"], request["new_password"]), ("secret1", "n3w-secret")
        )
        self.server.reply(request, "password_changed", token=NEW_TOKEN)
        self.successResultOf(d)
        self.assertEqual(self.tokens.newest(), ("ncr", NEW_TOKEN))
        with open(self.path, encoding="utf-8") as f:
            self.assertNotIn("n3w-secret", f.read())
        self.server.drop()
        self.session.clock.advance(1.0)
        self.assertEqual(self.server.take("resume")["token"], NEW_TOKEN)

    def test_change_password_refused(self) -> None:
        """
        A refused change fails with the server's code and keeps the token.
        """
        self.session.log_in()
        for code in ("login_failed", "invalid_password", "rate_limited"):
            d = self.session.client.change_password("wrong00", "n3w-secret")
            self.server.error(self.server.take("change_password"), code)
            self.assertEqual(self.failureResultOf(d, ChatError).value.code, code)
        self.assertEqual(self.tokens.newest(), ("ncr", TOKEN))

    def test_change_password_checks_the_rule(self) -> None:
        """
        A new password that breaks the rule of section 4 is not sent.
        """
        self.session.log_in()
        for bad in ("short", "      ", "x" * 129):
            self.assertRaises(ValueError, self.session.client.change_password, "secret1", bad)
        self.assertEqual(self.server.sent(), [])

    def test_change_password_in_memory_only(self) -> None:
        """
        Without "stay logged in", the new token replaces the old one in
        memory, and nothing is written.
        """
        d = self.session.client.login("ncr", "secret1", stay_logged_in=False)
        self.server.reply(
            self.server.take("login"), "login_successful", user=user(*NCR), token=TOKEN
        )
        self.successResultOf(d)
        change = self.session.client.change_password("secret1", "n3w-secret")
        self.server.reply(self.server.take("change_password"), "password_changed", token=NEW_TOKEN)
        self.successResultOf(change)
        self.assertFalse(os.path.exists(self.path))
        self.server.drop()
        self.session.clock.advance(1.0)
        self.assertEqual(self.server.take("resume")["token"], NEW_TOKEN)


class AppTokenTests(SynchronousTestCase):
    """
    The windows: "stay logged in", signing in at start, the session that
    ended, and the "Change password" dialog.
    """

    def setUp(self) -> None:
        self.app = qapp()
        self.path = os.path.join(self.mktemp(), "tokens.json")
        self.tokens = TokenFile(self.path, SERVER)
        self.session = Session(tokens=self.tokens)
        self.chat = ChatApp(self.session.client, self.session.clock, SERVER)
        self.main = self.chat.main_window
        self.login = self.chat.login_window
        self.dialog = self.chat.password_dialog
        self.addCleanup(self._close)

    def _close(self) -> None:
        self.chat._leaving = True
        self.dialog.reject()
        self.main.hide()
        self.login.hide()
        self.chat.bridge.detach()

    @property
    def server(self) -> Any:
        return self.session.server

    def log_in(self, stay: bool = True) -> None:
        """
        Start, and log in through the login window as ncr.
        """
        self.chat.start()
        self.login.username.setText("ncr")
        self.login.password.setText("secret1")
        self.login.stay_logged_in.setChecked(stay)
        e2e.click(self.login.submit_button)
        fields = login_info()
        self.server.reply(
            self.server.take("login"), "login_successful", user=fields["user"], token=TOKEN
        )
        self.server.push("login_info", **fields)

    def test_stay_logged_in_by_default(self) -> None:
        """
        "Stay logged in" is checked at first, and logging in so stores the
        token.
        """
        self.assertTrue(self.login.stay_logged_in.isChecked())
        self.log_in()
        self.assertTrue(self.main.isVisible())
        self.assertEqual(self.tokens.newest(), ("ncr", TOKEN))

    def test_unchecked_writes_nothing(self) -> None:
        """
        Unchecked, the login writes no token file.
        """
        self.log_in(stay=False)
        self.assertTrue(self.main.isVisible())
        self.assertFalse(os.path.exists(self.path))

    def test_start_resumes_without_the_login_window(self) -> None:
        """
        With a stored token, the start shows the main window signing in
        (never the login window) and resumes; then the notice goes.
        """
        self.tokens.save("ncr", TOKEN)
        self.chat.start()
        self.assertFalse(self.login.isVisible())
        self.assertTrue(self.main.isVisible())
        signing_in = texts.SIGNING_IN.format(username="ncr")
        self.assertEqual(self.main.notice_bar.text(), signing_in)
        (request,) = self.server.sent()
        self.assertEqual((request["type"], request["token"]), ("resume", TOKEN))
        fields = login_info()
        self.server.reply(request, "login_successful", user=fields["user"], token=TOKEN)
        self.server.push("login_info", **fields)
        self.assertFalse(self.login.isVisible())
        self.assertEqual(self.main.user_label.text(), "ncr(1)")
        self.assertNotEqual(self.main.notice_bar.text(), signing_in)

    def test_start_with_an_ended_token(self) -> None:
        """
        A stored token the server refuses at start is forgotten, and the
        login window comes back saying the session ended, the name filled.
        """
        self.tokens.save("ncr", TOKEN)
        self.chat.start()
        self.server.error(self.server.take("resume"), "invalid_token")
        self.assertTrue(self.login.isVisible())
        self.assertFalse(self.main.isVisible())
        self.assertEqual(self.login.message.text(), texts.SESSION_ENDED)
        self.assertEqual(self.login.username.text(), "ncr")
        self.assertIsNone(self.tokens.newest())

    def test_start_server_unreachable(self) -> None:
        """
        When the server cannot be reached at start, the login window says
        so and the token stays for the next try.
        """
        self.tokens.save("ncr", TOKEN)
        self.session.endpoint.refuse = True
        self.chat.start()
        self.assertTrue(self.login.isVisible())
        self.assertIn("Cannot reach the server", self.login.message.text())
        self.assertEqual(self.tokens.newest(), ("ncr", TOKEN))

    def test_token_refused_on_reconnect(self) -> None:
        """
        A token refused on a reconnect brings the login window back with a
        clear sentence.
        """
        self.log_in()
        self.server.drop()
        self.session.clock.advance(1.0)
        self.server.error(self.server.take("resume"), "invalid_token")
        self.assertTrue(self.login.isVisible())
        self.assertFalse(self.main.isVisible())
        self.assertEqual(self.login.message.text(), texts.SESSION_ENDED)

    def test_logout_forgets(self) -> None:
        """
        Log out forgets the stored token: the next start shows the login
        window.
        """
        self.log_in()
        e2e.click(self.main.logout_button)
        self.server.reply(self.server.take("logout"), "logout_successful")
        self.assertIsNone(self.tokens.newest())
        self.assertIsNone(self.session.client.saved_username)

    def open_dialog(self) -> None:
        self.log_in()
        e2e.click(self.main.change_password_button)
        self.assertTrue(self.dialog.isVisible())

    def fill(self, current: str, new: str, again: str) -> None:
        self.dialog.current.setText(current)
        self.dialog.new.setText(new)
        self.dialog.again.setText(again)

    def test_dialog_checks_before_sending(self) -> None:
        """
        The dialog refuses an empty current password, a new one that
        breaks the rule and two that differ, sending nothing.
        """
        self.open_dialog()
        spy = QSignalSpy(self.dialog.change_requested)
        for current, new, again, error in [
            ("", "n3w-secret", "n3w-secret", "current password"),
            ("secret1", "short", "short", "6-128"),
            ("secret1", "       ", "       ", "6-128"),
            ("secret1", "n3w-secret", "n3w-secreT", "differ"),
        ]:
            self.fill(current, new, again)
            e2e.click(self.dialog.change_button)
            self.assertIn(error, self.dialog.message.text())
            self.assertFalse(self.dialog.message.isHidden())
        self.assertEqual(len(spy), 0)
        self.assertEqual(self.server.sent(), [])
        self.assertTrue(self.dialog.isVisible())

    def test_dialog_changes_the_password(self) -> None:
        """
        A good change sends both passwords; on success the dialog closes,
        a notice says so, and the new token is stored.
        """
        self.open_dialog()
        self.fill("secret1", "n3w-secret", "n3w-secret")
        e2e.click(self.dialog.change_button)
        self.assertFalse(self.dialog.change_button.isEnabled())
        request = self.server.take("change_password")
        self.assertEqual(
            (request["old_password"], request["new_password"]), ("secret1", "n3w-secret")
        )
        self.server.reply(request, "password_changed", token=NEW_TOKEN)
        self.assertFalse(self.dialog.isVisible())
        self.assertEqual(self.main.notice_bar.text(), texts.PASSWORD_CHANGED)
        self.assertEqual(self.tokens.newest(), ("ncr", NEW_TOKEN))
        self.assertEqual(self.dialog.current.text(), "")

    def test_dialog_errors(self) -> None:
        """
        A refused change says why in the dialog, as a sentence, and lets
        the user try again.
        """
        self.open_dialog()
        for code, sentence in [
            ("login_failed", "The current password is wrong."),
            ("invalid_password", texts.PASSWORD_ERRORS["invalid_password"]),
            ("rate_limited", "Too many attempts. Wait a minute, then try again."),
        ]:
            self.fill("secret1", "n3w-secret", "n3w-secret")
            e2e.click(self.dialog.change_button)
            self.server.error(self.server.take("change_password"), code, "terse")
            self.assertTrue(self.dialog.isVisible())
            self.assertEqual(self.dialog.message.text(), sentence)
            self.assertTrue(self.dialog.change_button.isEnabled())
        self.assertEqual(self.tokens.newest(), ("ncr", TOKEN))

    def test_dialog_offline(self) -> None:
        """
        Offline, the dialog says the change needs the connection.
        """
        self.open_dialog()
        self.server.drop()
        self.fill("secret1", "n3w-secret", "n3w-secret")
        e2e.click(self.dialog.change_button)
        self.assertEqual(self.dialog.message.text(), texts.PASSWORD_OFFLINE)

    def test_dialog_closes_when_signed_out(self) -> None:
        """
        The dialog goes away with the session.
        """
        self.open_dialog()
        self.server.push("server_kick", reason="logged_in_elsewhere")
        self.assertFalse(self.dialog.isVisible())
        self.assertTrue(self.login.isVisible())


class EndToEndTokenTests(TestCase):
    """
    Against a real server on loopback: the token comes back after a lost
    connection and after a restart of the client, without a password.
    """

    timeout = 30

    async def test_resume_after_drop_and_restart(self) -> None:
        """
        A client that registered and logged in stores its token; a dropped
        connection comes back with C{resume}; a new client on the same
        token file signs in at start without the login window; logging out
        forgets the token.
        """
        from twisted.internet import reactor
        from twisted.internet.endpoints import TCP4ClientEndpoint

        qapp()
        running = await start_server(self)
        path = os.path.join(self.mktemp(), "tokens.json")
        server = f"127.0.0.1:{running.port}"
        sent: list[str] = []
        request = ChatClientProtocol.request

        def recording(protocol: ChatClientProtocol, kind: str, **fields: Any) -> Deferred[Any]:
            sent.append(kind)
            return request(protocol, kind, **fields)

        self.patch(ChatClientProtocol, "request", recording)

        def start() -> ChatApp:
            client = ChatClient(
                TCP4ClientEndpoint(reactor, "127.0.0.1", running.port),
                ClientState(),
                reactor,
                retry_policy=lambda attempt: 0.0,
                tokens=TokenFile(path, server),
            )
            app = ChatApp(client, Clock(), server)

            async def close() -> None:
                app._leaving = True
                app.main_window.hide()
                app.login_window.hide()
                await client.stop()
                app.bridge.detach()

            self.addCleanup(lambda: Deferred.fromCoroutine(close()))
            app.start()
            return app

        first = start()
        login = first.login_window
        e2e.click(login.register_tab)
        login.username.setText("ncr")
        login.password.setText("secret1")
        login.password_again.setText("secret1")
        e2e.click(login.submit_button)
        state = first.state
        await e2e.until(state, lambda: state.user is not None and state.connection == ONLINE)
        saved = TokenFile(path, server).newest()
        assert saved is not None
        self.assertEqual(saved[0], "ncr")
        self.assertEqual(mode(path), 0o600)

        del sent[:]
        protocol = first.client._protocol
        assert protocol is not None
        protocol.transport.loseConnection()
        await e2e.until(state, lambda: state.connection != ONLINE)
        await e2e.until(state, lambda: state.connection == ONLINE)
        self.assertEqual(sent[0], "resume")
        self.assertNotIn("login", sent)
        await first.client.stop()

        del sent[:]
        second = start()
        self.assertFalse(second.login_window.isVisible())
        state = second.state
        await e2e.until(state, lambda: state.user is not None and state.connection == ONLINE)
        self.assertEqual(sent[0], "resume")
        self.assertNotIn("login", sent)
        self.assertTrue(second.main_window.isVisible())
        self.assertFalse(second.login_window.isVisible())

        await second.client.logout()
        self.assertIsNone(TokenFile(path, server).newest())
