"""Where recording files live, and the writer that puts media packets into them.

File keys are built only from UUIDs the server made (never from user input) and every path is
checked to stay inside the recordings directory. Each track is its own Matroska/WebM file written
by stream copy (no decoding): such a file stays readable when the process dies mid-write.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import shutil
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from signaling.errors import NotFound, Unavailable

log = logging.getLogger(__name__)

CLOCK_RATE = {"audio": 48_000, "video": 90_000}
# A writer gets this long to finish its file; a thread stuck longer (a dead disk) is abandoned.
CLOSE_TIMEOUT_S = 5.0
CLOSE_POLL_S = 0.25


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

    def free_bytes(self) -> int:
        """Free space for recordings (of the filesystem the directory is on, or will be on)."""
        folder = self.root
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        return shutil.disk_usage(folder).free

    def check_free(self, min_free_bytes: int) -> None:
        """Refuse a new recording on a disk that is almost full: better no recording than a silent one."""
        if min_free_bytes <= 0:
            return
        free = self.free_bytes()
        if free < min_free_bytes:
            raise Unavailable(
                f"not enough free disk space to record: {_mib(free)} free in the recordings directory, "
                f"at least {_mib(min_free_bytes)} needed (ROUNDTABLE_RECORDING_MIN_FREE_BYTES)",
                details={"free_bytes": free, "min_free_bytes": min_free_bytes},
            )

    def keys_on_disk(self) -> set[str]:
        if not self.root.exists():
            return set()
        return {str(p.relative_to(self.root)) for p in self.root.glob("*/*.webm")}


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


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
    waits on the disk. The container header is written at the first video keyframe.

    A write that fails (full disk, I/O error) ends the thread at once and calls `on_failure` with the
    reason (from the writer thread: the caller hops back to its loop). After that `put` refuses frames,
    and `close` never waits longer than its bound, even on a thread stuck in a system call."""

    def __init__(
        self,
        path: Path,
        kind: str,
        codec: str,
        *,
        on_failure: Callable[[str], None] | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        self.path = path
        self.kind = kind
        self.codec = codec
        self.packets = 0
        self.bytes = 0
        self.waiting_for_keyframe = kind == "video"
        self._queue: queue.Queue[tuple[bytes, int] | None] = queue.Queue(maxsize=2000)
        self._thread = threading.Thread(target=self._run, name=f"rec-{kind}-{path.stem[:8]}", daemon=True)
        self._failed: str | None = None
        self._closing = threading.Event()
        self._on_failure = on_failure
        self._on_bytes = on_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    @property
    def failure(self) -> str | None:
        return self._failed

    def put(self, data: bytes, pts: int) -> bool:
        """Queue a frame; False when the writer cannot keep up or has failed (the frame is dropped)."""
        if self._failed is not None or self._closing.is_set():
            return False
        try:
            self._queue.put_nowait((data, pts))
            return True
        except queue.Full:
            return False

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> str | None:
        """Finish the file (blocking for at most `timeout_s`: call it in a thread). Returns a failure
        reason, or None. Never blocks on a full queue: the thread also polls the closing flag."""
        self._closing.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(timeout=timeout_s)
        if self._thread.is_alive():
            # Stuck in the kernel (a dead disk): abandon the daemon thread, say so, and go on.
            self._fail(f"the writer did not finish within {timeout_s:g} s")
        return self._failed

    def _fail(self, reason: str) -> None:
        if self._failed is not None:
            return
        self._failed = reason
        if self._on_failure is not None:
            try:
                self._on_failure(reason)
            except Exception:  # the loop may be gone at shutdown; the reason is still returned by close()
                log.exception("could not report a failed recording writer")

    def _next(self) -> tuple[bytes, int] | None:
        while True:
            try:
                return self._queue.get(timeout=CLOSE_POLL_S)
            except queue.Empty:
                if self._closing.is_set():
                    return None

    def _run(self) -> None:
        container: Any = None
        stream: Any = None
        first_pts: int | None = None
        rate = CLOCK_RATE[self.kind]
        try:
            while True:
                item = self._next()
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
                self.bytes += len(data)
                if self._on_bytes is not None:
                    self._on_bytes(len(data))
        except Exception as exc:  # the writer thread must never die silently
            log.error("recording writer failed for %s: %s", self.path, exc)
            self._fail(f"{self.kind} track: cannot write ({_reason(exc)})")
        finally:
            if container is not None:
                try:
                    container.close()
                except Exception as exc:
                    self._fail(f"{self.kind} track: could not finish the file ({_reason(exc)})")


def _reason(exc: Exception) -> str:
    """The OS's words for it (`No space left on device`), without the path."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
