"""The three servers as processes: started pinned to core 0, measured by PID, stopped by PID.

- Roundtable: `python -m server`, as `make run` starts it, with real PostgreSQL (embedded under a temporary data
  dir, or `--database-url`). The per-connection rate limit is raised (ROUNDTABLE_WS_RATE_PER_S/_BURST) so that the
  saturation workloads measure the server rather than the limiter.
- The bare relay: `python -m bench.bare_relay`.
- PeerJS server: `node bench/peerjs/server.js` (npm package `peer`, pinned in bench/peerjs/package.json).

Servers inherit the load generator's open-files limit, raised to its hard limit before they start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.clients import Ident
from bench.measure import CpuMeter, alive, children_of, rss_kib

ROOT = Path(__file__).resolve().parent.parent
PEERJS_DIR = ROOT / "bench" / "peerjs"
SERVER_CORE = "0"
LOADGEN_CORE = 1
RATE_RAISED = 1_000_000
ADMIN_TOKEN = "bench-admin-" + "0" * 20


def raise_nofile() -> int:
    """Raise this process's open-files limit to its hard limit (children inherit it); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pin_loadgen() -> str:
    """Pin the load generator to core 1 (as `taskset -c 1` would), when the machine has one."""
    try:
        if os.cpu_count() and (os.cpu_count() or 0) > LOADGEN_CORE:
            os.sched_setaffinity(0, {LOADGEN_CORE})
            return str(LOADGEN_CORE)
    except OSError:
        pass
    return "unpinned"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _until(done: Callable[[], bool], timeout_s: float, step_s: float = 0.1) -> bool:
    """Poll `done` until it holds or `timeout_s` passes (a process's end has no event to wait on)."""
    for _ in range(max(1, round(timeout_s / step_s))):
        if done():
            return True
        await asyncio.sleep(step_s)
    return done()


def _nofile_of(pid: int) -> str:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return line.split()[3]
    return "?"


@dataclass
class ServerProcess:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    health_path: str
    log_path: Path
    pg_dir: Path | None = None  # embedded PostgreSQL data dir, when Roundtable runs one
    proc: subprocess.Popen[bytes] | None = None
    seen_pids: set[int] = field(default_factory=set)
    starts: int = 0

    @property
    def base_http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def postgres_pids(self) -> list[int]:
        """The embedded postmaster and its children (backends, checkpointer, ...)."""
        if self.pg_dir is None:
            return []
        try:
            pm = int((self.pg_dir / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return []
        if not alive(pm):
            return []
        self.seen_pids.add(pm)
        return [pm, *children_of(pm)]

    def cpu(self) -> CpuMeter:
        return CpuMeter(lambda: [self.pid])

    def pg_cpu(self) -> CpuMeter:
        return CpuMeter(self.postgres_pids)

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def nofile(self) -> str:
        return _nofile_of(self.pid)

    def _spawn(self) -> subprocess.Popen[bytes]:
        """Start the process pinned to the server core, its output appended to its log."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n==== start {time.strftime('%H:%M:%S')} {' '.join(self.argv)}\n".encode())
            log.flush()
            argv = ["taskset", "-c", SERVER_CORE, *self.argv] if shutil.which("taskset") else self.argv
            return subprocess.Popen(
                argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    async def start(self, timeout_s: float = 180.0) -> None:
        self.proc = self._spawn()
        self.seen_pids.add(self.proc.pid)
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as session:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
                try:
                    async with session.get(self.base_http + self.health_path) as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    await self.stop()
                    raise RuntimeError(f"{self.name} not ready after {timeout_s}s; see {self.log_path}")
                await asyncio.sleep(0.2)
        self.postgres_pids()  # remember the postmaster's pid, to check it is gone at the end

    async def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM by PID, then SIGKILL; the embedded PostgreSQL too if the server left it running."""
        proc = self.proc
        if proc is None:
            return None
        pg = self.postgres_pids()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            if not await _until(lambda: proc.poll() is not None, timeout_s):
                proc.kill()
                proc.wait(10)
        # Roundtable stops its PostgreSQL on the way out; make sure, by PID.
        for pid in pg[:1]:
            if not await _until(lambda pid=pid: not alive(pid), 15):  # type: ignore[misc]
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown
                if not await _until(lambda pid=pid: not alive(pid), 15):  # type: ignore[misc]
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        self.proc = None
        return proc.returncode

    def leftover_pids(self) -> list[int]:
        return sorted(pid for pid in self.seen_pids if alive(pid))


def roundtable(workdir: Path, *, database_url: str | None) -> ServerProcess:
    port = free_port()
    data_dir = workdir / "roundtable-var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUNDTABLE_") and k != "DATABASE_URL"}
    env.update(
        ROUNDTABLE_HOST="127.0.0.1",
        ROUNDTABLE_PORT=str(port),
        ROUNDTABLE_DATA_DIR=str(data_dir),
        ROUNDTABLE_ADMIN_TOKEN=ADMIN_TOKEN,
        ROUNDTABLE_SECRET_KEY=secrets.token_hex(32),
        ROUNDTABLE_WS_RATE_PER_S=str(RATE_RAISED),
        ROUNDTABLE_WS_RATE_BURST=str(RATE_RAISED),
        ROUNDTABLE_ICE_HOST_ADDRESSES="127.0.0.1",  # the recorder's WebRTC peer (W7) stays on loopback
    )
    if database_url:
        env["ROUNDTABLE_DATABASE_URL"] = database_url
    return ServerProcess(
        name="roundtable",
        argv=[sys.executable, "-m", "server"],
        env=env,
        cwd=ROOT,
        port=port,
        health_path="/healthz",
        log_path=workdir / "roundtable.log",
        pg_dir=None if database_url else data_dir / "pg",
    )


