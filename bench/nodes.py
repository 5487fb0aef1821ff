"""W11: several nodes (issue 12, docs/scaling.md): what forwarding over the bus costs, and how long a failover takes.

    .venv/bin/python -m bench.nodes                      # the benchmark: relay, fan-out, failover of 60 and 600
    .venv/bin/python -m bench.nodes --failover 60 --reps 3
    .venv/bin/python -m bench.nodes --smoke              # tiny sizes, a few seconds each (tests/bench runs it)

The run starts its own deployment and stops every process of it by PID: an embedded PostgreSQL (pgserver, as
tests/conftest.py starts it), a nats-server on a free port of 127.0.0.1 and three `python -m server` nodes on them
(A, B, C), all pinned to core 0 as bench/servers.py pins a server; this load generator runs on core 1.

1. **Relay and fan-out**, each repetition in both placements, in rotated order: `one` (every member on node A, the
   workshop's owner) and `two` (members alternately on A and B: every pair has one end on each node, so every
   relayed message crosses the bus once). The clients are bench/clients.py's: candidates (~200 B) and offers
   (~3 KB) with the sender's timestamp matched to the arrival by the sequence number in the payload (W2's paced
   rate for latency, W3's window for CPU per message), and W4's `update` fan-out in a room of 60 (30 on each
   node in `two`) for CPU per delivery. CPU is /proc/PID/task/*/schedstat of A, B and the nats-server (and
   PostgreSQL's, shown apart), read around each measured part; the ratio two ÷ one is taken within a repetition.
2. **Failover**: the owner is SIGKILLed with N members of one room connected to the two other nodes (half each;
   one more member, on the owner, made it the owner). Each member reconnects through its node as soon as its
   socket closes, with its resume token, and is counted when its `welcome` says `resumed: true`. Figures: the
   time from the kill to the last member resumed, per repetition; the killed node is started again before the next
   repetition, and the owner rotates over A, B and C.

Every wait is bounded; results go to bench/results/nodes-<stamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.clients import Client, Ident, JoinError, RoundtableWire, join_all, leave_all, new_session
from bench.measure import CpuMeter, alive, children_of, wait_quiet
from bench.servers import ADMIN_TOKEN, RATE_RAISED, SERVER_CORE, ServerProcess, free_port, pin_loadgen, raise_nofile
from bench.workloads import Flow, Ledger, Presence, _saturate, install_sinks, ms_stats, until

ROOT = Path(__file__).resolve().parent.parent
NATS_BINARIES = ("nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server")
WIRE = RoundtableWire()


@dataclass(frozen=True)
class Sizes:
    reps: int = 5
    pairs: int = 10  # relay: 2 x pairs members in one room, a flow each way per pair
    paced_seconds: float = 5.0
    candidates_per_s: float = 200.0
    offers_per_s: float = 40.0
    saturate_candidates: int = 500  # per flow
    saturate_offers: int = 200
    window: int = 8
    fanout_members: int = 60
    fanout_updates: int = 5
    failover: tuple[int, ...] = (60, 600)
    failover_reps: int = 5
    failover_timeout_s: float = 90.0
    phase_timeout_s: float = 120.0


FULL = Sizes()
SMOKE = Sizes(
    reps=1,
    pairs=2,
    paced_seconds=0.5,
    candidates_per_s=40.0,
    offers_per_s=10.0,
    saturate_candidates=50,
    saturate_offers=10,
    fanout_members=6,
    fanout_updates=2,
    failover=(6,),
    failover_reps=1,
    failover_timeout_s=60.0,
    phase_timeout_s=60.0,
)


# The deployment ------------------------------------------------------------------------------------------------


class Postgres:
    """The embedded PostgreSQL of the run (server/db.py's EmbeddedPostgres), its postmaster known by PID."""

    def __init__(self) -> None:
        from server.db import EmbeddedPostgres

        # As root, pgserver runs PostgreSQL as its own user, which must reach the data directory.
        self.root = Path(tempfile.mkdtemp(prefix="rt-bench-nodes-pg-"))
        self.root.chmod(0o755)
        self.embedded = EmbeddedPostgres(self.root)
        self.dsn = ""
        self.postmaster: int | None = None

    async def start(self) -> None:
        self.dsn = await asyncio.to_thread(self.embedded.start)
        with contextlib.suppress(OSError, ValueError, IndexError):
            self.postmaster = int((self.embedded.pgdata / "postmaster.pid").read_text().split()[0])

    def pids(self) -> list[int]:
        if self.postmaster is None or not alive(self.postmaster):
            return []
        return [self.postmaster, *children_of(self.postmaster)]

    async def stop(self) -> None:
        await asyncio.to_thread(self.embedded.stop)
        pm = self.postmaster
        if pm is not None and not await until(lambda: not alive(pm), 15, 0.1):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pm, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


class Nats:
    """A nats-server of the run's own on a free port of 127.0.0.1, pinned with the servers, stopped by its PID."""

    def __init__(self, workdir: Path) -> None:
        binary = next((found for b in NATS_BINARIES if (found := shutil.which(b))), None)
        if binary is None:
            raise RuntimeError("nats-server is not installed (Debian's nats-server package)")
        self.binary = binary
        self.port = free_port()
        self.log_path = workdir / "nats-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        argv = [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-n", f"rt-bench-{os.getpid()}"]
        if shutil.which("taskset"):
            argv = ["taskset", "-c", SERVER_CORE, *argv]
        self.proc = self._spawn(argv)
        if not await until(self._answers, 10, 0.05):
            self.stop()
            raise RuntimeError(f"nats-server did not answer on {self.url}; see {self.log_path}")

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _answers(self) -> bool:
        """It greets every client with an INFO line."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.settimeout(0.5)
                return s.recv(5) == b"INFO "
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def node(
    workdir: Path, name: str, *, dsn: str, bus_url: str, secret: str, lease_ttl_s: float, keepalive_s: float
) -> ServerProcess:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUNDTABLE_") and k != "DATABASE_URL"}
    env.update(
        ROUNDTABLE_HOST="127.0.0.1",
        ROUNDTABLE_PORT=str(port),
        ROUNDTABLE_DATA_DIR=str(workdir / f"node-{name}"),
        ROUNDTABLE_DATABASE_URL=dsn,
        ROUNDTABLE_BUS_URL=bus_url,
        ROUNDTABLE_ADMIN_TOKEN=ADMIN_TOKEN,
        ROUNDTABLE_SECRET_KEY=secret,  # one key for the deployment: any node checks any node's join tokens
        ROUNDTABLE_WS_RATE_PER_S=str(RATE_RAISED),
        ROUNDTABLE_WS_RATE_BURST=str(RATE_RAISED),
        ROUNDTABLE_LEASE_TTL_S=str(lease_ttl_s),
        ROUNDTABLE_FORWARD_KEEPALIVE_S=str(keepalive_s),
        ROUNDTABLE_SFU="off",
        ROUNDTABLE_COMPOSITION_WORKERS="0",
        # The run chooses each workshop's owner (the node of its first member) and kills that one: the least
        # loaded node placement (docs/scaling.md, "Which node owns a workshop") would move workshops elsewhere as
        # the repetitions' leases pile up, so it is held off here.
        ROUNDTABLE_NODE_LOAD_MARGIN="1000000",  # the largest it takes
    )
    return ServerProcess(
        name=f"node-{name}",
        argv=[sys.executable, "-m", "server"],
        env=env,
        cwd=ROOT,
        port=port,
        health_path="/readyz",  # the database answers and the bus is connected
        log_path=workdir / f"node-{name}.log",
    )


@dataclass
class Deployment:
    pg: Postgres
    nats: Nats
    nodes: list[ServerProcess]
    session: aiohttp.ClientSession
    http: aiohttp.ClientSession
    seen_pids: set[int] = field(default_factory=set)

    def remember(self) -> None:
        self.seen_pids |= {n.pid for n in self.nodes if n.proc is not None} | {self.nats.pid}
        self.seen_pids |= set(self.pg.pids()[:1])

    async def leases(self, n: ServerProcess) -> int:
        async with self.http.get(n.base_http + "/readyz") as resp:
            count: int = (await resp.json())["node"]["leases"]
            return count


async def make_workshop(http: aiohttp.ClientSession, base: str, room_sizes: list[int]) -> list[list[Ident]]:
    """A workshop with a room per size (its capacity that size) and a participant per seat, home room set at
    import so that the join lands there."""
    api = base + "/api/v1"

    async def post(path: str, body: Any) -> Any:
        async with http.post(api + path, json=body) as resp:
            if resp.status != 201:
                raise RuntimeError(f"POST {path}: {resp.status} {(await resp.text())[:300]}")
            return await resp.json()

    workshop = await post(
        "/workshops",
        {
            "title": f"Nodes benchmark {uuid.uuid4().hex[:8]}",
            "timezone": "Europe/Brussels",
            "starts_at": "2026-01-01T08:00:00+01:00",
            "ends_at": "2030-12-31T17:00:00+01:00",
        },
    )
    wid = workshop["id"]
    room_ids = [
        (await post(f"/workshops/{wid}/rooms", {"name": f"r{i:03d}", "capacity": size}))["id"]
        for i, size in enumerate(room_sizes)
    ]
    seats = [(i, k) for i, size in enumerate(room_sizes) for k in range(size)]
    people: dict[tuple[int, int], Ident] = {}
    for start in range(0, len(seats), 5000):  # the import takes at most 5000 rows
        chunk = seats[start : start + 5000]
        rows = [
            {"display_name": f"Participant {i:03d}-{k:03d}", "country": "PT", "room_id": room_ids[i]} for i, k in chunk
        ]
        for item in (await post(f"/workshops/{wid}/participants/import", rows))["items"]:
            i, k = (int(x) for x in item["display_name"].removeprefix("Participant ").split("-"))
            people[(i, k)] = Ident(peer_id=item["id"], token=item["join_token"], room=f"r{i:03d}")
    return [[people[(i, k)] for k in range(size)] for i, size in enumerate(room_sizes)]


async def join_placed(d: Deployment, idents: list[Ident], place: list[int], wire: Any = WIRE) -> list[Client]:
    """Join the first member alone (its node becomes the owner), then the rest, each through node `place[i]`."""
    clients = [Client(ident, wire) for ident in idents]
    first, *rest = clients
    _, errors = await join_all([first], d.session, d.nodes[place[0]].base_ws, in_flight=1)
    for n in sorted(set(place[1:])):
        mine = [c for c, p in zip(rest, place[1:], strict=True) if p == n]
        _, more = await join_all(mine, d.session, d.nodes[n].base_ws, in_flight=50)
        errors += more
    if errors:
        await leave_all([c for c in clients if c.ws is not None])
        raise RuntimeError(f"set-up joins failed: {len(errors)}, e.g. {errors[:3]}")
    everyone = {c.ident.peer_id for c in clients}
    if not await until(lambda: all(c.roster == everyone - {c.ident.peer_id} for c in clients), 60):
        wrong = [c for c in clients if c.roster != everyone - {c.ident.peer_id}]
        missing = Counter(p for c in wrong for p in everyone - {c.ident.peer_id} - c.roster)
        extra = Counter(p for c in wrong for p in c.roster - everyone)
        closed = Counter(c.close_code for c in clients if not c.open)
        await leave_all(clients)
        raise RuntimeError(
            f"{len(wrong)} rosters still wrong 60 s after the set-up joins: missing most often "
            f"{missing.most_common(3)}, extra {extra.most_common(3)}, sockets closed by code {dict(closed)}"
        )
    return clients


# Measuring -----------------------------------------------------------------------------------------------------


@dataclass
class Span:
    by_process: dict[str, int] = field(default_factory=dict)  # ns
    pg_ns: int = 0
    wall_s: float = 0.0

    @property
    def cpu_ns(self) -> int:
        return sum(self.by_process.values())


@contextmanager
def measured(d: Deployment) -> Iterator[Span]:
    """CPU of nodes A and B and of the nats-server (each apart), and PostgreSQL's, over the block."""
    named = {"a": d.nodes[0].pid, "b": d.nodes[1].pid, "nats": d.nats.pid}
    procs, pg = CpuMeter(named.values), CpuMeter(d.pg.pids)
    span = Span()
    c0, p0 = procs.read(), pg.read()
    try:
        yield span
    finally:
        c1, p1 = procs.read(), pg.read()
        span.by_process = {k: max(0, c1.by_pid[pid] - c0.by_pid[pid]) for k, pid in named.items()}
        span.pg_ns = pg.delta_ns(p0, p1)
        span.wall_s = (c1.wall_ns - c0.wall_ns) / 1e9


