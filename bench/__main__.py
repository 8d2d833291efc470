"""
The chatd benchmark: C{make bench}, or C{.venv/bin/python -m bench}.

Starts, one after the other on loopback, chatd (installed in the venv, on a
fresh temporary database) and the bare Twisted baseline (L{bench.baseline}),
drives the same load at both with L{bench.loader}, and prints one table:
for each shape, chatd, the baseline, their ratio, and whether the target
holds.  See C{bench/README.md} for the shapes and how to read the table.

On a machine with two CPUs or more, every server runs on CPU 0 and every
loader on CPU 1 (C{sched_setaffinity}, as C{taskset -c} does), so that
neither takes time from the other; chatd's set-up logins (argon2id, one
after the other) run on both CPUs and the server is pinned once they are
done.
"""

from __future__ import annotations

import argparse
import datetime
import filecmp
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.build_history_db import (
    PASSWORD,
    SEARCHES,
    add_users,
    build_history_db,
    build_login_db,
    build_search_db,
    seed_users,
)
from bench.proc import cpu_model
from bench.servers import ROOT, Server, child_setup, free_port, start_baseline, start_chatd

Result = dict[str, Any]

#: chatload's account names and password (its defaults).
CHATLOAD_PREFIX = "ld"
CHATLOAD_PASSWORD = "loadpass1"
CHATLOAD_CLIENTS = 50

#: The runs of shape (k), in the order of its table rows.
KINDS_OF_K = ("two_postgresql_redis", "one_postgresql", "one_sqlite")

#: The targets the lead chases: (shape, measure) -> its wording in the table.
TARGETS = {
    ("a", "deliveries"): ">= 0.8x baseline",
    ("b", "deliveries"): ">= 0.8x baseline",
    ("b", "latency"): "p99 <= 1.2x baseline",
    ("c", "latency"): "p99 <= 1.5x baseline",
    ("d", "memory"): "<= 4 KiB",
    ("e", "latency"): "p99 <= 5 ms",
    ("f", "latency"): "during <= 2x before",
    ("g", "latency"): "p99 <= 100 ms",
    ("h", "latency"): "p99 <= 50 ms",
    ("h", "short"): "p99 <= 200 ms",
    ("i", "resume"): "<= 5 s",
    ("i", "latency"): "during <= 2x before",
    ("j", "upload"): ">= 50 MiB/s",
    ("j", "download"): ">= 50 MiB/s",
    ("j", "latency"): "p99 during <= 2x alone",
}
#: The searches of shape (h) whose terms are all shorter than three
#: characters: they cannot use the trigram index, and have a target of
#: their own.
SHORT_SEARCHES = {label for label, query in SEARCHES.items() if max(map(len, query.split())) < 3}


def log(message: str) -> None:
    """
    Print a progress line on stderr.
    """
    print(f"bench: {message}", file=sys.stderr, flush=True)


