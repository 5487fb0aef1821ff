"""Recording states and the transitions allowed between them. Pure."""

from __future__ import annotations

from typing import Literal

State = Literal["starting", "recording", "stopping", "ready", "failed", "deleted"]
LIVE_STATES: frozenset[str] = frozenset({"starting", "recording", "stopping"})

ALLOWED: dict[str, frozenset[str]] = {
    "starting": frozenset({"recording", "failed"}),
    "recording": frozenset({"stopping", "failed"}),
    "stopping": frozenset({"ready", "failed"}),
    "ready": frozenset({"deleted"}),
    "failed": frozenset({"deleted"}),
    "deleted": frozenset(),
}


def can_move(current: str, target: str) -> bool:
    return target in ALLOWED.get(current, frozenset())


def consent_holds(mode: str, latest: bool | None) -> bool:
    """Explicit mode: only a yes counts. Assumed mode: anything but a no counts."""
    if mode == "explicit":
        return latest is True
    return latest is not False
