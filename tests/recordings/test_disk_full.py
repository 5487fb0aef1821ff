"""Recordings on a disk that fills up: the failure shows at once, `stop` and shutdown stay bounded.

The small disk is a real tmpfs the test mounts (root, as CI runs), so the writer meets a real ENOSPC
from the kernel rather than an injected exception."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from recordings.recorder import STOP_TIMEOUT_S
from recordings.storage import CLOSE_TIMEOUT_S, TrackWriter
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.helpers import ADMIN, create_workshop, error_of
from tests.recordings.peer import RecordedPeer
from tests.recordings.test_crash_and_hook import HttpClient, start_server
from tests.server.test_process import free_port
from tests.signaling.rtc_peer import loopback_ice

NO_SPACE = "No space left on device"
# A VP8 keyframe of 16x16 (the header the writer reads) followed by noise that does not compress.
KEYFRAME = b"\x50\x02\x00\x9d\x01\x2a\x10\x00\x10\x00"


def mount_small_disk(path: Path, size_bytes: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"cannot mount a small tmpfs for the full-disk tests (needs root): {result.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB filesystem, unmounted afterwards whatever happened."""
    path = tmp_path / "small-disk"
    mount_small_disk(path, 64 * 1024)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10, check=False)


def test_a_writer_on_a_full_disk_reports_at_once_refuses_frames_and_closes_within_its_bound(
    small_disk: Path, tmp_path: Path
) -> None:
    reported: list[str] = []
    failed = threading.Event()

    def on_failure(reason: str) -> None:
        reported.append(reason)
        failed.set()

    full = TrackWriter(small_disk / "r" / "video.webm", "video", "vp8", on_failure=on_failure)
    healthy = TrackWriter(tmp_path / "r" / "video.webm", "video", "vp8")
    frame = KEYFRAME + os.urandom(4000)
    pts = 0
    for _ in range(2000):
        full.put(frame, pts)  # refused while the writer is behind: the loop goes on until the disk is full
        healthy.put(frame, pts)
        pts += 3000
        if failed.wait(0.002):  # the event is what we wait for; the timeout paces the producer
            break
    assert failed.is_set(), "the writer never hit the end of the disk"
    assert NO_SPACE in reported[0] and "video track" in reported[0]
    assert full.put(frame, pts) is False, "a failed writer must refuse frames instead of queueing them"

    started = time.monotonic()
    assert NO_SPACE in (full.close() or "")
    assert time.monotonic() - started < CLOSE_TIMEOUT_S
    assert healthy.close() is None, "a writer on another disk goes on"
    assert healthy.packets > 0


async def test_low_disk_space_refuses_to_start_a_recording_with_a_clear_error(
    database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    from server.app import create_app

    settings = make_settings(database_url, tmp_path / "var", recording_min_free_bytes=1 << 62)
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    workshop = await create_workshop(client)
    resp = await client.post(f"/api/v1/rooms/{workshop['plenary_room_id']}/recordings", headers=ADMIN)
    error = await error_of(resp, 503, "unavailable")
    assert "not enough free disk space" in error["message"]
    assert "ROUNDTABLE_RECORDING_MIN_FREE_BYTES" in error["message"]
    assert error["details"]["min_free_bytes"] == 1 << 62
    resp = await client.get(f"/api/v1/workshops/{workshop['id']}/recordings", headers=ADMIN)
    assert (await resp.json())["items"] == [], "a refused recording leaves no row behind"


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_recording_on_a_disk_that_fills_up_ends_partial_with_the_reason_and_the_server_stops_on_sigint(
    database_url: str, small_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback_ice(monkeypatch)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = await start_server(
        database_url,
        tmp_path / "var",
        port,
        ROUNDTABLE_RECORDINGS_DIR=str(small_disk),
        ROUNDTABLE_RECORDING_MIN_FREE_BYTES="4096",
    )
    peer: RecordedPeer | None = None
    try:
        async with aiohttp.ClientSession() as http:
            body = {
                "title": "Full",
                "timezone": "UTC",
                "starts_at": "2026-12-01T08:00:00Z",
                "ends_at": "2026-12-01T17:00:00Z",
            }
            async with http.post(f"{base}/api/v1/workshops", json=body, headers=ADMIN) as resp:
                workshop = await resp.json()
            url = f"{base}/api/v1/workshops/{workshop['id']}/participants"
            person = {"display_name": "Ana", "country": "PT", "role": "moderator"}
            async with http.post(url, json=person, headers=ADMIN) as resp:
                moderator = await resp.json()
            peer = await RecordedPeer(HttpClient(http, base), moderator["join_token"], "red", 440).join()  # type: ignore[arg-type]
            async with http.post(
                f"{base}/api/v1/rooms/{workshop['plenary_room_id']}/recordings", headers=ADMIN
            ) as resp:
                assert resp.status == 201, await resp.text()
                rec = await resp.json()
            started = await peer.next("recording_started")
            await peer.consent(rec["id"], True)
            await peer.send_media(started["recorder_peer_id"])

            # The moderator hears it while the recording runs, and the API shows it: not at stop.
            problem = await peer.next("recording_problem")
            assert problem["recording_id"] == rec["id"] and problem["participant_id"] == peer.id
            assert NO_SPACE in problem["reason"]
            async with http.get(f"{base}/api/v1/recordings/{rec['id']}", headers=ADMIN) as resp:
                running = await resp.json()
            assert running["state"] == "recording"
            assert running["partial"] is True and NO_SPACE in running["failure_reason"]
            assert any(t["state"] == "partial" for t in running["tracks"]), running["tracks"]

            began = time.monotonic()
            async with asyncio.timeout(STOP_TIMEOUT_S + 5):
                async with http.post(f"{base}/api/v1/recordings/{rec['id']}/stop", headers=ADMIN) as resp:
                    assert resp.status == 200, await resp.text()
                    stopped = await resp.json()
            assert time.monotonic() - began < STOP_TIMEOUT_S + 5
            assert stopped["state"] == "ready"
            assert stopped["partial"] is True and NO_SPACE in stopped["failure_reason"]
            assert {t["state"] for t in stopped["tracks"]} <= {"partial", "complete"}
            async with http.get(f"{base}/metrics") as resp:
                metrics = {
                    s.name: s.value for f in text_string_to_metric_families(await resp.text()) for s in f.samples
                }
            assert metrics["roundtable_recording_track_failures_total"] >= 1
            assert metrics["roundtable_recording_bytes_written_total"] > 0
    finally:
        if peer is not None:
            await peer.close()
        code = await server.stop()  # SIGINT, bounded
    assert code == 0, "".join(server.output)
    assert ADMIN_TOKEN not in "".join(server.output)
