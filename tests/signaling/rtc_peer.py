"""An aiortc participant for tests: real WebRTC media, negotiated through the real signalling server.

`RtcPeer` joins over a real WebSocket (tests.signaling.client), follows the client side of the
protocol — the newcomer offers to every peer of its welcome, the others answer; after
`peer_resumed` the old connection to that peer is discarded and its new offer answered — and sends a
small synthetic audio and video track on every peer connection. It counts the frames it decodes
from each remote peer, so a test can wait until media really flows.

aiortc never trickles: its SDP already holds every candidate. The peer sends each candidate of its
SDP as a `candidate` message as well and, with `trickle_only=True`, removes them from the SDP it
sends, so that ICE can only succeed through the candidates the server relayed.

On a loopback-only host aioice must be told to use 127.0.0.1 (see `loopback_ice`), and
`RTCConfiguration(iceServers=[])` keeps the default public STUN server out of the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack, VideoStreamTrack
from aiortc.sdp import candidate_from_sdp
from av import VideoFrame
from av.video.frame import PictureType

from tests.signaling.client import SignalClient, join

log = logging.getLogger(__name__)

VIDEO_SIZE = (160, 120)  # small: VP8 encoding is what costs CPU here
WAIT_S = 20.0  # the bound of every wait, generous for a loaded 2-core machine


def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice leaves 127.0.0.1 out of its host candidates; make it the only one."""
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


# Media ---------------------------------------------------------------------------------------------


class PatternVideoTrack(VideoStreamTrack):
    """30 frames a second of a small picture whose brightness changes, so that frames differ."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        width, height = VIDEO_SIZE
        self._lumas = [bytes([(seed * 40 + i * 16) % 256]) * (width * height) for i in range(16)]
        self._chroma = bytes([128]) * (width * height // 4)
        self._count = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(*VIDEO_SIZE, "yuv420p")
        frame.planes[0].update(self._lumas[self._count % len(self._lumas)])
        frame.planes[1].update(self._chroma)
        frame.planes[2].update(self._chroma)
        # A frame marked as a keyframe makes libvpx encode every frame as one (see aiortc.md).
        frame.pict_type = PictureType.NONE
        frame.pts = pts
        frame.time_base = time_base
        self._count += 1
        return frame


# Candidates ----------------------------------------------------------------------------------------


def sdp_candidates(sdp: str) -> list[dict[str, Any]]:
    """Every `a=candidate` line of an SDP as an RTCIceCandidateInit, with its section's mid and index."""
    found: list[dict[str, Any]] = []
    index = -1
    mid: str | None = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            index += 1
            mid = None
        elif line.startswith("a=mid:"):
            mid = line.removeprefix("a=mid:")
        elif line.startswith("a=candidate:") and index >= 0:
            found.append({"candidate": line.removeprefix("a="), "sdpMid": mid, "sdpMLineIndex": index})
    return found


def strip_candidates(sdp: str) -> str:
    """The SDP without candidates and without end-of-candidates: ICE must wait for trickled ones."""
    lines = [line for line in sdp.splitlines() if not line.startswith(("a=candidate:", "a=end-of-candidates"))]
    return "\r\n".join(lines) + "\r\n"


def to_rtc_candidate(init: dict[str, Any]) -> Any:
    """An RTCIceCandidateInit from the wire as an aiortc RTCIceCandidate (None: end of candidates)."""
    text = init.get("candidate") or ""
    if not text:
        return None
    candidate = candidate_from_sdp(text.removeprefix("candidate:"))
    candidate.sdpMid = init.get("sdpMid")
    candidate.sdpMLineIndex = init.get("sdpMLineIndex")
    return candidate


# Peer connections ----------------------------------------------------------------------------------


@dataclass(eq=False)
class Link:
    """One RTCPeerConnection to one remote peer, with what it has decoded from it."""

    peer_id: str
    pc: RTCPeerConnection
    frames: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    candidates_sent: int = 0
    candidates_received: int = 0
    end_of_candidates: bool = False  # the remote said it has no more
    states: list[str] = field(default_factory=list)
    tracks: list[MediaStreamTrack] = field(default_factory=list)
    offered: bool = False  # True when this side sent the offer
    pending: list[dict[str, Any]] = field(default_factory=list)  # candidates before the remote description
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    closed: bool = False

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for task in self.tasks:
            task.cancel()
        try:
            await self.pc.close()
        finally:
            for track in self.tracks:
                track.stop()
            await asyncio.gather(*self.tasks, return_exceptions=True)


