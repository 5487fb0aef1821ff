"""The recorder: an aiortc peer that joins a room as a hidden member and writes what it receives.

It is just another client of the room (as Galène's disk writer is): consenting participants send it
offers through the ordinary relay, it answers, and each received track is written by stream copy
into its own WebM file. aiortc has no public encoded-frame API, so a private hook hands the
receiver a decoder that returns the reassembled frame untouched (see `install_stream_copy_hook`;
a test pins it to the installed aiortc version).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiortc
import av
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
    rtcrtpreceiver,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp

from recordings.storage import Storage, TrackWriter, file_facts
from recordings.store import RecordingStore
from signaling.protocol import IceServer

log = logging.getLogger(__name__)

STREAM_COPY_MARK = "roundtable_stream_copy"
KEYFRAME_WAIT_S = 1.0
# `stop` always returns within this: what is not finished by then is marked partial and left behind.
STOP_TIMEOUT_S = 10.0
SUPPORTED_AIORTC = "1.16."


class PassthroughDecoder:
    """Returns each reassembled encoded frame as an av.Packet (pts = RTP timestamp) instead of decoding it."""

    def decode(self, encoded_frame: Any) -> list[Any]:
        packet = av.Packet(bytes(encoded_frame.data))
        packet.pts = encoded_frame.timestamp
        return [packet]


def install_stream_copy_hook() -> None:
    """Wrap aiortc's decoder factory once: receivers whose track queue carries our mark get the
    passthrough decoder; every other receiver in the process (test peers, say) still decodes."""
    if not aiortc.__version__.startswith(SUPPORTED_AIORTC):
        raise RuntimeError(f"the stream-copy hook supports aiortc {SUPPORTED_AIORTC}*, not {aiortc.__version__}")
    current = getattr(rtcrtpreceiver, "get_decoder")  # noqa: B009  (not re-exported: private hook)
    if getattr(current, STREAM_COPY_MARK, False):
        return

    def get_decoder(codec: Any) -> Any:
        # decoder_worker(loop, input_q, output_q, decode_error) runs on its own thread; output_q is
        # the RemoteStreamTrack's queue, which `mark_for_stream_copy` tagged.
        args: tuple[Any, ...] = tuple(getattr(threading.current_thread(), "_args", ()))
        if len(args) >= 3 and getattr(args[2], STREAM_COPY_MARK, False):
            return PassthroughDecoder()
        return current(codec)

    setattr(get_decoder, STREAM_COPY_MARK, True)
    setattr(rtcrtpreceiver, "get_decoder", get_decoder)  # noqa: B010


async def request_keyframe(receiver: Any) -> None:
    """Send a PLI (RFC 4585) for every source the receiver has seen (aiortc has no public API for it)."""
    if receiver is None:
        return
    for source in receiver.getSynchronizationSources():
        with contextlib.suppress(Exception):
            await receiver._send_rtcp_pli(source.source)


def restrict_host_addresses(addresses: list[str]) -> None:
    """Gather the recorder's host candidates only on these addresses (aioice has no option for it, and
    leaves 127.0.0.1 out on its own). Process-wide: the recorder is the server's only WebRTC peer."""
    import aioice.ice

    chosen = list(addresses)
    setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: chosen)  # noqa: B010


def mark_for_stream_copy(track: Any) -> None:
    setattr(track._queue, STREAM_COPY_MARK, True)


@dataclass
class TrackState:
    id: uuid.UUID
    participant_id: str
    kind: str
    key: str
    writer: TrackWriter | None = None
    closing: bool = False  # from here on _finish_track writes the track's final row
    finished: bool = False
    report: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class TrackProblem:
    """A track that cannot be written: reported at once, while the recording goes on."""

    recording_id: uuid.UUID
    track_id: uuid.UUID
    participant_id: str
    kind: str
    reason: str


Relay = Callable[[str, dict[str, Any]], None]
ProblemReport = Callable[[TrackProblem], None]


