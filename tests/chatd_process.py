"""
The real C{twistd -n chatd} as a child of the running reactor: for the
process tests (L{tests.test_process}) and the soak run (L{bench.soak}).

It lives under C{tests/} because the tests may not import C{bench}, while
C{bench} runs from the checkout and may import C{tests}; it is a module of
its own, importing only Twisted, so that the soak run does not load the
test harness with it.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

#: How much of the server's output is kept: the last bytes.
OUTPUT_KEPT = 1 << 20

_READY = re.compile(rb"chatd ready on .*?port=(\d+)")


class ServerProcess(ProcessProtocol):
    """
    A C{twistd -n chatd} process: C{ready} fires with its port once it
    serves, C{ended} with its exit code (or the signal that killed it).

    @ivar output: what it wrote to stdout and stderr (the last
        L{OUTPUT_KEPT} bytes).
    @ivar pid: its process id, once started.
    """

    transport: Any

    def __init__(self) -> None:
        self.ready: Deferred[int] = Deferred()
        self.ended: Deferred[int] = Deferred()
        self.output = b""
        self.pid = 0
        #: A folder of its own, removed when it ends.
        self.folder: str | None = None

    def connectionMade(self) -> None:
        # The transport forgets the id when the process ends.
        self.pid = int(self.transport.pid)

    def outReceived(self, data: bytes) -> None:
        self.output = (self.output + data)[-OUTPUT_KEPT:]
        if not self.ready.called:
            match = _READY.search(self.output)
            if match:
                self.ready.callback(int(match.group(1)))

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        if not self.ready.called:
            self.ready.errback(RuntimeError(self.output.decode(errors="replace")))
        value = reason.value
        if isinstance(value, ProcessDone):
            self.ended.callback(0)
        elif isinstance(value, ProcessTerminated):
            self.ended.callback(value.signal if value.signal is not None else value.exitCode)


def spawn_chatd(db: str, *options: str) -> ServerProcess:
    """
    Start C{twistd -n chatd} on the database C{db} and a free loopback
    port, with C{options} after those, from this Python (so the installed
    chatd plugin).  The operator's control socket is beside C{db}, unless
    C{options} say where or that path is too long for a UNIX socket (107
    bytes, which trial's nested temporary folders may pass): then it goes
    in a new folder of the system's temporary directory.

    @return: the process protocol; C{ready} tells the port.
    """
    from twisted.internet import reactor

    process = ServerProcess()
    argv = [
        sys.executable,
        "-c",
        "from twisted.scripts.twistd import run; run()",
        "--nodaemon",
        "--pidfile=",
        "chatd",
        "--port",
        "tcp:0:interface=127.0.0.1",
        "--db",
        db,
        *options,
    ]
    if "--admin-socket" not in options and len(os.fsencode(os.path.abspath(db))) > 100:
        process.folder = tempfile.mkdtemp(prefix="chatd-")
        argv += ["--admin-socket", os.path.join(process.folder, "admin")]
    reactor.spawnProcess(process, sys.executable, argv, env=dict(os.environ))
    return process
