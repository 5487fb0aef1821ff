"""A small route table that drives both aiohttp routing and the OpenAPI document."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.json_schema import models_json_schema

from server.auth import Principal
from server.http_errors import invalid
from signaling.errors import InvalidArgument, NotFound
from signaling.text import find_bad_text, text_problem

M = TypeVar("M", bound=BaseModel)
AuthedHandler = Callable[[web.Request, Principal], Awaitable[web.StreamResponse]]
PlainHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Authenticate = Callable[[web.Request], Awaitable[Principal]]

DEFAULT_PAGE = 100
MAX_PAGE = 500
_LIMIT = re.compile(r"[0-9]{1,9}")  # ASCII digits only: int() would also take "١٢", " 12" and "1_0"


@dataclass
class RouteSpec:
    method: str
    path: str
    summary: str
    handler: Any
    body: type[BaseModel] | None = None
    extra_body_types: dict[str, dict[str, Any]] = field(default_factory=dict)
    response: Any = None
    status: int = 200
    authenticated: bool = True
    paged: bool = False
    tags: tuple[str, ...] = ()
    errors: tuple[int, ...] = ()
    binary_response: str | None = None
    # Query parameters besides paging, as OpenAPI parameter objects (`"in": "query"` is added).
    query: tuple[dict[str, Any], ...] = ()


class Api:
    """Routes registered with their request and response models."""

    def __init__(self) -> None:
        self.routes: list[RouteSpec] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        body: type[BaseModel] | None = None,
        response: Any = None,
        status: int = 200,
        authenticated: bool = True,
        paged: bool = False,
        tags: tuple[str, ...] = (),
        errors: tuple[int, ...] = (),
        extra_body_types: dict[str, dict[str, Any]] | None = None,
        binary_response: str | None = None,
        query: tuple[dict[str, Any], ...] = (),
    ) -> Callable[[Any], Any]:
        def register(handler: Any) -> Any:
            self.routes.append(
                RouteSpec(
                    method=method,
                    path=path,
                    summary=summary,
                    handler=handler,
                    body=body,
                    extra_body_types=extra_body_types or {},
                    response=response,
                    status=status,
                    authenticated=authenticated,
                    paged=paged,
                    tags=tags,
                    errors=errors,
                    binary_response=binary_response,
                    query=query,
                )
            )
            return handler

        return register

    def install(self, app: web.Application, authenticate: Authenticate) -> None:
        for spec in self.routes:
            app.router.add_route(spec.method, spec.path, _bind(spec, authenticate))

    def openapi(self, *, title: str, version: str) -> dict[str, Any]:
        return build_openapi(self.routes, title=title, version=version)


def _bind(spec: RouteSpec, authenticate: Authenticate) -> PlainHandler:
    if not spec.authenticated:
        plain: PlainHandler = spec.handler

        async def unauthenticated(request: web.Request) -> web.StreamResponse:
            check_query_text(request)
            return await plain(request)

        unauthenticated.__name__ = getattr(plain, "__name__", "handler")
        return unauthenticated
    authed: AuthedHandler = spec.handler

    async def handler(request: web.Request) -> web.StreamResponse:
        check_query_text(request)
        principal = await authenticate(request)
        return await authed(request, principal)

    handler.__name__ = getattr(authed, "__name__", "handler")
    return handler


# Request helpers --------------------------------------------------------------------------------


def check_query_text(request: web.Request) -> None:
    """Every query parameter is acceptable text (the URL decoder turns bad UTF-8 into U+FFFD, but lets %00 through)."""
    for key, value in request.query.items():
        problem = text_problem(key) or text_problem(value)
        if problem is not None:
            field = key if text_problem(key) is None else "(query)"
            raise InvalidArgument(f"query parameter {field} {problem}", details=[{"field": field, "message": problem}])


def _bad_text(data: Any) -> InvalidArgument | None:
    bad = find_bad_text(data)
    if bad is None:
        return None
    return InvalidArgument(f"{bad[0]} {bad[1]}", details=[{"field": bad[0], "message": bad[1]}])


async def read_json(request: web.Request) -> Any:
    """The JSON body; every string in it (keys included) is acceptable text, or the error names the field."""
    if request.content_type not in ("application/json", ""):
        raise InvalidArgument(f"expected application/json, got {request.content_type}")
    raw = await request.read()
    if not raw.strip():
        raise InvalidArgument("body is empty; expected a JSON object")
    try:
        data = TypeAdapter(Any).validate_json(raw)
    except ValidationError as exc:
        # Lone surrogate escapes ("\ud800") are refused by the strict parser; the lenient one finds the field.
        try:
            error = _bad_text(json.loads(raw))
        except (ValueError, RecursionError):
            error = None
        raise error or InvalidArgument("body is not valid JSON") from exc
    error = _bad_text(data)
    if error is not None:
        raise error
    return data


async def read_body(request: web.Request, model: type[M]) -> M:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise InvalidArgument("body must be a JSON object")
    try:
        # Strict JSON validation keeps Body's promise: "12" is not an integer and true is not 1, while dates and
        # UUIDs still arrive as JSON strings. The body was read above; aiohttp returns the cached bytes.
        return model.model_validate_json(await request.read(), strict=True)
    except ValidationError as exc:
        raise invalid(exc) from exc


def path_uuid(request: web.Request, name: str) -> uuid.UUID:
    """A UUID from the path; anything else is simply not found."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError as exc:
        raise NotFound("not found") from exc


