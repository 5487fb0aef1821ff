"""A recording's chapters: what happened in its room while it ran, as offsets into it (pure: rows in, chapters out).

Only people who appear in the recording (they have a track) are named: someone who declined is never recorded,
and a chapter list is no place to say that they were there."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

ChapterKind = Literal["start", "join", "leave", "screen", "breakouts_opened", "breakouts_closed", "consent"]


@dataclass(frozen=True)
class Chapter:
    at_s: float
    kind: ChapterKind
    label: str
    participant_id: uuid.UUID | None = None
    name: str | None = None  # the person's or the breakout plan's name, for a client that words labels itself


def build_chapters(
    *,
    started_at: datetime,
    ended_at: datetime,
    tracks: Iterable[Mapping[str, Any]],
    visits: Iterable[Mapping[str, Any]],
    breakout_edges: Iterable[Mapping[str, Any]],
    ledger: Iterable[Mapping[str, Any]],
    names: Mapping[uuid.UUID, str],
) -> list[Chapter]:
    """Chapters in time order. `tracks` need participant_id, kind, offset_s (and source where known); `visits`
    participant_id, started_at, ended_at; `breakout_edges` action, at, details, plan_name; `ledger` participant_id,
    granted, at (in order)."""
    span_s = max(0.0, (ended_at - started_at).total_seconds())
    track_list = list(tracks)
    recorded = {t["participant_id"] for t in track_list}

    def offset(at: datetime) -> float:
        return min(span_s, max(0.0, (at - started_at).total_seconds()))

    def inside(at: datetime | None) -> bool:
        return at is not None and started_at < at <= ended_at

    def name_of(pid: uuid.UUID) -> str:
        return names.get(pid, "")

    out = [Chapter(0.0, "start", "Recording started")]
    for visit in visits:
        pid = visit["participant_id"]
        if pid not in recorded:
            continue
        if inside(visit["started_at"]):
            out.append(Chapter(offset(visit["started_at"]), "join", f"{name_of(pid)} joined", pid, name_of(pid)))
        if inside(visit["ended_at"]):
            out.append(Chapter(offset(visit["ended_at"]), "leave", f"{name_of(pid)} left", pid, name_of(pid)))
    for track in _screens(track_list):
        pid = track["participant_id"]
        at_s = min(span_s, max(0.0, float(track["offset_s"])))
        out.append(Chapter(at_s, "screen", f"{name_of(pid)} shares a screen", pid, name_of(pid)))
    last_edge = ""
    for edge in breakout_edges:
        plan = edge["plan_name"] or ""
        action = edge["action"]
        if action == "breakouts.open":
            kind: ChapterKind = "breakouts_opened"
        elif action == "breakouts.finish" or _closes_at_once(edge):
            kind = "breakouts_closed"
        else:
            continue
        if kind == last_edge:
            continue  # a redacted close counted as the end, then its finish
        last_edge = kind
        if inside(edge["at"]):
            text = "Breakouts opened" if kind == "breakouts_opened" else "Breakouts closed"
            out.append(Chapter(offset(edge["at"]), kind, _titled(text, plan), name=plan or None))
    granted: dict[uuid.UUID, bool] = {}
    for answer in ledger:
        pid = answer["participant_id"]
        before = granted.get(pid)
        granted[pid] = answer["granted"]
        if before is True and not answer["granted"] and pid in recorded and inside(answer["at"]):
            out.append(
                Chapter(offset(answer["at"]), "consent", f"{name_of(pid)} stopped being recorded", pid, name_of(pid))
            )
    order = {"start": 0, "breakouts_closed": 1, "join": 2, "screen": 3, "consent": 4, "leave": 5, "breakouts_opened": 6}
    out.sort(key=lambda c: (c.at_s, order[c.kind]))
    return out


def _screens(tracks: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Screen tracks: those the capture says are (sfu rooms); where it does not know (mesh rooms), as the composer
    does, a second video track of someone whose other video track runs when it starts."""
    videos = sorted((t for t in tracks if t["kind"] == "video"), key=lambda t: float(t["offset_s"]))
    screens = []
    for track in videos:
        source = _source(track)
        if source == "screen":
            screens.append(track)
        elif source is None:
            start = float(track["offset_s"])
            if any(
                other is not track
                and other["participant_id"] == track["participant_id"]
                and _source(other) != "screen"
                and float(other["offset_s"]) < start < _end_s(other)
                for other in videos
            ):
                screens.append(track)
    return screens


def _end_s(track: Mapping[str, Any]) -> float:
    """Where a track ends, from the recording's start; a track still being written has not ended."""
    duration = track.get("duration_s")
    return float(track["offset_s"]) + float(duration) if duration is not None else float("inf")


def _source(track: Mapping[str, Any]) -> str | None:
    try:
        value = track["source"]
    except KeyError:
        return None
    return value if isinstance(value, str) else None


def _closes_at_once(edge: Mapping[str, Any]) -> bool:
    """A `breakouts.close` without a countdown ends the run there; with one, the run ends at `breakouts.finish`.
    A redacted entry has no details: counted as the end (its finish entry, if any, follows within the countdown)."""
    if edge["action"] != "breakouts.close":
        return False
    details = edge["details"]
    if isinstance(details, str):
        details = json.loads(details)
    if not isinstance(details, Mapping) or "countdown_s" not in details:
        return True
    return bool(details["countdown_s"] == 0)


def _titled(text: str, plan: str) -> str:
    return f"{text}: {plan}" if plan else text
