"""The composition root: `create_app(settings)` wires database, auth, API and signalling."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from recordings.actions import LocalRecordingActions
from recordings.composition import CompositionConfig, CompositionStore, CompositionSupervisor
from recordings.recorder import restrict_host_addresses
from recordings.service import RecordingCoordinator
from recordings.storage import Storage
from recordings.store import RecordingStore
from server import keys
from server.agenda import AgendaScheduler
from server.agenda_store import AgendaStore
from server.api import load_routes
from server.api.meta import OPENAPI
from server.audit import PeriodicAnchor, RecordsRetention, import_legacy_actions
from server.auth import (
    AdminCredential,
    Authenticator,
    JoinTokenIssuer,
    Principal,
    TokenSigner,
    bearer_token,
    hash_token,
    new_secret,
    read_or_create_secret_file,
)
from server.bus_commands import BusBreakoutActions, BusLobbyActions, BusRecordingActions, BusRoomCommands
from server.coturn import CoturnConfig, CoturnError, EmbeddedCoturn
from server.db import EmbeddedPostgres, create_pool
from server.directory import ServerDirectory, StoreInterpretation, StoreRooms, ice_servers_for
from server.heartbeat import Heartbeat
from server.http_errors import error_middleware
from server.invitations.service import InvitationService
from server.invitations.store import InvitationStore
from server.janus_process import EmbeddedJanus, JanusTurn, SfuConfigError, new_config, resolve_ice_address
from server.join_cache_bus import SharedForgets
from server.logs import SESSION_ID, echo_session_id, log_context_middleware
from server.metrics import METRICS, install_metrics, metrics_middleware
from server.migrate import migrate
from server.node_selector import Placement, hand_over
from server.nodes import node_context
from server.packages import find_or_install
from server.records_store import RecordsStore
from server.routing import Router
from server.settings import Settings
from server.sfu_placement import PgSfuPlacement
from server.store import Store
from server.sweep import NodeSweeper
from server.web import add_web_routes, connection_options
from signaling.audit_store import AuditLog, PgAuditTrail
from signaling.breakout_store import BreakoutStore
from signaling.breakouts import BreakoutCoordinator
from signaling.clock import FileClock, SystemClock
from signaling.commands import LocalRoomCommands
from signaling.fence import Fence
from signaling.lobby import AdmissionLobby
from signaling.lobby_actions import LocalLobbyActions
from signaling.lobby_store import PgLobbyStore
from signaling.protocol import RoomInfo
from signaling.resume_store import PgResumeStore
from signaling.rooms import room_info
from signaling.service import HubPorts, SignalingConfig, SignalingService
from signaling.session import SessionLimits, serve_websocket
from signaling.sfu.bridge import SfuBridge
from signaling.sfu.placement import JanusEndpoint, derived_endpoint
from signaling.stage_store import PgStageStore
from signaling.store import PgSignalingStore
from signaling.turn import turn_credentials

log = logging.getLogger(__name__)

VERSION = "0.1.0"
ADMIN_SECRET_NAME = "admin_token_sha256"
ADMIN_TOKEN_FILE = "admin-token"
SECRET_KEY_FILE = "secret-key"
TURN_SECRET_FILE = "turn-secret"

EMBEDDED = web.AppKey("embedded", EmbeddedPostgres)
SIGNALING_STORE = web.AppKey("signaling_store", PgSignalingStore)
SESSION_LIMITS = web.AppKey("session_limits", SessionLimits)
JANUS = web.AppKey("janus", EmbeddedJanus)
# With a bus server: which node serves each WebSocket (server/routing.py). Absent for a node alone.
ROUTER = web.AppKey("router", Router)
JANUS_TURN_TTL_S = 7 * 24 * 3600


def _janus_turn(settings: Settings) -> JanusTurn | None:
    """Janus's own TURN relay (for publishers behind strict NATs), from the TURN settings clients get."""
    if not settings.turn_urls or not settings.turn_secret:
        return None
    url = settings.turn_urls[0]
    scheme, _, rest = url.partition(":")
    if scheme not in ("turn", "turns"):
        return None
    address, _, query = rest.partition("?")
    host, _, port = address.rpartition(":")
    if not host:
        host, port = address, "3478"
    transport = "tls" if scheme == "turns" else ("tcp" if "transport=tcp" in query else "udp")
    user, password = turn_credentials(settings.turn_secret, "janus", now_s=int(time.time()), ttl_s=JANUS_TURN_TTL_S)
    return JanusTurn(server=host.strip("[]"), port=int(port or 3478), transport=transport, user=user, password=password)


