"""The database: an external PostgreSQL from settings, or an embedded one (pgserver) under DATA_DIR."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

EMBEDDED_DB_NAME = "roundtable"


class EmbeddedPostgres:
    """A real PostgreSQL server shipped in the pgserver wheel, its data under `data_dir/pg`.

    `start` and `stop` are blocking (they run initdb/pg_ctl); call them outside the event loop.
    """

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir / "pg"
        self._server: Any = None

    def start(self) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # pgserver logs every command it runs at INFO; keep our log readable.
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        forget_dead_handles(self.pgdata)
        self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DB_NAME}';")
        if "1 row" not in exists:
            self._server.psql(f"CREATE DATABASE {EMBEDDED_DB_NAME};")
        log.info("started embedded PostgreSQL, data in %s", self.pgdata)
        return self.dsn(EMBEDDED_DB_NAME)

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres:@/{database}?host={self.pgdata}"

    @property
    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
            log.info("stopped embedded PostgreSQL")


HANDLE_LIST = ".handle_pids.json"


def forget_dead_handles(pgdata: Path) -> list[int]:
    """Drop processes that no longer exist from pgserver's list of handles (returns them).

    pgserver stops PostgreSQL when its last handle goes, and counts handles as pids in a file that only a
    clean exit updates: after a SIGKILL the dead pid stays, every later exit believes another user is
    left, and PostgreSQL is never stopped again. One data directory belongs to one server process here."""
    path = pgdata / HANDLE_LIST
    try:
        pids = [int(p) for p in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return []
    alive = [pid for pid in pids if _alive(pid)]
    dead = [pid for pid in pids if pid not in alive]
    if dead:
        path.write_text(json.dumps(alive))
        log.warning("embedded PostgreSQL: forgot %d handle(s) of process(es) that died: %s", len(dead), dead)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    return True


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Replaces asyncpg's reset query on release (RESET ALL, UNLISTEN, advisory unlocks: a round trip each time).
    The server leaves no session state behind: transactions are context managers, the migration lock is released
    explicitly, and nothing LISTENs. asyncpg still rolls back an open transaction itself."""


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, command_timeout=30, reset=_keep_session)
    assert pool is not None
    return pool
