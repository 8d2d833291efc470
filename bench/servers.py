"""
Starting and stopping the processes of the benchmark: chatd, the baseline,
and the pinning every child of the benchmark gets.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

#: The checkout: C{bench/}'s parent.
ROOT = Path(__file__).resolve().parent.parent
#: The venv's scripts (C{twistd}, C{py-spy}).
BIN = Path(sys.executable).parent


def child_setup(cpu: int | None) -> Callable[[], None]:
    """
    @return: a C{preexec_fn} for a child process: it may open as many files
        as the hard limit allows (2000 connections need 2000 descriptors),
        and runs on C{cpu} only, unless that is L{None}.
    """

    def prepare() -> None:
        # Runs in the child between fork and exec.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return prepare


def free_port(first: int) -> int:
    """
    @return: the first port from C{first} on that nothing listens on.
    """
    port = first
    while True:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                port += 1
                continue
        return port


class Server:
    """
    A server process under test: chatd or the baseline.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        workdir: Path,
        cpu: int | None,
        ready_line: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """
        @param cpu: the CPU to run on from the start, or L{None} for all.
        @param ready_line: a line the server logs once it serves; without
            one, it is ready once its port accepts connections.
        """
        self.name = name
        self.port = port
        self.log_path = workdir / f"{name}-{port}.log"
        self._ready_line = ready_line
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen(
                argv,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=child_setup(cpu),
            )
        self.pid = self.process.pid

    def wait_ready(self, timeout: float = 60.0) -> None:
        """
        Wait until the server serves.

        @raise RuntimeError: if it exits or is not ready in C{timeout} s.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            if self._ready_line is not None:
                if self._ready_line in self.log_path.read_text(errors="replace"):
                    return
            else:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready after {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        """
        @return: the last lines of the server's output.
        """
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """
        Stop the server: SIGTERM, then SIGKILL if it lingers (chatd finishes
        the password hashes queued by a login storm before it exits).
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_chatd(
    workdir: Path,
    port: int,
    db: Path | str,
    cpu: int | None,
    cheap: bool = False,
    extra: Sequence[str] = (),
) -> Server:
    """
    Start chatd on C{db} (a SQLite file or a PostgreSQL URL) with flood
    control out of the way (messages and file chunks: C{--rate},
    C{--burst}, C{--transfer-rate}), and wait until it serves: C{twistd -n --pidfile= chatd ...} from the venv; with
    C{cheap}, C{--insecure-fast-hashes} too (the accounts must have been
    hashed with L{chatd.passwords.cheap_hasher}, or each login rehashes);
    then C{extra}, more options of chatd's.
    """
    argv = [
        str(BIN / "twistd"),
        "-n",
        "--pidfile=",
        "chatd",
        "--port",
        # The backlog twistd chatd gives a bare port number (chatd.tap).
        f"tcp:{port}:interface=127.0.0.1:backlog=1024",
        "--db",
        str(db),
        "--rate",
        "1000000",
        "--burst",
        "1000000",
        # File chunks count against 32 MiB/s per connection by default.
        "--transfer-rate",
        "1e12",
    ]
    if cheap:
        argv.append("--insecure-fast-hashes")
    argv += extra
    server = Server("chatd", argv, port, workdir, cpu, ready_line="chatd ready on")
    server.wait_ready()
    return server


def start_baseline(workdir: Path, port: int, cpu: int | None) -> Server:
    """
    Start the baseline (L{bench.baseline}) and wait until it serves.
    """
    argv = [sys.executable, "-m", "bench.baseline", "--port", f"tcp:{port}:interface=127.0.0.1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = Server("baseline", argv, port, workdir, cpu, env=env)
    server.wait_ready()
    return server
