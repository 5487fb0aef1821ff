"""The composer: a recording's per-track WebM files, aligned by their offsets, into one WebM (VP8 + Opus).

    python -m recordings.compose --manifest job.json      # or `--manifest -` (stdin): what the supervisor does

The manifest names the output file, the size and frame rate, and every track (`path`, `kind`, `offset_s` from the
recording's start, `participant_id`, `name`, `source`). Progress goes to stdout as JSON lines (`{"progress": 0.4}`),
then `{"done": {...}}` with the file's bytes, sha256, duration and layout timeline; an error is `{"error": "..."}` and
exit status 1. The file is written beside the output as `.part` and renamed when whole.

Two passes. The first decodes the audio alone (cheap) into loudness per tenth of a second and participant, from
which the active speaker is chosen with some hysteresis. The second walks the output timeline frame by frame:
decodes each video track just far enough, scales the frames it shows with swscale straight into the tile's size in
YUV 4:2:0 and blits the planes with numpy (no per-pixel Python), mixes the audio, and encodes. Layout: a shared
screen large if any (the latest), else the active speaker large, the others small in a column on the right; one
person alone fills the frame. A person's tile exists while one of their tracks runs: from its offset (a late joiner
appears there) to its end (a withdrawn consent ends the track, so the tile). Names are drawn with Pillow once per
name and tile size.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from recordings.storage import file_facts

SAMPLE_RATE = 48_000
AUDIO_FRAME = 960  # 20 ms: what libopus encodes
LEVEL_WINDOW_S = 0.1
SPEECH_DBFS = -45.0  # quieter than this is silence
SWITCH_S = 0.8  # another speaker must be the loudest this long before the large tile moves to them
HOLD_S = 2.0  # and the large tile stays on someone at least this long
KEYFRAME_S = 4  # a keyframe every 4 s: seeking in a <video> element lands close
VIDEO_BITRATE = 1_200_000
AUDIO_BITRATE = 64_000
BACKGROUND = (16, 128, 128)  # YUV: near black
EMPTY_TILE = (48, 128, 128)  # a tile without video (audio only, camera not yet there): dark grey
TRACK_GRACE_S = 0.2  # a video tile outlives its last frame by this much
OPEN_AHEAD_S = 1.0  # a video track's decoder opens this long before its offset


class ComposeError(Exception):
    """A composition that cannot be made (an unreadable track); the message is the job's `error`."""


@dataclass(frozen=True)
class TrackInput:
    id: str
    participant_id: str
    name: str
    kind: str
    path: Path
    offset_s: float
    duration_s: float = 0.0
    source: str | None = None

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> TrackInput:
        return cls(
            id=str(item["id"]),
            participant_id=str(item["participant_id"]),
            name=str(item.get("name") or "Participant"),
            kind=str(item["kind"]),
            path=Path(item["path"]),
            offset_s=max(0.0, float(item.get("offset_s") or 0.0)),
            duration_s=max(0.0, float(item.get("duration_s") or 0.0)),
            source=item.get("source"),
        )

    def label(self) -> str:
        return f"{self.name}'s {self.kind} track ({self.id})"


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    w: int
    h: int


TileKey = tuple[str, str]  # (participant_id, "camera" | "screen")