async def _turn(app: web.Application) -> AsyncIterator[None]:
    """ROUNDTABLE_TURN=embedded: start coturn first, so that clients (and Janus) get its URLs and credentials."""
    settings = app[keys.SETTINGS]
    if settings.turn != "embedded":
        yield
        return
    found = await asyncio.to_thread(find_or_install, "turnserver", ("coturn",), allow_install=settings.turn_install)
    if found.path is None:
        raise CoturnError(f"ROUNDTABLE_TURN=embedded, but {found.why_not}")
    secret = settings.turn_secret or read_or_create_secret_file(settings.resolved_data_dir() / TURN_SECRET_FILE)[0]
    low, _, high = settings.turn_relay_ports.partition("-")
    config = CoturnConfig(
        secret=secret,
        listen_ip=settings.turn_listen_ip,
        port=settings.turn_port,
        relay_ip=settings.turn_relay_ip,
        external_ip=settings.turn_external_ip,
        min_port=int(low),
        max_port=int(high),
        allow_loopback_peers=settings.turn_allow_loopback_peers,
    )
    coturn = EmbeddedCoturn(found.path, settings.resolved_data_dir() / "coturn", config)
    await coturn.start()
    app[keys.SETTINGS] = settings.model_copy(update={"turn_urls": config.urls(), "turn_secret": secret})
    try:
        yield
    finally:
        await coturn.stop()


async def _sfu(app: web.Application) -> AsyncIterator[None]:
    """The SFU: an embedded Janus (auto), an external one, or none (mesh only)."""
    settings = app[keys.SETTINGS]
    janus: EmbeddedJanus | None = None
    bridge: SfuBridge | None = None
    # Every Janus writes recordings here: with several Janus, a directory shared at the same path on every host.
    rec_dir = settings.resolved_recordings_dir() / "sfu"
    # Several nodes: the embedded Janus's secrets and the rooms' secrets follow from the shared secret key, so that
    # any node of the deployment can place rooms on any node's Janus (docs/sfu.md#several-janus).
    shared_key = app[keys.SIGNING_SECRET] if settings.bus_url is not None else None
    room_secret = (lambda room_id: derived_endpoint(shared_key, f"room:{room_id}").api_secret) if shared_key else None
    if settings.sfu == "external":
        assert settings.sfu_url and settings.sfu_api_secret and settings.sfu_admin_key
        endpoint = JanusEndpoint(settings.sfu_url, settings.sfu_api_secret, settings.sfu_admin_key)
        bridge = SfuBridge(endpoint, rec_dir=str(rec_dir), room_secret=room_secret)
    elif settings.sfu == "auto":
        try:
            ice_address = resolve_ice_address(settings.sfu_ice_address)
        except SfuConfigError as exc:
            log.warning("no SFU: %s; every room runs as a mesh", exc)
            ice_address = None
        found = await asyncio.to_thread(find_or_install, "janus", ("janus",), allow_install=settings.sfu_install)
        if found.path is not None:
            # Recordings of sfu rooms are converted by janus-pp-rec, which Debian ships apart (janus-tools).
            tools = await asyncio.to_thread(
                find_or_install, "janus-pp-rec", ("janus-tools",), allow_install=settings.sfu_install
            )
            if tools.path is None:
                log.warning("sfu recordings cannot be converted: %s", tools.why_not)
        if ice_address is not None and found.path is None:
            log.warning("no SFU: %s; every room runs as a mesh (large rooms need it: see docs/sfu.md)", found.why_not)
        if ice_address is not None and found.path is not None:
            config = new_config(
                ice_address=ice_address,
                rtp_ports=settings.sfu_rtp_ports,
                public_address=settings.sfu_public_address,
                turn=_janus_turn(settings),
                api_address=settings.sfu_api_address,
                derive=_derived_secrets(shared_key) if shared_key else None,
            )
            janus = EmbeddedJanus(found.path, settings.resolved_data_dir() / "janus", config)
            try:
                await janus.start()
            except Exception as exc:
                log.warning("no SFU: the embedded Janus did not start (%s); every room runs as a mesh", exc)
                janus = None
            else:
                app[JANUS] = janus
                bridge = SfuBridge(
                    JanusEndpoint(config.url, config.api_secret, config.admin_key),
                    rec_dir=str(rec_dir),
                    on_unhealthy=janus.unhealthy,
                    room_secret=room_secret,
                )
    if bridge is not None:
        rec_dir.mkdir(parents=True, exist_ok=True)
        app[keys.SFU] = bridge
        await bridge.start()
    try:
        yield
    finally:
        if bridge is not None:
            await bridge.close()
        if janus is not None:
            await janus.stop()


