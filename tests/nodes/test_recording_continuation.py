"""A dead node costs nobody their place, the recording's neither (docs/recordings.md "Continuation after a failover"):
real `python -m server` nodes on one PostgreSQL and one NATS server (tests/nodes/test_any_node.py). A mesh room is
recorded on its workshop's owner with two aiortc peers, one consenting and one declining; the owner is SIGKILLed (or
drained with SIGTERM). The old recording ends `ready` and partial; the new owner starts its continuation as soon as
the peers are back, with their answers carried over (the decliner is not recorded, nobody is asked again); a stop of
the room's recording through another node stops the continuation; both parts link each other."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.helpers import ADMIN
from tests.nodes.test_any_node import Node, NodeClient, http, join, new_workshop, three_nodes
from tests.recordings.peer import ColourTrack, RecordedPeer, ToneTrack
from tests.signaling.client import join as signal_join
from tests.signaling.rtc_peer import loopback_ice

__all__ = ["http"]  # the fixture, imported for the tests below

WAIT_S = 30.0


class Peer(RecordedPeer):
    """A RecordedPeer that can come back through another node with its resume token."""

    def __init__(self, http: aiohttp.ClientSession, node: Node, token: str, colour: str, hz: int) -> None:
        super().__init__(NodeClient(http, node), token, colour, hz)  # type: ignore[arg-type]
        self.http = http

    async def come_back(self, node: Node) -> dict[str, Any]:
        """Reconnect through `node` with the resume token (fresh media: the old connection went with the recorder);
        the welcome."""
        assert self.signal is not None
        resume = self.signal.welcome["resume"]
        await self.close()
        self.client = NodeClient(self.http, node)  # type: ignore[assignment]
        self.video, self.audio = ColourTrack(self.colour), ToneTrack(self.audio.hz)
        self.pc, self.connected = None, asyncio.Event()
        async with asyncio.timeout(WAIT_S):  # it waits there until the dead owner's lease lapsed
            self.signal = await signal_join(self.client, self.token, resume=resume)  # type: ignore[arg-type]
        self._reader = asyncio.create_task(self._read())
        return self.signal.welcome

    async def continuation_of(self, recording_id: str, welcome: dict[str, Any]) -> dict[str, Any]:
        """The continuation's status: in the welcome when it had started already, else `recording_started`."""
        status = welcome.get("recording")
        if status is None:
            status = await self.next("recording_started")
        assert status["continues"] == recording_id, status
        return status


async def _recording(http: aiohttp.ClientSession, node: Node, recording_id: str) -> dict[str, Any]:
    async with http.get(f"{node.url}/api/v1/recordings/{recording_id}", headers=ADMIN) as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
    return body


async def _chapters(http: aiohttp.ClientSession, node: Node, recording_id: str) -> dict[str, Any]:
    async with http.get(f"{node.url}/api/v1/recordings/{recording_id}/chapters", headers=ADMIN) as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
    return body