def per(span: Span, count: int, prefix: str) -> dict[str, float | None]:
    """CPU µs per unit: all three processes, each of them, and PostgreSQL."""
    if not count:
        return {f"{prefix}_cpu_us": None}
    out: dict[str, float | None] = {f"{prefix}_cpu_us": span.cpu_ns / count / 1000}
    for k, ns in span.by_process.items():
        out[f"{prefix}_cpu_us_{k}"] = ns / count / 1000
    out[f"{prefix}_pg_us"] = span.pg_ns / count / 1000
    return out


def pairs_of(clients: list[Client]) -> list[Flow]:
    """Pairs (0, 1), (2, 3), …, a flow each way."""
    flows = []
    for i in range(0, len(clients) - 1, 2):
        a, b = clients[i], clients[i + 1]
        for s, r in ((a, b), (b, a)):
            heads = {k: WIRE.relay_parts(k, r.ident.peer_id) for k in ("candidate", "offer")}
            flows.append(Flow(sender=s, receiver=r, heads=heads))
    return flows


# 1. Relay and fan-out ------------------------------------------------------------------------------------------


async def relay(d: Deployment, idents: list[Ident], placement: str, sizes: Sizes) -> dict[str, Any]:
    place = [0] * len(idents) if placement == "one" else [i % 2 for i in range(len(idents))]
    clients = await join_placed(d, idents, place)
    flows = pairs_of(clients)
    index = {id(f): i for i, f in enumerate(flows)}
    out: dict[str, Any] = {}
    try:
        # Paced (W2): latency at a light, fixed rate.
        ledger = Ledger()
        install_sinks(flows, ledger)
        tick = 1.0 / sizes.candidates_per_s
        offer_every = max(1, round(sizes.candidates_per_s / sizes.offers_per_s))
        with measured(d) as span:
            t0 = time.perf_counter()
            for i in range(int(sizes.paced_seconds * sizes.candidates_per_s)):
                await asyncio.sleep(max(0.0, t0 + i * tick - time.perf_counter()))
                f = flows[i % len(flows)]
                for kind in ("candidate", "offer") if i % offer_every == 0 else ("candidate",):
                    head, tail = f.heads[kind]
                    seq = ledger.next_seq(index[id(f)], kind)
                    ledger.sent_ns[seq] = time.perf_counter_ns()
                    await f.sender.send(head + str(seq) + tail)
            await until(lambda: len(ledger.arrivals) >= len(ledger.sent_to), 10)
        check = ledger.check()
        out |= {f"paced_{k}": v for k, v in check.items()}
        out |= ms_stats("paced_candidate", ledger.latencies("candidate"))
        out |= ms_stats("paced_offer", ledger.latencies("offer"))
        out |= per(span, len(ledger.arrivals), "paced_msg")
        # Saturated (W3): CPU per relayed message.
        for kind, count in (("candidate", sizes.saturate_candidates), ("offer", sizes.saturate_offers)):
            ledger = Ledger()
            for f in flows:
                f.received = 0
            install_sinks(flows, ledger)
            with measured(d) as span:
                try:
                    async with asyncio.timeout(sizes.phase_timeout_s):
                        await _saturate(flows, ledger, kind, count, sizes.window)
                    complete = True
                except TimeoutError:
                    complete = False
            check = ledger.check()
            out |= {f"{kind}_complete": complete, **{f"{kind}_{k}": v for k, v in check.items()}}
            out |= per(span, len(ledger.arrivals), f"{kind}_msg")
            out[f"{kind}_msgs_per_s"] = len(ledger.arrivals) / span.wall_s if span.wall_s else None
        out["held"] = sum(1 for c in clients if c.open)
        out["expected_held"] = len(clients)
        return out
    finally:
        await leave_all(clients)


