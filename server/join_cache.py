"""What a join needs to know about a participant, kept in memory: token generation, profile and current room.

A join reads one row (server.store `SELECT_PARTICIPANT_AND_ROOM`) the first time a participant joins; later joins
and reconnects are answered from here. Correctness rests on two rules:

- Every write that can change an entry forgets it, before and after the write: participant edits, revocations and
  deletions forget that participant; a room edit (name, capacity, media, publishing: a mesh room growing into an
  sfu one is one) forgets the entries in that room; room and workshop deletions and every breakout plan or
  assignment change forget everything (they are rare, and may move many people at once). The stores do this
  themselves (server.store.Store, signaling.breakout_store.BreakoutStore), so no handler can forget to.
- A read that raced with a write is not cached: `put` refuses an entry read before the last forget.

With several nodes the forgets travel on the bus (`server.join_cache_bus`): every forget a node's stores make is
announced (`announce`, set by the wiring) and applied by every other node (`apply`, which announces nothing, so
nothing loops). While the bus is down a node cannot hear the others' forgets: the cache is then switched off
(`enabled`), emptied, and emptied again when the bus is back.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from server.auth import banned
from signaling.errors import Banned, Unauthenticated
from signaling.protocol import RoomInfo
from signaling.rooms import Profile

MAX_ENTRIES = 200_000
MAX_FORGOTTEN = 100_000


@dataclass(frozen=True, eq=False)
class JoinEntry:
    """A live participant as of its last read from PostgreSQL."""

    participant_id: uuid.UUID
    workshop_id: uuid.UUID
    token_generation: int
    profile: Profile
    room: RoomInfo
    lobby: str = "off"  # the workshop's lobby setting
    banned: Banned | None = None  # the refusal, when the participant is banned

    def admit(self, workshop_id: uuid.UUID, generation: int) -> None:
        """Raise Unauthenticated unless a token for this workshop and generation is still good (Banned when banned,
        whatever the token's generation)."""
        if workshop_id != self.workshop_id:
            raise Unauthenticated("token refers to no participant")
        if self.banned is not None:
            raise self.banned
        if generation != self.token_generation:
            raise Unauthenticated("token revoked")


def entry_of(row: Mapping[str, Any]) -> JoinEntry:
    """A row of `SELECT_PARTICIPANT_AND_ROOM` (room columns prefixed `r_`)."""
    return JoinEntry(
        participant_id=row["id"],
        workshop_id=row["workshop_id"],
        token_generation=row["token_generation"],
        profile=Profile(
            display_name=row["display_name"],
            country=row["country"],
            organisation=row["organisation"],
            role=row["role"],
            interpreter=tuple(row["interpreter_languages"]) if row.get("interpreter_languages") else None,
        ),
        room=RoomInfo(
            id=str(row["r_id"]),
            workshop_id=str(row["r_workshop_id"]),
            name=row["r_name"],
            kind=row["r_kind"],
            media=row["r_media"],
            capacity=row["r_capacity"],
            publishing=row["r_publishing"],
            locked=row["r_locked"],
        ),
        lobby=row["w_lobby"],
        banned=banned(row["ban_reason"]) if row["banned_at"] is not None else None,
    )


class JoinCache:
    """Participant id → JoinEntry, with a version that every forget advances."""

    def __init__(self, *, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: dict[uuid.UUID, JoinEntry] = {}
        self._by_room: dict[str, set[uuid.UUID]] = {}
        self._max_entries = max_entries
        self._version = 0
        # When each participant was last forgotten (by version), so that a join that read it earlier can tell.
        self._forgotten: dict[uuid.UUID, int] = {}
        self._rooms_changed: dict[str, int] = {}
        self._floor = 0  # every read older than this is stale (set by forget_all, and when `_forgotten` is pruned)
        # Several nodes: told every forget made here ({"participant": id}, {"room": id} or {"all": ""}), to send on.
        self.announce: Callable[[dict[str, str]], None] | None = None
        # ... and until what was announced is on its way (a store awaits it after its write, before it answers).
        self.flushed: Callable[[], Awaitable[None]] | None = None
        # Off while this node cannot hear the other nodes' forgets (its bus is down): nothing is served or kept.
        self.enabled = True

    @property
    def version(self) -> int:
        return self._version

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, participant_id: uuid.UUID) -> JoinEntry | None:
        return self._entries.get(participant_id) if self.enabled else None

    def put(self, entry: JoinEntry, *, read_at: int) -> None:
        """Keep `entry`, read when the version was `read_at`, unless anything was forgotten since."""
        if read_at != self._version or not self.enabled:
            return
        if len(self._entries) >= self._max_entries:
            self._entries.clear()  # crude, and rare: a roster this size across workshops
            self._by_room.clear()
        self._drop(entry.participant_id)
        self._entries[entry.participant_id] = entry
        self._by_room.setdefault(entry.room.id, set()).add(entry.participant_id)

    def still_valid(self, participant_id: uuid.UUID, room_id: str | None, read_at: int) -> bool:
        """Whether nothing about this participant (or the room it was read with) was forgotten since `read_at`."""
        return (
            read_at >= self._floor
            and self._forgotten.get(participant_id, -1) <= read_at
            and (room_id is None or self._rooms_changed.get(room_id, -1) <= read_at)
        )

    def forget(self, participant_id: uuid.UUID, *, announce: bool = True) -> None:
        if announce and self.announce is not None:
            self.announce({"participant": str(participant_id)})
        self._version += 1
        self._drop(participant_id)
        if len(self._forgotten) >= MAX_FORGOTTEN:
            self._forgotten.clear()
            self._rooms_changed.clear()
            self._floor = self._version
        self._forgotten[participant_id] = self._version

    def forget_room(self, room_id: str, *, announce: bool = True) -> None:
        """A room was edited: the entries that carry it are stale (who belongs where is unchanged)."""
        if announce and self.announce is not None:
            self.announce({"room": room_id})
        self._version += 1
        for participant_id in self._by_room.pop(room_id, set()):
            self._entries.pop(participant_id, None)
        if len(self._rooms_changed) >= MAX_FORGOTTEN:
            self._forgotten.clear()
            self._rooms_changed.clear()
            self._floor = self._version
        self._rooms_changed[room_id] = self._version

    def forget_all(self, *, announce: bool = True) -> None:
        """Rooms or assignments changed: every entry's room may be wrong, and so may any read in flight."""
        if announce and self.announce is not None:
            self.announce({"all": ""})
        self._version += 1
        self._entries.clear()
        self._by_room.clear()
        self._floor = self._version

    def apply(self, forget: Mapping[str, object]) -> bool:
        """A forget another node announced, applied here without announcing it again. False when malformed."""
        try:
            if isinstance(participant := forget.get("participant"), str):
                self.forget(uuid.UUID(participant), announce=False)
            elif isinstance(room := forget.get("room"), str):
                self.forget_room(room, announce=False)
            elif "all" in forget:
                self.forget_all(announce=False)
            else:
                return False
        except ValueError:
            return False
        return True

    def _drop(self, participant_id: uuid.UUID) -> None:
        entry = self._entries.pop(participant_id, None)
        if entry is not None:
            members = self._by_room.get(entry.room.id)
            if members is not None:
                members.discard(participant_id)
                if not members:
                    del self._by_room[entry.room.id]
