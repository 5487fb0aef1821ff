"""Recordings: start and stop, the consent ledger, the relay gate, recovery after a crash, retention.

A recording is persisted first (`starting`), then its recorder joins the room as a hidden member and
the room hears `recording_started`. Consent answers are written to the ledger, then applied in
memory, so that the relay gate (on the hot path) never waits on PostgreSQL.

In sfu rooms there is no recorder peer: Janus records each consenting publisher (recordings/sfu.py),
toggled from here whenever a feed comes up or a consent changes; at stop its files become tracks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from recordings.model import consent_holds
from recordings.recorder import Recorder, TrackProblem
from recordings.sfu import SFU_RECORDER_PEER_ID, Segment, SfuSession, convert, delete_mjr, mjr_files
from recordings.storage import Storage, file_facts
from recordings.store import RecordingStore
from signaling.audit import SYSTEM, Actor, Change
from signaling.errors import Conflict, NotFound, PermissionDenied, ServiceError
from signaling.fence import Fence
from signaling.protocol import (
    Answer,
    Consent,
    FeedInfo,
    IceServer,
    RecordingProblem,
    RecordingStarted,
    RecordingStatus,
    RecordingStopped,
    RoomInfo,
)
from signaling.rooms import Member, Profile
from signaling.service import MODERATOR_ROLES, SignalingService
from signaling.sfu.bridge import SfuBridge
from signaling.sfu.janus import JanusError, JanusGone
from signaling.tasks import OwnedTasks

log = logging.getLogger(__name__)

RECORDER_ROLE = "recorder"
CRASH_REASON = "the server stopped during the recording; what was written is kept"
# A recording ended by a failover or a drain is continued when its room has members again within this time of its
# finalisation (docs/recordings.md "Continuation after a failover"); later, the session is over.
CONTINUE_WITHIN_S = 3600.0


class RecordingMetrics(Protocol):
    """What recordings report for /metrics (implemented in server.metrics)."""

    def recording_bytes(self, n: int) -> None:
        """Media bytes written; called from writer threads, so it must be thread-safe."""
        ...

    def recording_failure(self) -> None: ...


@dataclass
class LiveRecording:
    id: uuid.UUID
    workshop_id: str
    room_id: str
    consent_mode: str
    started_at: datetime
    # Mesh rooms: the recorder peer and its hidden member. Sfu rooms: no recorder; `member` is a placeholder
    # (id "sfu", never in the room) so that `recorder_peer_id` reads the same everywhere.
    recorder: Recorder | None
    member: Member
    sfu: SfuSession | None = None
    consent: dict[str, bool] = field(default_factory=dict)
    # A continuation: the recording it continues (ended by a failover or a drain).
    continues: uuid.UUID | None = None

    def holds(self, participant_id: str) -> bool:
        return consent_holds(self.consent_mode, self.consent.get(participant_id))


class RecordsRetention(Protocol):
    """The other records a workshop keeps (attendance, chat, audit content), expired by the same job."""

    async def apply(self) -> Sequence[object]: ...


@dataclass(frozen=True)
class Starter:
    id: uuid.UUID | None
    role: str
    display_name: str = ""

    @property
    def actor(self) -> Actor:
        return Actor(id=self.id, role=self.role, display_name=self.display_name)


class RecordingCoordinator:
    def __init__(
        self,
        store: RecordingStore,
        storage: Storage,
        service: SignalingService,
        *,
        ice_servers: Callable[[str], list[IceServer]],
        retention_days: int = 0,
        sfu: SfuBridge | None = None,
        min_free_bytes: int = 0,
        metrics: RecordingMetrics | None = None,
        records: RecordsRetention | None = None,
        node_id: str | None = None,
        several_nodes: bool = False,
        dead_after_s: float = 10.0,
        fence_of: Callable[[uuid.UUID], Fence | None] | None = None,
    ) -> None:
        self.store = store
        # Several nodes: the owner's fence of a workshop, None where this node does not own it (continuations start
        # on the owner alone, fenced).
        self.fence_of = fence_of
        # The node that runs the recordings started here (written with each). Among several nodes, crash recovery
        # finalises only the recordings of nodes not seen for `dead_after_s`, and a new owner those of the
        # workshops it takes over (docs/scaling.md).
        self.node_id = node_id
        self.several_nodes = several_nodes
        self.dead_after_s = dead_after_s
        self.records = records
        self.storage = storage
        self.service = service
        self.ice_servers = ice_servers
        self.retention_days = retention_days
        self.min_free_bytes = min_free_bytes
        self.metrics = metrics
        self.sfu = sfu
        # Where Janus writes .mjr files; known without a bridge too, so that recovery can finish them.
        self.sfu_rec_dir = Path(sfu.rec_dir) if sfu is not None and sfu.rec_dir else storage.root / "sfu"
        self.live: dict[uuid.UUID, LiveRecording] = {}
        self._by_peer: dict[str, LiveRecording] = {}
        self._lock = asyncio.Lock()
        # Continuations waiting for their room to have members again: room id -> the recording to continue.
        self._pending: dict[str, Any] = {}
        self._retention: asyncio.Task[None] | None = None
        # Recovery and abandonment when a lease comes or goes (several nodes).
        self._tasks = OwnedTasks("recordings", expected=(ServiceError, OSError, asyncpg.PostgresError))
        # Told when a recording became ready (and so was queued for composition): the supervisor looks at once.
        self.on_ready: Callable[[], None] | None = None
        # Told before a recording's files are deleted: a composition of it still running is ended.
        self.on_delete: Callable[[uuid.UUID], None] | None = None

    # Lifecycle ------------------------------------------------------------------------------------

    async def open(self) -> None:
        """At start: finalise recordings a previous process left running, check files against metadata,
        and start the retention task."""
        await self.recover()
        if not self.several_nodes:  # among several nodes, each workshop's owner loads its own (adopt_workshop)
            await self._load_pending(None)
        await self.consistency_report()
        if self.retention_days > 0 or self.records is not None:
            self._retention = asyncio.create_task(self._retention_loop(), name="recording-retention")

    async def close(self) -> None:
        await self._tasks.cancel_all()
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention
        # Side by side: each stop is bounded (Recorder.stop), so shutdown is bounded by one, not by their sum.
        # Continued by the workshop's next owner (or this server, restarted) when the room has members again.
        stops = [self.stop(r, reason="server shutting down", continuation=True) for r in list(self.live)]
        for result in await asyncio.gather(*stops, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("could not stop a recording at shutdown: %s", result)

    async def recover(self) -> list[uuid.UUID]:
        """Finalise (`partial`) the live recordings that no process runs any more: for a node alone, every one not
        running here; among several nodes, only those of nodes that are gone, never another live node's."""
        if self.several_nodes:
            return await self._recover(await self.store.live_of_gone_nodes(self.dead_after_s))
        return await self._recover(await self.store.live())

    async def recover_workshop(self, workshop_id: uuid.UUID) -> list[uuid.UUID]:
        """This node took the workshop's lease: the live recordings another node started there are a previous
        owner's, which lost the workshop (dead, paused or cut off) and may not run them any more."""
        async with self._lock:  # after a start in flight: its recording is in `live` by then
            return await self._recover(await self.store.live_of_workshop_by_others(workshop_id, self.node_id or ""))

    async def recover_unowned(self) -> list[uuid.UUID]:
        """The sweep (server.sweep, one node at a time): finalise the live recordings of gone nodes in workshops
        that nobody took over, the same way as at a start. A new owner racing with it finalises each once."""
        return await self._recover(await self.store.live_of_gone_nodes_unleased(self.dead_after_s))

    def adopt_workshop(self, workshop_id: uuid.UUID) -> None:
        """`recover_workshop` in the background (the lease keeper's callback is not a coroutine), then the
        continuations the workshop waits for."""
        self._tasks.spawn(self._adopt(workshop_id), name=f"recordings-adopt-{workshop_id}")

    async def _adopt(self, workshop_id: uuid.UUID) -> None:
        await self.recover_workshop(workshop_id)
        await self._load_pending(workshop_id)

    def abandon_workshop(self, workshop_id: uuid.UUID) -> None:
        """This node lost the workshop's lease: its recordings of it end here (what was written is kept,
        `partial`); the new owner finalises them too if it comes first."""
        for room_id in [r for r, row in self._pending.items() if row["workshop_id"] == workshop_id]:
            del self._pending[room_id]  # the new owner's to start
        self._tasks.spawn(self._abandon(str(workshop_id)), name=f"recordings-abandon-{workshop_id}")

    async def _abandon(self, workshop_id: str) -> None:
        for live in [r for r in self.live.values() if r.workshop_id == workshop_id]:
            self.live.pop(live.id, None)
            self._by_peer.pop(live.member.id, None)
            self.service.set_recording(live.room_id, None)
            failures = ["the workshop moved to another node; what was written is kept"]
            try:
                if live.recorder is not None:
                    self.service.remove_hidden(live.member)
                    await live.recorder.stop()
                    failures += live.recorder.failures
                else:
                    failures += await self._stop_sfu(live)
                with contextlib.suppress(ServiceError):  # the new owner may have finalised it first
                    await self.store.transition(live.id, "recording", "stopping", reason=failures[0], partial=True)
                with contextlib.suppress(ServiceError):  # the new owner continues it
                    await self.store.transition(
                        live.id, "stopping", "ready", reason="; ".join(failures), partial=True, continuation=True
                    )
            except Exception:
                log.exception("recording %s: could not be ended after the lease was lost", live.id)
            log.warning("recording %s ended here: the lease of workshop %s was lost", live.id, workshop_id)

    async def _recover(self, rows: Sequence[Any], *, continuation: bool = True) -> list[uuid.UUID]:
        """Finalise what previous processes left. A recording that was recording (not one being stopped or started)
        is continued when its room has members again, unless `continuation` is False (a moderator's stop)."""
        recovered = []
        for row in rows:
            if row["id"] in self.live:
                continue
            for track in await self.store.tracks(row["id"]):
                if track["state"] != "writing":
                    continue
                path = self.storage.path(track["file_key"]) if track["file_key"] else None
                if path is not None and path.exists():
                    facts = await asyncio.to_thread(file_facts, path)
                    await self.store.finish_track(
                        track["id"], state="partial", size=facts.size, duration_s=facts.duration_s, sha256=facts.sha256
                    )
                else:
                    await self.store.finish_track(track["id"], state="partial", size=0, duration_s=0.0, sha256=None)
            failures = await self._finish_sfu_files(row["id"], row["started_at"], cut=set(), crashed=True)
            state = row["state"]
            reason = "; ".join([CRASH_REASON, *failures])
            try:
                if state == "starting":
                    await self.store.transition(row["id"], "starting", "failed", reason=reason, partial=True)
                else:
                    if state == "recording":
                        await self.store.transition(row["id"], "recording", "stopping", reason=reason, partial=True)
                    await self.store.transition(
                        row["id"],
                        "stopping",
                        "ready",
                        reason=reason,
                        partial=True,
                        continuation=continuation and state == "recording",
                    )
            except Conflict:
                # Several nodes: another node (a new owner, or the sweep) finalised it first; the transitions are
                # guarded in SQL, so it was finalised once.
                log.info("recording %s was finalised by another node", row["id"])
                continue
            log.warning("finalised recording %s left %s by a previous process", row["id"], state)
            recovered.append(row["id"])
        return recovered

    async def consistency_report(self) -> dict[str, list[str]]:
        """Files without metadata and metadata without files, logged at start."""
        on_disk = await asyncio.to_thread(self.storage.keys_on_disk)
        known = await self.store.file_keys()
        report = {"files_without_metadata": sorted(on_disk - known), "metadata_without_files": sorted(known - on_disk)}
        for kind, keys in report.items():
            if keys:
                log.warning("recordings consistency: %d %s: %s", len(keys), kind.replace("_", " "), keys[:10])
        return report

    async def _retention_loop(self) -> None:
        while True:
            try:
                await self.apply_retention()
            except Exception:
                log.exception("recording retention failed")
            await asyncio.sleep(3600)

    async def apply_retention(self) -> int:
        """Delete expired recordings (their count is returned), then the workshops' other expired records."""
        expired: list[uuid.UUID] = []
        try:
            if self.retention_days > 0:
                before = datetime.now(UTC) - timedelta(days=self.retention_days)
                expired = await self.store.expired(before)
                for recording_id in expired:
                    await self.delete(recording_id, by="retention", actor=SYSTEM)
        finally:
            # A recording that cannot be deleted now does not hold back the other records.
            if self.records is not None:
                await self.records.apply()
        return len(expired)

    # Start and stop -------------------------------------------------------------------------------

    async def start(self, room: RoomInfo, consent_mode: str, starter: Starter, *, fence: Fence | None = None) -> Any:
        """Start recording the room. Among several nodes `fence` is the owner's: a node that lost the workshop's
        lease starts nothing (`LeaseLost`)."""
        self.storage.check_free(self.min_free_bytes)  # raises Unavailable with the numbers
        async with self._lock:
            row = await self.store.create(
                workshop_id=uuid.UUID(room.workshop_id),
                room_id=uuid.UUID(room.id),
                room_name=room.name,
                consent_mode=consent_mode,
                started_by=starter.id,
                started_by_role=starter.role,
                node_id=self.node_id,
                fence=fence,
                change=Change(
                    uuid.UUID(room.workshop_id),
                    starter.actor,
                    "recording.start",
                    target={"room_id": room.id},
                    details={"room_name": room.name, "consent_mode": consent_mode, "media": room.media},
                ),
            )
            return await self._launch(room, consent_mode, row, {})

    async def _launch(self, room: RoomInfo, consent_mode: str, row: Any, consent: dict[str, bool]) -> Any:
        """Run the recording whose row was just written (`starting`): the recorder joins the room (mesh) or Janus
        records (sfu), and the room hears `recording_started`. `consent`: the answers it starts with (carried over
        to a continuation). Under `_lock`."""
        recording_id = row["id"]
        if self.sfu is not None and room.media == "sfu":
            return await self._start_sfu(room, consent_mode, row, consent)
        peer_id = f"recorder-{recording_id.hex[:12]}"
        try:
            recorder = Recorder(
                recording_id=recording_id,
                peer_id=peer_id,
                started_at=row["started_at"],
                ice_servers=self.ice_servers(peer_id),
                storage=self.storage,
                store=self.store,
                relay=lambda to, msg: self._answer(peer_id, to, msg),
                on_problem=self._problem,
                on_bytes=self.metrics.recording_bytes if self.metrics else None,
            )
            recorder.start()
        except Exception as exc:
            await self.store.transition(recording_id, "starting", "failed", reason=f"recorder failed: {exc}")
            raise
        member = Member(
            id=peer_id,
            workshop_id=room.workshop_id,
            profile=Profile(display_name="Recorder", country="", organisation="", role=RECORDER_ROLE),
            room_id=room.id,
            resume_secret="",
            outbox=recorder,
            hidden=True,
        )
        live = LiveRecording(
            id=recording_id,
            workshop_id=room.workshop_id,
            room_id=room.id,
            consent_mode=consent_mode,
            started_at=row["started_at"],
            recorder=recorder,
            member=member,
            consent=dict(consent),
            continues=row["continues"],
        )
        self.live[recording_id] = live
        self._by_peer[peer_id] = live
        self.service.add_hidden(member, room)
        row = await self.store.transition(recording_id, "starting", "recording")
        self._announce(live)
        return row

    def _announce(self, live: LiveRecording) -> None:
        status = RecordingStatus(
            recording_id=str(live.id),
            recorder_peer_id=live.member.id,
            consent_mode=live.consent_mode,
            started_at=live.started_at,
            continues=str(live.continues) if live.continues is not None else None,
        )
        self.service.set_recording(live.room_id, status)
        self.service.send_to_room(
            live.room_id,
            RecordingStarted(
                recording_id=status.recording_id,
                recorder_peer_id=status.recorder_peer_id,
                consent_mode=status.consent_mode,
                started_at=status.started_at,
                continues=status.continues,
            ),
        )

    async def _start_sfu(self, room: RoomInfo, consent_mode: str, row: Any, consent: dict[str, bool]) -> Any:
        """Janus records: no recorder peer and no hidden member. Every live feed whose consent holds (in
        assumed mode: everyone's) starts now; feeds that come up later start in `recording_base`."""
        placeholder = Member(
            id=SFU_RECORDER_PEER_ID,
            workshop_id=room.workshop_id,
            profile=Profile(display_name="Recorder", country="", organisation="", role=RECORDER_ROLE),
            room_id=room.id,
            resume_secret="",
            hidden=True,
        )
        live = LiveRecording(
            id=row["id"],
            workshop_id=room.workshop_id,
            room_id=room.id,
            consent_mode=consent_mode,
            started_at=row["started_at"],
            recorder=None,
            member=placeholder,
            sfu=SfuSession(recording_id=row["id"], room_id=room.id),
            consent=dict(consent),
            continues=row["continues"],
        )
        self.live[live.id] = live
        row = await self.store.transition(live.id, "starting", "recording")
        self._announce(live)
        assert self.sfu is not None
        for feed in self.sfu.feeds(room.id):
            self._spawn_sync(live, feed.feed_id)
        return row

    def _answer(self, peer_id: str, to: str, message: dict[str, Any]) -> None:
        live = self._by_peer.get(peer_id)
        if live is None or self.service.members.get(peer_id) is not live.member:
            return
        with contextlib.suppress(NotFound):  # the participant left meanwhile
            self.service.relay(live.member, Answer(type="answer", to=to, sdp=message["sdp"]))

    async def stop(
        self,
        recording_id: uuid.UUID,
        *,
        reason: str | None = None,
        actor: Actor = SYSTEM,
        fence: Fence | None = None,
        continuation: bool = False,
    ) -> Any:
        """Stop a recording (`actor` asked for it; the server itself at shutdown or when the workshop goes). With the
        owner's `fence` (several nodes), a node that lost the workshop's lease cannot stop it (`LeaseLost`).

        A recording that was continued stands for the room's recording: its stop stops the continuation (or, while
        the continuation waits for the room's members, cancels it). `continuation` (the drain): the workshop's next
        owner continues it."""
        live = self.live.get(recording_id)
        if live is None:
            row = await self.store.get(recording_id)
            if row["state"] in ("starting", "recording", "stopping"):
                # Left behind by another process: finalise what is on disk (a stop: not continued). Among several
                # nodes this runs on the workshop's owner, for whom a recording it does not run is a previous
                # owner's: only that one.
                await self._recover([row], continuation=False)
                return await self.store.get(recording_id)
            tail = await self.store.chain_tail(recording_id)
            if tail["id"] != recording_id:  # continued: the room's recording is its last continuation
                await self.stop(tail["id"], reason=reason, actor=actor, fence=fence)
                return await self.store.get(recording_id)
            if row["continuation_pending"]:
                await self._end_pending(row, reason=reason, actor=actor)
                return await self.store.get(recording_id)
            return await self.store.transition(recording_id, "recording", "stopping")  # raises Conflict
        change = Change(
            uuid.UUID(live.workshop_id),
            actor,
            "recording.stop",
            target={"recording_id": recording_id, "room_id": live.room_id},
            details={"reason": reason} if reason else {},
        )
        row = await self.store.transition(recording_id, "recording", "stopping", change=change, fence=fence)
        self.live.pop(recording_id, None)
        self._by_peer.pop(live.member.id, None)
        self.service.set_recording(live.room_id, None)
        self.service.send_to_room(live.room_id, RecordingStopped(recording_id=str(recording_id)))
        if live.recorder is not None:
            self.service.remove_hidden(live.member)
            try:
                await live.recorder.stop()  # bounded (Recorder.stop)
            except Exception as exc:  # whatever broke, the recording must not stay `stopping`
                log.exception("recording %s: the recorder failed while stopping", recording_id)
                live.recorder.failures.append(f"the recorder failed while stopping: {exc}")
            failures = live.recorder.failures
        else:
            failures = await self._stop_sfu(live)
        row = await self.store.transition(
            recording_id,
            "stopping",
            "ready",
            reason="; ".join(failures) if failures else reason,
            partial=bool(failures),
            continuation=continuation,
        )
        if self.on_ready is not None:
            self.on_ready()
        return row

    # Continuation after a failover or a drain ------------------------------------------------------------

    async def _load_pending(self, workshop_id: uuid.UUID | None) -> None:
        """Read the continuations waiting in the workshop (None: in every workshop, a node alone) and start those
        whose room has members here already; the others start when a member enters (`room_entered`)."""
        for row in await self.store.pending_continuations(workshop_id, CONTINUE_WITHIN_S):
            self._pending.setdefault(str(row["room_id"]), row)  # newest first: one per room
        for room_id in list(self._pending):
            room = self.service.rooms.get(room_id)
            if room is not None and any(not m.hidden for m in room.members.values()):
                self._spawn_continue(room.info)

    def room_entered(self, room: RoomInfo) -> None:
        """The hub: a member entered the room (joined, resumed from another process, moved). A continuation waiting
        for the room starts now, in the background."""
        if room.id in self._pending:
            self._spawn_continue(room)

    def _spawn_continue(self, room: RoomInfo) -> None:
        self._tasks.spawn(self._continue(room), name=f"recordings-continue-{room.id}")

    async def _continue(self, room: RoomInfo) -> None:
        async with self._lock:
            previous = self._pending.pop(room.id, None)
            if previous is None or self.live_in_room(room.id) is not None:
                return
            fence = None
            if self.several_nodes:
                fence = self.fence_of(uuid.UUID(room.workshop_id)) if self.fence_of is not None else None
                if fence is None:
                    return  # not the owner: the owner starts it (it loads the pending ones with the lease)
            try:
                self.storage.check_free(self.min_free_bytes)
            except ServiceError as exc:
                log.error("recording %s: its continuation cannot start: %s", previous["id"], exc.message)
                return
            made = await self.store.create_continuation(
                previous["id"], node_id=self.node_id, media=room.media, fence=fence
            )
            if made is None:
                log.info("recording %s: continued elsewhere, or stopped meanwhile", previous["id"])
                return
            row, carried = made
            log.warning("recording %s continues recording %s in room %s", row["id"], previous["id"], room.id)
            await self._launch(room, row["consent_mode"], row, {str(pid): granted for pid, granted in carried.items()})

    async def _end_pending(self, row: Any, *, reason: str | None, actor: Actor) -> None:
        """A stop of the room's recording while its continuation waits: it will not start."""
        self._pending.pop(str(row["room_id"]), None)
        await self.store.end_pending(
            row["id"],
            change=Change(
                row["workshop_id"],
                actor,
                "recording.stop",
                target={"recording_id": row["id"], "room_id": row["room_id"]},
                details={"continuation": "cancelled", **({"reason": reason} if reason else {})},
            ),
        )

    def _problem(self, problem: TrackProblem) -> None:
        """A track cannot be written: the workshop's moderators hear it at once (the API shows it too)."""
        live = self.live.get(problem.recording_id)
        if live is None:
            return
        if self.metrics is not None:
            self.metrics.recording_failure()
        self.service.send_to_workshop(
            live.workshop_id,
            RecordingProblem(
                recording_id=str(problem.recording_id),
                room_id=live.room_id,
                participant_id=problem.participant_id,
                kind="video" if problem.kind == "video" else "audio",
                reason=problem.reason,
            ),
            roles=MODERATOR_ROLES,
        )

    def live_in_room(self, room_id: str) -> LiveRecording | None:
        return next((r for r in self.live.values() if r.room_id == room_id), None)

    # Consent and the relay gate --------------------------------------------------------------------

    async def consent(self, member: Member, message: Consent) -> None:
        try:
            recording_id = uuid.UUID(message.recording_id)
        except ValueError as exc:
            raise NotFound("no such recording") from exc
        live = self.live.get(recording_id)
        if live is None or live.workshop_id != member.workshop_id:
            raise NotFound("no such recording is running")
        await self.store.record_consent(
            recording_id,
            uuid.UUID(member.id),
            message.granted,
            change=Change(
                uuid.UUID(member.workshop_id),
                Actor(id=uuid.UUID(member.id), role=member.profile.role, display_name=member.profile.display_name),
                "recording.consent",
                target={"recording_id": recording_id, "participant_id": member.id},
                details={"granted": message.granted},
            ),
            connection_id=member.connection_id,
        )
        live.consent[member.id] = message.granted
        if live.sfu is not None and self.sfu is not None:
            # Awaited: when the answer is acknowledged, Janus has started or stopped the member's feeds.
            for feed in self.sfu.member_feeds(member.id):
                await self._sync_feed(live, feed.feed_id)
        elif live.recorder is not None and not live.holds(member.id):
            await live.recorder.stop_participant(member.id)

    # Sfu rooms: Janus records ---------------------------------------------------------------------

    def recording_base(self, room_id: str, feed: FeedInfo) -> str | None:
        """The bridge asks when a feed comes up. The answer is always None: the start is applied by
        `_sync_feed` under the feed's lock instead, so that a consent withdrawn meanwhile cannot be
        overtaken by a start decided earlier."""
        live = self.live_in_room(room_id)
        if live is not None and live.sfu is not None:
            self._spawn_sync(live, feed.feed_id)
        return None

    def _spawn_sync(self, live: LiveRecording, feed_id: str) -> None:
        assert live.sfu is not None
        task = asyncio.create_task(self._sync_feed(live, feed_id), name=f"recording-sfu-{feed_id}")
        live.sfu.tasks.add(task)
        task.add_done_callback(live.sfu.tasks.discard)

    async def _sync_feed(self, live: LiveRecording, feed_id: str) -> None:
        """Make Janus record the feed exactly when the publisher's consent holds and the recording runs."""
        session, bridge = live.sfu, self.sfu
        assert session is not None and bridge is not None
        async with session.lock(feed_id):
            feed = next((f for f in bridge.feeds(live.room_id) if f.feed_id == feed_id), None)
            recorded = any(f.feed_id == feed_id for f in bridge.recorded_feeds(live.room_id))
            wanted = feed is not None and self.live.get(live.id) is live and live.holds(feed.peer_id)
            try:
                open_ = session.open_segment(feed_id)
                if recorded and wanted and feed is not None and open_ is not None and open_.language != feed.language:
                    # An interpreter switched channel: the old channel's segment ends, a new one starts below.
                    await bridge.record_feed(feed_id, None)
                    open_.stopped = True
                    recorded = False
                if wanted and not recorded:
                    assert feed is not None
                    segment = Segment(
                        participant_id=feed.peer_id,
                        feed_id=feed_id,
                        base=session.new_base(feed.peer_id, feed.source, feed.language),
                        generation=_generation(bridge.generation_of(live.room_id)),
                        language=feed.language,
                    )
                    session.segments.append(segment)  # before the request: its files may appear at once
                    if not await bridge.record_feed(feed_id, segment.base):
                        segment.stopped = True
                elif recorded and not wanted:
                    await bridge.record_feed(feed_id, None)
                    segment_ = session.open_segment(feed_id)
                    if segment_ is not None:
                        segment_.stopped = True
            except (ServiceError, JanusError, JanusGone) as exc:
                log.warning("recording %s: could not switch the recording of %s: %s", live.id, feed_id, exc)

    async def _stop_sfu(self, live: LiveRecording) -> list[str]:
        """Stop Janus's recording of every feed of the room, then turn the files into tracks."""
        session, bridge = live.sfu, self.sfu
        assert session is not None
        for task in list(session.tasks):
            with contextlib.suppress(Exception):
                await task
        if bridge is not None:
            for feed in bridge.recorded_feeds(live.room_id):
                async with session.lock(feed.feed_id):
                    try:
                        await bridge.record_feed(feed.feed_id, None)
                    except (ServiceError, JanusError, JanusGone) as exc:
                        log.warning("recording %s: could not stop recording %s: %s", live.id, feed.feed_id, exc)
                        continue
                    segment = session.open_segment(feed.feed_id)
                    if segment is not None:
                        segment.stopped = True
        # A segment that we did not stop ended with its feed (unpublished, left) or with Janus: only the
        # latter cuts it, and the bridge's connection generation tells which (conservatively: any segment of
        # an earlier connection).
        generation = bridge.generation_of(live.room_id) if bridge is not None else None
        cut = {s.base for s in session.segments if not s.stopped and s.generation != generation}
        failures = await self._finish_sfu_files(live.id, live.started_at, cut=cut, crashed=False)
        if cut:
            failures.insert(0, "the SFU went away during the recording; what it had written is kept")
        return failures

    async def _finish_sfu_files(
        self, recording_id: uuid.UUID, started_at: datetime, *, cut: set[str], crashed: bool
    ) -> list[str]:
        files = await asyncio.to_thread(mjr_files, self.sfu_rec_dir, recording_id)
        if not files:
            return []
        failures = await convert(
            files,
            recording_id=recording_id,
            started_at=started_at,
            storage=self.storage,
            store=self.store,
            cut=cut,
            crashed=crashed,
        )
        if not failures:  # the raw files go once every one is a track; otherwise they stay for another try
            await asyncio.to_thread(delete_mjr, self.sfu_rec_dir, recording_id)
        return failures

    def check_send(self, sender: Member, recorder: Member) -> None:
        live = self._by_peer.get(recorder.id)
        if live is None:
            raise NotFound("the recording has ended")
        if not live.holds(sender.id):
            raise PermissionDenied("you have not consented to this recording")

    # Deletion -------------------------------------------------------------------------------------

    async def stop_workshop(self, workshop_id: uuid.UUID, *, actor: Actor = SYSTEM) -> list[uuid.UUID]:
        """Stop the workshop's live recordings (the workshop is being deleted); return all its recording ids."""
        for live in [r for r in self.live.values() if r.workshop_id == str(workshop_id)]:
            with contextlib.suppress(Exception):
                await self.stop(live.id, reason="workshop deleted", actor=actor)
        return await self.store.ids_of_workshop(workshop_id)

    async def delete_files(self, recording_ids: list[uuid.UUID]) -> None:
        for recording_id in recording_ids:
            if self.on_delete is not None:
                self.on_delete(recording_id)
            await asyncio.to_thread(self.storage.delete_recording, recording_id)
            await asyncio.to_thread(delete_mjr, self.sfu_rec_dir, recording_id)

    async def delete(self, recording_id: uuid.UUID, *, by: str, actor: Actor = SYSTEM) -> None:
        """Delete the files; the row stays as a tombstone (who, when), the audit log says who asked."""
        row = await self.store.get(recording_id)
        change = Change(
            row["workshop_id"],
            actor,
            "recording.delete",
            target={"recording_id": recording_id, "room_id": row["room_id"]},
            details={"by": by},
        )
        await self.store.mark_deleted(recording_id, by, change=change)
        if self.on_delete is not None:
            self.on_delete(recording_id)
        await asyncio.to_thread(self.storage.delete_recording, recording_id)
        await asyncio.to_thread(delete_mjr, self.sfu_rec_dir, recording_id)


def _generation(value: int | None) -> int:
    """A segment started while its room's Janus is away belongs to no connection (-1: cut by any)."""
    return -1 if value is None else value
