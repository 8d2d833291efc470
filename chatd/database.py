"""
The database connections of chatd, and how their trouble is told.

Both the store (reads) and the group commit (writes) reach the database
through L{twisted.enterprise.adbapi} pools made by L{make_pool}: SQLite (a
file's path) or PostgreSQL (a C{postgresql://} URL, through psycopg 3).
The store's SQL is written once, as SQLite takes it; a PostgreSQL
connection's cursors (L{PostgreSQLCursor}) turn its C{?} placeholders into
psycopg's and its C{BEGIN IMMEDIATE} into taking the deployment's commit
lock, and the PostgreSQL schema gives it the few functions SQLite has and
PostgreSQL lacks.  When the database
itself fails (locked, read-only, disk full, I/O error), the request that hit
it fails with L{DatabaseUnavailable}: the protocol answers it
C{internal_error} without logging each one, since L{DatabaseHealth} logs the
trouble once when it starts and once when it ends.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Final, Literal

try:
    import psycopg
except ImportError:  # pragma: no cover - a SQLite-only install
    psycopg = None  # type: ignore[assignment]

from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.interfaces import IReactorCore
from twisted.logger import Logger
from twisted.python.failure import Failure


def _connection_opened(busy_timeout_ms: int) -> Any:
    def configure(connection: sqlite3.Connection) -> None:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        # What an edit or a delete overwrites is zeroed on disk, not left in
        # free space: edited and deleted texts are gone (README: privacy).
        connection.execute("PRAGMA secure_delete = ON")
        register_functions(connection)

    return configure


def register_functions(connection: sqlite3.Connection) -> None:
    """
    Give C{connection} the SQL functions chatd's schema calls:
    C{casefold(text)}, Python's C{str.casefold}, by which the search index
    of C{sql/003_search.sql} ignores case.
    """
    connection.create_function("casefold", 1, str.casefold, deterministic=True)


#: The key of the advisory lock every group commit of a PostgreSQL
#: deployment holds until it commits: one writer at a time, as SQLite's
#: BEGIN IMMEDIATE, so that message ids grow in commit order across every
#: process (PROTOCOL.md section 3).
COMMIT_LOCK: Final = 0x63686174  # "chat"


def is_postgresql(db: str) -> bool:
    """
    @return: whether C{db} names a PostgreSQL database (a URL) rather than
        a SQLite file.
    """
    return db.startswith(("postgresql://", "postgres://"))


def _placeholders(sql: str) -> str:
    """
    @return: C{sql} with SQLite's C{?} placeholders as psycopg's C{%s}, and
        its C{%} signs doubled, outside quoted strings and names.
    """
    out = []
    quote = ""
    for c in sql:
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "?":
            out.append("%s")
            continue
        if c == "%":
            out.append("%%")
            continue
        out.append(c)
    return "".join(out)


if psycopg is not None:

    class PostgreSQLCursor(psycopg.Cursor[Any]):
        """
        A cursor that runs SQL written for SQLite (module docstring).
        """

        #: Read through adbapi's Transaction by L{is_postgresql_txn}.
        postgresql = True
        _translated: dict[str, str] = {}

        def _translate(self, sql: str) -> str:
            translated = self._translated.get(sql)
            if translated is None:
                # CROSS JOIN ... ON is how SQLite is told the order of a
                # join; PostgreSQL plans its own, and takes JOIN ... ON.
                translated = _placeholders(sql).replace(" CROSS JOIN ", " JOIN ")
                self._translated[sql] = translated
            return translated

        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            if query == "BEGIN IMMEDIATE":
                super().execute("BEGIN")
                return super().execute("SELECT pg_advisory_xact_lock(%s)", (COMMIT_LOCK,))
            if params is None:
                return super().execute(query, **kwargs)
            return super().execute(self._translate(query), params, **kwargs)

        def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
            super().executemany(self._translate(query), params_seq, **kwargs)


#: The key of the advisory lock the writer's connection holds while a
#: chatd serves a PostgreSQL database: held alone by a process that serves
#: it alone, shared by the processes of a deployment (L{chatd.cluster}).
ONE_PROCESS_LOCK: Final = 0x63686175

#: How a writer's connection claims a PostgreSQL database: alone, as one of
#: a deployment, or (L{None}) not at all.
Claim = Literal["alone", "shared"] | None


def _postgresql_opened(claim: Claim) -> Any:
    def configure(connection: Any) -> None:
        connection.cursor_factory = PostgreSQLCursor
        if claim is not None:
            take = "pg_try_advisory_lock" if claim == "alone" else "pg_try_advisory_lock_shared"
            locked = connection.execute(f"SELECT {take}(?)", (ONE_PROCESS_LOCK,)).fetchone()[0]
            if not locked:
                connection.close()
                raise RuntimeError(
                    "another chatd is running on this database"
                    + (" without --redis" if claim == "shared" else "")
                )

    return configure


def is_postgresql_txn(txn: Any) -> bool:
    """
    @return: whether the transaction C{txn} runs on PostgreSQL.
    """
    return bool(getattr(txn, "postgresql", False))


def make_pool(
    path: str,
    reactor: IReactorCore,
    connections: int,
    busy_timeout_ms: int = 5000,
    *,
    claim: Claim = None,
) -> ConnectionPool:
    """
    @param path: the SQLite file, or a PostgreSQL URL (L{is_postgresql}).
    @param claim: on PostgreSQL, have each connection hold
        L{ONE_PROCESS_LOCK} (the writer's pool): C{"alone"} failing while
        any other process holds it, C{"shared"} while one holds it alone.
    @return: a pool of at most C{connections} connections to it, each
        configured as the module docstring says.  A PostgreSQL connection
        that broke (a restart of the server) is made again at the next
        transaction.
    """
    if is_postgresql(path):
        if psycopg is None:
            raise RuntimeError("a PostgreSQL database needs the psycopg package")
        return ConnectionPool(
            "psycopg",
            path,
            autocommit=True,
            cp_min=1,
            cp_max=connections,
            cp_reconnect=True,
            cp_openfun=_postgresql_opened(claim),
            cp_reactor=reactor,
            cp_noisy=False,
        )
    return ConnectionPool(
        "sqlite3",
        path,
        check_same_thread=False,
        isolation_level=None,
        cp_min=1,
        cp_max=connections,
        cp_openfun=_connection_opened(busy_timeout_ms),
        cp_reactor=reactor,
        cp_noisy=False,
    )


#: What the database raises when it fails (rather than a statement being
#: wrong): the writer and L{DatabaseHealth} tell them apart by these.
OPERATIONAL_ERRORS: tuple[type[Exception], ...] = (sqlite3.OperationalError,)
DATABASE_ERRORS: tuple[type[Exception], ...] = (sqlite3.OperationalError, sqlite3.DatabaseError)
if psycopg is not None:
    OPERATIONAL_ERRORS += (psycopg.OperationalError,)
    DATABASE_ERRORS += (psycopg.OperationalError, psycopg.DatabaseError)


class DatabaseUnavailable(Exception):
    """
    The database refused a transaction (locked, read-only, full, I/O
    error): nothing of it was stored.  The cause is logged once by
    L{DatabaseHealth}; requests that hit it are answered C{internal_error}.
    """


class DatabaseHealth:
    """
    Logs database trouble once when it starts and once when it ends, rather
    than once per request it hits.
    """

    log = Logger()

    def __init__(self) -> None:
        self.failing = False

    def failed(self, failure: Failure) -> Failure:
        """
        Record a failed database operation.

        @return: a failure of L{DatabaseUnavailable} when C{failure} is a
            database error; C{failure} itself otherwise (a bug, logged by
            whoever handles it).
        """
        if not failure.check(*DATABASE_ERRORS):
            return failure
        if not self.failing:
            self.failing = True
            self.log.failure("The database failed; requests fail until it recovers", failure)
        return Failure(DatabaseUnavailable(str(failure.value)))

    def succeeded(self) -> None:
        """
        Record a successful database operation.
        """
        if self.failing:
            self.failing = False
            self.log.info("The database works again")
