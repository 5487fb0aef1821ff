"""The workloads, one repetition of one server each. Every load is bounded in count and in time.

Each function returns a flat dict of figures; `cpu_ns` fields are the server's CPU (all threads, schedstat)
over the measured part, `pg_ns` that of Roundtable's PostgreSQL over the same span. Correctness is counted
alongside (errors, lost, duplicated, wrong rosters, connections not held) and never timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.clients import Client, Ident, StuckReceiver, Wire, join_all, leave_all, seq_of
from bench.measure import CpuSnapshot, percentile
from bench.servers import Pools, ServerProcess

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Sizes:
    """How big each workload is. `FULL` is the benchmark; `SMOKE` is the correctness check `make test` runs."""

    w1_clients: int = 1000
    w1_in_flight: int = 100
    w1_rejoin: int = 200
    w1_workshop: int = 60
    w2_pairs: int = 10
    w2_seconds: float = 5.0
    w2_candidates_per_s: float = 200.0
    w2_offers_per_s: float = 40.0
    w3_pairs: int = 20
    w3_candidates_per_flow: int = 1500
    w3_offers_per_flow: int = 500
    w3_window: int = 8
    w4_rooms10: int = 20
    w4_updates10: int = 20
    w4_rooms60: int = 3
    w4_updates60: int = 5
    w5_steps: tuple[int, ...] = (1000, 5000, 10000)
    w5_in_flight: int = 200
    w5_hold_s: float = 11.0
    w5_restart: bool = True  # a fresh server process per repetition, so that RSS starts cold
    w6_rate_per_sender: float = 20.0
    w6_offers_per_sender: float = 60.0
    w6_seconds: float = 5.0
    w6_drain_s: float = 3.0
    w7_participants: int = 3
    w7_window_s: float = 8.0
    w8_smoke: bool = False  # W8 (bench.sfu_plenary) has sizes of its own: FULL or SMOKE there
    phase_timeout_s: float = 120.0

    @property
    def rooms10_needed(self) -> int:
        return max(max(self.w5_steps) // 10, 230)


FULL = Sizes()
SMOKE = Sizes(
    w1_clients=50,
    w1_in_flight=10,
    w1_rejoin=10,
    w1_workshop=12,
    w2_pairs=4,
    w2_seconds=1.0,
    w2_candidates_per_s=100.0,
    w2_offers_per_s=20.0,
    w3_pairs=4,
    w3_candidates_per_flow=200,
    w3_offers_per_flow=50,
    w3_window=16,
    w4_rooms10=2,
    w4_updates10=5,
    w4_rooms60=1,
    w4_updates60=2,
    w5_steps=(100, 200),
    w5_in_flight=50,
    w5_hold_s=1.0,
    w5_restart=False,
    w6_rate_per_sender=20.0,
    w6_offers_per_sender=20.0,
    w6_seconds=1.5,
    w6_drain_s=0.5,
    w8_smoke=True,
    phase_timeout_s=60.0,
)

# Which rooms each workload uses, so that one workload's stragglers never meet the next one's clients.
W1_ROOMS = slice(0, 100)
W2_ROOMS_FROM = 100
W3_ROOMS_FROM = 110
W4_ROOMS_FROM = 130
W6_ROOM = 229
W7_ROOM = 228
W1_WORKSHOP_ROOM = 0  # of rooms60
W4_ROOMS60_FROM = 1
W5_PROBE_ROOM = 4  # of rooms60


@dataclass
class Target:
    server: ServerProcess
    wire: Wire
    pools: Pools
    session: aiohttp.ClientSession
    restart: Callable[[], Awaitable[None]] | None = None

    @property
    def base(self) -> str:
        return self.server.base_ws


# Measuring ----------------------------------------------------------------------------------------------------


@dataclass
class Span:
    cpu_ns: int = 0
    pg_ns: int = 0
    wall_s: float = 0.0


@contextmanager
def measured(target: Target) -> Iterator[Span]:
    """Server (and PostgreSQL) CPU between entering and leaving the block."""
    cpu, pg = target.server.cpu(), target.server.pg_cpu()
    span = Span()
    c0: CpuSnapshot = cpu.read()
    p0: CpuSnapshot = pg.read()
    try:
        yield span
    finally:
        c1, p1 = cpu.read(), pg.read()
        span.cpu_ns = cpu.delta_ns(c0, c1)
        span.pg_ns = pg.delta_ns(p0, p1)
        span.wall_s = (c1.wall_ns - c0.wall_ns) / 1e9


def us(ns: float, count: int) -> float | None:
    return ns / count / 1000 if count else None


def ms_stats(prefix: str, seconds: list[float]) -> dict[str, float]:
    return {
        f"{prefix}_p50_ms": percentile(seconds, 50) * 1000,
        f"{prefix}_p99_ms": percentile(seconds, 99) * 1000,
        f"{prefix}_max_ms": max(seconds, default=float("nan")) * 1000,
    }


async def until(predicate: Callable[[], bool], timeout_s: float, step_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step_s)
    return True


def clients_for(rooms: list[list[Ident]], wire: Wire) -> list[Client]:
    return [Client(ident, wire) for room in rooms for ident in room]


def roster_ok(clients: list[Client], wire: Wire) -> Callable[[], int]:
    """A function counting clients whose roster is not exactly the others in their room (0 when all agree)."""
    if not wire.has_rooms:
        return lambda: 0
    members: dict[str, set[str]] = {}
    for c in clients:
        members.setdefault(c.ident.room, set()).add(c.ident.peer_id)

    def wrong() -> int:
        return sum(1 for c in clients if c.roster != members[c.ident.room] - {c.ident.peer_id})

    return wrong


async def join_rooms(target: Target, rooms: list[list[Ident]], *, in_flight: int = 50) -> list[Client]:
    """Join everyone in `rooms` (unmeasured set-up) and wait until every roster is complete."""
    clients = clients_for(rooms, target.wire)
    _, errors = await join_all(clients, target.session, target.base, in_flight=in_flight)
    if errors:
        await leave_all([c for c in clients if c.ws is not None])
        raise RuntimeError(f"{target.server.name}: set-up joins failed: {errors[:3]}")
    wrong = roster_ok(clients, target.wire)
    if not await until(lambda: wrong() == 0, 30):
        sample = next(c for c in clients if c.roster != {i.peer_id for i in _room_of(c, rooms)} - {c.ident.peer_id})
        await leave_all(clients)
        raise RuntimeError(
            f"{target.server.name}: {wrong()} rosters still wrong 30 s after set-up joins; e.g. {sample.ident.peer_id} "
            f"sees {sorted(sample.roster)[:12]}"
        )
    return clients


def _room_of(client: Client, rooms: list[list[Ident]]) -> list[Ident]:
    return next(room for room in rooms if client.ident in room)


# W1: join burst, leave and rejoin, the reference workshop ----------------------------------------------------


async def w1_join(target: Target, sizes: Sizes) -> dict[str, Any]:
    wire, rng = target.wire, random.Random(1)
    rooms = target.pools.rooms10[W1_ROOMS][: sizes.w1_clients // 10]
    clients = clients_for(rooms, wire)
    order = clients[:]
    rng.shuffle(order)
    wrong = roster_ok(clients, wire)
    out: dict[str, Any] = {}

    with measured(target) as burst:
        start = time.perf_counter()
        times, errors = await join_all(order, target.session, target.base, in_flight=sizes.w1_in_flight)
        out["burst_wall_s"] = time.perf_counter() - start
        converged = await until(lambda: wrong() == 0, 30)
    joined = len(times)
    out |= {
        "burst_joins": joined,
        "burst_errors": len(errors),
        "burst_error_sample": errors[:3],
        "burst_rosters_converged": converged,
        "burst_cpu_us_per_join": us(burst.cpu_ns, joined),
        "burst_pg_us_per_join": us(burst.pg_ns, joined),
        **ms_stats("burst_join", times),
    }

    # Leave and rejoin: the same people (PeerJS: fresh ids, since its ids outlive a closed socket for a moment).
    chosen = rng.sample(range(len(clients)), min(sizes.w1_rejoin, len(clients)))
    gate = asyncio.Semaphore(sizes.w1_in_flight)
    rejoin_errors: list[str] = []
    rejoin_times: list[float] = []

    async def cycle(i: int) -> None:
        async with gate:
            old = clients[i]
            await old.leave()
            ident = old.ident
            if not wire.has_rooms:
                ident = Ident(ident.peer_id + "r", ident.token, ident.room)
            fresh = Client(ident, wire)
            try:
                rejoin_times.append(await fresh.join(target.session, target.base))
            except Exception as exc:
                rejoin_errors.append(f"{type(exc).__name__}: {exc}"[:300])
            clients[i] = fresh

    wrong = roster_ok(clients, wire)
    with measured(target) as rejoin:
        await asyncio.gather(*(cycle(i) for i in chosen))
        wrong = roster_ok(clients, wire)
        rejoined_ok = await until(lambda: wrong() == 0, 30)
    out |= {
        "rejoin_cycles": len(rejoin_times),
        "rejoin_errors": len(rejoin_errors),
        "rejoin_error_sample": rejoin_errors[:3],
        "rejoin_rosters_converged": rejoined_ok,
        "rejoin_wrong_rosters": wrong(),
        "rejoin_cpu_us_per_cycle": us(rejoin.cpu_ns, len(rejoin_times)),
        "rejoin_pg_us_per_cycle": us(rejoin.pg_ns, len(rejoin_times)),
        "held_after_rejoin": sum(1 for c in clients if c.open),
        "expected_held": len(clients),
    }
    await leave_all(clients)

    # The reference workshop: one room, everyone joins within a second.
    people = target.pools.rooms60[W1_WORKSHOP_ROOM][: sizes.w1_workshop]
    ws_clients = clients_for([people], wire)
    wrong = roster_ok(ws_clients, wire)
    ws_errors: list[str] = []
    ws_times: list[float] = []

    async def arrive(i: int, c: Client, t0: float) -> None:
        await asyncio.sleep(max(0.0, t0 + i / len(ws_clients) - time.perf_counter()))
        try:
            ws_times.append(await c.join(target.session, target.base))
        except Exception as exc:
            ws_errors.append(f"{type(exc).__name__}: {exc}"[:300])

    with measured(target) as workshop:
        t0 = time.perf_counter()
        await asyncio.gather(*(arrive(i, c, t0) for i, c in enumerate(ws_clients)))
        all_seen = await until(lambda: wrong() == 0, 30)
        out["workshop_all_see_all_s"] = time.perf_counter() - t0
    out |= {
        "workshop_joins": len(ws_times),
        "workshop_errors": len(ws_errors),
        "workshop_error_sample": ws_errors[:3],
        "workshop_rosters_converged": all_seen,
        "workshop_cpu_us_per_join": us(workshop.cpu_ns, len(ws_times)),
        "workshop_pg_us_per_join": us(workshop.pg_ns, len(ws_times)),
        **ms_stats("workshop_join", ws_times),
    }
    await leave_all(ws_clients)
    return out


# Relayed traffic (W2, W3) -------------------------------------------------------------------------------------


@dataclass
class Flow:
    """Messages from `sender` to `receiver`; the receiver's sink counts what arrives."""

    sender: Client
    receiver: Client
    heads: dict[str, tuple[str, str]]
    received: int = 0
    wake_at: int = 0
    event: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Ledger:
    """Every relayed message of a phase: when it was sent, to whom, and each arrival."""

    sent_ns: list[int] = field(default_factory=list)
    sent_to: list[int] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    arrivals: list[tuple[int, int, int]] = field(default_factory=list)  # (seq, receiver index, ns)

    def next_seq(self, receiver: int, kind: str) -> int:
        self.sent_to.append(receiver)
        self.kind.append(kind)
        self.sent_ns.append(0)
        return len(self.sent_to) - 1

    def check(self) -> dict[str, int]:
        seen = [0] * len(self.sent_to)
        misdelivered = 0
        for seq, who, _ in self.arrivals:
            seen[seq] += 1
            if self.sent_to[seq] != who:
                misdelivered += 1
        return {
            "sent": len(seen),
            "lost": sum(1 for n in seen if n == 0),
            "duplicated": sum(1 for n in seen if n > 1),
            "misdelivered": misdelivered,
        }

    def latencies(self, kind: str) -> list[float]:
        return [(ns - self.sent_ns[seq]) / 1e9 for seq, _, ns in self.arrivals if self.kind[seq] == kind]


