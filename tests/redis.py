"""
A real Redis server for the tests, on a loopback port, in a temporary
directory: started once per test process when a test first asks for it,
stopped when the process exits.  A test may stop it and start it again
(L{RedisServer.stop}, L{RedisServer.start}) to see what an outage does.

A machine without C{redis-server} (Debian package C{redis-server}) skips
the Redis suites: L{SKIP} says why, in one line.
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import tempfile

from twisted.trial.unittest import SkipTest, SynchronousTestCase


def _why_not() -> str | None:
    if shutil.which("redis-server") is None:
        return (
            "Redis suites skipped: no redis-server here"
            " (apt-get install redis-server, as .ci/run does)"
        )
    return None


#: Why the Redis suites are skipped on this machine, or L{None}.
SKIP: str | None = _why_not()


class RedisServer:
    """
    One redis-server in a temporary directory, without persistence.
    """

    def __init__(self) -> None:
        self._directory = tempfile.mkdtemp(prefix="chatd-redis-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self._process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """
        Start the server, and return once it accepts connections.
        """
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._directory,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        # Its log says when it accepts connections: read up to there (it
        # logs little else at its default level).
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if b"Ready to accept connections" in line:
                return
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """
        Kill the server, as a crash would.
        """
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self._directory, ignore_errors=True)


_server: RedisServer | None = None


def redis_server(testcase: SynchronousTestCase) -> RedisServer:
    """
    @return: the tests' Redis server (started on first use), running;
        C{testcase} is skipped where there is none.
    """
    global _server
    if SKIP is not None:
        raise SkipTest(SKIP)
    if _server is None:
        _server = RedisServer()
        atexit.register(_server.remove)
    elif _server._process is None:
        _server.start()
    return _server
