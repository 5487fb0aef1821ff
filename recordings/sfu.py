"""Recording in sfu rooms: Janus writes each consenting publisher's RTP into `.mjr` files, and at stop (or in
recovery after a crash) `janus-pp-rec` turns every file into the same per-track WebM a mesh recording has.

There is no recorder peer: Roundtable toggles Janus's per-publisher recording (`SfuBridge.record_feed`, with
the room's secret) from the consent ledger. Every start gets a new base name, so one publisher may leave
several segments (consent withdrawn and granted again, a republish, a Janus restart); each segment file
becomes one track with its own offset. File names carry everything recovery needs, so that a recording a
crashed process left behind can be finished from the directory alone:

    <rec_dir>/<recording id>.<participant id>.<source>.<segment>-<audio|video>-<mindex>.mjr
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from recordings.storage import Storage, file_facts
from recordings.store import RecordingStore

log = logging.getLogger(__name__)

SFU_RECORDER_PEER_ID = "sfu"  # recorder_peer_id in sfu rooms: Janus records, clients send nothing to anyone
CONVERT_TIMEOUT_S = 300.0
HEADER_TIMEOUT_S = 20.0
WEBM_CODECS = {"vp8": "vp8", "opus": "opus"}  # what a WebM file can hold, by Janus's codec name
MJR_NAME = re.compile(
    r"^(?P<rec>[0-9a-f-]{36})\.(?P<participant>[0-9a-f-]{36})\.(?P<source>camera|screen)\.(?P<segment>\d+)"
    r"-(?P<kind>audio|video)-(?P<mindex>\d+)\.mjr$"
)


@dataclass
class Segment:
    """One stretch of one feed recorded by Janus, from a start to whatever ended it."""

    participant_id: str
    feed_id: str
    base: str
    generation: int  # the bridge's connection to Janus when it started: another one means Janus went away
    stopped: bool = False  # stopped by us (consent withdrawn, recording stopped): the files are whole


@dataclass
class SfuSession:
    """The sfu side of one live recording: its segments and a lock per feed, so that consent changes and
    feeds coming up apply one at a time, each deciding when it runs (never on a stale decision)."""

    recording_id: uuid.UUID
    room_id: str
    segments: list[Segment] = field(default_factory=list)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def lock(self, feed_id: str) -> asyncio.Lock:
        return self.locks.setdefault(feed_id, asyncio.Lock())

    def new_base(self, participant_id: str, source: str) -> str:
        return f"{self.recording_id}.{participant_id}.{source}.{len(self.segments)}"

    def open_segment(self, feed_id: str) -> Segment | None:
        return next((s for s in reversed(self.segments) if s.feed_id == feed_id and not s.stopped), None)


@dataclass(frozen=True)
class MjrFile:
    path: Path
    participant_id: uuid.UUID
    kind: str
    base: str
    segment: int
    source: str = "camera"

    @property
    def track_id(self) -> uuid.UUID:
        """Stable per file, so that converting again after a crash never makes a second track."""
        return uuid.uuid5(uuid.NAMESPACE_URL, f"roundtable:recording-track:{self.path.name}")


def mjr_files(rec_dir: Path, recording_id: uuid.UUID) -> list[MjrFile]:
    """The recording's files in Janus's directory, oldest segment first. Blocking (a directory listing)."""
    found = []
    for path in rec_dir.glob(f"{recording_id}.*.mjr") if rec_dir.is_dir() else []:
        match = MJR_NAME.match(path.name)
        if match is None or match["rec"] != str(recording_id):
            continue
        base = path.name.split(f"-{match['kind']}-")[0]
        found.append(
            MjrFile(path, uuid.UUID(match["participant"]), match["kind"], base, int(match["segment"]), match["source"])
        )
    return sorted(found, key=lambda f: (f.segment, f.path.name))


def delete_mjr(rec_dir: Path, recording_id: uuid.UUID) -> None:
    for path in rec_dir.glob(f"{recording_id}.*") if rec_dir.is_dir() else []:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class ConversionError(Exception):
    pass


async def _run(args: list[str], timeout_s: float) -> bytes:
    """Run a program without blocking the loop; kill it when it takes longer than `timeout_s`."""
    process = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise ConversionError(f"{Path(args[0]).name} took longer than {timeout_s:.0f} s") from None
    except asyncio.CancelledError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise ConversionError(f"{Path(args[0]).name} failed ({process.returncode}): {tail[0][:200]}")
    return out


def pp_rec_path() -> str:
    path = shutil.which("janus-pp-rec")
    if path is None:
        raise ConversionError("janus-pp-rec is not installed (Debian: janus-tools)")
    return path


async def read_header(path: Path) -> dict[str, Any]:
    """The .mjr file's JSON header: `c` codec, `s` created and `u` first packet written (µs since the epoch)."""
    out = await _run([pp_rec_path(), "-j", str(path)], HEADER_TIMEOUT_S)
    try:
        header = json.loads(out.decode(errors="replace").strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise ConversionError("no JSON header (the file holds no packets)") from exc
    if not isinstance(header, dict):
        raise ConversionError("no JSON header")
    return header


async def to_webm(source: Path, target: Path, kind: str) -> float | None:
    """Convert one .mjr file into `target` (WebM), which appears only when whole; returns the seconds skipped
    at the start, or None when nothing decodable was recorded (no file then).

    janus-pp-rec 1.1 writes VP8 into WebM but Opus only into Ogg (or mka); both then go through a stream-copy
    remux, which also starts the video at its first keyframe: Janus starts recording wherever the switch fell
    (and asks for a keyframe), and a file that opens with an inter frame does not decode."""
    staging = target.with_name(target.name + ".part")
    raw = target.with_name(target.name + ".raw.part")
    try:
        fmt = "webm" if kind == "video" else "opus"
        await _run([pp_rec_path(), "-f", fmt, str(source), str(raw)], CONVERT_TIMEOUT_S)
        if not raw.exists():
            raise ConversionError("janus-pp-rec wrote no file")
        skipped = await asyncio.wait_for(asyncio.to_thread(remux_to_webm, raw, staging, kind), CONVERT_TIMEOUT_S)
        if skipped is not None:
            os.replace(staging, target)
        return skipped
    finally:
        for leftover in (staging, raw):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def remux_to_webm(source: Path, target: Path, kind: str) -> float | None:
    """Copy the stream's packets into a WebM file unchanged, video from its first keyframe on (timestamps then
    start there). Returns the seconds skipped, or None when there was nothing to copy. Blocking."""
    try:
        with av.open(str(source)) as inp:
            stream = (inp.streams.video if kind == "video" else inp.streams.audio)[0]
            first: int | None = None
            start: int | None = None
            with av.open(str(target), "w", format="webm") as out:
                copy = out.add_stream_from_template(stream)
                for packet in inp.demux(stream):
                    if packet.dts is None or packet.pts is None:  # the demuxer's flush packet
                        continue
                    first = packet.pts if first is None else first
                    if start is None and kind == "video" and not packet.is_keyframe:
                        continue
                    start = packet.pts if start is None else start
                    if kind == "video":
                        packet.pts -= start
                        packet.dts -= start
                    packet.stream = copy
                    out.mux(packet)
            if start is None or first is None:
                return None
            return float((start - first) * (stream.time_base or Fraction(1, 1000)))
    except (av.FFmpegError, IndexError) as exc:
        raise ConversionError(f"could not remux into WebM: {exc}") from exc


async def convert(
    files: list[MjrFile],
    *,
    recording_id: uuid.UUID,
    started_at: datetime,
    storage: Storage,
    store: RecordingStore,
    cut: set[str],
    crashed: bool,
) -> list[str]:
    """Turn each file into a WebM track (stored like a mesh track); returns the failures.

    `cut` holds the bases whose recording was interrupted (Janus went away): their tracks are `partial`;
    `crashed` marks every track partial (recovery after the server died). Files already converted are
    skipped, so that this can run again after a crash midway."""
    failures: list[str] = []
    done = {t["id"] for t in await store.tracks(recording_id) if t["state"] != "writing"}
    for mjr in files:
        if mjr.track_id in done:
            continue
        try:
            header = await read_header(mjr.path)
        except ConversionError as exc:
            # Janus opens the file at the start and writes the header with the first packet: no header,
            # nothing was recorded (consent withdrawn at once, a feed without media). No track.
            log.info("recording %s: %s skipped: %s", recording_id, mjr.path.name, exc)
            continue
        codec = WEBM_CODECS.get(str(header.get("c", "")).lower())
        if codec is None:
            failures.append(f"{mjr.path.name}: codec {header.get('c')!r} cannot go into WebM; the .mjr is kept")
            continue
        first_us = header.get("u") or header.get("s") or 0
        offset_s = max(0.0, float(first_us) / 1e6 - started_at.timestamp())
        key = storage.key_for(recording_id, mjr.track_id)
        target = storage.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            skipped = await to_webm(mjr.path, target, mjr.kind)
        except ConversionError as exc:
            failures.append(f"{mjr.path.name}: {exc}; the .mjr is kept")
            continue
        if skipped is None:
            log.info("recording %s: %s holds nothing decodable; no track", recording_id, mjr.path.name)
            continue
        offset_s += skipped
        facts = await asyncio.to_thread(file_facts, target)
        await store.add_track(
            recording_id,
            mjr.participant_id,
            track_id=mjr.track_id,
            kind=mjr.kind,
            codec=codec,
            file_key=key,
            offset_s=offset_s,
            source=mjr.source,
        )
        partial = crashed or mjr.base in cut
        await store.finish_track(
            mjr.track_id,
            state="partial" if partial else "complete",
            size=facts.size,
            duration_s=facts.duration_s,
            sha256=facts.sha256,
        )
    return failures
