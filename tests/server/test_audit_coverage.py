"""Every HTTP route that changes state leaves exactly one audit entry, written in the transaction of its change.

The list of routes is not written by hand: it is read from the route table (`API.routes`), so a new state-changing
route without a scenario here (or a reason in NOT_AUDITED) fails `test_every_state_changing_route_has_a_scenario`.
For each scenario: the call leaves one entry naming the action, the actor and the target; with a fault injected
between the change and its entry (our own seam, `AuditLog.before_write`), the call fails and leaves neither.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from server import keys
from server.api import load_routes
from signaling.audit import ADMIN as ADMIN_ACTOR
from signaling.audit import Change
from tests.helpers import ADMIN, WORKSHOP, add_participant, bearer, create_workshop
from tests.signaling.admission import knock, set_lobby
from tests.signaling.rtc_peer import loopback_ice

Client = TestClient[Any, Any]


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_ice(monkeypatch)  # the recording scenarios start a real aiortc recorder


@dataclass
class World:
    workshop: dict[str, Any]
    organiser: dict[str, Any]
    moderator: dict[str, Any]
    target: dict[str, Any]
    room: dict[str, Any]
    plan: dict[str, Any]
    recording: dict[str, Any] = field(default_factory=dict)
    track_id: str = ""
    knock: dict[str, Any] = field(default_factory=dict)
    session: dict[str, Any] = field(default_factory=dict)
    sockets: list[Any] = field(default_factory=list)

    @property
    def w(self) -> str:
        return f"/api/v1/workshops/{self.workshop['id']}"

    @property
    def plan_path(self) -> str:
        return f"{self.w}/breakouts/{self.plan['id']}"


async def _ok(resp: Any, status: int) -> Any:
    text = await resp.text()
    assert resp.status == status, text
    return await resp.json() if text else None


async def build_world(client: Client) -> World:
    workshop = await create_workshop(client)
    wid = workshop["id"]
    organiser = await add_participant(client, wid, role="organiser", display_name="Olga Organiser")
    moderator = await add_participant(client, wid, role="moderator", display_name="Mo Moderator", country="DE")
    target = await add_participant(client, wid, display_name="Tara Target", country="FR")
    room = await _ok(await client.post(f"/api/v1/workshops/{wid}/rooms", json={"name": "Side"}, headers=ADMIN), 201)
    plan = await _ok(
        await client.post(
            f"/api/v1/workshops/{wid}/breakouts",
            json={"name": "Day one", "rooms": ["A", "B"], "assignments": {target["id"]: 0}},
            headers=ADMIN,
        ),
        201,
    )
    return World(workshop, organiser, moderator, target, room, plan)


async def open_plan(client: Client, world: World) -> None:
    await _ok(await client.post(f"{world.plan_path}/open", json={"duration_s": 600}, headers=ADMIN), 200)


async def live_recording(client: Client, world: World) -> None:
    resp = await client.post(f"/api/v1/rooms/{world.workshop['plenary_room_id']}/recordings", headers=ADMIN)
    world.recording = await _ok(resp, 201)


async def ready_recording(client: Client, world: World) -> None:
    """A finished recording with one track file on disk, made through the stores."""
    store = client.app[keys.RECORDING_STORE]
    storage = client.app[keys.STORAGE]
    wid = uuid.UUID(world.workshop["id"])
    row = await store.create(
        workshop_id=wid,
        room_id=uuid.UUID(world.workshop["plenary_room_id"]),
        room_name="Plenary",
        consent_mode="explicit",
        started_by=None,
        started_by_role="admin",
        change=Change(wid, ADMIN_ACTOR, "recording.start"),
    )
    track_id = uuid.uuid4()
    key = storage.key_for(row["id"], track_id)
    path = storage.path(key)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not really webm")
    await store.add_track(
        row["id"],
        uuid.UUID(world.target["id"]),
        track_id=track_id,
        kind="audio",
        codec="opus",
        file_key=key,
        offset_s=0,
    )
    await store.finish_track(track_id, state="complete", size=15, duration_s=1.0, sha256="x")
    for expected, target in (("starting", "recording"), ("recording", "stopping"), ("stopping", "ready")):
        await store.transition(row["id"], expected, target)
    world.recording, world.track_id = {"id": str(row["id"])}, str(track_id)


async def granted_recording(client: Client, world: World) -> None:
    """The ready recording, granted to the target."""
    await ready_recording(client, world)
    resp = await client.post(
        f"/api/v1/recordings/{world.recording['id']}/grants", json={"participant_id": world.target["id"]}, headers=ADMIN
    )
    await _ok(resp, 204)


async def composed_recording(client: Client, world: World) -> None:
    """A ready recording with a composed video on disk (its row written directly: no composer runs here)."""
    await ready_recording(client, world)
    path = client.app[keys.STORAGE].path(f"{world.recording['id']}/composed.webm")
    path.write_bytes(b"not really a composed webm")
    await client.app[keys.POOL].execute(
        "INSERT INTO recording_composed_files (recording_id, format, codec, file_key, bytes, sha256, duration_s, "
        "width, height) VALUES ($1, 'webm', 'vp8+opus', $2, 26, 'x', 1.0, 960, 540)",
        uuid.UUID(world.recording["id"]),
        f"{world.recording['id']}/composed.webm",
    )


Setup = Callable[[Client, World], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    method: str
    template: str  # the route as registered
    action: str
    path: Callable[[World], str]
    caller: str = "organiser"  # admin | organiser | moderator
    status: int = 200
    json: Any = None
    csv: str | None = None
    setup: tuple[Setup, ...] = ()
    target: Callable[[World], dict[str, Any]] = lambda w: {}

    @property
    def name(self) -> str:
        return self.action


WP = "/api/v1/workshops/{workshop_id}"
PP = WP + "/participants/{participant_id}"
BP = WP + "/breakouts/{plan_id}"


async def with_languages(client: Client, world: World) -> None:
    """The workshop has two languages, so that someone can be made an interpreter (docs/interpretation.md)."""
    resp = await client.patch(world.w, json={"languages": ["en", "ru"]}, headers=ADMIN)
    assert resp.status == 200, await resp.text()


async def knocking(client: Client, world: World) -> None:
    """The workshop has a lobby and the target waits in it (a real WebSocket, kept open for the test)."""
    await set_lobby(client, world.workshop["id"], "everyone")
    socket, lobby = await knock(client, world.target["join_token"])
    world.sockets.append(socket)
    world.knock.update(id=lobby["knock_id"])


async def banned(client: Client, world: World) -> None:
    resp = await client.post(
        f"{world.w}/participants/{world.target['id']}/remove",
        json={"ban": True, "reason": "test"},
        headers=dict(ADMIN),
    )
    await _ok(resp, 200)


async def with_email(client: Client, world: World) -> None:
    resp = await client.patch(
        f"{world.w}/participants/{world.target['id']}", json={"email": "tara@example.org"}, headers=dict(ADMIN)
    )
    await _ok(resp, 200)


# Far ahead: the scheduler fires nothing (and writes no entry) while a scenario runs.
AGENDA_SESSION = {
    "title": "Opening plenary",
    "kind": "plenary",
    "starts_at": "2099-12-01T08:00:00Z",
    "ends_at": "2099-12-01T09:00:00Z",
}


async def agenda_session(client: Client, world: World) -> None:
    world.session = await _ok(await client.post(f"{world.w}/agenda", json=AGENDA_SESSION, headers=ADMIN), 201)


def _session(w: World) -> dict[str, Any]:
    return {"session_id": w.session["id"]}


def _target(w: World) -> dict[str, Any]:
    return {"participant_id": w.target["id"]}


def _plan(w: World) -> dict[str, Any]:
    return {"plan_id": w.plan["id"]}


SCENARIOS = [
    Scenario(
        "POST",
        "/api/v1/workshops",
        "workshop.create",
        lambda w: "/api/v1/workshops",
        caller="admin",
        status=201,
        json=WORKSHOP,
    ),
    Scenario(
        "PATCH",
        WP,
        "workshop.update",
        lambda w: w.w,
        json={"recording_consent": "assumed", "records_retention_days": 30},
        target=lambda w: {"workshop_id": w.workshop["id"]},
    ),
    Scenario(
        "DELETE",
        WP,
        "workshop.delete",
        lambda w: w.w,
        caller="admin",
        status=204,
        target=lambda w: {"workshop_id": w.workshop["id"]},
    ),
    Scenario(
        "POST",
        WP + "/rooms",
        "room.create",
        lambda w: f"{w.w}/rooms",
        caller="moderator",
        status=201,
        json={"name": "Another"},
    ),
    Scenario(
        "PATCH",
        WP + "/rooms/{room_id}",
        "room.update",
        lambda w: f"{w.w}/rooms/{w.room['id']}",
        caller="moderator",
        json={"publishing": "moderated"},
        target=lambda w: {"room_id": w.room["id"]},
    ),
    Scenario(
        "DELETE",
        WP + "/rooms/{room_id}",
        "room.delete",
        lambda w: f"{w.w}/rooms/{w.room['id']}",
        caller="moderator",
        status=204,
        target=lambda w: {"room_id": w.room["id"]},
    ),
    Scenario(
        "POST",
        WP + "/participants",
        "participant.create",
        lambda w: f"{w.w}/participants",
        status=201,
        json={"display_name": "Newcomer", "country": "DE"},
    ),
    Scenario(
        "POST",
        WP + "/participants/import",
        "participant.import",
        lambda w: f"{w.w}/participants/import",
        status=201,
        csv="display_name,country,organisation,email,role\nNew One,DE,,,\nNew Two,IT,,,\n",
    ),
    Scenario(
        "PATCH",
        PP,
        "participant.update",
        lambda w: f"{w.w}/participants/{w.target['id']}",
        json={"organisation": "EPPO"},
        target=_target,
    ),
    Scenario(
        "PATCH",
        WP,
        "workshop.update",
        lambda w: w.w,
        json={"languages": ["en", "ru"]},
        target=lambda w: {"workshop_id": w.workshop["id"]},
    ),
    Scenario(
        "PATCH",
        PP,
        "participant.update",
        lambda w: f"{w.w}/participants/{w.target['id']}",
        json={"interpreter": {"languages": ["en", "ru"]}},
        setup=(with_languages,),
        target=_target,
    ),
    Scenario(
        "DELETE", PP, "participant.delete", lambda w: f"{w.w}/participants/{w.target['id']}", status=204, target=_target
    ),
    Scenario(
        "POST",
        PP + "/token",
        "participant.token_mint",
        lambda w: f"{w.w}/participants/{w.target['id']}/token",
        target=_target,
    ),
    Scenario(
        "POST",
        PP + "/revoke",
        "participant.revoke_tokens",
        lambda w: f"{w.w}/participants/{w.target['id']}/revoke",
        target=_target,
    ),
    Scenario(
        "POST",
        PP + "/mute",
        "participant.mute",
        lambda w: f"{w.w}/participants/{w.target['id']}/mute",
        caller="moderator",
        json={"kind": "video"},
        target=_target,
    ),
    Scenario(
        "POST",
        PP + "/remove",
        "participant.remove",
        lambda w: f"{w.w}/participants/{w.target['id']}/remove",
        caller="moderator",
        target=_target,
    ),
    Scenario(
        "POST",
        PP + "/floor",
        "participant.floor_grant",
        lambda w: f"{w.w}/participants/{w.target['id']}/floor",
        caller="moderator",
        target=_target,
    ),
    Scenario(
        "DELETE",
        PP + "/floor",
        "participant.floor_revoke",
        lambda w: f"{w.w}/participants/{w.target['id']}/floor",
        caller="moderator",
        target=_target,
    ),
    Scenario(
        "POST",
        WP + "/breakouts",
        "breakouts.create",
        lambda w: f"{w.w}/breakouts",
        caller="moderator",
        status=201,
        json={"name": "Day two", "rooms": 3, "strategy": "country_mixed"},
    ),
    Scenario("PATCH", BP, "breakouts.update", lambda w: w.plan_path, json={"strategy": "random"}, target=_plan),
    Scenario("DELETE", BP, "breakouts.delete", lambda w: w.plan_path, status=204, target=_plan),
    Scenario(
        "PUT",
        BP + "/assignments",
        "breakouts.assign",
        lambda w: f"{w.plan_path}/assignments",
        json={"assignments": {}},
        target=_plan,
    ),
    Scenario(
        "POST", BP + "/copy", "breakouts.copy", lambda w: f"{w.plan_path}/copy", status=201, json={"name": "Again"}
    ),
    Scenario("POST", BP + "/open", "breakouts.open", lambda w: f"{w.plan_path}/open", json={}, target=_plan),
    Scenario(
        "POST",
        BP + "/extend",
        "breakouts.extend",
        lambda w: f"{w.plan_path}/extend",
        json={"seconds": 60},
        setup=(open_plan,),
        target=_plan,
    ),
    Scenario(
        "POST",
        BP + "/close",
        "breakouts.close",
        lambda w: f"{w.plan_path}/close",
        json={"countdown_s": 30},
        setup=(open_plan,),
        target=_plan,
    ),
    Scenario(
        "POST",
        BP + "/broadcast",
        "breakouts.broadcast",
        lambda w: f"{w.plan_path}/broadcast",
        json={"text": "Five minutes left"},
        target=_plan,
    ),
    Scenario(
        "POST",
        BP + "/move",
        "breakouts.move",
        lambda w: f"{w.plan_path}/move",
        json=None,  # filled in by `body_of`: it needs the plan's room
        target=_plan,
    ),
    Scenario(
        "POST",
        "/api/v1/rooms/{room_id}/recordings",
        "recording.start",
        lambda w: f"/api/v1/rooms/{w.workshop['plenary_room_id']}/recordings",
        caller="moderator",
        status=201,
    ),
    Scenario(
        "POST",
        "/api/v1/recordings/{recording_id}/stop",
        "recording.stop",
        lambda w: f"/api/v1/recordings/{w.recording['id']}/stop",
        setup=(live_recording,),
        target=lambda w: {"recording_id": w.recording["id"], "room_id": w.workshop["plenary_room_id"]},
    ),
    Scenario(
        "DELETE",
        "/api/v1/recordings/{recording_id}",
        "recording.delete",
        lambda w: f"/api/v1/recordings/{w.recording['id']}",
        status=204,
        setup=(ready_recording,),
        target=lambda w: {"recording_id": w.recording["id"], "room_id": w.workshop["plenary_room_id"]},
    ),
    Scenario(
        "POST",
        "/api/v1/recordings/{recording_id}/grants",
        "recording.grant",
        lambda w: f"/api/v1/recordings/{w.recording['id']}/grants",
        status=204,
        json=None,  # filled in by `body_of`
        setup=(ready_recording,),
        target=lambda w: {"recording_id": w.recording["id"], "participant_id": w.target["id"]},
    ),
    Scenario(
        "DELETE",
        "/api/v1/recordings/{recording_id}/grants/{participant_id}",
        "recording.revoke",
        lambda w: f"/api/v1/recordings/{w.recording['id']}/grants/{w.target['id']}",
        status=204,
        setup=(granted_recording,),
        target=lambda w: {"recording_id": w.recording["id"], "participant_id": w.target["id"]},
    ),
    Scenario(
        "POST",
        "/api/v1/recordings/{recording_id}/composition",
        "recording.compose",
        lambda w: f"/api/v1/recordings/{w.recording['id']}/composition",
        caller="moderator",
        status=202,
        setup=(ready_recording,),
        target=lambda w: {"recording_id": w.recording["id"], "room_id": w.workshop["plenary_room_id"]},
    ),
    Scenario(
        "POST",
        WP + "/certificates",
        "certificates.issue",
        lambda w: f"{w.w}/certificates",
        status=201,
        json={"min_share": 0.5},
        target=lambda w: {"workshop_id": w.workshop["id"]},
    ),
    Scenario(
        "POST",
        PP + "/unban",
        "participant.unban",
        lambda w: f"{w.w}/participants/{w.target['id']}/unban",
        setup=(banned,),
        target=_target,
    ),
    Scenario(
        "POST",
        PP + "/ask-unmute",
        "participant.ask_unmute",
        lambda w: f"{w.w}/participants/{w.target['id']}/ask-unmute",
        caller="moderator",
        json={"kind": "audio"},
        target=_target,
    ),
    Scenario(
        "POST",
        PP + "/give-floor",
        "participant.give_floor",
        lambda w: f"{w.w}/participants/{w.target['id']}/give-floor",
        caller="moderator",
        target=_target,
    ),
    Scenario(
        "POST",
        WP + "/rooms/{room_id}/mute-all",
        "room.mute_all",
        lambda w: f"{w.w}/rooms/{w.room['id']}/mute-all",
        caller="moderator",
        json={"kind": "audio"},
        target=lambda w: {"room_id": w.room["id"]},
    ),
    Scenario(
        "POST",
        WP + "/rooms/{room_id}/lower-hands",
        "room.lower_hands",
        lambda w: f"{w.w}/rooms/{w.room['id']}/lower-hands",
        caller="moderator",
        target=lambda w: {"room_id": w.room["id"]},
    ),
    Scenario(
        "POST",
        WP + "/lobby/admit",
        "lobby.admit",
        lambda w: f"{w.w}/lobby/admit",
        caller="moderator",
        json={"all": True},
        setup=(knocking,),
        target=lambda w: {"participant_ids": [w.target["id"]]},
    ),
    Scenario(
        "POST",
        WP + "/lobby/{knock_id}/deny",
        "lobby.deny",
        lambda w: f"{w.w}/lobby/{w.knock['id']}/deny",
        caller="moderator",
        json={"message": "Not this time"},
        setup=(knocking,),
        target=lambda w: {"knock_id": w.knock["id"], "participant_id": w.target["id"]},
    ),
    Scenario(
        "POST",
        WP + "/invitations",
        "invitation.send",
        lambda w: f"{w.w}/invitations",
        status=202,
        json={"all": True},
        setup=(with_email,),
        target=lambda w: {"participant_ids": [w.target["id"]]},
    ),
    Scenario(
        "POST",
        WP + "/invitations/{participant_id}/resend",
        "invitation.resend",
        lambda w: f"{w.w}/invitations/{w.target['id']}/resend",
        status=202,
        setup=(with_email,),
        target=lambda w: {"participant_ids": [w.target["id"]]},
    ),
    Scenario(
        "PUT",
        WP + "/invitations/settings",
        "invitation.settings",
        lambda w: f"{w.w}/invitations/settings",
        json={"reminder_minutes_before": 30},
        target=lambda w: {"workshop_id": w.workshop["id"]},
    ),
    # Every join link of the workshop at once: the export is recorded.
    Scenario(
        "GET",
        WP + "/roster.csv",
        "participant.roster_export",
        lambda w: f"{w.w}/roster.csv",
        target=lambda w: {"workshop_id": w.workshop["id"]},
    ),
    Scenario("POST", WP + "/agenda", "agenda.create", lambda w: f"{w.w}/agenda", status=201, json=AGENDA_SESSION),
    Scenario(
        "PATCH",
        WP + "/agenda/{session_id}",
        "agenda.update",
        lambda w: f"{w.w}/agenda/{w.session['id']}",
        json={"presenters": "Dr. Rao"},
        setup=(agenda_session,),
        target=_session,
    ),
    Scenario(
        "DELETE",
        WP + "/agenda/{session_id}",
        "agenda.delete",
        lambda w: f"{w.w}/agenda/{w.session['id']}",
        status=204,
        setup=(agenda_session,),
        target=_session,
    ),
    Scenario(
        "POST",
        WP + "/agenda/{session_id}/hold",
        "agenda.hold",
        lambda w: f"{w.w}/agenda/{w.session['id']}/hold",
        caller="moderator",
        json={"held": True},
        setup=(agenda_session,),
        target=_session,
    ),
    # Your own settings, with your own join token (the organiser's here).
    Scenario(
        "PATCH",
        "/api/v1/me",
        "participant.update",
        lambda w: "/api/v1/me",
        json={"timezone": "Asia/Kolkata"},
        target=lambda w: {"participant_id": w.organiser["id"]},
    ),
    # A GET that changes state: every download is logged, and so recorded.
    Scenario(
        "GET",
        "/api/v1/recordings/{recording_id}/tracks/{track_id}/file",
        "recording.download",
        lambda w: f"/api/v1/recordings/{w.recording['id']}/tracks/{w.track_id}/file",
        setup=(ready_recording,),
        target=lambda w: {"recording_id": w.recording["id"], "track_id": w.track_id, "participant_id": w.target["id"]},
    ),
    Scenario(
        "GET",
        "/api/v1/recordings/{recording_id}/composed.webm",
        "recording.download",
        lambda w: f"/api/v1/recordings/{w.recording['id']}/composed.webm",
        setup=(composed_recording,),
        target=lambda w: {"recording_id": w.recording["id"], "format": "webm"},
    ),
]

# Non-GET routes that leave no entry, and why.
NOT_AUDITED = {
    ("POST", "/api/v1/audit/anchors"): "signs the heads of the chains: the anchor is itself the record, kept apart",
}


def body_of(scenario: Scenario, world: World) -> Any:
    if scenario.action == "breakouts.move":
        room_b = world.plan["rooms"][1]["id"]
        return {"participant_id": world.target["id"], "room_id": room_b}
    if scenario.action == "recording.grant":
        return {"participant_id": world.target["id"]}
    return scenario.json


def headers_of(scenario: Scenario, world: World) -> dict[str, str]:
    if scenario.caller == "admin":
        return dict(ADMIN)
    person = world.organiser if scenario.caller == "organiser" else world.moderator
    return bearer(person["join_token"])


def actor_of(scenario: Scenario, world: World) -> dict[str, Any]:
    if scenario.caller == "admin":
        return {"id": None, "role": "admin", "name": "Admin"}
    person = world.organiser if scenario.caller == "organiser" else world.moderator
    return {"id": person["id"], "role": person["role"], "name": person["display_name"]}


async def call(client: Client, scenario: Scenario, world: World) -> Any:
    headers = headers_of(scenario, world)
    kwargs: dict[str, Any] = {}
    body = body_of(scenario, world)
    if body is not None:
        kwargs["json"] = body
    if scenario.csv is not None:
        kwargs["data"] = scenario.csv.encode()
        headers["Content-Type"] = "text/csv"
    return await client.request(scenario.method, scenario.path(world), headers=headers, **kwargs)


async def entries(client: Client) -> list[asyncpg.Record]:
    rows = await client.app[keys.POOL].fetch(
        "SELECT id, workshop_id, actor_id, actor_role, actor_name, action, target::text AS target FROM audit_entries "
        "ORDER BY id"
    )
    return list(rows)


KEEP_OUT = {"audit_entries", "audit_anchors", "schema_migrations", "server_heartbeat"}


async def state_of(client: Client) -> dict[str, str]:
    """Every row of every table but the audit log's own, as a digest per table: a change anywhere shows."""
    pool = client.app[keys.POOL]
    tables = [r["tablename"] for r in await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    out = {}
    for table in sorted(set(tables) - KEEP_OUT):
        out[table] = await pool.fetchval(
            f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM \"{table}\" t"
        )
    return out


def test_every_state_changing_route_has_a_scenario() -> None:
    """A route that changes state without a scenario here (or a reason in NOT_AUDITED) fails this test."""
    registered = {(spec.method, spec.path) for spec in load_routes().routes if spec.method != "GET"}
    covered = {(s.method, s.template) for s in SCENARIOS if s.method != "GET"}
    assert registered - set(NOT_AUDITED) == covered
    assert not covered & set(NOT_AUDITED)
    gets = {(spec.method, spec.path) for spec in load_routes().routes if spec.method == "GET"}
    assert {(s.method, s.template) for s in SCENARIOS if s.method == "GET"} <= gets


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_state_changing_route_leaves_exactly_one_entry_with_its_actor(client: Client, scenario: Scenario) -> None:
    world = await build_world(client)
    for step in scenario.setup:
        await step(client, world)
    before = await entries(client)
    resp = await call(client, scenario, world)
    assert resp.status == scenario.status, await resp.text()
    new = (await entries(client))[len(before) :]
    assert [e["action"] for e in new] == [scenario.action], new
    (entry,) = new
    actor = actor_of(scenario, world)
    assert (str(entry["actor_id"]) if entry["actor_id"] else None, entry["actor_role"], entry["actor_name"]) == (
        actor["id"],
        actor["role"],
        actor["name"],
    )
    if scenario.action != "workshop.create":
        assert str(entry["workshop_id"]) == world.workshop["id"]
    import json

    assert json.loads(entry["target"]).items() >= scenario.target(world).items()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_a_fault_between_the_change_and_its_entry_leaves_neither(client: Client, scenario: Scenario) -> None:
    world = await build_world(client)
    for step in scenario.setup:
        await step(client, world)
    before_entries = await entries(client)
    before_state = await state_of(client)
    injected: list[Change] = []

    def fail(change: Change) -> None:
        injected.append(change)
        raise RuntimeError("fault injected between the change and its audit entry")

    client.app[keys.AUDIT].before_write = fail
    try:
        resp = await call(client, scenario, world)
    finally:
        client.app[keys.AUDIT].before_write = None
    assert resp.status == 500, await resp.text()
    assert [c.action for c in injected] == [scenario.action]
    assert await entries(client) == before_entries
    assert await state_of(client) == before_state
