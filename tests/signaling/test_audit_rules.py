"""The audit log's pure rules: the canonical encoding (pinned byte for byte, as docs/records.md documents it), the
hashes, and the chain check naming the first entry that does not match."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signaling.audit import (
    GENESIS_HASH,
    Actor,
    Entry,
    canonical_text,
    digest_of,
    entry_form,
    format_time,
    link_hash,
    verify_entries,
)

WID = uuid.UUID("6f1c2a4e-0000-4000-8000-000000000001")
PID = uuid.UUID("6f1c2a4e-0000-4000-8000-0000000000aa")


def test_canonical_encoding_is_sorted_compact_utf8_with_utc_microsecond_times() -> None:
    at = datetime(2026, 12, 1, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    form = entry_form(
        chain=str(WID),
        seq=2,
        workshop_id=WID,
        at=at,
        actor=Actor(PID, "moderator", "Zoë"),
        action="participant.mute",
        target={"participant_id": PID},
        details={"kind": "audio", "b": [2, 1], "a": None},
    )
    assert canonical_text(form) == (
        '{"action":"participant.mute","actor":{"id":"6f1c2a4e-0000-4000-8000-0000000000aa","name":"Zoë",'
        '"role":"moderator"},"at":"2026-12-01T08:30:00.000000Z","chain":"6f1c2a4e-0000-4000-8000-000000000001",'
        '"details":{"a":null,"b":[2,1],"kind":"audio"},"seq":2,'
        '"target":{"participant_id":"6f1c2a4e-0000-4000-8000-0000000000aa"},"v":1,'
        '"workshop_id":"6f1c2a4e-0000-4000-8000-000000000001"}'
    )
    assert digest_of(form) == hashlib.sha256(canonical_text(form).encode()).hexdigest()
    assert (
        link_hash(GENESIS_HASH, "ab" * 32)
        == hashlib.sha256(
            ('{"entry_digest":"' + "ab" * 32 + '","prev_hash":"' + GENESIS_HASH + '"}').encode()
        ).hexdigest()
    )


@pytest.mark.parametrize("bad", [1.5, float("nan"), {1: "x"}, object(), datetime(2026, 1, 1)])
def test_values_that_would_not_survive_a_round_trip_are_refused(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        canonical_text({"x": bad})


def test_times_are_written_in_utc_whatever_their_zone() -> None:
    moscow = datetime(2026, 12, 1, 12, 0, 0, 5, tzinfo=timezone(timedelta(hours=3)))
    assert format_time(moscow) == "2026-12-01T09:00:00.000005Z"


def _chain(n: int) -> list[Entry]:
    entries, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        at = datetime(2026, 12, 1, tzinfo=UTC) + timedelta(seconds=seq)
        actor = Actor(None, "admin", "Admin")
        form = entry_form(
            chain=str(WID),
            seq=seq,
            workshop_id=WID,
            at=at,
            actor=actor,
            action="room.create",
            target={},
            details={"n": seq},
        )
        digest = digest_of(form)
        entry = Entry(
            id=100 + seq,
            chain=str(WID),
            seq=seq,
            workshop_id=WID,
            at=at,
            actor=actor,
            action="room.create",
            target={},
            details={"n": seq},
            prev_hash=prev,
            entry_digest=digest,
            hash=link_hash(prev, digest),
        )
        entries.append(entry)
        prev = entry.hash
    return entries


def test_a_whole_chain_verifies() -> None:
    check = verify_entries(str(WID), _chain(5))
    assert (check.mismatch, check.count, check.head_seq) == (None, 5, 5)


@given(st.integers(min_value=0, max_value=5), st.sampled_from(["details", "action", "at", "actor", "hash", "drop"]))
def test_any_change_is_named_at_the_entry_it_touched(index: int, how: str) -> None:
    entries = _chain(6)
    victim = entries[index]
    if how == "details":
        entries[index] = replace(victim, details={"n": -1})
    elif how == "action":
        entries[index] = replace(victim, action="room.delete")
    elif how == "at":
        entries[index] = replace(victim, at=victim.at + timedelta(microseconds=1))
    elif how == "actor":
        entries[index] = replace(victim, actor=Actor(PID, "moderator"))
    elif how == "hash":
        entries[index] = replace(victim, hash="0" * 64)
    else:
        del entries[index]
    check = verify_entries(str(WID), entries)
    if how == "drop" and index == 5:
        # A chain cut after its last good entry still verifies: only an anchor can tell (see below).
        assert (check.mismatch, check.count) == (None, 5)
        return
    assert check.mismatch is not None
    assert (check.mismatch.seq, check.count) == (victim.seq, index)


def test_a_redacted_entry_still_verifies_through_its_digest_but_not_with_another_one() -> None:
    entries = _chain(3)
    redacted = replace(entries[1], target={}, details={}, actor=Actor(None, "admin"), redacted_at=datetime.now(UTC))
    assert verify_entries(str(WID), [entries[0], redacted, entries[2]]).mismatch is None
    forged = replace(redacted, entry_digest="1" * 64)
    check = verify_entries(str(WID), [entries[0], forged, entries[2]])
    assert check.mismatch is not None and check.mismatch.seq == 2


def test_an_anchor_catches_a_chain_recomputed_after_it_and_one_cut_short() -> None:
    entries = _chain(4)
    anchored = {3: entries[2].hash}
    assert verify_entries(str(WID), entries, anchored).mismatch is None
    rewritten = _chain(4)
    rewritten[2] = replace(rewritten[2], hash="f" * 64)
    assert verify_entries(str(WID), rewritten, {3: entries[2].hash}).mismatch is not None
    cut = verify_entries(str(WID), entries[:2], anchored)
    assert cut.mismatch is not None and cut.mismatch.seq == 3
