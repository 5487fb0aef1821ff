"""/metrics for Prometheus: one CollectorRegistry per application (tests build many apps).

Counters are moved by signalling and recordings through their ports (`signaling.telemetry`,
`recordings.service.RecordingMetrics`), which `Metrics` implements; levels (connections, rooms,
members, the database pool) are read from the live objects when Prometheus scrapes, so the hot path
pays nothing for them. docs/operations.md lists every metric."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from server.http_errors import CODE_BY_STATUS, error_response
from signaling.service import SignalingService

log = logging.getLogger(__name__)

JOIN_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REFRESH_TIMEOUT_S = 2.0


@dataclass
class Watched:
    """The live objects whose levels a scrape reads; set once the app has started."""

    service: SignalingService | None = None
    pool: asyncpg.Pool | None = None
    live_recordings: Callable[[], int] = field(default=lambda: 0)
    recording_states: Callable[[], Any] | None = None  # async: {state: count}, read before each scrape
    states: dict[str, int] = field(default_factory=dict)
    composition_states: Callable[[], Any] | None = None  # async: {state: count} of the composition jobs
    compositions: dict[str, int] = field(default_factory=dict)
    composers: Callable[[], int] = field(default=lambda: 0)


class _Levels(Collector):
    def __init__(self, watched: Watched) -> None:
        self.watched = watched

    def collect(self) -> Iterator[Metric]:
        service, pool = self.watched.service, self.watched.pool
        connections = GaugeMetricFamily("roundtable_connections", "Signalling sessions with an open WebSocket.")
        rooms = GaugeMetricFamily("roundtable_rooms", "Rooms with someone in them, by kind.", labels=["kind"])
        members = GaugeMetricFamily(
            "roundtable_members",
            "Members of live rooms: connected, reconnecting (within the resume grace) or recorder (hidden).",
            labels=["kind"],
        )
        room_counts = {"plenary": 0, "breakout": 0}
        member_counts = {"connected": 0, "reconnecting": 0, "recorder": 0}
        if service is not None:
            for room in list(service.rooms.values()):
                room_counts[room.info.kind] = room_counts.get(room.info.kind, 0) + 1
            for member in list(service.members.values()):
                kind = "recorder" if member.hidden else ("connected" if member.outbox is not None else "reconnecting")
                member_counts[kind] += 1
        connections.add_metric([], member_counts["connected"])
        for kind, n in room_counts.items():
            rooms.add_metric([kind], n)
        for kind, n in member_counts.items():
            members.add_metric([kind], n)
        yield connections
        yield rooms
        yield members

        recordings = GaugeMetricFamily("roundtable_recordings", "Recordings by state.", labels=["state"])
        for state in ("starting", "recording", "stopping", "ready", "failed", "deleted"):
            recordings.add_metric([state], self.watched.states.get(state, 0))
        yield recordings
        live = GaugeMetricFamily("roundtable_recorders", "Recorder peers running in this process.")
        live.add_metric([], self.watched.live_recordings())
        yield live
        jobs = GaugeMetricFamily("roundtable_compositions", "Composed-video jobs by state.", labels=["state"])
        for state in ("queued", "running", "ready", "failed"):
            jobs.add_metric([state], self.watched.compositions.get(state, 0))
        yield jobs
        composers = GaugeMetricFamily("roundtable_composers", "Composer subprocesses this process runs.")
        composers.add_metric([], self.watched.composers())
        yield composers

        sfu = service.sfu if service is not None else None
        up = GaugeMetricFamily("roundtable_sfu_up", "1 while the SFU (Janus) answers; 0 when down or not configured.")
        up.add_metric([], 1 if sfu is not None and sfu.available else 0)
        yield up
        sfu_rooms = GaugeMetricFamily("roundtable_sfu_rooms", "Rooms whose media runs through the SFU.")
        sfu_rooms.add_metric([], len(sfu.rooms) if sfu is not None else 0)
        yield sfu_rooms

        size = GaugeMetricFamily(
            "roundtable_db_pool_connections", "Database pool connections by use.", labels=["state"]
        )
        limit = GaugeMetricFamily("roundtable_db_pool_max", "Most connections the database pool opens.")
        if pool is not None:
            idle = pool.get_idle_size()
            size.add_metric(["in_use"], pool.get_size() - idle)
            size.add_metric(["idle"], idle)
            limit.add_metric([], pool.get_max_size())
        yield size
        yield limit


class Metrics:
    """Implements `signaling.telemetry.SignalingTelemetry` and `recordings.service.RecordingMetrics`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.watched = Watched()
        r.register(_Levels(self.watched))
        ProcessCollector(registry=r)
        self.joins = Counter("roundtable_joins", "Hellos admitted into a room.", registry=r)
        self.join_seconds = Histogram(
            "roundtable_join_seconds", "From hello to welcome.", buckets=JOIN_BUCKETS_S, registry=r
        )
        self.resumes = Counter("roundtable_resumes", "Hellos that took back a place after a drop.", registry=r)
        self.relayed_messages = Counter(
            "roundtable_relayed_messages", "Offers, answers and candidates forwarded.", ["type"], registry=r
        )
        self.relayed_bytes = Counter("roundtable_relayed_bytes", "Bytes of forwarded signalling.", ["type"], registry=r)
        self.errors = Counter(
            "roundtable_errors", "Errors sent to clients, by transport and code.", ["transport", "code"], registry=r
        )
        self.evictions = Counter(
            "roundtable_slow_client_evictions", "Connections closed for not draining their queue.", registry=r
        )
        self.recording_bytes_written = Counter(
            "roundtable_recording_bytes_written", "Media bytes written to recording files.", registry=r
        )
        self.recording_failures = Counter(
            "roundtable_recording_track_failures", "Recording tracks that could not be written.", registry=r
        )
        self.db_errors = Counter(
            "roundtable_db_errors", "Failed database operations, by operation.", ["operation"], registry=r
        )
        for transport in ("ws", "http"):  # present from the start, so that rate() sees the first one
            self.errors.labels(transport, "internal")
        for kind in ("offer", "answer", "candidate"):
            self.relayed_messages.labels(kind)
            self.relayed_bytes.labels(kind)

    def watch(
        self,
        *,
        service: SignalingService,
        pool: asyncpg.Pool,
        live_recordings: Callable[[], int],
        recording_states: Callable[[], Any],
        composition_states: Callable[[], Any] | None = None,
        composers: Callable[[], int] | None = None,
    ) -> None:
        self.watched.service = service
        self.watched.pool = pool
        self.watched.live_recordings = live_recordings
        self.watched.recording_states = recording_states
        self.watched.composition_states = composition_states
        if composers is not None:
            self.watched.composers = composers

    async def refresh(self) -> None:
        """Read what lives only in the database (recordings by state), with a bound."""
        reader = self.watched.recording_states
        if reader is None:
            return
        try:
            async with asyncio.timeout(REFRESH_TIMEOUT_S):
                self.watched.states = dict(await reader())
                if self.watched.composition_states is not None:
                    self.watched.compositions = dict(await self.watched.composition_states())
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("metrics: could not read recording states: %s", exc)
            self.db_error("metrics")

    # SignalingTelemetry
    def joined(self, *, seconds: float, resumed: bool) -> None:
        self.joins.inc()
        self.join_seconds.observe(seconds)
        if resumed:
            self.resumes.inc()

    def relayed(self, kind: str, size_bytes: int) -> None:
        self.relayed_messages.labels(kind).inc()
        self.relayed_bytes.labels(kind).inc(size_bytes)

    def error(self, code: str) -> None:
        self.errors.labels("ws", code).inc()

    def evicted(self) -> None:
        self.evictions.inc()

    def db_error(self, operation: str) -> None:
        self.db_errors.labels(operation).inc()

    # RecordingMetrics (recording_bytes is called from writer threads: prometheus-client counters are thread-safe)
    def recording_bytes(self, n: int) -> None:
        self.recording_bytes_written.inc(n)

    def recording_failure(self) -> None:
        self.recording_failures.inc()

    def http_error(self, status: int) -> None:
        code = CODE_BY_STATUS.get(status, "invalid_argument" if status < 500 else "internal")
        self.errors.labels("http", code).inc()


METRICS = web.AppKey("metrics", Metrics)

Handler = Callable[[web.Request], Any]


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """HTTP errors by code; outside the error middleware, so it sees the status every error became."""
    response: web.StreamResponse = await handler(request)
    if response.status >= 400:
        request.app[METRICS].http_error(response.status)
    return response


async def serve_metrics(request: web.Request) -> web.StreamResponse:
    token = request.app[METRICS_TOKEN]
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not secrets.compare_digest(given.encode(), token.encode()):
            return error_response("unauthenticated", "/metrics needs ROUNDTABLE_METRICS_TOKEN as a bearer token")
    metrics = request.app[METRICS]
    await metrics.refresh()
    body = generate_latest(metrics.registry)  # on the loop: the collectors read the live rooms
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


METRICS_TOKEN = web.AppKey("metrics_token", str)


def install_metrics(app: web.Application, *, token: str | None) -> Metrics:
    metrics = Metrics()
    app[METRICS] = metrics
    app[METRICS_TOKEN] = token or ""
    app.router.add_get("/metrics", serve_metrics)
    return metrics
