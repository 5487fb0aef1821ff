"""One transport-neutral error hierarchy with stable codes.

Each edge maps these to its transport in exactly one place: HTTP status in
`server.http_errors`, a WebSocket `error` message or close code in `signaling.session`.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    """An error a client may see. `code` is stable; `message` is for humans."""

    code: ClassVar[str] = "internal"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidArgument(ServiceError):
    code = "invalid_argument"


class Unauthenticated(ServiceError):
    code = "unauthenticated"


class PermissionDenied(ServiceError):
    code = "permission_denied"


class NotFound(ServiceError):
    code = "not_found"


class Conflict(ServiceError):
    code = "conflict"


class PayloadTooLarge(ServiceError):
    code = "payload_too_large"


class RateLimited(ServiceError):
    code = "rate_limited"


class LimitExceeded(ServiceError):
    """A configured limit (room capacity, ...) would be passed."""

    code = "limit_exceeded"


class ProtocolViolation(ServiceError):
    code = "protocol_violation"


class Internal(ServiceError):
    code = "internal"


class Unavailable(ServiceError):
    """The server cannot take this now (shutting down)."""

    code = "unavailable"


class Banned(PermissionDenied):
    """The participant is banned from the workshop: every token of theirs is refused until the ban is lifted."""

    code = "banned"
