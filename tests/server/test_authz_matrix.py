"""Who may call which route: every route against every kind of caller.

Denials: 401 unauthenticated for no, garbage, expired and revoked tokens; 404 not_found for a token of another
workshop (that workshop's objects must look absent); 403 permission_denied for a member without the right.
A denied call changes nothing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server import keys
from server.auth import TokenSigner
from signaling.audit import ADMIN as ADMIN_ACTOR
from signaling.audit import Change
from tests.conftest import SECRET_KEY
from tests.helpers import ADMIN, WORKSHOP, add_participant, bearer, create_workshop

Client = TestClient[Any, Any]
TOKEN_FIELDS = ("join_token", "join_url", "token_expires_at")

MEMBER_ROLES = ("organiser", "moderator", "participant", "observer")
CALLERS = ("admin", *MEMBER_ROLES, "other_workshop", "revoked", "expired", "garbage", "none")
UNAUTHENTICATED = frozenset({"revoked", "expired", "garbage", "none"})
EVERYONE = frozenset(CALLERS)
MEMBERS = frozenset({"admin", *MEMBER_ROLES})
MODERATORS = frozenset({"admin", "organiser", "moderator"})
MANAGERS = frozenset({"admin", "organiser"})


@dataclass
class World:
    """Workshop A with one member of each role, a victim participant and a breakout; workshop B with one member."""

    workshop: dict[str, Any]
    other_workshop: dict[str, Any]
    members: dict[str, dict[str, Any]]
    target: dict[str, Any]
    room: dict[str, Any]
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    recording: dict[str, Any] = field(default_factory=dict)
    session: dict[str, Any] = field(default_factory=dict)


async def build_world(client: Client) -> World:
    workshop = await create_workshop(client)
    other_workshop = await create_workshop(client, title="Another workshop")
    members = {
        role: await add_participant(client, workshop["id"], role=role, display_name=role.title())
        for role in MEMBER_ROLES
    }
    target = await add_participant(client, workshop["id"], display_name="Target", email="target@example.org")
    stranger = await add_participant(client, other_workshop["id"], role="organiser", display_name="Stranger")
    revoked = await add_participant(client, workshop["id"], role="organiser", display_name="Revoked")
    resp = await client.post(f"/api/v1/workshops/{workshop['id']}/participants/{revoked['id']}/revoke", headers=ADMIN)
    assert resp.status == 200
    resp = await client.post(f"/api/v1/workshops/{workshop['id']}/rooms", json={"name": "Breakout"}, headers=ADMIN)
    assert resp.status == 201
    room = await resp.json()
    participant = members["participant"]
    expired = TokenSigner(SECRET_KEY).mint(
        workshop_id=participant["workshop_id"],
        participant_id=participant["id"],
        role=participant["role"],
        generation=0,
        expires_at=datetime.now(UTC) - timedelta(hours=1),
    )
    headers = {
        "admin": ADMIN,
        **{role: bearer(person["join_token"]) for role, person in members.items()},
        "other_workshop": bearer(stranger["join_token"]),
        "revoked": bearer(revoked["join_token"]),
        "expired": bearer(expired),
        "garbage": bearer("garbage.not-a.jwt"),
        "none": {},
    }
    # A recording that failed at once (no recorder runs): enough for the routes that read its record.
    recordings = client.app[keys.RECORDING_STORE]
    row = await recordings.create(
        workshop_id=uuid.UUID(workshop["id"]),
        room_id=uuid.UUID(workshop["plenary_room_id"]),
        room_name="Plenary",
        consent_mode="explicit",
        started_by=None,
        started_by_role="admin",
        change=Change(uuid.UUID(workshop["id"]), ADMIN_ACTOR, "recording.start"),
    )
    await recordings.transition(row["id"], "starting", "failed", reason="matrix")
    resp = await client.post(f"/api/v1/workshops/{workshop['id']}/agenda", json=AGENDA_SESSION, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    session = await resp.json()
    return World(
        workshop, other_workshop, members, target, room, headers, recording={"id": str(row["id"])}, session=session
    )


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: Callable[[World], str]
    allowed: frozenset[str]
    status: int
    json: Any = None
    csv: str | None = None
    workshop_scoped: bool = True
    returns_participants: bool = False
    # A recording is invisible without the right to see it: members denied get 404, as another workshop does.
    hidden: bool = False


UNKNOWN_KNOCK = "00000000-0000-4000-8000-00000000c0de"
AGENDA_SESSION = {
    "title": "Opening plenary",
    "kind": "plenary",
    # Far ahead: the scheduler has nothing to fire while the matrix compares snapshots.
    "starts_at": "2099-12-01T08:00:00Z",
    "ends_at": "2099-12-01T09:00:00Z",
}


def ws(w: World) -> str:
    return f"/api/v1/workshops/{w.workshop['id']}"


ROUTES = [
    Route(
        "create_workshop",
        "POST",
        lambda w: "/api/v1/workshops",
        frozenset({"admin"}),
        201,
        json=WORKSHOP,
        workshop_scoped=False,
    ),
    Route(
        "list_workshops", "GET", lambda w: "/api/v1/workshops", MEMBERS | {"other_workshop"}, 200, workshop_scoped=False
    ),
    Route("get_workshop", "GET", ws, MEMBERS, 200),
    Route("patch_workshop", "PATCH", ws, MANAGERS, 200, json={"title": "Renamed"}),
    Route("delete_workshop", "DELETE", ws, frozenset({"admin"}), 204),
    Route(
        "create_participant",
        "POST",
        lambda w: f"{ws(w)}/participants",
        MANAGERS,
        201,
        json={"display_name": "Newcomer", "country": "DE"},
        returns_participants=True,
    ),
    Route("list_participants", "GET", lambda w: f"{ws(w)}/participants", MODERATORS, 200, returns_participants=True),
    Route(
        "import_participants",
        "POST",
        lambda w: f"{ws(w)}/participants/import",
        MANAGERS,
        201,
        csv="display_name,country,organisation,email,role\nNewcomer,DE,,,\n",
        returns_participants=True,
    ),
    Route(
        "get_participant",
        "GET",
        lambda w: f"{ws(w)}/participants/{w.target['id']}",
        MODERATORS,
        200,
        returns_participants=True,
    ),
    Route(
        "patch_participant",
        "PATCH",
        lambda w: f"{ws(w)}/participants/{w.target['id']}",
        MANAGERS,
        200,
        json={"organisation": "Changed"},
        returns_participants=True,
    ),
    Route("delete_participant", "DELETE", lambda w: f"{ws(w)}/participants/{w.target['id']}", MANAGERS, 204),
    Route("mint_token", "POST", lambda w: f"{ws(w)}/participants/{w.target['id']}/token", MANAGERS, 200),
    Route("revoke_tokens", "POST", lambda w: f"{ws(w)}/participants/{w.target['id']}/revoke", MANAGERS, 200),
    Route("grant_floor", "POST", lambda w: f"{ws(w)}/participants/{w.target['id']}/floor", MODERATORS, 200),
    Route("revoke_floor", "DELETE", lambda w: f"{ws(w)}/participants/{w.target['id']}/floor", MODERATORS, 200),
    Route("presence", "GET", lambda w: f"{ws(w)}/presence", MODERATORS, 200),
    Route(
        "unban",
        "POST",
        lambda w: f"{ws(w)}/participants/{w.target['id']}/unban",
        MANAGERS,
        200,
        returns_participants=False,
    ),
    Route(
        "ask_unmute",
        "POST",
        lambda w: f"{ws(w)}/participants/{w.target['id']}/ask-unmute",
        MODERATORS,
        200,
        json={"kind": "audio"},
    ),
    Route("give_floor", "POST", lambda w: f"{ws(w)}/participants/{w.target['id']}/give-floor", MODERATORS, 200),
    Route("get_lobby", "GET", lambda w: f"{ws(w)}/lobby", MODERATORS, 200),
    Route("lobby_admit", "POST", lambda w: f"{ws(w)}/lobby/admit", MODERATORS, 200, json={"all": True}),
    # No knock is pending in the world: an allowed caller is told so (404), the others are refused first.
    Route("lobby_deny", "POST", lambda w: f"{ws(w)}/lobby/{UNKNOWN_KNOCK}/deny", MODERATORS, 404, json={}),
    Route("list_bans", "GET", lambda w: f"{ws(w)}/bans", MODERATORS, 200),
    Route("list_rooms", "GET", lambda w: f"{ws(w)}/rooms", MEMBERS, 200),
    Route("mute_all", "POST", lambda w: f"{ws(w)}/rooms/{w.room['id']}/mute-all", MODERATORS, 200, json={}),
    Route("lower_hands", "POST", lambda w: f"{ws(w)}/rooms/{w.room['id']}/lower-hands", MODERATORS, 200),
    Route("create_room", "POST", lambda w: f"{ws(w)}/rooms", MODERATORS, 201, json={"name": "Another"}),
    Route("get_room", "GET", lambda w: f"{ws(w)}/rooms/{w.room['id']}", MEMBERS, 200),
    Route("patch_room", "PATCH", lambda w: f"{ws(w)}/rooms/{w.room['id']}", MODERATORS, 200, json={"name": "Renamed"}),
    Route("delete_room", "DELETE", lambda w: f"{ws(w)}/rooms/{w.room['id']}", MODERATORS, 204),
    Route("attendance", "GET", lambda w: f"{ws(w)}/attendance", MANAGERS, 200),
    Route("attendance_csv", "GET", lambda w: f"{ws(w)}/attendance.csv", MANAGERS, 200),
    Route("issue_certificates", "POST", lambda w: f"{ws(w)}/certificates", MANAGERS, 201, json={"min_share": 0.5}),
    Route("list_certificates", "GET", lambda w: f"{ws(w)}/certificates", MANAGERS, 200),
    # Nobody attended, so the target has no certificate: 404 for those who may ask, a denial for the others.
    Route("certificate_file", "GET", lambda w: f"{ws(w)}/certificates/{w.target['id']}/pdf", MANAGERS, 404),
    Route(
        "verify_certificate",
        "GET",
        lambda w: "/verify/AAAABBBBCCCCDDDDEEEE",
        EVERYONE,
        404,
        workshop_scoped=False,
    ),
    Route(
        "consent_evidence", "GET", lambda w: f"/api/v1/recordings/{w.recording['id']}/consent-evidence", MANAGERS, 200
    ),
    Route(
        "consent_evidence_pdf",
        "GET",
        lambda w: f"/api/v1/recordings/{w.recording['id']}/consent-evidence.pdf",
        MANAGERS,
        200,
    ),
    # A recording's read routes of the player page (docs/recordings.md): whoever may see the recording. This one
    # failed at once: no composed video, nothing to compose, no grant to take back.
    Route(
        "recording_chapters",
        "GET",
        lambda w: f"/api/v1/recordings/{w.recording['id']}/chapters",
        MODERATORS,
        200,
        hidden=True,
    ),
    Route(
        "recording_grants",
        "GET",
        lambda w: f"/api/v1/recordings/{w.recording['id']}/grants",
        MODERATORS,
        200,
        hidden=True,
    ),
    Route(
        "grant_recording",
        "POST",
        lambda w: f"/api/v1/recordings/{w.recording['id']}/grants",
        MODERATORS,
        204,
        json=lambda w: {"participant_id": w.target["id"]},
        hidden=True,
    ),
    Route(
        "revoke_recording_grant",
        "DELETE",
        lambda w: f"/api/v1/recordings/{w.recording['id']}/grants/{w.target['id']}",
        MODERATORS,
        404,
        hidden=True,
    ),
    Route(
        "requeue_composition",
        "POST",
        lambda w: f"/api/v1/recordings/{w.recording['id']}/composition",
        MODERATORS,
        409,
        hidden=True,
    ),
    Route(
        "composed_file",
        "GET",
        lambda w: f"/api/v1/recordings/{w.recording['id']}/composed.webm",
        MODERATORS,
        404,
        hidden=True,
    ),
    Route(
        "composed_channel_file",
        "GET",
        lambda w: f"/api/v1/recordings/{w.recording['id']}/languages/ru/composed.webm",
        MODERATORS,
        404,
        hidden=True,
    ),
    # A participant's own list (every member of any workshop; the admin token is nobody's).
    Route(
        "my_recordings",
        "GET",
        lambda w: "/api/v1/me/recordings",
        frozenset({*MEMBER_ROLES, "other_workshop"}),
        200,
        workshop_scoped=False,
    ),
    # The audit log: the admin and the organiser; not moderators, whose actions it records.
    Route("list_audit", "GET", lambda w: f"{ws(w)}/audit", MANAGERS, 200),
    Route("export_audit", "GET", lambda w: f"{ws(w)}/audit.jsonl", MANAGERS, 200),
    Route("verify_audit", "GET", lambda w: f"{ws(w)}/audit/verify", MANAGERS, 200),
    Route("workshop_anchor", "GET", lambda w: f"{ws(w)}/audit/anchor", MANAGERS, 200),
    Route("list_anchors", "GET", lambda w: "/api/v1/audit/anchors", frozenset({"admin"}), 200, workshop_scoped=False),
    Route("create_anchor", "POST", lambda w: "/api/v1/audit/anchors", frozenset({"admin"}), 201, workshop_scoped=False),
    # Invitations: the organiser's; a participant may fetch only their own calendar file (see test_invitations).
    Route("send_invitations", "POST", lambda w: f"{ws(w)}/invitations", MANAGERS, 202, json={"all": True}),
    Route("resend_invitation", "POST", lambda w: f"{ws(w)}/invitations/{w.target['id']}/resend", MANAGERS, 202),
    Route("list_invitations", "GET", lambda w: f"{ws(w)}/invitations", MANAGERS, 200),
    Route("get_invitation_settings", "GET", lambda w: f"{ws(w)}/invitations/settings", MANAGERS, 200),
    Route(
        "put_invitation_settings",
        "PUT",
        lambda w: f"{ws(w)}/invitations/settings",
        MANAGERS,
        200,
        json={"reminder_minutes_before": 45},
    ),
    Route("invitation_ics", "GET", lambda w: f"{ws(w)}/participants/{w.target['id']}/invitation.ics", MANAGERS, 200),
    Route("roster_csv", "GET", lambda w: f"{ws(w)}/roster.csv", MANAGERS, 200),
    # The agenda: everyone of the workshop reads it (the join page), the organiser writes it, moderators hold it.
    Route("list_agenda", "GET", lambda w: f"{ws(w)}/agenda", MEMBERS, 200),
    Route("create_session", "POST", lambda w: f"{ws(w)}/agenda", MANAGERS, 201, json=AGENDA_SESSION),
    Route("get_session", "GET", lambda w: f"{ws(w)}/agenda/{w.session['id']}", MEMBERS, 200),
    Route(
        "patch_session", "PATCH", lambda w: f"{ws(w)}/agenda/{w.session['id']}", MANAGERS, 200, json={"title": "New"}
    ),
    Route("delete_session", "DELETE", lambda w: f"{ws(w)}/agenda/{w.session['id']}", MANAGERS, 204),
    Route(
        "hold_session", "POST", lambda w: f"{ws(w)}/agenda/{w.session['id']}/hold", MODERATORS, 200, json={"held": True}
    ),
    # Your own settings: any participant's token (another workshop's too: it changes only its own record).
    Route(
        "patch_me",
        "PATCH",
        lambda w: "/api/v1/me",
        frozenset({*MEMBER_ROLES, "other_workshop"}),
        200,
        json={"timezone": "Asia/Seoul"},
        workshop_scoped=False,
    ),
    Route("openapi", "GET", lambda w: "/api/v1/openapi.json", EVERYONE, 200, workshop_scoped=False),
    Route("healthz", "GET", lambda w: "/healthz", EVERYONE, 200, workshop_scoped=False),
    Route("readyz", "GET", lambda w: "/readyz", EVERYONE, 200, workshop_scoped=False),
]


def expected_denial(route: Route, caller: str) -> tuple[int, str]:
    if caller in UNAUTHENTICATED:
        return 401, "unauthenticated"
    if caller == "other_workshop" and route.workshop_scoped:
        return 404, "not_found"
    if route.hidden and caller in MEMBER_ROLES:
        return 404, "not_found"
    return 403, "permission_denied"


async def snapshot(client: Client, world: World) -> dict[str, Any]:
    """Everything a call on workshop A could change, as the admin sees it (join links minted afresh are left out)."""
    out: dict[str, Any] = {}
    for name, path in (
        ("workshops", "/api/v1/workshops?limit=500"),
        ("workshop", ws(world)),
        ("roster", f"{ws(world)}/participants?limit=500"),
        ("rooms", f"{ws(world)}/rooms?limit=500"),
        ("agenda", f"{ws(world)}/agenda?limit=500"),
    ):
        resp = await client.get(path, headers=ADMIN)
        assert resp.status == 200, await resp.text()
        out[name] = await resp.json()
    for person in out["roster"]["items"]:
        for key in TOKEN_FIELDS:
            person.pop(key)
    # Revocation leaves the roster as it was: the target's token still working proves it did not happen.
    resp = await client.get(
        f"{ws(world)}/participants/{world.target['id']}", headers=bearer(world.target["join_token"])
    )
    out["target_token"] = resp.status
    return out


async def call(client: Client, world: World, route: Route, caller: str) -> Any:
    headers = dict(world.headers[caller])
    kwargs: dict[str, Any] = {}
    if route.json is not None:
        kwargs["json"] = route.json(world) if callable(route.json) else route.json
    if route.csv is not None:
        kwargs["data"] = route.csv.encode()
        headers["Content-Type"] = "text/csv"
    return await client.request(route.method, route.path(world), headers=headers, **kwargs)


def participant_objects(route: Route, body: Any) -> list[dict[str, Any]]:
    if route.name in ("list_participants", "import_participants"):
        items: list[dict[str, Any]] = body["items"]
        return items
    return [body]


async def check_cell(client: Client, world: World, route: Route, caller: str) -> str | None:
    """None when `caller` gets what the rules say on `route`, else what went wrong."""
    before = await snapshot(client, world)
    resp = await call(client, world, route, caller)
    text = (await resp.read()).decode(errors="replace")  # a PDF, for some routes
    if caller in route.allowed:
        if resp.status != route.status:
            return f"expected {route.status}, got {resp.status}: {text}"
        if route.returns_participants:
            for person in participant_objects(route, await resp.json()):
                shows_links = caller in MANAGERS
                if not all((person[key] is not None) == shows_links for key in TOKEN_FIELDS):
                    return f"join links {'missing' if shows_links else 'shown'}: {person}"
        return None
    status, code = expected_denial(route, caller)
    if resp.status != status:
        return f"expected {status} {code}, got {resp.status}: {text}"
    error = (await resp.json())["error"]
    if error["code"] != code:
        return f"expected code {code}: {error}"
    if status == 401 and resp.headers.get("WWW-Authenticate") != 'Bearer realm="roundtable"':
        return "401 without WWW-Authenticate"
    if await snapshot(client, world) != before:
        return "a denied call changed the workshop"
    return None


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
async def test_route_answers_every_caller_as_the_rules_say(client: Client, route: Route) -> None:
    """One row of the matrix: each caller in turn; a fresh world after any call that may have changed it."""
    failures: dict[str, str] = {}
    world = await build_world(client)
    for caller in CALLERS:
        problem = await check_cell(client, world, route, caller)
        if problem is not None:
            failures[caller] = problem
        if caller in route.allowed and route.method != "GET":
            world = await build_world(client)
    assert failures == {}


# The resources this matrix answers for (any method on them, the floor and live presence included); breakouts,
# moderation (mute, remove) and recordings' start, stop, listing and track downloads have their own tests.
COVERED = re.compile(
    r"^(/healthz|/readyz|/api/v1/openapi\.json|/api/v1/audit/anchors|/api/v1/workshops(/\{workshop_id\}("
    r"/participants(/import|/\{participant_id\}(/token|/revoke|/floor|/unban|/ask-unmute|/give-floor|/invitation\.ics)?)?"
    r"|/invitations(/settings|/\{participant_id\}/resend)?|/roster\.csv"
    r"|/rooms(/\{room_id\}(/mute-all|/lower-hands)?)?"
    r"|/lobby(/admit|/\{knock_id\}/deny)?"
    r"|/bans"
    r"|/presence"
    r"|/attendance(\.csv)?|/certificates(/\{participant_id\}/pdf)?"
    r"|/audit(\.jsonl|/verify|/anchor)?"
    r"|/agenda(/\{session_id\}(/hold)?)?"
    r")?)?|/api/v1/recordings/\{recording_id\}/(consent-evidence(\.pdf)?|chapters|grants(/\{participant_id\})?"
    r"|composition|composed\.webm|languages/\{language\}/composed\.webm)|/verify/\{code\}|/api/v1/me(/recordings)?)$"
)


def test_matrix_covers_every_registered_route_of_its_families(settings: Any) -> None:
    """A route added to these families without a row here fails this test instead of going unchecked."""
    from server.app import create_app

    templates = World(
        workshop={"id": "{workshop_id}"},
        other_workshop={},
        members={},
        target={"id": "{participant_id}"},
        room={"id": "{room_id}"},
        recording={"id": "{recording_id}"},
        session={"id": "{session_id}"},
    )
    in_matrix = {
        (
            r.method,
            r.path(templates)
            .replace("AAAABBBBCCCCDDDDEEEE", "{code}")
            .replace(UNKNOWN_KNOCK, "{knock_id}")
            .replace("/languages/ru/", "/languages/{language}/"),
        )
        for r in ROUTES
    }
    registered = {
        (route.method, route.resource.canonical)
        for route in create_app(settings).router.routes()
        if route.resource is not None and route.method != "HEAD" and COVERED.match(route.resource.canonical)
    }
    assert registered == in_matrix


@pytest.mark.parametrize("role", ["participant", "observer", "moderator", "organiser"])
async def test_member_reads_their_own_participant_record(client: Client, role: str) -> None:
    world = await build_world(client)
    me = world.members[role]
    resp = await client.get(f"{ws(world)}/participants/{me['id']}", headers=world.headers[role])
    assert resp.status == 200, await resp.text()
    record = await resp.json()
    assert record["id"] == me["id"]
    assert all((record[key] is not None) == (role == "organiser") for key in TOKEN_FIELDS)


@pytest.mark.parametrize("caller", [*MEMBER_ROLES, "other_workshop"])
async def test_workshop_list_of_a_member_holds_only_their_own_workshop(client: Client, caller: str) -> None:
    world = await build_world(client)
    resp = await client.get("/api/v1/workshops", headers=world.headers[caller])
    assert resp.status == 200
    expected = world.other_workshop if caller == "other_workshop" else world.workshop
    assert [w["id"] for w in (await resp.json())["items"]] == [expected["id"]]


async def test_admin_lists_every_workshop(client: Client) -> None:
    world = await build_world(client)
    resp = await client.get("/api/v1/workshops", headers=ADMIN)
    assert sorted(w["id"] for w in (await resp.json())["items"]) == sorted(
        [world.workshop["id"], world.other_workshop["id"]]
    )


async def test_another_workshops_objects_look_absent_to_a_member(client: Client) -> None:
    """The answer for a foreign workshop is the same as for one that does not exist."""
    world = await build_world(client)
    foreign = world.headers["other_workshop"]
    resp = await client.get(ws(world), headers=foreign)
    foreign_error = await resp.json()
    resp = await client.get("/api/v1/workshops/00000000-0000-4000-8000-000000000000", headers=foreign)
    assert resp.status == 404
    assert await resp.json() == foreign_error


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "Token abc", "bearer garbage"],
)
async def test_malformed_authorization_header_is_unauthenticated(client: Client, authorization: str) -> None:
    world = await build_world(client)
    resp = await client.get(ws(world), headers={"Authorization": authorization})
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthenticated"


async def test_token_signed_with_another_key_is_unauthenticated(client: Client) -> None:
    world = await build_world(client)
    organiser = world.members["organiser"]
    forged = TokenSigner("another-secret-key-0123456789abcdef0123").mint(
        workshop_id=organiser["workshop_id"],
        participant_id=organiser["id"],
        role="organiser",
        generation=0,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    resp = await client.get(ws(world), headers=bearer(forged))
    assert resp.status == 401


async def test_role_comes_from_the_roster_not_from_the_token(client: Client) -> None:
    """A token claiming more than the roster grants gets only what the roster grants."""
    world = await build_world(client)
    participant = world.members["participant"]
    claims_organiser = TokenSigner(SECRET_KEY).mint(
        workshop_id=participant["workshop_id"],
        participant_id=participant["id"],
        role="organiser",
        generation=0,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    resp = await client.get(f"{ws(world)}/participants", headers=bearer(claims_organiser))
    assert resp.status == 403
