"""W8: an sfu plenary through Janus, measured from /proc.

    .venv/bin/python -m bench.run --workload w8 --servers roundtable --reps 1   # as part of a run
    .venv/bin/python -m bench.sfu_plenary                                        # alone, full size
    .venv/bin/python -m bench.sfu_plenary --smoke                                # N=2, a 4-member plenary

What runs where. The workload re-executes itself under `unshare --net` (root): a private network namespace with
`lo` and a veth `rt0` holding 127.0.0.2, as tests/netns.py builds one, so that Janus can gather on a non-loopback
address and nothing leaves the namespace. Inside it, a Roundtable server is started as a real process
(`python -m server`, ROUNDTABLE_SFU=auto, pinned to core 0); it starts the embedded Janus as its child, which
inherits core 0. The aiortc clients run in the namespace process itself, pinned to core 1, so their CPU is never
counted as Roundtable's. CPU is read from /proc/PID/task/*/schedstat for the Roundtable process, Janus, the
embedded PostgreSQL and the clients, and /proc/stat for the whole machine (what other tenants used).

Clients follow docs/protocol.md for sfu rooms (hello, `publish`/`published`, `subscribe`/`subscription`/
`subscription_answer`). They are cheap on purpose:
- publishers send pre-encoded packets (`track.recv()` returns `av.Packet`): a VP8 clip encoded once at start
  (a panning noise texture, so that libvpx spends its whole bitrate) and its intra-coded twin, sent on a PLI or FIR
  from Janus; Opus tone packets for talkers; for the mostly silent, one Opus silence packet every 400 ms with the RTP
  timestamp advancing 400 ms (what Opus DTX puts on the wire).
- subscribers do not decode and do not even reassemble frames: the aiortc receiver's RTP handler is replaced by a
  counter (packets, bytes, first packet, first VP8 keyframe) and its decoder thread by one that ends at once.
  SRTP, RTP parsing and demultiplexing still run in aiortc. This is "count RTP at the receiver", not the
  recorder's PassthroughDecoder (which still reassembles frames and runs a thread per track).
Every load is bounded in count and time; every process started here is ended by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import itertools
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

from bench.measure import alive, children_of, percentile, thread_cpu_ns

ROOT = Path(__file__).resolve().parent.parent
MEDIA_ADDRESS = "127.0.0.2"
INNER_TIMEOUT_PAD_S = 120.0
KEY_ATTR = "_w8_count"


@dataclass(frozen=True)
class VideoSpec:
    width: int
    height: int
    fps: int
    kbps: int

    def label(self) -> str:
        return f"{self.width}x{self.height}@{self.fps} VP8 {self.kbps} kbit/s target"


@dataclass(frozen=True)
class W8Sizes:
    sweep: tuple[int, ...] = (10, 30, 60)
    sweep_video: VideoSpec = VideoSpec(640, 360, 30, 1200)  # as in /work/shared/sfu.md
    idle_s: float = 10.0
    window_s: float = 15.0
    settle_s: float = 3.0
    plenary_members: tuple[int, ...] = (60, 45, 30)  # tried in order; the first that holds ends the search
    cameras: int = 4
    screens: int = 1
    talkers: int = 1  # members whose audio is a tone (50 packets/s); the others send DTX silence
    camera_video: VideoSpec = VideoSpec(320, 180, 15, 250)  # a stage tile (a simulcast low layer)
    screen_video: VideoSpec = VideoSpec(960, 540, 5, 400)
    hold_s: float = 60.0
    slice_s: float = 10.0
    join_in_flight: int = 4
    subscribe_in_flight: int = 4
    setup_timeout_s: float = 240.0


FULL = W8Sizes()
SMOKE = W8Sizes(
    sweep=(2,),
    sweep_video=VideoSpec(320, 180, 15, 300),
    idle_s=0.5,
    window_s=2.5,
    settle_s=0.5,
    plenary_members=(4,),
    cameras=1,
    screens=1,
    talkers=1,
    screen_video=VideoSpec(320, 180, 5, 200),
    hold_s=2.5,
    slice_s=1.25,
    setup_timeout_s=40.0,
)


# Pre-encoded media ------------------------------------------------------------------------------------------


@dataclass
class Clip:
    spec: VideoSpec
    delta: list[bytes]  # delta[0] is the encoder's first frame (a keyframe)
    keys: list[bytes]  # the same pictures, each intra-coded
    q: int = 0  # libvpx quantizer


def _texture_frames(spec: VideoSpec, count: int, seed: int) -> list[Any]:
    from av import VideoFrame
    from av.video.frame import PictureType

    w, h = spec.width, spec.height
    rng = random.Random(seed)
    texture = rng.randbytes((w + 64) * (h + 64))
    grey = bytes([128]) * (w * h // 4)
    frames = []
    for i in range(count):
        off = (i * 2) % 64
        rows = [texture[(r + off) * (w + 64) + off : (r + off) * (w + 64) + off + w] for r in range(h)]
        band = rng.randrange(0, h - max(1, h // 90))  # a band of fresh noise: motion search alone would make it cheap
        rows[band : band + max(1, h // 90)] = [rng.randbytes(w) for _ in range(max(1, h // 90))]
        luma = b"".join(rows)
        frame = VideoFrame(w, h, "yuv420p")
        frame.planes[0].update(luma)
        frame.planes[1].update(grey)
        frame.planes[2].update(grey)
        frame.pict_type = PictureType.NONE
        frames.append(frame)
    return frames


def _vp8_encoder(spec: VideoSpec, q: int) -> Any:
    """libvpx at a fixed quantizer and the `good` deadline: deterministic sizes (its realtime rate control gave
    0.6 to 6 Mbit/s for the same target from one run to the next)."""
    import av

    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = spec.width, spec.height, "yuv420p"
    ctx.time_base = fractions.Fraction(1, spec.fps)
    ctx.framerate = fractions.Fraction(spec.fps, 1)
    ctx.bit_rate = 50_000_000  # not the limit: the quantizer is
    ctx.gop_size = 100_000
    ctx.qmin = ctx.qmax = q
    ctx.options = {"deadline": "good", "cpu-used": "5", "lag-in-frames": "0"}
    return ctx


def _encode(frames: list[Any], spec: VideoSpec, q: int, key: bool) -> list[bytes]:
    from av.video.frame import PictureType

    ctx = _vp8_encoder(spec, q)
    out: list[bytes] = []
    for i, frame in enumerate(frames):
        frame.pts = i
        frame.pict_type = PictureType.I if key else PictureType.NONE
        out += [bytes(p) for p in ctx.encode(frame)]
    return out + [bytes(p) for p in ctx.encode(None)]


def encode_clip(spec: VideoSpec, seconds: float = 2.0, seed: int = 1) -> Clip:
    """A looping VP8 clip (first frame a keyframe, the rest delta frames) and an intra-coded copy of each frame, at
    the coarsest quantizer that reaches 85 % of the spec's bitrate (the finest tried when none does)."""
    count = max(2, round(spec.fps * seconds)) + 1
    frames = _texture_frames(spec, count, seed)
    for q in (63, 56, 48, 40, 32, 24, 16):
        delta = _encode(frames, spec, q, key=False)
        kbps = sum(map(len, delta[1:])) * 8 * spec.fps / max(1, len(delta) - 1) / 1000
        if kbps >= 0.85 * spec.kbps:
            break
    keys = _encode(frames, spec, q, key=True)
    n = min(len(delta), len(keys))
    return Clip(spec, delta[:n], keys[:n], q)