async def fanout(d: Deployment, idents: list[Ident], placement: str, sizes: Sizes) -> dict[str, Any]:
    """W4's presence fan-out: every member sends `update` and waits for its own echo, `fanout_updates` times."""
    place = [0] * len(idents) if placement == "one" else [i % 2 for i in range(len(idents))]
    clients = await join_placed(d, idents, place)
    p = Presence()
    for c in clients:
        c.sink = p.sink
        p.sent_ns[c.ident.peer_id] = []
        p.echo[c.ident.peer_id] = asyncio.Event()
    updates = sizes.fanout_updates
    expected = len(clients) * len(clients) * updates

    async def member(c: Client) -> None:
        me = c.ident.peer_id
        for i in range(updates):
            p.echo[me].clear()
            p.sent_ns[me].append(time.perf_counter_ns())
            await c.send(WIRE.update(i % 2 == 0))
            await p.echo[me].wait()

    try:
        with measured(d) as span:
            try:
                async with asyncio.timeout(sizes.phase_timeout_s):
                    await asyncio.gather(*(member(c) for c in clients))
                    await until(lambda: p.delivered >= expected, 30)
                complete = True
            except TimeoutError:
                complete = False
        wrong = sum(1 for r in idents for s in idents if p.got.get((r.peer_id, s.peer_id), 0) != updates)
        return {
            "fanout_complete": complete,
            "fanout_deliveries": p.delivered,
            "fanout_expected": expected,
            "fanout_wrong_counts": wrong,
            **per(span, p.delivered, "delivery"),
            **ms_stats("delivery", p.latencies),
        }
    finally:
        await leave_all(clients)