class Bench:
    """
    One run of the benchmark: its settings, temporary files and results.
    """

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        available = sorted(os.sched_getaffinity(0))
        if args.no_pin or len(available) < 2:
            self.server_cpu: int | None = None
            self.loader_cpu: int | None = None
        else:
            self.server_cpu, self.loader_cpu = available[0], available[1]
        self._port = args.port
        self.results: dict[str, Result] = {"chatd": {}, "baseline": {}, "chatload": {}}

    def next_port(self) -> int:
        """
        @return: a free port from C{--port} on.
        """
        port = free_port(self._port)
        self._port = port + 1
        return port

    # Servers.

    def chatd(self, db: Path, cpu: int | None, cheap: bool = False) -> Server:
        """
        Start chatd on C{db}; with C{cheap}, with C{--insecure-fast-hashes}.
        """
        return start_chatd(self.workdir, self.next_port(), db, cpu, cheap)

    def baseline(self, cpu: int | None) -> Server:
        """
        Start the baseline.
        """
        return start_baseline(self.workdir, self.next_port(), cpu)

    # Loaders.

    def start_loader(
        self, server: Server, command: Sequence[str], stdin: int = subprocess.DEVNULL
    ) -> subprocess.Popen[bytes]:
        """
        Start L{bench.loader} against C{server}, pinned to the loader's CPU,
        its results on a pipe.
        """
        argv = [
            sys.executable,
            "-m",
            "bench.loader",
            "--port",
            str(server.port),
            "--server-pid",
            str(server.pid),
            "--warmup",
            str(self.args.warmup),
            "--duration",
            str(self.args.duration),
            *command,
        ]
        return subprocess.Popen(
            argv,
            cwd=ROOT,
            stdin=stdin,
            stdout=subprocess.PIPE,
            preexec_fn=child_setup(self.loader_cpu),
        )

    def loader(self, server: Server, command: Sequence[str], timeout: float = 240) -> list[Result]:
        """
        Run L{bench.loader} against C{server}, pinned to the loader's CPU.

        @return: the JSON objects it printed.
        """
        process = self.start_loader(server, command)
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise RuntimeError(f"the loader took more than {timeout} s") from None
        if process.returncode != 0:
            raise RuntimeError(f"the loader failed ({process.returncode})")
        return [json.loads(line) for line in output.decode().splitlines() if line.strip()]

    def chatload(self, server: Server, window: int) -> Result:
        """
        Run chatload's shape (a) (or (b), with C{window} 8) against C{server}.

        @return: its JSON result.
        """
        argv = [
            self.args.chatload,
            "--port",
            str(server.port),
            "--clients",
            str(CHATLOAD_CLIENTS),
            "--senders",
            "5",
            "--window",
            str(window),
            "--warmup",
            str(self.args.warmup),
            "--duration",
            str(self.args.duration),
            "--server-pid",
            str(server.pid),
        ]
        completed = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            timeout=240,
            check=True,
            preexec_fn=child_setup(self.loader_cpu),
        )
        result: Result = json.loads(completed.stdout.decode().strip().splitlines()[-1])
        return result

    # Steps.

    def session(self, name: str, start: Callable[[], Server]) -> None:
        """
        Shapes (a), (b), (c) and (f) on one server.
        """
        log(f"{name}: shapes (a), (b), (c), (f)")
        server = start()
        try:
            command = ["session", "--storm-cap", str(self.args.storm_cap)]
            if self.server_cpu is not None:
                command += ["--pin-server", str(self.server_cpu)]
            for result in self.loader(server, command):
                if "event" in result:
                    self.results[name]["setup_seconds"] = result["seconds"]
                elif result["window"] == "storm":
                    self.results[name]["f"] = result
                else:
                    self.results[name][result["shape"]] = result
        finally:
            server.stop()

    def run(self) -> None:
        """
        Run every step the command line asked for.
        """
        from argon2 import PasswordHasher

        from chatd.passwords import cheap_hasher

        started = time.monotonic()
        real_hash = PasswordHasher().hash(PASSWORD)
        shapes = set(self.args.shapes)
        if shapes & set("abcf"):
            db = self.workdir / "load.sqlite3"
            names = [f"bu{i}" for i in range(200)] + [f"bs{i}" for i in range(200)]
            seed_users(str(db), names, real_hash)
            # Set-up logins run on every CPU; the loader pins the server after.
            self.session("chatd", lambda: self.chatd(db, None))
            self.session("baseline", lambda: self.baseline(None))
        if "d" in shapes:
            self.idle(cheap_hasher().hash(PASSWORD))
        if "e" in shapes:
            self.history(real_hash)
        if "g" in shapes:
            self.logins(cheap_hasher().hash(PASSWORD))
        if "h" in shapes:
            self.searches(cheap_hasher().hash(PASSWORD))
        if "i" in shapes:
            self.resumes(cheap_hasher().hash(PASSWORD))
        if "j" in shapes:
            self.files(cheap_hasher().hash(PASSWORD))
        if "k" in shapes:
            self.deployment()
        if self.args.chatload:
            self.cross_check()
        self.results["seconds"] = {"total": round(time.monotonic() - started, 1)}

    def idle(self, cheap_hash: str) -> None:
        """
        Shape (d) on a fresh chatd (with cheap password hashes) and a fresh
        baseline.
        """
        connections = str(self.args.idle_connections)
        db = self.workdir / "idle.sqlite3"
        names = [f"bi{i}" for i in range(self.args.idle_connections)] + ["biw"]
        seed_users(str(db), names, cheap_hash)
        for name in ("chatd", "baseline"):
            log(f"{name}: shape (d)")
            if name == "chatd":
                server = self.chatd(db, self.server_cpu, cheap=True)
            else:
                server = self.baseline(self.server_cpu)
            try:
                command = ["--login-concurrency", "64", "idle", "--connections", connections]
                (self.results[name]["d"],) = self.loader(server, command)
            finally:
                server.stop()

    def history(self, password_hash: str) -> None:
        """
        Shape (e) on chatd started on a freshly built history database.
        """
        db = self.workdir / "history.sqlite3"
        log(f"building a history database of {self.args.history_messages} messages")
        built = time.monotonic()
        info = build_history_db(
            str(db), self.args.history_messages, password_hash, plain=self.args.plain_history
        )
        self.results["chatd"]["e_build_seconds"] = round(time.monotonic() - built, 1)
        # Write the new file's dirty pages back now, not during the measure.
        os.sync()
        log("chatd: shape (e)")
        server = self.chatd(db, self.server_cpu)
        try:
            command = ["history", "--user", info.username, "--room-id", str(info.room_id)]
            (result,) = self.loader(server, command)
            result["database_messages"] = info.messages
            result["room_messages"] = info.room_messages
            self.results["chatd"]["e"] = result
        finally:
            server.stop()

    def logins(self, cheap_hash: str) -> None:
        """
        Shape (g) on chatd (with cheap password hashes, so that the hash
        does not hide the rest of a login) started on a freshly built
        database where one account has 500 friends and 200 rooms.
        """
        db = self.workdir / "logins.sqlite3"
        log("building the login database")
        info = build_login_db(str(db), cheap_hash)
        os.sync()
        log("chatd: shape (g)")
        server = self.chatd(db, self.server_cpu, cheap=True)
        try:
            (result,) = self.loader(server, ["login", "--user", info.username])
            result["database_messages"] = info.messages
            self.results["chatd"]["g"] = result
        finally:
            server.stop()

    def searches(self, cheap_hash: str) -> None:
        """
        Shape (h) on chatd started on a freshly built database of a million
        messages over 200 rooms and 2000 users, each user in 20 rooms.
        """
        db = self.workdir / "search.sqlite3"
        log(f"building a search database of {self.args.history_messages} messages")
        built = time.monotonic()
        info = build_search_db(str(db), self.args.history_messages, cheap_hash)
        self.results["chatd"]["h_build_seconds"] = round(time.monotonic() - built, 1)
        os.sync()
        log("chatd: shape (h)")
        server = self.chatd(db, self.server_cpu, cheap=True)
        try:
            (result,) = self.loader(server, ["search", "--users", ",".join(info.usernames)])
            result["database_messages"] = info.messages
            self.results["chatd"]["h"] = result
        finally:
            server.stop()

    def resumes(self, cheap_hash: str) -> None:
        """
        Shape (i): C{--resume-users} accounts log in to chatd; chatd is
        stopped (SIGTERM) and started again on the same database and port;
        every account resumes at once with its session token.
        """
        db = self.workdir / "resume.sqlite3"
        users = self.args.resume_users
        seed_users(str(db), [f"rs{i}" for i in range(users)], cheap_hash)
        server = self.chatd(db, self.server_cpu, cheap=True)
        log(f"chatd: shape (i), {users} users")
        # No CPU figures: --server-pid names the first server, which stops.
        command = ["--login-concurrency", "50", "resume", "--users", str(users)]
        loader = self.start_loader(server, command, stdin=subprocess.PIPE)
        try:
            assert loader.stdin is not None and loader.stdout is not None
            if json.loads(loader.stdout.readline() or "{}").get("phase") != "restart":
                raise RuntimeError("the loader of shape (i) failed before the restart")
            stopped = time.monotonic()
            server.stop()
            server = start_chatd(self.workdir, server.port, db, self.server_cpu, cheap=True)
            restart = time.monotonic() - stopped
            loader.stdin.write(b"go\n")
            loader.stdin.flush()
            output, _ = loader.communicate(timeout=240)
            if loader.returncode != 0:
                raise RuntimeError(f"the loader of shape (i) failed ({loader.returncode})")
            (result,) = [json.loads(line) for line in output.decode().splitlines() if line.strip()]
            result["restart_seconds"] = round(restart, 2)
            self.results["chatd"]["i"] = result
        finally:
            if loader.poll() is None:
                loader.kill()
                loader.wait()
            server.stop()

    def files(self, cheap_hash: str) -> None:
        """
        Shape (j) on a fresh chatd (cheap password hashes, for quick set-up
        logins): files of 20 MiB up and down between two friends, then
        shape (c)'s load alone and while transfers loop.
        """
        db = self.workdir / "files.sqlite3"
        seed_users(str(db), [f"bu{i}" for i in range(200)] + ["bf0", "bf1"], cheap_hash)
        log("chatd: shape (j)")
        server = self.chatd(db, self.server_cpu, cheap=True)
        try:
            command = ["files"]
            if self.server_cpu is not None:
                command += ["--pin-server", str(self.server_cpu)]
            (self.results["chatd"]["j"],) = self.loader(server, command)
        finally:
            server.stop()

    def deployment(self) -> None:
        """
        Shape (k): shapes (a) and (b) (50 members of one room, 5 senders)
        with the members spread over two chatd processes of one deployment
        on PostgreSQL and Redis; then on one process on that PostgreSQL,
        and on one on SQLite.  PostgreSQL keeps C{fsync} on, as SQLite
        keeps C{synchronous=FULL}.  Nothing is pinned: two processes,
        PostgreSQL, Redis and the loader share the machine's CPUs.
        """
        # The tests' servers, in a temporary directory (tests/postgres.py,
        # tests/redis.py); (k) is skipped where they are missing.
        from tests import postgres, redis

        why = postgres.SKIP or redis.SKIP
        if why:
            log(f"shape (k) skipped: {why}")
            return
        database = postgres.PostgreSQLServer(durable=True)
        redis_server = redis.RedisServer()
        command = ["session", "--shapes", "ab", "--members-c", "50", "--storm", "0"]
        runs: dict[str, Result] = {}
        try:
            for name in ("two_postgresql_redis", "one_postgresql", "one_sqlite"):
                log(f"chatd: shape (k), {name.replace('_', ' ')}")
                servers = []
                if name == "one_sqlite":
                    db = str(self.workdir / f"{name}.sqlite3")
                    servers.append(start_chatd(self.workdir, self.next_port(), db, None, True))
                else:
                    db = database.database()
                    count = 2 if name == "two_postgresql_redis" else 1
                    for n in range(count):
                        folder = self.workdir / f"{name}-{n}"
                        extra = ["--admin-socket", f"{folder}.admin", "--files", f"{folder}.files"]
                        if count > 1:
                            extra += ["--redis", redis_server.url]
                        servers.append(
                            start_chatd(self.workdir, self.next_port(), db, None, True, extra)
                        )
                try:
                    also = [
                        arg for server in servers[1:] for arg in ("--also-port", str(server.port))
                    ]
                    for result in self.loader(servers[0], [*also, *command]):
                        if result.get("shape") in ("a", "b"):
                            runs[f"{name}_{result['shape']}"] = result
                finally:
                    for server in servers:
                        server.stop()
        finally:
            redis_server.remove()
            database.stop()
        self.results["chatd"]["k"] = runs

    def cross_check(self, rounds: int = 2) -> None:
        """
        Shapes (a) and (b) with both loaders taking turns on one server (a fresh
        chatd with cheap password hashes, so that each loader's 50 logins
        are quick; then the baseline): this loader, chatload, C{rounds}
        times.
        """
        from chatd.passwords import cheap_hasher

        db = self.workdir / "chatload.sqlite3"
        names = [f"{CHATLOAD_PREFIX}{i}" for i in range(CHATLOAD_CLIENTS)]
        cheap = cheap_hasher()
        seed_users(str(db), names, cheap.hash(CHATLOAD_PASSWORD))
        add_users(str(db), [f"bu{i}" for i in range(CHATLOAD_CLIENTS)], cheap.hash(PASSWORD))
        for name in ("chatd", "baseline"):
            if name == "chatd":
                server = self.chatd(db, self.server_cpu, cheap=True)
            else:
                server = self.baseline(self.server_cpu)
            runs: list[Result] = []
            try:
                for turn in range(rounds):
                    log(f"{name}: shapes (a), (b), this loader then chatload, round {turn + 1}")
                    command = ["session", "--shapes", "ab", "--members-c", "50", "--storm", "0"]
                    for result in self.loader(server, command):
                        if result.get("shape") in ("a", "b"):
                            runs.append({"loader": "bench", **result})
                    for shape, window in (("a", 128), ("b", 8)):
                        result = self.chatload(server, window)
                        runs.append({"loader": "chatload", "shape": shape, **result})
            finally:
                server.stop()
            self.results["chatload"][name] = runs


