"""Crash safety of recordings (the real process killed mid-recording) and the pinned stream-copy hook."""

from __future__ import annotations

import asyncio
import inspect
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import aiortc
import aiortc.rtcrtpreceiver
import av
import pytest

from recordings.recorder import PassthroughDecoder, install_stream_copy_hook
from recordings.service import CRASH_REASON
from tests.conftest import ADMIN_TOKEN, SECRET_KEY
from tests.recordings.peer import RecordedPeer
from tests.server.test_process import ROOT, Server, _env, free_port
from tests.signaling.rtc_peer import loopback_ice

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_stream_copy_hook_matches_the_installed_aiortc() -> None:
    """The recorder relies on aiortc internals: fail loudly when an upgrade changes them."""
    assert aiortc.__version__.startswith("1.16."), "re-check recordings/recorder.py against the new aiortc"
    worker = aiortc.rtcrtpreceiver.decoder_worker
    assert list(inspect.signature(worker).parameters) == ["loop", "input_q", "output_q", "decode_error"]
    assert "get_decoder(codec)" in inspect.getsource(worker)
    source = inspect.getsource(aiortc.rtcrtpreceiver.RTCRtpReceiver.receive)
    assert "self._track._queue" in source, "the decoder thread must still get the track's queue as output_q"
    pli = aiortc.rtcrtpreceiver.RTCRtpReceiver._send_rtcp_pli
    assert list(inspect.signature(pli).parameters) == ["self", "media_ssrc"], "request_keyframe() relies on it"
    install_stream_copy_hook()
    install_stream_copy_hook()  # idempotent
    hooked = aiortc.rtcrtpreceiver.get_decoder
    assert getattr(hooked, "roundtable_stream_copy", False)

    class Frame:
        data = b"\x10\x02\x00\x9d\x01\x2a"
        timestamp = 3000

    (packet,) = PassthroughDecoder().decode(Frame())
    assert bytes(packet) == Frame.data and packet.pts == 3000


class HttpClient:
    """Just enough of aiohttp's TestClient for RecordedPeer, against a separate process."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def ws_connect(self, path: str, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
        return await self.session.ws_connect(self.base + path, **kwargs)


async def start_server(database_url: str, data_dir: Path, port: int, **extra: str) -> Server:
    env = _env(
        data_dir,
        port,
        ROUNDTABLE_DATABASE_URL=database_url,
        ROUNDTABLE_ADMIN_TOKEN=ADMIN_TOKEN,
        ROUNDTABLE_SECRET_KEY=SECRET_KEY,
        ROUNDTABLE_ICE_HOST_ADDRESSES="127.0.0.1",
        **extra,
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    server = Server(proc, port)
    await server.read_until("Running on")
    return server


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_recording_interrupted_by_a_killed_server_is_finalised_and_readable_after_restart(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback_ice(monkeypatch)
    data_dir = tmp_path / "var"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = await start_server(database_url, data_dir, port)
    peer: RecordedPeer | None = None
    try:
        async with aiohttp.ClientSession() as http:
            body = {
                "title": "Crash",
                "timezone": "UTC",
                "starts_at": "2026-12-01T08:00:00Z",
                "ends_at": "2026-12-01T17:00:00Z",
            }
            async with http.post(f"{base}/api/v1/workshops", json=body, headers=ADMIN) as resp:
                workshop = await resp.json()
            url = f"{base}/api/v1/workshops/{workshop['id']}/participants"
            async with http.post(url, json={"display_name": "Ana", "country": "PT"}, headers=ADMIN) as resp:
                person = await resp.json()
            peer = await RecordedPeer(HttpClient(http, base), person["join_token"], "red", 440).join()  # type: ignore[arg-type]
            async with http.post(
                f"{base}/api/v1/rooms/{workshop['plenary_room_id']}/recordings", headers=ADMIN
            ) as resp:
                assert resp.status == 201, await resp.text()
                rec = await resp.json()
            started = await peer.next("recording_started")
            await peer.consent(rec["id"], True)
            await peer.send_media(started["recorder_peer_id"])
            await peer.wait_sending()
            await peer.wait_sending()  # about three seconds of media in all

            server.proc.send_signal(signal.SIGKILL)
            async with asyncio.timeout(30):
                await server.proc.wait()
            await peer.close()
            peer = None

            server = await start_server(database_url, data_dir, port)
            async with http.get(f"{base}/api/v1/recordings/{rec['id']}", headers=ADMIN) as resp:
                detail = await resp.json()
            assert detail["state"] == "ready"
            assert detail["partial"] is True
            assert detail["failure_reason"] == CRASH_REASON
            kinds = {t["kind"]: t for t in detail["tracks"]}
            assert set(kinds) == {"audio", "video"}
            for kind, track in kinds.items():
                assert track["state"] == "partial"
                assert track["bytes"] > 0 and track["sha256"]
                async with http.get(
                    f"{base}/api/v1/recordings/{rec['id']}/tracks/{track['id']}/file", headers=ADMIN
                ) as resp:
                    assert resp.status == 200
                    data = await resp.read()
                path = tmp_path / f"{kind}.webm"
                path.write_bytes(data)
                with av.open(str(path)) as container:
                    decoded = sum(1 for _ in container.decode(**{kind: 0}))
                assert decoded >= 10, (kind, decoded)
    finally:
        if peer is not None:
            await peer.close()
        if server.proc.returncode is None:
            server.proc.send_signal(signal.SIGINT)
            async with asyncio.timeout(30):
                await server.drain()
                await server.proc.wait()