# 2. Failover ---------------------------------------------------------------------------------------------------


class ResumeWire(RoundtableWire):
    """A hello that carries the member's resume token (from its first welcome)."""

    def __init__(self, resume: dict[str, str]) -> None:
        self.resume = resume

    def hello(self, ident: Ident) -> str | None:
        return json.dumps(
            {"type": "hello", "protocol": [1], "token": ident.token, "resume": self.resume[ident.peer_id]}
        )


@dataclass
class Comeback:
    closed_s: float | None = None
    close_code: int | None = None
    welcome_s: float | None = None
    resumed: bool | None = None
    welcome: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    client: Client | None = None


async def failover(d: Deployment, idents: list[Ident], owner: int, sizes: Sizes) -> dict[str, Any]:
    """The owner, with one member of its own, SIGKILLed; `len(idents) - 1` members on the two other nodes."""
    others = [n for n in range(3) if n != owner]
    place = [owner] + [others[i % 2] for i in range(len(idents) - 1)]
    clients = await join_placed(d, idents, place)
    members = list(zip(clients[1:], place[1:], strict=True))
    leases_before = [await d.leases(n) for n in d.nodes]
    wire = ResumeWire({c.ident.peer_id: c.welcome["resume"] for c, _ in members})
    # A place outlives its node once its grant is in PostgreSQL (written after the welcome, in the background):
    # wait for every member's, with the token of its welcome, so the kill tests the resume, not the writer's lag.
    t_grants = time.perf_counter()
    written = await grants_written(d, wire.resume, sizes.failover_timeout_s)
    grants_s = time.perf_counter() - t_grants
    back = {c.ident.peer_id: Comeback() for c, _ in members}
    victim = d.nodes[owner]
    t_kill = 0.0

    async def come_back(c: Client, n: int) -> None:
        entry = back[c.ident.peer_id]
        await c.ended.wait()
        entry.closed_s, entry.close_code = time.perf_counter() - t_kill, c.close_code
        with contextlib.suppress(Exception):
            await c.close()
        while True:  # as the browser does on 1012: at once, then again until the place is back
            entry.attempts += 1
            again = Client(c.ident, wire)
            try:
                await again.join(d.session, d.nodes[n].base_ws)
            except (JoinError, TimeoutError, aiohttp.ClientError, ConnectionError):
                await again.close()
                await asyncio.sleep(0.1)
                continue
            entry.welcome_s = time.perf_counter() - t_kill
            entry.resumed = again.welcome.get("resumed") is True
            if not entry.resumed:
                entry.welcome = {k: v for k, v in again.welcome.items() if k not in ("peers", "chat")}
            entry.client = again
            return

    tasks: list[asyncio.Task[None]] = []
    try:
        tasks = [asyncio.create_task(come_back(c, n)) for c, n in members]
        await asyncio.sleep(0)  # every watcher waits on its socket before the kill
        t_kill = time.perf_counter()
        assert victim.proc is not None
        os.kill(victim.pid, signal.SIGKILL)
        _, pending = await asyncio.wait(tasks, timeout=sizes.failover_timeout_s)
        for t in pending:
            t.cancel()
        victim.proc.wait(10)
        welcomed = [e for e in back.values() if e.welcome_s is not None]
        resumed = [e for e in welcomed if e.resumed]
        closes = [e.closed_s for e in back.values() if e.closed_s is not None]
        codes: dict[str, int] = {}
        for e in back.values():
            codes[str(e.close_code)] = codes.get(str(e.close_code), 0) + 1
        all_resumed = len(resumed) == len(members)
        edges = {c.ident.peer_id: "abc"[n] for c, n in members}
        fresh = [(pid, e) for pid, e in back.items() if e.welcome_s is not None and not e.resumed]
        by_edge: dict[str, int] = {}
        for pid, _ in fresh:
            by_edge[edges[pid]] = by_edge.get(edges[pid], 0) + 1
        return {
            "members": len(members),
            "owner": "abc"[owner],
            "leases_before": leases_before,
            "grants_at_kill": written,
            "grants_wait_s": grants_s,
            "resumed": len(resumed),
            "welcomed_not_resumed": len(welcomed) - len(resumed),
            "not_back": len(members) - len(welcomed),
            "not_resumed_by_edge": by_edge,
            "not_resumed_welcome_s": sorted(round(e.welcome_s or 0, 2) for _, e in fresh)[:20],
            "not_resumed_sample": [
                {"participant": pid, "edge": edges[pid], "welcome": json.dumps(e.welcome)[:600]} for pid, e in fresh[:3]
            ],
            "close_codes": codes,
            "first_close_s": min(closes, default=None),
            "last_close_s": max(closes, default=None),
            "first_resumed_s": min((e.welcome_s for e in resumed), default=None),  # type: ignore[type-var]
            "median_resumed_s": statistics.median([e.welcome_s for e in resumed]) if resumed else None,  # type: ignore[type-var]
            "all_resumed_s": max(e.welcome_s for e in resumed) if all_resumed else None,  # type: ignore[type-var]
            "all_back_s": max(e.welcome_s for e in welcomed) if len(welcomed) == len(members) else None,  # type: ignore[type-var]
            "attempts_max": max((e.attempts for e in back.values()), default=0),
            "bounded_at_s": sizes.failover_timeout_s,
        }
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        again = [e.client for e in back.values() if e.client is not None]
        await leave_all(again)
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        if victim.proc is not None and victim.proc.poll() is None:
            victim.proc.kill()
            victim.proc.wait(10)
        victim.proc = None
        await victim.start()  # the same port: the deployment is whole again for the next repetition
        d.remember()


