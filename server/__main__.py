"""`python -m server` starts the service; `python -m server migrate` only applies migrations."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from aiohttp import web
from pydantic import ValidationError

from server.logs import configure_logging
from server.settings import Settings, describe_validation_error, unknown_environment


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        print(f"roundtable: {describe_validation_error(exc)}", file=sys.stderr)
        raise SystemExit(2) from None


async def _migrate_only(settings: Settings) -> None:
    from server.db import EmbeddedPostgres, create_pool
    from server.migrate import migrate

    embedded = None
    dsn = settings.database_url
    if dsn is None:
        embedded = EmbeddedPostgres(settings.resolved_data_dir())
        dsn = await asyncio.to_thread(embedded.start)
    try:
        pool = await create_pool(dsn, min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                applied = await migrate(conn)
        finally:
            await pool.close()
        print(f"applied {len(applied)} migration(s): {applied}" if applied else "database is up to date")
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description="Roundtable server")
    parser.add_argument("command", nargs="?", default="run", choices=["run", "migrate"])
    args = parser.parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "migrate":
        asyncio.run(_migrate_only(settings))
        return 0

    from server.app import create_app

    for name in unknown_environment(dict(os.environ)):
        logging.getLogger("server").warning("ignoring %s: no such setting", name)
    app = create_app(settings)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        shutdown_timeout=5,
        print=lambda text: logging.getLogger("server").info("%s", text.strip()),
        access_log=None,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
