"""Property-based: hostile values in every field of every client message of the protocol's schema (and in hello, and
as the first frame) always get an answer, never a silent close, and never a traceback in the log.

Bounded (a fixed number of examples per message type); one app, one database and one session for all of them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import strategies as st

from server.app import create_app
from signaling.protocol import protocol_schema
from tests.conftest import make_settings
from tests.helpers import add_participant, create_workshop
from tests.hostile import dumps, examples, from_schema, hostile, one_hostile, tracebacks
from tests.signaling.client import SignalClient, connect, join

Client = TestClient[Any, Any]
PER_TYPE = 60
PER_HANDSHAKE = 40
# Types that end the session when valid: covered by the handshake part instead.
SESSION_ENDING = {"Hello", "Leave"}
FATAL_CLOSES = {4400, 4401}


def _client_schemas() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    schema = protocol_schema()["client"]
    defs = schema["$defs"]
    names = [ref["$ref"].rsplit("/", 1)[1] for ref in schema["oneOf"]]
    return {name: defs[name] for name in names}, defs


def _messages(schema: dict[str, Any], defs: dict[str, Any], ids: list[str]) -> st.SearchStrategy[Any]:
    valid = from_schema(schema, defs, ids)
    # One field hostile (request_id included), or the whole frame.
    return st.one_of(one_hostile(valid, whole=False), one_hostile(valid, whole=False), one_hostile(valid), valid)


@pytest.fixture
async def client(database_url: str, tmp_path: Path, aiohttp_client: Any) -> Client:
    settings = make_settings(database_url, tmp_path / "var", ws_rate_per_s=100_000.0, ws_rate_burst=100_000)
    result: Client = await aiohttp_client(create_app(settings))
    return result


async def _drain(sc: SignalClient) -> None:
    """Keep a peer reading (its send queue must not overflow), whatever arrives."""
    with contextlib.suppress(ConnectionError, TimeoutError):
        while True:
            await sc.recv(timeout=60)


async def test_hostile_values_in_every_message_field_get_an_answer_and_the_session_goes_on(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana", role="moderator")
    ben = await add_participant(client, workshop["id"], display_name="Ben")
    a = await join(client, ana["join_token"])
    b = await join(client, ben["join_token"])
    drain = asyncio.create_task(_drain(b))
    schemas, defs = _client_schemas()
    ids = [ben["id"], ana["id"], workshop["id"]]
    sent = 0
    try:
        for name, schema in schemas.items():
            if name in SESSION_ENDING:
                continue
            for value in examples(_messages(schema, defs, ids), PER_TYPE):
                sent += 1
                frame = dumps(value)
                await a.send(frame)
                probe = f"sync-{sent}"
                await a.send({"type": "update", "request_id": probe})
                # Everything the frame caused arrives before the probe's ack; the socket must stay open.
                while True:
                    try:
                        msg = await a.recv()
                    except ConnectionError as exc:
                        raise AssertionError(f"{name}: the session closed after {frame[:300]!r}") from exc
                    if msg == {"type": "ack", "request_id": probe}:
                        break
                    assert msg["type"] not in ("bye",), (name, frame[:300], msg)
                assert not tracebacks(caplog.records), (name, frame[:300], tracebacks(caplog.records))
                caplog.clear()
    finally:
        drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drain
    assert sent >= PER_TYPE * (len(schemas) - len(SESSION_ENDING))


async def test_hostile_hellos_and_first_frames_get_an_error_before_the_close(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    workshop = await create_workshop(client)
    cleo = await add_participant(client, workshop["id"], display_name="Cleo")
    schemas, defs = _client_schemas()
    token = cleo["join_token"]
    hellos = from_schema(schemas["Hello"], defs, []).map(lambda h: {**h, "token": token})
    frames = examples(
        st.one_of(
            one_hostile(hellos, whole=False),
            one_hostile(hellos),
            st.sampled_from(sorted(set(schemas) - {"Hello"})).flatmap(lambda n: _messages(schemas[n], defs, [])),
            hostile(),
        ),
        PER_HANDSHAKE,
    )
    for value in frames:
        frame = dumps(value)
        sc = SignalClient(await connect(client))
        await sc.send(frame)
        try:
            first = await sc.recv()
        except ConnectionError as exc:
            raise AssertionError(f"closed without a word after {frame[:300]!r}") from exc
        if first["type"] == "welcome":
            await sc.send({"type": "leave"})
            assert await sc.wait_closed() == 1000
        else:
            assert first["type"] == "error", (frame[:300], first)
            assert await sc.wait_closed() in FATAL_CLOSES, (frame[:300], first)
        assert not tracebacks(caplog.records), (frame[:300], tracebacks(caplog.records))
        caplog.clear()
    assert len(frames) == PER_HANDSHAKE
