"""Real headless Chromium against the real server on 127.0.0.1 (see /work/shared/e2e.md for the recipe).

Debian's Chromium is driven through Playwright's async API; `tests/e2e/ensure_chromium.sh` installs it.
Each test gets its own server (a fresh database, `public_url` set to the server's own address so that
every `join_url` opens the test server) and its own browser, closed before the server stops.

Network: the whole test run moves into a private network namespace before any thread starts
(`tests/netns.py`, entered from the root conftest), so that no media or DNS leaves the machine and
Chromium cannot prefer a real network card. Where it cannot (not root, ROUNDTABLE_TEST_NETNS=0) the
tests rely on the 127.0.0.1 candidates that --allow-loopback-in-peer-connection provides.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from tests import netns
from tests.conftest import make_settings
from tests.signaling.rtc_peer import loopback_ice

CHROMIUM = os.environ.get("ROUNDTABLE_CHROMIUM", "/usr/lib/chromium/chromium")
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",  # a test-pattern camera and a beeping microphone
    "--use-fake-ui-for-media-stream",  # grant getUserMedia without a prompt (and no mDNS host candidates)
    "--allow-loopback-in-peer-connection",  # gather 127.0.0.1 candidates at all
    "--autoplay-policy=no-user-gesture-required",
]
DESKTOP = {"width": 1280, "height": 720}
PHONE = {"width": 390, "height": 844}
REPO = Path(__file__).resolve().parents[2]


def pytest_report_header(config: pytest.Config) -> str:
    return f"e2e: Chromium {CHROMIUM}; {netns.describe()}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    base_url: str
    client: TestClient[Any, Any]


@pytest.fixture
async def live_server(
    database_url: str, tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> LiveServer:
    """The real app on 127.0.0.1 with public_url pointing at itself."""
    loopback_ice(monkeypatch)  # the server's recorder peer (aiortc) gathers on 127.0.0.1
    return await serve(database_url, tmp_path, aiohttp_server, aiohttp_client)


async def serve(
    database_url: str, tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any, **overrides: Any
) -> LiveServer:
    """Start the real app on a free port of 127.0.0.1, its public_url pointing at itself."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = make_settings(database_url, tmp_path / "var", public_url=base_url, **overrides)
    # A short shutdown timeout: a failed test must not leave teardown waiting on open WebSockets.
    server = await aiohttp_server(create_app(settings), host="127.0.0.1", port=port, shutdown_timeout=2.0)
    client: TestClient[Any, Any] = await aiohttp_client(server)
    assert str(client.make_url("/")).rstrip("/") == base_url
    return LiveServer(base_url=base_url, client=client)


async def serve_with_sfu(
    database_url: str, tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any, *, rtp_ports: str
) -> LiveServer:
    """The real app with an embedded Janus on the namespace's media address: a new workshop's plenary is sfu."""
    if not netns.private():
        pytest.fail(f"the SFU browser tests need the private network namespace: {netns.why_not()} (tests/netns.py)")
    from server import keys

    live = await serve(
        database_url,
        tmp_path,
        aiohttp_server,
        aiohttp_client,
        sfu="auto",
        sfu_ice_address=netns.MEDIA_ADDRESS,
        sfu_rtp_ports=rtp_ports,
        mesh_max=0,
    )
    assert keys.SFU in live.client.app, "the embedded Janus did not start: see the log above"
    return live


@pytest.fixture(scope="session")
def output_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Screenshots and browser console logs of the run."""
    return tmp_path_factory.mktemp("e2e-output", numbered=False)


@dataclass
class BrowserSession:
    """One Chromium; every page in its own context (its own storage), all closed in teardown."""

    browser: Any
    output_dir: Path
    contexts: list[Any] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    logs: dict[str, list[str]] = field(default_factory=dict)

    async def new_page(self, name: str, viewport: dict[str, int] | None = None) -> Any:
        context = await self.browser.new_context(viewport=viewport or DESKTOP, locale="en-GB")
        self.contexts.append(context)
        page = await context.new_page()
        log = self.logs.setdefault(name, [])
        page.on("console", lambda msg: log.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: self.page_errors.append(f"{name}: {exc}"))
        return page

    async def close(self) -> None:
        for name, lines in self.logs.items():
            (self.output_dir / f"console-{name}.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for context in self.contexts:
            await context.close()
        await self.browser.close()


@pytest.fixture
async def browser(
    live_server: LiveServer, output_dir: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> AsyncIterator[BrowserSession]:
    """Chromium for one test. It depends on the server so that it is closed first."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium not found at {CHROMIUM}: run tests/e2e/ensure_chromium.sh (as root) first")
    from playwright.async_api import async_playwright

    # Chromium's profile, its singleton socket and pulse-* folders go to a folder of this run, removed after.
    # Short, because a unix socket path is limited to 108 bytes (pytest's tmp_path is too long).
    scratch = tempfile.mkdtemp(prefix="rt-e2e-")
    monkeypatch.setenv("TMPDIR", scratch)  # inherited by the Playwright driver and by Chromium
    logs = output_dir / request.node.name
    logs.mkdir(exist_ok=True)
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            session = BrowserSession(browser=browser, output_dir=logs)
            try:
                yield session
            finally:
                await session.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
