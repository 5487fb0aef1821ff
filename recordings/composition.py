"""Composed video, the server's side: the job table and the supervisor that runs composer subprocesses.

A recording that becomes ready is queued in the transaction of that transition (`RecordingStore.transition`).
The supervisor, one owned task of the server, claims queued jobs (`FOR UPDATE SKIP LOCKED`) and runs each in its own
subprocess (`python -m recordings.compose`, niced, with a time limit), at most `workers` at a time: never in the
event loop. The subprocess gets a manifest on stdin (the tracks, their offsets and names, the output path) and
reports progress as JSON lines on stdout; the supervisor writes progress and a heartbeat to PostgreSQL. The
composer writes a temporary file and renames it at the end, so a run can always start again from scratch:

- the subprocess killed by a signal (not by us): queued again, until `max_attempts` runs were started;
- the server gone: its jobs stay `running` with a heartbeat that lapses; any server queues them again;
- an error (the composer's own, a non-zero exit, the time limit, too many attempts): `failed` with the reason.

The outcome (ready or failed) is written with its audit entry (`recording.composed`, by the server) in one
transaction. The per-track files are never touched: they stay downloadable whatever happens here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from recordings.storage import Storage
from signaling.audit import SYSTEM, Change
from signaling.audit_store import AuditLog
from signaling.errors import Conflict

log = logging.getLogger(__name__)

COMPOSED_KEY = "{recording_id}/composed.{format}"
# The version of one interpretation channel (docs/interpretation.md).
CHANNEL_KEY = "{recording_id}/composed.{language}.{format}"
STDERR_TAIL = 20
# The last line carries the layout timeline: a segment per change of layout, a few thousand in a long session.
STDOUT_LINE_LIMIT = 64 << 20

COMPOSITION = """
SELECT recording_id, state, progress, error, attempts, worker_pid, heartbeat_at, queued_at, started_at, finished_at,
       layout
FROM recording_compositions WHERE recording_id = $1
"""
STATE_COUNTS = "SELECT state, count(*) AS n FROM recording_compositions GROUP BY state"
COMPOSED_FILES = """
SELECT id, recording_id, format, codec, file_key, bytes, sha256, duration_s, width, height, created_at,
       nullif(language, '') AS language
FROM recording_composed_files WHERE recording_id = $1 AND file_key IS NOT NULL ORDER BY format, language
"""
COMPOSED_FILE = """
SELECT id, recording_id, format, codec, file_key, bytes, sha256, duration_s, width, height, created_at,
       nullif(language, '') AS language
FROM recording_composed_files WHERE recording_id = $1 AND format = $2 AND language = $3 AND file_key IS NOT NULL
"""
RECORDING_FOR_UPDATE = "SELECT id, workshop_id, state FROM recordings WHERE id = $1 FOR UPDATE"
HAS_TRACK_FILES = "SELECT EXISTS (SELECT 1 FROM recording_tracks WHERE recording_id = $1 AND file_key IS NOT NULL)"
REQUEUE = """
INSERT INTO recording_compositions (recording_id) VALUES ($1)
ON CONFLICT (recording_id) DO UPDATE SET state = 'queued', progress = 0, error = NULL, attempts = 0,
    worker_pid = NULL, heartbeat_at = NULL, queued_at = clock_timestamp(), started_at = NULL, finished_at = NULL
WHERE recording_compositions.state <> 'running'
RETURNING state
"""
CLAIM = """
UPDATE recording_compositions c SET state = 'running', attempts = attempts + 1, progress = 0, error = NULL,
    worker_pid = NULL, heartbeat_at = clock_timestamp(), started_at = clock_timestamp()
