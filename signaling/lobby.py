"""The lobby: who waits to enter, and the moderators' decisions (docs/moderation.md).

A knock is persisted before anyone hears of it, and a decision is persisted (with its entry in the moderators'
log) before the knocker or the moderators hear of it. The live picture (pending knocks, the waiting sockets,
the timers of knockers whose socket dropped) is kept here, so a moderator's welcome and the relay path never wait
on PostgreSQL. A restarted server loads the pending knocks and gives their knockers the resume grace period to
come back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from signaling.errors import NotFound
from signaling.lobby_store import ActorRef, GateFacts, KnockRow
from signaling.protocol import (
    Bye,
    Denied,
    Hello,
    Knock,
    KnockMessage,
    KnockReason,
    KnockWithdrawn,
    Lobby,
    LobbyParticipant,
    LobbyWorkshop,
    RoomInfo,
)
from signaling.rooms import Outbox
from signaling.tasks import OwnedTasks

if TYPE_CHECKING:
    from signaling.service import Identity, SignalingService

log = logging.getLogger(__name__)

CLOSE_DENIED = 4405
CLOSE_COME_BACK = 1012  # the workshop moved to another node (signaling.forwarding)
MOVED_REASON = "this workshop moved to another node; reconnect now"
MODERATOR_ROLES = frozenset({"organiser", "moderator"})
Outcome = Literal["admitted", "denied", "left"]


class LobbyStore(Protocol):
    """What the lobby keeps in PostgreSQL (signaling.lobby_store.PgLobbyStore)."""

    async def gate_facts(self, participant_id: str, device: str | None, room_id: str | None) -> GateFacts: ...

    async def knock(
        self,
        *,
        workshop_id: str,
        participant_id: str,
        room_id: str,
        device: str | None,
        reason: str,
        link_used_elsewhere: bool,
    ) -> KnockRow: ...

    async def pending(self) -> list[Mapping[str, Any]]: ...

    async def pending_of(self, workshop_id: str) -> list[Mapping[str, Any]]: ...

    async def admit(
        self, workshop_id: str, knock_ids: Sequence[str], actor: ActorRef, selector: Mapping[str, Any]
    ) -> list[str]: ...

    async def deny(self, workshop_id: str, knock_id: str, actor: ActorRef, message: str | None) -> bool: ...

    async def left(self, knock_id: str) -> None: ...

    async def trust_device(self, participant_id: str, device: str) -> None: ...

    async def end_admissions(self, participant_id: str) -> None: ...


@dataclass(frozen=True)
class Decision:
    """A fresh join must knock, and why."""

    reason: KnockReason
    link_used_elsewhere: bool
    workshop: Mapping[str, Any]


class Waiter:
    """A socket waiting in the lobby. `decision` resolves to "admitted" or "denied" (or "closed": evicted)."""

    def __init__(self, knock_id: str, outbox: Outbox, hello: Hello, version: int) -> None:
        self.knock_id = knock_id
        self.outbox = outbox
        self.hello = hello
        self.version = version
        self.decision: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def decide(self, outcome: str) -> None:
        if not self.decision.done():
            self.decision.set_result(outcome)


@dataclass(eq=False)
class PendingKnock:
    knock: Knock
    workshop_id: str
    waiter: Waiter | None = None
    timer: asyncio.TimerHandle | None = None


@dataclass(frozen=True)
class AdmitSelector:
    knock_ids: Sequence[str] | None = None
    all: bool = False
    country: str | None = None

    def describe(self) -> dict[str, Any]:
        if self.knock_ids is not None:
            return {"selector": "knock_ids"}
        if self.all:
            return {"selector": "all"}
        return {"selector": "country", "country": self.country}


def required_reason(role: str, lobby: str, room: RoomInfo) -> KnockReason | None:
    """The lobby rule before any fact about devices: moderators never knock; a locked room comes first."""
    if role in MODERATOR_ROLES:
        return None
    if room.locked:
        return "locked"
    if lobby == "everyone":
        return "lobby"
    if lobby == "unverified":
        return "unverified"
    return None


class AdmissionLobby:
    """Every pending knock of this process, by id and by participant."""

    def __init__(self, store: LobbyStore, *, grace_s: float, owns: Callable[[str], bool] | None = None) -> None:
        self.store = store
        self.grace_s = grace_s
        # Several nodes: whether this node owns a workshop (holds its lease). Knocks wait on the owner alone: a
        # node takes up only the pending knocks of the workshops it owns. None for a node alone: every one.
        self.owns = owns
        self._knocks: dict[str, PendingKnock] = {}
        self._by_participant: dict[str, str] = {}
        self._trusted: set[tuple[str, str]] = set()  # (participant, device) known to be stored as trusted
        self._ending: dict[str, int] = {}  # participants whose admissions are being ended (writes in flight)
        self._device_of: dict[str, str] = {}  # the device each participant last entered a room from
        self._tasks = OwnedTasks("lobby")
        self._service: SignalingService | None = None
        self._closing = False  # shutting down: no new timers, no news to moderators

    def bind(self, service: SignalingService) -> None:
        self._service = service

    async def start(self) -> None:
        """Take up the knocks a previous process left pending; their knockers have the grace period to return.
        Among several nodes, only those of workshops this node owns (`adopt` takes up the others' when their lease
        comes here)."""
        for row in await self.store.pending():
            if self.owns is None or self.owns(str(row["workshop_id"])):
                self._take_up(row)

    def adopt(self, workshop_id: str) -> None:
        """This node acquired the workshop's lease: take up its pending knocks (a previous owner's), whose
        knockers have the grace period to come back here."""
        self._tasks.spawn(self._adopt(workshop_id), f"lobby-adopt-{workshop_id}")

    async def _adopt(self, workshop_id: str) -> None:
        for row in await self.store.pending_of(workshop_id):
            if str(row["id"]) not in self._knocks and (self.owns is None or self.owns(workshop_id)):
                pending = self._take_up(row)
                self._tell_moderators(workshop_id, KnockMessage(knock=pending.knock))  # some may be here already

    def disown(self, workshop_id: str) -> None:
        """This node lost the workshop's lease: its knockers' sockets here are told to come back now (1012) and
        find the new owner; the knocks stay pending in PostgreSQL, where it takes them up."""
        for pending in [p for p in self._knocks.values() if p.workshop_id == workshop_id]:
            self._forget(pending)
            waiter, pending.waiter = pending.waiter, None
            if waiter is not None:
                waiter.outbox.close(CLOSE_COME_BACK, MOVED_REASON)
                waiter.decide("closed")

    def _take_up(self, row: Mapping[str, Any]) -> PendingKnock:
        """A pending knock from PostgreSQL, its knocker not connected: the grace period to come back."""
        knock = Knock(
            id=str(row["id"]),
            participant_id=str(row["participant_id"]),
            display_name=row["display_name"],
            country=row["country"],
            organisation=row["organisation"],
            role=row["role"],
            room_id=str(row["room_id"]),
            room_name=row["room_name"] or "",
            knocked_at=row["knocked_at"],
            reason=row["reason"],
            link_used_elsewhere=row["link_used_elsewhere"],
            connected=False,
        )
        pending = PendingKnock(knock=knock, workshop_id=str(row["workshop_id"]))
        self._knocks[knock.id] = pending
        self._by_participant[knock.participant_id] = knock.id
        self._start_grace(pending)
        return pending

    def shutdown(self) -> None:
        """The server stops: every waiting socket is told to reconnect (1001); the knocks stay pending in
        PostgreSQL, where the next process finds them."""
        self._closing = True
        for pending in self._knocks.values():
            waiter, pending.waiter = pending.waiter, None
            if waiter is not None:
                waiter.outbox.send(Bye(reason="server restarting", reconnect=True).model_dump_json())
                waiter.outbox.close(1001, "server restarting")
                waiter.decide("closed")

    async def close(self) -> None:
        for pending in self._knocks.values():
            if pending.timer is not None:
                pending.timer.cancel()
        await self._tasks.cancel_all()

    # Reading -------------------------------------------------------------------------------------

    def knocks_of(self, workshop_id: str) -> list[Knock]:
        """The workshop's pending knocks, oldest first."""
        found = [p.knock for p in self._knocks.values() if p.workshop_id == workshop_id]
        return sorted(found, key=lambda k: (k.knocked_at, k.id))

    def pending_of(self, participant_id: str) -> Knock | None:
        knock_id = self._by_participant.get(participant_id)
        return self._knocks[knock_id].knock if knock_id is not None else None

    # The gate ------------------------------------------------------------------------------------

    async def check(self, identity: Identity, room: RoomInfo, device: str | None) -> Decision | None:
        """Whether this fresh join (not the resume of someone in a room) must knock. Reads PostgreSQL only when
        the workshop has a lobby or the room is locked."""
        reason = required_reason(identity.profile.role, identity.lobby, room)
        if reason is None:
            return None
        pid = identity.participant_id
        facts = await self.store.gate_facts(pid, device, room.id if reason == "locked" else None)
        if reason == "unverified" and facts.trusted and not self._live_elsewhere(pid, device):
            return None
        if facts.admitted and pid not in self._ending:
            return None
        elsewhere = facts.used_before or self._live_elsewhere(pid, device)
        return Decision(reason=reason, link_used_elsewhere=elsewhere, workshop=facts.workshop)

    def device_of(self, participant_id: str) -> str | None:
        """The device this participant last entered a room from (None: one that sent none, or not known here)."""
        return self._device_of.get(participant_id)

    def _live_elsewhere(self, participant_id: str, device: str | None) -> bool:
        """Someone is in a room as this participant right now, from another device (or one that sent none)."""
        service = self._service
        member = service.members.get(participant_id) if service is not None else None
        if member is None or not member.connected:
            return False
        entered_from = self._device_of.get(participant_id)
        return entered_from is None or entered_from != device

    async def knock(
        self, identity: Identity, room: RoomInfo, hello: Hello, version: int, outbox: Outbox, *, decision: Decision
    ) -> Waiter:
        """Persist the knock (or find the participant's pending one), tell the knocker and the moderators."""
        pid = identity.participant_id
        row = await self.store.knock(
            workshop_id=identity.workshop_id,
            participant_id=pid,
            room_id=room.id,
            device=hello.device,
            reason=decision.reason,
            link_used_elsewhere=decision.link_used_elsewhere,
        )
        p = identity.profile
        knock = Knock(
            id=row.id,
            participant_id=pid,
            display_name=p.display_name,
            country=p.country,
            organisation=p.organisation,
            role=p.role,
            room_id=room.id,
            room_name=room.name,
            knocked_at=row.knocked_at,
            reason=decision.reason,
            link_used_elsewhere=row.link_used_elsewhere,
            connected=True,
        )
        pending = self._knocks.get(row.id)
        if pending is None:
            pending = self._knocks[row.id] = PendingKnock(knock=knock, workshop_id=identity.workshop_id)
            self._by_participant[pid] = row.id
        else:
            pending.knock = knock
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None
        old = pending.waiter
        waiter = pending.waiter = Waiter(row.id, outbox, hello, version)
        if old is not None:
            old.outbox.close(4409, "replaced by a newer connection")
            old.decide("closed")
        w = decision.workshop
        outbox.send(
            Lobby(
                workshop=LobbyWorkshop(
                    id=str(w["workshop_id"]),
                    title=w["title"],
                    starts_at=w["starts_at"],
                    ends_at=w["ends_at"],
                    timezone=w["timezone"],
                ),
                participant=LobbyParticipant(
                    id=pid,
                    display_name=p.display_name,
                    country=p.country,
                    organisation=p.organisation,
                    role=p.role,
                ),
                room_id=room.id,
                knock_id=row.id,
                reason=decision.reason,
                waiting_since=row.knocked_at,
                request_id=hello.request_id,
            ).model_dump_json()
        )
        self._tell_moderators(pending.workshop_id, KnockMessage(knock=knock))
        log.info("%s knocks (%s)", pid, decision.reason, extra={"participant_id": pid, "knock_id": row.id})
        return waiter

    def entered(self, participant_id: str, device: str | None) -> None:
        """A device that entered a room as this participant is trusted afterwards (written in the background)."""
        if device is None:
            self._device_of.pop(participant_id, None)
            return
        self._device_of[participant_id] = device
        if (participant_id, device) in self._trusted:
            return
        self._trusted.add((participant_id, device))
        self._tasks.spawn(self.store.trust_device(participant_id, device), "trust-device")

    def left_on_purpose(self, participant_id: str) -> None:
        """`leave`: the participant's admissions end; coming back knocks again (where the workshop has a lobby).
        Until the write is done, the gate knows it from memory."""
        self._ending[participant_id] = self._ending.get(participant_id, 0) + 1

        async def end() -> None:
            try:
                await self.store.end_admissions(participant_id)
            finally:
                left = self._ending.get(participant_id, 1) - 1
                if left > 0:
                    self._ending[participant_id] = left
                else:
                    self._ending.pop(participant_id, None)

        self._tasks.spawn(end(), "end-admissions")

    # The knocker's socket ------------------------------------------------------------------------

    def detach(self, waiter: Waiter) -> None:
        """The knocker's socket ended: the knock stays for the grace period, shown as not connected."""
        pending = self._knocks.get(waiter.knock_id)
        if pending is None or pending.waiter is not waiter or self._closing:
            return
        pending.waiter = None
        waiter.decide("closed")
        if self.grace_s <= 0:
            self._withdraw_left(pending)
            return
        pending.knock = pending.knock.model_copy(update={"connected": False})
        self._tell_moderators(pending.workshop_id, KnockMessage(knock=pending.knock))
        self._start_grace(pending)

    def leave(self, waiter: Waiter) -> None:
        """The knocker said `leave`: the knock is withdrawn at once."""
        pending = self._knocks.get(waiter.knock_id)
        if pending is not None and pending.waiter is waiter:
            pending.waiter = None
            self._withdraw_left(pending)
        waiter.decide("closed")

    def _start_grace(self, pending: PendingKnock) -> None:
        loop = asyncio.get_running_loop()
        pending.timer = loop.call_later(self.grace_s, self._expire, pending)

    def _expire(self, pending: PendingKnock) -> None:
        pending.timer = None
        if self._knocks.get(pending.knock.id) is pending and pending.waiter is None:
            self._withdraw_left(pending)

    def _withdraw_left(self, pending: PendingKnock) -> None:
        self._forget(pending)
        self._tasks.spawn(self.store.left(pending.knock.id), "knock-left")
        self._withdrawn(pending, "left", None)

    # Decisions -----------------------------------------------------------------------------------

    async def admit(self, workshop_id: str, selector: AdmitSelector, actor: ActorRef) -> int:
        """Admit knocks of the workshop; how many were admitted. Unknown ids (or another workshop's) are
        not_found, and then nobody is admitted."""
        if selector.knock_ids is not None:
            ids = list(dict.fromkeys(selector.knock_ids))
            unknown = [k for k in ids if self._in_workshop(k, workshop_id) is None]
            if unknown:
                raise NotFound(f"no pending knock {unknown[0]} in this workshop")
        else:
            ids = [
                k.id
                for k in self.knocks_of(workshop_id)
                if selector.all or (selector.country is not None and k.country == selector.country)
            ]
        if not ids:
            return 0
        admitted = await self.store.admit(workshop_id, ids, actor, selector.describe())
        for knock_id in admitted:
            pending = self._knocks.get(knock_id)
            if pending is None:
                continue
            self._forget(pending)
            if pending.waiter is not None:
                pending.waiter.decide("admitted")
            self._withdrawn(pending, "admitted", actor.id)
        return len(admitted)

    async def deny(self, workshop_id: str, knock_id: str, actor: ActorRef, message: str | None) -> None:
        pending = self._in_workshop(knock_id, workshop_id)
        if pending is None or not await self.store.deny(workshop_id, knock_id, actor, message):
            raise NotFound(f"no pending knock {knock_id} in this workshop")
        if self._knocks.get(knock_id) is not pending:
            return  # withdrawn while the decision was written
        self._forget(pending)
        waiter = pending.waiter
        if waiter is not None:
            waiter.outbox.send(Denied(message=message).model_dump_json())
            waiter.outbox.close(CLOSE_DENIED, "a moderator denied entry")
            waiter.decide("denied")
        self._withdrawn(pending, "denied", actor.id)

    def evict(self, participant_id: str, *, close: tuple[int, str], by: str | None) -> None:
        """The participant was banned or removed (already persisted): their knock goes, their socket closes."""
        knock_id = self._by_participant.get(participant_id)
        pending = self._knocks.get(knock_id) if knock_id is not None else None
        if pending is None:
            return
        self._forget(pending)
        if pending.waiter is not None:
            pending.waiter.outbox.close(*close)
            pending.waiter.decide("closed")
        self._withdrawn(pending, "denied", by)

    def forget_workshop(self, workshop_id: str) -> None:
        for pending in [p for p in self._knocks.values() if p.workshop_id == workshop_id]:
            self._forget(pending)
            if pending.waiter is not None:
                pending.waiter.outbox.close(4403, "workshop deleted")
                pending.waiter.decide("closed")

    def _in_workshop(self, knock_id: str, workshop_id: str) -> PendingKnock | None:
        pending = self._knocks.get(knock_id)
        return pending if pending is not None and pending.workshop_id == workshop_id else None

    def _forget(self, pending: PendingKnock) -> None:
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None
        self._knocks.pop(pending.knock.id, None)
        if self._by_participant.get(pending.knock.participant_id) == pending.knock.id:
            del self._by_participant[pending.knock.participant_id]

    def _withdrawn(self, pending: PendingKnock, outcome: Outcome, by: str | None) -> None:
        knock = pending.knock
        self._tell_moderators(
            pending.workshop_id,
            KnockWithdrawn(knock_id=knock.id, participant_id=knock.participant_id, outcome=outcome, by=by),
        )

    def _tell_moderators(self, workshop_id: str, message: KnockMessage | KnockWithdrawn) -> None:
        if self._service is not None:
            self._service.send_to_workshop(workshop_id, message, roles=MODERATOR_ROLES)
