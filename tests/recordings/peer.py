"""A test participant that sends known media (a solid colour and a tone) to the recorder."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import time
from typing import Any

from aiohttp.test_utils import TestClient
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack, VideoStreamTrack
from av import AudioFrame, VideoFrame
from av.video.frame import PictureType

from tests.signaling.client import SignalClient, join

WIDTH, HEIGHT = 160, 120
# (Y, U, V) of solid colours, far apart in chroma.
COLOURS = {"red": (81, 90, 240), "blue": (41, 240, 110), "green": (145, 54, 34)}


class ColourTrack(VideoStreamTrack):
    def __init__(self, colour: str) -> None:
        super().__init__()
        y, u, v = COLOURS[colour]
        self._planes = (
            bytes([y]) * (WIDTH * HEIGHT),
            bytes([u]) * (WIDTH * HEIGHT // 4),
            bytes([v]) * (WIDTH * HEIGHT // 4),
        )
        self.sent = 0
        self.enough = asyncio.Event()

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(WIDTH, HEIGHT, "yuv420p")
        for plane, data in zip(frame.planes, self._planes, strict=True):
            plane.update(data)
        frame.pict_type = PictureType.NONE  # else libvpx makes every frame a keyframe (aiortc.md)
        frame.pts, frame.time_base = pts, time_base
        self.sent += 1
        if self.sent >= 45:
            self.enough.set()
        return frame


class ToneTrack(MediaStreamTrack):
    """A sine tone, 20 ms frames at 48 kHz, paced in real time like a microphone."""

    kind = "audio"

    def __init__(self, hz: int) -> None:
        super().__init__()
        self.hz = hz
        self._n = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        samples = 960
        if self._start is None:
            self._start = time.monotonic()
        else:
            delay = self._start + self._n / 48000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # real-time pacing of the source, not test synchronisation
        data = b"".join(
            int(8000 * math.sin(2 * math.pi * self.hz * (self._n + i) / 48000)).to_bytes(2, "little", signed=True)
            for i in range(samples)
        )
        frame = AudioFrame(format="s16", layout="mono", samples=samples)
        frame.planes[0].update(data)
        frame.sample_rate = 48000
        frame.pts, frame.time_base = self._n, fractions.Fraction(1, 48000)
        self._n += samples
        return frame


class RecordedPeer:
    """Joins the room, answers recording_started with consent, and sends media to the recorder."""

    def __init__(self, client: TestClient[Any, Any], token: str, colour: str, hz: int) -> None:
        self.client = client
        self.token = token
        self.colour = colour
        self.video = ColourTrack(colour)
        self.audio = ToneTrack(hz)
        self.signal: SignalClient | None = None
        self.pc: RTCPeerConnection | None = None
        self.connected = asyncio.Event()
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    @property
    def id(self) -> str:
        assert self.signal is not None
        return self.signal.id

    async def join(self) -> RecordedPeer:
        self.signal = await join(self.client, self.token)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.signal is not None
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while True:
                message = await self.signal.recv(timeout=3600)
                if message["type"] == "answer" and self.pc is not None:
                    await self.pc.setRemoteDescription(RTCSessionDescription(sdp=message["sdp"], type="answer"))
                else:
                    await self.messages.put(message)

    async def next(self, type_: str) -> dict[str, Any]:
        async with asyncio.timeout(20):
            while True:
                message = await self.messages.get()
                if message["type"] == type_:
                    return message

    async def send(self, message: dict[str, Any]) -> None:
        assert self.signal is not None
        await self.signal.send(message)

    async def consent(self, recording_id: str, granted: bool) -> None:
        await self.send({"type": "consent", "recording_id": recording_id, "granted": granted, "request_id": "c"})
        ack = await self.next("ack")
        assert ack["request_id"] == "c"

    async def send_media(self, recorder_peer_id: str) -> None:
        """Offer audio and video to the recorder, as a browser does after consenting."""
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc = pc
        pc.addTrack(self.audio)
        pc.addTrack(self.video)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                self.connected.set()

        await pc.setLocalDescription(await pc.createOffer())
        await self.send({"type": "offer", "to": recorder_peer_id, "sdp": pc.localDescription.sdp})

    async def wait_sending(self) -> None:
        """Connected to the recorder, and a good second and a half of video sent since."""
        async with asyncio.timeout(30):
            await self.connected.wait()
            self.video.sent = 0
            self.video.enough.clear()
            await self.video.enough.wait()

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self.signal is not None:
            await self.signal.close()
