"""`python -m server` starts the service; `python -m server migrate` only applies migrations;
`python -m server audit verify|export|anchor` checks, exports and anchors the audit log (docs/records.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
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


async def _with_database(settings: Settings, work: Callable[[asyncpg.Pool], Awaitable[int]]) -> int:
    """Run `work` against the configured database (the embedded one under DATA_DIR by default), migrated."""
    from server.db import EmbeddedPostgres, create_pool
    from server.migrate import migrate

    embedded = None
    dsn = settings.database_url
    if dsn is None:
        embedded = EmbeddedPostgres(settings.resolved_data_dir())
        dsn = await asyncio.to_thread(embedded.start)
    try:
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            async with pool.acquire() as conn:
                applied = await migrate(conn)
            if applied:
                print(f"applied {len(applied)} migration(s): {applied}", file=sys.stderr)
            return await work(pool)
        finally:
            await pool.close()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


async def _migrate_only(settings: Settings) -> None:
    async def nothing(pool: asyncpg.Pool) -> int:
        return 0

    await _with_database(settings, nothing)
    print("database is up to date")


def _audit_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m server audit", description="The audit log (docs/records.md)")
    commands = parser.add_subparsers(dest="audit_command", required=True)
    verify = commands.add_parser("verify", help="recompute the chains; exit 1 naming the first entry that differs")
    verify.add_argument("--workshop", type=uuid.UUID, help="only this workshop's chain")
    verify.add_argument("--anchor", type=Path, help="an anchor document the chains must still contain")
    verify.add_argument("--public-key", help="the server's public key (base64) the anchor must be signed with")
    export = commands.add_parser("export", help="a workshop's chain as JSON Lines")
    export.add_argument("--workshop", type=uuid.UUID, required=True)
    export.add_argument("--output", type=Path, help="a file (default: standard output)")
    anchor = commands.add_parser("anchor", help="sign the head of every chain now; prints the anchor (JSON)")
    anchor.add_argument("--workshop", type=uuid.UUID, help="only this workshop's chain (not kept in the database)")
    return parser


async def _audit(settings: Settings, args: argparse.Namespace) -> int:
    from server import audit as records
    from signaling.audit import chain_of
    from signaling.audit_store import AuditLog

    log = AuditLog()

    async def verify(pool: asyncpg.Pool) -> int:
        document: dict[str, Any] | None = None
        if args.anchor is not None:
            document = json.loads(args.anchor.read_text(encoding="utf-8"))
            assert document is not None
            try:
                records.check_anchor(document, trusted_public_key=args.public_key)
            except records.AnchorError as exc:
                print(f"anchor {args.anchor}: {exc}", file=sys.stderr)
                return 1
        checks = await records.verify(pool, log, workshop_id=args.workshop, anchor=document)
        failed = 0
        for check in checks:
            if check.mismatch is not None:
                failed += 1
                print(f"FAILED {check.mismatch.describe()}")
            else:
                print(f"ok     chain {check.chain}: {check.count} entries, head {check.head_seq} {check.head_hash}")
        if not checks:
            print("no audit entries" + (f" for workshop {args.workshop}" if args.workshop else ""))
        return 1 if failed else 0

    async def export(pool: asyncpg.Pool) -> int:
        out = args.output.open("w", encoding="utf-8") if args.output else sys.stdout
        try:
            async for line in records.export_lines(pool, log, chain_of(args.workshop)):
                out.write(line)
        finally:
            if args.output:
                out.close()
        return 0

    async def anchor(pool: asyncpg.Pool) -> int:
        chain = chain_of(args.workshop) if args.workshop else None
        document = await records.make_anchor(pool, log, server=settings.base_url, chain=chain, store=chain is None)
        print(json.dumps(document, indent=2, sort_keys=True))
        return 0

    work = {"verify": verify, "export": export, "anchor": anchor}[args.audit_command]
    return await _with_database(settings, work)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description="Roundtable server")
    parser.add_argument("command", nargs="?", default="run", choices=["run", "migrate", "audit"])
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.command != "audit" and args.rest:
        parser.error(f"unrecognized arguments: {' '.join(args.rest)}")
    audit_args = _audit_parser().parse_args(args.rest) if args.command == "audit" else None
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "migrate":
        asyncio.run(_migrate_only(settings))
        return 0
    if audit_args is not None:
        return asyncio.run(_audit(settings, audit_args))

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
