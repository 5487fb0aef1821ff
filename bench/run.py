"""Run the benchmarks side by side: Roundtable, the bare relay and PeerJS server in one run.

    .venv/bin/python -m bench.run --all                      # every workload, 5 repetitions
    .venv/bin/python -m bench.run --workload w3 --reps 5     # one workload
    .venv/bin/python -m bench.run --smoke                    # the small correctness run `make test` does
    .venv/bin/python -m bench.run --smoke --workload w8      # W8 (sfu plenary) at smoke size

Servers run pinned to core 0 (taskset -c 0), this load generator on core 1. Each repetition runs every server's
phase in rotated order, after waiting for the machine to be quiet (the busy fraction is recorded). Results go to
bench/results/<stamp>.json and .md (git-ignored); docs/benchmarks.md holds the ones written down.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import profiling, report
from bench.clients import WIRES, new_session
from bench.measure import wait_quiet
from bench.servers import (
    ROOT,
    ServerProcess,
    bare,
    git_revision,
    named_pools,
    peerjs,
    peerjs_version,
    pin_loadgen,
    raise_nofile,
    roundtable,
    roundtable_pools,
)
from bench.workloads import FULL, SMOKE, WORKLOADS, Sizes, Target

ORDER = ["w1", "w2", "w3", "w4", "w6", "w7", "w8", "w5"]  # w5 restarts the servers: last
SMOKE_ORDER = ["w1", "w2", "w3", "w4", "w6", "w5"]  # the recorder has its own tests (tests/recordings)
NO_ROOMS = {"w4", "w6"}
SERVERS = ("roundtable", "bare", "peerjs")


def _versions() -> dict[str, str]:
    import aiohttp
    import pydantic

    node = shutil.which("node")
    node_v = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout if node else ""
    pg_bin = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    pg_bin = pg_bin / "site-packages" / "pgserver" / "pginstall" / "bin" / "postgres"
    pg_v = (
        subprocess.run([pg_bin, "--version"], capture_output=True, text=True, check=False).stdout
        if pg_bin.exists()
        else ""
    )
    return {
        "roundtable": git_revision(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "pydantic": pydantic.VERSION,
        "node": node_v.strip(),
        "peer": peerjs_version(),
        "postgresql": pg_v.strip(),
    }


def _machine() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError):
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes: Sizes = SMOKE if args.smoke else FULL
    chosen = [w.lower() for w in args.workload]
    workloads = (chosen or SMOKE_ORDER) if args.smoke else ORDER if args.all else chosen
    for w in workloads:
        if w not in WORKLOADS:
            raise SystemExit(f"unknown workload {w!r}; choose from {', '.join(ORDER)}")
    names = [s for s in args.servers.split(",") if s]
    nofile = raise_nofile()
    core = pin_loadgen()
    workdir = Path(tempfile.mkdtemp(prefix="rt-bench-"))
    procs: dict[str, ServerProcess] = {}
    factories = {
        "roundtable": lambda: roundtable(workdir, database_url=args.database_url),
        "bare": lambda: bare(workdir),
        "peerjs": lambda: peerjs(workdir),
    }
    results: dict[str, Any] = {
        "meta": {
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "command": " ".join(["python -m bench.run", *sys.argv[1:]]),
            "smoke": args.smoke,
            "reps": args.reps,
            "w5_reps": min(args.reps, args.w5_reps),
            "workloads": workloads,
            "servers": names,
            "versions": _versions(),
            "machine": _machine(),
            "loadgen_core": core,
            "nofile": nofile,
            "sizes": asdict(sizes),
            "workdir": str(workdir),
        },
        "runs": [],
        "errors": [],
    }
    t_start = time.monotonic()
    try:
        for name in names:
            procs[name] = factories[name]()
        await asyncio.gather(*(p.start() for p in procs.values()))
        if args.pg_core is not None and "roundtable" in procs:
            for pid in procs["roundtable"].postgres_pids():
                os.sched_setaffinity(pid, {args.pg_core})  # diagnostic only: see --pg-core
        results["meta"]["server_nofile"] = {n: p.nofile() for n, p in procs.items()}
        results["meta"]["pids"] = {n: p.pid for n, p in procs.items()}
        n10 = sizes.rooms10_needed if "w5" in workloads else 230
        pools = {}
        for name in names:
            if name == "roundtable":
                t0 = time.monotonic()
                pools[name] = await roundtable_pools(procs[name], n10, 5)
                results["meta"]["roundtable_setup_s"] = round(time.monotonic() - t0, 1)
            else:
                pools[name] = named_pools(n10, 5, token="bench-token" if name == "peerjs" else None)

        async def restart(proc: ServerProcess) -> None:
            await proc.stop()
            await proc.start()

        async with new_session() as session:
            targets = {
                n: Target(
                    server=procs[n],
                    wire=WIRES[n],
                    pools=pools[n],
                    session=session,
                    restart=(lambda p=procs[n]: restart(p)),
                )
                for n in names
            }
            for workload in workloads:
                reps = min(args.reps, args.w5_reps) if workload == "w5" else args.reps
                reps = min(reps, args.w8_reps) if workload == "w8" else reps
                rep_s = 0.0
                for rep in range(reps):
                    elapsed = time.monotonic() - t_start
                    if rep and elapsed + rep_s > args.budget_min * 60:
                        results["meta"].setdefault("cut_short", []).append(
                            f"{workload}: {rep} of {reps} repetitions (the {args.budget_min}-minute budget)"
                        )
                        break
                    order = names[rep % len(names) :] + names[: rep % len(names)]
                    for name in order:
                        target = targets[name]
                        entry: dict[str, Any] = {"workload": workload, "server": name, "rep": rep}
                        if workload in NO_ROOMS and not target.wire.has_rooms:
                            entry["result"] = {"n/a": "PeerJS has no rooms"}
                            results["runs"].append(entry)
                            continue
                        if workload in ("w7", "w8") and name != "roundtable":
                            entry["result"] = {"n/a": "no recorder" if workload == "w7" else "no SFU"}
                            results["runs"].append(entry)
                            continue
                        if not args.smoke:  # the smoke run checks correctness only: no need to wait
                            entry["quiet"] = (await wait_quiet(max_wait_s=args.quiet_wait_s)).as_dict()
                        entry["at_s"] = round(time.monotonic() - t_start, 1)
                        spy = profiling.start(target.server, args.profile, f"{workload}-{name}-rep{rep}")
                        try:
                            entry["result"] = await WORKLOADS[workload](target, sizes)
                        except Exception as exc:
                            entry["error"] = f"{type(exc).__name__}: {exc}"
                            results["errors"].append(
                                {"workload": workload, "server": name, "rep": rep, "trace": traceback.format_exc()}
                            )
                            print(f"  ! {workload} {name} rep {rep}: {entry['error']}", file=sys.stderr)
                        finally:
                            await profiling.stop(spy)
                        entry["took_s"] = round(time.monotonic() - t_start - entry["at_s"], 1)
                        results["runs"].append(entry)
                        print(f"  {workload} {name} rep {rep}: {entry.get('took_s')} s", file=sys.stderr, flush=True)
                    rep_s = time.monotonic() - t_start - elapsed
    finally:
        stopped = {}
        for name, proc in procs.items():
            code = await proc.stop()
            stopped[name] = {"exit": code, "pids": sorted(proc.seen_pids), "left_running": proc.leftover_pids()}
        results["stopped"] = stopped
        results["meta"]["elapsed_s"] = round(time.monotonic() - t_start, 1)
        if not args.keep_workdir:
            for name in procs:
                log = workdir / f"{name}.log"
                if log.exists():
                    results.setdefault("logs_tail", {})[name] = log.read_text(errors="replace")[-4000:]
            shutil.rmtree(workdir, ignore_errors=True)
    results["summary"] = report.summarise(results)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--workload", action="append", default=[], help="w1…w8; repeat for several")
    parser.add_argument("--all", action="store_true", help="every workload")
    parser.add_argument("--smoke", action="store_true", help="small sizes, correctness only (make test)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per phase (5; smoke: 1)")
    parser.add_argument("--servers", default=None, help="comma-separated (default: roundtable,bare,peerjs)")
    parser.add_argument("--database-url", default=None, help="PostgreSQL for Roundtable instead of an embedded one")
    parser.add_argument(
        "--w5-reps",
        type=int,
        default=5,
        help="at most this many repetitions of W5 (10k connections, the longest phase)",
    )
    parser.add_argument(
        "--w8-reps", type=int, default=2, help="at most this many repetitions of W8 (the sfu plenary, ~3 min each)"
    )
    parser.add_argument(
        "--budget-min", type=float, default=24.0, help="start no repetition that would end past this many minutes"
    )
    parser.add_argument("--quiet-wait-s", type=float, default=2.0, help="longest wait for a quiet machine per phase")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default bench/results/<stamp>.json)")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy each Python server's phases into DIR")
    parser.add_argument(
        "--pg-core",
        type=int,
        default=None,
        help="diagnostic: move the embedded PostgreSQL to this core (profiles without its preemption)",
    )
    parser.add_argument("--keep-workdir", action="store_true", help="keep server logs and data")
    args = parser.parse_args(argv)
    if not (args.all or args.smoke or args.workload):
        parser.error("say --all, --smoke or --workload W")
    if args.reps is None:
        args.reps = 1 if args.smoke else 5
    if args.servers is None:
        args.servers = "roundtable,bare" if args.smoke else ",".join(SERVERS)
    results = asyncio.run(run(args))
    out = args.out or ROOT / "bench" / "results" / time.strftime("%Y%m%d-%H%M%S.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    markdown = report.markdown(results)
    out.with_suffix(".md").write_text(markdown)
    print(markdown)
    print(f"results: {out}", file=sys.stderr)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
