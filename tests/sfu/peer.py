"""An aiortc participant of an sfu room: publishes through the server to Janus and subscribes to feeds.

It follows the client side of docs/protocol.md for sfu rooms: `publish` a send-only connection per source,
one subscriber connection answered from the server's `subscription` offers (prompted or not), and on
`sfu_restored` it publishes and subscribes again with new connections, as the browser client does.

Each publisher sends a solid colour and a tone; subscribers decode what they receive and keep, per
feed, the number of frames and the last colour seen, so that a test can tell who it sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy
from aiohttp.test_utils import TestClient
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack, VideoStreamTrack
from av import AudioFrame, VideoFrame
from av.video.frame import PictureType

from tests.signaling.client import SignalClient, join

WAIT_S = 25.0
SIZE = (160, 120)
RED = (220, 30, 30)
GREEN = (30, 200, 40)
BLUE = (30, 40, 220)
YELLOW = (230, 220, 30)


class ColourTrack(VideoStreamTrack):
    def __init__(self, rgb: tuple[int, int, int]) -> None:
        super().__init__()
        picture = numpy.zeros((SIZE[1], SIZE[0], 3), dtype=numpy.uint8)
        picture[:, :] = rgb
        self._frame = VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = self._frame.reformat(format="yuv420p")  # a fresh frame each time
        frame.pict_type = PictureType.NONE  # else libvpx makes every frame a keyframe
        frame.pts = pts
        frame.time_base = time_base
        return frame


class ToneTrack(AudioStreamTrack):
    def __init__(self, hz: float) -> None:
        super().__init__()
        self.hz = hz
        self.silent = False  # digital silence while True (to stop "speaking")
        self._samples = 0

    async def recv(self) -> AudioFrame:
        await super().recv()  # keeps the 20 ms pace
        rate, count = 48000, 960
        t = (numpy.arange(count) + self._samples) / rate
        self._samples += count
        amplitude = 0 if self.silent else 8000
        data = (numpy.sin(2 * math.pi * self.hz * t) * amplitude).astype(numpy.int16).reshape(1, -1)
        frame = AudioFrame.from_ndarray(data, format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, rate)
        return frame


@dataclass
class Received:
    frames: int = 0
    colour: tuple[int, int, int] | None = None
    loud: int = 0  # audio frames with a real signal
    hz: float | None = None  # the strongest frequency of the last loud audio frame


@dataclass
class Published:
    source: str
    pc: RTCPeerConnection
    feed_id: str
    colour: tuple[int, int, int]
    hz: float


@dataclass(eq=False)
class SfuPeer:
    client: TestClient[Any, Any]
    token: str
    name: str
    signal: SignalClient | None = None
    published: dict[str, Published] = field(default_factory=dict)
    subscriber: RTCPeerConnection | None = None
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)  # mid -> {feed_id, kind}
    received: dict[tuple[str, str], Received] = field(default_factory=dict)  # (feed id, kind) -> counts
    feeds: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    decode: bool = True
    auto_subscribe: bool = True
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _replies: dict[Any, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _next_id: int = 0
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _reader: asyncio.Task[None] | None = None
    _wanted: list[str] | None = None  # None: every feed but one's own
    _subscribed: bool = False
    # Mesh mode (rooms whose media is mesh): one connection per peer, the impolite side offers.
    colour: tuple[int, int, int] = RED
    hz: float = 440.0
    mesh: dict[str, RTCPeerConnection] = field(default_factory=dict)
    media: str = ""
    _closing: list[RTCPeerConnection] = field(default_factory=list)
    _shutting: set[asyncio.Task[None]] = field(default_factory=set)
    tone: ToneTrack | None = None

    @property
    def id(self) -> str:
        assert self.signal is not None
        return self.signal.id

    @property
    def welcome(self) -> dict[str, Any]:
        assert self.signal is not None
        return self.signal.welcome

    async def start(self) -> SfuPeer:
        self.signal = await join(self.client, self.token)
        self.feeds = {f["feed_id"]: f for f in self.welcome.get("feeds", [])}
        self.media = self.welcome["room"]["media"]
        self._reader = asyncio.create_task(self._read(), name=f"sfu-peer-{self.name}")
        if self.media == "mesh":
            for peer in self.welcome["peers"]:  # the newcomer offers to everyone already there
                self._background(self._mesh_offer(peer["id"]))
        return self

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._shutting:  # connections being closed: let them finish (each is bounded), or their sockets leak
            await asyncio.gather(*self._shutting, return_exceptions=True)
        pcs = [pub.pc for pub in self.published.values()] + list(self.mesh.values()) + list(self._closing)
        if self.subscriber is not None:
            pcs.append(self.subscriber)
        for pc in pcs:
            # aiortc's close can wait forever on a connection that never got going: bounded.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await pc.close()
        if self.signal is not None:
            await self.signal.close()

    async def cut(self) -> None:
        """Lose the signalling socket abruptly (no close frame, no leave); the SFU connections stay."""
        assert self.signal is not None
        ws = self.signal.ws
        self.signal.abort()
        if self._reader is not None:
            async with asyncio.timeout(WAIT_S):
                await asyncio.gather(self._reader, return_exceptions=True)
        await ws.close()

    async def resume(self) -> dict[str, Any]:
        """A new socket saying hello with the resume token; returns its welcome."""
        token = self.welcome["resume"]
        self.signal = await join(self.client, self.token, resume=token)
        self.feeds = {f["feed_id"]: f for f in self.welcome.get("feeds", [])}
        self._reader = asyncio.create_task(self._read(), name=f"sfu-peer-{self.name}")
        return self.welcome

    # Requests -------------------------------------------------------------------------------------

    async def request(self, message: dict[str, Any], timeout: float = WAIT_S) -> dict[str, Any]:
        """Send with a request_id; the reply (or error) that echoes it."""
        assert self.signal is not None
        self._next_id += 1
        rid = f"{self.name}-{self._next_id}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[rid] = future
        await self.signal.send({**message, "request_id": rid})
        async with asyncio.timeout(timeout):
            return await future

    async def publish(
        self,
        source: str = "camera",
        *,
        colour: tuple[int, int, int] = RED,
        hz: float = 440.0,
        audio: bool = True,
        video: bool = True,
    ) -> dict[str, Any]:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._closing.append(pc)  # closed by close() should this task be cancelled before it is kept
        if audio:
            self.tone = ToneTrack(hz)
            pc.addTransceiver(self.tone, direction="sendonly")
        if video:
            pc.addTransceiver(ColourTrack(colour), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        reply = await self.request({"type": "publish", "source": source, "sdp": pc.localDescription.sdp})
        if reply["type"] != "published":
            self._closing.remove(pc)
            self._shut(pc)
            return reply
        await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        old = self.published.pop(source, None)
        if old is not None:
            self._shut(old.pc)
        self.published[source] = Published(source, pc, reply["feed_id"], colour, hz)
        self._closing.remove(pc)
        return reply

    async def subscribe(self, feed_ids: list[str] | None = None, **kinds: bool) -> dict[str, Any]:
        """Subscribe to these feeds (None: every feed of the room but one's own)."""
        self._wanted = feed_ids
        self._subscribed = True
        ids = feed_ids if feed_ids is not None else [f for f, info in self.feeds.items() if info["peer_id"] != self.id]
        wanted = [{"feed_id": f, "audio": kinds.get("audio", True), "video": kinds.get("video", True)} for f in ids]
        if self.subscriber is None and len(wanted) > 1:
            # aiortc (1.16) as the answerer of a first offer with several streams of one kind received only
            # the first of them here; growing the subscription through updates works (browsers need neither).
            await self.request({"type": "subscribe", "feeds": wanted[:1]})
        reply = await self.request({"type": "subscribe", "feeds": wanted})
        now = [f for f, info in self.feeds.items() if info["peer_id"] != self.id]
        if feed_ids is None and set(now) != set(ids):  # feeds came or went meanwhile
            return await self.subscribe(None, **kinds)
        return reply

    # Waiting --------------------------------------------------------------------------------------

    async def wait_until(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(predicate)
        except TimeoutError:
            raise AssertionError(f"{self.name}: timed out waiting for {what}; received {self.received}") from None

    async def _pulse(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def got(self, feed_id: str, kind: str) -> Received:
        return self.received.get((feed_id, kind), Received())

    def sees(self, feed_id: str, colour: tuple[int, int, int], frames: int = 5) -> bool:
        r = self.got(feed_id, "video")
        return r.frames >= frames and r.colour is not None and close_to(r.colour, colour)

    def hears(self, feed_id: str, frames: int = 10) -> bool:
        return self.got(feed_id, "audio").loud >= frames

    def seen(self, type_: str, **match: Any) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == type_ and all(m.get(k) == v for k, v in match.items())]

    async def wait_message(self, type_: str, timeout: float = WAIT_S, **match: Any) -> dict[str, Any]:
        await self.wait_until(lambda: bool(self.seen(type_, **match)), f"{type_} {match}", timeout)
        return self.seen(type_, **match)[-1]

    # Reading --------------------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self.signal is not None
        while True:
            try:
                message = await self.signal.recv(timeout=3600)
            except (ConnectionError, TimeoutError):
                await self._pulse()
                return
            self.messages.append(message)
            await self._handle(message)
            rid = message.get("request_id")
            future = self._replies.pop(rid, None) if rid is not None else None
            if future is not None and not future.done():
                future.set_result(message)
            await self._pulse()

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "feed_added":
            self.feeds[message["feed"]["feed_id"]] = message["feed"]
            if self.auto_subscribe and self._wanted is None and self.subscriber is not None:
                self._background(self.subscribe())
        elif kind == "feed_removed":
            self.feeds.pop(message["feed_id"], None)
        elif kind == "subscription" and message.get("sdp"):
            await self._answer(message)
        elif kind == "subscription":
            self.streams = {s["mid"]: s for s in message["streams"]}
        elif kind == "sfu_unavailable":
            self.feeds.clear()
            self.received.clear()
            for pub in list(self.published.values()):
                self._shut(pub.pc)
            if self.subscriber is not None:
                self._shut(self.subscriber)
                self.subscriber = None
        elif kind == "sfu_restored":
            self._background(self._restore())
        elif kind in ("moved", "room_media_changed"):
            self.feeds = {f["feed_id"]: f for f in message.get("feeds", [])}
            await self._switch(message)
        elif kind == "offer":
            await self._mesh_answer(message["from"], message["sdp"])
        elif kind == "answer" and message["from"] in self.mesh:
            await self.mesh[message["from"]].setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
        elif kind == "peer_left" and message["peer_id"] in self.mesh:
            self._shut(self.mesh.pop(message["peer_id"]))

    # Mesh and switching ---------------------------------------------------------------------------

    async def _switch(self, message: dict[str, Any]) -> None:
        media = message["room"]["media"]
        self.media = media
        self.received.clear()
        for link in list(self.mesh.values()):
            self._shut(link)
        self.mesh.clear()
        for pub in list(self.published.values()):
            self._shut(pub.pc)
        if self.subscriber is not None:
            self._shut(self.subscriber)
            self.subscriber = None
        if media == "mesh":
            self.published.clear()
            for peer in message["peers"]:
                if not peer["polite"] or message["type"] == "moved":  # one offer per pair
                    self._background(self._mesh_offer(peer["id"]))
        else:
            self.published.clear()
            self._background(self._enter_sfu())

    async def _enter_sfu(self) -> None:
        await self.publish(colour=self.colour, hz=self.hz)
        await self.wait_until(lambda: any(f["peer_id"] != self.id for f in self.feeds.values()), "others' feeds")
        await self.subscribe()

    def _mesh_link(self, peer_id: str) -> RTCPeerConnection:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(ToneTrack(self.hz))
        pc.addTrack(ColourTrack(self.colour))
        self.mesh[peer_id] = pc
        key = f"mesh:{peer_id}"

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._background(self._consume(pc, track, None, key=key))

        return pc

    async def _mesh_offer(self, peer_id: str) -> None:
        pc = self._mesh_link(peer_id)
        await pc.setLocalDescription(await pc.createOffer())
        assert self.signal is not None
        await self.signal.send({"type": "offer", "to": peer_id, "sdp": pc.localDescription.sdp})

    async def _mesh_answer(self, peer_id: str, sdp: str) -> None:
        old = self.mesh.pop(peer_id, None)
        if old is not None:
            self._shut(old)
        pc = self._mesh_link(peer_id)
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        assert self.signal is not None
        await self.signal.send({"type": "answer", "to": peer_id, "sdp": pc.localDescription.sdp})

    def sees_peer(self, peer_id: str, colour: tuple[int, int, int]) -> bool:
        """Whether this peer's video arrives in the room's current media (mesh link or sfu feed)."""
        if self.media == "mesh":
            return self.sees(f"mesh:{peer_id}", colour)
        return any(self.sees(f, colour) for f, info in self.feeds.items() if info["peer_id"] == peer_id)

    def hears_peer(self, peer_id: str) -> bool:
        if self.media == "mesh":
            return self.hears(f"mesh:{peer_id}")
        return any(self.hears(f) for f, info in self.feeds.items() if info["peer_id"] == peer_id)

    def _shut(self, pc: RTCPeerConnection) -> None:
        """Close a connection without waiting for it (aiortc's close may hang on one that never got going)."""

        async def close() -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await pc.close()

        task = asyncio.create_task(close())
        self._shutting.add(task)
        task.add_done_callback(self._shutting.discard)

    def _background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _restore(self) -> None:
        again = list(self.published.values())
        self.published.clear()
        for pub in again:
            await self.publish(pub.source, colour=pub.colour, hz=pub.hz)
        if not self._subscribed:
            return
        # The others' feeds come back as feed_added; subscribe when there are any.
        await self.wait_until(lambda: any(f["peer_id"] != self.id for f in self.feeds.values()), "feeds back")
        await self.subscribe(self._wanted)

    async def _answer(self, message: dict[str, Any]) -> None:
        self.streams = {s["mid"]: s for s in message["streams"]}
        if self.subscriber is None:
            self.subscriber = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc = self.subscriber

            @pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                mid = next((t.mid for t in pc.getTransceivers() if t.receiver.track is track), None)
                self._background(self._consume(pc, track, mid))

        if self.subscriber.signalingState == "closed":
            return  # an offer for a connection this peer is closing (its test is over, or the SFU went away)
        await self.subscriber.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
        await self.subscriber.setLocalDescription(await self.subscriber.createAnswer())
        assert self.signal is not None
        await self.signal.send({"type": "subscription_answer", "sdp": self.subscriber.localDescription.sdp})

    async def _consume(
        self, pc: RTCPeerConnection, track: MediaStreamTrack, mid: str | None, key: str | None = None
    ) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if key is not None:
                if self.mesh.get(key.removeprefix("mesh:")) is not pc:
                    continue
                feed = key
            else:
                stream = self.streams.get(mid or "")
                if stream is None or pc is not self.subscriber:
                    continue
                feed = stream["feed_id"]
            key_ = (feed, track.kind)
            got = self.received.setdefault(key_, Received())
            got.frames += 1
            if self.decode and isinstance(frame, VideoFrame):
                rgb = frame.to_ndarray(format="rgb24")
                got.colour = tuple(int(c) for c in rgb.reshape(-1, 3).mean(axis=0))  # type: ignore[assignment]
            elif isinstance(frame, AudioFrame):
                samples = frame.to_ndarray()
                if float(numpy.abs(samples).mean()) > 100:
                    got.loud += 1
                    got.hz = dominant_hz(frame)
            await self._pulse()


def dominant_hz(frame: AudioFrame) -> float:
    """The strongest frequency of a decoded audio frame (its first channel)."""
    channels = len(frame.layout.channels)
    samples = frame.to_ndarray().reshape(-1, channels)[:, 0] if frame.format.is_packed else frame.to_ndarray()[0]
    spectrum = numpy.abs(numpy.fft.rfft(samples.astype(numpy.float64)))
    return float(numpy.argmax(spectrum[1:]) + 1) * frame.sample_rate / len(samples)


def close_to(seen: tuple[int, int, int], expected: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(seen, expected, strict=True))