class RtcPeer:
    """A participant with audio and video, negotiating pairwise (mesh) through the server."""

    def __init__(self, client: TestClient[Any, Any], token: str, *, name: str, trickle_only: bool = True) -> None:
        self.client = client
        self.token = token
        self.name = name
        self.trickle_only = trickle_only
        self.signal: SignalClient | None = None
        self.welcomes: list[dict[str, Any]] = []
        self.links: dict[str, Link] = {}
        self.discarded: list[Link] = []  # links closed on peer_left / peer_resumed / resume
        self.events: list[dict[str, Any]] = []  # every message received and handled, across reconnections
        self.received_at: list[float] = []  # loop time at which each entry of `events` arrived
        self.errors: list[dict[str, Any]] = []
        self._reader: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._changed = asyncio.Event()
        self._seed = sum(name.encode())

    @property
    def id(self) -> str:
        peer_id: str = self.welcomes[-1]["self"]["id"]
        return peer_id

    @property
    def welcome(self) -> dict[str, Any]:
        return self.welcomes[-1]

    # Lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> RtcPeer:
        """Join, then offer to everyone already in the room."""
        await self._connect(resume=None)
        return self

    async def resume(self) -> dict[str, Any]:
        """Reconnect with the resume token of the last welcome and offer again to every peer."""
        await self._connect(resume=self.welcome["resume"])
        return self.welcome

    async def _connect(self, resume: str | None) -> None:
        assert self._reader is None or self._reader.done(), "still connected"
        self.signal = await join(self.client, self.token, resume=resume)
        self.welcomes.append(self.signal.welcome)
        self._record(self.signal.welcome, asyncio.get_running_loop().time())
        # A newcomer (or a resumed peer) starts every connection afresh; the others wait for its offers.
        for link in list(self.links.values()):
            await self._discard(link.peer_id)
        for peer in self.signal.welcome["peers"]:
            await self._offer(peer["id"])
        self._reader = asyncio.create_task(self._read(self.signal), name=f"rtc-peer-{self.name}")

    async def cut(self) -> None:
        """Lose the signalling socket abruptly (no close frame, no leave); media connections stay."""
        assert self.signal is not None
        ws = self.signal.ws
        self.signal.abort()
        if self._reader is not None:
            async with asyncio.timeout(WAIT_S):
                await asyncio.gather(self._reader, return_exceptions=True)
        await ws.close()

    async def close(self) -> None:
        """Stop reading, close every peer connection and the socket. Safe to call twice."""
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        for peer_id in list(self.links):
            await self._discard(peer_id)
        if self.signal is not None and not self.signal.ws.closed:
            await self.signal.close()

    # Waiting ---------------------------------------------------------------------------------------

    def _record(self, message: dict[str, Any], received_at: float) -> None:
        self.events.append(message)
        self.received_at.append(received_at)

    def _pulse(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self._failure is not None:
                        raise AssertionError(f"{self.name}: signalling failed") from self._failure
                    failed = [pid for pid, link in self.links.items() if link.pc.connectionState == "failed"]
                    if failed:
                        raise AssertionError(f"{self.name}: connection to {failed} failed; {self.describe()}")
                    if predicate():
                        return
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"{self.name}: timed out waiting for {what}; {self.describe()}") from None

    def has_media(self, peer_id: str, *, audio: int, video: int) -> bool:
        link = self.links.get(peer_id)
        return link is not None and link.frames["audio"] >= audio and link.frames["video"] >= video

    async def wait_media(self, peer_ids: Iterable[str], *, audio: int = 5, video: int = 5) -> None:
        """Until at least `audio` and `video` decoded frames came from each of `peer_ids`."""
        ids = list(peer_ids)
        await self.wait_until(
            lambda: all(self.has_media(p, audio=audio, video=video) for p in ids),
            f"{audio} audio and {video} video frames from {ids}",
        )

    async def wait_event(self, type_: str, peer_id: str) -> dict[str, Any]:
        """The first presence message of `type_` about `peer_id` received so far, or the next one."""

        def find() -> dict[str, Any] | None:
            for event in self.events:
                if event.get("type") == type_ and _subject(event) == peer_id:
                    return event
            return None

        await self.wait_until(lambda: find() is not None, f"{type_} about {peer_id}")
        event = find()
        assert event is not None
        return event

    def time_of(self, event: dict[str, Any]) -> float:
        """The loop time at which `event` (an entry of `events`) was received."""
        return next(t for e, t in zip(self.events, self.received_at, strict=True) if e is event)

    def presence_about(self, peer_id: str) -> list[str]:
        """The types of the presence messages received about `peer_id`, in order."""
        return [e["type"] for e in self.events if e.get("type", "").startswith("peer_") and _subject(e) == peer_id]

    def describe(self) -> str:
        links = {
            pid: {
                "frames": link.frames,
                "states": link.states,
                "sent": link.candidates_sent,
                "received": link.candidates_received,
            }
            for pid, link in self.links.items()
        }
        return f"links={links} errors={self.errors}"

    # Signalling ------------------------------------------------------------------------------------

    async def _read(self, signal: SignalClient) -> None:
        """Handle messages one at a time, in order: a candidate never overtakes its description."""
        try:
            while True:
                try:
                    message = await signal.recv(timeout=3600)
                except (ConnectionError, aiohttp.ClientError):
                    return
                received_at = asyncio.get_running_loop().time()
                await self._handle(message)
                # Recorded once handled: a test that saw an event sees its effect on the links too.
                self._record(message, received_at)
                self._pulse()
        except Exception as exc:
            log.exception("%s: signalling handler failed", self.name)
            self._failure = exc
            self._pulse()

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "offer":
            await self._answer(message["from"], message["sdp"])
        elif kind == "answer":
            link = self.links[message["from"]]
            await link.pc.setRemoteDescription(RTCSessionDescription(sdp=message["sdp"], type="answer"))
            await self._flush(link)
        elif kind == "candidate":
            link_or_none = self.links.get(message["from"])
            if link_or_none is not None:
                link_or_none.pending.append(message["candidate"])
                await self._flush(link_or_none)
        elif kind == "moved":
            # A new room: every old connection goes, and we offer to the new room's peers as a newcomer does.
            for peer_id in list(self.links):
                await self._discard(peer_id)
            for peer in message["peers"]:
                await self._offer(peer["id"])
        elif kind in ("peer_left", "peer_resumed"):
            # A resumed peer starts every connection afresh: drop ours and wait for its offer.
            await self._discard(message["peer_id"])
        elif kind == "error":
            self.errors.append(message)

    async def _send(self, message: dict[str, Any]) -> None:
        assert self.signal is not None
        await self.signal.send(message)

    def _new_link(self, peer_id: str) -> Link:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        link = Link(peer_id=peer_id, pc=pc)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            task = asyncio.create_task(self._drain(link, track), name=f"drain-{self.name}-{peer_id}-{track.kind}")
            link.tasks.add(task)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            link.states.append(pc.connectionState)
            self._pulse()

        self.links[peer_id] = link
        return link

    def _add_tracks(self, link: Link) -> None:
        audio = AudioStreamTrack()
        video = PatternVideoTrack(self._seed)
        link.tracks += [audio, video]
        link.pc.addTrack(audio)
        link.pc.addTrack(video)

    async def _offer(self, peer_id: str) -> None:
        link = self._new_link(peer_id)
        link.offered = True
        self._add_tracks(link)
        await link.pc.setLocalDescription(await link.pc.createOffer())
        await self._send_description(link, "offer")

    async def _answer(self, peer_id: str, sdp: str) -> None:
        if peer_id in self.links:  # a fresh offer replaces whatever we had with that peer
            await self._discard(peer_id)
        link = self._new_link(peer_id)
        await link.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        self._add_tracks(link)
        await link.pc.setLocalDescription(await link.pc.createAnswer())
        await self._send_description(link, "answer")
        await self._flush(link)

    async def _send_description(self, link: Link, kind: str) -> None:
        sdp = link.pc.localDescription.sdp
        candidates = sdp_candidates(sdp)
        assert candidates, f"no local candidate in the {kind}: is loopback_ice() in effect?"
        await self._send({"type": kind, "to": link.peer_id, "sdp": strip_candidates(sdp) if self.trickle_only else sdp})
        for candidate in candidates:
            await self._send({"type": "candidate", "to": link.peer_id, "candidate": candidate})
            link.candidates_sent += 1
        # An empty candidate string says: no more candidates.
        await self._send(
            {
                "type": "candidate",
                "to": link.peer_id,
                "candidate": {"candidate": "", "sdpMid": candidates[0]["sdpMid"], "sdpMLineIndex": 0},
            }
        )

    async def _flush(self, link: Link) -> None:
        """Apply trickled candidates once the remote description is known. Duplicates of candidates
        already in the SDP are ignored by aiortc/aioice (same address, or after end-of-candidates)."""
        if link.pc.remoteDescription is None:
            return
        pending, link.pending = link.pending, []
        for init in pending:
            await link.pc.addIceCandidate(to_rtc_candidate(init))
            if init.get("candidate"):
                link.candidates_received += 1
            else:
                link.end_of_candidates = True

    async def _discard(self, peer_id: str) -> None:
        link = self.links.pop(peer_id, None)
        if link is not None:
            self.discarded.append(link)
            await link.close()

    async def _drain(self, link: Link, track: MediaStreamTrack) -> None:
        """Decode everything the remote sends (an undrained track grows without bound) and count it."""
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                link.frames[track.kind] += 1
                self._pulse()


def _subject(event: dict[str, Any]) -> str | None:
    peer = event.get("peer")
    if isinstance(peer, dict):
        subject: str | None = peer.get("id")
        return subject
    return event.get("peer_id")


__all__ = [
    "VIDEO_SIZE",
    "WAIT_S",
    "Link",
    "PatternVideoTrack",
    "RtcPeer",
    "loopback_ice",
    "sdp_candidates",
    "strip_candidates",
    "to_rtc_candidate",
]
