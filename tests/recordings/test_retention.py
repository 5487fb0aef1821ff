"""Retention, tombstones and the start-up consistency check, on the real database and disk."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from recordings.storage import Storage
from server import keys
from signaling.audit import ADMIN as ADMIN_ACTOR
from signaling.audit import Change
from signaling.errors import NotFound
from tests.helpers import ADMIN, add_participant, create_workshop


async def _finished_recording(client: TestClient[Any, Any], started_days_ago: int) -> tuple[uuid.UUID, str]:
    """A ready recording with one track file on disk, made directly through the stores."""
    workshop = await create_workshop(client)
    person = await add_participant(client, workshop["id"])
    store = client.app[keys.RECORDING_STORE]
    storage = client.app[keys.STORAGE]
    row = await store.create(
        workshop_id=uuid.UUID(workshop["id"]),
        room_id=uuid.UUID(workshop["plenary_room_id"]),
        room_name="Plenary",
        consent_mode="explicit",
        started_by=None,
        started_by_role="admin",
        change=Change(uuid.UUID(workshop["id"]), ADMIN_ACTOR, "recording.start"),
    )
    track_id = uuid.uuid4()
    key = storage.key_for(row["id"], track_id)
    path = storage.path(key)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not really webm")
    await store.add_track(
        row["id"], uuid.UUID(person["id"]), track_id=track_id, kind="audio", codec="opus", file_key=key, offset_s=0
    )
    await store.finish_track(track_id, state="complete", size=15, duration_s=1.0, sha256="x")
    for expected, target in (("starting", "recording"), ("recording", "stopping"), ("stopping", "ready")):
        await store.transition(row["id"], expected, target)
    await store.pool.execute(
        "UPDATE recordings SET started_at = $2 WHERE id = $1",
        row["id"],
        datetime.now(UTC) - timedelta(days=started_days_ago),
    )
    return row["id"], key


async def test_retention_deletes_old_recordings_and_keeps_a_tombstone(client: TestClient[Any, Any]) -> None:
    old_id, old_key = await _finished_recording(client, started_days_ago=40)
    new_id, new_key = await _finished_recording(client, started_days_ago=1)
    coordinator = client.app[keys.RECORDINGS]
    coordinator.retention_days = 30
    assert await coordinator.apply_retention() == 1
    storage = client.app[keys.STORAGE]
    assert not storage.path(old_key).exists()
    assert storage.path(new_key).exists()
    resp = await client.get(f"/api/v1/recordings/{old_id}", headers=ADMIN)
    tomb = await resp.json()
    assert tomb["state"] == "deleted" and tomb["deleted_by"] == "retention" and tomb["deleted_at"]
    assert all(t["download_url"] is None for t in tomb["tracks"])
    resp = await client.get(f"/api/v1/recordings/{new_id}", headers=ADMIN)
    assert (await resp.json())["state"] == "ready"


async def test_consistency_check_reports_files_without_metadata_and_metadata_without_files(
    client: TestClient[Any, Any],
) -> None:
    _, kept_key = await _finished_recording(client, started_days_ago=0)
    _, lost_key = await _finished_recording(client, started_days_ago=0)
    storage = client.app[keys.STORAGE]
    storage.path(lost_key).unlink()
    stray = storage.path(f"{uuid.uuid4()}/{uuid.uuid4()}.webm")
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"?")
    report = await client.app[keys.RECORDINGS].consistency_report()
    assert report["metadata_without_files"] == [lost_key]
    assert report["files_without_metadata"] == [str(stray.relative_to(storage.root))]
    assert kept_key not in report["metadata_without_files"]


@pytest.mark.parametrize("key", ["../etc/passwd", "/etc/passwd", "a/../../x", ""])
def test_file_keys_cannot_leave_the_recordings_directory(tmp_path: Path, key: str) -> None:
    with pytest.raises(NotFound):
        Storage(tmp_path).path(key)


async def test_deleting_a_workshop_removes_its_recording_files(client: TestClient[Any, Any]) -> None:
    recording_id, key = await _finished_recording(client, started_days_ago=0)
    storage = client.app[keys.STORAGE]
    assert storage.path(key).exists()
    row = await client.app[keys.RECORDING_STORE].get(recording_id)
    resp = await client.delete(f"/api/v1/workshops/{row['workshop_id']}", headers=ADMIN)
    assert resp.status == 204
    assert not storage.path(key).exists()
    assert not storage.path(str(recording_id)).exists()
