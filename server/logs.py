"""Logging: text for a terminal, JSON lines for a log pipeline; request and session ids on every line
logged while serving one; tokens scrubbed from everything.

An HTTP request gets a request id, a WebSocket a session id (the client's `X-Request-Id` when it sends a
sane one, else a fresh one), held in context variables: tasks started while serving inherit them, so the
recorder's lines name the request that started it. The id is sent back in `X-Request-Id`."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sys
import traceback
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
SESSION_ID: ContextVar[str | None] = ContextVar("session_id", default=None)
REQUEST_ID_HEADER = "X-Request-Id"
_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
WEBSOCKET_PATH = "/ws"

# Whatever a token looks like: join tokens (JWT), the admin token, bearer headers, signed-URL parameters.
_SECRETS = re.compile(
    r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"
    r"|rt_admin_[A-Za-z0-9_-]+"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]+"
    r"|(?<=[?&])(?:token|sig|resume)=[^&\s\"']+"
)
REDACTED = "[redacted]"
# LogRecord attributes that are not `extra=` fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def scrub(text: str) -> str:
    return _SECRETS.sub(REDACTED, text)


class ContextFilter(logging.Filter):
    """Stamps each record with the ids of the request or session it was logged in."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        record.session_id = SESSION_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        for key in ("request_id", "session_id"):
            if getattr(record, key, None):
                line[key] = getattr(record, key)
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line and key not in ("request_id", "session_id"):
                line[key] = value if isinstance(value, int | float | bool | type(None)) else scrub(str(value))
        if record.exc_info:
            line["exception"] = scrub("".join(traceback.format_exception(*record.exc_info)).rstrip())
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(ids)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = [
            f"{k.split('_')[0]}={getattr(record, k)}" for k in ("request_id", "session_id") if getattr(record, k, None)
        ]
        record.ids = f" [{' '.join(ids)}]" if ids else ""
        return scrub(super().format(record))


def configure_logging(level: str, log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)
    if log_format == "json":
        logging.getLogger(__name__).debug("logging as JSON lines", extra={"pid": os.getpid()})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def log_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = given if _SANE_ID.match(given) else secrets.token_hex(8)
    var = SESSION_ID if request.path == WEBSOCKET_PATH else REQUEST_ID
    reset = var.set(request_id)
    try:
        response = await handler(request)
    finally:
        var.reset(reset)
    if not response.prepared:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


async def echo_session_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: a WebSocket's headers go out inside its handler, while the session id is set."""
    session_id = SESSION_ID.get()
    if session_id and request.path == WEBSOCKET_PATH:
        response.headers[REQUEST_ID_HEADER] = session_id
