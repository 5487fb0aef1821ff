"""After a crash: the real process (embedded PostgreSQL, as `make run`) is SIGKILLed with someone in a room,
then started again and stopped with Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from server.db import EMBEDDED_DB_NAME, EmbeddedPostgres
from tests.recordings.test_crash_and_hook import HttpClient
from tests.server.test_process import Server, postgres_running, start
from tests.signaling.client import join

NOTIFY_TIMEOUT_S = 20
# Test-only triggers: the test waits for the server's writes as events instead of polling for them.
NOTIFY_TRIGGERS = """
CREATE FUNCTION rt_test_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('rt_test', TG_TABLE_NAME); RETURN NEW; END $$;
CREATE TRIGGER rt_test_attendance AFTER INSERT ON attendance_events FOR EACH ROW EXECUTE FUNCTION rt_test_notify();
CREATE TRIGGER rt_test_heartbeat AFTER INSERT OR UPDATE ON server_heartbeat FOR EACH ROW
    EXECUTE FUNCTION rt_test_notify();
"""
OPEN_VISITS = """
SELECT count(*) FROM (
    SELECT DISTINCT ON (participant_id) event FROM attendance_events ORDER BY participant_id, id DESC
) latest WHERE event = 'join'
"""


class Notifications:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    def __call__(self, conn: object, pid: int, channel: str, payload: str) -> None:
        self.queue.put_nowait(payload)

    async def next(self, table: str) -> None:
        async with asyncio.timeout(NOTIFY_TIMEOUT_S):
            while await self.queue.get() != table:
                pass


@pytest.fixture
async def data_dir(tmp_path: Path) -> AsyncIterator[Path]:
    path = tmp_path / "var"
    yield path
    if postgres_running(path):  # the test failed half-way: leave no PostgreSQL behind
        embedded = EmbeddedPostgres(path)
        await asyncio.to_thread(embedded.start)
        await asyncio.to_thread(embedded.stop)


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_after_a_sigkill_a_restart_closes_open_visits_at_the_last_heartbeat_and_ctrl_c_stops_postgres(
    data_dir: Path,
) -> None:
    # The killed server leaves Ana's place as a resume grant: a short grace period (and lease time, after which a
    # silent node counts as dead) so that it runs out soon after the restart.
    quick = {"ROUNDTABLE_RESUME_GRACE_S": "1", "ROUNDTABLE_LEASE_TTL_S": "1"}
    server = await start(data_dir, ROUNDTABLE_SERVER_HEARTBEAT_S="0.5", **quick)
    await server.read_until("Running on")
    dsn = EmbeddedPostgres(data_dir).dsn(EMBEDDED_DB_NAME)
    db = await asyncpg.connect(dsn)
    try:
        await db.execute(NOTIFY_TRIGGERS)
        notes = Notifications()
        await db.add_listener("rt_test", notes)
        token = (data_dir / "admin-token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        body = {
            "title": "Crash",
            "timezone": "UTC",
            "starts_at": "2026-12-01T08:00:00Z",
            "ends_at": "2026-12-01T17:00:00Z",
        }
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.url}/api/v1/workshops", json=body, headers=headers) as resp:
                workshop = await resp.json()
            url = f"{server.url}/api/v1/workshops/{workshop['id']}/participants"
            async with http.post(url, json={"display_name": "Ana", "country": "PT"}, headers=headers) as resp:
                person = await resp.json()
            signal_client = await join(HttpClient(http, server.url), person["join_token"])  # type: ignore[arg-type]
            await notes.next("attendance_events")  # the join is in the database
            await notes.next("server_heartbeat")  # and the server was alive after it
            server.proc.send_signal(signal.SIGKILL)
            async with asyncio.timeout(30):
                await server.proc.wait()
            await signal_client.ws.close()
        assert postgres_running(data_dir), "PostgreSQL outlives the killed server"
        last_alive: datetime = await db.fetchval("SELECT alive_at FROM server_heartbeat")
        assert await db.fetchval(OPEN_VISITS) == 1
    finally:
        await db.close()

    again: Server = await start(data_dir, **quick)
    try:
        await again.read_until("Running on")
        db = await asyncpg.connect(dsn)
        try:
            notes = Notifications()
            await db.add_listener("rt_test", notes)
            # Nobody resumes: once the grace period is over, the visit ends (its leave is the event waited for).
            while await db.fetchval(OPEN_VISITS):
                await notes.next("attendance_events")
            leave = await db.fetchrow("SELECT at, reason FROM attendance_events WHERE event = 'leave'")
            assert leave is not None and leave["reason"] == "server_crash"
            assert leave["at"] == last_alive, "closed at the time the dead server was last alive"
        finally:
            await db.close()
    finally:
        code = await again.stop()  # Ctrl-C
    output = "".join(again.output)
    assert code == 0, output
    assert "closed 1 attendance visit" in output
    assert not postgres_running(data_dir), "Ctrl-C stops the embedded PostgreSQL although a process died before"