def _tracks(recording: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((t["participant_id"], t["kind"]) for t in recording["tracks"])


async def _recorded_then_continued(
    http: aiohttp.ClientSession,
    database_url: str,
    nodes: list[Node],
    end_owner: Callable[[Node], Awaitable[object]],
    *,
    killed: bool,
    after_takeover: Callable[[Node], Awaitable[None]] | None = None,
    resumed: bool = True,
) -> None:
    """The scenario: `nodes[0]` owns the workshop, ana (consents) comes through nodes[1], ben (declines) through the
    last; the owner is ended by `end_owner`; they come back through the other of the survivors."""
    owner, *others = nodes
    first, last = others[0], others[-1]
    _wid, tokens = await new_workshop(http, owner, "eva", "ana", "ben")
    eva = await join(http, owner, tokens["eva"], "eva")  # the owner's own member: the first session makes it own
    ana = Peer(http, first, tokens["ana"], "red", 440)
    ben = Peer(http, last, tokens["ben"], "blue", 660)
    try:
        await ana.join()
        await ben.join()
        plenary = eva.signal.welcome["room"]["id"]
        async with http.post(f"{first.url}/api/v1/rooms/{plenary}/recordings", headers=ADMIN) as resp:
            assert resp.status == 201, await resp.text()
            old_id = (await resp.json())["id"]
        for peer in (ana, ben):
            started = await peer.next("recording_started")
            assert started["recording_id"] == old_id and started.get("continues") is None
        await ana.consent(old_id, True)
        await ben.consent(old_id, False)
        await ana.send_media(started["recorder_peer_id"])
        await ana.wait_sending()

        await end_owner(owner)
        # Back through the other survivor each (edges that never owned the workshop): one of them takes it over.
        welcomes = await asyncio.gather(ana.come_back(last), ben.come_back(first))
        assert all(w["resumed"] is resumed for w in welcomes)
        statuses = [await p.continuation_of(old_id, w) for p, w in zip((ana, ben), welcomes, strict=True)]
        new_id = statuses[0]["recording_id"]
        assert new_id != old_id and statuses[1]["recording_id"] == new_id
        assert statuses[0]["consent_mode"] == "explicit"  # the workshop's, as the recording it continues
        if after_takeover is not None:
            await after_takeover(owner)

        # Ana's yes carried over: she sends to the new recorder without being asked. Ben's no too: refused.
        await ana.send_media(statuses[0]["recorder_peer_id"])
        await ana.wait_sending()
        await ben.send_media(statuses[1]["recorder_peer_id"])
        refused = await ben.next("error")
        assert refused["code"] == "permission_denied", refused

        # The moderator stops "the room's recording", through the survivor that does not own the workshop, by the id
        # it knew: the continuation stops.
        async with aiohttp.ClientSession() as api:
            leases = {n.name: await n.leases(api) for n in others}
        new_owner = next(n for n in others if leases[n.name] == 1)
        bystander = next(n for n in others if n is not new_owner)
        assert sorted(leases.values()) == [0, 1]
        async with http.post(f"{bystander.url}/api/v1/recordings/{old_id}/stop", headers=ADMIN) as resp:
            assert resp.status == 200, await resp.text()
            stopped = await resp.json()
        assert stopped["id"] == old_id and stopped["continued_by"] == new_id
        for peer in (ana, ben):
            assert (await peer.next("recording_stopped"))["recording_id"] == new_id

        old, new = await _recording(http, bystander, old_id), await _recording(http, bystander, new_id)
        # Killed: what the dead recorder wrote is kept, partial. Drained: its recorder finished its files first.
        assert (old["state"], old["partial"], old["continues"], old["continued_by"]) == ("ready", killed, None, new_id)
        assert (new["state"], new["partial"], new["continues"], new["continued_by"]) == ("ready", False, old_id, None)
        assert new["started_by"] is None
        # Only ana is in either part: ben's no held before the failover and was carried over.
        assert _tracks(old) == _tracks(new) == [(ana.id, "audio"), (ana.id, "video")]
        assert all(t["bytes"] for t in new["tracks"])
        carried = {(e["participant_id"], e["granted"], e["carried_from"]) for e in new["consent"]["ledger"]}
        assert carried == {(ana.id, True, old_id), (ben.id, False, old_id)}
        assert (new["consent"]["granted"], new["consent"]["declined"]) == ([ana.id], [ben.id])
        assert (await _chapters(http, bystander, old_id))["continued_by"] == new_id
        assert (await _chapters(http, bystander, new_id))["continues"] == old_id

        db = await asyncpg.connect(database_url)
        try:
            entries = await db.fetch(
                "SELECT actor_role, target, details FROM audit_entries WHERE action = 'recording.continue' "
                "AND target->>'continues' = $1",
                old_id,
            )
            node_of = await db.fetchval("SELECT node_id FROM recordings WHERE id = $1", uuid.UUID(new_id))
        finally:
            await db.close()
        assert len(entries) == 1 and entries[0]["actor_role"] == "system"
        assert json.loads(entries[0]["target"])["recording_id"] == new_id
        assert json.loads(entries[0]["details"])["node_id"] == node_of  # it ran on the new owner
    finally:
        await asyncio.gather(ana.close(), ben.close(), return_exceptions=True)


@pytest.mark.slow
async def test_the_owner_killed_while_recording_a_mesh_room_its_new_owner_continues_with_each_answer_carried(
    database_url: str, bus_url: str, tmp_path: Path, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback_ice(monkeypatch)
    shared = {"ROUNDTABLE_RECORDINGS_DIR": str(tmp_path / "recordings"), "ROUNDTABLE_ICE_HOST_ADDRESSES": "127.0.0.1"}
    async with three_nodes(database_url, bus_url, tmp_path, **shared) as nodes:
        await _recorded_then_continued(http, database_url, nodes, lambda owner: owner.kill(), killed=True)


@pytest.mark.slow
async def test_a_drained_owners_recording_is_continued_by_the_node_that_takes_its_workshop(
    database_url: str, bus_url: str, tmp_path: Path, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback_ice(monkeypatch)
    shared = {"ROUNDTABLE_RECORDINGS_DIR": str(tmp_path / "recordings"), "ROUNDTABLE_ICE_HOST_ADDRESSES": "127.0.0.1"}

    async def drain(owner: Node) -> None:
        assert await owner.terminate() == 0, owner.log()[-3000:]
        assert "Traceback" not in owner.log(), owner.log()[-3000:]

    async with three_nodes(database_url, bus_url, tmp_path, **shared) as nodes:
        await _recorded_then_continued(http, database_url, nodes, drain, killed=False)


@pytest.mark.slow
async def test_an_owner_paused_past_its_lease_is_continued_by_the_new_owner_and_starts_nothing_when_it_wakes(
    database_url: str, bus_url: str, tmp_path: Path, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback_ice(monkeypatch)
    shared = {"ROUNDTABLE_RECORDINGS_DIR": str(tmp_path / "recordings"), "ROUNDTABLE_ICE_HOST_ADDRESSES": "127.0.0.1"}

    async def pause(owner: Node) -> None:
        owner.server.proc.send_signal(signal.SIGSTOP)

    async def wake(owner: Node) -> None:
        # Awake, it finds the lease gone and ends its recorder; the recording is finalised and continued already.
        seen = len(owner.server.output)
        owner.server.proc.send_signal(signal.SIGCONT)
        await owner.logs("ended here: the lease of workshop", after=seen)

    async with three_nodes(database_url, bus_url, tmp_path, **shared) as nodes:
        try:
            # (A paused owner's places are not taken while it may still be alive: its members come back as new, as
            # tests/nodes/test_any_node.py's paused owner test shows; their answers carry over all the same.)
            await _recorded_then_continued(
                http, database_url, nodes, pause, killed=True, after_takeover=wake, resumed=False
            )
        finally:
            nodes[0].server.proc.send_signal(signal.SIGCONT)
