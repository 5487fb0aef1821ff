"""The real process, started the way `make run` starts it, with the embedded PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    proc: asyncio.subprocess.Process
    port: int
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def read_until(self, needle: str) -> None:
        assert self.proc.stderr is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                line = await self.proc.stderr.readline()
                if not line:
                    raise AssertionError("server exited early:\n" + "".join(self.output))
                self.output.append(line.decode())
                if needle in self.output[-1]:
                    return

    async def drain(self) -> None:
        assert self.proc.stderr is not None and self.proc.stdout is not None
        rest = await self.proc.stderr.read()
        self.output.append(rest.decode())
        self.output.append((await self.proc.stdout.read()).decode())

    async def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            await self.drain()
            return await self.proc.wait()


def _env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUNDTABLE_") and k != "DATABASE_URL"}
    env.update(ROUNDTABLE_DATA_DIR=str(data_dir), ROUNDTABLE_PORT=str(port), **extra)
    return env


async def start(data_dir: Path, **extra: str) -> Server:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        cwd=ROOT,
        env=_env(data_dir, port, **extra),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return Server(proc, port)


@pytest.fixture
async def data_dir(tmp_path: Path) -> AsyncIterator[Path]:
    path = tmp_path / "var"
    yield path


def postgres_running(data_dir: Path) -> bool:
    pid_file = data_dir / "pg" / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_make_run_process_serves_and_stops_cleanly_with_embedded_postgres(data_dir: Path) -> None:
    server = await start(data_dir)
    try:
        await server.read_until("Running on")
        token_file = data_dir / "admin-token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        token = token_file.read_text().strip()
        stdout = server.proc.stdout
        assert stdout is not None
        printed = (await asyncio.wait_for(stdout.readline(), 5)).decode()
        printed += (await asyncio.wait_for(stdout.readline(), 5)).decode()
        printed += (await asyncio.wait_for(stdout.readline(), 5)).decode()
        printed += (await asyncio.wait_for(stdout.readline(), 5)).decode()
        assert token in printed
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/readyz") as resp:
                assert resp.status == 200
            body = {
                "title": "Smoke",
                "timezone": "UTC",
                "starts_at": "2026-12-01T08:00:00Z",
                "ends_at": "2026-12-01T17:00:00Z",
            }
            headers = {"Authorization": f"Bearer {token}"}
            async with http.post(f"{server.url}/api/v1/workshops", json=body, headers=headers) as resp:
                assert resp.status == 201
                workshop_id = (await resp.json())["id"]
        assert postgres_running(data_dir)
    finally:
        if server.proc.returncode is None:
            code = await server.stop()
    assert code == 0, "".join(server.output)
    assert "started embedded PostgreSQL" in "".join(server.output)
    assert not postgres_running(data_dir)

    # The next start keeps the data and does not mint another admin token.
    again = await start(data_dir)
    try:
        await again.read_until("Running on")
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {token}"}
            async with http.get(f"{again.url}/api/v1/workshops/{workshop_id}", headers=headers) as resp:
                assert resp.status == 200
    finally:
        code = await again.stop()
    assert code == 0
    assert "Admin token" not in "".join(again.output)
    assert not postgres_running(data_dir)


async def test_invalid_setting_stops_the_start_with_one_clear_line(data_dir: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        cwd=ROOT,
        env={**_env(data_dir, 8080), "ROUNDTABLE_PORT": "eighty"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        _out, err = await proc.communicate()
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "ROUNDTABLE_PORT" in lines[0]
    assert not (data_dir / "pg").exists()
