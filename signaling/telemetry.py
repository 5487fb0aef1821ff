"""What signalling reports for operations (implemented by server.metrics over prometheus-client). Pure.

A port, so that signalling never imports the server: the service and the sessions call these, and
`NoTelemetry` is the default for tests and tools that do not watch."""

from __future__ import annotations

from typing import Protocol


class SignalingTelemetry(Protocol):
    def joined(self, *, seconds: float, resumed: bool) -> None:
        """A hello was admitted (`resumed`: it took back an earlier place) after `seconds`."""
        ...

    def relayed(self, kind: str, size_bytes: int) -> None:
        """An offer, answer or candidate was forwarded; `size_bytes` as encoded for the receiver."""
        ...

    def error(self, code: str) -> None:
        """An `error` message was sent to a client."""
        ...

    def evicted(self) -> None:
        """A connection too slow to drain its send queue was closed (1013)."""
        ...

    def db_error(self, operation: str) -> None:
        """A database write of signalling failed (it is retried)."""
        ...


class NoTelemetry:
    def joined(self, *, seconds: float, resumed: bool) -> None:
        pass

    def relayed(self, kind: str, size_bytes: int) -> None:
        pass

    def error(self, code: str) -> None:
        pass

    def evicted(self) -> None:
        pass

    def db_error(self, operation: str) -> None:
        pass