async def grants_written(d: Deployment, tokens: dict[str, str], timeout_s: float) -> int:
    """Wait (at most `timeout_s`) until every participant's resume grant holds its token; how many do."""
    want = {uuid.UUID(pid): hashlib.sha256(token.encode()).digest() for pid, token in tokens.items()}
    conn = await asyncpg.connect(d.pg.dsn)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            rows = await conn.fetch(
                "SELECT participant_id, token_sha256 FROM resume_grants WHERE participant_id = ANY($1::uuid[])",
                list(want),
            )
            count = sum(1 for r in rows if bytes(r["token_sha256"]) == want[r["participant_id"]])
            if count == len(want) or time.monotonic() > deadline:
                return count
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


# The run -------------------------------------------------------------------------------------------------------


def spread(values: list[float | None]) -> dict[str, float] | None:
    clean = [v for v in values if v is not None]
    if not clean:
        return None
    return {"min": min(clean), "median": statistics.median(clean), "max": max(clean), "n": len(clean)}


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    runs = results["relay"]
    summary: dict[str, Any] = {}
    keys = [
        "paced_candidate_p50_ms",
        "paced_candidate_p99_ms",
        "paced_offer_p50_ms",
        "paced_offer_p99_ms",
        "paced_msg_cpu_us",
        "candidate_msg_cpu_us",
        "candidate_msg_cpu_us_a",
        "candidate_msg_cpu_us_b",
        "candidate_msg_cpu_us_nats",
        "offer_msg_cpu_us",
        "delivery_cpu_us",
        "delivery_cpu_us_a",
        "delivery_cpu_us_b",
        "delivery_cpu_us_nats",
        "delivery_p50_ms",
        "delivery_p99_ms",
    ]
    for placement in ("one", "two"):
        mine = [r["result"] for r in runs if r["placement"] == placement and "result" in r]
        summary[placement] = {k: spread([r.get(k) for r in mine]) for k in keys}
    for k in ("paced_msg_cpu_us", "candidate_msg_cpu_us", "offer_msg_cpu_us", "delivery_cpu_us"):
        ratios = []
        for rep in {r["rep"] for r in runs}:
            pair = {r["placement"]: r.get("result", {}).get(k) for r in runs if r["rep"] == rep}
            if pair.get("one") and pair.get("two"):
                ratios.append(pair["two"] / pair["one"])
        summary[f"ratio_{k}"] = spread(ratios)
    summary["correctness"] = [
        f"{r['placement']} rep {r['rep']}: {k}={r['result'][k]}"
        for r in runs
        if "result" in r
        for k in (
            "paced_lost",
            "paced_duplicated",
            "paced_misdelivered",
            "candidate_lost",
            "candidate_duplicated",
            "candidate_misdelivered",
            "offer_lost",
            "offer_duplicated",
            "offer_misdelivered",
            "fanout_wrong_counts",
        )
        if r["result"].get(k)
    ]
    for n, reps in results["failover"].items():
        ok = [r["result"] for r in reps if "result" in r]
        summary[f"failover_{n}"] = {
            "all_resumed_s": spread([r["all_resumed_s"] for r in ok]),
            "median_resumed_s": spread([r["median_resumed_s"] for r in ok]),
            "first_close_s": spread([r["first_close_s"] for r in ok]),
            "reps_all_resumed": sum(1 for r in ok if r["all_resumed_s"] is not None),
            "not_resumed_per_rep": [r["welcomed_not_resumed"] + r["not_back"] for r in ok],
            "reps": len(reps),
        }
    return summary