def _derived_secrets(shared_key: str) -> Callable[[str], tuple[str, str]]:
    def derive(url: str) -> tuple[str, str]:
        endpoint = derived_endpoint(shared_key, url)
        return endpoint.api_secret, endpoint.admin_key

    return derive


def _plug_placement(app: web.Application, bridge: SfuBridge, node_id: str) -> None:
    """Several Janus (more in ROUNDTABLE_SFU_URLS, or other nodes'): new rooms go to the least loaded."""
    settings = app[keys.SETTINGS]
    if not settings.sfu_urls and settings.bus_url is None:
        return  # one Janus: every room on it, as always
    shared_key = app[keys.SIGNING_SECRET]
    external = [
        JanusEndpoint(url, settings.sfu_api_secret or "", settings.sfu_admin_key or "") for url in settings.sfu_urls
    ]
    bridge.plug_placement(
        PgSfuPlacement(
            app[keys.POOL],
            node_id,
            home=bridge.endpoint,
            external=external,
            nodes_janus=(lambda url: derived_endpoint(shared_key, url)) if settings.bus_url is not None else None,
            live_within_s=settings.lease_ttl_s,
        )
    )


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    embedded: EmbeddedPostgres | None = None
    dsn = settings.database_url
    if dsn is None:
        embedded = EmbeddedPostgres(settings.resolved_data_dir())
        dsn = await asyncio.to_thread(embedded.start)
        app[EMBEDDED] = embedded
    try:
        pool = await create_pool(dsn)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            await import_legacy_actions(pool, app[keys.AUDIT])
            app[keys.POOL] = pool
            app[keys.STORE] = Store(pool, audit=app[keys.AUDIT])
            app[keys.RECORDS] = RecordsStore(pool, audit=app[keys.AUDIT])
            yield
        finally:
            await pool.close()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


async def _admin_credential(settings: Settings, store: Store) -> AdminCredential:
    if settings.admin_token:
        return AdminCredential(hash_token(settings.admin_token))
    stored = await store.get_secret(ADMIN_SECRET_NAME)
    if stored is not None:
        return AdminCredential(stored)
    token = "rt_admin_" + new_secret()
    if not await store.put_secret_if_absent(ADMIN_SECRET_NAME, hash_token(token), audited="server.admin_token_create"):
        stored = await store.get_secret(ADMIN_SECRET_NAME)
        assert stored is not None
        return AdminCredential(stored)
    path = settings.resolved_data_dir() / ADMIN_TOKEN_FILE
    _write_private(path, token)
    # Shown once: only the hash is kept in the database.
    print(f"\n  Admin token (shown once, also in {path}):\n\n    {token}\n", flush=True)
    log.warning("created a new admin token; it is in %s", path)
    return AdminCredential(hash_token(token))


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text + "\n", encoding="utf-8")


