"""Admin listener: health, readiness, Prometheus metrics, service table, reload."""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from typing import TYPE_CHECKING

import uvicorn
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gateway.metrics import GatewayCollector

if TYPE_CHECKING:
    from gateway.app import Gateway


def create_admin_app(gateway: Gateway) -> Starlette:
    registry = CollectorRegistry()
    registry.register(GatewayCollector(gateway.views, lambda: gateway.proxy.unrouted, gateway.proxy.connections_view))

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        if gateway.proxy.draining or not gateway.proxy.sockets:
            return PlainTextResponse("not ready", status_code=503)
        return PlainTextResponse("ready")

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def services(request: Request) -> Response:
        return JSONResponse(gateway.describe())

    async def reload(request: Request) -> Response:
        outcome = await gateway.reloader.request("POST /admin/reload")
        return JSONResponse(outcome.document(), status_code=200 if outcome.ok else 400)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/admin/services", services),
            Route("/admin/reload", reload, methods=["POST"]),
        ]
    )


class AdminServer(uvicorn.Server):
    """uvicorn without its own signal handling: the gateway owns SIGTERM/SIGINT/SIGHUP."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def admin_server(gateway: Gateway, host: str, port: int) -> AdminServer:
    config = uvicorn.Config(
        create_admin_app(gateway), host=host, port=port, log_level="warning", access_log=False, lifespan="off"
    )
    return AdminServer(config)