def _machine() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nats = next((found for b in NATS_BINARIES if (found := shutil.which(b))), None)
    nats_v = subprocess.run([nats, "--version"], capture_output=True, text=True, check=False).stdout if nats else ""
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nats_server": nats_v.strip(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = SMOKE if args.smoke else FULL
    reps = args.reps if args.reps is not None else sizes.reps
    failover_sizes = tuple(args.failover) if args.failover else sizes.failover
    failover_reps = args.failover_reps if args.failover_reps is not None else sizes.failover_reps
    raise_nofile()
    core = pin_loadgen()
    workdir = Path(tempfile.mkdtemp(prefix="rt-bench-nodes-"))
    t_start = time.monotonic()
    results: dict[str, Any] = {
        "meta": {
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "command": " ".join(["python -m bench.nodes", *sys.argv[1:]]),
            "smoke": args.smoke,
            "sizes": asdict(sizes),
            "reps": reps,
            "failover_sizes": failover_sizes,
            "failover_reps": failover_reps,
            "lease_ttl_s": args.lease_ttl_s,
            "forward_keepalive_s": args.keepalive_s,
            "machine": _machine(),
            "loadgen_core": core,
        },
        "relay": [],
        "failover": {str(n): [] for n in failover_sizes},
        "errors": [],
    }
    pg = Postgres()
    nats = Nats(workdir)
    nodes: list[ServerProcess] = []
    deployment: Deployment | None = None
    try:
        await pg.start()
        await nats.start()
        secret = secrets.token_hex(32)
        nodes = [
            node(workdir, n, dsn=pg.dsn, bus_url=nats.url, secret=secret, lease_ttl_s=args.lease_ttl_s,
                 keepalive_s=args.keepalive_s)
            for n in "abc"
        ]  # fmt: skip
        await nodes[0].start()  # migrates the database first
        await asyncio.gather(nodes[1].start(), nodes[2].start())
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with new_session() as session, aiohttp.ClientSession(headers=headers) as http:
            deployment = d = Deployment(pg=pg, nats=nats, nodes=nodes, session=session, http=http)
            d.remember()
            results["meta"]["pids"] = {"a": nodes[0].pid, "b": nodes[1].pid, "c": nodes[2].pid, "nats": nats.pid}
            room_sizes = [2 * sizes.pairs, sizes.fanout_members] * 2 * reps
            pools = await make_workshop(http, nodes[2].base_http, room_sizes) if reps else []
            results["meta"]["setup_s"] = round(time.monotonic() - t_start, 1)
            for rep in range(reps):
                if rep and time.monotonic() - t_start > args.budget_min * 60 / 2:
                    results["meta"].setdefault("cut_short", []).append(f"relay: {rep} of {reps} repetitions")
                    break
                order = ("one", "two") if rep % 2 == 0 else ("two", "one")
                for k, placement in enumerate(order):
                    entry: dict[str, Any] = {"placement": placement, "rep": rep}
                    if not args.smoke:
                        entry["quiet"] = (await wait_quiet(max_wait_s=2.0)).as_dict()
                    relay_room, fan_room = pools[(rep * 2 + k) * 2], pools[(rep * 2 + k) * 2 + 1]
                    try:
                        entry["result"] = await relay(d, relay_room, placement, sizes)
                        entry["result"] |= await fanout(d, fan_room, placement, sizes)
                        entry["result"]["leases"] = [await d.leases(n) for n in nodes]
                    except Exception as exc:
                        entry["error"] = f"{type(exc).__name__}: {exc}"
                        results["errors"].append(entry["error"])
                    results["relay"].append(entry)
                    print(f"  relay {placement} rep {rep}: {entry.get('error', 'ok')}", file=sys.stderr, flush=True)
            for n in failover_sizes:
                rooms = [(await make_workshop(http, nodes[2].base_http, [n + 1]))[0] for _ in range(failover_reps)]
                for rep in range(failover_reps):
                    if rep and time.monotonic() - t_start > args.budget_min * 60:
                        results["meta"].setdefault("cut_short", []).append(f"failover {n}: {rep} of {failover_reps}")
                        break
                    entry = {"rep": rep}
                    if not args.smoke:
                        entry["quiet"] = (await wait_quiet(max_wait_s=2.0)).as_dict()
                    try:
                        entry["result"] = await failover(d, rooms[rep], rep % 3, sizes)
                    except Exception as exc:
                        entry["error"] = f"{type(exc).__name__}: {exc}"
                        results["errors"].append(entry["error"])
                    results["failover"][str(n)].append(entry)
                    got = entry.get("result", {}).get("all_resumed_s", entry.get("error"))
                    print(f"  failover {n} rep {rep}: {got}", file=sys.stderr, flush=True)
    finally:
        for proc in nodes:
            if proc.proc is not None:
                proc.seen_pids.add(proc.pid)
        await asyncio.gather(*(p.stop() for p in nodes if p.proc is not None), return_exceptions=True)
        nats.stop()
        await pg.stop()
        seen = set(deployment.seen_pids) if deployment is not None else set()
        for p in nodes:
            seen |= p.seen_pids
        results["stopped"] = {"pids": sorted(seen), "left_running": sorted(pid for pid in seen if alive(pid))}
        results["meta"]["elapsed_s"] = round(time.monotonic() - t_start, 1)
        for p in nodes:
            if p.log_path.exists():
                log = p.log_path.read_text(errors="replace")
                results.setdefault("tracebacks", {})[p.name] = log.count("Traceback")
                results.setdefault("logs_tail", {})[p.name] = log[-3000:]
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    results["summary"] = summarise(results)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nodes", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, correctness only (tests/bench)")
    parser.add_argument("--reps", type=int, default=None, help="relay/fan-out repetitions (5; smoke: 1)")
    parser.add_argument("--failover", type=int, action="append", help="members per failover (60 and 600)")
    parser.add_argument("--failover-reps", type=int, default=None, help="repetitions per failover size (5)")
    from server.settings import Settings  # here, as server.db above: the benchmark's clients import no server

    defaults = Settings.model_fields
    parser.add_argument(
        "--lease-ttl-s",
        type=float,
        default=defaults["lease_ttl_s"].default,
        help="ROUNDTABLE_LEASE_TTL_S (its default)",
    )
    parser.add_argument(
        "--keepalive-s",
        type=float,
        default=defaults["forward_keepalive_s"].default,
        help="ROUNDTABLE_FORWARD_KEEPALIVE_S (its default)",
    )
    parser.add_argument("--budget-min", type=float, default=10.0, help="start no repetition past this many minutes")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (bench/results/nodes-<stamp>.json)")
    parser.add_argument("--keep-workdir", action="store_true", help="keep the nodes' logs and data")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args))
    out = args.out or ROOT / "bench" / "results" / time.strftime("nodes-%Y%m%d-%H%M%S.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    print(json.dumps(results["summary"], indent=1, default=str))
    print(f"results: {out}", file=sys.stderr)
    return 1 if results["errors"] or results["stopped"]["left_running"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
