"""Headers and origins: nosniff on every answer, no-store on the API (its answers carry join tokens and signed
URLs), a CSP whose connect-src is our own origins only, an exact WebSocket Origin check, a header read timeout and
no version numbers in Server."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from tests.conftest import make_settings
from tests.helpers import ADMIN, add_participant, create_workshop

Client = TestClient[Any, Any]
PUBLIC = "http://127.0.0.1:8080"  # make_settings' public_url


async def _answers(client: Client) -> dict[str, aiohttp.ClientResponse]:
    workshop = await create_workshop(client)
    person = await add_participant(client, workshop["id"])
    base = f"/api/v1/workshops/{workshop['id']}"
    out = {}
    for name, method, path, headers in [
        ("page_join", "GET", "/join", {}),
        ("page_admin", "GET", "/admin", {}),
        ("static_module", "GET", "/static/signaling.js", {}),
        ("healthz", "GET", "/healthz", {}),
        ("openapi", "GET", "/api/v1/openapi.json", {}),
        ("roster_with_tokens", "GET", f"{base}/participants", ADMIN),
        ("participant_with_token", "GET", f"{base}/participants/{person['id']}", ADMIN),
        ("new_token", "POST", f"{base}/participants/{person['id']}/token", ADMIN),
        ("api_error", "GET", f"{base}/participants", {}),
        ("unknown_route", "GET", "/api/v1/nothing-here", ADMIN),
        ("unknown_page", "GET", "/nothing-here", {}),
    ]:
        resp = await client.request(method, path, headers=headers)
        await resp.read()
        out[name] = resp
    return out


async def test_every_answer_says_nosniff_and_names_no_version(client: Client) -> None:
    for name, resp in (await _answers(client)).items():
        assert resp.headers.get("X-Content-Type-Options") == "nosniff", name
        server = resp.headers.get("Server", "")
        assert not re.search(r"\d", server) and "aiohttp" not in server.lower(), (name, server)


async def test_api_answers_which_can_carry_a_token_are_no_store(client: Client) -> None:
    answers = await _answers(client)
    for name in ("roster_with_tokens", "participant_with_token", "new_token", "api_error", "openapi"):
        assert "no-store" in answers[name].headers.get("Cache-Control", ""), name
    body = await answers["new_token"].json()
    assert body["join_token"]


async def test_the_pages_csp_lets_scripts_connect_to_our_own_origin_only(client: Client) -> None:
    resp = await client.get("/join")
    csp = {d.split()[0]: d.split()[1:] for d in resp.headers["Content-Security-Policy"].split("; ")}
    assert csp["connect-src"] == ["'self'", PUBLIC, "ws://127.0.0.1:8080"]
    assert csp["script-src"] == ["'self'"]


async def test_allowed_origins_are_in_the_csp_with_their_websocket_scheme(
    database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    settings = make_settings(database_url, tmp_path / "var", allowed_origins="https://events.example.org")
    client: Client = await aiohttp_client(create_app(settings))
    resp = await client.get("/join")
    connect = resp.headers["Content-Security-Policy"].split("connect-src ")[1].split(";")[0].split()
    assert connect == [
        "'self'",
        PUBLIC,
        "ws://127.0.0.1:8080",
        "https://events.example.org",
        "wss://events.example.org",
    ]


async def _ws_status(client: Client, origin: str) -> int:
    try:
        ws = await client.ws_connect("/ws", headers={"Origin": origin})
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    await ws.close()
    return 101


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        pytest.param(PUBLIC, 101, id="public_origin"),
        pytest.param("HTTP://127.0.0.1:8080/", 101, id="public_origin_other_case_and_slash"),
        pytest.param("$own", 101, id="the_requests_own_origin"),
        pytest.param("https://127.0.0.1:8080", 403, id="other_scheme"),
        pytest.param("http://127.0.0.1:8081", 403, id="other_port"),
        pytest.param("http://127.0.0.1", 403, id="default_port_is_another_port"),
        pytest.param("http://127.0.0.1:8080.evil.example", 403, id="suffix_host"),
        pytest.param("http://evil.example", 403, id="other_host"),
        pytest.param("null", 403, id="opaque_null"),
        pytest.param("http://user@127.0.0.1:8080", 403, id="credentials"),
        pytest.param("http://127.0.0.1:99999", 403, id="port_out_of_range"),
    ],
)
async def test_the_websocket_origin_check_is_exact(client: Client, origin: str, status: int) -> None:
    own = f"http://{client.server.host}:{client.server.port}"
    assert await _ws_status(client, own if origin == "$own" else origin) == status


async def test_slow_request_headers_are_timed_out(database_url: str, tmp_path: Path, aiohttp_client: Any) -> None:
    settings = make_settings(database_url, tmp_path / "var", header_timeout_s=0.5)
    client: Client = await aiohttp_client(create_app(settings))
    reader, writer = await asyncio.open_connection(str(client.server.host), client.server.port)
    started = time.monotonic()
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        await writer.drain()
        closed = asyncio.create_task(reader.read())
        # A header line now and then, never the end of the head: the server must not wait for ever.
        for n in range(100):
            done, _ = await asyncio.wait({closed}, timeout=0.1)
            if done:
                break
            writer.write(b"X-Slow-%d: 1\r\n" % n)
            await writer.drain()
        async with asyncio.timeout(5):
            assert await closed == b""
    finally:
        writer.close()
    assert 0.4 <= time.monotonic() - started < 5


async def test_a_fast_client_is_served_under_the_header_timeout(
    database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    settings = make_settings(database_url, tmp_path / "var", header_timeout_s=0.5)
    client: Client = await aiohttp_client(create_app(settings))
    resp = await client.get("/healthz")
    assert resp.status == 200


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 10_000 + b"\r\n\r\n", id="header_line_too_long"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", id="two_lengths"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", id="bad_chunk"),
    ],
)
async def test_a_request_that_cannot_be_parsed_is_400_without_version_or_traceback(
    client: Client, head: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    reader, writer = await asyncio.open_connection(str(client.server.host), client.server.port)
    try:
        writer.write(head)
        await writer.drain()
        async with asyncio.timeout(10):
            answer = await reader.read()
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 400 " in status_line, answer[:200]
    server = re.search(rb"\r\nServer: ([^\r]*)", b"\r\n" + rest)
    assert server is not None and not re.search(rb"\d", server.group(1)), answer[:300]
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
