"""Room chat (persist, then publish; history in welcome), media and hand state, and attendance records."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from server.app import SIGNALING_STORE, create_app
from signaling.rooms import is_polite
from tests.conftest import make_settings
from tests.helpers import ADMIN, add_participant, create_workshop
from tests.signaling.client import SignalClient, join

FLUSH_TIMEOUT_S = 15.0


async def settle(sc: SignalClient, tag: str) -> list[dict[str, Any]]:
    """Everything queued for `sc` before now (a no-op `update` is acked after it)."""
    start = len(sc.seen)
    await sc.send({"type": "update", "request_id": tag})
    await sc.wait_for("ack", request_id=tag)
    return sc.seen[start:-1]


async def fetch(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def flushed(client: TestClient[Any, Any]) -> None:
    await asyncio.wait_for(client.server.app[SIGNALING_STORE].flushed(), FLUSH_TIMEOUT_S)


async def create_room(client: TestClient[Any, Any], workshop_id: str, name: str) -> dict[str, Any]:
    resp = await client.post(f"/api/v1/workshops/{workshop_id}/rooms", json={"name": name}, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


# Chat ---------------------------------------------------------------------------------------------


async def test_chat_goes_to_the_whole_room_sender_included_is_stored_and_is_in_a_later_welcome(
    client: TestClient[Any, Any], database_url: str
) -> None:
    workshop = await create_workshop(client)
    wid = workshop["id"]
    breakout = await create_room(client, wid, "Side room")
    ana = await add_participant(client, wid, display_name="Ana Pereira", country="PT")
    ben = await add_participant(client, wid, display_name="Ben", country="DE")
    rita = await add_participant(client, wid, display_name="Rita", country="IT", room_id=breakout["id"])
    a = await join(client, ana["join_token"])
    b = await join(client, ben["join_token"])
    r = await join(client, rita["join_token"])

    text = "Olá! Can everyone see the slides? 🎉"
    await a.send({"type": "chat", "text": text, "request_id": "c1"})
    own = await a.wait_for("chat")
    assert (await a.recv()) == {"type": "ack", "request_id": "c1"}  # the copy first, then the ack
    assert own["from"] == ana["id"]
    assert own["display_name"] == "Ana Pereira"
    assert own["text"] == text
    assert own["room_id"] == workshop["plenary_room_id"]
    assert isinstance(own["id"], int)
    assert datetime.fromisoformat(own["sent_at"]).tzinfo is not None
    assert await b.wait_for("chat") == own

    await b.send({"type": "chat", "text": "Yes, " + "x" * 1995})  # exactly 2000 characters
    second = await b.wait_for("chat")
    assert len(second["text"]) == 2000
    assert second["id"] > own["id"]
    assert (await a.wait_for("chat")) == second

    # The breakout heard nothing.
    assert not [m for m in await settle(r, "chat") if m["type"] == "chat"]

    rows = await fetch(
        database_url,
        "SELECT id, workshop_id::text AS wid, room_id::text AS rid, participant_id::text AS pid, display_name, text"
        " FROM chat_messages ORDER BY id",
    )
    assert [(r["id"], r["wid"], r["rid"], r["pid"], r["display_name"], r["text"]) for r in rows] == [
        (own["id"], wid, workshop["plenary_room_id"], ana["id"], "Ana Pereira", text),
        (second["id"], wid, workshop["plenary_room_id"], ben["id"], "Ben", second["text"]),
    ]

    # A later joiner gets the room's history, oldest first; the breakout's newcomer gets none of it.
    cleo = await add_participant(client, wid, display_name="Cleo", country="FR")
    c = await join(client, cleo["join_token"])
    assert c.welcome["chat"] == [own, second]
    raul = await add_participant(client, wid, display_name="Raul", country="ES", room_id=breakout["id"])
    assert (await join(client, raul["join_token"])).welcome["chat"] == []


async def test_welcome_carries_only_the_latest_history(database_url: str, tmp_path: Path, aiohttp_client: Any) -> None:
    client: TestClient[Any, Any] = await aiohttp_client(
        create_app(make_settings(database_url, tmp_path / "var", chat_history=3))
    )
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    a = await join(client, ana["join_token"])
    for n in range(5):
        await a.send({"type": "chat", "text": f"message {n}", "request_id": n})
        await a.wait_for("ack", request_id=n)
    ben = await add_participant(client, workshop["id"], display_name="Ben", country="DE")
    b = await join(client, ben["join_token"])
    assert [m["text"] for m in b.welcome["chat"]] == ["message 2", "message 3", "message 4"]


# State ----------------------------------------------------------------------------------------------


async def test_update_is_published_to_the_room_including_the_sender(client: TestClient[Any, Any]) -> None:
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    ben = await add_participant(client, workshop["id"], display_name="Ben", country="DE")
    a = await join(client, ana["join_token"])
    b = await join(client, ben["join_token"])
    await a.wait_for("peer_joined")

    await a.send({"type": "update", "hand": True, "audio": False, "request_id": "u1"})
    mine = await a.wait_for("peer_updated")
    assert (await a.recv()) == {"type": "ack", "request_id": "u1"}
    theirs = await b.wait_for("peer_updated")
    raised_at = mine["peer"]["state"]["hand_raised_at"]
    assert raised_at is not None  # when the hand went up: the hand queue's order
    expected_state = {"audio": False, "video": True, "screen": False, "hand": True, "hand_raised_at": raised_at}
    for m in (mine, theirs):
        assert m["peer"]["id"] == ana["id"]
        assert m["peer"]["state"] == expected_state
        assert m["peer"]["reconnecting"] is False
    assert theirs["peer"]["polite"] == is_polite(ben["id"], ana["id"])
    # Omitted fields keep their value; an update of nothing is only acknowledged.
    await a.send({"type": "update", "screen": True})
    assert (await b.wait_for("peer_updated"))["peer"]["state"] == {**expected_state, "screen": True}
    await a.send({"type": "update", "request_id": "noop"})
    await a.wait_for("ack", request_id="noop")
    assert not [m for m in await settle(b, "s") if m["type"] == "peer_updated"]
    # A newcomer sees the current state in welcome.
    cleo = await add_participant(client, workshop["id"], display_name="Cleo", country="FR")
    c = await join(client, cleo["join_token"])
    assert {p["id"]: p["state"] for p in c.welcome["peers"]}[ana["id"]] == {**expected_state, "screen": True}


async def test_lower_hand_by_a_moderator_and_by_oneself(client: TestClient[Any, Any]) -> None:
    workshop = await create_workshop(client)
    wid = workshop["id"]
    mod = await add_participant(client, wid, display_name="Mo", country="BE", role="moderator")
    org = await add_participant(client, wid, display_name="Olga", country="PL", role="organiser")
    ana = await add_participant(client, wid, display_name="Ana", country="PT")
    ben = await add_participant(client, wid, display_name="Ben", country="DE")
    m = await join(client, mod["join_token"])
    o = await join(client, org["join_token"])
    a = await join(client, ana["join_token"])
    b = await join(client, ben["join_token"])
    for sc in (m, o, a, b):
        await settle(sc, "start")

    async def raise_hand(sc: SignalClient) -> None:
        await sc.send({"type": "update", "hand": True, "request_id": "raise"})
        await sc.wait_for("ack", request_id="raise")

    async def hand_of(sc: SignalClient, pid: str) -> bool:
        msg = await sc.wait_for("peer_updated")
        assert msg["peer"]["id"] == pid
        hand: bool = msg["peer"]["state"]["hand"]
        return hand

    await raise_hand(a)
    for sc in (m, o, b):
        assert await hand_of(sc, ana["id"]) is True
    await m.send({"type": "lower_hand", "peer_id": ana["id"], "request_id": "lh"})
    assert await hand_of(m, ana["id"]) is False
    assert (await m.recv()) == {"type": "ack", "request_id": "lh"}
    for sc in (o, a, b):  # the subject hears of it too
        assert await hand_of(sc, ana["id"]) is False

    # Lowering a hand that is down is acknowledged and says nothing to the room.
    await m.send({"type": "lower_hand", "peer_id": ana["id"], "request_id": "again"})
    await m.wait_for("ack", request_id="again")
    assert not [x for x in await settle(b, "quiet") if x["type"] == "peer_updated"]

    # The organiser may too; anyone may lower their own.
    await raise_hand(b)
    await o.send({"type": "lower_hand", "peer_id": ben["id"]})
    assert [await hand_of(a, ben["id"]), await hand_of(a, ben["id"])] == [True, False]
    own = [x["peer"]["state"]["hand"] for x in await settle(b, "own") if x["type"] == "peer_updated"]
    assert own == [False]  # b's own copy of the organiser's lowering (raise_hand read past its raise)
    await raise_hand(a)
    await a.send({"type": "lower_hand", "peer_id": ana["id"], "request_id": "self"})
    await a.wait_for("ack", request_id="self")
    assert [await hand_of(b, ana["id"]), await hand_of(b, ana["id"])] == [True, False]

    # A participant may not lower someone else's; nobody can lower a hand that is not in the workshop.
    await settle(o, "before")
    await raise_hand(a)
    await b.send({"type": "lower_hand", "peer_id": ana["id"], "request_id": "nope"})
    assert (await b.wait_for("error", request_id="nope"))["code"] == "permission_denied"
    await m.send({"type": "lower_hand", "peer_id": "00000000-0000-0000-0000-000000000000", "request_id": "who"})
    assert (await m.wait_for("error", request_id="who"))["code"] == "not_found"
    assert [x["peer"]["state"]["hand"] for x in await settle(o, "end") if x["type"] == "peer_updated"] == [True]


async def test_a_profile_edit_over_the_api_is_a_peer_updated(client: TestClient[Any, Any]) -> None:
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    ben = await add_participant(client, workshop["id"], display_name="Ben", country="DE")
    a = await join(client, ana["join_token"])
    b = await join(client, ben["join_token"])
    resp = await client.patch(
        f"/api/v1/workshops/{workshop['id']}/participants/{ana['id']}",
        json={"display_name": "Ana P.", "role": "moderator"},
        headers=ADMIN,
    )
    assert resp.status == 200, await resp.text()
    for sc in (a, b):
        peer = (await sc.wait_for("peer_updated"))["peer"]
        assert (peer["id"], peer["display_name"], peer["role"]) == (ana["id"], "Ana P.", "moderator")
    # The new role counts at once.
    await b.send({"type": "update", "hand": True})
    await a.wait_for("peer_updated")
    await a.send({"type": "lower_hand", "peer_id": ben["id"], "request_id": "now-mod"})
    await a.wait_for("ack", request_id="now-mod")


# Attendance ---------------------------------------------------------------------------------------


ATTENDANCE = (
    "SELECT workshop_id::text AS wid, room_id::text AS rid, participant_id::text AS pid, event, at, reason"
    " FROM attendance_events ORDER BY id"
)


async def test_attendance_records_joins_and_leaves_with_their_reasons(
    database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client: TestClient[Any, Any] = await aiohttp_client(
        create_app(make_settings(database_url, tmp_path / "var", resume_grace_s=0.5))
    )
    workshop = await create_workshop(client)
    wid, plenary = workshop["id"], workshop["plenary_room_id"]
    ana = await add_participant(client, wid, display_name="Ana", country="PT")
    ben = await add_participant(client, wid, display_name="Ben", country="DE")
    cleo = await add_participant(client, wid, display_name="Cleo", country="FR")
    a = await join(client, ana["join_token"])
    b = await join(client, ben["join_token"])
    c = await join(client, cleo["join_token"])

    await b.send({"type": "leave"})  # left
    assert await b.wait_closed() == 1000
    await a.wait_for("peer_left", peer_id=ben["id"])
    c2 = await join(client, cleo["join_token"], resume=c.welcome["resume"])  # resumed a live socket: no record
    assert c2.welcome["resumed"]
    await c2.send({"type": "update", "request_id": "x"})
    await c2.wait_for("ack", request_id="x")
    c3 = await join(client, cleo["join_token"])  # replaced: a leave and a join
    await a.wait_for("peer_left", peer_id=cleo["id"])
    await a.close()  # dropped, then timed out
    await c3.wait_for("peer_reconnecting", peer_id=ana["id"])
    seen_drop_at = datetime.now(UTC)
    await c3.wait_for("peer_left", peer_id=ana["id"])

    await flushed(client)
    rows = await fetch(database_url, ATTENDANCE)
    assert {(r["wid"], r["rid"]) for r in rows} == {(wid, plenary)}
    events = [(r["pid"], r["event"], r["reason"]) for r in rows]
    assert sorted(events) == sorted(
        [
            (ana["id"], "join", "joined"),
            (ben["id"], "join", "joined"),
            (cleo["id"], "join", "joined"),
            (ben["id"], "leave", "left"),
            (cleo["id"], "leave", "replaced"),
            (cleo["id"], "join", "joined"),
            (ana["id"], "drop", "disconnected"),
            (ana["id"], "leave", "timeout"),
        ]
    )
    # Per participant, in order.
    assert [e for e in events if e[0] == cleo["id"]] == [
        (cleo["id"], "join", "joined"),
        (cleo["id"], "leave", "replaced"),
        (cleo["id"], "join", "joined"),
    ]
    # A timed-out leave is dated when the connection dropped, not when the grace period ended.
    (ana_leave,) = [r for r in rows if r["pid"] == ana["id"] and r["event"] == "leave"]
    (ana_drop,) = [r for r in rows if r["pid"] == ana["id"] and r["event"] == "drop"]
    assert ana_leave["at"] == ana_drop["at"] <= seen_drop_at


async def test_attendance_keeps_being_written_after_a_workshop_with_people_in_it_is_deleted(
    client: TestClient[Any, Any], database_url: str
) -> None:
    """The leaves of a deleted workshop have nothing left to point at; they must not block everyone else's."""
    doomed = await create_workshop(client, title="Doomed")
    other = await create_workshop(client, title="Other")
    ana = await add_participant(client, doomed["id"], display_name="Ana", country="PT")
    ben = await add_participant(client, other["id"], display_name="Ben", country="DE")
    a = await join(client, ana["join_token"])
    await flushed(client)
    resp = await client.delete(f"/api/v1/workshops/{doomed['id']}", headers=ADMIN)
    assert resp.status == 204
    assert await a.wait_closed() == 4403
    b = await join(client, ben["join_token"])
    await b.send({"type": "leave"})
    assert await b.wait_closed() == 1000
    await flushed(client)
    rows = await fetch(database_url, ATTENDANCE)
    assert [(r["pid"], r["event"]) for r in rows] == [(ben["id"], "join"), (ben["id"], "leave")]
