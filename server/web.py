"""The browser client: static files from `web/`, served by the same server (no CDN, nothing external); and the
headers every answer carries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from aiohttp import web, web_response

from server import keys
from server.http_errors import request_logger
from server.settings import Settings
from signaling.origins import normalise_origin

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"

# Pages are plain files; the join token travels in the URL fragment and never reaches the server.
PAGES = {"/join": "join.html", "/admin": "admin.html", "/": "index.html"}
# Pages with an id in their path: the page reads the id from location and asks the API (which authorises).
PAGE_PATTERNS = {"/recordings/{recording_id}": "player.html"}
SERVER_NAME = "roundtable"  # no version numbers: they only help someone matching exploits to servers


def connect_sources(origins: Iterable[str]) -> str:
    """CSP connect-src: our own origin(s), and the WebSocket scheme of each (ws: for http:, wss: for https:).

    'self' covers the origin the page came from; the configured public origin and ROUNDTABLE_ALLOWED_ORIGINS are
    listed too, for a page served under one name that talks to its server under another."""
    sources = ["'self'"]
    for origin in origins:
        normal = normalise_origin(origin)
        if normal is None:
            continue
        scheme, rest = normal.split("://", 1)
        for source in (normal, f"{'wss' if scheme == 'https' else 'ws'}://{rest}"):
            if source not in sources:
                sources.append(source)
    return " ".join(sources)


def content_security_policy(origins: Iterable[str]) -> str:
    return (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
        f"connect-src {connect_sources(origins)}; style-src 'self'; script-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    )


def connection_options(settings: Settings) -> dict[str, Any]:
    """aiohttp's per-connection options (Application handler_args).

    aiohttp closes a connection whose request head is not complete `keepalive_timeout` after it opened or after the
    previous answer: that is the header read timeout (slow headers), and it also bounds how long an idle keep-alive
    connection stays open. Requests it cannot parse are logged without a traceback (see request_logger)."""
    return {"keepalive_timeout": settings.header_timeout_s, "logger": request_logger()}


def _page(name: str, csp: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        path = WEB_ROOT / name
        if not path.is_file():
            raise web.HTTPNotFound(reason="page not found")
        response = web.FileResponse(path)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Content-Security-Policy"] = csp
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    return handler


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer: no MIME sniffing, no version in Server. API answers are never stored by a cache: many carry a
    join token or a signed URL. The client is plain ES modules without hashed names: browsers revalidate them (ETag /
    Last-Modified answer 304), so an upgrade never mixes old and new modules."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Server"] = SERVER_NAME
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    elif request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-cache")


def _hide_server_version() -> None:
    """Answers aiohttp writes before any application code runs (a request it cannot parse) take `Server` from this
    module constant; it is the only way to keep the version out of those too."""
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined,unused-ignore]


def add_web_routes(app: web.Application) -> None:
    _hide_server_version()
    settings = app[keys.SETTINGS]
    csp = content_security_policy([settings.base_url, *settings.allowed_origins])
    for path, name in {**PAGES, **PAGE_PATTERNS}.items():
        app.router.add_get(path, _page(name, csp))
    if WEB_ROOT.is_dir():
        app.router.add_static("/static/", WEB_ROOT, show_index=False, follow_symlinks=False)
    app.on_response_prepare.append(_common_headers)
