"""
C{twistd chatd}: the command-line options, and the service they make
(L{chatd.service.ChatService}).

The only module that touches the global reactor.
"""

from __future__ import annotations

from twisted.python import usage

from chatd.cluster import RedisURL
from chatd.database import is_postgresql
from chatd.files import FileLimits
from chatd.protocol import Limits
from chatd.service import ChatService

#: The listen backlog when --port is a port number.
LISTEN_BACKLOG = 1024

#: The limits when no option changes them (PROTOCOL.md 8 and 14).
_DEFAULT = Limits()
_DEFAULT_FILES = FileLimits()


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError(f"{value} is not a positive integer")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(f"{value} is not a positive number")
    return number


class Options(usage.Options):
    """
    The options of C{twistd chatd}.
    """

    synopsis = "[options]"
    longdesc = (
        "Run the chatd chat server: accounts, friends, private chat, group rooms "
        "and history, stored in a SQLite file.  See docs/PROTOCOL.md."
    )

    optParameters = [
        [
            "port",
            "p",
            "8998",
            "Where to listen: a port number, or a Twisted server endpoint such as "
            "tcp:8998:interface=127.0.0.1 or ssl:8999:privateKey=key.pem:certKey=cert.pem.",
        ],
        [
            "db",
            "d",
            "chatd.sqlite3",
            "The SQLite database file (created if missing), or a PostgreSQL URL:"
            " postgresql://user:password@host:port/dbname.",
        ],
        [
            "redis",
            None,
            None,
            "With a PostgreSQL --db, the Redis that joins this process to the others of"
            " its deployment: redis://[:password@]host:port/N (docs/scaling.md).",
        ],
        [
            "admin-socket",
            None,
            None,
            "The operator's control socket for chatd-admin, a UNIX socket of mode 0600 "
            "[default: the database's path with .admin added].",
        ],
        [
            "max-frame",
            None,
            _DEFAULT.max_frame,
            "Largest request payload in bytes; a longer frame closes the connection.",
            _positive_int,
        ],
        [
            "rate",
            None,
            _DEFAULT.rate,
            "Requests per second allowed per connection.",
            _positive_float,
        ],
        [
            "burst",
            None,
            _DEFAULT.burst,
            "Requests a connection may send at once.",
            _positive_int,
        ],
        [
            "idle-timeout",
            None,
            _DEFAULT.idle_timeout,
            "Seconds of silence after which a logged-in connection is closed.",
            _positive_float,
        ],
        [
            "max-pending",
            None,
            _DEFAULT.max_pending,
            "Bytes that may wait unsent for a client that stopped reading "
            "before it is disconnected.",
            _positive_int,
        ],
        [
            "token-days",
            None,
            30.0,
            "Days a session token (PROTOCOL.md 13) keeps working without being used.",
            _positive_float,
        ],
        [
            "files",
            None,
            None,
            "The folder of the files people send (created if missing) "
            "[default: the database's path with .files added].",
        ],
        [
            "max-upload",
            None,
            _DEFAULT_FILES.max_upload,
            "The largest file, in bytes.",
            _positive_int,
        ],
        [
            "user-quota",
            None,
            _DEFAULT_FILES.user_quota,
            "The bytes of files each user may have stored.",
            _positive_int,
        ],
        [
            "transfer-rate",
            None,
            _DEFAULT.transfer_rate,
            "Bytes per second of file chunks per connection (in bursts of up to 4 MiB).",
            _positive_float,
        ],
        [
            "retention-days",
            None,
            None,
            "Delete messages older than this many days, once a day [default: keep every message].",
            _positive_float,
        ],
        [
            "metrics",
            None,
            None,
            "Serve Prometheus metrics at /metrics on this Twisted endpoint, such as "
            "tcp:9464:interface=127.0.0.1 [default: off].",
        ],
    ]

    optFlags = [
        [
            "insecure-fast-hashes",
            None,
            "FOR TESTS AND BENCHMARKS ONLY, never on a real database: hash passwords "
            "with the cheapest argon2 parameters, which protect nothing.  Every login "
            "rehashes the account's password with them (and, once chatd runs without "
            "this option again, back with the real ones).",
        ],
    ]

    def postOptions(self) -> None:
        if is_postgresql(self["db"]) and not (self["admin-socket"] and self["files"]):
            raise usage.UsageError(
                "with a PostgreSQL --db, give --admin-socket and --files too"
                " (their defaults are named after a SQLite file)"
            )
        redis = self["redis"]
        if redis is not None:
            if not is_postgresql(self["db"]):
                raise usage.UsageError(
                    "--redis joins processes that share a PostgreSQL --db;"
                    " a SQLite file is one process's"
                )
            try:
                RedisURL(redis)
            except ValueError as e:
                raise usage.UsageError(f"--redis: {e}") from None
        port = self["port"]
        if port.isdigit():
            # A class logging in at once overflows Twisted's default listen
            # backlog of 50, and the refused connects retry a second later.
            self["port"] = f"tcp:{port}:backlog={LISTEN_BACKLOG}"


def makeService(options: Options) -> ChatService:
    """
    Make the chatd service from the parsed options.
    """
    from twisted.internet import reactor

    limits = Limits(
        max_frame=options["max-frame"],
        rate=options["rate"],
        burst=options["burst"],
        idle_timeout=options["idle-timeout"],
        max_pending=options["max-pending"],
        transfer_rate=options["transfer-rate"],
    )
    return ChatService(
        options["port"],
        options["db"],
        limits,
        reactor,
        admin_socket=options["admin-socket"] or options["db"] + ".admin",
        files_folder=options["files"] or options["db"] + ".files",
        file_limits=FileLimits(options["max-upload"], options["user-quota"]),
        insecure_fast_hashes=bool(options["insecure-fast-hashes"]),
        token_days=options["token-days"],
        retention_days=options["retention-days"],
        metrics_endpoint=options["metrics"],
        redis=options["redis"],
        freeze_heap=True,
    )
