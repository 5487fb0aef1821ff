"""Shared fixtures: a real PostgreSQL (embedded by default, TEST_DATABASE_URL when set), one fresh
database per test cloned from a migrated template, and the real app on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.db import EmbeddedPostgres
from server.migrate import migrate
from server.settings import Settings
from tests import netns

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
SECRET_KEY = "test-secret-key-0123456789abcdef0123456789"


def pytest_configure(config: pytest.Config) -> None:
    # Before any thread starts (unshare moves the calling thread only); see tests/netns.py.
    netns.enter()


def pytest_report_header(config: pytest.Config) -> str:
    return f"network: {netns.describe()}"


def with_database(dsn: str, database: str) -> str:
    """The same server, another database (works for TCP and unix-socket DSNs)."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@dataclass(frozen=True)
class PgCluster:
    admin_dsn: str
    template: str

    def dsn(self, database: str) -> str:
        return with_database(self.admin_dsn, database)


async def _prepare_template(admin_dsn: str, template: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{template}"')
    finally:
        await conn.close()
    conn = await asyncpg.connect(with_database(admin_dsn, template))
    try:
        await migrate(conn)
    finally:
        await conn.close()


async def _drop(admin_dsn: str, database: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    external = os.environ.get("TEST_DATABASE_URL")
    embedded = None
    pg_root: Path | None = None
    if external:
        admin_dsn = external
    else:
        # Outside pytest's temp root: as root, pgserver runs PostgreSQL as its own user, which must be able to reach
        # the data directory, and pytest's pruning of old temp folders must not pull it away from a running session.
        pg_root = Path(tempfile.mkdtemp(prefix="roundtable-test-pg-"))
        pg_root.chmod(0o755)
        embedded = EmbeddedPostgres(pg_root)
        embedded.start()
        admin_dsn = embedded.dsn("postgres")
    template = f"rt_template_{secrets.token_hex(4)}"
    asyncio.run(_prepare_template(admin_dsn, template))
    try:
        yield PgCluster(admin_dsn=admin_dsn, template=template)
    finally:
        asyncio.run(_drop(admin_dsn, template))
        if embedded is not None:
            embedded.stop()
        if pg_root is not None:
            shutil.rmtree(pg_root, ignore_errors=True)


@pytest.fixture
async def database_url(pg_cluster: PgCluster) -> AsyncIterator[str]:
    """A fresh, migrated database for this test alone."""
    name = f"rt_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(pg_cluster.admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_cluster.template}"')
    finally:
        await conn.close()
    yield pg_cluster.dsn(name)
    await _drop(pg_cluster.admin_dsn, name)


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "admin_token": ADMIN_TOKEN,
        "secret_key": SECRET_KEY,
        "public_url": "http://127.0.0.1:8080",
        "resume_grace_s": 5.0,
        "ws_heartbeat_s": 5.0,
        "sfu": "off",  # the SFU tests (tests/sfu) ask for Janus themselves
        "composition_workers": 0,  # no composer subprocesses unless a test asks (tests/recordings/test_composition.py)
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "var")


@pytest.fixture
async def client(settings: Settings, aiohttp_client: Any) -> TestClient[Any, Any]:
    """The real application on 127.0.0.1 (a random port), with a fresh database.

    `settings` comes first so that the database outlives the app's cleanup (teardown runs in reverse)."""
    result: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    return result