def pair_flows(clients: list[Client], pairs: int) -> list[Flow]:
    """Pairs within a room (p00↔p01, p02↔p03, ...), a flow each way."""
    flows = []
    for i in range(0, 2 * pairs, 2):
        a, b = clients[i], clients[i + 1]
        for s, r in ((a, b), (b, a)):
            heads = {k: s.wire.relay_parts(k, r.ident.peer_id) for k in ("candidate", "offer")}
            flows.append(Flow(sender=s, receiver=r, heads=heads))
    return flows


def install_sinks(flows: list[Flow], ledger: Ledger) -> None:
    index = {id(f.receiver): i for i, f in enumerate(flows)}
    for f in flows:
        who = index[id(f.receiver)]

        def sink(client: Client, text: str, now: int, f: Flow = f, who: int = who) -> None:
            seq = seq_of(text)
            if seq < 0:
                client.presence(text)
                return
            ledger.arrivals.append((seq, who, now))
            f.received += 1
            if f.received >= f.wake_at:
                f.event.set()

        f.receiver.sink = sink


async def relay_clients(target: Target, first_room: int, pairs: int) -> list[Client]:
    rooms = target.pools.rooms10[first_room : first_room + (pairs * 2 + 9) // 10]
    return await join_rooms(target, rooms)


async def w2_latency(target: Target, sizes: Sizes) -> dict[str, Any]:
    """A fixed light rate: candidates (~200 B) and offers (~3 KB) spread evenly over the flows."""
    clients = await relay_clients(target, W2_ROOMS_FROM, sizes.w2_pairs)
    flows = pair_flows(clients, sizes.w2_pairs)
    ledger = Ledger()
    install_sinks(flows, ledger)
    index = {id(f): i for i, f in enumerate(flows)}
    tick = 1.0 / sizes.w2_candidates_per_s
    offer_every = max(1, round(sizes.w2_candidates_per_s / sizes.w2_offers_per_s))
    ticks = int(sizes.w2_seconds * sizes.w2_candidates_per_s)
    try:
        with measured(target) as span:
            t0 = time.perf_counter()
            for i in range(ticks):
                await asyncio.sleep(max(0.0, t0 + i * tick - time.perf_counter()))
                f = flows[i % len(flows)]
                kinds = ("candidate", "offer") if i % offer_every == 0 else ("candidate",)
                for kind in kinds:
                    head, tail = f.heads[kind]
                    seq = ledger.next_seq(index[id(f)], kind)
                    ledger.sent_ns[seq] = time.perf_counter_ns()
                    await f.sender.send(head + str(seq) + tail)
            await until(lambda: len(ledger.arrivals) >= len(ledger.sent_to), 10)
        cand, offer = ledger.latencies("candidate"), ledger.latencies("offer")
        return {
            **ledger.check(),
            **ms_stats("candidate", cand),
            **ms_stats("offer", offer),
            "cpu_us_per_msg": us(span.cpu_ns, len(ledger.arrivals)),
            "server_cpu_share": span.cpu_ns / 1e9 / span.wall_s if span.wall_s else None,
        }
    finally:
        await leave_all(clients)


async def _saturate(flows: list[Flow], ledger: Ledger, kind: str, count: int, window: int) -> None:
    index = {id(f): i for i, f in enumerate(flows)}

    async def run(f: Flow) -> None:
        head, tail = f.heads[kind]
        who = index[id(f)]
        base = f.received
        for start in range(0, count, window):
            n = min(window, count - start)
            f.wake_at = base + start + n
            f.event.clear()
            for _ in range(n):
                seq = ledger.next_seq(who, kind)
                ledger.sent_ns[seq] = time.perf_counter_ns()
                await f.sender.send(head + str(seq) + tail)
            if f.received < f.wake_at:
                await f.event.wait()

    await asyncio.gather(*(run(f) for f in flows))


async def w3_saturation(target: Target, sizes: Sizes) -> dict[str, Any]:
    """Relay as fast as the flows' windows allow; server CPU per relayed message, per message size."""
    clients = await relay_clients(target, W3_ROOMS_FROM, sizes.w3_pairs)
    flows = pair_flows(clients, sizes.w3_pairs)
    out: dict[str, Any] = {}
    try:
        for kind, count in (("candidate", sizes.w3_candidates_per_flow), ("offer", sizes.w3_offers_per_flow)):
            ledger = Ledger()
            for f in flows:
                f.received = 0
            install_sinks(flows, ledger)
            with measured(target) as span:
                try:
                    async with asyncio.timeout(sizes.phase_timeout_s):
                        await _saturate(flows, ledger, kind, count, sizes.w3_window)
                    complete = True
                except TimeoutError:
                    complete = False
            check = ledger.check()
            delivered = len(ledger.arrivals)
            out |= {
                f"{kind}_complete": complete,
                f"{kind}_sent": check["sent"],
                f"{kind}_lost": check["lost"],
                f"{kind}_duplicated": check["duplicated"],
                f"{kind}_misdelivered": check["misdelivered"],
                f"{kind}_cpu_us_per_msg": us(span.cpu_ns, delivered),
                f"{kind}_msgs_per_s": delivered / span.wall_s if span.wall_s else None,
                f"{kind}_server_cpu_share": span.cpu_ns / 1e9 / span.wall_s if span.wall_s else None,
            }
        out["held"] = sum(1 for c in clients if c.open)
        out["expected_held"] = len(clients)
        return out
    finally:
        await leave_all(clients)


# Presence fan-out (W4, W6) ------------------------------------------------------------------------------------


@dataclass
class Presence:
    """peer_updated deliveries: per receiver and subject, matched in order to the subject's sends."""

    sent_ns: dict[str, list[int]] = field(default_factory=dict)
    got: dict[tuple[str, str], int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    delivered: int = 0
    echo: dict[str, asyncio.Event] = field(default_factory=dict)
    gone: dict[str, str] = field(default_factory=dict)  # peer id → what the room was told about it
    measure_for: set[str] | None = None  # receivers whose latency counts (None: all)

    def sink(self, client: Client, text: str, now: int) -> None:
        data = json.loads(text)
        kind = data.get("type")
        if kind != "peer_updated":
            if kind in ("peer_left", "peer_reconnecting"):
                self.gone[data["peer_id"]] = kind
            client.presence(text)
            return
        subject = data["peer"]["id"]
        me = client.ident.peer_id
        key = (me, subject)
        k = self.got.get(key, 0)
        self.got[key] = k + 1
        self.delivered += 1
        sent = self.sent_ns.get(subject)
        if sent is not None and k < len(sent) and (self.measure_for is None or me in self.measure_for):
            self.latencies.append((now - sent[k]) / 1e9)
        if subject == me:
            event = self.echo.get(me)
            if event is not None:
                event.set()


async def w4_fanout(target: Target, sizes: Sizes) -> dict[str, Any]:
    """Everyone in a room changes presence (`update` → peer_updated to the whole room, sender included),
    each waiting for its own echo before the next: server CPU per delivery, rooms of 10 and of 60."""
    if not target.wire.has_rooms:
        return {"n/a": "PeerJS has no rooms"}
    out: dict[str, Any] = {}
    pools = target.pools
    for label, rooms, updates in (
        ("room10", pools.rooms10[W4_ROOMS_FROM : W4_ROOMS_FROM + sizes.w4_rooms10], sizes.w4_updates10),
        ("room60", pools.rooms60[W4_ROOMS60_FROM : W4_ROOMS60_FROM + sizes.w4_rooms60], sizes.w4_updates60),
    ):
        clients = await join_rooms(target, rooms)
        p = Presence()
        for c in clients:
            c.sink = p.sink
            p.sent_ns[c.ident.peer_id] = []
            p.echo[c.ident.peer_id] = asyncio.Event()
        expected = sum(len(r) * len(r) * updates for r in rooms)

        async def member(c: Client, updates: int = updates, p: Presence = p) -> None:
            me = c.ident.peer_id
            for i in range(updates):
                p.echo[me].clear()
                p.sent_ns[me].append(time.perf_counter_ns())
                await c.send(c.wire.update(i % 2 == 0))
                await p.echo[me].wait()

        try:
            with measured(target) as span:
                try:
                    async with asyncio.timeout(sizes.phase_timeout_s):
                        await asyncio.gather(*(member(c) for c in clients))
                        await until(lambda p=p, expected=expected: p.delivered >= expected, 30)  # type: ignore[misc]
                    complete = True
                except TimeoutError:
                    complete = False
            wrong = 0
            for room in rooms:
                for r in room:
                    for s in room:
                        if p.got.get((r.peer_id, s.peer_id), 0) != updates:
                            wrong += 1
            out |= {
                f"{label}_complete": complete,
                f"{label}_deliveries": p.delivered,
                f"{label}_expected": expected,
                f"{label}_wrong_counts": wrong,
                f"{label}_cpu_us_per_delivery": us(span.cpu_ns, p.delivered),
                f"{label}_deliveries_per_s": p.delivered / span.wall_s if span.wall_s else None,
                f"{label}_server_cpu_share": span.cpu_ns / 1e9 / span.wall_s if span.wall_s else None,
                **ms_stats(f"{label}_delivery", p.latencies),
            }
        finally:
            await leave_all(clients)
    return out


async def _paced_updates(
    senders: list[Client], p: Presence, *, rate: float, seconds: float, offers_to: str, offer_rate: float
) -> int:
    """Every sender: `update`s at `rate`, and offers (~3 KB) to the peer `offers_to` at `offer_rate`, for
    `seconds`; the number of updates sent."""
    count = int(rate * seconds)

    async def updates(c: Client, offset: float) -> None:
        me = c.ident.peer_id
        t0 = time.perf_counter() + offset
        for i in range(count):
            await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            p.sent_ns[me].append(time.perf_counter_ns())
            await c.send(c.wire.update(i % 2 == 0))

    async def offers(c: Client, offset: float) -> None:
        head, tail = c.wire.relay_parts("offer", offers_to)
        t0 = time.perf_counter() + offset
        for i in range(int(offer_rate * seconds)):
            await asyncio.sleep(max(0.0, t0 + i / offer_rate - time.perf_counter()))
            await c.send(head + "0" + tail)

    spread = [k / len(senders) for k in range(len(senders))]
    await asyncio.gather(
        *(updates(c, f / rate) for f, c in zip(spread, senders, strict=True)),
        *(offers(c, f / offer_rate) for f, c in zip(spread, senders, strict=True) if offer_rate > 0),
    )
    return count * len(senders)


async def w6_slow_receiver(target: Target, sizes: Sizes) -> dict[str, Any]:
    """A room of 10 where the others send presence changes at a fixed rate, and ~3 KB offers to the tenth
    member (as peers renegotiating with it would: the server's socket alone absorbs megabytes before its queue
    sees anything, and presence alone would take minutes to fill that): once with everyone reading (control),
    once with the tenth never reading. Server RSS, eviction, and the latency of the nine readers."""
    if not target.wire.has_rooms:
        return {"n/a": "PeerJS has no rooms"}
    room = target.pools.rooms10[W6_ROOM]
    readers_idents, stuck_ident = room[:-1], room[-1]
    out: dict[str, Any] = {}
    for label in ("control", "stuck"):
        setup_start = time.perf_counter()
        readers = await join_rooms(target, [readers_idents])
        stuck: StuckReceiver | None = None
        tenth: Client | None = None
        if label == "control":
            tenth = Client(stuck_ident, target.wire)
            await tenth.join(target.session, target.base)
        else:
            stuck = StuckReceiver("127.0.0.1", target.server.port, "/ws", target.wire.hello(stuck_ident))
            await stuck.connect()
        everyone = readers + ([tenth] if tenth else [])
        ready = await until(lambda everyone=everyone: all(len(c.roster) == 9 for c in everyone), 10)  # type: ignore[misc]
        out[f"{label}_rosters_converged"] = ready
        out[f"{label}_setup_s"] = time.perf_counter() - setup_start
        p = Presence(measure_for={r.peer_id for r in readers_idents})
        for c in everyone:
            c.sink = p.sink
        for c in readers:
            p.sent_ns[c.ident.peer_id] = []
        rss: list[int] = []
        stop = asyncio.Event()

        async def sample(rss: list[int] = rss, stop: asyncio.Event = stop) -> None:
            while not stop.is_set():
                rss.append(target.server.rss_kib())
                await asyncio.sleep(0.1)

        sampler = asyncio.create_task(sample())
        rss0 = target.server.rss_kib()
        try:
            with measured(target) as span:
                sent = await _paced_updates(
                    readers,
                    p,
                    rate=sizes.w6_rate_per_sender,
                    seconds=sizes.w6_seconds,
                    offers_to=stuck_ident.peer_id,
                    offer_rate=sizes.w6_offers_per_sender,
                )
                expected_to_readers = sent * len(readers)

                def readers_done(p: Presence = p, n: int = expected_to_readers) -> bool:
                    return sum(v for (r, _), v in p.got.items() if r != stuck_ident.peer_id) >= n

                drained = await until(readers_done, 3)
        finally:
            stop.set()
            await sampler
        delivered_to_readers = sum(v for (r, _), v in p.got.items() if r != stuck_ident.peer_id)
        row = {
            "sent_updates": sent,
            "readers_expected": expected_to_readers,
            "readers_delivered": delivered_to_readers,
            "readers_all_delivered": drained,
            "rss_start_kib": rss0,
            "rss_max_growth_kib": max(rss, default=rss0) - rss0,
            "cpu_us_per_delivery": us(span.cpu_ns, p.delivered),
            **ms_stats("readers", p.latencies),
        }
        if stuck is not None:
            row["receiver_evicted_seen_by_room"] = stuck_ident.peer_id in p.gone
            nbytes, code, eof = await stuck.drain(sizes.w6_drain_s)
            row |= {"receiver_close_code": code, "receiver_bytes_left": nbytes, "receiver_tcp_closed": eof}
            stuck.abort()
            # Roundtable keeps an evicted member's place for the resume grace (30 s): take it back and leave, so
            # that the next repetition's room starts empty instead of waiting for the grace to run out.
            if target.wire.has_rooms:
                with contextlib.suppress(Exception):
                    again = Client(stuck_ident, target.wire)
                    await again.join(target.session, target.base)
                    await again.leave()
        out |= {f"{label}_{k}": v for k, v in row.items()}
        await leave_all(everyone)
    control, stuck_p50 = out.get("control_readers_p50_ms"), out.get("stuck_readers_p50_ms")
    if control and stuck_p50:
        out["p50_ratio_stuck_vs_control"] = stuck_p50 / control
        out["p99_ratio_stuck_vs_control"] = out["stuck_readers_p99_ms"] / out["control_readers_p99_ms"]
    return out


# W5: idle capacity ------------------------------------------------------------------------------------------


async def w5_capacity(target: Target, sizes: Sizes) -> dict[str, Any]:
    """A fresh server process, then 1k, 5k, 10k idle connections held (rooms of 10; PeerJS: ids): RSS per
    connection at each step, every connection still open after a hold past one heartbeat, then a probe."""
    if target.restart is not None and sizes.w5_restart:
        await target.restart()
    await asyncio.sleep(1.0)
    rss0 = target.server.rss_kib()
    idents = [i for room in target.pools.rooms10 for i in room]
    clients: list[Client] = []
    out: dict[str, Any] = {"rss_base_kib": rss0}
    try:
        for step in sizes.w5_steps:
            batch = [Client(i, target.wire) for i in idents[len(clients) : step]]
            clients += batch
            start = time.perf_counter()
            _, errors = await join_all(batch, target.session, target.base, in_flight=sizes.w5_in_flight)
            out[f"join_{step}_s"] = time.perf_counter() - start
            out[f"errors_{step}"] = len(errors)
            if errors:
                out[f"error_sample_{step}"] = errors[:3]
            await asyncio.sleep(1.0)  # let the presence fan-out drain
            rss = target.server.rss_kib()
            out[f"rss_{step}_kib"] = rss
            out[f"kib_per_conn_{step}"] = (rss - rss0) / step
            out[f"open_{step}"] = sum(1 for c in clients if c.open)
        await asyncio.sleep(sizes.w5_hold_s)
        out["held_after_hold"] = sum(1 for c in clients if c.open)
        out["expected_held"] = len(clients)
        out["rss_after_hold_kib"] = target.server.rss_kib()
        # The probe: two newcomers join a room of their own and relay candidates both ways.
        probe_idents = target.pools.rooms60[W5_PROBE_ROOM][:2]
        probe = [Client(i, target.wire) for i in probe_idents]
        join_s, errors = await join_all(probe, target.session, target.base, in_flight=2)
        out["probe_join_ms"] = max(join_s, default=float("nan")) * 1000
        out["probe_errors"] = len(errors)
        if not errors:
            flows = pair_flows(probe, 1)
            ledger = Ledger()
            install_sinks(flows, ledger)
            for f in flows:
                f.received = 0
            async with asyncio.timeout(30):
                await _saturate(flows, ledger, "candidate", 20, 1)
            out |= {f"probe_{k}": v for k, v in ledger.check().items()}
            out |= ms_stats("probe_relay", ledger.latencies("candidate"))
        await leave_all(probe)
    finally:
        start = time.perf_counter()
        await leave_all(clients, in_flight=500)
        out["teardown_s"] = time.perf_counter() - start
    return out


# W7: the recorder ---------------------------------------------------------------------------------------------


def recorder_status() -> str | None:
    """None when a recorder exists to be measured; otherwise why W7 cannot be measured yet."""
    recordings = ROOT / "recordings"
    files = sorted(p.name for p in recordings.glob("*.py")) if recordings.is_dir() else []
    for name in files:
        text = (recordings / name).read_text(encoding="utf-8", errors="replace")
        if "class Recorder" in text or name == "recorder.py":
            return None
    return f"no recorder in recordings/ yet (it holds {', '.join(files) or 'nothing'})"


async def w7_recorder(target: Target, sizes: Sizes) -> dict[str, Any]:
    """Server CPU per recorded audio+video participant (bench.recorder_load); Roundtable only."""
    reason = recorder_status()
    if reason is not None:
        return {"n/a": f"not yet measurable: {reason}"}
    if target.server.name != "roundtable":
        return {"n/a": "no recorder"}
    from bench import recorder_load

    room = target.pools.rooms10[W7_ROOM][0].room
    return await recorder_load.run(target, room, sizes.w7_participants, sizes.w7_window_s)


async def w8_sfu_plenary(target: Target, sizes: Sizes) -> dict[str, Any]:
    """An sfu plenary through Janus (bench.sfu_plenary): its own Roundtable process with the embedded Janus, in a
    network namespace of its own; `target` is not used. Roundtable only."""
    if target.server.name != "roundtable":
        return {"n/a": "no SFU"}
    from bench import sfu_plenary

    result = await sfu_plenary.run_isolated(sfu_plenary.SMOKE if sizes.w8_smoke else sfu_plenary.FULL)
    return sfu_plenary.flat(result)


WORKLOADS: dict[str, Callable[[Target, Sizes], Awaitable[dict[str, Any]]]] = {
    "w1": w1_join,
    "w2": w2_latency,
    "w3": w3_saturation,
    "w4": w4_fanout,
    "w6": w6_slow_receiver,
    "w5": w5_capacity,
    "w7": w7_recorder,
    "w8": w8_sfu_plenary,
}