# The table.


def _ms(latency: Result | None, keys: Sequence[str] = ("p50", "p90", "p99")) -> str:
    if not latency:
        return "-"
    return "/".join(f"{latency[key]:.1f}" for key in keys)


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def _cpu(cpu: Result) -> str:
    cpus = sorted(key for key in cpu if key.startswith("cpu"))
    each = " ".join(f"{key} {cpu[key]:.0f}" for key in cpus if cpu[key] is not None)
    return f"{cpu['server']} / {cpu['loader']} / {cpu['machine']}" + (f" ({each})" if each else "")


def _holds(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def _p99(result: Result | None, key: str = "latency_ms") -> float | None:
    if not result or not result.get(key):
        return None
    return float(result[key]["p99"])


def table(results: dict[str, Result], header: str) -> str:
    """
    @return: the results as the table C{make bench} prints.
    """
    chatd, base = results["chatd"], results["baseline"]
    rows: list[tuple[str, str, str, str, str, str, str]] = []

    def add(
        shape: str,
        what: str,
        ours: str,
        theirs: str,
        ratio: str,
        ok: bool | None = None,
        kind: str | None = None,
    ) -> None:
        if kind is None:
            kind = (
                "deliveries" if "deliveries" in what else "memory" if "RSS" in what else "latency"
            )
        target = TARGETS[shape[1], kind] if ok is not None else ""
        rows.append((shape, what, ours, theirs, ratio, target, _holds(ok)))

    a, a0 = chatd.get("a"), base.get("a")
    if a and a0:
        ratio = a["deliveries_per_s"] / a0["deliveries_per_s"]
        add(
            "(a)",
            "deliveries/s",
            f"{a['deliveries_per_s']:.0f}",
            f"{a0['deliveries_per_s']:.0f}",
            f"{ratio:.3f}x",
            ratio >= 0.8,
        )
        add(
            "(a)",
            "latency p50/p90/p99 ms",
            _ms(a["latency_ms"]),
            _ms(a0["latency_ms"]),
            _ratio(_p99(a), _p99(a0)),
        )
    b, b0 = chatd.get("b"), base.get("b")
    if b and b0:
        p99, p99_0 = _p99(b), _p99(b0)
        add(
            "(b)",
            "latency p50/p90/p99 ms",
            _ms(b["latency_ms"]),
            _ms(b0["latency_ms"]),
            _ratio(p99, p99_0),
            p99 is not None and p99_0 is not None and p99 <= 1.2 * p99_0,
        )
        add(
            "(b)",
            "deliveries/s",
            f"{b['deliveries_per_s']:.0f}",
            f"{b0['deliveries_per_s']:.0f}",
            _ratio(b["deliveries_per_s"], b0["deliveries_per_s"]),
            b["deliveries_per_s"] >= 0.8 * b0["deliveries_per_s"],
        )
    # chatload, the judge of (a) and (b) (this loader cannot keep up with
    # the baseline): the mean of its turns on each server.
    cross = results.get("chatload") or {}
    for shape in "ab":
        ours_runs, theirs_runs = (
            [
                run
                for run in cross.get(name, [])
                if (run["loader"], run["shape"]) == ("chatload", shape)
            ]
            for name in ("chatd", "baseline")
        )
        if not ours_runs or not theirs_runs:
            continue
        ours = sum(run["deliveries_per_s"] for run in ours_runs) / len(ours_runs)
        theirs = sum(run["deliveries_per_s"] for run in theirs_runs) / len(theirs_runs)
        add(
            f"({shape})",
            "deliveries/s, chatload (mean)",
            f"{ours:.0f}",
            f"{theirs:.0f}",
            f"{ours / theirs:.3f}x",
            ours >= 0.8 * theirs,
        )
        if shape == "b":
            p99 = max(float(run["latency_ms"]["p99"]) for run in ours_runs)
            p99_0 = max(float(run["latency_ms"]["p99"]) for run in theirs_runs)
            add(
                "(b)",
                "latency p99 ms, chatload (worst)",
                f"{p99:.1f}",
                f"{p99_0:.1f}",
                f"{p99 / p99_0:.2f}x",
                p99 <= 1.2 * p99_0,
            )
    c, c0 = chatd.get("c"), base.get("c")
    if c and c0:
        p99, p99_0 = _p99(c), _p99(c0)
        add(
            "(c)",
            "latency p50/p90/p99 ms",
            _ms(c["latency_ms"]),
            _ms(c0["latency_ms"]),
            _ratio(p99, p99_0),
            p99 is not None and p99_0 is not None and p99 <= 1.5 * p99_0,
        )
    d, d0 = chatd.get("d"), base.get("d")
    if d and d0:
        per, per0 = d["kib_per_connection"], d0["kib_per_connection"]
        add(
            "(d)",
            f"RSS KiB per idle connection ({d['connections']})",
            f"{per:.2f}",
            f"{per0:.2f}",
            _ratio(per, per0),
            per is not None and per <= 4.0,
        )
    e = chatd.get("e")
    if e:
        p99 = _p99(e)
        add(
            "(e)",
            "history page of 50: p50/p99 ms",
            _ms(e["latency_ms"], ("p50", "p99")),
            "n/a",
            "n/a",
            p99 is not None and p99 <= 5.0,
        )
    f, f0 = chatd.get("f"), base.get("f")
    if f and f0 and c and c0:

        def storm(before: Result, during: Result) -> tuple[str, float | None]:
            p99_before, p99_during = _p99(before), _p99(during)
            ratio = p99_during / p99_before if p99_before and p99_during else None
            text = f"{p99_before:.1f} -> {p99_during:.1f}" if ratio is not None else "-"
            return (f"{text} ({ratio:.2f}x)" if ratio is not None else text), ratio

        ours, ratio = storm(c, f)
        theirs, _ = storm(c0, f0)
        add(
            "(f)",
            "p99 ms before -> during the storm",
            ours,
            theirs,
            "",
            ratio is not None and ratio <= 2.0,
        )
    g = chatd.get("g")
    if g:
        p99 = _p99(g)
        add(
            "(g)",
            f"login_info ({g['friends']} friends, {g['rooms']} rooms): p50/p99 ms",
            _ms(g["latency_ms"], ("p50", "p99")),
            "n/a",
            "n/a",
            p99 is not None and p99 <= 100.0,
        )
    h = chatd.get("h")
    if h:
        for label, run in h["searches"].items():
            p99 = _p99(run)
            short = label in SHORT_SEARCHES
            add(
                "(h)",
                f"search {run['query']!r} ({label}): p50/p99 ms",
                _ms(run["latency_ms"], ("p50", "p99")),
                "n/a",
                "n/a",
                p99 is not None and p99 <= (200.0 if short else 50.0),
                kind="short" if short else "latency",
            )
    i = chatd.get("i")
    if i:
        add(
            "(i)",
            f"{i['users']} resumes after a restart: last login_info s",
            f"{i['resume_seconds']:.2f}",
            "n/a",
            "n/a",
            i["failed"] == 0 and i["resume_seconds"] <= 5.0,
            kind="resume",
        )
        p99_before = _p99(i, "before_latency_ms")
        p99_during = _p99(i, "during_latency_ms")
        add(
            "(i)",
            "p99 ms before -> during the resumes",
            f"{p99_before} -> {p99_during}",
            "n/a",
            "n/a",
            p99_before is not None and p99_during is not None and p99_during <= 2 * p99_before,
            kind="latency",
        )
    j = chatd.get("j")
    if j:
        mib = j["size"] / (1024 * 1024)
        for way in ("upload", "download"):
            speed = j[f"{way}_mib_s"]
            add(
                "(j)",
                f"{way} of {mib:g} MiB, window {j['window_size']}: MiB/s (median)",
                f"{speed:.1f}",
                "n/a",
                "n/a",
                j["intact"] and speed >= 50.0,
                kind=way,
            )
        p99_alone = _p99(j["alone"])
        p99_during = _p99(j["during"])
        ratio = p99_during / p99_alone if p99_alone and p99_during else None
        add(
            "(j)",
            "(c) p99 ms alone -> during transfers",
            f"{p99_alone:.1f} -> {p99_during:.1f} ({ratio:.2f}x)" if ratio is not None else "-",
            "n/a",
            "n/a",
            ratio is not None and ratio <= 2.0,
            kind="latency",
        )
    k = chatd.get("k")
    if k:
        for shape, window in (("a", 128), ("b", 8)):
            two, pg, lite = (k.get(f"{n}_{shape}") for n in KINDS_OF_K)
            if not (two and pg and lite):
                continue
            add(
                "(k)",
                f"2 processes, window {window}: deliveries/s (vs 1 on PostgreSQL | SQLite)",
                f"{two['deliveries_per_s']:.0f}",
                f"{pg['deliveries_per_s']:.0f} | {lite['deliveries_per_s']:.0f}",
                _ratio(two["deliveries_per_s"], pg["deliveries_per_s"]),
            )
            add(
                "(k)",
                f"2 processes, window {window}: p99 ms (vs 1 on PostgreSQL | SQLite)",
                f"{_p99(two):.1f}",
                f"{_p99(pg):.1f} | {_p99(lite):.1f}",
                _ratio(_p99(two), _p99(pg)),
            )
    headings = ("shape", "measure", "chatd", "baseline", "chatd/base", "target", "holds")
    widths = [max(len(row[i]) for row in [headings, *rows]) for i in range(len(headings))]
    lines = [header, ""]
    for row in [headings, *rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    lines += ["", *notes(results)]
    return "\n".join(line.rstrip() for line in lines)


def notes(results: dict[str, Result]) -> list[str]:
    """
    @return: the lines under the table: CPU of every run, what each run
        counted beyond the table, and the chatload cross-check.
    """
    chatd, base = results["chatd"], results["baseline"]
    lines = [
        "CPU % in each measured window: server, loader, whole machine (100 = one CPU),"
        " and how busy each CPU was (by anything: other processes too):"
    ]
    for shape in "abcfegh":
        cells = []
        for name, runs in (("chatd", chatd), ("baseline", base)):
            cpu = runs.get(shape, {}).get("cpu")
            if cpu:
                cells.append(f"{name} {_cpu(cpu)}")
        if cells:
            lines.append(f"  ({shape})  " + "    ".join(cells))
    for shape in "ab":
        loader = (base.get(shape, {}).get("cpu") or {}).get("loader")
        if loader is not None and loader >= 95 and not results.get("chatload"):
            lines.append(
                f"  ({shape}): this loader used {loader:.0f} % of its CPU on the baseline: it,"
                " not the baseline, set the pace, and the ratio flatters chatd;"
                " chatload is the judge (make bench CHATLOAD=PATH)"
            )
    for name, runs in (("chatd", chatd), ("baseline", base)):
        faults = []
        for shape in "abcf":
            run = runs.get(shape)
            if run:
                bad = {k: run[k] for k in ("missing", "unanswered", "errors", "kicks", "closed")}
                if any(bad.values()):
                    faults.append(f"({shape}) {bad}")
        if faults:
            lines.append(f"{name} faults: " + "; ".join(faults))
    for name, runs in (("chatd", chatd), ("baseline", base)):
        f = runs.get("f")
        if f:
            storm = f["storm"]
            lines.append(
                f"(f) {name}: {storm['logged_in']}/{storm['logins']} logins answered in"
                f" {storm['seconds']:.2f} s{' (the cap: the rest were still queued)' if storm['capped'] else ''};"
                f" login p50/p99 ms {_ms(storm['login_ms'], ('p50', 'p99'))};"
                f" window {f['seconds']:.2f} s, {f['deliveries']} deliveries; failed {storm['failed']}"
            )
    e = chatd.get("e")
    if e:
        lines.append(
            f"(e) {e['pages']} pages ({e['pages_per_s']}/s) from room of {e['room_messages']}"
            f" messages in a database of {e['database_messages']}; short pages {e['short_pages']}"
        )
    h = chatd.get("h")
    if h:
        counts = ", ".join(
            f"{run['query']!r} {run['count']} times, {run['results']} found"
            for run in h["searches"].values()
        )
        lines.append(
            f"(h) by {h['users']} users, one search at a time, in a database of"
            f" {h['database_messages']} messages built in {chatd.get('h_build_seconds')} s: {counts}"
        )
    i = chatd.get("i")
    if i:
        lines.append(
            f"(i) {i['resumed']}/{i['users']} resumed ({i['failed']} failed) after a restart of"
            f" {i['restart_seconds']} s; each resume p50/p99 ms"
            f" {_ms(i['resume_ms'], ('p50', 'p99'))}"
        )
    j = chatd.get("j")
    if j:
        quiet = ", ".join(
            f"{one['upload_mib_s']}/{one['download_mib_s']}" for one in j["transfers"]
        )
        looped = ", ".join(
            f"{one['upload_mib_s']}/{one['download_mib_s']}" for one in j["during"]["transfers"]
        )
        alone, during = j["alone"], j["during"]
        lines.append(
            f"(j) MiB/s up/down, alone: {quiet}; while (c) ran: {looped};"
            f" content intact: {'yes' if j['intact'] else 'NO'}"
        )
        lines.append(
            f"(j) (c) p50/p90/p99 ms alone {_ms(alone['latency_ms'])}"
            f" ({alone['deliveries']} deliveries), during {_ms(during['latency_ms'])}"
            f" ({during['deliveries']} deliveries in {during['seconds']} s);"
            f" cpu alone {_cpu(alone['cpu'])}, during {_cpu(during['cpu'])}"
        )
        bad = {k: during[k] for k in ("missing", "unanswered", "errors", "kicks", "closed")}
        if any(bad.values()):
            lines.append(f"(j) faults: {bad}")
        cpus = "; ".join(_cpu(one["cpu"]) for one in j["transfers"])
        lines.append(f"(j) cpu of each transfer alone: {cpus}")
    g = chatd.get("g")
    if g:
        lines.append(
            f"(g) {g['logins']} logins ({g['logins_per_s']}/s), one at a time;"
            f" {g['unread']} conversations unread; login_info {g['login_info_bytes']} bytes;"
            f" database of {g['database_messages']} messages"
        )
    cross = results.get("chatload") or {}
    if cross:
        lines += [
            "",
            "Cross-check of (a), (b): this loader and chatload taking turns on one server:",
        ]
        for name, runs in cross.items():
            for run in runs:
                cpu = run.get("cpu") or {
                    "server": run.get("server_cpu_pct"),
                    "loader": run.get("loader_cpu_pct"),
                    "machine": run.get("machine_cpu_pct"),
                }
                lines.append(
                    f"  ({run['shape']}) {name:8}  {run['loader']:8}"
                    f"  {run['deliveries_per_s']:8.0f} deliveries/s"
                    f"  p50/p90/p99 {_ms(run['latency_ms'])} ms"
                    f"  cpu {_cpu(cpu)}"
                )
    return lines


def _installed_matches_checkout() -> bool:
    installed = Path(sysconfig.get_paths()["purelib"]) / "chatd"
    sources = sorted(p.name for p in (ROOT / "chatd").glob("*.py"))
    _, mismatch, errors = filecmp.cmpfiles(ROOT / "chatd", installed, sources, shallow=False)
    return not mismatch and not errors


def main(argv: list[str] | None = None) -> None:
    """
    Run the benchmark and print its table.
    """
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--shapes", default="abcdefghijk", help="which of abcdefghijk to run")
    parser.add_argument("--resume-users", type=int, default=2000, help="accounts of (i)")
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds before each window")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per shape")
    parser.add_argument("--storm-cap", type=float, default=6.0, help="longest (f) window")
    parser.add_argument("--idle-connections", type=int, default=2000)
    parser.add_argument("--history-messages", type=int, default=1_000_000)
    parser.add_argument(
        "--plain-history",
        action="store_true",
        help="(e) without replies, mentions or reactions in the database",
    )
    parser.add_argument("--port", type=int, default=19020, help="first port to try")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPUs")
    parser.add_argument("--chatload", help="a chatload binary: cross-check (a), (b) with it")
    parser.add_argument("--json", help="write the results there (default: bench/results/)")
    args = parser.parse_args(argv)
    if not _installed_matches_checkout():
        log("warning: the chatd installed in the venv differs from ./chatd (make bench reinstalls)")
    now = datetime.datetime.now().astimezone()
    bench: Bench
    with tempfile.TemporaryDirectory(prefix="chatd-bench-") as workdir:
        bench = Bench(args, Path(workdir))
        pinning = (
            f"servers on CPU {bench.server_cpu}, loaders on CPU {bench.loader_cpu}"
            if bench.server_cpu is not None
            else "no CPU pinning"
        )
        header = (
            f"chatd bench {now:%Y-%m-%d %H:%M %Z}: nproc {os.cpu_count()}, {cpu_model()};"
            f" {pinning}; {args.warmup} s warm-up + {args.duration} s per shape"
        )
        try:
            bench.run()
        except BaseException:
            # The temporary directory goes: show the end of each server log.
            for server_log in sorted(Path(workdir).glob("*.log")):
                tail = server_log.read_text(errors="replace").splitlines()[-15:]
                log(f"failed; the end of {server_log.name}:\n" + "\n".join(tail))
            raise
    results: dict[str, Any] = {"header": header, **bench.results}
    print(table(bench.results, header))
    print(f"\n(whole run {bench.results['seconds']['total']:.0f} s)")
    path = (
        Path(args.json) if args.json else ROOT / "bench" / "results" / f"{now:%Y%m%d-%H%M%S}.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    log(f"results written to {path}")


if __name__ == "__main__":
    main()