WHERE recording_id = (
    SELECT q.recording_id FROM recording_compositions q JOIN recordings r ON r.id = q.recording_id
    WHERE q.state = 'queued' AND r.state = 'ready'
    ORDER BY q.queued_at LIMIT 1 FOR UPDATE OF q SKIP LOCKED
)
RETURNING recording_id, attempts
"""
SET_PID = "UPDATE recording_compositions SET worker_pid = $2 WHERE recording_id = $1 AND state = 'running'"
BEAT = """
UPDATE recording_compositions SET heartbeat_at = clock_timestamp(), progress = $2
WHERE recording_id = $1 AND state = 'running'
"""
# Back in the queue: the run did not fail on its own (killed, the server stopping). `uncount` gives the attempt back.
REQUEUE_RUN = """
UPDATE recording_compositions SET state = 'queued', progress = 0, worker_pid = NULL, heartbeat_at = NULL,
    attempts = attempts - CASE WHEN $2 THEN 1 ELSE 0 END
WHERE recording_id = $1 AND state = 'running'
"""
LAPSED = """
SELECT c.recording_id, c.attempts, r.workshop_id
FROM recording_compositions c JOIN recordings r ON r.id = c.recording_id
WHERE c.state = 'running' AND (c.heartbeat_at IS NULL OR c.heartbeat_at < clock_timestamp() - make_interval(secs => $1))
FOR UPDATE OF c SKIP LOCKED
"""
FAIL = """
UPDATE recording_compositions SET state = 'failed', error = $2, worker_pid = NULL, finished_at = clock_timestamp()
WHERE recording_id = $1 AND state = 'running'
RETURNING attempts
"""
READY = """
UPDATE recording_compositions SET state = 'ready', progress = 1, error = NULL, worker_pid = NULL,
    finished_at = clock_timestamp(), layout = $2::jsonb
WHERE recording_id = $1 AND state = 'running'
RETURNING attempts
"""
UPSERT_FILE = """
INSERT INTO recording_composed_files
    (recording_id, format, codec, file_key, bytes, sha256, duration_s, width, height, language)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (recording_id, format, language) DO UPDATE SET id = gen_random_uuid(), codec = EXCLUDED.codec,
    file_key = EXCLUDED.file_key, bytes = EXCLUDED.bytes, sha256 = EXCLUDED.sha256, duration_s = EXCLUDED.duration_s,
    width = EXCLUDED.width, height = EXCLUDED.height, created_at = now()
"""
MANIFEST_TRACKS = """
SELECT t.id, t.participant_id, t.kind, t.codec, t.file_key, t.offset_s, t.duration_s, t.source, p.display_name
FROM recording_tracks t JOIN participants p ON p.id = t.participant_id
WHERE t.recording_id = $1 AND t.file_key IS NOT NULL AND t.state IN ('complete', 'partial')
  AND coalesce(t.bytes, 0) > 0  -- a track that never got its first keyframe has no file
  AND t.language IS NULL  -- the floor; each interpretation channel gets a version of its own (CHANNEL_TRACKS)
ORDER BY t.offset_s, t.id
"""
CHANNEL_TRACKS = """
SELECT t.id, t.participant_id, t.kind, t.codec, t.file_key, t.offset_s, t.duration_s, t.source, p.display_name,
       t.language
FROM recording_tracks t JOIN participants p ON p.id = t.participant_id
WHERE t.recording_id = $1 AND t.file_key IS NOT NULL AND t.state IN ('complete', 'partial')
  AND coalesce(t.bytes, 0) > 0 AND t.kind = 'audio' AND t.language IS NOT NULL
