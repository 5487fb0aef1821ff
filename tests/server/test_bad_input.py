"""Bad input on every writing route: the error shape {"error": {"code", "message", "details"}}, the right code,
field paths for validation errors, nothing changed, and nothing of Python, SQL or pydantic in the answer."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.helpers import ADMIN, WORKSHOP, add_participant, create_workshop

Client = TestClient[Any, Any]
TOKEN_FIELDS = ("join_token", "join_url", "token_expires_at")
LEAKS = ("Traceback", 'File "', "pydantic", "asyncpg", "SELECT ", "INSERT ", "UPDATE ", "DELETE FROM", "psycopg")
FIVE_MB = 5 * 1024 * 1024
CSV_HEADER = "display_name,country,organisation,email,role"


@dataclass
class World:
    workshop: dict[str, Any]
    person: dict[str, Any]
    room: dict[str, Any]

    @property
    def base(self) -> str:
        return f"/api/v1/workshops/{self.workshop['id']}"


async def build_world(client: Client) -> World:
    workshop = await create_workshop(client)
    person = await add_participant(client, workshop["id"], email="ana@example.org")
    await add_participant(client, workshop["id"], display_name="Bo Berg", country="SE", email="bo@example.org")
    resp = await client.post(f"/api/v1/workshops/{workshop['id']}/rooms", json={"name": "Breakout"}, headers=ADMIN)
    assert resp.status == 201
    return World(workshop, person, await resp.json())


async def snapshot(client: Client, world: World) -> dict[str, Any]:
    """What the admin lists: every workshop, the roster (without freshly minted links) and the rooms."""
    out: dict[str, Any] = {}
    for name, path in (
        ("workshops", "/api/v1/workshops?limit=500"),
        ("roster", f"{world.base}/participants?limit=500"),
        ("rooms", f"{world.base}/rooms?limit=500"),
    ):
        resp = await client.get(path, headers=ADMIN)
        assert resp.status == 200, await resp.text()
        out[name] = await resp.json()
    for person in out["roster"]["items"]:
        for key in TOKEN_FIELDS:
            person.pop(key)
    return out


def assert_no_leak(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text, f"{leak!r} leaked into {text}"


async def error_of(resp: Any, status: int, code: str) -> dict[str, Any]:
    text = await resp.text()
    assert_no_leak(text)
    assert resp.status == status, text
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def fields_of(error: dict[str, Any]) -> list[str]:
    details = error["details"]
    assert isinstance(details, list), error
    assert all(isinstance(d["message"], str) and d["message"] for d in details), error
    return sorted(d["field"] for d in details)


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: Callable[[World], str]
    request: Callable[[World], dict[str, Any]]
    status: int
    code: str
    fields: tuple[str, ...] | None = None


def workshops(w: World) -> str:
    return "/api/v1/workshops"


def workshop(w: World) -> str:
    return w.base


def participants(w: World) -> str:
    return f"{w.base}/participants"


def participant(w: World) -> str:
    return f"{w.base}/participants/{w.person['id']}"


def rooms(w: World) -> str:
    return f"{w.base}/rooms"


def room(w: World) -> str:
    return f"{w.base}/rooms/{w.room['id']}"


def import_url(w: World) -> str:
    return f"{w.base}/participants/import"


def body(value: Any) -> Callable[[World], dict[str, Any]]:
    return lambda w: {"json": value}


def raw(data: bytes, content_type: str = "application/json") -> Callable[[World], dict[str, Any]]:
    return lambda w: {"data": data, "headers": {"Content-Type": content_type}}


def csv(*lines: str) -> Callable[[World], dict[str, Any]]:
    return raw("\n".join(lines).encode(), "text/csv")


def new_workshop(**changes: Any) -> Callable[[World], dict[str, Any]]:
    return body({**WORKSHOP, **changes})


def new_person(**changes: Any) -> Callable[[World], dict[str, Any]]:
    return body({"display_name": "Cy", "country": "FR", **changes})


def invalid(name: str, method: str, path: Callable[[World], str], request: Any, *fields: str) -> Case:
    """A 400 invalid_argument naming these fields; with none, a whole-body error (details may be null)."""
    return Case(name, method, path, request, 400, "invalid_argument", fields or None)


CASES = [
    # Unknown codes and zones.
    invalid("participant_unknown_country", "POST", participants, new_person(country="XX"), "country"),
    invalid("participant_three_letter_country", "POST", participants, new_person(country="PRT"), "country"),
    invalid("participant_patch_unknown_country", "PATCH", participant, body({"country": "ZZ"}), "country"),
    invalid("workshop_unknown_time_zone", "POST", workshops, new_workshop(timezone="Mars/Olympus_Mons"), "timezone"),
    invalid("workshop_patch_unknown_time_zone", "PATCH", workshop, body({"timezone": "CET+1"}), "timezone"),
    # Times.
    invalid(
        "workshop_ends_before_it_starts",
        "POST",
        workshops,
        new_workshop(starts_at="2026-12-02T08:00:00+00:00", ends_at="2026-12-01T08:00:00+00:00"),
        "ends_at",
    ),
    invalid(
        "workshop_ends_when_it_starts",
        "POST",
        workshops,
        new_workshop(starts_at="2026-12-02T08:00:00+00:00", ends_at="2026-12-02T09:00:00+01:00"),
        "ends_at",
    ),
    invalid(
        "workshop_patch_ends_at_before_current_start",
        "PATCH",
        workshop,
        body({"ends_at": "2026-11-30T08:00:00+00:00"}),
        "ends_at",
    ),
    invalid(
        "workshop_patch_starts_at_after_current_end",
        "PATCH",
        workshop,
        body({"starts_at": "2026-12-05T08:00:00+00:00"}),
        "starts_at",
    ),
    invalid(
        "workshop_patch_both_times_reversed",
        "PATCH",
        workshop,
        body({"starts_at": "2027-01-02T08:00:00+00:00", "ends_at": "2027-01-01T08:00:00+00:00"}),
        "ends_at",
    ),
    invalid("workshop_naive_start", "POST", workshops, new_workshop(starts_at="2026-12-01T08:00:00"), "starts_at"),
    invalid("workshop_start_not_a_date", "POST", workshops, new_workshop(starts_at="tomorrow"), "starts_at"),
    # Wrong JSON types: nothing is coerced, not even "12" to 12 or true to 1.
    invalid("workshop_title_number", "POST", workshops, new_workshop(title=5), "title"),
    invalid("workshop_start_unix_time", "POST", workshops, new_workshop(starts_at=1_796_108_400), "starts_at"),
    invalid("workshop_status_number", "POST", workshops, new_workshop(status=1), "status"),
    invalid("workshop_consent_bool", "POST", workshops, new_workshop(recording_consent=True), "recording_consent"),
    invalid("workshop_capacity_string", "POST", workshops, new_workshop(plenary_capacity="300"), "plenary_capacity"),
    invalid("workshop_capacity_bool", "POST", workshops, new_workshop(plenary_capacity=True), "plenary_capacity"),
    invalid("workshop_description_list", "POST", workshops, new_workshop(description=["a"]), "description"),
    invalid(
        "workshop_several_wrong_fields",
        "POST",
        workshops,
        new_workshop(title=None, status="paused", plenary_capacity=-1),
        "plenary_capacity",
        "status",
        "title",
    ),
    invalid("workshop_missing_fields", "POST", workshops, body({"title": "Only"}), "ends_at", "starts_at", "timezone"),
    invalid("workshop_patch_title_number", "PATCH", workshop, body({"title": 5}), "title"),
    invalid("room_capacity_string", "POST", rooms, body({"name": "R", "capacity": "12"}), "capacity"),
    invalid("room_capacity_fraction", "POST", rooms, body({"name": "R", "capacity": 12.5}), "capacity"),
    invalid("room_capacity_bool", "POST", rooms, body({"name": "R", "capacity": True}), "capacity"),
    invalid("room_name_list", "POST", rooms, body({"name": ["R"]}), "name"),
    invalid("room_patch_media_number", "PATCH", room, body({"media": 1}), "media"),
    invalid("participant_name_number", "POST", participants, new_person(display_name=5), "display_name"),
    invalid("participant_country_list", "POST", participants, new_person(country=["PT"]), "country"),
    invalid("participant_role_bool", "POST", participants, new_person(role=True), "role"),
    invalid("participant_room_number", "POST", participants, new_person(room_id=5), "room_id"),
    invalid("participant_room_not_uuid", "POST", participants, new_person(room_id="room-1"), "room_id"),
    invalid("participant_email_number", "POST", participants, new_person(email=5), "email"),
    invalid("participant_email_malformed", "POST", participants, new_person(email="ana.example.org"), "email"),
    invalid("participant_name_control_chars", "POST", participants, new_person(display_name="A\nB"), "display_name"),
    invalid("participant_patch_name_object", "PATCH", participant, body({"display_name": {}}), "display_name"),
    # Unknown fields.
    invalid("workshop_unknown_field", "POST", workshops, new_workshop(owner="me"), "owner"),
    invalid("workshop_patch_unknown_field", "PATCH", workshop, body({"plenary_room_id": None}), "plenary_room_id"),
    invalid("room_unknown_field", "POST", rooms, body({"name": "R", "kind": "plenary"}), "kind"),
    invalid("room_patch_unknown_field", "PATCH", room, body({"workshop_id": None}), "workshop_id"),
    invalid("participant_unknown_field", "POST", participants, new_person(token_generation=0), "token_generation"),
    invalid("participant_patch_unknown_field", "PATCH", participant, body({"id": None}), "id"),
    # Not JSON, or not a JSON object.
    invalid("workshop_body_not_json", "POST", workshops, raw(b"{title: 'x'")),
    invalid("workshop_body_form_encoded", "POST", workshops, raw(b"title=x", "application/x-www-form-urlencoded")),
    invalid("workshop_body_empty", "POST", workshops, raw(b"")),
    invalid("workshop_body_array", "POST", workshops, body([WORKSHOP])),
    invalid("workshop_body_string", "POST", workshops, body("title")),
    invalid("workshop_body_null", "POST", workshops, raw(b"null")),
    invalid("workshop_patch_body_array", "PATCH", workshop, body([{"title": "x"}])),
    invalid("room_body_array", "POST", rooms, body([{"name": "R"}])),
    invalid("participant_body_array", "POST", participants, body([{"display_name": "Cy", "country": "FR"}])),
    invalid("participant_patch_body_not_json", "PATCH", participant, raw(b"\xff\xfe")),
    invalid("import_body_not_json", "POST", import_url, raw(b"[{")),
    # Too large: 5 MB against a 1 MB limit.
    Case(
        "workshop_body_5_mb",
        "POST",
        workshops,
        lambda w: {"data": io.BytesIO(b" " * FIVE_MB), "headers": {"Content-Type": "application/json"}},
        413,
        "payload_too_large",
    ),
    Case(
        "import_csv_5_mb",
        "POST",
        import_url,
        lambda w: {"data": io.BytesIO(b"x" * FIVE_MB), "headers": {"Content-Type": "text/csv"}},
        413,
        "payload_too_large",
    ),
    # Duplicate e-mails (case does not make an address different).
    Case(
        "participant_duplicate_email",
        "POST",
        participants,
        new_person(email="ANA@example.org"),
        409,
        "conflict",
        ("email",),
    ),
    Case(
        "participant_patch_duplicate_email",
        "PATCH",
        participant,
        body({"email": "Bo@Example.org"}),
        409,
        "conflict",
        ("email",),
    ),
    # Bad paths and queries.
    Case("workshop_id_not_a_uuid", "PATCH", lambda w: "/api/v1/workshops/123", body({"title": "x"}), 404, "not_found"),
    Case("room_id_not_a_uuid", "DELETE", lambda w: f"{w.base}/rooms/plenary", body(None), 404, "not_found"),
    invalid("list_limit_zero", "GET", lambda w: f"{w.base}/participants?limit=0", body(None), "limit"),
    invalid("list_limit_too_large", "GET", lambda w: f"{w.base}/rooms?limit=501", body(None), "limit"),
    invalid("list_cursor_garbage", "GET", lambda w: f"{w.base}/rooms?cursor=%%%", body(None), "cursor"),
    Case("unknown_route", "GET", lambda w: "/api/v1/meetings", body(None), 404, "not_found"),
    Case("unknown_route_under_workshop", "GET", lambda w: f"{w.base}/polls", body(None), 404, "not_found"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_bad_request_is_refused_with_its_error_and_changes_nothing(client: Client, case: Case) -> None:
    world = await build_world(client)
    before = await snapshot(client, world)
    kwargs = case.request(world)
    headers = {**ADMIN, **kwargs.pop("headers", {})}
    if kwargs.get("json", ...) is None:
        kwargs.pop("json")
    resp = await client.request(case.method, case.path(world), headers=headers, **kwargs)
    error = await error_of(resp, case.status, case.code)
    if case.fields is not None:
        assert fields_of(error) == sorted(case.fields), error
    elif case.status == 400 and error["details"] is not None:
        assert isinstance(error["details"], list)
    assert await snapshot(client, world) == before


async def test_csv_with_broken_rows_is_refused_line_by_line_and_imports_nothing(client: Client) -> None:
    world = await build_world(client)
    before = await snapshot(client, world)
    text = "\n".join(
        [
            CSV_HEADER,  # line 1
            "Dee,DE,,dee@example.org,",  # line 2: fine
            "Eve,XX,,,",  # line 3: unknown country
            "Fay,FR,Le Monde",  # line 4: wrong column count
            ",IT,,,",  # line 5: display_name missing
            "Gus,NL,,,participant",  # line 6: fine
        ]
    )
    resp = await client.post(import_url(world), data=text.encode(), headers={**ADMIN, "Content-Type": "text/csv"})
    error = await error_of(resp, 400, "invalid_argument")
    assert [(d["line"], d["field"]) for d in error["details"]] == [
        (3, "country"),
        (4, "(row)"),
        (5, "display_name"),
    ]
    assert "column" in error["details"][1]["message"]
    assert await snapshot(client, world) == before


async def test_csv_with_duplicate_emails_names_every_clash_and_imports_nothing(client: Client) -> None:
    world = await build_world(client)
    before = await snapshot(client, world)
    text = "\n".join(
        [
            CSV_HEADER,
            "Dee,DE,,dee@example.org,",
            "Ana twin,PT,,Ana@Example.org,",  # already on the roster
            "Dee twin,DE,,DEE@example.org,",  # same as line 2
        ]
    )
    resp = await client.post(import_url(world), data=text.encode(), headers={**ADMIN, "Content-Type": "text/csv"})
    error = await error_of(resp, 400, "invalid_argument")
    assert [(d["line"], d["field"]) for d in error["details"]] == [(3, "email"), (4, "email")]
    assert await snapshot(client, world) == before


async def test_wrong_method_is_405_naming_the_allowed_methods(client: Client) -> None:
    world = await build_world(client)
    before = await snapshot(client, world)
    resp = await client.put(room(world), json={"name": "x"}, headers=ADMIN)
    await error_of(resp, 405, "method_not_allowed")
    assert set(resp.headers["Allow"].split(",")) == {"GET", "PATCH", "DELETE"}
    assert await snapshot(client, world) == before


async def test_invalid_answers_never_echo_secrets_or_internals(client: Client) -> None:
    """A value the caller sent may appear in a message, but never a traceback, SQL or a library's name."""
    world = await build_world(client)
    for payload in ({"display_name": "'; DROP TABLE participants; --", "country": "XX"}, {"room_id": "' OR 1=1"}):
        resp = await client.post(participants(world), json=payload, headers=ADMIN)
        await error_of(resp, 400, "invalid_argument")
    resp = await client.get(f"{world.base}/participants?cursor=WyJub3QgYSBkYXRlIiwgIngiXQ", headers=ADMIN)
    await error_of(resp, 400, "invalid_argument")
