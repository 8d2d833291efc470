"""
What the benchmark reads about processes and the machine from C{/proc}:
CPU time, resident memory, CPU affinity, and the machine's description.

Linux only, like the benchmark itself.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

#: Clock ticks per second, the unit of the CPU times in C{/proc/*/stat}.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | str = "self") -> float | None:
    """
    @param pid: a process id, or C{"self"}.
    @return: the user plus system CPU time of every thread of the process so
        far, in seconds; L{None} when the process is gone.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: split after its ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """
    @return: the user plus system CPU time of each thread of the process
        so far, in seconds, by thread id (the id py-spy names threads by).
    """
    seconds = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        spent = cpu_seconds(f"{pid}/task/{tid}")
        if spent is not None:
            seconds[int(tid)] = spent
    return seconds


def busy_seconds() -> dict[str, float]:
    """
    @return: the CPU time the machine spent busy so far (not idle, not
        waiting for I/O), in seconds: C{"cpu"} summed over every CPU, and
        C{"cpu0"}, C{"cpu1"}, ... for each.
    """
    busy = {}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu"):
                break
            name, *fields = line.split()
            # user nice system idle iowait irq softirq steal
            ticks = [int(x) for x in fields[:8]]
            busy[name] = (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS
    return busy


def rss_kib(pid: int) -> int | None:
    """
    @return: the resident set size (C{VmRSS}) of process C{pid} in KiB, or
        L{None} when the process is gone.
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def pin(pid: int, cpus: set[int]) -> None:
    """
    Run every thread of process C{pid} on C{cpus} only.  Threads it starts
    later inherit the mask of the thread that starts them.
    """
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for task in tasks:
        try:
            os.sched_setaffinity(int(task), cpus)
        except OSError:
            pass  # a thread that ended meanwhile


def cpu_model() -> str:
    """
    @return: the CPU model named in C{/proc/cpuinfo}, or C{"unknown"}.
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


@dataclass(frozen=True, slots=True)
class CpuSample:
    """
    The CPU time of the loader, the server and the machine at one moment.
    """

    wall: float
    loader: float | None
    server: float | None
    busy: dict[str, float]

    @classmethod
    def take(cls, server_pid: int | None) -> CpuSample:
        """
        @return: a sample now; the loader is the calling process.
        """
        return cls(
            time.monotonic(),
            cpu_seconds("self"),
            cpu_seconds(server_pid) if server_pid is not None else None,
            busy_seconds(),
        )

    def percent_since(self, earlier: CpuSample) -> dict[str, float | None]:
        """
        @return: the CPU used between C{earlier} and this sample by the
            server, the loader and the whole machine, in percent of one CPU
            (the machine's can reach 100 times the number of CPUs), and how
            busy each CPU was (by anything), in percent: C{"cpu0"}, ...
        """
        elapsed = self.wall - earlier.wall

        def percent(a: float | None, b: float | None) -> float | None:
            if a is None or b is None or elapsed <= 0:
                return None
            return round((b - a) / elapsed * 100, 1)

        used = {
            "server": percent(earlier.server, self.server),
            "loader": percent(earlier.loader, self.loader),
            "machine": percent(earlier.busy["cpu"], self.busy["cpu"]),
        }
        for name, seconds in self.busy.items():
            if name != "cpu":
                used[name] = percent(earlier.busy.get(name), seconds)
        return used
