"""Where a new SFU room goes: the Janus instances this node knows, their load, and the choice.

The bridge asks its `Placement` port for the candidates when it creates a room in Janus (never per message or
packet), skips the ones it knows to be dead, and takes the least loaded; on a tie, the first in the port's order
(this node's own Janus first, then the configured external ones, then other nodes' Janus). Load is the number of
live rooms placed on a Janus by any node plus their members (server/sfu_placement.py keeps it in PostgreSQL), so a
300-person plenary weighs what it costs. A room that already lives on a Janus that answers (a previous owner placed
it there: it died, or gave the workshop up) goes back there whatever the load, so that a new owner takes that room
over (Janus's `create` finds it and it is made again) instead of leaving it behind, empty, on the other Janus.

Secrets are never stored: the configured external Janus share ROUNDTABLE_SFU_API_SECRET / _SFU_ADMIN_KEY, and a
node's embedded Janus, in a deployment of several nodes, has secrets derived from ROUNDTABLE_SECRET_KEY and its URL
(`derived_endpoint`), which every node of the deployment can compute (docs/sfu.md#several-janus).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class JanusEndpoint:
    url: str
    api_secret: str
    admin_key: str


@dataclass(frozen=True)
class Candidate:
    endpoint: JanusEndpoint
    load: int  # live rooms placed on it, by every node, plus their members
    previous: bool = False  # the room asked about already lives there (placed by a previous owner)


class Placement(Protocol):
    """What the bridge asks when it places a room (implemented in server/sfu_placement.py)."""

    async def candidates(self, room_id: str | None = None) -> list[Candidate]:
        """The known Janus instances with their load, in the order ties are broken, the one `room_id` already
        lives on marked `previous`. Never raises: without the database it answers what it knows without it (the
        configured ones, load 0)."""
        ...

    async def occupancy(self, counts: dict[str, int]) -> None:
        """How many members each of this node's rooms has now (room id -> count; part of the Janus's load)."""
        ...

    async def placed(self, room_id: str, url: str) -> None:
        """The room now lives on `url` (counted in its load)."""
        ...

    async def released(self, room_id: str) -> None:
        """The room is gone from Janus (ended, or placed again elsewhere by `placed`)."""
        ...

    async def release_all(self) -> None:
        """This node stops: none of its rooms counts any more."""
        ...


def choose(candidates: Sequence[Candidate], skip: Callable[[str], bool]) -> JanusEndpoint | None:
    """The Janus the room already lives on if it answers, else the least loaded candidate whose URL is not
    skipped; the first of equals (stable); None if none is left."""
    best: Candidate | None = None
    for candidate in candidates:
        if skip(candidate.endpoint.url):
            continue
        if candidate.previous:
            return candidate.endpoint
        if best is None or candidate.load < best.load:
            best = candidate
    return best.endpoint if best is not None else None


def _mac(secret_key: str, purpose: str, url: str) -> str:
    digest = hmac.new(secret_key.encode(), f"roundtable janus {purpose}\n{url}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


def derived_endpoint(secret_key: str, url: str) -> JanusEndpoint:
    """The embedded Janus at `url` of a node of this deployment: its api_secret and admin_key follow from the
    deployment's shared ROUNDTABLE_SECRET_KEY and the URL (distinct per Janus, computable by every node)."""
    return JanusEndpoint(url, _mac(secret_key, "api_secret", url), _mac(secret_key, "admin_key", url))
