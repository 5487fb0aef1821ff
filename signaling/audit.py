"""The audit log's rules: the canonical encoding of an entry, its hashes, and the verification of a chain.

Pure (standard library only). An entry's `entry_digest` is the SHA-256 of its canonical encoding; its `hash` is
the SHA-256 of the canonical encoding of `{"entry_digest": ..., "prev_hash": ...}`, so each hash covers the entry
and, through `prev_hash`, every entry before it. The canonical encoding is JSON with sorted keys, no whitespace,
UTF-8 (not ASCII-escaped), integers only (no floats: write a float as a string), UUIDs as lower-case strings, and
times in UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (always six digits). docs/records.md shows how to recompute it.

Retention may redact an entry (its actor, target and details are erased); the entry keeps its `entry_digest`, so
the chain still verifies, and anyone holding an earlier export can check that export against the digests.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64
SERVER_CHAIN = "server"
# The actor of what the server does by itself (timers, retention, crash recovery).
SYSTEM_ROLE = "system"


@dataclass(frozen=True)
class Actor:
    """Who made a change: a participant (with its role at the time), the admin token (id None) or the server."""

    id: uuid.UUID | None
    role: str
    display_name: str = ""


SYSTEM = Actor(id=None, role=SYSTEM_ROLE, display_name="Roundtable")
ADMIN = Actor(id=None, role="admin", display_name="Admin")


@dataclass(frozen=True)
class Change:
    """An audit entry to be appended with a change, prepared by the service that makes the change."""

    workshop_id: uuid.UUID | None
    actor: Actor
    action: str
    target: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def chain(self) -> str:
        return chain_of(self.workshop_id)


@dataclass(frozen=True)
class Entry:
    """One entry as stored."""

    id: int
    chain: str
    seq: int
    workshop_id: uuid.UUID | None
    at: datetime
    actor: Actor
    action: str
    target: Mapping[str, Any]
    details: Mapping[str, Any]
    prev_hash: str
    entry_digest: str
    hash: str
    redacted_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        """The entry as exported (JSON Lines) and served by the API."""
        return {
            "id": self.id,
            "chain": self.chain,
            "seq": self.seq,
            "workshop_id": str(self.workshop_id) if self.workshop_id else None,
            "at": format_time(self.at),
            "actor": {
                "id": str(self.actor.id) if self.actor.id else None,
                "role": self.actor.role,
                "name": self.actor.display_name,
            },
            "action": self.action,
            "target": normalise(self.target),
            "details": normalise(self.details),
            "prev_hash": self.prev_hash,
            "entry_digest": self.entry_digest,
            "hash": self.hash,
            "redacted_at": format_time(self.redacted_at) if self.redacted_at else None,
        }


def chain_of(workshop_id: uuid.UUID | None) -> str:
    return str(workshop_id) if workshop_id is not None else SERVER_CHAIN


def format_time(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def normalise(value: Any) -> Any:
    """The JSON value the canonical encoding is made of; refuses what would not survive a round trip exactly."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        raise TypeError("audit values may not be floats (write them as strings or integers)")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, Mapping):
        out = {}
        for raw_key, item in value.items():
            key = str(raw_key) if isinstance(raw_key, uuid.UUID) else raw_key
            if not isinstance(key, str):
                raise TypeError(f"audit object keys must be strings or UUIDs, not {type(key).__name__}")
            if key in out:
                raise ValueError(f"audit object key {key!r} appears twice")
            out[key] = normalise(item)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = [normalise(v) for v in value]
        return sorted(items, key=canonical_text) if isinstance(value, set | frozenset) else items
    raise TypeError(f"cannot put a {type(value).__name__} in the audit log")


def canonical_text(value: Any) -> str:
    return json.dumps(normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_bytes(value: Any) -> bytes:
    return canonical_text(value).encode("utf-8")


def entry_form(
    *,
    chain: str,
    seq: int,
    workshop_id: uuid.UUID | None,
    at: datetime,
    actor: Actor,
    action: str,
    target: Mapping[str, Any],
    details: Mapping[str, Any],
) -> dict[str, Any]:
    """What `entry_digest` covers."""
    return {
        "v": FORMAT_VERSION,
        "chain": chain,
        "seq": seq,
        "workshop_id": str(workshop_id) if workshop_id else None,
        "at": format_time(at),
        "actor": {"id": str(actor.id) if actor.id else None, "role": actor.role, "name": actor.display_name},
        "action": action,
        "target": normalise(target),
        "details": normalise(details),
    }


def digest_of(form: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(form)).hexdigest()


def link_hash(prev_hash: str, entry_digest: str) -> str:
    return hashlib.sha256(canonical_bytes({"entry_digest": entry_digest, "prev_hash": prev_hash})).hexdigest()


def entry_digest_of(entry: Entry) -> str:
    return digest_of(
        entry_form(
            chain=entry.chain,
            seq=entry.seq,
            workshop_id=entry.workshop_id,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            target=entry.target,
            details=entry.details,
        )
    )


@dataclass(frozen=True)
class Mismatch:
    """The first entry of a chain that does not match what it should be."""

    chain: str
    seq: int
    entry_id: int | None
    reason: str

    def describe(self) -> str:
        where = f"entry {self.entry_id} (chain {self.chain}, seq {self.seq})"
        return f"{where}: {self.reason}"


@dataclass
class ChainCheck:
    """Verifies one chain entry by entry, in seq order; `mismatch` is the first problem found. `anchored` holds
    (seq -> hash) pairs from signed anchors that the chain must still contain."""

    chain: str
    anchored: Mapping[int, str] = field(default_factory=dict)
    count: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    mismatch: Mismatch | None = None

    def feed(self, entry: Entry) -> bool:
        """Check the next entry; False once a mismatch has been found."""
        if self.mismatch is not None:
            return False
        expected_seq = self.head_seq + 1
        problem = None
        if entry.chain != self.chain:
            problem = f"belongs to chain {entry.chain}"
        elif entry.seq != expected_seq:
            problem = f"seq {entry.seq} where {expected_seq} was expected (an entry is missing or out of place)"
        elif entry.prev_hash != self.head_hash:
            problem = "prev_hash is not the hash of the entry before it"
        elif entry.redacted_at is None and entry_digest_of(entry) != entry.entry_digest:
            problem = "its content does not match its entry_digest (the entry was changed)"
        elif link_hash(entry.prev_hash, entry.entry_digest) != entry.hash:
            problem = "hash does not match prev_hash and entry_digest"
        elif entry.seq in self.anchored and self.anchored[entry.seq] != entry.hash:
            problem = "hash differs from the one a signed anchor recorded for this entry (the log was rewritten)"
        if problem is not None:
            self.mismatch = Mismatch(self.chain, expected_seq, entry.id, problem)
            return False
        self.count += 1
        self.head_seq = entry.seq
        self.head_hash = entry.hash
        return True

    def finish(self) -> ChainCheck:
        """After the last entry: every anchored entry must have been seen."""
        if self.mismatch is None:
            missing = [seq for seq in self.anchored if seq > self.head_seq]
            if missing:
                seq = min(missing)
                self.mismatch = Mismatch(
                    self.chain,
                    seq,
                    None,
                    f"a signed anchor recorded entry {seq}, but the chain ends at {self.head_seq}",
                )
        return self


def verify_entries(chain: str, entries: Iterable[Entry], anchored: Mapping[int, str] | None = None) -> ChainCheck:
    check = ChainCheck(chain, anchored=anchored or {})
    for entry in entries:
        if not check.feed(entry):
            break
    return check.finish()
