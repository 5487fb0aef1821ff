"""W7: what the recorder costs the server per recorded audio+video participant.

Participants are aiortc peers in the load generator (core 1): each joins a room, consents, and offers
640x480 video at 30 fps (a panning noise texture, so that VP8 spends about a megabit a second, like a webcam)
and a 48 kHz Opus tone to the recorder, which runs inside the Roundtable server (core 0) and writes both
tracks by stream copy. Server CPU is read over a window while media flows, less an idle window of the same
participants before the recording started; divided by the number of participants it is the share of one core
each costs. Only Roundtable has a recorder.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.clients import Client
from bench.servers import ADMIN_TOKEN

WIDTH, HEIGHT, FPS = 640, 480, 30


def loopback_ice() -> None:
    """aioice leaves 127.0.0.1 out of its host candidates; make it the only one (the server does the same
    through ROUNDTABLE_ICE_HOST_ADDRESSES)."""
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]  # type: ignore[assignment]


def _tracks(seed: int) -> tuple[Any, Any]:
    from aiortc.mediastreams import MediaStreamTrack, VideoStreamTrack
    from av import AudioFrame, VideoFrame
    from av.video.frame import PictureType

    texture = os.urandom((WIDTH + 64) * (HEIGHT + 64))
    grey = bytes([128]) * (WIDTH * HEIGHT // 4)
    lumas = []
    for i in range(32):  # a texture panning diagonally, 2 pixels a frame
        off = (i * 2 + seed) % 64
        lumas.append(
            b"".join(
                texture[(r + off) * (WIDTH + 64) + off : (r + off) * (WIDTH + 64) + off + WIDTH] for r in range(HEIGHT)
            )
        )

    class Video(VideoStreamTrack):  # type: ignore[misc]
        n = 0

        async def recv(self) -> Any:
            pts, time_base = await self.next_timestamp()
            frame = VideoFrame(WIDTH, HEIGHT, "yuv420p")
            frame.planes[0].update(lumas[self.n % len(lumas)])
            frame.planes[1].update(grey)
            frame.planes[2].update(grey)
            frame.pict_type = PictureType.NONE  # else libvpx makes every frame a keyframe
            frame.pts, frame.time_base = pts, time_base
            self.n += 1
            return frame

    tone = b"".join(
        int(8000 * math.sin(2 * math.pi * (440 + 110 * seed) * i / 48000)).to_bytes(2, "little", signed=True)
        for i in range(960)
    )

    class Audio(MediaStreamTrack):  # type: ignore[misc]
        kind = "audio"
        n = 0
        start: float | None = None

        async def recv(self) -> Any:
            if self.start is None:
                self.start = time.monotonic()
            delay = self.start + self.n * 960 / 48000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # paced like a microphone
            frame = AudioFrame(format="s16", layout="mono", samples=960)
            frame.planes[0].update(tone)
            frame.sample_rate = 48000
            frame.pts, frame.time_base = self.n * 960, fractions.Fraction(1, 48000)
            self.n += 1
            return frame

    return Audio(), Video()


@dataclass
class MediaPeer:
    """A participant that consents and sends audio+video to the recorder."""

    client: Client
    seed: int
    inbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    pc: Any = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    def sink(self, _client: Client, text: str, _now: int) -> None:
        self.inbox.put_nowait(json.loads(text))

    async def next(self, kind: str, timeout: float = 30.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                message = await self.inbox.get()
                if message.get("type") == kind:
                    return message
                if message.get("type") == "error":
                    raise RuntimeError(f"server error: {message}")

    async def send_media(self, recording_id: str, recorder: str) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        await self.client.send(json.dumps({"type": "consent", "recording_id": recording_id, "granted": True,
                                           "request_id": "consent"}))  # fmt: skip
        await self.next("ack")
        pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        audio, video = _tracks(self.seed)
        pc.addTrack(audio)
        pc.addTrack(video)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                self.connected.set()

        await pc.setLocalDescription(await pc.createOffer())
        await self.client.send(json.dumps({"type": "offer", "to": recorder, "sdp": pc.localDescription.sdp}))
        answer = await self.next("answer")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        async with asyncio.timeout(30):
            await self.connected.wait()

    async def sent(self) -> dict[str, int]:
        """Bytes and packets sent so far, per kind."""
        out = {"audio_bytes": 0, "video_bytes": 0, "audio_packets": 0, "video_packets": 0}
        if self.pc is None:
            return out
        report = await self.pc.getStats()
        for stat in report.values():
            if getattr(stat, "type", "") == "outbound-rtp":
                out[f"{stat.kind}_bytes"] += stat.bytesSent
                out[f"{stat.kind}_packets"] += stat.packetsSent
        return out

    async def close(self) -> None:
        if self.pc is not None:
            with contextlib.suppress(Exception):
                await self.pc.close()


async def run(target: Any, room_name: str, participants: int, window_s: float) -> dict[str, Any]:
    from bench.workloads import join_rooms, measured

    loopback_ice()
    server = target.server
    room_id = target.pools.room_ids[room_name]
    room = next(r for r in target.pools.rooms10 if r[0].room == room_name)
    clients = await join_rooms(target, [room[:participants]])
    peers = [MediaPeer(c, seed=i) for i, c in enumerate(clients)]
    for p in peers:
        p.client.sink = p.sink
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    out: dict[str, Any] = {"participants": participants, "video": f"{WIDTH}x{HEIGHT}@{FPS} VP8", "audio": "Opus"}
    recording_id = None
    try:
        with measured(target) as idle:
            await asyncio.sleep(window_s / 2)
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.post(f"{server.base_http}/api/v1/rooms/{room_id}/recordings") as resp:
                body = await resp.json()
                if resp.status != 201:
                    raise RuntimeError(f"start recording: {resp.status} {body}")
            recording_id = body["id"]
            started = [await p.next("recording_started") for p in peers]
            recorder = started[0]["recorder_peer_id"]
            await asyncio.gather(*(p.send_media(recording_id, recorder) for p in peers))
            await asyncio.sleep(2.0)  # past ICE and DTLS, keyframes flowing
            before = [await p.sent() for p in peers]
            with measured(target) as busy:
                await asyncio.sleep(window_s)
            after = [await p.sent() for p in peers]
            async with http.post(f"{server.base_http}/api/v1/recordings/{recording_id}/stop") as resp:
                stopped = await resp.json()
            recording_id = None
        idle_share = idle.cpu_ns / 1e9 / idle.wall_s
        busy_share = busy.cpu_ns / 1e9 / busy.wall_s
        sent = {k: sum(a[k] - b[k] for a, b in zip(after, before, strict=True)) for k in before[0]}
        out |= {
            "idle_core_share": idle_share,
            "recording_core_share": busy_share,
            "core_share_per_participant": (busy_share - idle_share) / participants,
            "pg_core_share": busy.pg_ns / 1e9 / busy.wall_s,
            "video_kbps_per_participant": sent["video_bytes"] * 8 / busy.wall_s / 1000 / participants,
            "audio_kbps_per_participant": sent["audio_bytes"] * 8 / busy.wall_s / 1000 / participants,
            "packets_per_s_per_participant": (sent["video_packets"] + sent["audio_packets"])
            / busy.wall_s
            / participants,
            "state_after_stop": stopped.get("state"),
            "tracks": len(stopped.get("tracks") or []),
            "tracks_complete": sum(1 for t in stopped.get("tracks") or [] if t.get("state") == "complete"),
        }
        return out
    finally:
        if recording_id is not None:
            async with aiohttp.ClientSession(headers=headers) as http:
                with contextlib.suppress(aiohttp.ClientError):
                    await http.post(f"{server.base_http}/api/v1/recordings/{recording_id}/stop")
        for p in peers:
            await p.close()
            p.client.sink = None
        from bench.clients import leave_all

        await leave_all(clients)
