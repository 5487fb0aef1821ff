"""What the benchmarks read from the kernel: CPU time per process, resident memory, how busy the machine is.

Server CPU comes from /proc/PID/task/*/schedstat (first field: nanoseconds on a CPU, per thread), read around
each phase. Only differences between two readings taken in the same run are ever compared.
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


def thread_cpu_ns(pid: int) -> int:
    """CPU time of every live thread of `pid`, in ns (0 when the process is gone)."""
    total = 0
    try:
        tids = os.listdir(PROC / str(pid) / "task")
    except FileNotFoundError:
        return 0
    for tid in tids:
        try:
            total += int((PROC / str(pid) / "task" / tid / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue  # the thread ended between listdir and read
    return total


def rss_kib(pid: int) -> int:
    """VmRSS of `pid` in KiB (0 when the process is gone)."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return 0


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (by the ppid field of /proc/*/stat)."""
    out = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


@dataclass
class CpuSnapshot:
    by_pid: dict[int, int]
    wall_ns: int


class CpuMeter:
    """CPU of a changing set of processes: `pids()` is asked at every reading.

    A process that appears between two readings counts from zero; one that disappears is lost (the phases are
    short and the processes measured are long-lived: a server, PostgreSQL's postmaster and its backends)."""

    def __init__(self, pids: Callable[[], Iterable[int]]) -> None:
        self.pids = pids

    def read(self) -> CpuSnapshot:
        return CpuSnapshot({pid: thread_cpu_ns(pid) for pid in self.pids()}, time.perf_counter_ns())

    @staticmethod
    def delta_ns(before: CpuSnapshot, after: CpuSnapshot) -> int:
        return sum(max(0, ns - before.by_pid.get(pid, 0)) for pid, ns in after.by_pid.items())


def _cpu_times() -> tuple[int, int]:
    """(idle, total) jiffies over all CPUs from /proc/stat."""
    fields = [int(x) for x in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return idle, sum(fields[:8])  # guest time is already counted in user


@dataclass
class Quiet:
    busy: float  # fraction of all CPUs busy over the last 1 s window
    waited_s: float
    quiet: bool
    loadavg: float

    def as_dict(self) -> dict[str, float | bool]:
        return {
            "busy": round(self.busy, 3),
            "waited_s": round(self.waited_s, 1),
            "quiet": self.quiet,
            "loadavg": self.loadavg,
        }


async def wait_quiet(threshold: float = 0.30, max_wait_s: float = 3.0) -> Quiet:
    """Sample /proc/stat over 1 s windows until the machine is below `threshold` busy (or `max_wait_s` passed).

    The machine is shared: when it never gets quiet the phase runs anyway, and the busy fraction is recorded
    next to its result."""
    start = time.monotonic()
    while True:
        idle0, total0 = _cpu_times()
        await asyncio.sleep(1.0)
        idle1, total1 = _cpu_times()
        span = max(1, total1 - total0)
        busy = 1.0 - (idle1 - idle0) / span
        waited = time.monotonic() - start
        if busy <= threshold or waited >= max_wait_s:
            load1 = float((PROC / "loadavg").read_text().split()[0])
            return Quiet(busy=busy, waited_s=waited, quiet=busy <= threshold, loadavg=load1)


# Statistics --------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Spread | None:
        clean = [v for v in values if v is not None and not math.isnan(v)]
        if not clean:
            return None
        return cls(statistics.median(clean), min(clean), max(clean), len(clean))

    def fmt(self, digits: int = 2, unit: str = "") -> str:
        f = f"{{:.{digits}f}}"
        return f"{f.format(self.median)}{unit} [{f.format(self.low)}\u2013{f.format(self.high)}]"

    def as_dict(self) -> dict[str, float]:
        return {"median": self.median, "min": self.low, "max": self.high, "n": self.n}
