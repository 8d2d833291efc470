"""
The operator's control socket (PROTOCOL.md section 15): what C{chatd-admin}
asks of the running server.

C{twistd chatd} listens on a UNIX socket beside its database (C{<db>.admin}
unless C{--admin-socket} says otherwise) with mode 0600: whoever may open
it is the operator.  Nothing of it is reachable from the network, and no
request of the chat protocol reaches it.

Each frame (L{Int32StringReceiver}, as on the chat port) carries one JSON
request C{{"command": str, ...}}; the reply is C{{"ok": true, "result":
...}}, or C{{"ok": false, "error": "a sentence for the operator"}}.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import closing
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Factory
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure

from chatd import wire
from chatd.assembly import Assembly
from chatd.database import is_postgresql

#: The largest request: a name, a path, a password.
MAX_REQUEST = 64 * 1024

#: How many characters of randomness a reset password has (96 bits).
RESET_PASSWORD_BYTES = 12

log = Logger()


class AdminError(Exception):
    """
    What the operator asked cannot be done; the message says why.
    """


def _text(request: dict[str, Any], key: str, default: str | None = None) -> str:
    value = request.get(key, default)
    if not isinstance(value, str):
        raise AdminError(f"The request needs a text {key!r}.")
    return value


def _destination(request: dict[str, Any]) -> str:
    dest = _text(request, "dest")
    if not os.path.isabs(dest):
        raise AdminError(f"The destination {dest} is not an absolute path.")
    return dest


class Operator:
    """
    Carries out the operator's commands on a running server: each method
    is one command of C{chatd-admin}.
    """

    def __init__(self, parts: Assembly, db_path: str, reactor: Any) -> None:
        """
        @param parts: the running server.
        @param db_path: its SQLite file, or PostgreSQL URL.
        @param reactor: its clock (for the uptime) and the threads that
            backups and exports write in.
        """
        self._parts = parts
        self._db_path = db_path if is_postgresql(db_path) else os.path.abspath(db_path)
        self._reactor = reactor
        self._started = reactor.seconds()
        self.commands: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "users": self.users,
            "disable": self.disable,
            "enable": self.enable,
            "reset-password": self.reset_password,
            "unlock": self.unlock,
            "stats": self.stats,
            "backup": self.backup,
            "export": self.export,
        }

    def _user_id(self, request: dict[str, Any]) -> int:
        name = _text(request, "name")
        user_id = self._parts.directory.user_id(name)
        if user_id is None:
            raise AdminError(f"There is no user called {name}.")
        return user_id

    def _in_thread(self, work: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), work, *args)

    async def users(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """
        The accounts whose name contains C{query} (all by default).
        """
        accounts = await self._parts.store.accounts(_text(request, "query", ""))
        sessions = self._parts.sessions
        return [
            {
                "id": account.id,
                "name": account.username,
                "created": account.created_at,
                "last_seen": account.last_seen_at,
                "online": sessions.online(account.id),
                "disabled": account.disabled,
            }
            for account in accounts
        ]

    async def disable(self, request: dict[str, Any]) -> dict[str, Any]:
        """
        Keep an account out: its session is kicked with C{account_disabled},
        and its logins and resumes are refused until it is enabled again.
        """
        user_id = self._user_id(request)
        disabled = self._parts.directory.disabled
        if user_id in disabled:
            return {"changed": False}
        # Refused from now on, so that no login on its way slips in while
        # the change commits.
        disabled.add(user_id)
        try:
            await self._parts.store.set_disabled(user_id, True)
        except BaseException:
            disabled.discard(user_id)
            raise
        self._parts.server.deployment.user_changed(user_id)
        self._parts.sessions.kick(user_id, wire.ACCOUNT_DISABLED)
        log.info("The operator disabled user {user_id}", user_id=user_id)
        return {"changed": True}

    async def enable(self, request: dict[str, Any]) -> dict[str, Any]:
        """
        Let a disabled account in again, with its password only: the
        tokens it had end.
        """
        user_id = self._user_id(request)
        disabled = self._parts.directory.disabled
        if user_id not in disabled:
            return {"changed": False}
        await self._parts.store.set_disabled(user_id, False)
        disabled.discard(user_id)
        self._parts.server.deployment.user_changed(user_id)
        log.info("The operator enabled user {user_id}", user_id=user_id)
        return {"changed": True}

    async def reset_password(self, request: dict[str, Any]) -> dict[str, Any]:
        """
        Give an account a new password (C{password}, or a random one that
        the reply carries), end its tokens, kick its session with
        C{password_changed}, and lift its failed-login throttle.
        """
        user_id = self._user_id(request)
        chosen = request.get("password")
        if chosen is None:
            password = secrets.token_urlsafe(RESET_PASSWORD_BYTES)
        elif isinstance(chosen, str) and wire.valid_password(chosen):
            password = chosen
        else:
            raise AdminError(wire.MESSAGES[wire.INVALID_PASSWORD])
        password_hash = await self._parts.passwords.hash(password)
        await self._parts.store.reset_password(user_id, password_hash)
        self._parts.server.unlock(self._parts.directory.usernames[user_id])
        self._parts.sessions.kick(user_id, wire.PASSWORD_CHANGED)
        log.info("The operator reset the credentials of user {user_id}", user_id=user_id)
        return {"password": None if chosen is not None else password}

    async def unlock(self, request: dict[str, Any]) -> dict[str, Any]:
        """
        Lift the failed-login throttle of an account (PROTOCOL.md section 8).
        """
        user_id = self._user_id(request)
        name = self._parts.directory.usernames[user_id]
        return {"changed": self._parts.server.unlock(name)}

    async def stats(self, request: dict[str, Any]) -> dict[str, Any]:
        """
        What the server holds and how long it has run.
        """
        store = self._parts.store
        totals = await store.totals()
        if store.postgresql:
            size = await store.database_size()
        else:
            size = await self._in_thread(_database_size, self._db_path)
        files = await self._parts.transfers.folder_size()
        return {
            "users": totals.users,
            "rooms": totals.rooms,
            "messages": totals.messages,
            "online": self._parts.sessions.everywhere(),
            "connections": len(self._parts.sessions.everyone()),
            "database_bytes": size,
            "files_bytes": files,
            "uptime_seconds": round(self._reactor.seconds() - self._started, 3),
        }

    async def backup(self, request: dict[str, Any]) -> dict[str, Any]:
        """
        Copy the live database to C{dest}, a new file: a consistent
        snapshot, taken in a thread, holding every message committed before
        the command arrived.
        """
        dest = _destination(request)
        if self._parts.store.postgresql:
            raise AdminError(
                "The database is PostgreSQL's: back it up with pg_dump (docs/scaling.md)."
            )
        await self._in_thread(_write_new, dest, lambda path: _backup(self._db_path, path))
        log.info("The operator backed the database up to {dest}", dest=dest)
        return {"dest": dest}

    async def export(self, request: dict[str, Any]) -> dict[str, Any]:
        """
        Write everything stored about one account to C{dest}, a new JSON
        file.
        """
        user_id = self._user_id(request)
        dest = _destination(request)
        data = await self._parts.store.export(user_id)
        await self._in_thread(_write_new, dest, lambda path: _write_json(path, data))
        log.info("The operator exported user {user_id} to {dest}", user_id=user_id, dest=dest)
        return {"dest": dest, "messages": len(data["messages"])}


def _database_size(path: str) -> int:
    """
    @return: the bytes of the database file and its write-ahead log.
    """
    total = 0
    for name in (path, path + "-wal"):
        try:
            total += os.stat(name).st_size
        except FileNotFoundError:
            pass
    return total


def _write_new(dest: str, write: Callable[[str], None]) -> None:
    """
    Make C{dest} a new file with what C{write(path)} writes to C{path}: it
    is written beside C{dest} under a temporary name, flushed to disk, and
    linked in under its name only when complete, so that C{dest} is never
    half-written and never replaces an existing file.

    @raise AdminError: C{dest} exists or cannot be written.
    """
    directory = os.path.dirname(dest)
    if os.path.lexists(dest):
        raise AdminError(f"{dest} exists; choose a new file.")
    try:
        fd, temporary = tempfile.mkstemp(prefix=".chatd-", suffix=".tmp", dir=directory)
    except OSError as e:
        raise AdminError(f"Cannot write in {directory}: {e.strerror}.") from None
    os.close(fd)
    try:
        write(temporary)
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        try:
            os.link(temporary, dest)
        except FileExistsError:
            raise AdminError(f"{dest} exists; choose a new file.") from None
        folder = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError as e:
        raise AdminError(f"Cannot write {dest}: {e.strerror}.") from None
    finally:
        os.unlink(temporary)


def _backup(source: str, dest: str) -> None:
    """
    Copy the database C{source} into the file C{dest} with SQLite's online
    backup API, in one step: one read transaction, so the copy is one
    consistent moment.  In WAL mode a reader does not hold up the writer,
    so messages keep committing while it runs.
    """
    try:
        with (
            closing(sqlite3.connect(source, isolation_level=None)) as live,
            closing(sqlite3.connect(dest, isolation_level=None)) as copy,
        ):
            live.execute("PRAGMA busy_timeout = 5000")
            live.backup(copy)
            # A copy of its own: one file, with no -wal beside it.
            copy.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.Error as e:
        raise AdminError(f"The backup failed: {e}.") from None


def _write_json(path: str, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as out:
        json.dump(data, out, ensure_ascii=False, indent=1)
        out.write("\n")


class AdminProtocol(Int32StringReceiver):
    """
    One connection of C{chatd-admin}: each request is answered in turn.
    """

    MAX_LENGTH = MAX_REQUEST

    def __init__(self, operator: Operator) -> None:
        self._operator = operator
        # The answer to the latest request: the next one waits for it.
        self._previous: Deferred[None] = succeed(None)

    def stringReceived(self, payload: bytes) -> None:
        d = self._previous.addCallback(lambda _: Deferred.fromCoroutine(self._answer(payload)))
        d.addCallback(self._reply)
        d.addErrback(lambda failure: log.failure("Answering the operator failed", failure))
        self._previous = d

    async def _answer(self, payload: bytes) -> dict[str, Any]:
        try:
            request = json.loads(payload)
            if not isinstance(request, dict):
                raise AdminError("A request is a JSON object.")
            command = request.get("command")
            handler = self._operator.commands.get(command) if isinstance(command, str) else None
            if handler is None:
                raise AdminError(f"Unknown command {command!r}.")
            return {"ok": True, "result": await handler(request)}
        except AdminError as e:
            return {"ok": False, "error": str(e)}
        except ValueError:
            return {"ok": False, "error": "A request is a JSON object."}
        except Exception:
            log.failure("The operator's command failed", Failure())
            return {"ok": False, "error": "The server failed; its log says why."}

    def _reply(self, reply: dict[str, Any]) -> None:
        if self.transport is not None and self.connected:
            self.sendString(json.dumps(reply).encode())

    def lengthLimitExceeded(self, length: int) -> None:
        assert self.transport is not None
        self.transport.loseConnection()


class AdminFactory(Factory):
    """
    Builds an L{AdminProtocol} for each connection to the control socket.
    """

    noisy = False

    def __init__(self, operator: Operator) -> None:
        self._operator = operator

    def buildProtocol(self, addr: Any) -> AdminProtocol:
        protocol = AdminProtocol(self._operator)
        protocol.factory = self
        return protocol
