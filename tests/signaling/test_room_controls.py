"""Room controls: lock, mute everyone but the presenters, ask to unmute, lower all hands, the hand queue, the floor;
and the authorisation matrix of every admission and room-control message."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from tests.conftest import make_settings
from tests.helpers import ADMIN, add_participant, bearer, create_workshop, error_of
from tests.signaling.admission import Client, closed, enter, knock, settle
from tests.signaling.client import SignalClient

WS = "/api/v1/workshops"


async def test_a_locked_room_sends_a_participants_join_to_the_lobby_and_a_moderator_still_enters(
    client: Client,
) -> None:
    workshop = await create_workshop(client)
    wid, plenary = workshop["id"], workshop["plenary_room_id"]
    mod = await add_participant(client, wid, display_name="Mia", country="IE", role="moderator")
    mod2 = await add_participant(client, wid, display_name="Max", country="NL", role="moderator")
    organiser = await add_participant(client, wid, display_name="Olga", country="LT", role="organiser")
    inside = await add_participant(client, wid, display_name="Ina", country="AT")
    late = await add_participant(client, wid, display_name="Lars", country="SE")
    m = await enter(client, mod["join_token"])
    i = await enter(client, inside["join_token"])
    await m.send({"type": "lock_room", "locked": True, "request_id": "lock"})
    await m.wait_for("ack", request_id="lock")
    updated = await i.wait_for("room_updated")
    assert (updated["room"]["id"], updated["room"]["locked"]) == (plenary, True)

    w, lobby = await knock(client, late["join_token"])
    assert (lobby["reason"], lobby["room_id"]) == ("locked", plenary)
    assert (await m.wait_for("knock"))["knock"]["reason"] == "locked"
    # Moderators and the organiser are never kept out; someone already in resumes as before.
    assert (await enter(client, mod2["join_token"])).welcome["room"]["locked"] is True
    await enter(client, organiser["join_token"])
    i.abort()
    await m.wait_for("peer_reconnecting", timeout=30)
    back = await enter(client, inside["join_token"], resume=i.welcome["resume"])
    assert back.welcome["resumed"] is True

    await m.send({"type": "admit", "knock_ids": [lobby["knock_id"]], "request_id": "in"})
    assert (await m.wait_for("ack", request_id="in"))["admitted"] == 1
    assert (await w.wait_for("welcome"))["room"]["id"] == plenary

    resp = await client.patch(f"{WS}/{wid}/rooms/{plenary}", json={"locked": False}, headers=bearer(mod["join_token"]))
    assert resp.status == 200 and (await resp.json())["locked"] is False
    assert (await back.wait_for("room_updated"))["room"]["locked"] is False
    newcomer = await add_participant(client, wid, display_name="Nora", country="NO")
    await enter(client, newcomer["join_token"])
    resp = await client.get(f"{WS}/{wid}/moderator-actions", headers=ADMIN)
    actions = [(e["action"], e["actor_id"]) for e in (await resp.json())["items"]]
    assert ("room.lock", mod["id"]) in actions
    assert ("room.unlock", mod["id"]) in actions


async def test_a_lock_over_http_survives_a_room_with_nobody_in_it(client: Client) -> None:
    workshop = await create_workshop(client)
    wid, plenary = workshop["id"], workshop["plenary_room_id"]
    ana = await add_participant(client, wid, display_name="Ana", country="PT")
    resp = await client.patch(f"{WS}/{wid}/rooms/{plenary}", json={"locked": True}, headers=ADMIN)
    assert (await resp.json())["locked"] is True
    _a, lobby = await knock(client, ana["join_token"])
    assert lobby["reason"] == "locked"
    resp = await client.patch(f"{WS}/{wid}/rooms/{plenary}", json={"locked": None}, headers=ADMIN)
    await error_of(resp, 400, "invalid_argument")
    resp = await client.patch(f"{WS}/{wid}/rooms/{plenary}", json={"locked": "yes"}, headers=ADMIN)
    await error_of(resp, 400, "invalid_argument")


async def room_of_five(client: Client) -> tuple[dict[str, Any], dict[str, SignalClient], dict[str, dict[str, Any]]]:
    workshop = await create_workshop(client)
    wid = workshop["id"]
    people = {
        "mod": await add_participant(client, wid, display_name="Mia", country="IE", role="moderator"),
        "sharer": await add_participant(client, wid, display_name="Sam", country="SE"),
        "spot": await add_participant(client, wid, display_name="Sue", country="SI"),
        "floor": await add_participant(client, wid, display_name="Fay", country="FI"),
        "a": await add_participant(client, wid, display_name="Ann", country="AT"),
        "b": await add_participant(client, wid, display_name="Bob", country="BE"),
    }
    sockets = {name: await enter(client, p["join_token"]) for name, p in people.items()}
    return workshop, sockets, people


async def test_mute_all_leaves_the_presenters_unmuted(client: Client) -> None:
    _workshop, s, people = await room_of_five(client)
    m = s["mod"]
    await s["sharer"].send({"type": "update", "screen": True})
    await m.send({"type": "spotlight", "peer_id": people["spot"]["id"]})
    await m.send({"type": "grant_floor", "peer_id": people["floor"]["id"]})
    await settle(m, "ready")
    await m.send({"type": "mute_all", "request_id": "mute"})
    ack = await m.wait_for("ack", request_id="mute")
    assert ack == {"type": "ack", "request_id": "mute", "affected": 2}
    for name in ("a", "b"):
        asked = await s[name].wait_for("mute_requested")
        assert (asked["kind"], asked["by"]["id"]) == ("audio", people["mod"]["id"])
    states = {p["id"]: p["state"] for p in (await enter(client, people["mod"]["join_token"])).welcome["peers"]}
    assert {name: states[people[name]["id"]]["audio"] for name in ("sharer", "spot", "floor", "a", "b")} == {
        "sharer": True,
        "spot": True,
        "floor": True,
        "a": False,
        "b": False,
    }
    for name in ("sharer", "spot", "floor"):
        assert not [msg for msg in await settle(s[name], "q") if msg["type"] == "mute_requested"]


async def test_mute_all_over_http_mutes_a_live_room(client: Client) -> None:
    workshop, s, people = await room_of_five(client)
    resp = await client.post(f"{WS}/{workshop['id']}/rooms/{workshop['plenary_room_id']}/mute-all", headers=ADMIN)
    assert await resp.json() == {"room_id": workshop["plenary_room_id"], "affected": 5}
    assert (await s["a"].wait_for("mute_requested"))["by"]["id"] is None
    resp = await client.post(
        f"{WS}/{workshop['id']}/rooms/{workshop['plenary_room_id']}/mute-all", json={"kind": "video"}, headers=ADMIN
    )
    assert (await resp.json())["affected"] == 5
    resp = await client.post(
        f"{WS}/{workshop['id']}/rooms/{workshop['plenary_room_id']}/mute-all", json={"kind": "all"}, headers=ADMIN
    )
    await error_of(resp, 400, "invalid_argument")
    del people


async def test_no_moderator_action_can_turn_on_someones_microphone_or_camera(client: Client) -> None:
    workshop, s, people = await room_of_five(client)
    wid, plenary = workshop["id"], workshop["plenary_room_id"]
    target, m = people["a"], s["mod"]
    await s["a"].send({"type": "update", "audio": False, "video": False, "hand": True})
    await settle(m, "off")
    tid = target["id"]
    for message in (
        {"type": "ask_unmute", "peer_id": tid},
        {"type": "ask_unmute", "peer_id": tid, "kind": "video"},
        {"type": "give_floor", "peer_id": tid},
        {"type": "grant_floor", "peer_id": tid},
        {"type": "spotlight", "peer_id": tid},
        {"type": "mute_all"},
        {"type": "mute_all", "kind": "video"},
        {"type": "lower_all_hands"},
        {"type": "lower_hand", "peer_id": tid},
        {"type": "revoke_floor", "peer_id": tid},
        {"type": "spotlight", "peer_id": None},
        {"type": "lock_room", "locked": True},
        {"type": "lock_room", "locked": False},
    ):
        await m.send({**message, "request_id": message["type"]})
        await m.wait_for("ack", request_id=message["type"])
    for method, path, body in (
        ("POST", f"/participants/{tid}/ask-unmute", {"kind": "audio"}),
        ("POST", f"/participants/{tid}/ask-unmute", {"kind": "video"}),
        ("POST", f"/participants/{tid}/give-floor", None),
        ("POST", f"/participants/{tid}/floor", None),
        ("POST", f"/participants/{tid}/mute", {"kind": "audio"}),
        ("POST", f"/rooms/{plenary}/mute-all", None),
        ("POST", f"/rooms/{plenary}/lower-hands", None),
    ):
        resp = await client.request(method, f"{WS}/{wid}{path}", json=body, headers=ADMIN)
        assert resp.status == 200, (path, await resp.text())
    seen = await settle(m, "after") + m.seen
    about_target = [msg["peer"]["state"] for msg in seen if msg["type"] == "peer_updated" and msg["peer"]["id"] == tid]
    assert about_target, "the moderator saw the target's state change (hand, floor)"
    assert all(not state["audio"] and not state["video"] for state in about_target), about_target
    resp = await client.get(f"{WS}/{wid}/presence", headers=ADMIN)
    (room,) = (await resp.json())["rooms"]
    (state,) = [p["state"] for p in room["members"] if p["id"] == tid]
    assert (state["audio"], state["video"]) == (False, False)
    # What the target was sent: requests, never a state of theirs switched on.
    told = await settle(s["a"], "told")
    assert {msg["type"] for msg in told} >= {"unmute_requested"}
    mine = [msg["peer"]["state"] for msg in told if msg["type"] == "peer_updated" and msg["peer"]["id"] == tid]
    assert all(not st["audio"] and not st["video"] for st in mine)
    requested = [msg for msg in told if msg["type"] == "unmute_requested"]
    assert {msg["kind"] for msg in requested} == {"audio", "video"}


async def test_the_hand_queue_is_ordered_by_when_hands_went_up_and_lower_all_hands_clears_it(client: Client) -> None:
    _workshop, s, people = await room_of_five(client)
    m = s["mod"]
    for name in ("b", "a", "spot"):
        await s[name].send({"type": "update", "hand": True, "request_id": "up"})
        await s[name].wait_for("ack", request_id="up")
    await s["a"].send({"type": "update", "hand": True, "request_id": "again"})  # already up: keeps its place
    await s["a"].wait_for("ack", request_id="again")
    welcome = (await enter(client, people["mod"]["join_token"])).welcome
    raised = sorted(
        (datetime.fromisoformat(p["state"]["hand_raised_at"]), p["id"]) for p in welcome["peers"] if p["state"]["hand"]
    )
    assert [pid for _, pid in raised] == [people[n]["id"] for n in ("b", "a", "spot")]
    m = await enter(client, people["mod"]["join_token"])
    # Give the floor to the first in the queue: their hand goes down, they are asked to unmute (mesh room).
    await s["b"].send({"type": "update", "audio": False})
    await m.send({"type": "give_floor", "peer_id": people["b"]["id"], "request_id": "floor"})
    await m.wait_for("ack", request_id="floor")
    assert (await s["b"].wait_for("unmute_requested"))["kind"] == "audio"
    await m.send({"type": "lower_all_hands", "request_id": "down"})
    assert (await m.wait_for("ack", request_id="down"))["affected"] == 2
    states = {p["id"]: p["state"] for p in (await enter(client, people["mod"]["join_token"])).welcome["peers"]}
    assert all(not st["hand"] and st["hand_raised_at"] is None for st in states.values())


async def test_ask_unmute_and_give_floor_over_http(client: Client) -> None:
    workshop, s, people = await room_of_five(client)
    wid, tid = workshop["id"], people["a"]["id"]
    resp = await client.post(f"{WS}/{wid}/participants/{tid}/ask-unmute", headers=bearer(people["mod"]["join_token"]))
    assert await resp.json() == {"participant_id": tid, "live": True}
    assert (await s["a"].wait_for("unmute_requested"))["by"]["id"] == people["mod"]["id"]
    resp = await client.post(f"{WS}/{wid}/participants/{tid}/give-floor", headers=ADMIN)
    assert await resp.json() == {"participant_id": tid, "live": True, "how": "unmute_request"}
    absent = await add_participant(client, wid, display_name="Away", country="FR")
    resp = await client.post(f"{WS}/{wid}/participants/{absent['id']}/give-floor", headers=ADMIN)
    assert await resp.json() == {"participant_id": absent["id"], "live": False, "how": None}
    resp = await client.post(f"{WS}/{wid}/participants/{tid}/ask-unmute", json={"kind": "both"}, headers=ADMIN)
    await error_of(resp, 400, "invalid_argument")


@pytest.mark.parametrize(
    "message",
    [
        {"type": "lock_room"},
        {"type": "lock_room", "locked": "yes"},
        {"type": "lock_room", "locked": 1},
        {"type": "mute_all", "kind": "screen"},
        {"type": "mute_all", "extra": True},
        {"type": "ask_unmute"},
        {"type": "ask_unmute", "peer_id": ""},
        {"type": "ask_unmute", "peer_id": "x" * 65},
        {"type": "ask_unmute", "peer_id": "p", "kind": "both"},
        {"type": "lower_all_hands", "room_id": "r"},
        {"type": "give_floor"},
        {"type": "give_floor", "peer_id": 5},
    ],
)
async def test_bad_room_control_messages_get_invalid_argument_and_the_session_goes_on(
    client: Client, message: dict[str, Any]
) -> None:
    workshop = await create_workshop(client)
    mod = await add_participant(client, workshop["id"], display_name="Mia", country="IE", role="moderator")
    m = await enter(client, mod["join_token"])
    await m.send({**message, "request_id": "bad"})
    error = await m.wait_for("error")
    assert (error["code"], error["request_id"]) == ("invalid_argument", "bad")
    await m.send({"type": "lower_all_hands", "request_id": "ok"})
    assert (await m.wait_for("ack", request_id="ok"))["affected"] == 0


# The authorisation matrix of the admission and room-control messages ------------------------------

CALLERS = ("organiser", "moderator", "participant", "observer", "other_workshop_moderator")


def messages(target_id: str, knock_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("admit_ids", {"type": "admit", "knock_ids": [knock_id]}),
        ("admit_all", {"type": "admit", "all": True}),
        ("admit_country", {"type": "admit", "country": "PT"}),
        ("deny", {"type": "deny", "knock_id": knock_id}),
        ("lock_room", {"type": "lock_room", "locked": True}),
        ("mute_all", {"type": "mute_all"}),
        ("ask_unmute", {"type": "ask_unmute", "peer_id": target_id}),
        ("lower_all_hands", {"type": "lower_all_hands"}),
        ("give_floor", {"type": "give_floor", "peer_id": target_id}),
    ]


async def reply_to(sc: SignalClient, request_id: str) -> dict[str, Any]:
    """The ack or error that answers `request_id`."""
    while True:
        msg = await sc.recv()
        if msg.get("request_id") == request_id and msg["type"] in ("ack", "error"):
            return msg


@pytest.mark.parametrize("caller", CALLERS)
async def test_every_admission_and_room_control_message_answers_each_caller_as_the_rules_say(
    client: Client, caller: str
) -> None:
    """Moderators and the organiser may; participants and observers get permission_denied and change nothing; a
    moderator of another workshop finds nothing of this workshop (not_found, or nothing to admit)."""
    failures: dict[str, str] = {}
    for name, _ in messages("t", "k"):
        workshop = await create_workshop(client, lobby="everyone")
        wid = workshop["id"]
        other = await create_workshop(client, title="Elsewhere")
        roles = {
            "organiser": await add_participant(client, wid, display_name="Olga", country="LT", role="organiser"),
            "moderator": await add_participant(client, wid, display_name="Mia", country="IE", role="moderator"),
            "participant": await add_participant(client, wid, display_name="Pia", country="PT"),
            "observer": await add_participant(client, wid, display_name="Otto", country="DE", role="observer"),
            "other_workshop_moderator": await add_participant(
                client, other["id"], display_name="Fred", country="FR", role="moderator"
            ),
        }
        target = await add_participant(client, wid, display_name="Tia", country="PT")
        knocker = await add_participant(client, wid, display_name="Kai", country="PT")
        resp = await client.post(f"{WS}/{wid}/lobby/admit", json={"all": True}, headers=ADMIN)
        assert resp.status == 200
        me = roles[caller]
        if caller in ("participant", "observer"):
            sc, lobby = await knock(client, me["join_token"])
            await client.post(f"{WS}/{wid}/lobby/admit", json={"knock_ids": [lobby["knock_id"]]}, headers=ADMIN)
            await sc.wait_for("welcome")
        else:
            sc = await enter(client, me["join_token"])
        t, t_lobby = await knock(client, target["join_token"])
        await client.post(f"{WS}/{wid}/lobby/admit", json={"knock_ids": [t_lobby["knock_id"]]}, headers=ADMIN)
        await t.wait_for("welcome")
        k, k_lobby = await knock(client, knocker["join_token"])
        message = dict(messages(target["id"], k_lobby["knock_id"]))[name]
        await sc.send({**message, "request_id": name})
        reply = await reply_to(sc, name)
        allowed = caller in ("organiser", "moderator")
        if allowed and reply["type"] != "ack":
            failures[name] = f"{caller} got {reply}"
        if caller == "other_workshop_moderator":
            ok = reply.get("code") == "not_found" or reply == {"type": "ack", "request_id": name, "admitted": 0}
            if name in ("lock_room", "mute_all", "lower_all_hands") and reply["type"] == "ack":
                ok = True  # their own room: nothing of this workshop is touched (checked below)
            if not ok:
                failures[f"{name}"] = f"another workshop's moderator got {reply}"
        elif not allowed and reply.get("code") != "permission_denied":
            failures[name] = f"{caller} got {reply}"
        if not allowed:
            # The knocker still waits, the target keeps their state, the room is not locked.
            resp = await client.get(f"{WS}/{wid}/lobby", headers=ADMIN)
            if [kk["id"] for kk in (await resp.json())["knocks"]] != [k_lobby["knock_id"]]:
                failures[f"{name}:lobby"] = "a refused call changed the lobby"
            resp = await client.get(f"{WS}/{wid}/rooms/{workshop['plenary_room_id']}", headers=ADMIN)
            if (await resp.json())["locked"]:
                failures[f"{name}:lock"] = "a refused call locked the room"
            told = await settle(t, f"t-{name}")
            if [msg for msg in told if msg["type"] in ("unmute_requested", "mute_requested", "floor")]:
                failures[f"{name}:target"] = f"a refused call reached the target: {told}"
        for socket in (sc, t, k):
            await socket.close()
    assert failures == {}


async def test_a_waiting_knockers_socket_closes_when_the_workshop_is_deleted(client: Client) -> None:
    workshop = await create_workshop(client, lobby="everyone")
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    a, _lobby = await knock(client, ana["join_token"])
    resp = await client.delete(f"{WS}/{workshop['id']}", headers=ADMIN)
    assert resp.status == 204
    assert (await closed(a))[0] == 4403


UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    "case",
    [
        ("POST", f"/rooms/{UNKNOWN}/mute-all", None, 404, "not_found"),
        ("POST", "/rooms/not-a-room/mute-all", None, 404, "not_found"),
        ("POST", "/rooms/{plenary}/mute-all", {"kind": 1}, 400, "invalid_argument"),
        ("POST", "/rooms/{plenary}/mute-all", {"kind": "audio", "room": "x"}, 400, "invalid_argument"),
        ("POST", "/rooms/{plenary}/mute-all", [], 400, "invalid_argument"),
        ("POST", f"/rooms/{UNKNOWN}/lower-hands", None, 404, "not_found"),
        ("POST", "/rooms/{other_plenary}/lower-hands", None, 404, "not_found"),
        ("POST", "/rooms/{other_plenary}/mute-all", None, 404, "not_found"),
        ("POST", f"/participants/{UNKNOWN}/ask-unmute", None, 404, "not_found"),
        ("POST", "/participants/{ana}/ask-unmute", {"kind": None}, 400, "invalid_argument"),
        ("POST", "/participants/{ana}/ask-unmute", "text", 400, "invalid_argument"),
        ("POST", f"/participants/{UNKNOWN}/give-floor", None, 404, "not_found"),
        ("POST", f"/participants/{UNKNOWN}/unban", None, 404, "not_found"),
        ("GET", "/bans?cursor=not-a-cursor", None, 400, "invalid_argument"),
        ("GET", "/bans?limit=0", None, 400, "invalid_argument"),
    ],
)
async def test_bad_room_control_and_ban_requests_over_http_get_a_stable_error(
    client: Client, case: tuple[str, str, Any, int, str]
) -> None:
    method, path, body, status, code = case
    workshop = await create_workshop(client)
    other = await create_workshop(client, title="Elsewhere")
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    url = f"{WS}/{workshop['id']}" + path.format(
        plenary=workshop["plenary_room_id"], other_plenary=other["plenary_room_id"], ana=ana["id"]
    )
    resp = await client.request(method, url, json=body, headers=ADMIN)
    await error_of(resp, status, code)


async def test_people_in_a_room_when_it_was_locked_come_back_after_a_restart_and_newcomers_still_knock(
    database_url: str, aiohttp_client: Any, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path / "var")
    first = await aiohttp_client(create_app(settings))
    workshop = await create_workshop(first)
    wid = workshop["id"]
    mod = await add_participant(first, wid, display_name="Mia", country="IE", role="moderator")
    ana = await add_participant(first, wid, display_name="Ana", country="PT")
    late = await add_participant(first, wid, display_name="Lars", country="SE")
    m = await enter(first, mod["join_token"], device="mod-laptop")
    a = await enter(first, ana["join_token"], device="ana-laptop")
    await m.send({"type": "lock_room", "locked": True, "request_id": "lock"})
    await m.wait_for("ack", request_id="lock")
    await a.wait_for("room_updated")
    await first.close()

    second = await aiohttp_client(create_app(settings))
    back = await enter(second, ana["join_token"], device="ana-laptop", resume=a.welcome["resume"])
    # Her place outlived the restart: she resumes (no knock), in the room that is still locked.
    assert (back.welcome["resumed"], back.welcome["room"]["locked"]) == (True, True)
    _other, from_elsewhere = await knock(second, ana["join_token"], device="another-pc")
    assert from_elsewhere["reason"] == "locked"
    _l, newcomer = await knock(second, late["join_token"], device="lars-pc")
    assert newcomer["reason"] == "locked"
