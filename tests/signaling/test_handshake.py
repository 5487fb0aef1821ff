"""The life of a session without media: resume within and after the grace period, replacement by a
second connection, revocation and removal while connected, heartbeat, shutdown."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from signaling.turn import verify_turn_credentials
from tests.conftest import make_settings
from tests.helpers import ADMIN, add_participant, create_workshop
from tests.signaling.client import SignalClient, connect, join


async def settle(sc: SignalClient, tag: str) -> list[dict[str, Any]]:
    """Everything queued for `sc` before now (a no-op `update` is acked after it)."""
    start = len(sc.seen)
    await sc.send({"type": "update", "request_id": tag})
    await sc.wait_for("ack", request_id=tag)
    return sc.seen[start:-1]


async def three(client: TestClient[Any, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    workshop = await create_workshop(client)
    people = [
        await add_participant(client, workshop["id"], display_name=name, country=country)
        for name, country in (("Ana", "PT"), ("Ben", "DE"), ("Cleo", "FR"))
    ]
    return workshop, people


async def app_with(database_url: str, tmp_path: Path, aiohttp_client: Any, **overrides: Any) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(
        create_app(make_settings(database_url, tmp_path / "var", **overrides))
    )
    return client


# Welcome ------------------------------------------------------------------------------------------


async def test_welcome_describes_self_room_peers_ice_and_limits_and_echoes_the_hello_request_id(
    database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client = await app_with(
        database_url,
        tmp_path,
        aiohttp_client,
        stun_urls=["stun:stun.example.org:3478"],
        turn_urls=["turn:turn.example.org:3478?transport=udp"],
        turn_secret="turn-shared-secret",
        ws_rate_per_s=25.0,
        ws_rate_burst=99,
    )
    workshop, (ana, ben, _) = await three(client)
    a = await join(client, ana["join_token"])
    sc = SignalClient(await connect(client))
    await sc.send({"type": "hello", "protocol": [3, 1, 2], "token": ben["join_token"], "request_id": "hello-1"})
    w = await sc.recv()
    assert w["type"] == "welcome"
    assert w["request_id"] == "hello-1"
    assert w["protocol"] == 1
    assert w["self"] == {
        "id": ben["id"],
        "display_name": "Ben",
        "country": "DE",
        "organisation": "",
        "role": "participant",
        "state": {"audio": True, "video": True, "screen": False, "hand": False, "hand_raised_at": None},
        "may_publish": True,
        "interpreter": None,
    }
    assert w["room"] == {
        "id": workshop["plenary_room_id"],
        "workshop_id": workshop["id"],
        "name": w["room"]["name"],
        "kind": "plenary",
        "media": "mesh",
        "capacity": 300,
        "publishing": "open",
        "locked": False,
    }
    assert [p["id"] for p in w["peers"]] == [ana["id"]]
    assert w["peers"][0]["polite"] == (ben["id"] < ana["id"])
    assert w["resumed"] is False
    assert w["resume"].startswith(ben["id"] + ".")
    assert w["resume"] != a.welcome["resume"]
    limits = w["limits"]
    assert (limits["max_message_bytes"], limits["rate_per_s"], limits["rate_burst"]) == (65536, 25.0, 99)
    assert limits["chat_max_chars"] == 2000
    stun, turn = w["ice_servers"]
    assert stun["urls"] == ["stun:stun.example.org:3478"]
    assert turn["urls"] == ["turn:turn.example.org:3478?transport=udp"]
    expiry, _, user = turn["username"].partition(":")
    assert user == ben["id"]
    now = int(time.time())
    assert now < int(expiry) <= now + 6 * 3600 + 5
    assert verify_turn_credentials("turn-shared-secret", turn["username"], turn["credential"], now_s=now)


# Resume -------------------------------------------------------------------------------------------


async def test_resume_within_grace_keeps_id_room_and_state_and_others_never_see_peer_left(
    client: TestClient[Any, Any],
) -> None:
    _, (ana, ben, cleo) = await three(client)
    a = await join(client, ana["join_token"])
    b = await join(client, ben["join_token"])
    await a.wait_for("peer_joined")
    await a.send({"type": "update", "hand": True, "video": False})
    await b.wait_for("peer_updated")
    first = a.welcome

    await a.close()  # a drop: no `leave`
    assert (await b.wait_for("peer_reconnecting"))["peer_id"] == ana["id"]
    # Meanwhile: unreachable, but still listed (as reconnecting) for a newcomer.
    await b.send({"type": "offer", "to": ana["id"], "sdp": "v=0", "request_id": "gap"})
    assert (await b.wait_for("error", request_id="gap"))["code"] == "not_found"
    c = await join(client, cleo["join_token"])
    listed = {p["id"]: p for p in c.welcome["peers"]}
    assert listed[ana["id"]]["reconnecting"] is True
    assert listed[ben["id"]]["reconnecting"] is False

    a2 = await join(client, ana["join_token"], resume=first["resume"])
    w = a2.welcome
    assert w["resumed"] is True
    assert w["self"]["id"] == ana["id"]
    assert w["room"] == first["room"]
    state = w["self"]["state"]
    assert state.pop("hand_raised_at") is not None
    assert state == {"audio": True, "video": False, "screen": False, "hand": True}
    assert {p["id"] for p in w["peers"]} == {ben["id"], cleo["id"]}
    assert w["chat"] == []
    assert w["resume"] != first["resume"]
    for sc in (b, c):
        assert (await sc.wait_for("peer_resumed"))["peer_id"] == ana["id"]

    # Reachable again, and nobody was ever told it left.
    await b.send({"type": "offer", "to": ana["id"], "sdp": "v=0 again"})
    assert (await a2.wait_for("offer"))["from"] == ben["id"]
    for sc in (b, c):
        seen = await settle(sc, "end")
        assert not [m for m in sc.seen if m["type"] == "peer_left"], sc.seen
        assert not [m for m in seen if m["type"] == "peer_joined" and m["peer"]["id"] == ana["id"]]


async def test_resume_while_the_old_socket_still_looks_open_closes_it_with_4409(client: TestClient[Any, Any]) -> None:
    _, (ana, ben, _) = await three(client)
    a = await join(client, ana["join_token"])
    b = await join(client, ben["join_token"])
    a2 = await join(client, ana["join_token"], resume=a.welcome["resume"])
    assert a2.welcome["resumed"] is True
    assert await a.wait_closed() == 4409
    assert (await b.wait_for("peer_resumed"))["peer_id"] == ana["id"]
    await b.send({"type": "offer", "to": ana["id"], "sdp": "v=0"})
    assert (await a2.wait_for("offer"))["from"] == ben["id"]
    await settle(b, "end")
    assert not [m for m in b.seen if m["type"] in ("peer_left", "peer_reconnecting")]


async def test_a_resume_token_works_only_for_its_participant_and_is_spent_once_a_newer_one_was_used(
    client: TestClient[Any, Any],
) -> None:
    _, (ana, ben, cleo) = await three(client)
    a = await join(client, ana["join_token"])
    b = await join(client, ben["join_token"])
    stale = a.welcome["resume"]
    await a.close()
    await b.wait_for("peer_reconnecting")
    # Someone else's resume token does not resume anything of theirs or of ours.
    c = await join(client, cleo["join_token"], resume=stale)
    assert c.welcome["resumed"] is False and c.id == cleo["id"]
    a2 = await join(client, ana["join_token"], resume=stale)
    assert a2.welcome["resumed"] is True and a2.welcome["resume"] != stale
    await b.wait_for("peer_resumed")
    # That welcome may never have reached the client, which holds only the token it came back with: it still
    # resumes (the connection it replaces is closed with 4409), and the room sees a resume, not a leave and a join.
    a3 = await join(client, ana["join_token"], resume=stale)
    assert a3.welcome["resumed"] is True
    assert await a2.wait_closed() == 4409
    assert (await b.wait_for("peer_resumed"))["peer_id"] == ana["id"]
    # Once the client came back with a newer token, the older one is spent: a hello with it is a new join that
    # replaces the live session.
    a4 = await join(client, ana["join_token"], resume=a3.welcome["resume"])
    assert a4.welcome["resumed"] is True
    assert await a3.wait_closed() == 4409
    a5 = await join(client, ana["join_token"], resume=stale)
    assert a5.welcome["resumed"] is False
    assert await a4.wait_closed() == 4409
    assert (await b.wait_for("peer_left"))["reason"] == "replaced"
    assert (await b.wait_for("peer_joined"))["peer"]["id"] == ana["id"]


async def test_after_the_grace_period_others_get_peer_left_and_resume_starts_over(
    database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client = await app_with(database_url, tmp_path, aiohttp_client, resume_grace_s=0.5)
    _, (ana, ben, _) = await three(client)
    a = await join(client, ana["join_token"])
    b = await join(client, ben["join_token"])
    assert a.welcome["limits"]["resume_grace_s"] == 0.5
    await a.close()
    assert (await b.wait_for("peer_reconnecting"))["peer_id"] == ana["id"]
    left = await b.wait_for("peer_left", timeout=15)
    assert left == {"type": "peer_left", "peer_id": ana["id"], "reason": "timeout"}
    a2 = await join(client, ana["join_token"], resume=a.welcome["resume"])
    assert a2.welcome["resumed"] is False
    assert [p["id"] for p in a2.welcome["peers"]] == [ben["id"]]
    joined = await b.wait_for("peer_joined")
    assert joined["peer"]["id"] == ana["id"] and joined["peer"]["reconnecting"] is False


async def test_without_grace_a_drop_is_at_once_a_peer_left(
    database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client = await app_with(database_url, tmp_path, aiohttp_client, resume_grace_s=0)
    _, (ana, ben, _) = await three(client)
    a = await join(client, ana["join_token"])
    b = await join(client, ben["join_token"])
    await a.close()
    assert await b.wait_for("peer_left") == {"type": "peer_left", "peer_id": ana["id"], "reason": "disconnected"}
    assert not [m for m in b.seen if m["type"] == "peer_reconnecting"]


# Replacement, revocation, removal ----------------------------------------------------------------


async def test_a_second_connection_without_resume_replaces_the_first_with_4409(client: TestClient[Any, Any]) -> None:
    _, (ana, ben, _) = await three(client)
    a1 = await join(client, ana["join_token"])
    b = await join(client, ben["join_token"])
    await a1.wait_for("peer_joined")
    a2 = await join(client, ana["join_token"])
    assert a2.welcome["resumed"] is False
    assert a2.id == ana["id"]
    assert [p["id"] for p in a2.welcome["peers"]] == [ben["id"]]
    assert await a1.wait_closed() == 4409
    assert a1.ws.close_code == 4409
    assert await b.wait_for("peer_left") == {"type": "peer_left", "peer_id": ana["id"], "reason": "replaced"}
    assert (await b.wait_for("peer_joined"))["peer"]["id"] == ana["id"]
    await b.send({"type": "offer", "to": ana["id"], "sdp": "v=0 to the new one"})
    assert (await a2.wait_for("offer"))["sdp"] == "v=0 to the new one"


@pytest.mark.parametrize(
    ("how", "close_code"),
    [("revoke", 4401), ("delete", 4403)],
)
async def test_revoking_or_removing_a_participant_closes_their_live_socket(
    client: TestClient[Any, Any], how: str, close_code: int
) -> None:
    workshop, (ana, ben, _) = await three(client)
    a = await join(client, ana["join_token"])
    b = await join(client, ben["join_token"])
    url = f"/api/v1/workshops/{workshop['id']}/participants/{ana['id']}"
    resp = await (client.post(url + "/revoke", headers=ADMIN) if how == "revoke" else client.delete(url, headers=ADMIN))
    assert resp.status in (200, 204), await resp.text()
    assert await a.wait_closed() == close_code
    assert await b.wait_for("peer_left") == {"type": "peer_left", "peer_id": ana["id"], "reason": "removed"}
    # And the old token (or resume) cannot bring them back.
    sc = SignalClient(await connect(client))
    await sc.send({"type": "hello", "protocol": [1], "token": ana["join_token"], "resume": a.welcome["resume"]})
    assert (await sc.recv())["code"] == "unauthenticated"
    assert await sc.wait_closed() == 4401


async def test_revoking_a_participant_in_their_grace_period_ends_it(client: TestClient[Any, Any]) -> None:
    workshop, (ana, ben, _) = await three(client)
    a = await join(client, ana["join_token"])
    b = await join(client, ben["join_token"])
    await a.close()
    await b.wait_for("peer_reconnecting")
    resp = await client.post(f"/api/v1/workshops/{workshop['id']}/participants/{ana['id']}/revoke", headers=ADMIN)
    assert resp.status == 200
    assert await b.wait_for("peer_left") == {"type": "peer_left", "peer_id": ana["id"], "reason": "removed"}


async def test_deleting_the_workshop_closes_everyone_with_4403(client: TestClient[Any, Any]) -> None:
    workshop, (ana, ben, _) = await three(client)
    a = await join(client, ana["join_token"])
    b = await join(client, ben["join_token"])
    resp = await client.delete(f"/api/v1/workshops/{workshop['id']}", headers=ADMIN)
    assert resp.status == 204
    assert await a.wait_closed() == 4403
    assert await b.wait_closed() == 4403


# Heartbeat and shutdown ---------------------------------------------------------------------------


async def test_a_client_that_stops_answering_pings_is_dropped_and_others_see_peer_reconnecting(
    database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    heartbeat_s = 0.5
    client = await app_with(database_url, tmp_path, aiohttp_client, ws_heartbeat_s=heartbeat_s)
    _, (ana, ben, _) = await three(client)
    b = await join(client, ben["join_token"])
    # Ana's client says hello and then never reads again: no pong ever goes back.
    silent = await connect(client, autoping=False, heartbeat=None)
    try:
        await silent.send_str(json.dumps({"type": "hello", "protocol": [1], "token": ana["join_token"]}))
        assert (await b.wait_for("peer_joined"))["peer"]["id"] == ana["id"]
        # Within two intervals in principle; the bound is generous so that a slow machine does not fail it.
        dropped = await b.wait_for("peer_reconnecting", timeout=2 * heartbeat_s + 10)
        assert dropped["peer_id"] == ana["id"]
        # b, which reads (and so answers pings), is still fine.
        await settle(b, "alive")
    finally:
        await silent.close()


@pytest.fixture
async def own_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@dataclass
class ShutDown:
    codes: list[int]
    people: list[dict[str, Any]]
    grants: list[asyncpg.Record]
    events: list[tuple[str, str, str]]  # (participant id, event, reason), in order


async def _two_in_then_shut_down(
    database_url: str, tmp_path: Path, aiohttp_client: Any, own_session: aiohttp.ClientSession, **overrides: Any
) -> ShutDown:
    client = await app_with(database_url, tmp_path, aiohttp_client, **overrides)
    _, (ana, ben, _) = await three(client)
    socks = []
    for person in (ana, ben):
        sc = SignalClient(await own_session.ws_connect(client.make_url("/ws")))
        await sc.send({"type": "hello", "protocol": [1], "token": person["join_token"]})
        assert (await sc.recv())["type"] == "welcome"
        socks.append(sc)
    closing = asyncio.gather(*(sc.wait_closed(timeout=30) for sc in socks))
    await client.server.close()
    codes = list(await closing)
    for sc in socks:
        (bye,) = [m for m in sc.seen if m["type"] == "bye"]
        assert bye["reconnect"] is True, bye
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT participant_id::text AS pid, event, reason FROM attendance_events ORDER BY id")
        grants = await conn.fetch("SELECT participant_id::text AS pid, detached_at FROM resume_grants ORDER BY 1")
    finally:
        await conn.close()
    return ShutDown(codes, [ana, ben], grants, [(r["pid"], r["event"], r["reason"]) for r in rows])


async def test_shutdown_drains_every_socket_with_1012_keeping_each_place_as_a_grant_and_recording_no_leave(
    database_url: str, tmp_path: Path, aiohttp_client: Any, own_session: aiohttp.ClientSession
) -> None:
    done = await _two_in_then_shut_down(database_url, tmp_path, aiohttp_client, own_session)
    ana, ben = done.people
    assert done.codes == [1012, 1012]
    assert sorted(g["pid"] for g in done.grants) == sorted([ana["id"], ben["id"]])
    assert all(g["detached_at"] is not None for g in done.grants), "dated at the drain: the grace period runs from it"
    assert [e for e in done.events if e[1] == "leave"] == []
    drops = {(pid, reason) for pid, event, reason in done.events if event == "drop"}
    assert drops == {(ana["id"], "server_restart"), (ben["id"], "server_restart")}


async def test_shutdown_without_a_grace_period_closes_with_1001_and_records_the_leaves(
    database_url: str, tmp_path: Path, aiohttp_client: Any, own_session: aiohttp.ClientSession
) -> None:
    done = await _two_in_then_shut_down(database_url, tmp_path, aiohttp_client, own_session, resume_grace_s=0.0)
    ana, ben = done.people
    assert done.codes == [1001, 1001]
    assert done.grants == [], "nothing to resume: no grant"
    leaves = {(pid, reason) for pid, event, reason in done.events if event == "leave"}
    assert leaves == {(ana["id"], "server_shutdown"), (ben["id"], "server_shutdown")}


async def test_a_peer_too_slow_to_read_is_cut_off_and_never_stalls_the_room(
    database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    # A tiny send queue; a long heartbeat, so that the stalled reader is cut off for being slow, not for missing pongs.
    client = await app_with(database_url, tmp_path, aiohttp_client, ws_send_queue=8, ws_heartbeat_s=60.0)
    _, (ana, ben, cleo) = await three(client)
    a = await join(client, ana["join_token"])
    b = await join(client, ben["join_token"])  # from here on b never reads
    c = await join(client, cleo["join_token"])
    sdp = "v=0 " + "x" * 60_000
    for n in range(200):  # ~12 MB at b, far more than socket buffers hold
        await a.send({"type": "offer", "to": ben["id"], "sdp": sdp, "request_id": n})
    # The room goes on meanwhile, and is told that b dropped (its place is kept: it may resume).
    assert (await a.wait_for("peer_reconnecting", timeout=30))["peer_id"] == ben["id"]
    assert (await c.wait_for("peer_reconnecting", timeout=30))["peer_id"] == ben["id"]
    await c.send({"type": "offer", "to": ana["id"], "sdp": "v=0 from cleo"})
    assert (await a.wait_for("offer"))["from"] == cleo["id"]
    # Offers after the cut-off failed with not_found instead of piling up.
    await settle(a, "end")
    assert [m["code"] for m in a.seen if m["type"] == "error"][-1:] == ["not_found"]
    code = await b.wait_closed(timeout=30)
    assert code in (1013, 1006), code  # 1013, unless the close frame itself could not get through
    from tests.server.test_metrics import scrape, value

    assert value(await scrape(client), "roundtable_slow_client_evictions_total") == 1
