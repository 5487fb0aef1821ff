"""The lobby through the real API and WebSocket: knocks, admission, denial, restarts, devices, permissions."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from server import keys
from server.app import create_app
from tests.conftest import make_settings
from tests.helpers import ADMIN, add_participant, bearer, create_workshop, error_of
from tests.signaling.admission import Client, closed, enter, hello, knock, settle


async def lobby_workshop(client: Client, lobby: str = "everyone") -> tuple[dict[str, Any], dict[str, Any]]:
    workshop = await create_workshop(client, lobby=lobby)
    assert workshop["lobby"] == lobby
    mod = await add_participant(client, workshop["id"], display_name="Mia Moderator", country="IE", role="moderator")
    return workshop, mod


async def test_a_joiner_with_lobby_everyone_waits_and_enters_when_a_moderator_admits(client: Client) -> None:
    workshop, mod = await lobby_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT", organisation="PJ")
    m = await enter(client, mod["join_token"])
    assert m.welcome["knocks"] == []
    a, lobby = await knock(client, ana["join_token"], request_id="h1")
    assert lobby["workshop"] == {
        "id": workshop["id"],
        "title": workshop["title"],
        "starts_at": lobby["workshop"]["starts_at"],
        "ends_at": lobby["workshop"]["ends_at"],
        "timezone": workshop["timezone"],
    }
    assert datetime.fromisoformat(lobby["workshop"]["starts_at"]) == datetime.fromisoformat(workshop["starts_at"])
    assert lobby["participant"] == {
        "id": ana["id"],
        "display_name": "Ana",
        "country": "PT",
        "organisation": "PJ",
        "role": "participant",
    }
    assert (lobby["reason"], lobby["room_id"], lobby["request_id"]) == ("lobby", workshop["plenary_room_id"], "h1")
    seen = (await m.wait_for("knock"))["knock"]
    assert seen == {
        "id": lobby["knock_id"],
        "participant_id": ana["id"],
        "display_name": "Ana",
        "country": "PT",
        "organisation": "PJ",
        "role": "participant",
        "room_id": workshop["plenary_room_id"],
        "room_name": "Plenary",
        "knocked_at": lobby["waiting_since"],
        "reason": "lobby",
        "link_used_elsewhere": False,
        "connected": True,
    }
    # Waiting people are in no roster.
    assert [p["id"] for p in (await enter(client, mod["join_token"])).welcome["peers"]] == []

    m = await enter(client, mod["join_token"])
    assert [k["id"] for k in m.welcome["knocks"]] == [lobby["knock_id"]]
    await m.send({"type": "admit", "knock_ids": [lobby["knock_id"]], "request_id": "adm"})
    assert await m.wait_for("ack", request_id="adm") == {"type": "ack", "request_id": "adm", "admitted": 1}
    welcome = await a.wait_for("welcome")
    assert (welcome["self"]["id"], welcome["room"]["id"]) == (ana["id"], workshop["plenary_room_id"])
    assert welcome["request_id"] == "h1"
    withdrawn = [msg for msg in m.seen if msg["type"] == "knock_withdrawn"]
    assert withdrawn == [
        {
            "type": "knock_withdrawn",
            "knock_id": lobby["knock_id"],
            "participant_id": ana["id"],
            "outcome": "admitted",
            "by": mod["id"],
        }
    ]
    assert (await m.wait_for("peer_joined"))["peer"]["id"] == ana["id"]
    resp = await client.get(f"/api/v1/workshops/{workshop['id']}/moderator-actions", headers=ADMIN)
    actions = [(e["action"], e["actor_id"], e["details"].get("knock_ids")) for e in (await resp.json())["items"]]
    assert ("lobby.admit", mod["id"], [lobby["knock_id"]]) in actions
    for sc in (a, m):
        await sc.close()


async def test_a_denied_joiner_gets_the_message_and_close_4405_and_may_knock_again(client: Client) -> None:
    workshop, mod = await lobby_workshop(client)
    ben = await add_participant(client, workshop["id"], display_name="Ben", country="DE")
    m = await enter(client, mod["join_token"])
    b, lobby = await knock(client, ben["join_token"])
    await m.wait_for("knock")
    await m.send({"type": "deny", "knock_id": lobby["knock_id"], "message": "Registered guests only.", "request_id": 1})
    assert await m.wait_for("ack", request_id=1) == {"type": "ack", "request_id": 1}
    assert await b.wait_for("denied") == {"type": "denied", "message": "Registered guests only."}
    code, reason = await closed(b)
    assert (code, reason) == (4405, "a moderator denied entry")
    (withdrawn,) = [msg for msg in m.seen if msg["type"] == "knock_withdrawn"]  # it comes before the ack
    assert (withdrawn["outcome"], withdrawn["by"]) == ("denied", mod["id"])
    again, second = await knock(client, ben["join_token"])
    assert second["knock_id"] != lobby["knock_id"]
    assert (await m.wait_for("knock"))["knock"]["id"] == second["knock_id"]
    # Over HTTP too, without a message.
    resp = await client.post(f"/api/v1/workshops/{workshop['id']}/lobby/{second['knock_id']}/deny", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    assert await again.wait_for("denied") == {"type": "denied", "message": None}
    assert (await closed(again))[0] == 4405
    await m.close()


async def test_knocks_made_before_any_moderator_is_present_reach_the_first_who_arrives(client: Client) -> None:
    workshop, mod = await lobby_workshop(client)
    people = [await add_participant(client, workshop["id"], display_name=f"P{i}", country="FR") for i in range(2)]
    waiting = [await knock(client, p["join_token"]) for p in people]
    organiser = await add_participant(client, workshop["id"], display_name="Olga", country="LT", role="organiser")
    o = await enter(client, organiser["join_token"])
    assert [k["id"] for k in o.welcome["knocks"]] == [lobby["knock_id"] for _, lobby in waiting]
    m = await enter(client, mod["join_token"])
    assert [k["participant_id"] for k in m.welcome["knocks"]] == [p["id"] for p in people]
    resp = await client.get(f"/api/v1/workshops/{workshop['id']}/lobby", headers=bearer(organiser["join_token"]))
    body = await resp.json()
    assert body["lobby"] == "everyone"
    assert [k["id"] for k in body["knocks"]] == [lobby["knock_id"] for _, lobby in waiting]
    for sc in (o, m, *(sc for sc, _ in waiting)):
        await sc.close()


async def test_a_knock_survives_a_server_restart_with_its_id_and_waiting_time(
    database_url: str, aiohttp_client: Any, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path / "var", resume_grace_s=30.0)
    first = await aiohttp_client(create_app(settings))
    workshop, mod = await lobby_workshop(first)
    ana = await add_participant(first, workshop["id"], display_name="Ana", country="PT")
    waiting, lobby = await knock(first, ana["join_token"], device="laptop-1")
    first.server.app[keys.SIGNALING].shutdown()  # what stopping the server does first
    assert await waiting.wait_for("bye") == {"type": "bye", "reason": "server restarting", "reconnect": True}
    assert (await closed(waiting))[0] == 1001
    await first.close()

    second = await aiohttp_client(create_app(settings))
    m = await enter(second, mod["join_token"])
    (kept,) = m.welcome["knocks"]
    assert (kept["id"], kept["knocked_at"], kept["connected"]) == (lobby["knock_id"], lobby["waiting_since"], False)
    a, again = await knock(second, ana["join_token"], device="laptop-1")
    assert (again["knock_id"], again["waiting_since"]) == (lobby["knock_id"], lobby["waiting_since"])
    update = await m.wait_for("knock")
    assert (update["knock"]["id"], update["knock"]["connected"]) == (lobby["knock_id"], True)
    await m.send({"type": "admit", "all": True, "request_id": "all"})
    assert (await m.wait_for("ack", request_id="all"))["admitted"] == 1
    assert (await a.wait_for("welcome"))["self"]["id"] == ana["id"]
    await a.close()
    await m.close()


async def test_a_knocker_whose_socket_drops_keeps_the_knock_for_the_grace_period_then_it_is_withdrawn(
    database_url: str, aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(make_settings(database_url, tmp_path / "var", resume_grace_s=0.5)))
    workshop, mod = await lobby_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    m = await enter(client, mod["join_token"])
    a, lobby = await knock(client, ana["join_token"])
    await m.wait_for("knock")
    a.abort()
    dropped = await m.wait_for("knock", timeout=30)  # a drop shows when the heartbeat misses
    assert (dropped["knock"]["id"], dropped["knock"]["connected"]) == (lobby["knock_id"], False)
    withdrawn = await m.wait_for("knock_withdrawn")
    assert withdrawn == {
        "type": "knock_withdrawn",
        "knock_id": lobby["knock_id"],
        "participant_id": ana["id"],
        "outcome": "left",
        "by": None,
    }
    resp = await client.get(f"/api/v1/workshops/{workshop['id']}/lobby", headers=ADMIN)
    assert (await resp.json())["knocks"] == []
    await m.close()


async def test_an_admitted_participant_who_drops_resumes_into_the_room_and_knocks_again_only_after_leaving(
    client: Client,
) -> None:
    workshop, mod = await lobby_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    m = await enter(client, mod["join_token"])
    a, lobby = await knock(client, ana["join_token"], device="tab-1")
    await m.wait_for("knock")
    resp = await client.post(
        f"/api/v1/workshops/{workshop['id']}/lobby/admit", json={"knock_ids": [lobby["knock_id"]]}, headers=ADMIN
    )
    assert await resp.json() == {"admitted": 1}
    welcome = await a.wait_for("welcome")
    a.abort()
    await m.wait_for("peer_reconnecting")
    back = await enter(client, ana["join_token"], device="tab-1", resume=welcome["resume"])
    assert back.welcome["resumed"] is True
    # A reload (a fresh hello, same device) enters too: the admission holds until they leave on purpose.
    reload = await enter(client, ana["join_token"], device="tab-1")
    assert reload.welcome["resumed"] is False
    # Another device is someone else as far as the lobby knows.
    _other, elsewhere = await knock(client, ana["join_token"], device="phone-2")
    assert elsewhere["reason"] == "lobby"
    await reload.send({"type": "leave"})
    assert (await closed(reload))[0] == 1000
    await settle(m, "s1")
    after, _ = await knock(client, ana["join_token"], device="tab-1")
    await after.close()
    await m.close()


async def test_moderators_admit_everyone_from_one_country_then_everyone(client: Client) -> None:
    workshop, mod = await lobby_workshop(client)
    people = [
        await add_participant(client, workshop["id"], display_name=name, country=country)
        for name, country in (("Anna", "AT"), ("Bert", "BE"), ("Alois", "AT"))
    ]
    waiting = [await knock(client, p["join_token"]) for p in people]
    m = await enter(client, mod["join_token"])
    await m.send({"type": "admit", "country": "AT", "request_id": "at"})
    assert (await m.wait_for("ack", request_id="at"))["admitted"] == 2
    for sc, _ in (waiting[0], waiting[2]):
        await sc.wait_for("welcome")
    assert [k["country"] for k in (await enter(client, mod["join_token"])).welcome["knocks"]] == ["BE"]
    m = await enter(client, mod["join_token"])
    await m.send({"type": "admit", "country": "AT", "request_id": "none-left"})
    assert (await m.wait_for("ack", request_id="none-left"))["admitted"] == 0
    resp = await client.post(f"/api/v1/workshops/{workshop['id']}/lobby/admit", json={"all": True}, headers=ADMIN)
    assert await resp.json() == {"admitted": 1}
    await waiting[1][0].wait_for("welcome")
    for sc, _ in waiting:
        await sc.close()
    await m.close()


async def test_unverified_lobby_lets_a_trusted_device_in_and_stops_a_new_one(client: Client) -> None:
    workshop, mod = await lobby_workshop(client, lobby="unverified")
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    m = await enter(client, mod["join_token"])
    a, first = await knock(client, ana["join_token"], device="laptop")
    assert first["reason"] == "unverified"
    assert (await m.wait_for("knock"))["knock"]["link_used_elsewhere"] is False
    await m.send({"type": "admit", "knock_ids": [first["knock_id"]]})
    await a.wait_for("welcome")
    await a.send({"type": "leave"})
    await closed(a)
    # Trusted afterwards, even after leaving: the same browser comes straight in.
    again = await enter(client, ana["join_token"], device="laptop")
    _b, forwarded = await knock(client, ana["join_token"], device="strangers-pc")
    assert forwarded["reason"] == "unverified"
    seen = await m.wait_for("knock", timeout=10)
    assert (seen["knock"]["id"], seen["knock"]["link_used_elsewhere"]) == (forwarded["knock_id"], True)
    # The one in the room stays in: a knock replaces nobody.
    assert (await settle(again, "still-here")) == []
    await again.close()
    await m.close()


async def test_moderators_and_the_organiser_never_knock_and_the_lobby_can_be_switched_off(client: Client) -> None:
    workshop, mod = await lobby_workshop(client)
    organiser = await add_participant(client, workshop["id"], display_name="Olga", country="LT", role="organiser")
    observer = await add_participant(client, workshop["id"], display_name="Otto", country="DE", role="observer")
    await enter(client, mod["join_token"])
    await enter(client, organiser["join_token"])
    await knock(client, observer["join_token"])
    resp = await client.patch(f"/api/v1/workshops/{workshop['id']}", json={"lobby": "off"}, headers=ADMIN)
    assert (await resp.json())["lobby"] == "off"
    await enter(client, observer["join_token"])
    resp = await client.patch(f"/api/v1/workshops/{workshop['id']}", json={"lobby": None}, headers=ADMIN)
    await error_of(resp, 400, "invalid_argument")
    resp = await client.patch(f"/api/v1/workshops/{workshop['id']}", json={"lobby": "sometimes"}, headers=ADMIN)
    await error_of(resp, 400, "invalid_argument")


async def test_a_waiting_client_may_only_leave_and_other_messages_get_an_error(client: Client) -> None:
    workshop, mod = await lobby_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    m = await enter(client, mod["join_token"])
    a, lobby = await knock(client, ana["join_token"])
    await a.send({"type": "chat", "text": "let me in", "request_id": "c"})
    assert await a.recv() == {
        "type": "error",
        "code": "permission_denied",
        "message": "you are waiting in the lobby for a moderator",
        "request_id": "c",
    }
    await a.send("{not json")
    assert (await a.recv())["code"] == "invalid_argument"
    await a.send({"type": "admit", "all": True, "request_id": "self"})
    assert (await a.recv())["code"] == "permission_denied"
    await a.send({"type": "leave"})
    assert (await closed(a))[0] == 1000
    withdrawn = await m.wait_for("knock_withdrawn")
    assert (withdrawn["knock_id"], withdrawn["outcome"]) == (lobby["knock_id"], "left")
    await m.close()


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"type": "admit"}, "invalid_argument"),
        ({"type": "admit", "all": True, "country": "AT"}, "invalid_argument"),
        ({"type": "admit", "all": False}, "invalid_argument"),
        ({"type": "admit", "knock_ids": []}, "invalid_argument"),
        ({"type": "admit", "knock_ids": [""]}, "invalid_argument"),
        ({"type": "admit", "knock_ids": "abc"}, "invalid_argument"),
        ({"type": "admit", "country": "at"}, "invalid_argument"),
        ({"type": "admit", "country": "AUT"}, "invalid_argument"),
        ({"type": "admit", "knock_ids": ["00000000-0000-4000-8000-000000000000"]}, "not_found"),
        ({"type": "admit", "knock_ids": ["not-a-uuid"]}, "not_found"),
        ({"type": "deny"}, "invalid_argument"),
        ({"type": "deny", "knock_id": "00000000-0000-4000-8000-000000000000"}, "not_found"),
        ({"type": "deny", "knock_id": "x", "message": "m" * 501}, "invalid_argument"),
        ({"type": "deny", "knock_id": "x", "message": 5}, "invalid_argument"),
        ({"type": "deny", "knock_id": "x", "extra": 1}, "invalid_argument"),
    ],
)
async def test_bad_admit_and_deny_messages_get_an_error_and_the_session_goes_on(
    client: Client, message: dict[str, Any], code: str
) -> None:
    workshop, mod = await lobby_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    m = await enter(client, mod["join_token"])
    a, lobby = await knock(client, ana["join_token"])
    await m.wait_for("knock")
    await m.send({**message, "request_id": "bad"})
    error = await m.wait_for("error")
    assert (error["code"], error["request_id"]) == (code, "bad"), error
    # Nothing was decided; the session goes on.
    await m.send({"type": "admit", "knock_ids": [lobby["knock_id"]], "request_id": "ok"})
    assert (await m.wait_for("ack", request_id="ok"))["admitted"] == 1
    await a.wait_for("welcome")
    await a.close()
    await m.close()


async def test_participants_cannot_admit_or_deny_and_another_workshops_moderator_sees_no_knock(
    client: Client,
) -> None:
    workshop, mod = await lobby_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    ben = await add_participant(client, workshop["id"], display_name="Ben", country="DE")
    other = await create_workshop(client, title="Elsewhere", lobby="everyone")
    foreign = await add_participant(client, other["id"], display_name="Fred", country="FR", role="moderator")
    f = await enter(client, foreign["join_token"])
    m = await enter(client, mod["join_token"])
    a, lobby = await knock(client, ana["join_token"])
    await m.wait_for("knock")
    await m.send({"type": "admit", "knock_ids": [lobby["knock_id"]]})
    await a.wait_for("welcome")
    _b, ben_lobby = await knock(client, ben["join_token"])
    for message in (
        {"type": "admit", "all": True},
        {"type": "admit", "knock_ids": [ben_lobby["knock_id"]]},
        {"type": "deny", "knock_id": ben_lobby["knock_id"]},
    ):
        await a.send({**message, "request_id": "p"})
        assert (await a.wait_for("error"))["code"] == "permission_denied"
        await f.send({**message, "request_id": "f"})
        reply = await f.wait_for("ack" if message.get("all") else "error", request_id="f")
        assert reply.get("code", "ack") in ("not_found", "ack")
        assert reply.get("admitted", 0) == 0
    assert [msg["type"] for msg in await settle(f, "quiet")] == []
    assert f.welcome["knocks"] == []
    resp = await client.get(f"/api/v1/workshops/{workshop['id']}/lobby", headers=bearer(ana["join_token"]))
    await error_of(resp, 403, "permission_denied")
    resp = await client.get(f"/api/v1/workshops/{workshop['id']}/lobby", headers=bearer(foreign["join_token"]))
    await error_of(resp, 404, "not_found")
    resp = await client.post(
        f"/api/v1/workshops/{other['id']}/lobby/admit",
        json={"knock_ids": [ben_lobby["knock_id"]]},
        headers=bearer(foreign["join_token"]),
    )
    await error_of(resp, 404, "not_found")
    # Ben still waits, for this workshop's moderators only.
    assert [k["id"] for k in (await enter(client, mod["join_token"])).welcome["knocks"]] == [ben_lobby["knock_id"]]


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/lobby/admit", {}, 400, "invalid_argument"),
        ("/lobby/admit", {"all": True, "knock_ids": ["a"]}, 400, "invalid_argument"),
        ("/lobby/admit", {"knock_ids": []}, 400, "invalid_argument"),
        ("/lobby/admit", {"country": "xx"}, 400, "invalid_argument"),
        ("/lobby/admit", {"all": "yes"}, 400, "invalid_argument"),
        ("/lobby/admit", {"knock_ids": ["00000000-0000-4000-8000-000000000000"]}, 404, "not_found"),
        ("/lobby/admit", [1], 400, "invalid_argument"),
        ("/lobby/not-a-uuid/deny", {}, 404, "not_found"),
        ("/lobby/00000000-0000-4000-8000-000000000000/deny", {}, 404, "not_found"),
        ("/lobby/00000000-0000-4000-8000-000000000000/deny", {"message": "m" * 501}, 400, "invalid_argument"),
        ("/lobby/00000000-0000-4000-8000-000000000000/deny", {"reason": "x"}, 400, "invalid_argument"),
    ],
)
async def test_bad_lobby_requests_over_http_get_a_stable_error(
    client: Client, path: str, body: Any, status: int, code: str
) -> None:
    workshop, _mod = await lobby_workshop(client)
    resp = await client.post(f"/api/v1/workshops/{workshop['id']}{path}", json=body, headers=ADMIN)
    await error_of(resp, status, code)


async def test_knocks_and_decisions_are_stored(client: Client, database_url: str) -> None:
    workshop, mod = await lobby_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    a, lobby = await knock(client, ana["join_token"], device="d1")
    m = await enter(client, mod["join_token"])
    await m.send({"type": "admit", "knock_ids": [lobby["knock_id"]]})
    await a.wait_for("welcome")
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT state, decided_by, device FROM lobby_knocks WHERE id = $1", lobby["knock_id"])
        devices = await conn.fetch("SELECT device FROM participant_devices WHERE participant_id = $1", ana["id"])
    finally:
        await conn.close()
    assert (row["state"], str(row["decided_by"]), row["device"]) == ("admitted", mod["id"], "d1")
    assert [r["device"] for r in devices] == ["d1"]
    await a.close()
    await m.close()


async def test_a_device_id_must_be_short_text(client: Client) -> None:
    workshop, _mod = await lobby_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    for device in ("", "d" * 65, 7):
        sc, first = await hello(client, ana["join_token"], device=device)  # type: ignore[arg-type]
        assert (first["type"], first["code"]) == ("error", "invalid_argument"), first
        assert (await closed(sc))[0] == 4400
