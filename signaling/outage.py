"""Is the database away? One answer for both edges: the HTTP middleware answers 503, the session `unavailable`.

PostgreSQL going down shows up as many different exceptions: asyncpg's connection and shutdown errors, or a plain
`OSError` (refused, no such socket, a timeout) from the connect inside the pool. A plain `OSError` counts only when it
was raised inside asyncpg, so that a bug or a storage error elsewhere still shows up as one.
"""

from __future__ import annotations

import os

import asyncpg

from signaling.errors import Unavailable

# Retry-After (HTTP) and what a client is told: PostgreSQL restarts within seconds.
RETRY_AFTER_S = 5

_OUTAGE = (
    asyncpg.PostgresConnectionError,  # 08xxx, the connection was lost or refused
    asyncpg.CannotConnectNowError,  # 57P03, starting up or shutting down
    asyncpg.AdminShutdownError,  # 57P01, pg_ctl stop
    asyncpg.CrashShutdownError,  # 57P02
)
_ASYNCPG_DIR = os.sep + "asyncpg" + os.sep


def _raised_in_asyncpg(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if _ASYNCPG_DIR in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def database_unavailable(exc: BaseException) -> bool:
    """True when `exc` means the database cannot be reached right now (as opposed to a bad query or a bug)."""
    if isinstance(exc, _OUTAGE):
        return True
    if isinstance(exc, asyncpg.InterfaceError) and not isinstance(exc, asyncpg.ClientConfigurationError):
        return "closed" in str(exc) or "closing" in str(exc)  # the connection or the pool went away under us
    return isinstance(exc, OSError) and _raised_in_asyncpg(exc)


def as_unavailable(exc: BaseException) -> Unavailable | None:
    """The service error a client sees for a database outage; None when `exc` is something else."""
    if not database_unavailable(exc):
        return None
    return Unavailable(f"the database is unavailable; try again in {RETRY_AFTER_S} s")
