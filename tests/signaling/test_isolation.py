"""Rooms are sealed: a peer in another room of the same workshop, or anyone of another workshop, sees
nothing of a room (presence, relay, chat, state) and cannot reach into it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from tests.helpers import ADMIN, add_participant, create_workshop
from tests.signaling.client import SignalClient, join


async def create_room(client: TestClient[Any, Any], workshop_id: str, name: str) -> dict[str, Any]:
    resp = await client.post(f"/api/v1/workshops/{workshop_id}/rooms", json={"name": name}, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def patch_participant(client: TestClient[Any, Any], workshop_id: str, pid: str, **changes: Any) -> None:
    resp = await client.patch(f"/api/v1/workshops/{workshop_id}/participants/{pid}", json=changes, headers=ADMIN)
    assert resp.status == 200, await resp.text()


async def settle(sc: SignalClient, tag: str) -> list[dict[str, Any]]:
    """Everything queued for `sc` before now: a no-op `update` is acked after it (replies keep order)."""
    start = len(sc.seen)
    await sc.send({"type": "update", "request_id": f"settle-{tag}"})
    await sc.wait_for("ack", request_id=f"settle-{tag}")
    return sc.seen[start:-1]


async def expect_error(sc: SignalClient, message: dict[str, Any], code: str) -> None:
    rid = f"x-{uuid.uuid4().hex[:8]}"
    await sc.send({**message, "request_id": rid})
    error = await sc.wait_for("error", request_id=rid)
    assert error["code"] == code, error


async def until(sc: SignalClient, match: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
    """Skip messages until one matches (bounded)."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await sc.recv()
            if match(msg):
                return msg


def subject(message: dict[str, Any]) -> str | None:
    """Whom a presence message is about."""
    if "peer" in message:
        peer_id: str = message["peer"]["id"]
        return peer_id
    return message.get("peer_id")


def mentions(messages: list[dict[str, Any]], ids: set[str]) -> list[dict[str, Any]]:
    return [m for m in messages if any(i in json.dumps(m) for i in ids)]


