"""Health, readiness and the OpenAPI document."""

from __future__ import annotations

import asyncio

from aiohttp import web

from server import keys
from server.api import API, PREFIX
from server.api.routing import json_model
from server.api.schemas import Health

OPENAPI = web.AppKey("openapi", dict)


@API.route("GET", "/healthz", summary="The process is alive.", response=Health, authenticated=False, tags=("meta",))
async def healthz(request: web.Request) -> web.Response:
    return json_model(Health(status="ok"))


@API.route(
    "GET",
    "/readyz",
    summary="The database answers; 503 when it does not.",
    response=Health,
    authenticated=False,
    errors=(503,),
    tags=("meta",),
)
async def readyz(request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(2):
            await request.app[keys.POOL].fetchval("SELECT 1")
    except Exception:
        return json_model(Health(status="unavailable"), status=503)
    return json_model(Health(status="ok"))


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