def page_limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return DEFAULT_PAGE
    if not _LIMIT.fullmatch(raw):
        raise InvalidArgument("limit must be an integer", details=[{"field": "limit", "message": "not an integer"}])
    limit = int(raw)
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument(
            f"limit must be between 1 and {MAX_PAGE}",
            details=[{"field": "limit", "message": f"must be between 1 and {MAX_PAGE}"}],
        )
    return limit


def json_model(model: BaseModel | list[Any] | dict[str, Any], *, status: int = 200) -> web.Response:
    if isinstance(model, BaseModel):
        text = model.model_dump_json()
    else:
        text = TypeAdapter(Any).dump_json(model).decode()
    return web.Response(text=text, status=status, content_type="application/json")


# OpenAPI ----------------------------------------------------------------------------------------

_ERROR_TEXT = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    409: "conflict",
    413: "payload_too_large",
    503: "unavailable",
}


def _openapi_path(path: str) -> str:
    return path


def build_openapi(routes: list[RouteSpec], *, title: str, version: str) -> dict[str, Any]:
    from server.api.schemas import ErrorBody

    models: list[Any] = [ErrorBody]
    for spec in routes:
        if spec.body is not None:
            models.append(spec.body)
        if isinstance(spec.response, type) and issubclass(spec.response, BaseModel):
            models.append(spec.response)
    unique = list(dict.fromkeys(models))
    keyed: list[Any] = [(m, _mode(m, routes)) for m in unique]
    refs, defs = models_json_schema(keyed, ref_template="#/components/schemas/{model}")

    def ref(model: Any) -> dict[str, Any]:
        key: Any = (model, _mode(model, routes))
        return refs[key]

    paths: dict[str, dict[str, Any]] = {}
    for spec in routes:
        op: dict[str, Any] = {
            "summary": spec.summary,
            "operationId": getattr(spec.handler, "__name__", spec.path),
            "tags": list(spec.tags),
            "responses": {},
        }
        params = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "format": "uuid"} if name.endswith("_id") else {"type": "string"},
            }
            for name in _path_params(spec.path)
        ]
        params += [{**q, "in": "query"} for q in spec.query]
        if spec.paged:
            params += [
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE},
                },
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
            ]
        if params:
            op["parameters"] = params
        if spec.body is not None:
            content = {"application/json": {"schema": ref(spec.body)}}
            content.update(spec.extra_body_types)
            op["requestBody"] = {"required": True, "content": content}
        if spec.authenticated:
            op["security"] = [{"bearer": []}]
        success: dict[str, Any] = {"description": "OK" if spec.status != 201 else "Created"}
        if spec.binary_response:
            success["content"] = {spec.binary_response: {"schema": {"type": "string", "format": "binary"}}}
        elif spec.response is not None:
            schema = (
                ref(spec.response)
                if isinstance(spec.response, type) and issubclass(spec.response, BaseModel)
                else spec.response
            )
            success["content"] = {"application/json": {"schema": schema}}
        op["responses"][str(spec.status)] = success
        error_statuses = set(spec.errors) | {400}
        if spec.authenticated:
            # Every authenticated call reads the database: while it is away, 503 with Retry-After.
            error_statuses |= {401, 403, 404, 503}
        for status in sorted(error_statuses):
            op["responses"][str(status)] = {
                "description": _ERROR_TEXT.get(status, "error"),
                "content": {"application/json": {"schema": ref(ErrorBody)}},
            }
            if status == 503:
                op["responses"]["503"]["headers"] = {
                    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
                }
        paths.setdefault(_openapi_path(spec.path), {})[spec.method.lower()] = op

    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The admin token, or a participant's join token.",
                }
            },
        },
    }


def _mode(model: Any, routes: list[RouteSpec]) -> str:
    """Request bodies are described as validated, responses as serialised."""
    return "validation" if any(spec.body is model for spec in routes) else "serialization"


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


async def optional_body(request: web.Request, model: type[M]) -> M:
    """The body as `model`, or its defaults when the request has none (an empty body keeps old callers working)."""
    if not request.can_read_body or not (await request.read()).strip():
        return model()
    return await read_body(request, model)
