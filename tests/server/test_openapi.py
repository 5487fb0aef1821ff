"""GET /api/v1/openapi.json, /healthz and /readyz."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys

Client = TestClient[Any, Any]
DOCUMENTED_PREFIXES = ("/api/v1/", "/healthz", "/readyz", "/verify/")
NOT_HTTP = {"/ws"}  # the WebSocket is described in docs/protocol.md, not in OpenAPI


async def openapi(client: Client) -> dict[str, Any]:
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    document: dict[str, Any] = await resp.json()
    return document


def registered_routes(app: web.Application) -> set[tuple[str, str]]:
    routes = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method in ("HEAD", "OPTIONS", "*") or path in NOT_HTTP:
            continue
        if path.startswith(DOCUMENTED_PREFIXES):
            routes.add((route.method.lower(), path))
    return routes


def refs_in(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= refs_in(value)
        return found
    if isinstance(node, list):
        return set().union(*(refs_in(v) for v in node)) if node else set()
    return set()


async def test_openapi_document_is_version_3_1_and_needs_no_token(client: Client) -> None:
    document = await openapi(client)
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["title"] == "Roundtable"
    assert document["info"]["version"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    # Code generators key methods by operationId: it must be unique in the document.
    operation_ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(operation_ids) == len(set(operation_ids))


async def test_openapi_documents_every_registered_route_with_its_method(client: Client) -> None:
    document = await openapi(client)
    registered = registered_routes(client.app)
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert len(registered) >= 21
    assert registered - documented == set()
    # And nothing is documented that the server would answer with 404 or 405.
    assert documented - registered == set()


async def test_openapi_names_the_request_and_response_bodies(client: Client) -> None:
    paths = (await openapi(client))["paths"]
    create = paths["/api/v1/workshops"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/WorkshopCreate"
    }
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Workshop"
    }
    listing = paths["/api/v1/workshops"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"limit", "cursor"}
    imports = paths["/api/v1/workshops/{workshop_id}/participants/import"]["post"]["requestBody"]["content"]
    assert set(imports) == {"application/json", "text/csv"}
    assert imports["application/json"]["schema"]["type"] == "array"


async def test_openapi_marks_authenticated_routes_and_their_error_answers(client: Client) -> None:
    paths = (await openapi(client))["paths"]
    public = {"/healthz", "/readyz", "/api/v1/openapi.json"}
    for path, operations in paths.items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            assert op["summary"], where
            assert op["operationId"], where
            params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert params == {part[1:-1] for part in path.split("/") if part.startswith("{")}, where
            if path in public:
                assert "security" not in op, where
            if "security" not in op:
                continue
            assert op["security"] == [{"bearer": []}], where
            for status in ("401", "403", "404"):
                schema = op["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, where


async def test_openapi_references_resolve_and_leave_out_internals(client: Client) -> None:
    document = await openapi(client)
    schemas = document["components"]["schemas"]
    for ref in refs_in(document):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    # Internal columns never appear in a public model.
    participant = schemas["Participant"]["properties"]
    assert "token_generation" not in participant
    assert "deleted_at" not in participant
    assert schemas["WorkshopCreate"]["additionalProperties"] is False


async def test_healthz_answers_ok_without_a_token(client: Client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_readyz_answers_ok_while_the_database_answers(client: Client) -> None:
    resp = await client.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok"
    # One node alone (no ROUNDTABLE_BUS_URL): the in-process bus, always connected, no workshop leased yet.
    assert body["node"] == {
        "id": client.app[keys.NODE].info.id,
        "bus": "in_process",
        "bus_connected": True,
        "leases": 0,
    }


async def test_readyz_answers_503_when_the_database_does_not(client: Client) -> None:
    pool = client.app[keys.POOL]
    await pool.close()
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["status"] == "unavailable"
    resp = await client.get("/healthz")
    assert resp.status == 200