def bare(workdir: Path) -> ServerProcess:
    port = free_port()
    return ServerProcess(
        name="bare",
        argv=[sys.executable, "-m", "bench.bare_relay", "--port", str(port)],
        env=dict(os.environ),
        cwd=ROOT,
        port=port,
        health_path="/healthz",
        log_path=workdir / "bare.log",
    )


def peerjs(workdir: Path) -> ServerProcess:
    if not (PEERJS_DIR / "node_modules" / "peer").is_dir():
        raise RuntimeError("PeerJS server is not installed: run `npm ci --prefix bench/peerjs` (docs/benchmarks.md)")
    node = shutil.which("node") or "node"
    port = free_port()
    return ServerProcess(
        name="peerjs",
        argv=[node, str(PEERJS_DIR / "server.js")],
        env={**os.environ, "PORT": str(port)},
        cwd=PEERJS_DIR,
        port=port,
        health_path="/",
        log_path=workdir / "peerjs.log",
    )


def peerjs_version() -> str:
    import json

    try:
        return str(json.loads((PEERJS_DIR / "node_modules" / "peer" / "package.json").read_text())["version"])
    except (OSError, KeyError, ValueError):
        return "not installed"


# Identities -------------------------------------------------------------------------------------------------


@dataclass
class Pools:
    """Who joins where: rooms of 10 (W1, W3, W4, W5, W6) and rooms of 60 (W1's reference workshop, W4)."""

    rooms10: list[list[Ident]]
    rooms60: list[list[Ident]]
    room_ids: dict[str, str] = field(default_factory=dict)  # Roundtable: room name → room id


def named_pools(n10: int, n60: int, *, token: str | None = None) -> Pools:
    """Bare relay and PeerJS: the peer id names its room ("a0007-p03" is in room "a0007")."""

    def ident(room: str, k: int) -> Ident:
        peer = f"{room}-p{k:02d}"
        return Ident(peer_id=peer, token=token or peer, room=room)

    return Pools(
        rooms10=[[ident(f"a{r:04d}", k) for k in range(10)] for r in range(n10)],
        rooms60=[[ident(f"b{r:04d}", k) for k in range(60)] for r in range(n60)],
    )


COUNTRIES = ["PT", "DE", "FR", "PL", "RO", "IT", "ES", "NL", "SE", "GR", "HU", "IE"]


async def roundtable_pools(server: ServerProcess, n10: int, n60: int) -> Pools:
    """One workshop, breakout rooms of 10 (capacity 10) and of 60 (capacity 60), a participant per seat with its
    join token; every participant's home room set at import (room_id), so that its join lands there."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    api = server.base_http + "/api/v1"
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=16)) as http:

        async def post(path: str, body: Any) -> Any:
            async with http.post(api + path, json=body) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"POST {path}: {resp.status} {(await resp.text())[:300]}")
                return await resp.json()

        workshop = await post(
            "/workshops",
            {
                "title": f"Benchmark {uuid.uuid4().hex[:8]}",
                "timezone": "Europe/Brussels",
                "starts_at": "2026-01-01T08:00:00+01:00",
                "ends_at": "2030-12-31T17:00:00+01:00",
            },
        )
        wid = workshop["id"]
        gate = asyncio.Semaphore(16)

        async def room(name: str, capacity: int) -> str:
            async with gate:
                body = await post(f"/workshops/{wid}/rooms", {"name": name, "capacity": capacity})
                return str(body["id"])

        ids10 = await asyncio.gather(*(room(f"a{r:04d}", 10) for r in range(n10)))
        ids60 = await asyncio.gather(*(room(f"b{r:04d}", 60) for r in range(n60)))
        seats = [(f"a{r:04d}", rid, k) for r, rid in enumerate(ids10) for k in range(10)]
        seats += [(f"b{r:04d}", rid, k) for r, rid in enumerate(ids60) for k in range(60)]
        people: dict[str, Ident] = {}
        for start in range(0, len(seats), 5000):  # the import takes at most 5000 rows
            chunk = seats[start : start + 5000]
            rows = [
                {
                    "display_name": f"Participant {name}-{k:02d}",
                    "country": COUNTRIES[(i + k) % len(COUNTRIES)],
                    "organisation": "Benchmark Newsroom",
                    "room_id": rid,
                }
                for i, (name, rid, k) in enumerate(chunk)
            ]
            result = await post(f"/workshops/{wid}/participants/import", rows)
            for item in result["items"]:
                seat = item["display_name"].removeprefix("Participant ")
                people[seat] = Ident(peer_id=item["id"], token=item["join_token"], room=seat.rpartition("-")[0])
    return Pools(
        rooms10=[[people[f"a{r:04d}-{k:02d}"] for k in range(10)] for r in range(n10)],
        rooms60=[[people[f"b{r:04d}-{k:02d}"] for k in range(60)] for r in range(n60)],
        room_ids={name: rid for name, rid, _ in seats},
    )


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "signaling", "server"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        return out + ("+local changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
