"""A recording's chapters from its room's rows (pure: no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from recordings.chapters import build_chapters

T0 = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
ANA, BEN, DEV = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
NAMES = {ANA: "Ana", BEN: "Ben", DEV: "Dev"}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def track(pid: uuid.UUID, kind: str, offset_s: float, duration_s: float | None, source: str | None = None) -> Any:
    return {"participant_id": pid, "kind": kind, "offset_s": offset_s, "duration_s": duration_s, "source": source}


def chapters(**rows: Any) -> list[tuple[float, str, str | None]]:
    built = build_chapters(
        started_at=T0,
        ended_at=at(600),
        tracks=rows.get("tracks", [track(ANA, "audio", 0, 600), track(BEN, "audio", 0, 600)]),
        visits=rows.get("visits", []),
        breakout_edges=rows.get("edges", []),
        ledger=rows.get("ledger", []),
        names=NAMES,
    )
    return [(c.at_s, c.kind, c.name) for c in built]


def test_screens_are_the_tracks_said_to_be_and_in_mesh_rooms_a_second_video_of_someone_on_camera() -> None:
    tracks = [
        track(ANA, "video", 0, 600, "camera"),
        track(ANA, "video", 60, 30, "screen"),  # sfu: Janus's files say so
        track(BEN, "video", 5, None),  # mesh: camera, still being written
        track(BEN, "video", 120, 40),  # mesh: a second video while the camera runs
        track(DEV, "video", 200, 50),  # mesh: someone's only video is a camera
    ]
    assert [c for c in chapters(tracks=tracks) if c[1] == "screen"] == [
        (60.0, "screen", "Ana"),
        (120.0, "screen", "Ben"),
    ]


def test_breakout_runs_open_and_close_once_even_from_redacted_entries() -> None:
    edges = [
        {"action": "breakouts.open", "at": at(100), "details": {"duration_s": 60}, "plan_name": "Groups"},
        {"action": "breakouts.close", "at": at(160), "details": {"countdown_s": 30}, "plan_name": "Groups"},
        {"action": "breakouts.finish", "at": at(190), "details": {}, "plan_name": "Groups"},
        {"action": "breakouts.open", "at": at(300), "details": "{}", "plan_name": None},  # redacted
        {"action": "breakouts.close", "at": at(350), "details": "{}", "plan_name": None},
        {"action": "breakouts.finish", "at": at(380), "details": "{}", "plan_name": None},
        {"action": "breakouts.open", "at": at(700), "details": {}, "plan_name": "Later"},  # after the recording
    ]
    assert [c for c in chapters(edges=edges) if c[1].startswith("breakouts")] == [
        (100.0, "breakouts_opened", "Groups"),
        (190.0, "breakouts_closed", "Groups"),
        (300.0, "breakouts_opened", None),
        (350.0, "breakouts_closed", None),
    ]


def test_withdrawals_and_visits_name_only_people_in_the_recording() -> None:
    visits = [
        {"participant_id": ANA, "started_at": at(-30), "ended_at": at(400)},  # there before the start
        {"participant_id": BEN, "started_at": at(20), "ended_at": None},
        {"participant_id": DEV, "started_at": at(30), "ended_at": at(90)},  # declined: no track
    ]
    ledger = [
        {"participant_id": DEV, "granted": False, "at": at(31)},
        {"participant_id": BEN, "granted": False, "at": at(21)},  # a no first is no withdrawal
        {"participant_id": BEN, "granted": True, "at": at(22)},
        {"participant_id": BEN, "granted": False, "at": at(250)},
    ]
    assert chapters(visits=visits, ledger=ledger) == [
        (0.0, "start", None),
        (20.0, "join", "Ben"),
        (250.0, "consent", "Ben"),
        (400.0, "leave", "Ana"),
    ]