async def _auth(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    store = app[keys.STORE]
    secret = settings.secret_key
    if secret is None:
        secret, _ = read_or_create_secret_file(settings.resolved_data_dir() / SECRET_KEY_FILE)
    signer = TokenSigner(secret)
    app[keys.SIGNING_SECRET] = secret
    app[keys.AUTH] = Authenticator(signer, await _admin_credential(settings, store), store)
    app[keys.ISSUER] = JoinTokenIssuer(
        signer,
        base_url=settings.base_url,
        grace_s=settings.join_token_grace_s,
        min_ttl_s=settings.join_token_min_ttl_s,
    )
    yield


async def _invitations(app: web.Application) -> AsyncIterator[None]:
    """The invitation outbox's sender: one task, started when an SMTP server is configured."""
    service = InvitationService(
        InvitationStore(app[keys.POOL], app[keys.AUDIT]), app[keys.ISSUER], app[keys.SETTINGS], app[keys.CLOCK]
    )
    app[keys.INVITATIONS] = service
    service.start()
    try:
        yield
    finally:
        await service.close()


async def _signaling(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    metrics = app[METRICS]
    node = app[keys.NODE]
    store = PgSignalingStore(app[keys.POOL], on_db_error=metrics.db_error, node_id=node.info.id)
    clock = app[keys.CLOCK]
    heartbeat = Heartbeat(
        app[keys.POOL],
        settings.server_heartbeat_s,
        clock=clock,
        written_until=store.oldest_pending,
        on_error=metrics.db_error,
        node_id=node.info.id,
    )
    # Crash leftovers, before anyone joins: a node alone closes every visit a previous process left; among several
    # nodes, only those of nodes that are gone (the sweep below closes the rest once their node is gone too).
    await store.close_open_visits(
        await heartbeat.last_alive(), dead_after_s=settings.lease_ttl_s if settings.bus_url is not None else None
    )
    heartbeat.start()
    store.start()
    config = SignalingConfig(
        max_message_bytes=settings.ws_max_message_bytes,
        max_sdp_message_bytes=settings.ws_max_sdp_message_bytes,
        rate_per_s=settings.ws_rate_per_s,
        rate_burst=settings.ws_rate_burst,
        resume_grace_s=settings.resume_grace_s,
        chat_history=settings.chat_history,
        ice_servers=lambda pid: ice_servers_for(settings, pid),
        mesh_max=settings.mesh_max,
    )
    directory = ServerDirectory(app[keys.AUTH], app[keys.STORE])
    joins = app[keys.STORE].joins
    breakout_store = BreakoutStore(app[keys.POOL], on_change=joins.forget_all)
    forgets: SharedForgets | None = None
    if settings.bus_url is not None:
        # Several nodes: every forget of the join cache made here is applied by every other node, and back.
        forgets = SharedForgets(joins, node.bus, node.info.id)
        await forgets.start()
    lobby = AdmissionLobby(
        PgLobbyStore(app[keys.POOL], audit=app[keys.AUDIT]),
        grace_s=settings.resume_grace_s,
        # Several nodes: knocks wait on the workshop's owner alone.
        owns=(lambda wid: node.leases.fence(uuid.UUID(wid)) is not None) if settings.bus_url is not None else None,
    )
    ports = HubPorts()
    service = SignalingService(
        directory,
        store,
        config,
        sfu=app.get(keys.SFU),
        rooms_port=StoreRooms(app[keys.STORE]),
        telemetry=metrics,
        clock=clock,
        lobby=lobby,
        audit=PgAuditTrail(app[keys.POOL], app[keys.AUDIT]),
        ports=ports,
        # Places outlive this process: a restart or a crash is a reconnect within the grace period, not a new join.
        resume_store=PgResumeStore(
            app[keys.POOL], node_id=node.info.id, dead_after_s=settings.lease_ttl_s, written_first=store.written
        ),
        interpretation=StoreInterpretation(app[keys.STORE]),
        # The floor, spotlights and help requests outlive this process too; several nodes: fenced by the lease.
        stage_store=PgStageStore(app[keys.POOL], fence_of=node.leases.fence if settings.bus_url is not None else None),
    )
    service.start()  # sweeps the places a previous process left that nobody took in time
    await lobby.start()  # the knocks a previous process left pending, before anyone joins
    app[keys.SIGNALING] = service
    app[SIGNALING_STORE] = store

    async def home_room(workshop_id: str, participant_id: str) -> RoomInfo:
        return room_info(await app[keys.STORE].home_room(uuid.UUID(workshop_id), uuid.UUID(participant_id)))

    local_commands = LocalRoomCommands(service, home_room)
    app[keys.COMMANDS] = local_commands
    bus_commands: BusRoomCommands | None = None
    router: Router | None = None
    placement: Placement | None = None
    if settings.bus_url is not None:
        # Several nodes: commands go to the workshop's owner, and sockets are served by it (docs/scaling.md).
        node = app[keys.NODE]
        bus_commands = BusRoomCommands(local_commands, node, before_remote=lambda: joins.forget_all(announce=False))
        await bus_commands.start()
        app[keys.COMMANDS] = bus_commands
        router = Router(node, service, app[SESSION_LIMITS], app[keys.AUTH], keepalive_s=settings.forward_keepalive_s)
        # A workshop nobody holds goes to the least loaded node (server/node_selector.py), which the beat publishes.
        placement = router.placement = Placement(node, sessions=router.sessions, margin=settings.node_load_margin)
        node.leases.sessions = router.sessions
        await router.start()
        app[ROUTER] = router
    app[keys.LOBBY] = lobby
    app[keys.LOBBY_ACTIONS] = LocalLobbyActions(lobby)
    bus_lobby: BusLobbyActions | None = None
    if settings.bus_url is not None:
        bus_lobby = BusLobbyActions(app[keys.LOBBY_ACTIONS], app[keys.NODE])
        await bus_lobby.start()
        app[keys.LOBBY_ACTIONS] = bus_lobby
    coordinator = BreakoutCoordinator(
        breakout_store,
        service,
        directory,
        audit=app[keys.AUDIT],
        # Several nodes: the owner alone arms a workshop's timers and moves its plans on, fenced.
        ownership=app[keys.NODE].leases if settings.bus_url is not None else None,
    )
    ports.plug_breakouts(coordinator)
    app[keys.BREAKOUT_STORE] = breakout_store
    app[keys.BREAKOUTS] = coordinator
    app[keys.BREAKOUT_ACTIONS] = coordinator
    bus_breakouts: BusBreakoutActions | None = None
    if settings.bus_url is not None:
        bus_breakouts = BusBreakoutActions(
            coordinator, breakout_store, app[keys.NODE], place=placement.place if placement is not None else None
        )
        await bus_breakouts.start()
        app[keys.BREAKOUT_ACTIONS] = bus_breakouts
    await coordinator.start()
    if settings.ice_host_addresses:
        restrict_host_addresses(settings.ice_host_addresses)
    storage = Storage(settings.resolved_recordings_dir())
    recording_store = RecordingStore(app[keys.POOL], audit=app[keys.AUDIT])
    recordings = RecordingCoordinator(
        recording_store,
        storage,
        service,
        ice_servers=lambda pid: ice_servers_for(settings, pid),
        retention_days=settings.recording_retention_days,
        sfu=app.get(keys.SFU),
        min_free_bytes=settings.recording_min_free_bytes,
        metrics=metrics,
        records=RecordsRetention(app[keys.POOL], app[keys.AUDIT], default_days=settings.records_retention_days),
        node_id=node.info.id,
        several_nodes=settings.bus_url is not None,
        dead_after_s=settings.lease_ttl_s,
        # Continuations after a failover or a drain start on the workshop's owner alone, fenced.
        fence_of=node.leases.fence if settings.bus_url is not None else None,
    )
    app[keys.RECORDING_ACTIONS] = LocalRecordingActions(
        recordings, ownership=node.leases if settings.bus_url is not None else None
    )
    bus_recordings: BusRecordingActions | None = None
    if settings.bus_url is not None:
        bus_recordings = BusRecordingActions(
            app[keys.RECORDING_ACTIONS], node, place=placement.place if placement is not None else None
        )
        await bus_recordings.serve()
        app[keys.RECORDING_ACTIONS] = bus_recordings
    if router is not None:
        lease_router = router

        def lease_acquired(fence: Fence) -> None:
            coordinator.adopt(fence.workshop_id)  # its running plan's timer, from PostgreSQL
            # The live recordings of a previous owner: partial, and continued when their rooms have members again.
            recordings.adopt_workshop(fence.workshop_id)
            lobby.adopt(str(fence.workshop_id))  # its pending knocks

        def lease_lost(workshop_id: uuid.UUID) -> None:
            lease_router.lease_lost(workshop_id)
            coordinator.disown(workshop_id)
            recordings.abandon_workshop(workshop_id)
            lobby.disown(str(workshop_id))  # its knockers here come back now, to the new owner
            service.forget_stage(str(workshop_id))  # its floor, spotlights and help requests: the new owner's

        def quiet(workshop_id: uuid.UUID) -> bool:
            """Nothing of the workshop runs in this process (PostgreSQL is asked too before the lease goes)."""
            wid = str(workshop_id)
            return (
                lease_router.serving(workshop_id) == 0
                and not service.members_of(wid)
                and not lobby.knocks_of(wid)
                and workshop_id not in coordinator.armed()
                and not any(live.workshop_id == wid for live in recordings.live.values())
            )

        node.leases.on_acquired = lease_acquired
        node.leases.on_lost = lease_lost
        # A quiet workshop's lease is given back after a while; the next session anywhere takes it (and rebuilds).
        node.leases.quiet = quiet
        node.leases.idle_s = settings.lease_idle_s
        node.leases.on_released = lease_lost  # nothing runs here any more: the same local cleanups, all no-ops
    ports.plug_recordings(recordings)
    if keys.SFU in app:
        app[keys.SFU].plug_recording(recordings)
        _plug_placement(app, app[keys.SFU], node.info.id)
    app[keys.STORAGE] = storage
    app[keys.RECORDING_STORE] = recording_store
    app[keys.RECORDINGS] = recordings
    compositions = CompositionStore(app[keys.POOL], audit=app[keys.AUDIT])
    composer = CompositionSupervisor(compositions, storage, _composition_config(settings))
    app[keys.COMPOSITIONS] = compositions
    app[keys.COMPOSER] = composer
    metrics.watch(
        service=service,
        pool=app[keys.POOL],
        live_recordings=lambda: len(recordings.live),
        recording_states=recording_store.state_counts,
        composition_states=compositions.state_counts,
        composers=lambda: len(composer.runs),
    )
    recordings.on_ready = composer.wake
    recordings.on_delete = lambda recording_id: composer.cancel(recording_id, "the recording was deleted")
    await recordings.open()
    await composer.start()
    sweeper: NodeSweeper | None = None
    if settings.bus_url is not None:
        # What gone nodes left in workshops nobody takes over (server/sweep.py): one node at a time does it.
        sweeper = NodeSweeper(
            app[keys.POOL], store, recordings, dead_after_s=settings.lease_ttl_s, every_s=settings.node_sweep_s
        )
        sweeper.start()
    agenda = AgendaStore(app[keys.POOL], audit=app[keys.AUDIT])
    scheduler = AgendaScheduler(
        agenda,
        app[keys.STORE],
        coordinator,
        clock,
        recordings=recordings,
        listener=service,
        tick_s=settings.agenda_tick_s,
        ownership=node.leases if settings.bus_url is not None else None,
    )
    app[keys.AGENDA] = agenda
    app[keys.AGENDA_SCHEDULER] = scheduler
    scheduler.start()
    anchors = PeriodicAnchor(
        app[keys.POOL], app[keys.AUDIT], interval_s=settings.audit_anchor_interval_s, server=settings.base_url
    )
    if settings.audit_anchor_interval_s > 0:
        anchors.start()
    try:
        yield
    finally:
        await anchors.close()
        if sweeper is not None:
            await sweeper.close()
        await scheduler.close()
        await recordings.close()
        await composer.close()
        await coordinator.shutdown()
        service.shutdown()
        await service.drain_tasks()
        if keys.SFU in app:
            await app[keys.SFU].end_rooms()  # before the node gives its leases back (node_context)
        if placement is not None:
            # Every place is a grant in PostgreSQL now: hand the workshops over (docs/scaling.md, "Drain").
            await hand_over(node, placement)
        if router is not None:
            await router.close()
        if bus_commands is not None:
            await bus_commands.close()
        if bus_breakouts is not None:
            await bus_breakouts.stop()
        if bus_lobby is not None:
            await bus_lobby.stop()
        if bus_recordings is not None:
            await bus_recordings.close()
        await lobby.close()
        if forgets is not None:
            await forgets.close()
        await store.close()
        await heartbeat.close()


def _composition_config(settings: Settings) -> CompositionConfig:
    return CompositionConfig(
        workers=settings.resolved_composition_workers(),
        width=settings.composition_width,
        height=settings.composition_height,
        fps=settings.composition_fps,
        max_attempts=settings.composition_max_attempts,
        time_limit_s=settings.composition_time_limit_s,
        lapse_s=settings.composition_heartbeat_lapse_s,
        heartbeat_s=min(5.0, settings.composition_heartbeat_lapse_s / 4),
    )


async def _close_sessions(app: web.Application) -> None:
    """on_shutdown: drain (every place written as a resume grant, every WebSocket closed with 1012) so that the
    handlers end before cleanup."""
    if ROUTER in app:
        app[ROUTER].shutdown()
    if keys.SIGNALING in app:
        app[keys.SIGNALING].shutdown()


async def authenticate(request: web.Request) -> Principal:
    token = bearer_token(request.headers.get("Authorization"))
    return await request.app[keys.AUTH].principal(token)


async def websocket(request: web.Request) -> web.StreamResponse:
    router = request.app.get(ROUTER)
    if router is not None:
        return await router.serve(request, connection_id=SESSION_ID.get() or "")
    return await serve_websocket(
        request, request.app[keys.SIGNALING], request.app[SESSION_LIMITS], connection_id=SESSION_ID.get() or ""
    )


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[log_context_middleware, metrics_middleware, error_middleware],
        client_max_size=settings.max_body_bytes,
        handler_args=connection_options(settings),
    )
    app.on_response_prepare.append(echo_session_id)
    app[keys.SETTINGS] = settings
    app[keys.CLOCK] = FileClock(settings.clock_file) if settings.clock_file is not None else SystemClock()
    app[keys.AUDIT] = AuditLog()
    install_metrics(app, token=settings.metrics_token)
    origins = {settings.base_url, *settings.allowed_origins}
    app[SESSION_LIMITS] = SessionLimits(
        max_message_bytes=settings.ws_max_message_bytes,
        max_sdp_message_bytes=settings.ws_max_sdp_message_bytes,
        hard_cap_bytes=settings.ws_hard_cap_bytes,
        heartbeat_s=settings.ws_heartbeat_s,
        queue_size=settings.ws_send_queue,
        rate_per_s=settings.ws_rate_per_s,
        rate_burst=settings.ws_rate_burst,
        allowed_origins=frozenset(o.rstrip("/") for o in origins),
    )
    api = load_routes()
    api.install(app, authenticate)
    app.router.add_get("/ws", websocket)
    add_web_routes(app)
    app[OPENAPI] = api.openapi(title="Roundtable", version=VERSION)
    app.cleanup_ctx.extend([_database, _auth, _invitations, _turn, _sfu, node_context, _signaling])
    app.on_shutdown.append(_close_sessions)
    return app
