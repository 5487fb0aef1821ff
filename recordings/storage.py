"""Where recording files live, and the writer that puts media packets into them.

File keys are built only from UUIDs the server made (never from user input) and every path is
checked to stay inside the recordings directory. Each track is its own Matroska/WebM file written
by stream copy (no decoding): such a file stays readable when the process dies mid-write.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import shutil
import threading
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from signaling.errors import NotFound

log = logging.getLogger(__name__)

CLOCK_RATE = {"audio": 48_000, "video": 90_000}


@dataclass(frozen=True)
class FileFacts:
    size: int
    sha256: str
    duration_s: float


class Storage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @staticmethod
    def key_for(recording_id: uuid.UUID, track_id: uuid.UUID) -> str:
        return f"{recording_id}/{track_id}.webm"

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise NotFound("file not found")
        return path

    def delete_recording(self, recording_id: uuid.UUID) -> None:
        shutil.rmtree(self.path(str(recording_id)), ignore_errors=True)

    def keys_on_disk(self) -> set[str]:
        if not self.root.exists():
            return set()
        return {str(p.relative_to(self.root)) for p in self.root.glob("*/*.webm")}


def file_facts(path: Path) -> FileFacts:
    """Size, sha256 (of the file exactly as served) and duration read from the container. Blocking."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return FileFacts(size=size, sha256=digest.hexdigest(), duration_s=probe_duration(path))


def probe_duration(path: Path) -> float:
    """The span of packet timestamps, read by demuxing (no decoding); 0 for an empty or unreadable file."""
    try:
        with av.open(str(path)) as container:
            first = last = None
            for packet in container.demux():
                if packet.pts is None or packet.time_base is None:
                    continue
                t = float(packet.pts * packet.time_base) + float((packet.duration or 0) * packet.time_base)
                start = float(packet.pts * packet.time_base)
                first = start if first is None else min(first, start)
                last = t if last is None else max(last, t)
            return max(0.0, (last or 0.0) - (first or 0.0))
    except (av.FFmpegError, OSError):
        return 0.0


def vp8_is_keyframe(data: bytes) -> bool:
    return len(data) >= 10 and (data[0] & 1) == 0 and data[3:6] == b"\x9d\x01\x2a"


def vp8_size(data: bytes) -> tuple[int, int]:
    return int.from_bytes(data[6:8], "little") & 0x3FFF, int.from_bytes(data[8:10], "little") & 0x3FFF


class TrackWriter:
    """Muxes one track's encoded frames into a WebM file on its own thread, so the event loop never
    waits on the disk. The container header is written at the first video keyframe."""

    def __init__(self, path: Path, kind: str, codec: str) -> None:
        self.path = path
        self.kind = kind
        self.codec = codec
        self.packets = 0
        self.waiting_for_keyframe = kind == "video"
        self._queue: queue.Queue[tuple[bytes, int] | None] = queue.Queue(maxsize=2000)
        self._thread = threading.Thread(target=self._run, name=f"rec-{kind}-{path.stem[:8]}", daemon=True)
        self._failed: str | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def put(self, data: bytes, pts: int) -> bool:
        """Queue a frame; False when the writer cannot keep up (the frame is dropped)."""
        try:
            self._queue.put_nowait((data, pts))
            return True
        except queue.Full:
            return False

    def close(self) -> str | None:
        """Finish the file (blocking: call in a thread). Returns a failure reason, or None."""
        self._queue.put(None)
        self._thread.join(timeout=30)
        return self._failed

    def _run(self) -> None:
        container: Any = None
        stream: Any = None
        first_pts: int | None = None
        rate = CLOCK_RATE[self.kind]
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    break
                data, pts = item
                if container is None:
                    if self.kind == "video" and not vp8_is_keyframe(data):
                        continue
                    # Short clusters, flushed as written: a crash loses at most about a second.
                    container = av.open(
                        str(self.path),
                        "w",
                        format="webm",
                        options={"cluster_time_limit": "1000", "flush_packets": "1"},
                    )
                    if self.kind == "video":
                        stream = container.add_stream("libvpx", rate=30)
                        stream.width, stream.height = vp8_size(data)
                    else:
                        stream = container.add_stream("libopus", rate=48_000)
                    stream.time_base = Fraction(1, rate)
                    first_pts = pts
                    self.waiting_for_keyframe = False
                assert stream is not None and first_pts is not None
                packet = av.Packet(data)
                packet.pts = packet.dts = max(0, pts - first_pts)
                packet.time_base = Fraction(1, rate)
                packet.stream = stream
                if self.kind == "video" and vp8_is_keyframe(data):
                    packet.is_keyframe = True
                container.mux(packet)
                self.packets += 1
        except Exception as exc:  # the writer thread must never die silently
            log.exception("recording writer failed for %s", self.path)
            self._failed = f"writer failed: {exc}"
        finally:
            if container is not None:
                try:
                    container.close()
                except Exception as exc:
                    self._failed = self._failed or f"could not finish the file: {exc}"
