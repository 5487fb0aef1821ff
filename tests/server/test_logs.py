"""Logs: JSON lines with the session id of a join and never a token, from the real process."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import aiohttp

from server.logs import REDACTED, JsonFormatter, TextFormatter
from tests.conftest import ADMIN_TOKEN
from tests.recordings.test_crash_and_hook import start_server
from tests.server.test_process import free_port

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SESSION_ID = "session-test-0123456789"


async def test_a_join_logs_a_json_line_with_its_session_id_and_no_token(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = await start_server(database_url, tmp_path / "var", port, ROUNDTABLE_LOG_FORMAT="json")
    try:
        async with aiohttp.ClientSession() as http:
            body = {
                "title": "Logs",
                "timezone": "UTC",
                "starts_at": "2026-12-01T08:00:00Z",
                "ends_at": "2026-12-01T17:00:00Z",
            }
            async with http.post(f"{base}/api/v1/workshops", json=body, headers=ADMIN) as resp:
                workshop = await resp.json()
            url = f"{base}/api/v1/workshops/{workshop['id']}/participants"
            async with http.post(url, json={"display_name": "Ana", "country": "PT"}, headers=ADMIN) as resp:
                person = await resp.json()
            token = person["join_token"]
            # The token also travels where careless code would log it: a query string.
            async with http.ws_connect(f"{base}/ws?token={token}", headers={"X-Request-Id": SESSION_ID}) as ws:
                assert ws._response.headers["X-Request-Id"] == SESSION_ID
                await ws.send_json({"type": "hello", "protocol": [1], "token": token})
                welcome = await ws.receive_json(timeout=10)
                assert welcome["type"] == "welcome"
                await server.read_until(f"joined {person['id']}")
                await ws.send_json({"type": "leave"})
                await ws.receive(timeout=10)
    finally:
        code = await server.stop()
    assert code == 0
    lines = [line for line in "".join(server.output).splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON
    (joined,) = [r for r in records if r["message"].startswith(f"joined {person['id']}")]
    assert joined["session_id"] == SESSION_ID
    assert joined["participant_id"] == person["id"] and joined["room_id"] == workshop["plenary_room_id"]
    assert joined["level"] == "info" and joined["logger"] == "signaling.service"
    for secret in (token, ADMIN_TOKEN, welcome["resume"]):
        assert secret not in "".join(server.output)


def test_formatters_scrub_tokens_wherever_they_appear() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbmEifQ.c2lnbmF0dXJl"
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "token %s, header Bearer rt_admin_abc123, url /f?sig=abc&exp=1", (jwt,), None
    )
    record.url = f"/ws?token={jwt}"
    for formatter in (JsonFormatter(), TextFormatter()):
        text = formatter.format(record)
        assert jwt not in text and "rt_admin_abc123" not in text and "sig=abc" not in text
        assert REDACTED in text and "exp=1" in text