ORDER BY t.language, t.offset_s, t.id
"""


class CompositionStore:
    """The job table and the composed files. Outcomes and re-queues carry their audit entries."""

    def __init__(self, pool: asyncpg.Pool, *, audit: AuditLog | None = None) -> None:
        self.pool = pool
        self.audit = audit if audit is not None else AuditLog()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    async def get(self, recording_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.pool.fetchrow(COMPOSITION, recording_id)

    async def state_counts(self) -> dict[str, int]:
        """How many jobs are in each state (for /metrics)."""
        return {r["state"]: r["n"] for r in await self.pool.fetch(STATE_COUNTS)}

    async def files(self, recording_id: uuid.UUID) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(COMPOSED_FILES, recording_id))

    async def file(self, recording_id: uuid.UUID, fmt: str, language: str | None = None) -> asyncpg.Record | None:
        """The composed file of a format: the floor's, or one interpretation channel's version."""
        return await self.pool.fetchrow(COMPOSED_FILE, recording_id, fmt, language or "")

    async def requeue(self, recording_id: uuid.UUID, *, change: Change) -> None:
        """Compose again from scratch (after `failed`, or to remake a ready one); refused while one runs."""
        async with self._tx() as conn:
            row = await conn.fetchrow(RECORDING_FOR_UPDATE, recording_id)
            if row is None or row["state"] != "ready":
                raise Conflict(f"the recording is {row['state'] if row else 'gone'}; only a ready one is composed")
            if not await conn.fetchval(HAS_TRACK_FILES, recording_id):
                raise Conflict("nothing to compose: no participant was recorded")
            if await conn.fetchval(REQUEUE, recording_id) is None:
                raise Conflict("the composition is running")
            await self.audit.write(conn, change)

    async def claim(self) -> asyncpg.Record | None:
        return await self.pool.fetchrow(CLAIM)

    async def set_pid(self, recording_id: uuid.UUID, pid: int) -> None:
        await self.pool.execute(SET_PID, recording_id, pid)

    async def beat(self, recording_id: uuid.UUID, progress: float) -> None:
        await self.pool.execute(BEAT, recording_id, min(1.0, max(0.0, progress)))

    async def requeue_run(self, recording_id: uuid.UUID, *, uncount: bool) -> None:
        await self.pool.execute(REQUEUE_RUN, recording_id, uncount)

    async def requeue_lapsed(self, lapse_s: float, max_attempts: int) -> list[uuid.UUID]:
        """Jobs `running` without a heartbeat for `lapse_s`: their server or worker died. Queued again, or `failed`
        once `max_attempts` runs were started."""
        moved = []
        async with self._tx() as conn:
            for row in await conn.fetch(LAPSED, lapse_s):
                if row["attempts"] >= max_attempts:
                    await self._fail(
                        conn,
                        row["recording_id"],
                        row["workshop_id"],
                        f"gave up after {row['attempts']} attempts (the composer stopped each time)",
                    )
                else:
                    await conn.execute(REQUEUE_RUN, row["recording_id"], False)
                moved.append(row["recording_id"])
        return moved

    async def manifest_tracks(self, recording_id: uuid.UUID) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(MANIFEST_TRACKS, recording_id))

    async def channel_tracks(self, recording_id: uuid.UUID) -> dict[str, list[asyncpg.Record]]:
        """The interpreters' audio tracks by channel: each channel gets its own version of the composed video."""
        channels: dict[str, list[asyncpg.Record]] = {}
        for row in await self.pool.fetch(CHANNEL_TRACKS, recording_id):
            channels.setdefault(row["language"], []).append(row)
        return channels

    async def fail(self, recording_id: uuid.UUID, reason: str) -> None:
        async with self._tx() as conn:
            row = await conn.fetchrow(RECORDING_FOR_UPDATE, recording_id)
            if row is not None:
                await self._fail(conn, recording_id, row["workshop_id"], reason)

    async def _fail(
        self, conn: asyncpg.Connection, recording_id: uuid.UUID, workshop_id: uuid.UUID, reason: str
    ) -> None:
        attempts = await conn.fetchval(FAIL, recording_id, reason[:2000])
        if attempts is not None:
            await self.audit.write(conn, _outcome(workshop_id, recording_id, "failed", attempts, {"error": reason}))

    async def ready(
        self,
        recording_id: uuid.UUID,
        facts: Mapping[str, Any],
        *,
        file_key: str,
        channels: Mapping[str, tuple[str, Mapping[str, Any]]] | None = None,
    ) -> bool:
        """Record the composed file (and each interpretation channel's version: language -> (file key, facts)) and
        the outcome; False (and nothing recorded) if the recording went meanwhile."""
        async with self._tx() as conn:
            row = await conn.fetchrow(RECORDING_FOR_UPDATE, recording_id)
            if row is None or row["state"] != "ready":
                if row is not None:
                    await self._fail(conn, recording_id, row["workshop_id"], "the recording was deleted meanwhile")
                return False
            await conn.execute(
                UPSERT_FILE,
                recording_id,
                facts["format"],
                facts["codec"],
                file_key,
                int(facts["bytes"]),
                str(facts["sha256"]),
                float(facts["duration_s"]),
                int(facts["width"]),
                int(facts["height"]),
                "",
            )
            for language, (key, made) in (channels or {}).items():
                await conn.execute(
                    UPSERT_FILE,
                    recording_id,
                    facts["format"],
                    made["codec"],
                    key,
                    int(made["bytes"]),
                    str(made["sha256"]),
                    float(made["duration_s"]),
                    int(made["width"]),
                    int(made["height"]),
                    language,
                )
            attempts = await conn.fetchval(READY, recording_id, json.dumps(facts.get("layout", [])))
            if attempts is None:  # re-queued meanwhile (a second server took over): leave it to that run
                return True
            details = {k: str(facts[k]) if k == "duration_s" else facts[k] for k in ("bytes", "sha256", "duration_s")}
            if channels:
                details["languages"] = sorted(channels)
            await self.audit.write(conn, _outcome(row["workshop_id"], recording_id, "ready", attempts, details))
        return True


