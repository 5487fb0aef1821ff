"""The browser client: static files from `web/`, served by the same server (no CDN, nothing external)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"

# Pages are plain files; the join token travels in the URL fragment and never reaches the server.
PAGES = {"/join": "join.html", "/admin": "admin.html", "/": "index.html"}


def _page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        path = WEB_ROOT / name
        if not path.is_file():
            raise web.HTTPNotFound(reason="page not found")
        response = web.FileResponse(path)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
            "connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
        )
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    return handler


async def _revalidate_static(request: web.Request, response: web.StreamResponse) -> None:
    """The client is plain ES modules without hashed names: make browsers revalidate them (ETag /
    Last-Modified answer 304), so an upgrade never mixes old and new modules."""
    if request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-cache")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")


def add_web_routes(app: web.Application) -> None:
    for path, name in PAGES.items():
        app.router.add_get(path, _page(name))
    if WEB_ROOT.is_dir():
        app.router.add_static("/static/", WEB_ROOT, show_index=False, follow_symlinks=False)
        app.on_response_prepare.append(_revalidate_static)
