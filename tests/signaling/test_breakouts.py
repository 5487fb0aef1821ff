"""Breakouts through the real API and WebSocket: the reference workshop, restart, permissions."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from server.app import create_app
from tests.conftest import make_settings
from tests.helpers import ADMIN, bearer, create_workshop
from tests.signaling.client import SignalClient, join

COUNTRIES = ["AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR",
             "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU", "MT", "NL"]  # fmt: skip


async def import_roster(client: TestClient[Any, Any], workshop_id: str, per_country: int = 3) -> list[dict[str, Any]]:
    rows = ["display_name,country,organisation,email,role"]
    for c in COUNTRIES:
        rows += [f"Officer {c}{i},{c},Police {c},,participant" for i in range(per_country)]
    rows.append("Mia Moderator,IE,Bureau,,moderator")
    resp = await client.post(
        f"/api/v1/workshops/{workshop_id}/participants/import",
        data="\n".join(rows) + "\n",
        headers={**ADMIN, "Content-Type": "text/csv"},
    )
    assert resp.status == 201, await resp.text()
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return items


class Roster:
    """A client's view of its room, kept from welcome/moved and presence events."""

    def __init__(self, sc: SignalClient) -> None:
        self.sc = sc
        self.room = sc.welcome["room"]["id"]
        self.peers = {p["id"] for p in sc.welcome["peers"]}

    def apply(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "moved":
            self.room = msg["room"]["id"]
            self.peers = {p["id"] for p in msg["peers"]}
        elif msg["type"] == "peer_joined":
            self.peers.add(msg["peer"]["id"])
        elif msg["type"] == "peer_left":
            self.peers.discard(msg["peer_id"])

    async def until(self, type_: str, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(30):
            while True:
                msg = await self.sc.recv(30)
                self.apply(msg)
                if msg["type"] == type_ and all(msg.get(k) == v for k, v in match.items()):
                    return msg

    async def settle(self, expected_room: str, expected_peers: set[str]) -> None:
        """Read presence until the view matches, or fail after the timeout."""
        async with asyncio.timeout(30):
            while not (self.room == expected_room and self.peers == expected_peers):
                self.apply(await self.sc.recv(30))


async def test_reference_workshop_runs_a_full_country_mixed_breakout_cycle(client: TestClient[Any, Any]) -> None:
    workshop = await create_workshop(client)
    wid, plenary = workshop["id"], workshop["plenary_room_id"]
    people = await import_roster(client, wid)
    moderator = next(p for p in people if p["role"] == "moderator")
    officers = [p for p in people if p["role"] == "participant"]
    assert len(officers) == 60

    clients = await asyncio.gather(*(join(client, p["join_token"]) for p in people))
    views = {p["id"]: Roster(sc) for p, sc in zip(people, clients, strict=True)}
    mod = views[moderator["id"]]

    resp = await client.post(
        f"/api/v1/workshops/{wid}/breakouts",
        json={"name": "Day 1: case studies", "rooms": 10, "strategy": "country_mixed", "countdown_s": 1},
        headers=bearer(moderator["join_token"]),
    )
    assert resp.status == 201, await resp.text()
    plan = await resp.json()
    assert plan["state"] == "draft"
    assert len(plan["rooms"]) == 10
    room_of = {pid: rid for pid, rid in plan["assignments"].items()}
    assert set(room_of) == {p["id"] for p in officers}, "moderators are not assigned"
    country = {p["id"]: p["country"] for p in people}
    for room in plan["rooms"]:
        assert len(room["participant_ids"]) == 6
        assert len({country[pid] for pid in room["participant_ids"]}) == 6, "six countries in every room"

    resp = await client.post(
        f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/open",
        json={"duration_s": 2},
        headers=bearer(moderator["join_token"]),
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["state"] == "open"

    async def check_moved(pid: str) -> None:
        view = views[pid]
        opened = await view.until("breakouts_opened")
        assert opened["plan_id"] == plan["id"]
        assert opened["ends_at"] is not None
        await view.until("moved")
        assert view.room == room_of[pid]
        mates = {q for q, r in room_of.items() if r == room_of[pid] and q != pid}
        await view.settle(room_of[pid], mates)

    await asyncio.gather(*(check_moved(p["id"]) for p in officers))
    await mod.until("breakouts_opened")
    assert mod.room == plenary, "the moderator was not assigned and stays in the plenary"

    resp = await client.post(
        f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/broadcast",
        json={"text": "Five minutes left"},
        headers=bearer(moderator["join_token"]),
    )
    assert resp.status == 200
    got = await asyncio.gather(*(v.until("broadcast") for v in views.values()))
    assert {g["text"] for g in got} == {"Five minutes left"}
    assert got[0]["from"]["display_name"] == "Mia Moderator"

    asker = views[officers[0]["id"]]
    await asker.sc.send({"type": "ask_help", "text": "Our audio is broken", "request_id": "h1"})
    await asker.sc.send({"type": "ask_help", "request_id": "h2"})  # coalesces with the first
    await asker.until("ack", request_id="h2")
    help_msg = await mod.until("help_requested")
    assert help_msg["participant_id"] == officers[0]["id"]
    assert help_msg["room_id"] == room_of[officers[0]["id"]]

    # The timer runs out: a countdown, then everyone is back in the plenary.
    everyone = {p["id"] for p in people}

    async def check_back(pid: str) -> None:
        view = views[pid]
        closing = await view.until("breakouts_closing")
        assert closing["seconds"] == 1
        await view.until("breakouts_closed")
        await view.settle(plenary, everyone - {pid})

    await asyncio.gather(*(check_back(p["id"]) for p in officers), check_back(moderator["id"]))
    assert Counter(m["type"] for m in mod.sc.seen)["help_requested"] == 1, "repeated asks coalesce"

    resp = await client.get(f"/api/v1/workshops/{wid}/breakouts/{plan['id']}", headers=ADMIN)
    assert (await resp.json())["state"] == "closed"
    resp = await client.get(f"/api/v1/workshops/{wid}/moderator-actions", headers=ADMIN)
    actions = [a["action"] for a in (await resp.json())["items"]]
    assert actions[:3] == ["breakouts.create", "breakouts.open", "breakouts.broadcast"]
    for sc in clients:
        await sc.close()


async def test_breakouts_survive_a_server_restart_with_the_same_deadline(
    database_url: str, aiohttp_client: Any, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path / "var")
    first = await aiohttp_client(create_app(settings))
    workshop = await create_workshop(first)
    wid = workshop["id"]
    people = await import_roster(first, wid, per_country=1)
    officers = [p for p in people if p["role"] == "participant"]
    resp = await first.post(
        f"/api/v1/workshops/{wid}/breakouts",
        json={"name": "Groups", "rooms": ["North", "South"], "strategy": "balanced"},
        headers=ADMIN,
    )
    plan = await resp.json()
    resp = await first.post(
        f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/open", json={"duration_s": 600}, headers=ADMIN
    )
    opened = await resp.json()
    ana = await join(first, officers[0]["join_token"])
    assert ana.welcome["room"]["id"] == plan["assignments"][officers[0]["id"]]
    resume_token = ana.welcome["resume"]
    await first.close()

    second = await aiohttp_client(create_app(settings))
    again = await join(second, officers[0]["join_token"], resume=resume_token)
    assert again.welcome["room"]["id"] == plan["assignments"][officers[0]["id"]]
    assert again.welcome["breakout"]["plan_id"] == plan["id"]
    assert datetime.fromisoformat(again.welcome["breakout"]["ends_at"]) == datetime.fromisoformat(opened["ends_at"])
    assert 0 < again.welcome["breakout"]["remaining_s"] <= 600
    other = await join(second, officers[1]["join_token"])
    assert other.welcome["room"]["id"] == plan["assignments"][officers[1]["id"]]
    resp = await second.get(f"/api/v1/workshops/{wid}/breakouts/{plan['id']}", headers=ADMIN)
    after = await resp.json()
    assert after["state"] == "open"
    assert after["ends_at"] == opened["ends_at"]
    await again.close()
    await other.close()


async def test_participants_and_other_workshops_moderators_are_refused_every_breakout_call(
    client: TestClient[Any, Any],
) -> None:
    workshop = await create_workshop(client)
    other = await create_workshop(client, title="Another workshop")
    people = await import_roster(client, workshop["id"], per_country=1)
    participant = next(p for p in people if p["role"] == "participant")
    resp = await client.post(
        f"/api/v1/workshops/{other['id']}/participants",
        json={"display_name": "Other Mod", "country": "FR", "role": "moderator"},
        headers=ADMIN,
    )
    foreign_mod = await resp.json()
    resp = await client.post(
        f"/api/v1/workshops/{workshop['id']}/breakouts", json={"name": "P", "rooms": 2}, headers=ADMIN
    )
    plan_id = (await resp.json())["id"]
    base = f"/api/v1/workshops/{workshop['id']}/breakouts"
    calls = [
        ("POST", base, {"name": "X", "rooms": 2}),
        ("GET", base, None),
        ("GET", f"{base}/{plan_id}", None),
        ("PATCH", f"{base}/{plan_id}", {"name": "Y"}),
        ("DELETE", f"{base}/{plan_id}", None),
        ("PUT", f"{base}/{plan_id}/assignments", {"assignments": {}}),
        ("POST", f"{base}/{plan_id}/copy", {}),
        ("POST", f"{base}/{plan_id}/open", {}),
        ("POST", f"{base}/{plan_id}/extend", {"seconds": 60}),
        ("POST", f"{base}/{plan_id}/close", {}),
        ("POST", f"{base}/{plan_id}/broadcast", {"text": "hi"}),
        ("POST", f"{base}/{plan_id}/move", {"participant_id": participant["id"], "room_id": workshop["id"]}),
    ]
    for method, url, body in calls:
        resp = await client.request(method, url, json=body, headers=bearer(participant["join_token"]))
        assert resp.status == 403, (method, url, resp.status)
        assert (await resp.json())["error"]["code"] == "permission_denied"
        resp = await client.request(method, url, json=body, headers=bearer(foreign_mod["join_token"]))
        assert resp.status == 404, (method, url, resp.status)
        assert (await resp.json())["error"]["code"] == "not_found"
    resp = await client.get(f"{base}/{plan_id}", headers=ADMIN)
    assert (await resp.json())["name"] == "P", "nothing changed"