def _even(n: float) -> int:
    """A size: even (chroma is subsampled by two), at least 2."""
    return max(2, int(n) // 2 * 2)


def _even_at(n: float) -> int:
    """A position: even, at least 0."""
    return max(0, int(n) // 2 * 2)


def layout(width: int, height: int, big: TileKey | None, others: list[TileKey]) -> dict[TileKey, Rect]:
    """Where each tile goes. Pure. One tile fills the frame; otherwise the large one takes the left three quarters
    and the others are stacked on the right (16:9 tiles, four fit; more shrink to fit)."""
    tiles = ([big] if big is not None else []) + [k for k in others if k != big]
    if not tiles:
        return {}
    if len(tiles) == 1:
        return {tiles[0]: Rect(0, 0, width, height)}
    strip = _even(width / 4)
    main, rest = tiles[0], tiles[1:]
    out = {main: Rect(0, 0, width - strip, height)}
    h = _even(min(strip * 9 / 16, height / len(rest)))
    w = _even(min(strip, h * 16 / 9))
    top = _even_at((height - h * len(rest)) / 2)
    for i, key in enumerate(rest):
        out[key] = Rect(width - strip + _even_at((strip - w) / 2), top + i * h, w, h)
    return out


def fit(src_w: int, src_h: int, rect: Rect) -> Rect:
    """The largest rectangle of the source's aspect inside `rect`, centred, with even sides and position."""
    scale = min(rect.w / max(1, src_w), rect.h / max(1, src_h))
    w, h = min(rect.w, _even(src_w * scale)), min(rect.h, _even(src_h * scale))
    return Rect(
        rect.x + _even_at((rect.w - w) / 2),
        rect.y + _even_at((rect.h - h) / 2),
        w,
        h,
    )


# Planning ---------------------------------------------------------------------------------------------------------


def classify_sources(tracks: list[TrackInput]) -> dict[str, str]:
    """camera or screen per video track: as recorded where known (sfu); otherwise (mesh) a video track that starts
    while the same person's camera runs is their screen."""
    out: dict[str, str] = {}
    running: dict[str, list[tuple[float, float]]] = {}
    for t in sorted((t for t in tracks if t.kind == "video"), key=lambda t: (t.offset_s, t.id)):
        end = t.offset_s + t.duration_s
        if t.source in ("camera", "screen"):
            out[t.id] = t.source
        else:
            spans = running.get(t.participant_id, [])
            out[t.id] = "screen" if any(a <= t.offset_s < b for a, b in spans) else "camera"
        if out[t.id] == "camera":
            running.setdefault(t.participant_id, []).append((t.offset_s, end))
    return out


def _mono(frame: Any, resampler: Any) -> Iterator[np.ndarray]:
    for out in resampler.resample(frame):
        yield out.to_ndarray().reshape(-1).astype(np.float32, copy=False)


class AudioSource:
    """One audio track decoded as mono float samples at 48 kHz, placed on the recording's timeline."""

    def __init__(self, track: TrackInput) -> None:
        self.track = track
        try:
            self.container = av.open(str(track.path))
            self.stream = self.container.streams.audio[0]
        except (av.FFmpegError, IndexError, OSError) as exc:
            raise ComposeError(f"{track.label()} cannot be read: {exc}") from exc
        self.chunks = self._decode()  # (first sample on the timeline, samples), in order
        self._pending: tuple[int, np.ndarray] | None = None
        self.done = False
        self.gain = 1.0  # the floor under an interpretation channel is quieter (`dub`)

    def _decode(self) -> Iterator[tuple[int, np.ndarray]]:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        first: float | None = None
        cursor: int | None = None
        try:
            for frame in self.container.decode(self.stream):
                rel = float(frame.time) if frame.time is not None else None
                if rel is not None:
                    first = rel if first is None else first
                    at = round((self.track.offset_s + rel - first) * SAMPLE_RATE)
                    # Timestamps place the samples (gaps stay silent); a tiny overlap is the resampler's delay.
                    cursor = at if cursor is None or abs(at - cursor) > SAMPLE_RATE // 50 else cursor
                elif cursor is None:
                    cursor = round(self.track.offset_s * SAMPLE_RATE)
                for samples in _mono(frame, resampler):
                    yield cursor, samples
                    cursor += len(samples)
        except av.FFmpegError:
            pass  # a file cut short (a crash): what decoded is kept
        finally:
            self.container.close()

    def mix_into(self, out: np.ndarray, start: int) -> None:
        """Add this track's samples of [start, start + len(out)) to `out`."""
        end = start + len(out)
        while not self.done:
            if self._pending is None:
                try:
                    self._pending = next(self.chunks)
                except StopIteration:
                    self.done = True
                    return
            at, samples = self._pending
            if at >= end:
                return
            lo, hi = max(at, start), min(at + len(samples), end)
            if hi > lo:
                part = samples[lo - at : hi - at]
                out[lo - start : hi - start] += part if self.gain == 1.0 else part * self.gain
            if at + len(samples) > end:
                self._pending = (end, samples[end - at :])
                return
            self._pending = None


@dataclass
class AudioFacts:
    levels: dict[str, np.ndarray]  # participant -> mean square per window
    spans: dict[str, list[tuple[float, float]]]  # participant -> where their audio runs


def analyse_audio(tracks: list[TrackInput], duration_s: float) -> AudioFacts:
    """Pass one: loudness per window and participant, and where each audio track runs."""
    windows = max(1, math.ceil(duration_s / LEVEL_WINDOW_S))
    window = round(LEVEL_WINDOW_S * SAMPLE_RATE)
    levels: dict[str, np.ndarray] = {}
    spans: dict[str, list[tuple[float, float]]] = {}
    for track in tracks:
        if track.kind != "audio":
            continue
        energy = levels.setdefault(track.participant_id, np.zeros(windows, dtype=np.float64))
        source = AudioSource(track)
        first = last = None
        for at, samples in source.chunks:
            first = at if first is None else first
            last = at + len(samples)
            index = at // window
            # Sum of squares into the windows the chunk covers (chunks are 20 ms: at most two windows).
            offset = index * window
            sq = samples.astype(np.float64) ** 2
            cut = min(len(sq), offset + window - at)
            if 0 <= index < windows:
                energy[index] += sq[:cut].sum()
            if cut < len(sq) and 0 <= index + 1 < windows:
                energy[index + 1] += sq[cut:].sum()
        if first is not None and last is not None:
            spans.setdefault(track.participant_id, []).append((first / SAMPLE_RATE, last / SAMPLE_RATE))
    for pid in levels:
        levels[pid] /= window
    return AudioFacts(levels, spans)


def speakers(levels: dict[str, np.ndarray], windows: int) -> list[str | None]:
    """The active speaker of each window: the loudest above SPEECH_DBFS, with hysteresis (SWITCH_S, HOLD_S)."""
    if not levels:
        return [None] * windows
    people = sorted(levels)
    matrix = np.stack([levels[p][:windows] for p in people])
    threshold = 10 ** (SPEECH_DBFS / 10)
    loudest = matrix.argmax(axis=0)
    loud = matrix.max(axis=0) > threshold
    switch, hold = round(SWITCH_S / LEVEL_WINDOW_S), round(HOLD_S / LEVEL_WINDOW_S)
    out: list[str | None] = []
    current: str | None = None
    since = 0
    candidate: str | None = None
    run = 0
    for i in range(windows):
        who = people[int(loudest[i])] if loud[i] else None
        if who is not None and who == candidate:
            run += 1
        else:
            candidate, run = who, 1 if who is not None else 0
        if current is None and who is not None:
            current, since = who, i
        elif candidate is not None and candidate != current and run >= switch and i - since >= hold:
            current, since = candidate, i
        out.append(current)
    return out


# Rendering ----------------------------------------------------------------------------------------------------------


class VideoSource:
    """One video track, decoded forward only as far as the output timeline needs it. Its decoder is opened shortly
    before its offset and closed at its end, so a long session with many tracks holds only the running ones."""

    def __init__(self, track: TrackInput, source: str) -> None:
        self.track = track
        self.source = source
        try:  # an unreadable track fails the composition before it starts, not an hour into it
            with av.open(str(track.path)) as probe:
                probe.streams.video[0]
        except (av.FFmpegError, IndexError, OSError) as exc:
            raise ComposeError(f"{track.label()} cannot be read: {exc}") from exc
        self.container: Any = None
        self._frames: Iterator[Any] = iter(())
        self._first: float | None = None
        self.current: Any = None
        self.current_t = -1.0
        self._next: Any = None
        self._next_t = math.inf
        self.opened = False
        self.exhausted = False

    def _open(self) -> None:
        self.opened = True
        try:
            self.container = av.open(str(self.track.path))
            stream = self.container.streams.video[0]
        except (av.FFmpegError, IndexError, OSError) as exc:
            raise ComposeError(f"{self.track.label()} cannot be read: {exc}") from exc
        stream.thread_type = "AUTO"
        self._frames = self.container.decode(stream)
        self._pull()

    def _pull(self) -> None:
        self._next, self._next_t = None, math.inf
        while not self.exhausted:
            try:
                frame = next(self._frames)
            except (StopIteration, av.FFmpegError):  # the end, or a file cut short (a crash): what decoded is kept
                self.close()
                return
            if frame.time is None:
                continue
            self._first = float(frame.time) if self._first is None else self._first
            self._next, self._next_t = frame, self.track.offset_s + float(frame.time) - self._first
            return

    def at(self, t: float) -> Any:
        """The frame shown at `t`, or None when the track is not running then."""
        if not self.opened:
            if t < self.track.offset_s - OPEN_AHEAD_S:
                return None
            self._open()
        while self._next is not None and self._next_t <= t:
            self.current, self.current_t = self._next, self._next_t
            self._pull()
        if self.current is None:
            return None
        if self._next is None and t > self.current_t + TRACK_GRACE_S:
            return None  # ended
        return self.current

    def close(self) -> None:
        if not self.exhausted:
            self.exhausted = True
            if self.container is not None:
                self.container.close()


def _font(size: int) -> Any:
    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def rgb_to_yuv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 limited range, as libvpx expects: Y at full size, U and V subsampled by two."""
    f = rgb.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    return (
        y.clip(0, 255).astype(np.uint8),
        u[::2, ::2].clip(0, 255).astype(np.uint8),
        v[::2, ::2].clip(0, 255).astype(np.uint8),
    )


class Canvas:
    """The output frame as three planes; blits are numpy slice assignments."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.y = np.empty((height, width), dtype=np.uint8)
        self.u = np.empty((height // 2, width // 2), dtype=np.uint8)
        self.v = np.empty((height // 2, width // 2), dtype=np.uint8)
        self._labels: dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def fill(self, rect: Rect, yuv: tuple[int, int, int]) -> None:
        self.y[rect.y : rect.y + rect.h, rect.x : rect.x + rect.w] = yuv[0]
        cy, cx, ch, cw = rect.y // 2, rect.x // 2, rect.h // 2, rect.w // 2
        self.u[cy : cy + ch, cx : cx + cw] = yuv[1]
        self.v[cy : cy + ch, cx : cx + cw] = yuv[2]

    def blit_frame(self, frame: Any, rect: Rect) -> None:
        """Scale the frame into `rect` (keeping its aspect) with swscale, then copy its planes in."""
        inner = fit(frame.width, frame.height, rect)
        scaled = frame.reformat(width=inner.w, height=inner.h, format="yuv420p")
        planes = scaled.to_ndarray()  # (h * 3 / 2, w): Y, then U and V each h/2 x w/2 row-major
        h, w = inner.h, inner.w
        quarter = (h // 2) * (w // 2)
        chroma = planes[h:].reshape(-1)
        self.y[inner.y : inner.y + h, inner.x : inner.x + w] = planes[:h]
        cy, cx = inner.y // 2, inner.x // 2
        self.u[cy : cy + h // 2, cx : cx + w // 2] = chroma[:quarter].reshape(h // 2, w // 2)
        self.v[cy : cy + h // 2, cx : cx + w // 2] = chroma[quarter : 2 * quarter].reshape(h // 2, w // 2)

    def label(self, name: str, rect: Rect) -> None:
        """The name at the tile's bottom left, white on a dark bar (rendered once per name and size)."""
        if rect.h < 24 or rect.w < 24:
            return  # a thumbnail too small for a readable name
        bar = _even(max(12, min(26, rect.h // 7)))
        key = (name, rect.w, bar)
        planes = self._labels.get(key)
        if planes is None:
            font = _font(int(bar * 0.7))
            width = min(rect.w, _even(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(name, font=font) + bar))
            image = Image.new("RGB", (width, bar), (0, 0, 0))
            ImageDraw.Draw(image).text((bar // 3, bar // 2), name, fill=(255, 255, 255), font=font, anchor="lm")
            planes = rgb_to_yuv(np.asarray(image))
            self._labels[key] = planes
        y, u, v = planes
        top, left = rect.y + rect.h - bar, rect.x
        self.y[top : top + bar, left : left + y.shape[1]] = y
        self.u[top // 2 : top // 2 + u.shape[0], left // 2 : left // 2 + u.shape[1]] = u
        self.v[top // 2 : top // 2 + v.shape[0], left // 2 : left // 2 + v.shape[1]] = v

    def frame(self) -> Any:
        stacked = np.concatenate([self.y.reshape(-1), self.u.reshape(-1), self.v.reshape(-1)])
        return av.VideoFrame.from_ndarray(stacked.reshape(self.height * 3 // 2, self.width), format="yuv420p")


@dataclass
class Result:
    bytes: int
    sha256: str
    duration_s: float
    width: int
    height: int
    codec: str = "vp8+opus"
    layout: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "bytes": self.bytes,
            "sha256": self.sha256,
            "duration_s": self.duration_s,
            "width": self.width,
            "height": self.height,
            "codec": self.codec,
            "layout": self.layout,
        }


def choose_tiles(
    present: set[TileKey], speaker: str | None, order: dict[str, int]
) -> tuple[TileKey | None, list[TileKey]]:
    """The large tile and the others, in the order people first appeared. Pure. The latest shared screen is large,
    else the active speaker's camera, else the first camera."""
    screens = sorted((k for k in present if k[1] == "screen"), key=lambda k: order[k[0]])
    cameras = sorted((k for k in present if k[1] == "camera"), key=lambda k: order[k[0]])
    if screens:
        big: TileKey | None = screens[-1]
    elif speaker is not None and (speaker, "camera") in present:
        big = (speaker, "camera")
    else:
        big = cameras[0] if cameras else None
    return big, [k for k in screens[:-1] + cameras if k != big]


class Timeline:
    """The layout over time, one segment per arrangement: who was where, from when to when."""

    def __init__(self) -> None:
        self.segments: list[dict[str, Any]] = []
        self._last: tuple[Any, ...] | None = None

    def note(self, t: float, big: TileKey | None, rects: dict[TileKey, Rect]) -> None:
        key = tuple(sorted((k, r.x, r.y, r.w, r.h) for k, r in rects.items()))
        if key == self._last:
            return
        self._last = key
        if self.segments:
            self.segments[-1]["to_s"] = round(t, 3)
        tiles = [
            {"participant_id": k[0], "source": k[1], "big": k == big, "x": r.x, "y": r.y, "w": r.w, "h": r.h}
            for k, r in rects.items()
        ]
        self.segments.append({"from_s": round(t, 3), "to_s": None, "tiles": tiles})

    def close(self, end: float) -> list[dict[str, Any]]:
        if self.segments:
            self.segments[-1]["to_s"] = round(end, 3)
        return self.segments


class Mix:
    """The audio of every track summed, encoded in whole Opus frames as the video advances."""

    def __init__(self, sources: list[AudioSource], stream: Any, total_samples: int) -> None:
        self.sources = sources
        self.stream = stream
        self.total = total_samples
        self.position = 0

    def until(self, t: float, out: Any, *, last: bool = False) -> None:
        upto = min(self.total, math.ceil(t * SAMPLE_RATE / AUDIO_FRAME) * AUDIO_FRAME)
        while self.position + AUDIO_FRAME <= upto or (last and self.position < upto):
            mixed = np.zeros(AUDIO_FRAME, dtype=np.float32)
            for source in self.sources:
                source.mix_into(mixed, self.position)
            np.clip(mixed, -1.0, 1.0, out=mixed)
            frame = av.AudioFrame.from_ndarray(mixed.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, self.position, Fraction(1, SAMPLE_RATE)
            for packet in self.stream.encode(frame):
                out.mux(packet)
            self.position += AUDIO_FRAME


def compose(
    tracks: list[TrackInput],
    output: Path,
    *,
    width: int = 960,
    height: int = 540,
    fps: int = 15,
    progress: Callable[[float], None] | None = None,
) -> Result:
    """Compose `tracks` into `output` (written as `.part` and renamed when whole). Blocking, CPU-bound."""
    if not tracks:
        raise ComposeError("nothing to compose: no tracks")
    for track in tracks:
        if not track.path.is_file():
            raise ComposeError(f"{track.label()} is missing")
    duration = max(t.offset_s + t.duration_s for t in tracks)
    if duration <= 0:
        raise ComposeError("nothing to compose: every track is empty")
    names = {t.participant_id: t.name for t in tracks}
    order: dict[str, int] = {}
    for track in sorted(tracks, key=lambda x: (x.offset_s, x.id)):
        order.setdefault(track.participant_id, len(order))
    kinds = classify_sources(tracks)
    audio = analyse_audio(tracks, duration)  # pass one
    windows = max(1, math.ceil(duration / LEVEL_WINDOW_S))
    talk = speakers(audio.levels, windows)

    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(output.name + ".part")
    frames = max(1, math.ceil(duration * fps))
    canvas = Canvas(width, height)
    timeline = Timeline()
    videos = [VideoSource(t, kinds[t.id]) for t in sorted(tracks, key=lambda t: t.offset_s) if t.kind == "video"]
    last_report = 0.0
    try:
        with av.open(str(staging), "w", format="webm") as out:
            vstream = out.add_stream("libvpx", rate=fps)
            vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
            vstream.bit_rate = VIDEO_BITRATE
            vstream.codec_context.gop_size = fps * KEYFRAME_S
            vstream.codec_context.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
            astream = out.add_stream("libopus", rate=SAMPLE_RATE)
            astream.layout = "mono"
            astream.bit_rate = AUDIO_BITRATE
            mix = Mix([AudioSource(t) for t in tracks if t.kind == "audio"], astream, round(duration * SAMPLE_RATE))
            for k in range(frames):  # pass two
                t = k / fps
                shown: dict[TileKey, Any] = {}
                for video in videos:
                    frame = video.at(t)
                    if frame is not None:
                        shown[(video.track.participant_id, video.source)] = frame  # the latest started wins
                present = set(shown)
                present.update(
                    (pid, "camera") for pid, spans in audio.spans.items() if any(a <= t < b for a, b in spans)
                )
                big, others = choose_tiles(present, talk[min(windows - 1, int(t / LEVEL_WINDOW_S))], order)
                rects = layout(width, height, big, others)
                timeline.note(t, big, rects)
                canvas.fill(Rect(0, 0, width, height), BACKGROUND)
                for tile, rect in rects.items():
                    frame = shown.get(tile)
                    if frame is None:
                        canvas.fill(rect, EMPTY_TILE)
                    else:
                        canvas.blit_frame(frame, rect)
                    canvas.label(names[tile[0]] + (" (screen)" if tile[1] == "screen" else ""), rect)
                vframe = canvas.frame()
                vframe.pts, vframe.time_base = k, Fraction(1, fps)
                for packet in vstream.encode(vframe):
                    out.mux(packet)
                mix.until((k + 1) / fps, out, last=k == frames - 1)
                now = time.monotonic()
                if progress is not None and now - last_report >= 0.5:
                    last_report = now
                    progress(k / frames)
            for stream in (vstream, astream):
                for packet in stream.encode(None):
                    out.mux(packet)
        os.replace(staging, output)
    except av.FFmpegError as exc:
        raise ComposeError(f"could not write the composed video: {exc}") from exc
    finally:
        for video in videos:
            video.close()
        if staging.exists():
            staging.unlink()
    facts = file_facts(output)
    return Result(facts.size, facts.sha256, facts.duration_s, width, height, layout=timeline.close(frames / fps))


FLOOR_UNDER_CHANNEL = 0.25  # the floor's level under an interpreter, as listeners hear it by default (about 20 %)


def dub(
    picture: Path, floor: list[TrackInput], channel: list[TrackInput], output: Path, *, floor_gain: float
) -> Result:
    """One interpretation channel's version of a composed video: the same picture, copied packet for packet (no
    second encode), with the channel's voice at full level over the floor's audio at `floor_gain`. Cheap: only
    the audio is decoded and encoded again."""
    sources = [t for t in floor + channel if t.kind == "audio"]
    for track in sources:
        if not track.path.is_file():
            raise ComposeError(f"{track.label()} is missing")
    staging = output.with_name(output.name + ".part")
    try:
        with av.open(str(picture)) as src, av.open(str(staging), "w", format="webm") as out:
            vin = src.streams.video[0]
            duration = float(src.duration) / av.time_base if src.duration else 0.0
            if duration <= 0:
                duration = max((t.offset_s + t.duration_s for t in floor), default=0.0)
            vout = out.add_stream_from_template(vin)
            astream = out.add_stream("libopus", rate=SAMPLE_RATE)
            astream.layout = "mono"
            astream.bit_rate = AUDIO_BITRATE
            audio = []
            for track in sources:
                source = AudioSource(track)
                if track in floor:
                    source.gain = floor_gain
                audio.append(source)
            mix = Mix(audio, astream, round(duration * SAMPLE_RATE))
            for packet in src.demux(vin):
                if packet.dts is None:
                    continue  # the demuxer's flush packet
                at = float(packet.pts * vin.time_base) if packet.pts is not None and vin.time_base else 0.0
                packet.stream = vout
                out.mux(packet)
                mix.until(at, out)
            mix.until(duration, out, last=True)
            for packet in astream.encode(None):
                out.mux(packet)
            width, height = vin.codec_context.width, vin.codec_context.height
        os.replace(staging, output)
    except av.FFmpegError as exc:
        raise ComposeError(f"could not write the {output.name} version: {exc}") from exc
    finally:
        if staging.exists():
            staging.unlink()
    facts = file_facts(output)
    return Result(facts.size, facts.sha256, facts.duration_s, width, height)


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _reporter(parent: int) -> Callable[[float], None]:
    """Progress to stdout; a composer whose server died (it was re-parented) stops instead of composing for no one."""

    def report(fraction: float) -> None:
        if os.getppid() != parent:
            raise ComposeError("the server went away")
        _emit({"progress": round(fraction, 4)})

    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recordings.compose", description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", required=True, help="the job as JSON: a file, or - for stdin")
    parser.add_argument("--nice", type=int, default=0, help="lower this process's priority by this much first")
    args = parser.parse_args(argv)
    if args.nice > 0:
        os.nice(args.nice)
    try:
        raw = sys.stdin.read() if args.manifest == "-" else Path(args.manifest).read_text(encoding="utf-8")
        job = json.loads(raw)
        tracks = [TrackInput.from_json(t) for t in job["tracks"]]
        result = compose(
            tracks,
            Path(job["output"]),
            width=int(job.get("width", 960)),
            height=int(job.get("height", 540)),
            fps=int(job.get("fps", 15)),
            progress=_reporter(os.getppid()),
        )
        variants = []
        for variant in job.get("variants", []):  # one per interpretation channel (docs/interpretation.md)
            channel = [TrackInput.from_json(t) for t in variant["tracks"]]
            made = dub(
                Path(job["output"]),
                tracks,
                channel,
                Path(variant["output"]),
                floor_gain=float(job.get("floor_gain", FLOOR_UNDER_CHANNEL)),
            )
            variants.append({"language": str(variant["language"]), **made.as_json()})
    except ComposeError as exc:
        _emit({"error": str(exc)})
        return 1
    except (ValueError, KeyError, TypeError) as exc:
        _emit({"error": f"the composition job is not valid: {type(exc).__name__}: {exc}"})
        return 1
    except OSError as exc:
        _emit({"error": f"could not read or write a file: {exc.strerror or exc}"})
        return 1
    _emit({"done": {**result.as_json(), "variants": variants}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
