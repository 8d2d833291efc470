"""
The database connections of chatd, and how their trouble is told.

Both the store (reads) and the group commit (writes) reach SQLite through
L{twisted.enterprise.adbapi} pools made by L{make_pool}.  When the database
itself fails (locked, read-only, disk full, I/O error), the request that hit
it fails with L{DatabaseUnavailable}: the protocol answers it
C{internal_error} without logging each one, since L{DatabaseHealth} logs the
trouble once when it starts and once when it ends.
"""

from __future__ import annotations

import sqlite3
from typing import Any

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


def make_pool(
    path: str, reactor: IReactorCore, connections: int, busy_timeout_ms: int = 5000
) -> ConnectionPool:
    """
    @return: a pool of at most C{connections} connections to the SQLite file
        at C{path}, each configured as the module docstring says.
    """
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
        if not failure.check(sqlite3.OperationalError, sqlite3.DatabaseError):
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
