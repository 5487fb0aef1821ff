"""Every drop is a reconnect: a peer that goes silent, vanishes or breaks its transport keeps its place for the
grace period and takes it back with its resume token. Only real protocol violations end a session at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WebSocketError, WSMessage, WSMsgType
from aiohttp.test_utils import TestClient

from server.app import create_app
from signaling.rooms import Member, Profile
from signaling.session import Session, SessionLimits
from tests.conftest import make_settings
from tests.helpers import add_participant, create_workshop
from tests.signaling.client import join
from tests.signaling.raw_ws import RawWebSocket

HEARTBEAT_S = 1.0  # a silent peer is noticed after heartbeat + heartbeat/2


async def _app(database_url: str, tmp_path: Path, aiohttp_client: Any) -> TestClient[Any, Any]:
    settings = make_settings(database_url, tmp_path / "var", ws_heartbeat_s=HEARTBEAT_S, resume_grace_s=20.0)
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    return client


async def _raw_join(client: TestClient[Any, Any], token: str) -> tuple[RawWebSocket, dict[str, Any]]:
    raw = await RawWebSocket.open(str(client.server.host), int(client.server.port or 0))
    await raw.send_json({"type": "hello", "protocol": [1], "token": token})
    welcome = await raw.recv_json()
    assert welcome["type"] == "welcome", welcome
    return raw, welcome


async def _drop_then_resume(client: TestClient[Any, Any], drop: str) -> None:
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    ben = await add_participant(client, workshop["id"], display_name="Ben", country="DE")
    raw, welcome = await _raw_join(client, ana["join_token"])
    b = await join(client, ben["join_token"])
    # b reads all along (so it answers pings) while ana's socket goes quiet or goes away.
    reconnecting = asyncio.create_task(b.wait_for("peer_reconnecting", timeout=HEARTBEAT_S * 10))
    if drop == "abort":
        raw.abort()
    # "silent": ana simply never reads again; the server's pings go unanswered.
    seen = await reconnecting
    assert seen["peer_id"] == ana["id"]
    assert not [m for m in b.seen if m["type"] == "peer_left"], b.seen

    back = await join(client, ana["join_token"], resume=welcome["resume"])
    assert back.welcome["resumed"] is True
    assert [p["id"] for p in back.welcome["peers"]] == [ben["id"]]
    assert (await b.wait_for("peer_resumed"))["peer_id"] == ana["id"]
    await raw.close()
    await back.close()
    await b.close()


async def test_a_peer_that_stops_answering_pings_is_reconnecting_and_resumes_within_the_grace_period(
    database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    await _drop_then_resume(await _app(database_url, tmp_path, aiohttp_client), "silent")


async def test_a_peer_whose_transport_is_aborted_is_reconnecting_and_resumes_within_the_grace_period(
    database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    await _drop_then_resume(await _app(database_url, tmp_path, aiohttp_client), "abort")


# The session's own rule, with fakes: what each way of ending the read loop means for the member. ---------------


class _FakeWs:
    """Yields a hello, then one final message; records nothing else."""

    def __init__(self, last: WSMessage) -> None:
        self.last = last
        self.close_code: int | None = None

    async def receive(self, timeout: float | None = None) -> WSMessage:
        return WSMessage(WSMsgType.TEXT, '{"type": "hello", "protocol": [1], "token": "t"}', None)

    def __aiter__(self) -> _FakeWs:
        return self

    async def __anext__(self) -> WSMessage:
        if self.last is None:
            raise StopAsyncIteration
        last, self.last = self.last, None  # type: ignore[assignment]
        if last.type == WSMsgType.CLOSED:
            raise StopAsyncIteration
        return last


class _FakeConnection:
    def __init__(self, ws: _FakeWs) -> None:
        self.ws = ws
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None

    def send(self, text: str) -> bool:
        self.sent.append(text)
        return True

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


class _FakeService:
    def __init__(self) -> None:
        self.member = Member(
            id="p1",
            workshop_id="w1",
            profile=Profile(display_name="Ana", country="PT", organisation="", role="participant"),
            room_id="r1",
            resume_secret="s",
        )
        self.ended: list[tuple[str, str]] = []

    async def join(
        self, hello: Any, version: int, outbox: Any, *, connection_id: str = "", admitted: bool = False
    ) -> Member:
        return self.member

    def leave(self, member: Member, reason: str = "left") -> None:
        self.ended.append(("leave", reason))

    def detach(self, member: Member, outbox: Any) -> None:
        self.ended.append(("detach", ""))


@pytest.mark.parametrize(
    ("last", "ended"),
    [
        pytest.param(WSMessage(WSMsgType.ERROR, TimeoutError("No PONG received"), None), ("detach", ""), id="no_pong"),
        pytest.param(WSMessage(WSMsgType.ERROR, ConnectionResetError("reset"), None), ("detach", ""), id="reset"),
        pytest.param(WSMessage(WSMsgType.ERROR, OSError("read failed"), None), ("detach", ""), id="read_error"),
        pytest.param(WSMessage(WSMsgType.CLOSED, None, None), ("detach", ""), id="eof"),
        pytest.param(
            WSMessage(WSMsgType.ERROR, WebSocketError(1009, "too big"), None),
            ("leave", "protocol_violation"),
            id="frame_over_the_hard_cap",
        ),
        pytest.param(
            WSMessage(WSMsgType.ERROR, WebSocketError(1007, "not UTF-8"), None),
            ("leave", "protocol_violation"),
            id="text_not_utf8",
        ),
    ],
)
async def test_only_a_protocol_violation_ends_the_session_every_other_read_failure_is_a_drop(
    last: WSMessage, ended: tuple[str, str]
) -> None:
    service = _FakeService()
    ws = _FakeWs(last)
    await Session(service, _FakeConnection(ws), SessionLimits()).run()  # type: ignore[arg-type]
    assert service.ended == [ended]
