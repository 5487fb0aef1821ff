"""Property-based: hostile values in every field of every operation of the served OpenAPI document (path, query,
body, the bearer header) never get a 5xx, never an answer that is not our error shape, never a traceback in the log.

Bounded (PER_OPERATION examples each) so that it runs in seconds; one app and one database for all examples."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import strategies as st

from tests.helpers import ADMIN, add_participant, create_workshop
from tests.hostile import (
    GOOD,
    HOSTILE_TEXT,
    dumps,
    examples,
    from_schema,
    hostile,
    hostile_cursor,
    one_hostile,
    tracebacks,
)
from tests.server.test_bad_input import LEAKS

Client = TestClient[Any, Any]
PER_OPERATION = 40  # x ~45 operations: seconds, not minutes
BAD_BEARERS = ["Bearer ", "Bearer ünïcødé", "Basic abc", "Bearer a b", "Bearer", "Bearer \u00e9\u00e9"]
# aiohttp itself answers a request line over 8190 bytes with a plain-text 400, before any of our code runs.
MAX_LINE = 8000
# Operations whose real ids would start real work (an aiortc recorder) or end the shared world for later examples:
# they get random ids only, which still runs their validation and lookups.
RANDOM_IDS_ONLY = {("POST", "/api/v1/rooms/{room_id}/recordings")}
# Query parameters some operations read although the document does not list them one by one.
EXTRA_QUERY = {
    "/api/v1/workshops/{workshop_id}/recordings": ("room_id", "state", "participant_id", "since", "until"),
    "/api/v1/recordings/{recording_id}/tracks/{track_id}/file": ("exp", "by", "sig"),
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    query: tuple[str, ...]
    body: dict[str, Any] | None
    csv: bool
    authenticated: bool


def _operations(doc: dict[str, Any]) -> list[Operation]:
    out = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            content = op.get("requestBody", {}).get("content", {})
            query = tuple(p["name"] for p in op.get("parameters", []) if p["in"] == "query")
            out.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    query=query + EXTRA_QUERY.get(path, ()),
                    body=content.get("application/json", {}).get("schema"),
                    csv="text/csv" in content,
                    authenticated="security" in op,
                )
            )
    return out


def _quote(value: Any) -> str:
    text = value if isinstance(value, str) else dumps(value)
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


@st.composite
def requests(draw: st.DrawFn, op: Operation, defs: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    path = op.path
    for name in [part[1:-1] for part in op.path.split("/") if part.startswith("{")]:
        choices = [st.uuids().map(str), st.sampled_from(HOSTILE_TEXT)]
        if name in ids and (op.method, op.path) not in RANDOM_IDS_ONLY and op.method != "DELETE":
            choices = [st.just(ids[name])] * 3 + choices
        path = path.replace("{" + name + "}", _quote(draw(st.one_of(choices))) or "x")
    query: dict[str, Any] = {k: GOOD[k] for k in op.query if k in GOOD}
    if "cursor" in op.query and draw(st.booleans()):
        query["cursor"] = draw(st.one_of(hostile_cursor(), hostile()))
    elif op.query:
        mutate: bool = draw(st.booleans())
        if mutate and query:
            query = draw(one_hostile(st.just(query), whole=False))
        if draw(st.booleans()):
            query[draw(st.sampled_from(op.query))] = draw(hostile())
    if isinstance(query, dict) and query:
        path += "?" + "&".join(f"{_quote(k)}={_quote(v)}" for k, v in query.items())
    headers = {"Authorization": ADMIN["Authorization"]}
    if draw(st.integers(0, 9)) == 0:  # a hostile bearer now and then (aiohttp's client sends str as UTF-8)
        headers["Authorization"] = draw(st.sampled_from(BAD_BEARERS))
    data: bytes | None = None
    if op.csv and draw(st.booleans()):
        rows = draw(
            st.lists(st.lists(st.sampled_from([*HOSTILE_TEXT, "Ana", "PT"]), min_size=1, max_size=6), max_size=4)
        )
        text = "display_name,country,organisation,email,role\n" + "\n".join(",".join(r) for r in rows)
        data = text.encode("utf-8", "surrogatepass")
        headers["Content-Type"] = "text/csv"
    elif op.body is not None:
        valid = from_schema(op.body, defs, list(ids.values()))
        value = draw(st.one_of(one_hostile(valid), one_hostile(valid), valid, hostile()))
        data = dumps(value).encode()
        headers["Content-Type"] = "application/json"
    return {"method": op.method, "path": path, "data": data, "headers": headers}


async def _world(client: Client) -> dict[str, str]:
    workshop = await create_workshop(client)
    person = await add_participant(client, workshop["id"], email="ana@example.org")
    base = f"/api/v1/workshops/{workshop['id']}"
    room = await (await client.post(f"{base}/rooms", json={"name": "Breakout"}, headers=ADMIN)).json()
    plan = await (
        await client.post(f"{base}/breakouts", json={"name": "Round 1", "rooms": ["A", "B"]}, headers=ADMIN)
    ).json()
    return {
        "workshop_id": workshop["id"],
        "participant_id": person["id"],
        "room_id": room["id"],
        "plan_id": plan["id"],
        "recording_id": str(uuid.uuid4()),
        "track_id": str(uuid.uuid4()),
    }


@pytest.fixture
async def world(client: Client) -> tuple[list[Operation], dict[str, Any], dict[str, str]]:
    doc = await (await client.get("/api/v1/openapi.json")).json()
    return _operations(doc), doc["components"]["schemas"], await _world(client)


async def _check(client: Client, request: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.clear()
    resp = await client.request(request["method"], request["path"], data=request["data"], headers=request["headers"])
    text = await resp.text(errors="replace")
    where = f"{request['method']} {request['path'][:200]} {request['data'][:300] if request['data'] else ''!r}"
    assert resp.status < 500, (where, resp.status, text[:500])
    if resp.status >= 400 and resp.url.path.startswith("/api/") and len(request["path"]) < MAX_LINE:
        body = json.loads(text)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, (where, text[:500])
    for leak in LEAKS:
        assert leak not in text, (where, leak, text[:500])
    assert not tracebacks(caplog.records), (where, tracebacks(caplog.records))


async def test_hostile_values_in_every_http_field_get_a_clear_error(
    client: Client, world: tuple[list[Operation], dict[str, Any], dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    ops, defs, ids = world
    caplog.set_level(logging.INFO)
    assert len(ops) >= 40
    for op in ops:
        for request in examples(requests(op, defs, ids), PER_OPERATION):
            await _check(client, request, caplog)
