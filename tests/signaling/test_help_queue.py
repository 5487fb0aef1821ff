"""The moderators' help queue: a request waits until it is handled, and every moderator hears when it is
(a moderator came into the room, one dismissed it, the breakouts closed, the asker moved or left)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.helpers import ADMIN, add_participant, bearer, create_workshop
from tests.signaling.client import SignalClient, join

Client = TestClient[Any, Any]


async def breakout_world(client: Client) -> tuple[str, dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """A workshop with two moderators and two participants, the participants in "North" and "South"."""
    workshop = await create_workshop(client)
    wid = workshop["id"]
    mods = [
        await add_participant(client, wid, display_name=name, country="IE", role="moderator")
        for name in ("Mia Moderator", "Max Moderator")
    ]
    ana = await add_participant(client, wid, display_name="Ana Pereira", country="PT")
    ben = await add_participant(client, wid, display_name="Ben Okafor", country="NG")
    resp = await client.post(
        f"/api/v1/workshops/{wid}/breakouts",
        json={
            "name": "Groups",
            "rooms": ["North", "South"],
            "assignments": {ana["id"]: 0, ben["id"]: 1},
            "countdown_s": 0,
        },
        headers=ADMIN,
    )
    assert resp.status == 201, await resp.text()
    plan = await resp.json()
    resp = await client.post(f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/open", json={}, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    return wid, plan, [*mods, ana, ben], workshop


async def ask(sc: SignalClient, request_id: str, text: str | None = None) -> None:
    await sc.send({"type": "ask_help", "request_id": request_id, **({"text": text} if text else {})})
    await sc.wait_for("ack", request_id=request_id)


async def waiting(client: Client, wid: str, token: str | None) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/v1/workshops/{wid}/presence", headers=bearer(token) if token else ADMIN)
    assert resp.status == 200, await resp.text()
    items: list[dict[str, Any]] = (await resp.json())["help_requests"]
    return items


async def test_a_moderator_visiting_the_room_handles_its_help_request_for_every_moderator(client: Client) -> None:
    wid, plan, (mia, max_, ana, ben), _ = await breakout_world(client)
    m1, m2, a, b = [await join(client, p["join_token"]) for p in (mia, max_, ana, ben)]
    north = plan["rooms"][0]["id"]
    assert a.welcome["room"]["id"] == north

    await ask(a, "h1", "Our audio is broken")
    await ask(b, "h2")
    for mod in (m1, m2):
        got = await mod.wait_for("help_requested", participant_id=ana["id"])
        assert got["room_id"] == north
        assert got["text"] == "Our audio is broken"
    # The queue is readable (a moderator who reloads the console gets it back), oldest first.
    assert [r["participant_id"] for r in await waiting(client, wid, mia["join_token"])] == [ana["id"], ben["id"]]

    await m1.send({"type": "choose_room", "room_id": north, "request_id": "visit"})
    for mod in (m1, m2):
        handled = await mod.wait_for("help_handled", participant_id=ana["id"])
        assert handled == {
            "type": "help_handled",
            "participant_id": ana["id"],
            "room_id": north,
            "reason": "visited",
            "by": {"id": mia["id"], "display_name": "Mia Moderator"},
        }
    # Ben's request (in South) still waits; participants never hear of any of it.
    assert [r["participant_id"] for r in await waiting(client, wid, max_["join_token"])] == [ben["id"]]
    await a.send({"type": "ask_help", "request_id": "again"})  # handled: a new ask is a new request
    again = await m2.wait_for("help_requested", participant_id=ana["id"])
    assert again["room_id"] == north
    assert not any(m["type"].startswith("help_") for m in a.seen + b.seen)
    for sc in (m1, m2, a, b):
        await sc.close()


async def test_closing_the_breakouts_handles_every_waiting_request(client: Client) -> None:
    wid, plan, (mia, _max, ana, ben), _ = await breakout_world(client)
    m1, a, b = [await join(client, p["join_token"]) for p in (mia, ana, ben)]
    await ask(a, "h1")
    await ask(b, "h2")
    await m1.wait_for("help_requested", participant_id=ben["id"])

    resp = await client.post(f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/close", json={}, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    reasons = {}
    for _ in range(2):
        handled = await m1.wait_for("help_handled")
        reasons[handled["participant_id"]] = handled["reason"]
    assert reasons == {ana["id"]: "breakouts_closed", ben["id"]: "breakouts_closed"}
    assert await waiting(client, wid, mia["join_token"]) == []
    for sc in (m1, a, b):
        await sc.close()


async def test_a_dismissed_request_clears_for_every_moderator_and_participants_cannot_dismiss(client: Client) -> None:
    wid, _plan, (mia, max_, ana, ben), _ = await breakout_world(client)
    m1, m2, a, b = [await join(client, p["join_token"]) for p in (mia, max_, ana, ben)]
    await ask(a, "h1")
    await m2.wait_for("help_requested", participant_id=ana["id"])

    # A participant may not clear anyone's request, not even their own; nothing changes.
    await b.send({"type": "dismiss_help", "participant_id": ana["id"], "request_id": "d0"})
    error = await b.wait_for("error", request_id="d0")
    assert error["code"] == "permission_denied"
    assert len(await waiting(client, wid, mia["join_token"])) == 1

    await m1.send({"type": "dismiss_help", "participant_id": ana["id"], "request_id": "d1"})
    await m1.wait_for("ack", request_id="d1")
    handled = await m2.wait_for("help_handled", participant_id=ana["id"])
    assert handled["reason"] == "dismissed"
    assert handled["by"]["id"] == mia["id"]
    # Twice (two moderators at once) is fine: acked, nothing more to say.
    await m2.send({"type": "dismiss_help", "participant_id": ana["id"], "request_id": "d2"})
    await m2.wait_for("ack", request_id="d2")
    assert await waiting(client, wid, mia["join_token"]) == []
    for sc in (m1, m2, a, b):
        await sc.close()


async def test_a_request_is_handled_when_the_asker_moves_or_leaves(client: Client) -> None:
    wid, plan, (mia, _max, ana, ben), _ = await breakout_world(client)
    m1, a, b = [await join(client, p["join_token"]) for p in (mia, ana, ben)]
    south = plan["rooms"][1]["id"]
    await ask(a, "h1")
    await ask(b, "h2")
    await m1.wait_for("help_requested", participant_id=ben["id"])

    resp = await client.post(
        f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/move",
        json={"participant_id": ana["id"], "room_id": south},
        headers=ADMIN,
    )
    assert resp.status == 200, await resp.text()
    moved = await m1.wait_for("help_handled", participant_id=ana["id"])
    assert moved["reason"] == "moved"
    await b.send({"type": "leave"})
    left = await m1.wait_for("help_handled", participant_id=ben["id"])
    assert left["reason"] == "left"
    assert await waiting(client, wid, mia["join_token"]) == []
    for sc in (m1, a, b):
        await sc.close()


async def test_another_workshops_moderator_sees_none_of_the_help_queue(client: Client) -> None:
    wid, _plan, (_mia, _max, ana, _ben), _ = await breakout_world(client)
    other = await create_workshop(client, title="Another workshop")
    stranger = await add_participant(client, other["id"], display_name="Stranger", country="FR", role="moderator")
    s = await join(client, stranger["join_token"])
    a = await join(client, ana["join_token"])
    await ask(a, "h1")
    resp = await client.get(f"/api/v1/workshops/{wid}/presence", headers=bearer(stranger["join_token"]))
    assert resp.status == 404
    assert await waiting(client, other["id"], stranger["join_token"]) == []
    # The stranger's socket heard nothing of it.
    await s.send({"type": "dismiss_help", "participant_id": ana["id"], "request_id": "d"})
    await s.wait_for("ack", request_id="d")
    assert not any(m["type"].startswith("help_") for m in s.seen)
    assert len(await waiting(client, wid, None)) == 1
    for sc in (s, a):
        await sc.close()