class Recorder:
    """One recording of one room. Implements `signaling.rooms.Outbox` for its hidden member."""

    def __init__(
        self,
        *,
        recording_id: uuid.UUID,
        peer_id: str,
        started_at: datetime,
        ice_servers: list[IceServer],
        storage: Storage,
        store: RecordingStore,
        relay: Relay,
        on_problem: ProblemReport | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        self.recording_id = recording_id
        self.peer_id = peer_id
        self.started_at = started_at
        self.config = RTCConfiguration(
            iceServers=[RTCIceServer(urls=s.urls, username=s.username, credential=s.credential) for s in ice_servers]
        )
        self.storage = storage
        self.store = store
        self.relay = relay
        self.pcs: dict[str, RTCPeerConnection] = {}
        self.tracks: dict[uuid.UUID, TrackState] = {}
        self._inbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self.failures: list[str] = []
        self.on_problem = on_problem
        self.on_bytes = on_bytes

    # Outbox --------------------------------------------------------------------------------------
    def send(self, text: str) -> bool:
        self._inbox.put_nowait(text)
        return True

    def close(self, code: int, reason: str) -> None:
        self._inbox.put_nowait(None)

    # Lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        install_stream_copy_hook()
        self._runner = asyncio.create_task(self._run(), name=f"recorder-{self.recording_id}")

    async def _run(self) -> None:
        while True:
            text = await self._inbox.get()
            if text is None:
                return
            try:
                await self._handle(json.loads(text))
            except Exception:
                log.exception("recorder %s: could not handle a message", self.recording_id)

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        sender = str(message.get("from") or message.get("peer_id") or "")
        if kind == "offer":
            await self._on_offer(sender, message["sdp"])
        elif kind == "candidate":
            pc = self.pcs.get(sender)
            candidate = message["candidate"]
            if pc is not None and candidate.get("candidate"):
                ice = candidate_from_sdp(candidate["candidate"].removeprefix("candidate:"))
                ice.sdpMid = candidate.get("sdpMid")
                ice.sdpMLineIndex = candidate.get("sdpMLineIndex")
                with contextlib.suppress(Exception):  # a late or duplicate candidate is harmless
                    await pc.addIceCandidate(ice)
        elif kind == "peer_left":
            await self.stop_participant(sender)

    async def _on_offer(self, participant_id: str, sdp: str) -> None:
        # A new offer is a new session of that participant (a reload, a resume): start over.
        await self.stop_participant(participant_id)
        pc = RTCPeerConnection(self.config)
        self.pcs[participant_id] = pc

        @pc.on("track")
        def on_track(track: Any) -> None:
            mark_for_stream_copy(track)
            receiver = next((t.receiver for t in pc.getTransceivers() if t.receiver.track is track), None)
            self._spawn_track(participant_id, track, receiver)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed") and self.pcs.get(participant_id) is pc:
                await self.stop_participant(participant_id)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        for transceiver in pc.getTransceivers():
            # Only what we can write by stream copy into WebM: VP8 and Opus.
            wanted = {"video": ("video/VP8", "video/rtx"), "audio": ("audio/opus",)}[transceiver.kind]
            capabilities = RTCRtpReceiver.getCapabilities(transceiver.kind)
            codecs = [c for c in (capabilities.codecs if capabilities else []) if c.mimeType in wanted]
            transceiver.setCodecPreferences(codecs)
            transceiver.direction = "recvonly"
        await pc.setLocalDescription(await pc.createAnswer())
        self.relay(participant_id, {"type": "answer", "to": participant_id, "sdp": pc.localDescription.sdp})

    def _spawn_track(self, participant_id: str, track: Any, receiver: Any) -> None:
        task = asyncio.create_task(self._consume(participant_id, track, receiver), name=f"rec-track-{participant_id}")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _consume(self, participant_id: str, track: Any, receiver: Any) -> None:
        kind = track.kind
        codec = "vp8" if kind == "video" else "opus"
        track_id = uuid.uuid4()
        key = self.storage.key_for(self.recording_id, track_id)
        offset = (datetime.now(UTC) - self.started_at).total_seconds()
        await self.store.add_track(
            self.recording_id,
            uuid.UUID(participant_id),
            track_id=track_id,
            kind=kind,
            codec=codec,
            file_key=key,
            offset_s=offset,
        )
        state = TrackState(id=track_id, participant_id=participant_id, kind=kind, key=key)
        self.tracks[track_id] = state
        loop = asyncio.get_running_loop()

        def failed(reason: str) -> None:  # on the writer thread
            loop.call_soon_threadsafe(self._writer_failed, state, reason)

        writer = TrackWriter(self.storage.path(key), kind, codec, on_failure=failed, on_bytes=self.on_bytes)
        state.writer = writer
        dropped = 0
        next_pli = loop.time() + KEYFRAME_WAIT_S
        try:
            while True:
                packet = await track.recv()  # drained even after a failure: aiortc's queue is unbounded
                if writer.failure is not None:
                    continue
                if not writer.put(bytes(packet), int(packet.pts or 0)):
                    dropped += 1
                if writer.waiting_for_keyframe and loop.time() >= next_pli:
                    # The file starts at a keyframe; if none came (a lost one), ask the sender for one.
                    next_pli = loop.time() + KEYFRAME_WAIT_S
                    await request_keyframe(receiver)
        except MediaStreamError:
            pass
        finally:
            if dropped and writer.failure is None:
                log.warning("recorder %s dropped %d frames of %s", self.recording_id, dropped, participant_id)
            await self._finish_track(state)

    def _note_failure(self, reason: str) -> None:
        if reason not in self.failures:
            self.failures.append(reason)

    def _writer_failed(self, state: TrackState, reason: str) -> None:
        """A writer could not write: mark the track and the recording partial now, not at stop."""
        self._note_failure(reason)
        log.error("recording %s: %s (participant %s)", self.recording_id, reason, state.participant_id)
        task = asyncio.create_task(self._report(state, reason), name=f"rec-problem-{state.id}")
        state.report = task
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _report(self, state: TrackState, reason: str) -> None:
        try:
            if not state.closing:
                await self.store.finish_track(state.id, state="partial", size=None, duration_s=None, sha256=None)
            await self.store.mark_partial(self.recording_id, "; ".join(self.failures))
        except Exception:
            log.exception("recording %s: could not record a writer failure", self.recording_id)
        if self.on_problem is not None:
            self.on_problem(TrackProblem(self.recording_id, state.id, state.participant_id, state.kind, reason))

    async def _finish_track(self, state: TrackState) -> None:
        assert state.writer is not None
        state.closing = True
        failure = await asyncio.to_thread(state.writer.close)  # bounded: see TrackWriter.close
        if failure:
            self._note_failure(failure)
        await self._write_track_facts(state, partial=bool(failure))

    async def _write_track_facts(self, state: TrackState, *, partial: bool) -> None:
        if state.report is not None and state.report is not asyncio.current_task():
            # Its early `partial` row must not land after the final one.
            await asyncio.gather(state.report, return_exceptions=True)
        path = self.storage.path(state.key)
        if path.exists():
            facts = await asyncio.to_thread(file_facts, path)
            await self.store.finish_track(
                state.id,
                state="partial" if partial else "complete",
                size=facts.size,
                duration_s=facts.duration_s,
                sha256=facts.sha256,
            )
        else:  # no keyframe ever arrived, or the disk refused the header: nothing was written
            await self.store.finish_track(state.id, state="partial", size=0, duration_s=0.0, sha256=None)
        state.finished = True

    async def stop_participant(self, participant_id: str) -> None:
        """Stop recording one participant (consent withdrawn, left the room): their tracks end now."""
        pc = self.pcs.pop(participant_id, None)
        if pc is not None:
            await pc.close()  # ends the remote tracks: their consumers finish the files
        tasks = [t for t in self._pending if t.get_name() == f"rec-track-{participant_id}"]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop everything and finish every file, within `timeout_s` whatever the disk does."""
        try:
            async with asyncio.timeout(timeout_s):
                for participant_id in list(self.pcs):
                    await self.stop_participant(participant_id)
                # A track that fails while finishing spawns its report meanwhile: wait for those too.
                while self._pending:
                    await asyncio.gather(*list(self._pending), return_exceptions=True)
        except TimeoutError:
            self._note_failure(f"the recorder did not finish within {timeout_s:g} s")
            log.error("recording %s: stop took over %g s; leaving the rest behind", self.recording_id, timeout_s)
            await self._abandon()
        self._inbox.put_nowait(None)
        if self._runner is not None:
            try:
                async with asyncio.timeout(1.0):
                    await asyncio.shield(self._runner)
            except TimeoutError:
                self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    async def _abandon(self) -> None:
        """After a timed-out stop: cancel what is left and mark unfinished tracks partial."""
        pending = list(self._pending)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        pcs, self.pcs = list(self.pcs.values()), {}
        for pc in pcs:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await pc.close()
        for state in self.tracks.values():
            if not state.finished:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2.0):
                        await self._write_track_facts(state, partial=True)
