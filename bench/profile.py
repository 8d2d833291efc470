"""
Profile chatd with py-spy under one shape of the benchmark's load.

    .venv/bin/pip install py-spy
    .venv/bin/python -m bench.profile --shape a --seconds 15 --out /tmp/chatd-a.txt

Starts chatd as the benchmark does (pinned to CPU 0; with cheap password
hashes, which the shapes (a)-(c) never use after set-up, so that set-up is
quick), runs L{bench.loader} on CPU 1, and once the load is on records
C{py-spy record --format raw --threads} of the server on CPU 1 for
C{--seconds}, and reads what CPU each server thread used meanwhile.  By
default py-spy cannot tell a thread that runs from one that waits for
the GIL (or is preempted by the other thread on the same CPU): both are
samples, and the two threads' samples overlap.  C{--gil} samples only the
thread holding the GIL, which shows what the Python of each thread costs.
The output is collapsed stacks (one line per stack, and its sample count),
which speedscope.app and flamegraph.pl read; the top functions of each
thread are printed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.build_history_db import PASSWORD, seed_users
from bench.proc import thread_cpu_seconds
from bench.servers import BIN, ROOT, child_setup, free_port, start_chatd


def summarise(path: Path, top: int = 25) -> str:
    """
    @param path: collapsed stacks written by C{py-spy record --format raw
        --threads}.
    @return: for each thread, the functions that take its samples, by
        inclusive share (the function or anything it calls) and by self
        share (the function itself, the line it is on).
    """
    inclusive: dict[str, Counter[str]] = {}
    own: dict[str, Counter[str]] = {}
    totals: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        thread, *frames = stack.split(";")
        samples = int(number)
        totals[thread] += samples
        seen = set()
        for frame in frames:
            function = frame.split(":")[0] + ")" if ":" in frame else frame
            if function not in seen:
                seen.add(function)
                inclusive.setdefault(thread, Counter())[function] += samples
        if frames:
            own.setdefault(thread, Counter())[frames[-1]] += samples
    everything = sum(totals.values())
    lines = []
    for thread, samples in totals.most_common():
        lines.append(f"{thread}: {samples} samples, {samples / everything:.0%} of all")
        for title, counter in (("inclusive", inclusive), ("self", own)):
            lines.append(f"  {title}:")
            for function, count in counter.get(thread, Counter()).most_common(top):
                lines.append(f"    {count / samples:6.1%}  {function}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """
    Run the load, record the profile, print its summary.
    """
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--shape", choices=["a", "b", "c"], default="a")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long to record")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--out", default="chatd-profile.txt", help="the collapsed stacks")
    parser.add_argument("--port", type=int, default=19090)
    parser.add_argument(
        "--native",
        action="store_true",
        help="sample C frames too (pauses the server at each sample)",
    )
    parser.add_argument(
        "--gil",
        action="store_true",
        help="sample only the thread holding the GIL: what runs Python, without the waits",
    )
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    from chatd.passwords import cheap_hasher

    out = Path(args.out).resolve()
    with tempfile.TemporaryDirectory(prefix="chatd-profile-") as workdir:
        db = Path(workdir) / "profile.sqlite3"
        names = [f"bu{i}" for i in range(200)]
        seed_users(str(db), names, cheap_hasher().hash(PASSWORD))
        server = start_chatd(Path(workdir), free_port(args.port), db, 0, cheap=True)
        loader = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.loader",
                "--port",
                str(server.port),
                "--server-pid",
                str(server.pid),
                "--warmup",
                "1",
                "--duration",
                str(args.seconds + 3),
                "session",
                "--shapes",
                args.shape,
                "--storm",
                "0",
            ],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            preexec_fn=child_setup(1),
        )
        try:
            assert loader.stdout is not None
            # The loader says when set-up is over; then the warm-up.
            json.loads(loader.stdout.readline())
            time.sleep(2)
            mode = [flag for flag, on in (("--native", args.native), ("--gil", args.gil)) if on]
            before, started = thread_cpu_seconds(server.pid), time.monotonic()
            subprocess.run(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(server.pid),
                    "--duration",
                    str(int(args.seconds)),
                    "--rate",
                    str(args.rate),
                    *(mode or ["--nonblocking"]),
                    "--threads",
                    "--format",
                    "raw",
                    "--output",
                    str(out),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                preexec_fn=child_setup(1),
            )
            after, elapsed = thread_cpu_seconds(server.pid), time.monotonic() - started
            for line in loader.stdout:
                result = json.loads(line)
                print(
                    f"shape ({result['shape']}): {result['deliveries_per_s']:.0f} deliveries/s,"
                    f" latency ms {result['latency_ms']}, cpu {result['cpu']}"
                )
            loader.wait(60)
        finally:
            if loader.poll() is None:
                loader.kill()
                loader.wait()
            server.stop()
    print("CPU of each server thread while recording (100 = one CPU):")
    for tid, seconds in sorted(after.items()):
        used = seconds - before.get(tid, 0.0)
        if used > 0:
            print(f"  thread {tid}: {100 * used / elapsed:.1f}")
    print(f"collapsed stacks in {out}\n")
    print(summarise(out))


if __name__ == "__main__":
    main()