def encode_opus(hz: float | None, count: int = 50) -> list[bytes]:
    """20 ms Opus packets of a tone (hz) or of silence (None: the last, steady-state packet only)."""
    import av
    import numpy

    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate = 48000
    ctx.layout = "mono"
    ctx.format = "s16"
    ctx.bit_rate = 32000
    ctx.time_base = fractions.Fraction(1, 48000)
    out: list[bytes] = []
    for i in range(count + 5):
        t = (numpy.arange(960) + i * 960) / 48000
        samples = (numpy.sin(2 * math.pi * hz * t) * 8000) if hz else numpy.zeros(960)
        frame = av.AudioFrame.from_ndarray(samples.astype(numpy.int16).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = i * 960
        out += [bytes(p) for p in ctx.encode(frame)]
    out = out[-count:] if hz else out[-1:]
    return out


def _tracks() -> tuple[Any, Any]:
    from aiortc.mediastreams import MediaStreamTrack
    from av import Packet

    class PacketVideo(MediaStreamTrack):  # type: ignore[misc]
        """Paced pre-encoded VP8; the next frame is intra-coded after a PLI/FIR (see install_hooks)."""

        kind = "video"

        def __init__(self, clip: Clip) -> None:
            super().__init__()
            self.clip = clip
            self.n = 0
            self.start: float | None = None
            self.want_key = False
            self.keyframes = 0
            self.bytes = 0

        async def recv(self) -> Any:
            fps = self.clip.spec.fps
            if self.start is None:
                self.start = time.monotonic()
            delay = self.start + self.n / fps - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            size = len(self.clip.delta)
            if self.n == 0:
                data = self.clip.delta[0]
                self.keyframes += 1
            else:
                i = 1 + (self.n - 1) % (size - 1)
                data = self.clip.keys[i] if self.want_key else self.clip.delta[i]
                self.keyframes += self.want_key
            self.want_key = False
            self.bytes += len(data)
            packet = Packet(data)
            packet.pts = self.n * (90000 // fps)
            packet.time_base = fractions.Fraction(1, 90000)
            self.n += 1
            return packet

    class PacketAudio(MediaStreamTrack):  # type: ignore[misc]
        """Paced pre-encoded Opus: every 20 ms (talking) or every 400 ms (DTX silence)."""

        kind = "audio"

        def __init__(self, packets: list[bytes], interval_s: float) -> None:
            super().__init__()
            self.packets = packets
            self.interval_s = interval_s
            self.step = round(48000 * interval_s)
            self.n = 0
            self.start: float | None = None

        async def recv(self) -> Any:
            if self.start is None:
                self.start = time.monotonic()
            delay = self.start + self.n * self.interval_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            packet = Packet(self.packets[self.n % len(self.packets)])
            packet.pts = self.n * self.step
            packet.time_base = fractions.Fraction(1, 48000)
            self.n += 1
            return packet

    return PacketVideo, PacketAudio


# aiortc hooks (this process only) -----------------------------------------------------------------------------


@dataclass
class RtpCount:
    kind: str
    packets: int = 0
    bytes: int = 0
    first: float | None = None
    first_key: float | None = None


def vp8_keyframe(p: bytes) -> bool:
    """Whether an RTP VP8 payload starts a keyframe (RFC 7741: S=1, PID=0, then P=0 in the VP8 header)."""
    if len(p) < 2 or not (p[0] & 0x10) or (p[0] & 0x07):
        return False
    i = 1
    if p[0] & 0x80:
        x = p[1]
        i = 2
        if x & 0x80:
            if len(p) <= i:
                return False
            i += 2 if p[i] & 0x80 else 1
        if x & 0x40:
            i += 1
        if x & 0x30:
            i += 1
    return len(p) > i and not (p[i] & 0x01)


def install_hooks() -> None:
    """Count instead of decoding; intra-code the next pre-encoded frame when Janus asks for a keyframe; gather ICE
    candidates on the namespace's address only."""
    import aioice.ice
    from aiortc import rtcrtpreceiver, rtcrtpsender

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [MEDIA_ADDRESS]  # type: ignore[assignment]

    def no_decoder(*_args: Any) -> None:
        return None  # the receiver's decoder thread ends at once; nothing is ever queued to it

    rtcrtpreceiver.decoder_worker = no_decoder  # type: ignore[assignment]

    async def count_rtp(self: Any, packet: Any, arrival_time_ms: int) -> None:
        count = self.__dict__.get(KEY_ATTR)
        if count is None:
            count = RtpCount(kind=self._RTCRtpReceiver__kind)
            setattr(self, KEY_ATTR, count)
        count.packets += 1
        count.bytes += len(packet.payload)
        if count.first is None:
            count.first = time.monotonic()
        if count.first_key is None and count.kind == "video" and vp8_keyframe(packet.payload):
            count.first_key = time.monotonic()

    rtcrtpreceiver.RTCRtpReceiver._handle_rtp_packet = count_rtp  # type: ignore[method-assign]

    original = rtcrtpsender.RTCRtpSender._send_keyframe

    def send_keyframe(self: Any) -> None:
        original(self)
        if hasattr(self.track, "want_key"):
            self.track.want_key = True

    rtcrtpsender.RTCRtpSender._send_keyframe = send_keyframe  # type: ignore[method-assign]


def count_of(receiver: Any) -> RtpCount:
    return getattr(receiver, "__dict__", {}).get(KEY_ATTR) or RtpCount(kind="?")


# A member ---------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Member:
    http: aiohttp.ClientSession
    base_ws: str
    token: str
    name: str
    ws: Any = None
    id: str = ""
    feeds: dict[str, dict[str, Any]] = field(default_factory=dict)
    publishers: list[Any] = field(default_factory=list)
    own_feeds: list[str] = field(default_factory=list)
    subscriber: Any = None
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)  # mid -> {feed_id, kind}
    t_join: float = 0.0
    t_welcome: float = 0.0
    errors: list[str] = field(default_factory=list)
    answer_sizes: list[tuple[int, int, int, int]] = field(default_factory=list)  # raw, sent, offer, streams
    _replies: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _next: int = 0
    _reader: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def join(self) -> None:
        self.t_join = time.monotonic()
        self.ws = await self.http.ws_connect(self.base_ws + "/ws", max_msg_size=4 * 1024 * 1024)
        await self.ws.send_str(json.dumps({"type": "hello", "protocol": [1], "token": self.token}))
        async with asyncio.timeout(30):
            while True:
                msg = await self.ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise RuntimeError(f"{self.name}: {msg.type} before welcome")
                data = json.loads(msg.data)
                if data.get("type") == "welcome":
                    break
                if data.get("type") == "error":
                    raise RuntimeError(f"{self.name}: {data}")
        self.t_welcome = time.monotonic()
        self.id = data["self"]["id"]
        if data["room"]["media"] != "sfu":
            raise RuntimeError(f"{self.name}: room media is {data['room']['media']}, not sfu")
        self.feeds = {f["feed_id"]: f for f in data.get("feeds", [])}
        self._reader = asyncio.create_task(self._read(), name=f"w8-{self.name}")

    async def request(self, message: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        self._next += 1
        rid = f"{self.name}-{self._next}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[rid] = future
        await self.ws.send_str(json.dumps({**message, "request_id": rid}))
        async with asyncio.timeout(timeout):
            reply = await future
        if reply.get("type") == "error":
            raise RuntimeError(f"{self.name}: {message['type']}: {reply}")
        return reply

    async def publish(self, source: str, *, audio: Any = None, video: Any = None) -> str:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.publishers.append(pc)
        if audio is not None:
            pc.addTransceiver(audio, direction="sendonly")
        if video is not None:
            t = pc.addTransceiver(video, direction="sendonly")
            caps = RTCRtpSender.getCapabilities("video")
            t.setCodecPreferences([c for c in caps.codecs if c.mimeType == "video/VP8"])
        await pc.setLocalDescription(await pc.createOffer())
        reply = await self.request({"type": "publish", "source": source, "sdp": pc.localDescription.sdp})
        await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        self.own_feeds.append(reply["feed_id"])
        return str(reply["feed_id"])

    async def subscribe(self, feed_ids: list[str]) -> None:
        wanted = [{"feed_id": f, "audio": True, "video": True} for f in feed_ids]
        if self.subscriber is None and len(wanted) > 1:
            # aiortc as the answerer of a first offer with several streams of one kind receives only the first
            # (tests/sfu/peer.py); growing the subscription through an update works.
            await self.request({"type": "subscribe", "feeds": wanted[:1]})
        await self.request({"type": "subscribe", "feeds": wanted})

    async def wait_feeds(self, count: int, timeout: float, *, video: bool = False) -> bool:
        """Until this member knows `count` feeds of others (with video only, when `video`)."""
        deadline = time.monotonic() + timeout
        while len([f for f in self.others_feeds() if self.feeds[f].get("video") or not video]) < count:
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._changed.wait()
        return True

    def others_feeds(self) -> list[str]:
        return [f for f, info in self.feeds.items() if info["peer_id"] != self.id]

    def counts(self) -> dict[str, RtpCount]:
        """mid -> counter of every subscribed stream."""
        if self.subscriber is None:
            return {}
        by_mid = {t.mid: t.receiver for t in self.subscriber.getTransceivers()}
        return {mid: count_of(by_mid[mid]) for mid in self.streams if mid in by_mid}

    async def _read(self) -> None:
        while True:
            msg = await self.ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                if msg.type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    self.errors.append(f"websocket {msg.type}")
                for future in self._replies.values():
                    if not future.done():
                        future.set_exception(ConnectionError(f"{self.name}: websocket {msg.type}"))
                return
            data = json.loads(msg.data)
            kind = data.get("type")
            try:
                if kind == "feed_added":
                    self.feeds[data["feed"]["feed_id"]] = data["feed"]
                elif kind == "feed_removed":
                    self.feeds.pop(data["feed_id"], None)
                elif kind == "subscription":
                    if data.get("sdp"):
                        await self._answer(data)
                    else:
                        self.streams = {s["mid"]: s for s in data["streams"]}
                elif kind in ("sfu_unavailable", "error") and data.get("request_id") is None:
                    self.errors.append(f"{kind}: {data}")
            except Exception as exc:  # recorded: a member that fails is a finding, not a crash of the run
                self.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
            rid = data.get("request_id")
            future = self._replies.pop(rid, None) if rid is not None else None
            if future is not None and not future.done():
                future.set_result(data)
            self._changed.set()

    async def _answer(self, message: dict[str, Any]) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        if self.subscriber is None:
            self.subscriber = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        await self.subscriber.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
        await self.subscriber.setLocalDescription(await self.subscriber.createAnswer())
        self.streams = {s["mid"]: s for s in message["streams"]}
        raw = self.subscriber.localDescription.sdp
        sdp = trim_answer(raw)
        self.answer_sizes.append((len(raw), len(sdp), len(message["sdp"]), len(self.streams)))
        await self.ws.send_str(json.dumps({"type": "subscription_answer", "sdp": sdp}))

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        for pc in self.publishers:
            with contextlib.suppress(Exception):
                await pc.close()
        if self.subscriber is not None:
            with contextlib.suppress(Exception):
                await self.subscriber.close()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()


def trim_answer(sdp: str) -> str:
    """aiortc's answer as a browser would write it: one fingerprint (aiortc lists sha-256, -384 and -512) and,
    with BUNDLE, the candidates in the first m-section only (aiortc repeats them in every one). About 1.2 KB per
    m-section becomes about 0.6 KB: a 64-stream answer otherwise exceeds Roundtable's 64 KiB message limit."""
    if "a=group:BUNDLE" not in sdp:
        return sdp
    out, section = [], -1
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            section += 1
        if line.startswith(("a=fingerprint:sha-384", "a=fingerprint:sha-512")):
            continue
        if section >= 1 and line.startswith(("a=candidate:", "a=end-of-candidates")):
            continue
        out.append(line)
    return "\r\n".join(out)


def first_media(member: Member, kind: str = "video", key: bool = False) -> float | None:
    """Seconds from join (WebSocket open) to the first packet (or VP8 keyframe) of a stream of `kind`."""
    times = [
        (c.first_key if key else c.first)
        for mid, c in member.counts().items()
        if member.streams[mid]["kind"] == kind and (c.first_key if key else c.first) is not None
    ]
    return min(times) - member.t_join if times else None


async def until(predicate: Any, timeout_s: float, step_s: float = 0.05) -> bool:
    """Poll `predicate` (packet counters have no event to wait on) until it holds or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step_s)
    return True


async def bounded(coros: list[Any], in_flight: int) -> list[Any]:
    gate = asyncio.Semaphore(in_flight)

    async def one(coro: Any) -> Any:
        async with gate:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)


# Measuring --------------------------------------------------------------------------------------------------


def udp_counters() -> dict[str, int]:
    """This network namespace's UDP counters (/proc/net/snmp): datagrams dropped for full receive buffers."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
    return dict(zip(lines[0][1:], map(int, lines[1][1:]), strict=True)) if len(lines) >= 2 else {}


def _cpu_times() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return fields[3] + fields[4], sum(fields[:8])


def process_cpu_ns(pid: int) -> int:
    """utime + stime of the whole process from /proc/PID/stat, threads that have ended included (10 ms ticks).
    Janus starts and ends threads per session and handle: a sum over live threads (schedstat) drops when a thread
    ends inside a window (W8 once read a negative share that way)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


@dataclass
class Procs:
    server_pid: int
    janus_pid: int
    pg_pids: Any  # () -> list[int]

    def snapshot(self) -> dict[str, Any]:
        return {
            "roundtable": thread_cpu_ns(self.server_pid),
            "janus": process_cpu_ns(self.janus_pid),
            "pg": {pid: thread_cpu_ns(pid) for pid in self.pg_pids()},
            "clients": thread_cpu_ns(os.getpid()),
            "stat": _cpu_times(),
            "udp": udp_counters(),
            "wall": time.perf_counter(),
        }


class LoopLag:
    """How late the client process's event loop wakes up (a saturated load generator shows here first)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.05)
            lag = time.monotonic() - t - 0.05
            self.samples.append(lag)
            self.worst = max(self.worst, lag)

    def reset(self) -> None:
        self.worst, self.samples = 0.0, []

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def window(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """Shares of one core over [a, b] per process, and how busy the machine was (in cores) beyond them."""
    wall = b["wall"] - a["wall"]
    out = {k: (b[k] - a[k]) / 1e9 / wall for k in ("roundtable", "janus", "clients")}
    out["pg"] = sum(max(0, ns - a["pg"].get(pid, 0)) for pid, ns in b["pg"].items()) / 1e9 / wall
    idle = b["stat"][0] - a["stat"][0]
    total = max(1, b["stat"][1] - a["stat"][1])
    cores = os.cpu_count() or 1
    out["machine_busy_cores"] = (1 - idle / total) * cores
    out["others_cores"] = max(0.0, out["machine_busy_cores"] - sum(out[k] for k in ("roundtable", "janus", "pg")))
    out["others_cores"] = max(0.0, out["others_cores"] - out["clients"])
    out["wall_s"] = wall
    for k in ("InDatagrams", "RcvbufErrors", "SndbufErrors", "InErrors"):
        out[f"udp_{k}"] = b["udp"].get(k, 0) - a["udp"].get(k, 0)
    return out


@contextlib.contextmanager
def measuring(procs: Procs, lag: LoopLag) -> Iterator[dict[str, Any]]:
    span: dict[str, Any] = {}
    lag.reset()
    a = procs.snapshot()
    try:
        yield span
    finally:
        span.update(window(a, procs.snapshot()))
        span["loop_lag_max_ms"] = lag.worst * 1000
        span["loop_lag_p99_ms"] = percentile(lag.samples, 99) * 1000 if lag.samples else float("nan")
        span["loadavg1"] = float(Path("/proc/loadavg").read_text().split()[0])


def _ms(values: list[float | None]) -> dict[str, float]:
    clean = [v * 1000 for v in values if v is not None]
    return {"p50": percentile(clean, 50), "p99": percentile(clean, 99), "n": len(clean)}


def _totals(members: list[Member]) -> dict[str, int]:
    out = {"audio_packets": 0, "video_packets": 0, "audio_bytes": 0, "video_bytes": 0}
    for m in members:
        for mid, c in m.counts().items():
            kind = m.streams[mid]["kind"]
            out[f"{kind}_packets"] += c.packets
            out[f"{kind}_bytes"] += c.bytes
    return out


def _per_stream(members: list[Member]) -> dict[tuple[int, str], tuple[str, int]]:
    return {
        (i, mid): (m.streams[mid]["kind"], c.packets) for i, m in enumerate(members) for mid, c in m.counts().items()
    }


async def _sent(members: list[Member]) -> dict[str, int]:
    out = {"audio_packets": 0, "video_packets": 0, "audio_bytes": 0, "video_bytes": 0}
    for m in members:
        for pc in m.publishers:
            for stat in (await pc.getStats()).values():
                if getattr(stat, "type", "") == "outbound-rtp":
                    out[f"{stat.kind}_packets"] += stat.packetsSent
                    out[f"{stat.kind}_bytes"] += stat.bytesSent
    return out


# The run inside the namespace ---------------------------------------------------------------------------------


@dataclass
class Ctx:
    sizes: W8Sizes
    http: aiohttp.ClientSession
    base_http: str
    base_ws: str
    procs: Procs
    lag: LoopLag
    admin: dict[str, str]
    media: dict[str, Any] = field(default_factory=dict)
    members: list[Member] = field(default_factory=list)


async def _people(ctx: Ctx, count: int, prefix: str) -> list[str]:
    """A workshop (its plenary is sfu on a server with an SFU) and `count` participants; their join tokens."""
    api = ctx.base_http + "/api/v1"
    body = {
        "title": f"W8 {prefix} {uuid.uuid4().hex[:6]}",
        "timezone": "Europe/Brussels",
        "starts_at": "2026-01-01T08:00:00+01:00",
        "ends_at": "2030-12-31T17:00:00+01:00",
        "plenary_capacity": max(count + 4, 10),
    }
    async with ctx.http.post(api + "/workshops", json=body, headers=ctx.admin) as resp:
        if resp.status != 201:
            raise RuntimeError(f"create workshop: {resp.status} {await resp.text()}")
        wid = (await resp.json())["id"]
    rows = [{"display_name": f"{prefix} {k:02d}", "country": "PT", "organisation": "Benchmark"} for k in range(count)]
    async with ctx.http.post(f"{api}/workshops/{wid}/participants/import", json=rows, headers=ctx.admin) as resp:
        if resp.status != 201:
            raise RuntimeError(f"import participants: {resp.status} {await resp.text()}")
        items = (await resp.json())["items"]
    by_name = {i["display_name"]: i["join_token"] for i in items}
    return [by_name[f"{prefix} {k:02d}"] for k in range(count)]


def _member(ctx: Ctx, token: str, name: str) -> Member:
    m = Member(ctx.http, ctx.base_ws, token, name)
    ctx.members.append(m)
    return m


async def _close(ctx: Ctx, members: list[Member]) -> None:
    await bounded([m.close() for m in members], 16)
    for m in members:
        with contextlib.suppress(ValueError):
            ctx.members.remove(m)


async def sweep(ctx: Ctx, out: dict[str, Any]) -> None:
    """One publisher (A+V) to N non-decoding subscribers, N growing through the sweep."""
    s = ctx.sizes
    video_cls, audio_cls = _tracks()
    tokens = await _people(ctx, 1 + max(s.sweep), "Sweep")
    pub = _member(ctx, tokens[0], "sweep-pub")
    await pub.join()
    feed = await pub.publish("camera", audio=audio_cls(ctx.media["tone"], 0.02), video=video_cls(ctx.media["sweep"]))
    subs: list[Member] = []
    try:
        await asyncio.sleep(s.settle_s)
        with measuring(ctx.procs, ctx.lag) as span:
            await asyncio.sleep(s.window_s)
        out["n0_janus_core_share"] = span["janus"]
        out["n0_roundtable_core_share"] = span["roundtable"]
        for n in s.sweep:
            new = [_member(ctx, tokens[1 + k], f"sweep-sub{k:02d}") for k in range(len(subs), n)]

            async def enter(m: Member) -> None:
                await m.join()
                if not await m.wait_feeds(1, 20):
                    raise RuntimeError(f"{m.name}: the publisher's feed never came")
                await m.subscribe([feed])

            failed = [r for r in await bounded([enter(m) for m in new], s.join_in_flight) if isinstance(r, Exception)]
            subs += new
            up = await until(
                lambda new=new: all(
                    len(m.counts()) == 2 and all(c.first is not None for c in m.counts().values()) for m in new
                ),
                s.setup_timeout_s / 2,
            )
            out[f"n{n}_setup_errors"] = len(failed) + (0 if up else 1)
            if failed:
                out.setdefault("notes", []).append(f"N={n}: {failed[0]!r}")
            media = _ms([first_media(m) for m in new])
            keys = _ms([first_media(m, key=True) for m in new])
            audio = _ms([first_media(m, "audio") for m in new])
            await asyncio.sleep(s.settle_s)
            sent0, got0 = await _sent([pub]), _totals(subs)
            per0 = _per_stream(subs)
            with measuring(ctx.procs, ctx.lag) as span:
                await asyncio.sleep(s.window_s)
            sent1, got1 = await _sent([pub]), _totals(subs)
            per1 = _per_stream(subs)
            sent_v = sent1["video_packets"] - sent0["video_packets"]
            sent_a = sent1["audio_packets"] - sent0["audio_packets"]
            low = sum(
                1
                for key, (kind, p1) in per1.items()
                if p1 - per0.get(key, (kind, 0))[1] < 0.9 * (sent_v if kind == "video" else sent_a)
            )
            forwarded = (sent_a + sent_v) * n / span["wall_s"]  # what Janus sent
            j = span["janus"] - out["n0_janus_core_share"]
            out |= {
                f"n{n}_subscribers": len(subs),
                f"n{n}_janus_core_share": span["janus"],
                f"n{n}_janus_share_per_av_stream": j / n,
                f"n{n}_janus_us_per_forwarded_packet": j / forwarded * 1e6 if forwarded else float("nan"),
                f"n{n}_forwarded_packets_per_s": forwarded,
                f"n{n}_roundtable_core_share": span["roundtable"],
                f"n{n}_roundtable_above_idle": span["roundtable"] - out["idle_roundtable_core_share"],
                f"n{n}_pg_core_share": span["pg"],
                f"n{n}_clients_core_share": span["clients"],
                f"n{n}_others_cores": span["others_cores"],
                f"n{n}_machine_busy_cores": span["machine_busy_cores"],
                f"n{n}_loadavg1": span["loadavg1"],
                f"n{n}_client_loop_lag_p99_ms": span["loop_lag_p99_ms"],
                f"n{n}_sent_video_kbps": (sent1["video_bytes"] - sent0["video_bytes"]) * 8 / span["wall_s"] / 1000,
                f"n{n}_sent_video_pps": sent_v / span["wall_s"],
                f"n{n}_sent_audio_pps": sent_a / span["wall_s"],
                f"n{n}_join_to_first_video_p50_ms": media["p50"],
                f"n{n}_join_to_first_video_p99_ms": media["p99"],
                f"n{n}_join_to_first_keyframe_p50_ms": keys["p50"],
                f"n{n}_join_to_first_keyframe_p99_ms": keys["p99"],
                f"n{n}_join_to_first_audio_p50_ms": audio["p50"],
                f"n{n}_join_to_first_audio_p99_ms": audio["p99"],
                f"n{n}_streams_below_90pct_lost": low,
                f"n{n}_udp_rcvbuf_drops": span["udp_RcvbufErrors"],
                f"n{n}_udp_datagrams_in": span["udp_InDatagrams"],
                f"n{n}_video_delivered_ratio": (got1["video_packets"] - got0["video_packets"]) / max(1, sent_v * n),
                f"n{n}_audio_delivered_ratio": (got1["audio_packets"] - got0["audio_packets"]) / max(1, sent_a * n),
            }
            print(f"  w8 sweep N={n}: janus {span['janus']:.1%}, rt {span['roundtable']:.1%}, "
                  f"clients {span['clients']:.0%}, low streams {low}", file=sys.stderr, flush=True)  # fmt: skip
    finally:
        await _close(ctx, [pub, *subs])


async def plenary(ctx: Ctx, out: dict[str, Any], size: int) -> bool:
    """`size` members, each publishing audio (talkers a tone, the rest DTX), `cameras` of them video too, and
    `screens` a screen share; everyone subscribes to every audio feed, the cameras and the screens. Held."""
    s = ctx.sizes
    video_cls, audio_cls = _tracks()
    p = f"p{size}"
    tokens = await _people(ctx, size, f"Plenary{size}")
    stage = s.cameras + s.screens
    members = [_member(ctx, t, f"{p}-m{k:02d}") for k, t in enumerate(tokens)]
    held = False
    t0 = time.monotonic()
    try:

        async def enter(k: int, m: Member) -> None:
            await m.join()
            talker = k < s.talkers
            audio = audio_cls(ctx.media["tone"], 0.02) if talker else audio_cls(ctx.media["silence"], 0.4)
            if k < s.cameras:
                await m.publish("camera", audio=audio, video=video_cls(ctx.media["camera"]))
            else:
                await m.publish("camera", audio=audio)
            if s.cameras <= k < stage:
                await m.publish("screen", video=video_cls(ctx.media["screen"]))
            if k >= stage:  # an audience member: see the stage at once (what join-to-first-media measures)
                if not await m.wait_feeds(stage, 20, video=True):
                    raise RuntimeError(f"{m.name}: the stage's feeds never came")
                stage_ids = [f for f, i in m.feeds.items() if i.get("video") and i["peer_id"] != m.id]
                await m.subscribe(stage_ids)

        results = await bounded([enter(k, m) for k, m in enumerate(members[:stage])], s.join_in_flight)
        results += await bounded([enter(k + stage, m) for k, m in enumerate(members[stage:])], s.join_in_flight)
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            out.setdefault("notes", []).append(f"plenary {size} join: {len(failed)} failed, first {failed[0]!r}")
        audience = members[stage:]
        await until(
            lambda: all(first_media(m, key=True) is not None for m in audience if m.subscriber), s.setup_timeout_s / 4
        )
        media = _ms([first_media(m) for m in audience])
        keys = _ms([first_media(m, key=True) for m in audience])
        out[f"{p}_join_s"] = time.monotonic() - t0
        expected_feeds = size + s.screens
        known = await bounded([m.wait_feeds(expected_feeds - 1 - (1 if k in range(s.cameras, stage) else 0), 30)
                               for k, m in enumerate(members)], 60)  # fmt: skip
        out[f"{p}_members_missing_feeds"] = sum(1 for r in known if r is not True)

        async def everything(m: Member) -> None:
            await m.subscribe(m.others_feeds())

        t1 = time.monotonic()
        results = await bounded([everything(m) for m in members], s.subscribe_in_flight)
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            out.setdefault("notes", []).append(f"plenary {size} subscribe: {len(failed)} failed, first {failed[0]!r}")
        own_video = {m.name: 1 if k < stage else 0 for k, m in enumerate(members)}
        per_member = {
            m.name: (size - 1) + (s.cameras + s.screens - own_video[m.name]) for m in members
        }  # audio of every other member + every stage video but one's own
        all_up = await until(
            lambda: all(
                len(m.counts()) == per_member[m.name] and all(c.first is not None for c in m.counts().values())
                for m in members
            ),
            s.setup_timeout_s / 2,
            0.25,
        )
        out[f"{p}_subscribe_all_s"] = time.monotonic() - t1
        streams = sum(len(m.counts()) for m in members)
        out[f"{p}_streams_expected"] = sum(per_member.values())
        out[f"{p}_streams_subscribed"] = streams
        out[f"{p}_setup_errors"] = len(failed) + (0 if all_up else 1)
        await asyncio.sleep(s.settle_s)
        slices: list[dict[tuple[int, str], tuple[str, int]]] = [_per_stream(members)]
        sent0, got0 = await _sent(members), _totals(members)
        with measuring(ctx.procs, ctx.lag) as span:
            end = time.monotonic() + s.hold_s
            while time.monotonic() < end - 0.01:
                await asyncio.sleep(min(s.slice_s, end - time.monotonic()))
                slices.append(_per_stream(members))
        sent1, got1 = await _sent(members), _totals(members)
        dead = set()
        for a, b in itertools.pairwise(slices):
            for key, (_kind, packets) in b.items():
                if packets - a.get(key, ("", 0))[1] <= 0:
                    dead.add(key)
        dead |= {(i, mid) for i, m in enumerate(members) for mid in m.streams if (i, mid) not in slices[-1]}
        missing = out[f"{p}_streams_expected"] - streams
        wall = span["wall_s"]
        got = {k: (got1[k] - got0[k]) / wall for k in got1}
        sent = {k: (sent1[k] - sent0[k]) / wall for k in sent1}
        fwd_video = sum(1 for kind, _ in slices[-1].values() if kind == "video")
        fwd_audio = sum(1 for kind, _ in slices[-1].values() if kind == "audio")
        j = span["janus"] - out["idle_janus_core_share"]
        forwarded = (sent["audio_packets"] + sent["video_packets"]) * (size - 1)  # what Janus sent: all to all
        held = not dead and missing == 0 and not failed and all_up
        out |= {
            f"{p}_held": held,
            f"{p}_dead_or_missing_streams_lost": len(dead) + max(0, missing),
            f"{p}_forwarded_audio_streams": fwd_audio,
            f"{p}_forwarded_video_streams": fwd_video,
            f"{p}_forwarded_packets_per_s": forwarded,
            f"{p}_received_packets_per_s": got["audio_packets"] + got["video_packets"],
            f"{p}_audio_delivered_ratio": got["audio_packets"] / (sent["audio_packets"] * (size - 1))
            if sent["audio_packets"]
            else float("nan"),
            f"{p}_forwarded_kbps": (got["audio_bytes"] + got["video_bytes"]) * 8 / 1000,
            f"{p}_sent_packets_per_s": sent["audio_packets"] + sent["video_packets"],
            f"{p}_sent_video_kbps": sent["video_bytes"] * 8 / 1000,
            f"{p}_video_delivered_ratio": got["video_packets"] / (sent["video_packets"] * (size - 1))
            if sent["video_packets"]
            else float("nan"),
            f"{p}_janus_core_share": span["janus"],
            f"{p}_janus_share_per_forwarded_stream": j / max(1, fwd_audio + fwd_video),
            f"{p}_janus_share_per_video_stream_if_audio_free": j / max(1, fwd_video),
            f"{p}_janus_us_per_forwarded_packet": j / forwarded * 1e6 if forwarded else float("nan"),
            f"{p}_roundtable_core_share": span["roundtable"],
            f"{p}_roundtable_above_idle": span["roundtable"] - out["idle_roundtable_core_share"],
            f"{p}_pg_core_share": span["pg"],
            f"{p}_clients_core_share": span["clients"],
            f"{p}_others_cores": span["others_cores"],
            f"{p}_machine_busy_cores": span["machine_busy_cores"],
            f"{p}_loadavg1": span["loadavg1"],
            f"{p}_client_loop_lag_p99_ms": span["loop_lag_p99_ms"],
            f"{p}_client_loop_lag_max_ms": span["loop_lag_max_ms"],
            f"{p}_hold_s": wall,
            f"{p}_udp_rcvbuf_drops": span["udp_RcvbufErrors"],
            f"{p}_udp_datagrams_in": span["udp_InDatagrams"],
            f"{p}_join_to_first_video_p50_ms": media["p50"],
            f"{p}_join_to_first_video_p99_ms": media["p99"],
            f"{p}_join_to_first_keyframe_p50_ms": keys["p50"],
            f"{p}_join_to_first_keyframe_p99_ms": keys["p99"],
            f"{p}_member_errors": sum(len(m.errors) for m in members),
            f"{p}_uplink_streams_per_member_max": max(
                sum(len(pc.getSenders()) for pc in m.publishers) for m in members
            ),
        }
        bad = sorted(dead | {(i, mid) for i, m in enumerate(members) for mid, c in m.counts().items() if not c.first})
        if bad:
            described = []
            for i, mid in bad[:8]:
                st = members[i].streams.get(mid, {})
                info = members[i].feeds.get(st.get("feed_id", ""), {})
                owner = next((m.name for m in members if m.id == info.get("peer_id")), "?")
                c = count_of(next((t.receiver for t in members[i].subscriber.getTransceivers() if t.mid == mid), None))
                described.append(f"{members[i].name} mid {mid} {st.get('kind')} of {owner}/{info.get('source')} "
                                 f"packets {c.packets}")  # fmt: skip
            out.setdefault("notes", []).append(f"plenary {size}: {len(bad)} dead streams: " + "; ".join(described))
        biggest = max((a for m in members for a in m.answer_sizes), key=lambda a: a[3], default=(0, 0, 0, 0))
        out |= {
            f"{p}_answer_sdp_chars_aiortc": biggest[0],
            f"{p}_answer_sdp_chars_sent": biggest[1],
            f"{p}_offer_sdp_chars": biggest[2],
            f"{p}_answer_sdp_m_sections": biggest[3],
        }
        errs = [e for m in members for e in m.errors]
        if errs:
            out.setdefault("notes", []).append(f"plenary {size}: member errors, first: {errs[0][:300]}")
        print(
            f"  w8 plenary {size}: held {held}, janus {span['janus']:.1%}, rt {span['roundtable']:.1%}, "
            f"clients {span['clients']:.0%}, dead {len(dead)}, missing {missing}",
            file=sys.stderr,
            flush=True,
        )
    finally:
        await _close(ctx, members)
    return held


def uplink_table(out: dict[str, Any]) -> None:
    """Uplink streams per client: mesh sends its camera to each other member (one PeerConnection and, in a
    browser, one encoder each: docs/protocol.md), sfu sends it once. In audio+video publications."""
    for n in (6, 12, 60):
        out[f"uplink_mesh_{n}"] = n - 1
        out[f"uplink_sfu_{n}"] = 1


def _janus_of(server_pid: int) -> int | None:
    for pid in children_of(server_pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "janus":
                return pid
    return None


def _netns() -> None:
    for args in (
        ["link", "set", "lo", "up"],
        ["link", "add", "rt0", "type", "veth", "peer", "name", "rt1"],
        ["addr", "add", f"{MEDIA_ADDRESS}/32", "dev", "rt0"],
        ["link", "set", "rt0", "up"],
        ["link", "set", "rt1", "up"],
    ):
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


async def inner(sizes: W8Sizes, database_url: str | None, keep: bool) -> dict[str, Any]:
    from bench.servers import ADMIN_TOKEN, pin_loadgen, raise_nofile, roundtable

    raise_nofile()
    out: dict[str, Any] = {"loadgen_core": pin_loadgen(), "sizes": json.loads(json.dumps(asdict(sizes)))}
    install_hooks()
    workdir = Path(tempfile.mkdtemp(prefix="rt-w8-"))
    server = roundtable(workdir, database_url=database_url)
    server.env.update(
        ROUNDTABLE_SFU="auto",
        ROUNDTABLE_SFU_ICE_ADDRESS=MEDIA_ADDRESS,
        ROUNDTABLE_SFU_RTP_PORTS="20000-29999",
        ROUNDTABLE_SFU_INSTALL="false",
        ROUNDTABLE_MESH_MAX="0",
        ROUNDTABLE_ICE_HOST_ADDRESSES=MEDIA_ADDRESS,
    )
    janus_pid: int | None = None
    lag = LoopLag()
    try:
        t = time.monotonic()
        media = {
            "tone": encode_opus(440.0),
            "silence": encode_opus(None),
            "sweep": encode_clip(sizes.sweep_video),
            "camera": encode_clip(sizes.camera_video, seed=2),
            "screen": encode_clip(sizes.screen_video, seed=3),
        }
        out["encode_s"] = time.monotonic() - t
        for name in ("sweep", "camera", "screen"):
            clip = media[name]
            deltas = clip.delta[1:]
            out[f"clip_{name}_kbps"] = sum(map(len, deltas)) * 8 * clip.spec.fps / len(deltas) / 1000
            out[f"clip_{name}_keyframe_bytes"] = sum(map(len, clip.keys)) / len(clip.keys)
            out[f"clip_{name}_quantizer"] = clip.q
        out["silence_packet_bytes"] = len(media["silence"][0])
        await server.start()
        for _ in range(100):
            janus_pid = _janus_of(server.pid)
            if janus_pid:
                break
            await asyncio.sleep(0.1)
        if not janus_pid:
            raise RuntimeError("the server started without its embedded Janus: " + server.log_path.read_text()[-2000:])
        out["janus_pid"], out["server_pid"] = janus_pid, server.pid
        procs = Procs(server.pid, janus_pid, server.postgres_pids)
        lag.start()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            ctx = Ctx(
                sizes, http, server.base_http, server.base_ws, procs, lag, {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            )
            ctx.media = media
            await asyncio.sleep(sizes.settle_s)
            with measuring(procs, lag) as span:
                await asyncio.sleep(sizes.idle_s)
            out |= {f"idle_{k}_core_share": span[k] for k in ("roundtable", "janus", "pg", "clients")}
            out["idle_others_cores"] = span["others_cores"]
            out["idle_loadavg1"] = span["loadavg1"]
            try:
                await sweep(ctx, out)
            except Exception as exc:
                out["sweep_errors"] = 1
                out.setdefault("notes", []).append(f"sweep: {traceback.format_exc()[-1500:]}")
                print(f"  ! w8 sweep: {exc!r}", file=sys.stderr)
            await asyncio.sleep(sizes.settle_s)
            for size in sizes.plenary_members:
                try:
                    if await plenary(ctx, out, size):
                        out["plenary_largest_held"] = size
                        break
                except Exception as exc:
                    out.setdefault("notes", []).append(f"plenary {size}: {traceback.format_exc()[-1500:]}")
                    print(f"  ! w8 plenary {size}: {exc!r}", file=sys.stderr)
                await asyncio.sleep(sizes.settle_s)
            out.setdefault("plenary_largest_held", 0)
            out["janus_rss_kib"] = _rss(janus_pid)
            out["roundtable_rss_kib"] = _rss(server.pid)
            uplink_table(out)
            await _close(ctx, list(ctx.members))
    finally:
        await lag.stop()
        if server.proc is not None:
            await server.stop()
        if janus_pid and alive(janus_pid):  # Roundtable stops its Janus; make sure, by PID
            with contextlib.suppress(ProcessLookupError):
                os.kill(janus_pid, signal.SIGKILL)
        out["left_running"] = [pid for pid in [*server.seen_pids, janus_pid or 0] if pid and alive(pid)]
        if keep:
            out["workdir"] = str(workdir)
        else:
            log = server.log_path
            if log.exists():
                out["server_log_tail"] = log.read_text(errors="replace")[-3000:]
            shutil.rmtree(workdir, ignore_errors=True)
    return out


def _rss(pid: int) -> int:
    from bench.measure import rss_kib

    return rss_kib(pid)


# From outside the namespace ------------------------------------------------------------------------------------


def why_not() -> str:
    if os.geteuid() != 0:
        return "W8 needs root (a private network namespace, as tests/netns.py)"
    for tool in ("unshare", "ip", "janus"):
        if shutil.which(tool) is None:
            return f"W8 needs {tool}"
    return ""


async def run_isolated(sizes: W8Sizes, *, database_url: str | None = None, keep: bool = False) -> dict[str, Any]:
    """Run W8 in a child process inside a new network namespace; its figures (or {"n/a": why})."""
    reason = why_not()
    if reason:
        return {"n/a": reason}
    with tempfile.TemporaryDirectory(prefix="rt-w8-out-") as tmp:
        result_path = Path(tmp) / "w8.json"
        argv = [
            "unshare",
            "--net",
            "--",
            sys.executable,
            "-m",
            "bench.sfu_plenary",
            "--inner",
            "--out",
            str(result_path),
        ]
        argv += ["--sizes", json.dumps(asdict(sizes))]
        if database_url:
            argv += ["--database-url", database_url]
        if keep:
            argv.append("--keep-workdir")
        proc = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, stdin=asyncio.subprocess.DEVNULL)
        budget = budget_s(sizes)
        try:
            async with asyncio.timeout(budget):
                code = await proc.wait()
        except TimeoutError:
            proc.send_signal(signal.SIGTERM)  # by its PID: it stops its server and Janus in a finally
            try:
                async with asyncio.timeout(40):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
            raise RuntimeError(f"W8 did not finish within {budget:.0f} s") from None
        if not result_path.exists():
            raise RuntimeError(f"W8 exited with {code} and no result")
        result: dict[str, Any] = json.loads(result_path.read_text())
        if code:
            result["inner_exit"] = code
        return result


def budget_s(sizes: W8Sizes) -> float:
    per_sweep = len(sizes.sweep) * (sizes.window_s + 2 * sizes.settle_s + 40)
    per_plenary = len(sizes.plenary_members) * (sizes.hold_s + sizes.setup_timeout_s + 60)
    return sizes.idle_s + per_sweep + per_plenary + INNER_TIMEOUT_PAD_S


def sizes_from_json(text: str) -> W8Sizes:
    raw = json.loads(text)
    for k in ("sweep_video", "camera_video", "screen_video"):
        raw[k] = VideoSpec(**raw[k])
    for k in ("sweep", "plenary_members"):
        raw[k] = tuple(raw[k])
    return W8Sizes(**raw)


def flat(result: dict[str, Any]) -> dict[str, Any]:
    """What bench.run records: figures (shares of a core in percent, `_pct`), with the notes as text."""
    out: dict[str, Any] = {}
    for k, v in result.items():
        if k in ("sizes", "notes", "server_log_tail"):
            continue
        if isinstance(v, float) and ("_share" in k or k.endswith("_above_idle")):
            out[k + "_pct"] = v * 100  # shares of one core, in percent: the report prints two decimals
        else:
            out[k] = v
    if result.get("notes"):
        out["notes"] = " | ".join(result["notes"])[:4000]
    return out


def _inner_main(args: argparse.Namespace) -> int:
    # Threads must not exist yet for `unshare` to be whole; `unshare --net` made the namespace before exec.
    _netns()
    sizes = sizes_from_json(args.sizes)
    result: dict[str, Any]
    try:
        result = asyncio.run(inner(sizes, args.database_url, args.keep_workdir))
        code = 0
    except Exception:
        result = {"errors": 1, "notes": [traceback.format_exc()[-3000:]]}
        code = 1
    args.out.write_text(json.dumps(result, indent=1, default=str))
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sfu_plenary", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="N=2 subscribers and a 4-member plenary, seconds each")
    parser.add_argument("--sweep", default=None, help="comma-separated subscriber counts (default 10,30,60)")
    parser.add_argument("--members", default=None, help="plenary sizes to try in order, e.g. 60,45,30")
    parser.add_argument("--hold-s", type=float, default=None)
    parser.add_argument("--window-s", type=float, default=None)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--keep-workdir", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="results JSON")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        return _inner_main(args)
    sizes = SMOKE if args.smoke else FULL
    if args.sweep:
        sizes = replace(sizes, sweep=tuple(int(x) for x in args.sweep.split(",") if x))
    if args.members:
        sizes = replace(sizes, plenary_members=tuple(int(x) for x in args.members.split(",") if x))
    if args.hold_s is not None:
        sizes = replace(sizes, hold_s=args.hold_s)
    if args.window_s is not None:
        sizes = replace(sizes, window_s=args.window_s)
    from bench.servers import pin_loadgen

    pin_loadgen()
    result = asyncio.run(run_isolated(sizes, database_url=args.database_url, keep=args.keep_workdir))
    text = json.dumps(result, indent=1, default=str)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)
    return 1 if result.get("errors") or result.get("sweep_errors") else 0


if __name__ == "__main__":
    raise SystemExit(main())
