"""The one wall clock of the record: when someone joined, left or dropped, and when the server was last alive.

Injected wherever a time is written into the record, so that a test can say what time it is instead of waiting
for it. Timers (grace periods, countdowns) stay on the event loop's monotonic clock: they measure durations, not
moments of the record.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FileClock:
    """The time written in a file (ISO 8601), for tests that drive a server process from outside
    (ROUNDTABLE_CLOCK_FILE). Read on every call (file timestamps are too coarse to tell two quick writes apart);
    an unreadable file is an error, never a silent fall-back to the system clock."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def now(self) -> datetime:
        value = datetime.fromisoformat(self.path.read_text(encoding="utf-8").strip())
        if value.tzinfo is None:
            raise ValueError(f"{self.path}: the time needs a UTC offset")
        return value.astimezone(UTC)


class ManualClock:
    """A clock a test sets by hand (in-process tests)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def set(self, at: datetime) -> None:
        self.at = at