def _outcome(
    workshop_id: uuid.UUID, recording_id: uuid.UUID, state: str, attempts: int, details: Mapping[str, Any]
) -> Change:
    return Change(
        workshop_id,
        SYSTEM,
        "recording.composed",
        target={"recording_id": recording_id},
        details={"state": state, "attempts": attempts, **details},
    )


@dataclass(frozen=True)
class CompositionConfig:
    workers: int = 2
    width: int = 960
    height: int = 540
    fps: int = 15
    max_attempts: int = 3
    time_limit_s: float = 0.0  # 0: 120 s plus three times the recording's duration
    heartbeat_s: float = 5.0
    lapse_s: float = 60.0
    poll_s: float = 10.0
    nice: int = 10

    def limit_for(self, duration_s: float) -> float:
        return self.time_limit_s if self.time_limit_s > 0 else 120.0 + 3.0 * duration_s


@dataclass
class Run:
    recording_id: uuid.UUID
    task: asyncio.Task[None] | None = None
    process: asyncio.subprocess.Process | None = None
    progress: float = 0.0
    stopping: bool = False  # the server is shutting down: the run goes back to the queue
    cancelled: str | None = None  # why the run was ended (the recording deleted): it fails with this
    timed_out: bool = False
    stderr: list[str] = field(default_factory=list)


