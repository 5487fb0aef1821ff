"""Health, readiness and the OpenAPI document."""

from __future__ import annotations

import asyncio

from aiohttp import web

from server import keys
from server.api import API, PREFIX
from server.api.routing import json_model
from server.api.schemas import Health, NodeHealth, Readiness

OPENAPI = web.AppKey("openapi", dict)


@API.route("GET", "/healthz", summary="The process is alive.", response=Health, authenticated=False, tags=("meta",))
async def healthz(request: web.Request) -> web.Response:
    return json_model(Health(status="ok"))


@API.route(
    "GET",
    "/readyz",
    summary="The database answers and the bus is connected; 503 when either is not. Also this node's leases.",
    response=Readiness,
    authenticated=False,
    errors=(503,),
    tags=("meta",),
)
async def readyz(request: web.Request) -> web.Response:
    node = request.app.get(keys.NODE)
    health = None
    if node is not None:
        health = NodeHealth(
            id=node.info.id, bus=node.engine, bus_connected=node.bus.connected, leases=len(node.leases.held())
        )
    try:
        async with asyncio.timeout(2):
            await request.app[keys.POOL].fetchval("SELECT 1")
    except Exception:
        return json_model(Readiness(status="unavailable", node=health), status=503)
    if health is None or not health.bus_connected:
        return json_model(Readiness(status="unavailable", node=health), status=503)
    return json_model(Readiness(status="ok", node=health))


@API.route(
    "GET",
    f"{PREFIX}/openapi.json",
    summary="This document: OpenAPI 3.1, generated from the models.",
    response={"type": "object"},
    authenticated=False,
    tags=("meta",),
)
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])
