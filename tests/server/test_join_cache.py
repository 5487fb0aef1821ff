"""Joins answered from memory (server.join_cache) follow every change that matters: a revoked or removed
participant never joins again, and roster edits, room edits and deletions, and breakout plans show on the next
join, each after the participant was first read (so that the next join would otherwise come from the cache)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from server import keys
from server.join_cache import JoinCache, JoinEntry
from signaling.protocol import RoomInfo
from signaling.rooms import Profile
from tests.helpers import ADMIN, add_participant, create_workshop
from tests.signaling.client import SignalClient, connect, join

CLOSE_UNAUTHENTICATED = 4401


async def visit(client: TestClient[Any, Any], token: str) -> dict[str, Any]:
    """Join, then leave at once: the welcome."""
    sc = await join(client, token)
    await sc.send({"type": "leave"})
    assert await sc.wait_closed() == 1000
    return sc.welcome


async def refused(client: TestClient[Any, Any], token: str) -> tuple[str, int | None]:
    sc = SignalClient(await connect(client))
    await sc.send({"type": "hello", "protocol": [1], "token": token})
    error = await sc.recv()
    assert error["type"] == "error", error
    return error["message"], await sc.wait_closed()


def cached(client: TestClient[Any, Any], participant_id: str) -> JoinEntry | None:
    return client.app[keys.STORE].joins.get(uuid.UUID(participant_id))


async def room(client: TestClient[Any, Any], wid: str, name: str, capacity: int = 10) -> dict[str, Any]:
    resp = await client.post(f"/api/v1/workshops/{wid}/rooms", json={"name": name, "capacity": capacity}, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_a_revoked_token_never_joins_again_though_the_participant_was_cached(
    client: TestClient[Any, Any],
) -> None:
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"])
    await visit(client, ana["join_token"])
    assert cached(client, ana["id"]) is not None

    resp = await client.post(f"/api/v1/workshops/{workshop['id']}/participants/{ana['id']}/revoke", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    assert await refused(client, ana["join_token"]) == ("token revoked", CLOSE_UNAUTHENTICATED)
    # Refused from memory too, once the new generation was read.
    assert cached(client, ana["id"]) is not None
    assert await refused(client, ana["join_token"]) == ("token revoked", CLOSE_UNAUTHENTICATED)

    resp = await client.post(f"/api/v1/workshops/{workshop['id']}/participants/{ana['id']}/token", headers=ADMIN)
    assert resp.status in (200, 201), await resp.text()
    fresh = (await resp.json())["join_token"]
    assert (await visit(client, fresh))["self"]["id"] == ana["id"]


async def test_a_removed_participant_never_joins_again(client: TestClient[Any, Any]) -> None:
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"])
    await visit(client, ana["join_token"])
    resp = await client.delete(f"/api/v1/workshops/{workshop['id']}/participants/{ana['id']}", headers=ADMIN)
    assert resp.status == 204, await resp.text()
    assert cached(client, ana["id"]) is None
    message, code = await refused(client, ana["join_token"])
    assert code == CLOSE_UNAUTHENTICATED, message


async def test_roster_edits_show_on_the_next_join(client: TestClient[Any, Any]) -> None:
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"])
    assert (await visit(client, ana["join_token"]))["self"]["display_name"] == "Ana Pereira"
    resp = await client.patch(
        f"/api/v1/workshops/{workshop['id']}/participants/{ana['id']}",
        json={"display_name": "Ana P.", "role": "observer"},
        headers=ADMIN,
    )
    assert resp.status == 200, await resp.text()
    me = (await visit(client, ana["join_token"]))["self"]
    assert (me["display_name"], me["role"], me["may_publish"]) == ("Ana P.", "observer", False)


async def test_a_new_home_room_is_where_the_next_join_lands(client: TestClient[Any, Any]) -> None:
    workshop = await create_workshop(client)
    wid = workshop["id"]
    side = await room(client, wid, "Side room")
    ana = await add_participant(client, wid)
    assert (await visit(client, ana["join_token"]))["room"]["id"] == workshop["plenary_room_id"]
    resp = await client.patch(
        f"/api/v1/workshops/{wid}/participants/{ana['id']}", json={"room_id": side["id"]}, headers=ADMIN
    )
    assert resp.status == 200, await resp.text()
    assert (await visit(client, ana["join_token"]))["room"]["id"] == side["id"]


async def test_room_edits_and_deletion_show_on_the_next_join(client: TestClient[Any, Any]) -> None:
    workshop = await create_workshop(client)
    wid = workshop["id"]
    side = await room(client, wid, "Side room")
    ana = await add_participant(client, wid, room_id=side["id"])
    assert (await visit(client, ana["join_token"]))["room"]["name"] == "Side room"

    resp = await client.patch(f"/api/v1/workshops/{wid}/rooms/{side['id']}", json={"name": "Quiet room"}, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    assert (await visit(client, ana["join_token"]))["room"]["name"] == "Quiet room"

    resp = await client.delete(f"/api/v1/workshops/{wid}/rooms/{side['id']}", headers=ADMIN)
    assert resp.status == 204, await resp.text()
    assert (await visit(client, ana["join_token"]))["room"]["id"] == workshop["plenary_room_id"]


async def test_breakouts_opening_moves_and_closing_decide_the_next_join(client: TestClient[Any, Any]) -> None:
    workshop = await create_workshop(client)
    wid, plenary = workshop["id"], workshop["plenary_room_id"]
    ana = await add_participant(client, wid)
    assert (await visit(client, ana["join_token"]))["room"]["id"] == plenary

    base = f"/api/v1/workshops/{wid}/breakouts"
    resp = await client.post(base, json={"name": "Groups", "rooms": 2, "assignments": {ana["id"]: 0}}, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    plan = await resp.json()
    first, second = (r["id"] for r in plan["rooms"])
    assert (await visit(client, ana["join_token"]))["room"]["id"] == plenary, "a draft plan moves nobody"

    resp = await client.post(f"{base}/{plan['id']}/open", json={"duration_s": 600}, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    assert (await visit(client, ana["join_token"]))["room"]["id"] == first

    resp = await client.post(
        f"{base}/{plan['id']}/move", json={"participant_id": ana["id"], "room_id": second}, headers=ADMIN
    )
    assert resp.status == 200, await resp.text()
    assert (await visit(client, ana["join_token"]))["room"]["id"] == second

    resp = await client.post(f"{base}/{plan['id']}/close", json={"countdown_s": 0}, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    async with asyncio.timeout(10):
        while True:
            resp = await client.get(f"{base}/{plan['id']}", headers=ADMIN)
            if (await resp.json())["state"] == "closed":
                break
            await asyncio.sleep(0.05)
    assert (await visit(client, ana["join_token"]))["room"]["id"] == plenary


# The cache's own rules -----------------------------------------------------------------------------------------


def _entry(pid: uuid.UUID, generation: int = 0) -> JoinEntry:
    info = RoomInfo(
        id=str(uuid.uuid4()), workshop_id=str(uuid.uuid4()), name="Plenary", kind="plenary", media="mesh", capacity=10
    )
    return JoinEntry(pid, uuid.UUID(info.workshop_id), generation, Profile("Ana", "PT", "", "participant"), info)


def test_a_read_that_raced_a_forget_is_not_kept_nor_valid() -> None:
    cache, pid = JoinCache(), uuid.uuid4()
    read_at = cache.version  # a join starts reading ...
    cache.forget(pid)  # ... a revocation commits meanwhile ...
    cache.put(_entry(pid), read_at=read_at)  # ... and the join's (old) row arrives
    assert cache.get(pid) is None
    assert not cache.still_valid(pid, None, read_at)
    assert cache.still_valid(pid, None, cache.version), "a read after the forget is good"
    assert cache.still_valid(uuid.uuid4(), None, read_at), "others are not affected"


def test_forget_all_drops_every_entry_and_every_read_in_flight() -> None:
    cache, pid = JoinCache(), uuid.uuid4()
    cache.put(_entry(pid), read_at=cache.version)
    read_at = cache.version
    cache.forget_all()
    assert cache.get(pid) is None
    assert not cache.still_valid(pid, None, read_at)


def test_a_room_edit_forgets_the_entries_in_that_room_only() -> None:
    cache, ana, ben = JoinCache(), uuid.uuid4(), uuid.uuid4()
    a, b = _entry(ana), _entry(ben)
    cache.put(a, read_at=cache.version)
    cache.put(b, read_at=cache.version)
    read_at = cache.version
    cache.forget_room(a.room.id)
    assert (cache.get(ana), cache.get(ben)) == (None, b)
    assert not cache.still_valid(ana, a.room.id, read_at), "a read carrying the old room is stale"
    assert cache.still_valid(ben, b.room.id, read_at)


def test_a_remembered_token_still_expires_and_a_tampered_one_is_verified_afresh(monkeypatch: Any) -> None:
    import time
    from datetime import UTC, datetime, timedelta

    import pytest

    from server import auth
    from signaling.errors import Unauthenticated

    signer = auth.TokenSigner("k" * 32)
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=60)
    token = signer.mint(
        workshop_id=uuid.uuid4(), participant_id=uuid.uuid4(), role="participant", generation=3, expires_at=expires
    )
    first = signer.verify(token)
    assert signer.verify(token) is first, "remembered"
    with pytest.raises(Unauthenticated, match="invalid token"):
        signer.verify(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    later = time.time() + 61
    monkeypatch.setattr(auth.time, "time", lambda: later)
    with pytest.raises(Unauthenticated, match="token expired"):
        signer.verify(token)