class CompositionSupervisor:
    """Runs queued compositions in subprocesses, at most `config.workers` at a time. Owned by the app (start/close)."""

    def __init__(self, store: CompositionStore, storage: Storage, config: CompositionConfig) -> None:
        self.store = store
        self.storage = storage
        self.config = config
        self.runs: dict[uuid.UUID, Run] = {}
        # Told of each run's `started` (pid, attempt), `progress` and `ended` (state: ready, failed or queued).
        self.listeners: list[Callable[[uuid.UUID, str, dict[str, Any]], None]] = []
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Queue again what a dead process left running, then start claiming (none claimed with `workers` 0)."""
        moved = await self.store.requeue_lapsed(self.config.lapse_s, self.config.max_attempts)
        if moved:
            log.warning("compositions left running by a stopped process: %s", [str(m) for m in moved])
        if self.config.workers > 0:
            self._loop_task = asyncio.create_task(self._loop(), name="composition-supervisor")

    def wake(self) -> None:
        self._wake.set()

    def cancel(self, recording_id: uuid.UUID, reason: str) -> None:
        """End a running composition now (its recording is being deleted): it fails with `reason`."""
        run = self.runs.get(recording_id)
        if run is not None:
            run.cancelled = reason
            _kill(run.process)

    def _tell(self, recording_id: uuid.UUID, event: str, **detail: Any) -> None:
        for listener in list(self.listeners):
            try:
                listener(recording_id, event, detail)
            except Exception:
                log.exception("a composition listener failed")

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        runs = list(self.runs.values())
        for run in runs:
            run.stopping = True
            _kill(run.process)
        await asyncio.gather(*(r.task for r in runs if r.task is not None), return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                await self.store.requeue_lapsed(self.config.lapse_s, self.config.max_attempts)
                while len(self.runs) < self.config.workers:
                    job = await self.store.claim()
                    if job is None:
                        break
                    run = Run(job["recording_id"])
                    self.runs[run.recording_id] = run
                    run.task = asyncio.create_task(
                        self._run(run, job["attempts"]), name=f"composition-{run.recording_id}"
                    )
            except Exception:
                log.exception("the composition supervisor could not poll its queue")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.poll_s):
                    await self._wake.wait()
            self._wake.clear()

    async def _run(self, run: Run, attempt: int) -> None:
        outcome = "failed"
        try:
            outcome = await self._compose(run, attempt)
        except Exception as exc:
            log.exception("composition of %s failed", run.recording_id)
            with contextlib.suppress(Exception):
                await self.store.fail(run.recording_id, f"the supervisor failed: {exc}")
        finally:
            self.runs.pop(run.recording_id, None)
            self.wake()  # a slot is free
            self._tell(run.recording_id, "ended", state=outcome)

    def _track(self, t: asyncpg.Record) -> dict[str, Any]:
        return {
            "id": str(t["id"]),
            "participant_id": str(t["participant_id"]),
            "name": t["display_name"],
            "kind": t["kind"],
            "source": t["source"],
            "path": str(self.storage.path(t["file_key"])),
            "offset_s": float(t["offset_s"]),
            "duration_s": float(t["duration_s"] or 0.0),
        }

    def _manifest(
        self,
        recording_id: uuid.UUID,
        tracks: list[asyncpg.Record],
        output: Path,
        channels: Mapping[str, tuple[Path, list[asyncpg.Record]]],
    ) -> dict[str, Any]:
        return {
            "output": str(output),
            "width": self.config.width,
            "height": self.config.height,
            "fps": self.config.fps,
            "tracks": [self._track(t) for t in tracks],
            "variants": [
                {"language": language, "output": str(path), "tracks": [self._track(t) for t in rows]}
                for language, (path, rows) in channels.items()
            ],
        }

    async def _compose(self, run: Run, attempt: int) -> str:
        """One run; returns the job's state after it: ready, failed, or queued (to run again)."""
        recording_id = run.recording_id
        tracks = await self.store.manifest_tracks(recording_id)
        if not tracks:
            await self.store.fail(recording_id, "nothing to compose: no track file is left")
            return "failed"
        key = COMPOSED_KEY.format(recording_id=recording_id, format="webm")
        output = self.storage.path(key)
        channel_tracks = await self.store.channel_tracks(recording_id)
        channel_keys = {
            language: CHANNEL_KEY.format(recording_id=recording_id, language=language, format="webm")
            for language in channel_tracks
        }
        channel_paths = {language: self.storage.path(k) for language, k in channel_keys.items()}
        manifest = self._manifest(
            recording_id,
            tracks,
            output,
            {language: (channel_paths[language], rows) for language, rows in channel_tracks.items()},
        )
        duration = max(float(t["offset_s"]) + float(t["duration_s"] or 0.0) for t in tracks)
        limit = self.config.limit_for(duration)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "recordings.compose",
            "--manifest",
            "-",
            "--nice",
            str(self.config.nice),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_child_env(),
            start_new_session=True,  # a signal to the server's process group is not the composer's
            limit=STDOUT_LINE_LIMIT,
        )
        run.process = process
        beat: asyncio.Task[None] | None = None
        errors: asyncio.Task[None] | None = None
        done: dict[str, Any] | None = None
        error: str | None = None
        try:  # whatever happens from here on, the subprocess does not outlive this run
            if run.stopping or run.cancelled:  # the server began to stop (or the recording went) meanwhile
                _kill(process)
            await self.store.set_pid(recording_id, process.pid)
            self._tell(recording_id, "started", pid=process.pid, attempt=attempt)
            log.info("composing %s (attempt %d, pid %d, limit %.0f s)", recording_id, attempt, process.pid, limit)
            beat = asyncio.create_task(self._beat(run), name=f"composition-beat-{recording_id}")
            assert process.stdin is not None and process.stdout is not None and process.stderr is not None
            errors = asyncio.create_task(_tail(process.stderr, run.stderr))
            process.stdin.write(json.dumps(manifest).encode())
            with contextlib.suppress(ConnectionError):
                await process.stdin.drain()
            process.stdin.close()
            try:
                async with asyncio.timeout(limit):
                    async for line in process.stdout:
                        message = _parse(line)
                        if "progress" in message:
                            run.progress = float(message["progress"])
                            self._tell(recording_id, "progress", progress=run.progress)
                        elif "done" in message:
                            done = message["done"]
                        elif "error" in message:
                            error = str(message["error"])
                    await process.wait()
                    await errors
            except TimeoutError:
                run.timed_out = True
        finally:
            if process.returncode is None:
                _kill(process)
                await process.wait()
            for task in (beat, errors):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        code = process.returncode
        for written in (output, *channel_paths.values()):
            with contextlib.suppress(FileNotFoundError):  # what a killed composer was writing (whole ones are renamed)
                written.with_name(written.name + ".part").unlink()
        if run.stopping:
            await self.store.requeue_run(recording_id, uncount=True)
            return "queued"
        if run.cancelled:
            await self.store.fail(recording_id, run.cancelled)
            return "failed"
        if run.timed_out:
            await self.store.fail(recording_id, f"the composer took longer than its limit of {limit:g} s")
            return "failed"
        if code == 0 and done is not None and output.is_file():
            made = {v["language"]: v for v in done.get("variants", []) if v.get("language") in channel_keys}
            channels = {language: (channel_keys[language], facts) for language, facts in made.items()}
            if await self.store.ready(recording_id, {**done, "format": "webm"}, file_key=key, channels=channels):
                return "ready"
            for written in (output, *channel_paths.values()):
                with contextlib.suppress(FileNotFoundError):
                    written.unlink()  # the recording was deleted meanwhile
            return "failed"
        if code is not None and code < 0 and error is None:
            name = _signal_name(-code)
            if attempt < self.config.max_attempts:
                log.warning("composer of %s killed by %s; queued again", recording_id, name)
                await self.store.requeue_run(recording_id, uncount=False)
                return "queued"
            reason = f"gave up after {attempt} attempts (the composer was killed by {name})"
            await self.store.fail(recording_id, reason)
            return "failed"
        reason = error or (run.stderr[-1] if run.stderr else "") or f"the composer exited with status {code}"
        await self.store.fail(recording_id, reason)
        return "failed"

    async def _beat(self, run: Run) -> None:
        while True:
            try:
                await self.store.beat(run.recording_id, run.progress)
            except Exception as exc:  # a missed beat is logged, never fatal; the next one catches up
                log.warning("composition %s: could not write its heartbeat: %s", run.recording_id, exc)
            await asyncio.sleep(self.config.heartbeat_s)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _child_env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _parse(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


async def _tail(stream: asyncio.StreamReader, into: list[str]) -> None:
    async for line in stream:
        text = line.decode(errors="replace").strip()
        if text:
            into.append(text[:500])
            del into[:-STDERR_TAIL]


def _kill(process: asyncio.subprocess.Process | None) -> None:
    if process is not None and process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
