"""
A real PostgreSQL server for the tests, on a loopback port, in a temporary
directory: started once per test process when a test first asks for a
database, stopped when the process exits.  Each test gets an empty database
(L{PostgreSQLServer.database}).

A machine without PostgreSQL (its C{initdb} and C{postgres}, from the
Debian package C{postgresql}) or without C{psycopg} skips the PostgreSQL
suites: L{SKIP} says why, in one line.  Running as root, the server runs as
the C{postgres} user (PostgreSQL refuses root), through C{runuser}.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase


def _binaries() -> str | None:
    """
    @return: the folder of PostgreSQL's server programs, if installed.
    """
    found = shutil.which("pg_config")
    if found:
        folder = subprocess.run(
            [found, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if os.path.exists(os.path.join(folder, "postgres")):
            return folder
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(folder, "postgres")):
            return folder
    return None


def _why_not() -> str | None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "PostgreSQL suites skipped: the psycopg package is not installed"
    if _binaries() is None:
        return (
            "PostgreSQL suites skipped: no PostgreSQL server here"
            " (apt-get install postgresql, as .ci/run does)"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "PostgreSQL suites skipped: running as root, and there is no postgres user"
    return None


#: Why the PostgreSQL suites are skipped on this machine, or L{None}.
SKIP: str | None = _why_not()


class PostgreSQLServer:
    """
    One PostgreSQL cluster in a temporary directory.
    """

    def __init__(self, durable: bool = False) -> None:
        """
        @param durable: keep C{fsync} and C{synchronous_commit} on, as a
            real deployment does (the benchmark's shape (k)); the tests
            check what chatd commits, not the disk, and go faster without.
        """
        bindir = _binaries()
        assert bindir is not None
        self._bindir = bindir
        self._directory = tempfile.mkdtemp(prefix="chatd-pg-")
        self._as: list[str] = []
        if os.geteuid() == 0:
            os.chown(self._directory, pwd.getpwnam("postgres").pw_uid, -1)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._data = os.path.join(self._directory, "data")
        self.port = _free_port()
        self._run(
            "initdb",
            "-D",
            self._data,
            "-U",
            "chatd",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        options = (
            f"-p {self.port} -k {self._directory} -c listen_addresses=127.0.0.1"
            " -c max_connections=200"
        )
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", self._data, "-o", options, "-l", self._log, "-w", "start")
        self._database: str | None = None
        self._create("CREATE EXTENSION IF NOT EXISTS pg_trgm", "template1")

    @property
    def _log(self) -> str:
        return os.path.join(self._directory, "log")

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [*self._as, os.path.join(self._bindir, program), *args],
            check=True,
            capture_output=True,
            cwd=self._directory,
        )

    def _create(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as connection:
            connection.execute(sql)

    def url(self, database: str) -> str:
        return f"postgresql://chatd@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """
        @return: the URL of an empty database: the same one each time, its
            tables emptied (a new database costs 0.2 s, emptying one a few ms),
            its schema kept once a store made it.
        """
        import psycopg

        if self._database is None:
            name = f"test_{os.getpid()}"
            self._create(f"CREATE DATABASE {name}")
            self._database = self.url(name)
            return self._database
        with psycopg.connect(self._database, autocommit=True) as connection:
            # What the last test left connected (a chatd it killed) goes,
            # with its locks.
            connection.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            tables = [
                row[0]
                for row in connection.execute(
                    "SELECT tablename FROM pg_tables"
                    " WHERE schemaname = 'public' AND tablename <> 'schema_version'"
                )
            ]
            sequences = [
                row[0]
                for row in connection.execute(
                    "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
                )
            ]
            # DELETE, not TRUNCATE (90 ms for these few rows), with the
            # foreign keys' triggers off.
            with connection.transaction():
                connection.execute("SET LOCAL session_replication_role = replica")
                for table in tables:
                    connection.execute(f"DELETE FROM {table}")
                for sequence in sequences:
                    connection.execute(f"ALTER SEQUENCE {sequence} RESTART")
        return self._database

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", self._data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self._directory, ignore_errors=True)


_server: PostgreSQLServer | None = None


def new_database(testcase: SynchronousTestCase) -> str:
    """
    @return: the URL of an empty database on the tests' PostgreSQL server
        (started on first use); C{testcase} is skipped where there is none.
    """
    global _server
    if SKIP is not None:
        raise SkipTest(SKIP)
    if _server is None:
        _server = PostgreSQLServer()
        atexit.register(_server.stop)
    return _server.database()


def on_postgresql(namespace: dict[str, Any], *cases: type[Any]) -> None:
    """
    Add to C{namespace} (a test module's globals) a copy of each test case
    class of C{cases} whose tests run on a new PostgreSQL database each: its
    C{new_database} method, which says where the test's data goes, returns
    one from L{new_database}.  The copy of C{FooTests} is
    C{FooTestsOnPostgreSQL}.  Where there is no PostgreSQL (L{SKIP}) there
    are no copies: C{make test} says so in one line.
    """
    if SKIP is not None:
        return
    for case in cases:

        def new(self: SynchronousTestCase) -> str:
            return new_database(self)

        name = case.__name__ + "OnPostgreSQL"
        namespace[name] = type(
            name,
            (case,),
            {
                "new_database": new,
                "__doc__": f"{case.__name__}, on PostgreSQL.",
                "__module__": namespace["__name__"],
                "__qualname__": name,
            },
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