async def test_another_room_and_another_workshop_see_and_reach_nothing(client: TestClient[Any, Any]) -> None:
    w1 = await create_workshop(client, title="Workshop one")
    w2 = await create_workshop(client, title="Workshop two")
    wid = w1["id"]
    breakout = await create_room(client, wid, "Breakout A")

    mod = await add_participant(client, wid, display_name="Mo", country="BE", role="moderator")
    ana = await add_participant(client, wid, display_name="Ana", country="PT")
    ben = await add_participant(client, wid, display_name="Ben", country="DE")
    rita = await add_participant(client, wid, display_name="Rita", country="IT")
    raul = await add_participant(client, wid, display_name="Raul", country="ES")
    # Assigned over the API before they join.
    await patch_participant(client, wid, rita["id"], room_id=breakout["id"])
    await patch_participant(client, wid, raul["id"], room_id=breakout["id"])
    xena = await add_participant(client, w2["id"], display_name="Xena", country="GR", role="moderator")
    yuri = await add_participant(client, w2["id"], display_name="Yuri", country="FI")

    # The outsiders are in first, so that they would witness every later event of the plenary.
    r1 = await join(client, rita["join_token"])
    r2 = await join(client, raul["join_token"])
    x = await join(client, xena["join_token"])
    y = await join(client, yuri["join_token"])
    assert r1.welcome["room"]["id"] == breakout["id"]
    assert [p["id"] for p in r2.welcome["peers"]] == [rita["id"]]
    assert [p["id"] for p in y.welcome["peers"]] == [xena["id"]]
    assert y.welcome["room"]["workshop_id"] == w2["id"]

    m = await join(client, mod["join_token"])
    a = await join(client, ana["join_token"])
    b = await join(client, ben["join_token"])
    assert m.welcome["room"]["id"] == w1["plenary_room_id"]
    assert {p["id"] for p in b.welcome["peers"]} == {mod["id"], ana["id"]}
    plenary_ids = {mod["id"], ana["id"], ben["id"]}
    breakout_ids = {rita["id"], raul["id"]}
    w2_ids = {xena["id"], yuri["id"]}
    assert (await m.wait_for("peer_joined"))["peer"]["id"] == ana["id"]
    assert (await m.wait_for("peer_joined"))["peer"]["id"] == ben["id"]

    # The plenary's life: relay, chat, state, a moderator's lower_hand, a profile edit, a drop and a resume, a leave.
    await a.send({"type": "offer", "to": ben["id"], "sdp": "v=0 plenary-offer"})
    assert (await b.wait_for("offer"))["from"] == ana["id"]
    await b.send({"type": "answer", "to": ana["id"], "sdp": "v=0 plenary-answer"})
    await a.wait_for("answer")
    await a.send({"type": "candidate", "to": ben["id"], "candidate": {"candidate": "", "sdpMid": "0"}})
    await b.wait_for("candidate")
    await a.send({"type": "chat", "text": "plenary secret"})
    assert (await m.wait_for("chat"))["text"] == "plenary secret"
    await a.send({"type": "update", "hand": True, "audio": False})
    assert (await m.wait_for("peer_updated"))["peer"]["state"]["hand"] is True
    await m.send({"type": "lower_hand", "peer_id": ana["id"]})
    assert (await b.wait_for("peer_updated"))["peer"]["state"]["hand"] is True
    assert (await b.wait_for("peer_updated"))["peer"]["state"]["hand"] is False
    await patch_participant(client, wid, ben["id"], display_name="Benedikt")
    await until(m, lambda msg: msg["type"] == "peer_updated" and msg["peer"]["display_name"] == "Benedikt")
    resume = a.welcome["resume"]
    await a.close()
    await m.wait_for("peer_reconnecting", peer_id=ana["id"])
    a = await join(client, ana["join_token"], resume=resume)
    assert a.welcome["resumed"] is True
    await m.wait_for("peer_resumed", peer_id=ana["id"])
    await b.send({"type": "leave"})
    await m.wait_for("peer_left", peer_id=ben["id"])

    # Fan-out is synchronous: m has seen all of it, so the outsiders' queues would already hold it too.
    for sc, own in ((r1, breakout_ids), (r2, breakout_ids), (x, w2_ids), (y, w2_ids)):
        seen = await settle(sc, "after-plenary")
        assert not mentions(seen, plenary_ids), seen
        assert not [msg for msg in seen if msg["type"] in ("chat", "offer", "answer", "candidate")], seen
        assert {subject(msg) for msg in seen} <= own | {None}, seen

    # The breakout's own chat and state stay in the breakout too.
    await r1.send({"type": "chat", "text": "breakout secret"})
    assert (await r2.wait_for("chat"))["text"] == "breakout secret"
    assert (await r1.wait_for("chat"))["text"] == "breakout secret"
    await r2.send({"type": "update", "video": False})
    await r1.wait_for("peer_updated")
    for sc in (m, a, x, y):
        seen = await settle(sc, "after-breakout")
        assert not mentions(seen, breakout_ids), seen
        assert "breakout secret" not in json.dumps(seen)
    # History follows the room: a later joiner of the plenary gets the plenary's chat only.
    cleo = await add_participant(client, wid, display_name="Cleo", country="FR")
    c = await join(client, cleo["join_token"])
    assert [msg["text"] for msg in c.welcome["chat"]] == ["plenary secret"]
    assert {p["id"] for p in c.welcome["peers"]} == {mod["id"], ana["id"]}

    for sc in (r1, r2, c):
        await settle(sc, "before-reaching-in")

    # Reaching in: another room of the workshop.
    for target in (mod["id"], ana["id"]):
        await expect_error(r1, {"type": "offer", "to": target, "sdp": "v=0"}, "not_found")
        await expect_error(r1, {"type": "answer", "to": target, "sdp": "v=0"}, "not_found")
        await expect_error(r1, {"type": "candidate", "to": target, "candidate": {"candidate": ""}}, "not_found")
    await expect_error(m, {"type": "offer", "to": rita["id"], "sdp": "v=0"}, "not_found")
    # A participant cannot tell from lower_hand who is online elsewhere: same answer for present and absent.
    await expect_error(r1, {"type": "lower_hand", "peer_id": ana["id"]}, "permission_denied")
    await expect_error(r1, {"type": "lower_hand", "peer_id": str(uuid.uuid4())}, "permission_denied")

    # Reaching in: another workshop, even as its moderator.
    for target in (mod["id"], ana["id"], rita["id"]):
        await expect_error(x, {"type": "offer", "to": target, "sdp": "v=0"}, "not_found")
        await expect_error(x, {"type": "candidate", "to": target, "candidate": {"candidate": ""}}, "not_found")
        await expect_error(x, {"type": "lower_hand", "peer_id": target}, "not_found")
    await expect_error(m, {"type": "offer", "to": xena["id"], "sdp": "v=0"}, "not_found")
    await expect_error(m, {"type": "lower_hand", "peer_id": yuri["id"]}, "not_found")

    # None of those attempts reached anyone.
    for sc in (m, a, c, r1, r2, y):
        seen = await settle(sc, "end")
        assert not [msg for msg in seen if msg["type"] in ("offer", "answer", "candidate", "peer_updated")], seen


async def test_a_moderator_may_lower_a_hand_in_another_room_and_only_that_room_hears_of_it(
    client: TestClient[Any, Any],
) -> None:
    w = await create_workshop(client)
    wid = w["id"]
    breakout = await create_room(client, wid, "Breakout B")
    mod = await add_participant(client, wid, display_name="Mo", country="BE", role="moderator")
    ana = await add_participant(client, wid, display_name="Ana", country="PT")
    rita = await add_participant(client, wid, display_name="Rita", country="IT", room_id=breakout["id"])
    raul = await add_participant(client, wid, display_name="Raul", country="ES", room_id=breakout["id"])
    m = await join(client, mod["join_token"])
    a = await join(client, ana["join_token"])
    r1 = await join(client, rita["join_token"])
    r2 = await join(client, raul["join_token"])
    await r1.send({"type": "update", "hand": True})
    assert (await r2.wait_for("peer_updated"))["peer"]["state"]["hand"] is True
    await m.send({"type": "lower_hand", "peer_id": rita["id"], "request_id": "lh"})
    await m.wait_for("ack", request_id="lh")
    lowered = await r2.wait_for("peer_updated")
    assert lowered["peer"]["id"] == rita["id"] and lowered["peer"]["state"]["hand"] is False
    await until(r1, lambda msg: msg["type"] == "peer_updated" and msg["peer"]["state"]["hand"] is False)
    for sc in (m, a):
        seen = await settle(sc, "lh")
        assert not mentions(seen, {rita["id"], raul["id"]}), seen
