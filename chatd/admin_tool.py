"""
C{chatd-admin}: the operator's tool (PROTOCOL.md section 15).

It acts on the running server through the control socket that C{twistd
chatd} opens beside its database (L{chatd.admin}): no restart, and no
message lost.  It is a short-lived command, so it talks to the socket
with plain blocking calls.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
from collections.abc import Sequence
from typing import Any

#: How long to wait for the server's answer (a backup of a large database
#: takes a while).
ANSWER_TIMEOUT = 600.0

_LENGTH = struct.Struct("!I")


class Failed(Exception):
    """
    The command failed; the message says why, for the operator.
    """


def ask(socket_path: str, request: dict[str, Any]) -> Any:
    """
    Send one request to the server's control socket.

    @return: the result of the command.
    @raise Failed: no server answers at C{socket_path}, or the command
        failed.
    """
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(ANSWER_TIMEOUT)
    with connection:
        try:
            connection.connect(socket_path)
        except (FileNotFoundError, ConnectionRefusedError):
            raise Failed(f"no chatd server is running at {socket_path}") from None
        except PermissionError:
            raise Failed(f"not allowed to open {socket_path} (run as the server's user)") from None
        except OSError as e:
            raise Failed(f"cannot open {socket_path}: {e.strerror or e}") from None
        payload = json.dumps(request).encode()
        connection.sendall(_LENGTH.pack(len(payload)) + payload)
        try:
            (length,) = _LENGTH.unpack(_read(connection, _LENGTH.size))
            reply = json.loads(_read(connection, length))
        except TimeoutError:
            raise Failed(f"the server at {socket_path} did not answer") from None
    if not reply.get("ok"):
        raise Failed(reply.get("error", "the server refused the command"))
    return reply.get("result")


def _read(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise Failed("the server closed the connection before answering")
        data += chunk
    return data


def _stamp(stamp: str | None) -> str:
    """
    @return: an ISO 8601 UTC stamp to the minute, or C{never}.
    """
    if stamp is None:
        return "never"
    return stamp[:10] + " " + stamp[11:16] + "Z"


def _size(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def _duration(seconds: float) -> str:
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m"


def _users_table(users: list[dict[str, Any]]) -> list[str]:
    if not users:
        return ["No such users."]
    rows = [("ID", "NAME", "CREATED", "LAST SEEN", "ONLINE", "DISABLED")]
    for user in users:
        rows.append(
            (
                str(user["id"]),
                user["name"],
                _stamp(user["created"]),
                "now" if user["online"] else _stamp(user["last_seen"]),
                "yes" if user["online"] else "no",
                "yes" if user["disabled"] else "no",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def run(options: argparse.Namespace, socket_path: str) -> list[str]:
    """
    Carry out one command.

    @return: the lines to print.
    @raise Failed: it failed.
    """
    command = options.command
    if command == "users":
        return _users_table(ask(socket_path, {"command": "users", "query": options.query}))
    if command == "stats":
        stats = ask(socket_path, {"command": "stats"})
        return [
            f"users:       {stats['users']}",
            f"rooms:       {stats['rooms']}",
            f"messages:    {stats['messages']}",
            f"online now:  {stats['online']} ({stats['connections']} connections)",
            f"database:    {_size(stats['database_bytes'])}",
            f"files:       {_size(stats['files_bytes'])}",
            f"uptime:      {_duration(stats['uptime_seconds'])}",
        ]
    if command == "backup":
        dest = os.path.abspath(options.dest)
        ask(socket_path, {"command": "backup", "dest": dest})
        return [f"Backed the database up to {dest} ({_size(os.path.getsize(dest))})."]
    name = options.name
    request: dict[str, Any] = {"command": command, "name": name}
    if command == "export":
        request["dest"] = os.path.abspath(options.dest)
        result = ask(socket_path, request)
        return [f"Exported {name} ({result['messages']} messages) to {result['dest']}."]
    if command == "reset-password":
        if options.password_stdin:
            request["password"] = sys.stdin.readline().rstrip("\r\n")
        result = ask(socket_path, request)
        if result["password"] is None:
            return [f"Set the new password of {name}; their sessions are ended."]
        return [
            f"New password of {name} (shown once): {result['password']}",
            "Their sessions are ended.",
        ]
    changed = ask(socket_path, request)["changed"]
    done = {
        "disable": (f"Disabled {name}; their session is ended.", f"{name} was already disabled."),
        "enable": (
            f"Enabled {name}; they log in with their password.",
            f"{name} was not disabled.",
        ),
        "unlock": (
            f"Unlocked {name}: they may try to log in again.",
            f"{name} was not locked out.",
        ),
    }[command]
    return [done[0] if changed else done[1]]


def parser() -> argparse.ArgumentParser:
    """
    @return: the command line of C{chatd-admin}.
    """
    top = argparse.ArgumentParser(
        prog="chatd-admin",
        description="Act on the running chatd server through its control socket.",
    )
    top.add_argument(
        "--db",
        default="chatd.sqlite3",
        help="the server's database file; its control socket is beside it (default: %(default)s)",
    )
    top.add_argument(
        "--socket",
        help="the control socket, if the server was started with --admin-socket (default: DB.admin)",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    users = commands.add_parser("users", help="list the accounts")
    users.add_argument("--query", default="", help="only names containing this text")
    for name, text in (
        ("disable", "keep an account out and end its session"),
        ("enable", "let a disabled account in again"),
        ("reset-password", "give an account a new password and end its sessions"),
        ("unlock", "lift the failed-login throttle of an account"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("name", metavar="NAME")
        if name == "reset-password":
            command.add_argument(
                "--password-stdin",
                action="store_true",
                help="read the new password from the first line of standard input",
            )
    commands.add_parser("stats", help="what the server holds, and its uptime")
    backup = commands.add_parser("backup", help="a consistent copy of the live database")
    backup.add_argument("dest", metavar="DEST", help="a new file")
    export = commands.add_parser("export", help="everything stored about one account, as JSON")
    export.add_argument("name", metavar="NAME")
    export.add_argument("dest", metavar="DEST.json", help="a new file")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """
    The C{chatd-admin} console script.

    @return: the exit status: 0 when done, 1 when the command failed.
    """
    options = parser().parse_args(argv)
    socket_path = options.socket or options.db + ".admin"
    try:
        lines = run(options, socket_path)
    except Failed as e:
        print(f"chatd-admin: {e}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
