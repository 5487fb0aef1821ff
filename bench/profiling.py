"""Where a Python server spends its CPU during a phase: py-spy (installed ad hoc, not a project dependency).

    .venv/bin/pip install py-spy
    .venv/bin/python -m bench.run --workload w3 --reps 1 --servers roundtable,bare --profile /tmp/prof
    .venv/bin/python -m bench.profiling /tmp/prof/w3-roundtable-rep0.txt

Profiled runs are for finding hot paths only: py-spy samples from the load generator's core, so their
figures are not the benchmark's.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.servers import LOADGEN_CORE, ServerProcess


def start(server: ServerProcess, directory: Path | None, label: str) -> subprocess.Popen[bytes] | None:
    """Start py-spy on a Python server (None for others, or when not asked for)."""
    if directory is None or "python" not in Path(server.argv[0]).name:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    directory.mkdir(parents=True, exist_ok=True)
    argv = [spy, "record", "--pid", str(server.pid), "--rate", "250", "--format", "raw", "--nonblocking"]
    argv += ["--output", str(directory / f"{label}.txt")]
    taskset = ["taskset", "-c", str(LOADGEN_CORE)] if shutil.which("taskset") else []
    return subprocess.Popen(taskset + argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def stop(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is None:
        return
    spy.send_signal(signal.SIGINT)
    for _ in range(100):
        if spy.poll() is not None:
            return
        await asyncio.sleep(0.1)
    spy.kill()
    spy.wait(5)


def top(path: Path, limit: int = 40) -> str:
    """Self and inclusive sample shares per function from py-spy's raw (collapsed stacks) output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    out = [f"{total} samples", "", "self%  function"]
    out += [f"{100 * n / total:5.1f}  {f}" for f, n in own.most_common(limit)]
    out += ["", "incl%  function"]
    out += [f"{100 * n / total:5.1f}  {f}" for f, n in inclusive.most_common(limit)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profiling")
    parser.add_argument("file", type=Path)
    parser.add_argument("--limit", type=int, default=40)
    args = parser.parse_args()
    print(top(args.file, args.limit))


if __name__ == "__main__":
    main()
