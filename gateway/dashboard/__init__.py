"""The live dashboard on the admin listener: ``/`` (static/index.html) and its JSON API (views.py), fed by
the history the autoscaler's ticks record (history.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.dashboard.history import History
from gateway.dashboard.views import BadRequest, NotFound, revision_history, services_page

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = ["History", "routes"]

STATIC = Path(__file__).with_name("static")

# The page runs only its own scripts: a hostile name that slipped into markup could not run either.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def _answer(make: Callable[[], dict[str, object]]) -> Response:
    try:
        return JSONResponse(make())
    except BadRequest as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    except NotFound as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)


def routes(gateway: Gateway) -> list[BaseRoute]:
    """The dashboard's routes, for the admin app."""
    static = StaticFiles(directory=STATIC)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    async def services(request: Request) -> Response:
        return _answer(lambda: services_page(gateway, gateway.history, request.query_params))

    async def revision(request: Request) -> Response:
        p = request.path_params
        return _answer(
            lambda: revision_history(gateway, gateway.history, p["namespace"], p["service"], p["revision"], request.query_params)
        )

    handlers: list[tuple[str, Callable[[Request], Awaitable[Response]]]] = [
        ("/", index),
        ("/admin/dashboard/services", services),
        ("/admin/dashboard/revisions/{namespace}/{service}/{revision}/history", revision),
    ]
    return [*(Route(path, handler) for path, handler in handlers), Mount("/dashboard/static", static)]
