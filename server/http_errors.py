"""Mapping service errors to HTTP: the one place where a code becomes a status."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import ValidationError

from signaling.errors import InvalidArgument, ServiceError
from signaling.outage import RETRY_AFTER_S, as_unavailable

log = logging.getLogger(__name__)

STATUS_BY_CODE: dict[str, int] = {
    "invalid_argument": 400,
    "unauthenticated": 401,
    "banned": 403,  # before permission_denied: CODE_BY_STATUS keeps the last code of a status
    "permission_denied": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "limit_exceeded": 422,
    "rate_limited": 429,
    "internal": 500,
    "unavailable": 503,
}
CODE_BY_STATUS = {status: code for code, status in STATUS_BY_CODE.items()}


def error_response(code: str, message: str, details: Any = None, *, status: int | None = None) -> web.Response:
    body = {"error": {"code": code, "message": message, "details": details}}
    response = web.json_response(body, status=status or STATUS_BY_CODE.get(code, 500))
    if code == "unauthenticated":
        response.headers["WWW-Authenticate"] = 'Bearer realm="roundtable"'
    elif code == "unavailable":
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    """Field paths and messages only: never the input values or pydantic's internals."""
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def invalid(exc: ValidationError, message: str = "request body is invalid") -> InvalidArgument:
    return InvalidArgument(message, details=validation_details(exc))


class MalformedRequestLog(logging.Filter):
    """aiohttp answers a request it cannot parse (a header line over the limit, bad framing) with 400 itself and logs
    it with a traceback. It is the client's mistake: one line at INFO, without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = f"{record.msg}: %s"
            record.args = (*(record.args if isinstance(record.args, tuple) else ()), type(exc).__name__)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def request_logger() -> logging.Logger:
    """The logger aiohttp's request handler writes to (handler_args), with the filter above."""
    logger = logging.getLogger("server.requests")
    if not any(isinstance(f, MalformedRequestLog) for f in logger.filters):
        logger.addFilter(MalformedRequestLog())
    return logger


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ServiceError as exc:
        return error_response(exc.code, exc.message, exc.details)
    except web.HTTPRequestEntityTooLarge:
        return error_response("payload_too_large", "request body is too large")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = CODE_BY_STATUS.get(exc.status, "invalid_argument" if exc.status < 500 else "internal")
        response = error_response(code, exc.reason, status=exc.status)
        if "Allow" in exc.headers:  # a 405 must say which methods the resource has (RFC 9110 15.5.6)
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except json.JSONDecodeError:
        return error_response("invalid_argument", "body is not valid JSON")
    except Exception as exc:
        outage = as_unavailable(exc)
        if outage is not None:
            log.warning("%s %s: the database is unavailable: %r", request.method, request.path, exc)
            return error_response(outage.code, outage.message)
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response("internal", "internal error")
