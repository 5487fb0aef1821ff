"""Breakout plans beyond the reference cycle: editing, reuse, self-select, live moves, moderation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp.test_utils import TestClient

from tests.helpers import ADMIN, add_participant, bearer, create_workshop
from tests.signaling.client import join


async def _plan(client: TestClient[Any, Any], wid: str, **body: Any) -> dict[str, Any]:
    resp = await client.post(
        f"/api/v1/workshops/{wid}/breakouts", json={"name": "Plan", "rooms": 2, **body}, headers=ADMIN
    )
    assert resp.status == 201, await resp.text()
    plan: dict[str, Any] = await resp.json()
    return plan


async def _call(client: TestClient[Any, Any], method: str, url: str, body: Any = None, status: int = 200) -> Any:
    resp = await client.request(method, url, json=body, headers=ADMIN)
    assert resp.status == status, await resp.text()
    return await resp.json() if status != 204 else None


async def test_a_plan_is_edited_ahead_copied_for_day_two_and_deleted_when_not_running(
    client: TestClient[Any, Any],
) -> None:
    workshop = await create_workshop(client)
    wid = workshop["id"]
    a = await add_participant(client, wid, display_name="A", country="AT")
    b = await add_participant(client, wid, display_name="B", country="BE")
    plan = await _plan(client, wid, rooms=["Red", "Blue"], assignments={a["id"]: "Red"})
    base = f"/api/v1/workshops/{wid}/breakouts/{plan['id']}"
    assert plan["assignments"] == {a["id"]: plan["rooms"][0]["id"]}

    edited = await _call(client, "PATCH", base, {"name": "Day 1 groups", "duration_s": 900, "countdown_s": 30})
    assert (edited["name"], edited["duration_s"], edited["countdown_s"]) == ("Day 1 groups", 900, 30)
    # The bare mapping and the wrapped one both replace the assignments; names, indexes and ids all work.
    moved = await _call(client, "PUT", f"{base}/assignments", {a["id"]: 1, b["id"]: plan["rooms"][0]["id"]})
    assert moved["assignments"] == {a["id"]: plan["rooms"][1]["id"], b["id"]: plan["rooms"][0]["id"]}
    wrapped = await _call(client, "PUT", f"{base}/assignments", {"assignments": {b["id"]: "Blue"}})
    assert wrapped["assignments"] == {b["id"]: plan["rooms"][1]["id"]}
    bad = await client.put(f"{base}/assignments", json={"assignments": {b["id"]: "Green"}}, headers=ADMIN)
    assert bad.status == 400

    copy = await _call(client, "POST", f"{base}/copy", {"name": "Day 2 groups"}, status=201)
    assert copy["name"] == "Day 2 groups" and copy["state"] == "draft" and copy["copied_from"] == plan["id"]
    assert [r["name"] for r in copy["rooms"]] == ["Red", "Blue"]
    assert copy["assignments"] == {b["id"]: copy["rooms"][1]["id"]}
    assert {r["id"] for r in copy["rooms"]}.isdisjoint({r["id"] for r in plan["rooms"]})

    listed = await _call(client, "GET", f"/api/v1/workshops/{wid}/breakouts")
    assert [p["name"] for p in listed["items"]] == ["Day 1 groups", "Day 2 groups"]

    await _call(client, "POST", f"{base}/open", {})
    assert (await client.delete(base, headers=ADMIN)).status == 409
    other = await client.post(f"/api/v1/workshops/{wid}/breakouts/{copy['id']}/open", headers=ADMIN)
    assert other.status == 409, "one running plan per workshop"
    await _call(client, "POST", f"{base}/close", {"countdown_s": 0})
    await _call(client, "DELETE", base, status=204)
    rooms = await _call(client, "GET", f"/api/v1/workshops/{wid}/rooms")
    assert sorted(r["name"] for r in rooms["items"]) == ["Blue", "Plenary", "Red"], "the copy's rooms remain"


async def test_extend_moves_the_deadline_and_late_joiners_land_in_their_breakout(client: TestClient[Any, Any]) -> None:
    workshop = await create_workshop(client)
    wid = workshop["id"]
    a = await add_participant(client, wid, display_name="A", country="AT")
    b = await add_participant(client, wid, display_name="B", country="BE")
    plan = await _plan(client, wid, strategy="balanced")
    base = f"/api/v1/workshops/{wid}/breakouts/{plan['id']}"
    watcher = await join(client, a["join_token"])
    opened = await _call(client, "POST", f"{base}/open", {"duration_s": 300})
    extended = await _call(client, "POST", f"{base}/extend", {"seconds": 120})
    delta = datetime.fromisoformat(extended["ends_at"]) - datetime.fromisoformat(opened["ends_at"])
    assert delta.total_seconds() == 120
    update = await watcher.wait_for("breakouts_updated")
    assert datetime.fromisoformat(update["ends_at"]) == datetime.fromisoformat(extended["ends_at"])

    late = await join(client, b["join_token"])
    assert late.welcome["room"]["id"] == plan["assignments"][b["id"]]
    assert late.welcome["breakout"]["plan_id"] == plan["id"]
    assert 0 < late.welcome["breakout"]["remaining_s"] <= 420
    await watcher.close()
    await late.close()


async def test_self_select_lets_participants_choose_within_the_cap_and_moderators_visit(
    client: TestClient[Any, Any],
) -> None:
    workshop = await create_workshop(client)
    wid = workshop["id"]
    a = await add_participant(client, wid, display_name="A", country="AT")
    b = await add_participant(client, wid, display_name="B", country="BE")
    mod = await add_participant(client, wid, display_name="M", country="IE", role="moderator")
    plan = await _plan(client, wid, strategy="self_select", self_select_cap=1)
    assert plan["assignments"] == {}
    sa, sb, sm = [await join(client, p["join_token"]) for p in (a, b, mod)]
    await _call(client, "POST", f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/open", {})
    opened = await sa.wait_for("breakouts_opened")
    assert opened["breakout"]["strategy"] == "self_select"
    first = plan["rooms"][0]["id"]

    await sa.send({"type": "choose_room", "room_id": first, "request_id": 1})
    moved = await sa.wait_for("moved")
    assert moved["room"]["id"] == first and moved["reason"] == "chose_room"
    await sb.send({"type": "choose_room", "room_id": first, "request_id": 2})
    full = await sb.wait_for("error")
    assert (full["code"], full["request_id"]) == ("conflict", 2)
    await sb.send({"type": "choose_room", "room_id": "no-such-room", "request_id": 3})
    assert (await sb.wait_for("error"))["code"] == "not_found"

    await sm.send({"type": "choose_room", "room_id": first, "request_id": 4})
    visit = await sm.wait_for("moved")
    assert visit["room"]["id"] == first, "moderators may visit a full room"
    assert [p["id"] for p in visit["peers"]] == [a["id"]]
    for sc in (sa, sb, sm):
        await sc.close()


async def test_moderators_move_mute_and_remove_participants_live(client: TestClient[Any, Any]) -> None:
    workshop = await create_workshop(client)
    wid, plenary = workshop["id"], workshop["plenary_room_id"]
    a = await add_participant(client, wid, display_name="A", country="AT")
    b = await add_participant(client, wid, display_name="B", country="BE")
    mod = await add_participant(client, wid, display_name="M", country="IE", role="moderator")
    org = await add_participant(client, wid, display_name="O", country="FR", role="organiser")
    plan = await _plan(client, wid, strategy="manual")
    base = f"/api/v1/workshops/{wid}/breakouts/{plan['id']}"
    sa, sb = await join(client, a["join_token"]), await join(client, b["join_token"])
    await _call(client, "POST", f"{base}/open", {})

    second = plan["rooms"][1]["id"]
    resp = await client.post(
        f"{base}/move", json={"participant_id": a["id"], "room_id": second}, headers=bearer(mod["join_token"])
    )
    assert resp.status == 200, await resp.text()
    moved = await sa.wait_for("moved")
    assert (moved["room"]["id"], moved["reason"]) == (second, "moved_by_moderator")
    assert (await sb.wait_for("peer_left"))["peer_id"] == a["id"]
    resp = await client.post(
        f"{base}/move", json={"participant_id": a["id"], "room_id": plenary}, headers=bearer(mod["join_token"])
    )
    assert resp.status == 200
    assert (await sa.wait_for("moved"))["room"]["id"] == plenary

    resp = await client.post(
        f"/api/v1/workshops/{wid}/participants/{b['id']}/mute",
        json={"kind": "audio"},
        headers=bearer(mod["join_token"]),
    )
    assert resp.status == 200 and (await resp.json())["live"] is True
    asked = await sb.wait_for("mute_requested")
    assert (asked["kind"], asked["by"]["display_name"]) == ("audio", "M")
    seen = await sa.wait_for("peer_updated")
    assert (seen["peer"]["id"], seen["peer"]["state"]["audio"]) == (b["id"], False)

    resp = await client.post(
        f"/api/v1/workshops/{wid}/participants/{org['id']}/remove", headers=bearer(mod["join_token"])
    )
    assert resp.status == 403, "moderators cannot remove the organiser"
    resp = await client.post(
        f"/api/v1/workshops/{wid}/participants/{b['id']}/remove", headers=bearer(mod["join_token"])
    )
    assert resp.status == 200
    code = await sb.wait_closed()
    assert code == 4403, (code, sb.seen[-3:])
    resp = await client.get(f"/api/v1/workshops/{wid}", headers=bearer(b["join_token"]))
    assert resp.status == 401, "the removed participant's token is revoked"

    log = await _call(client, "GET", f"/api/v1/workshops/{wid}/moderator-actions")
    actions = [(e["action"], e["actor_id"]) for e in log["items"]]
    assert ("breakouts.move", mod["id"]) in actions
    assert ("participant.mute", mod["id"]) in actions
    assert ("participant.remove", mod["id"]) in actions
    await sa.close()


async def test_people_in_a_deleted_room_are_moved_home(client: TestClient[Any, Any]) -> None:
    workshop = await create_workshop(client)
    wid = workshop["id"]
    resp = await client.post(f"/api/v1/workshops/{wid}/rooms", json={"name": "Side room"}, headers=ADMIN)
    room = await resp.json()
    a = await add_participant(client, wid, display_name="A", country="AT", room_id=room["id"])
    sa = await join(client, a["join_token"])
    assert sa.welcome["room"]["id"] == room["id"]
    await _call(client, "DELETE", f"/api/v1/workshops/{wid}/rooms/{room['id']}", status=204)
    moved = await sa.wait_for("moved")
    assert (moved["room"]["id"], moved["reason"]) == (workshop["plenary_room_id"], "room_deleted")
    await sa.close()


async def test_moderators_see_live_presence_by_room_and_participants_do_not(client: TestClient[Any, Any]) -> None:
    workshop = await create_workshop(client)
    wid, plenary = workshop["id"], workshop["plenary_room_id"]
    a = await add_participant(client, wid, display_name="A", country="AT")
    b = await add_participant(client, wid, display_name="B", country="BE")
    mod = await add_participant(client, wid, display_name="M", country="IE", role="moderator")
    plan = await _plan(client, wid, assignments={b["id"]: 1})
    sa, sb = await join(client, a["join_token"]), await join(client, b["join_token"])
    await _call(client, "POST", f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/open", {})
    await sb.wait_for("moved")

    resp = await client.get(f"/api/v1/workshops/{wid}/presence", headers=bearer(mod["join_token"]))
    assert resp.status == 200, await resp.text()
    presence = await resp.json()
    rooms = {r["room_id"]: [m["id"] for m in r["members"]] for r in presence["rooms"]}
    assert rooms == {plenary: [a["id"]], plan["rooms"][1]["id"]: [b["id"]]}
    assert presence["breakout"]["plan_id"] == plan["id"]
    assert all(m["connected"] for r in presence["rooms"] for m in r["members"])
    resp = await client.get(f"/api/v1/workshops/{wid}/presence", headers=bearer(a["join_token"]))
    assert resp.status == 403
    await sa.close()
    await sb.close()
