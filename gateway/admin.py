"""Admin listener: health, readiness, Prometheus metrics, the service document, reload."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

import uvicorn
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gateway.backends import ReportsHealth
from gateway.config.model import ServiceSpec
from gateway.metrics import GatewayCollector, RevisionView, revision_views, scaling_status
from gateway.types import RevisionKey

if TYPE_CHECKING:
    from gateway.app import Gateway

NOT_READY = ("failed", "crash-backoff")  # backend states of a revision that cannot serve


def backend_health(gateway: Gateway) -> dict[str, str | None]:
    """Per backend in use that depends on something outside (the Kubernetes API): None when well, else what is wrong."""
    return {kind: backend.health() for kind, backend in gateway.backends.items() if isinstance(backend, ReportsHealth)}


def services_document(gateway: Gateway) -> dict[str, object]:
    """The /admin/services document: per service, per revision, its traffic, replicas and load."""
    domain = gateway.config.gateway.domain
    services = []
    for spec in gateway.config.services:
        revisions = []
        tags = {rev.name: tag for tag, rev in spec.tagged()}
        for rev in spec.revisions():
            key = spec.key(rev.name)
            runtime = gateway.runtimes[key]
            backend_status = gateway.revision_backends.status(key)
            scaling = scaling_status(gateway.autoscaler, gateway.revision_backends, key)
            revisions.append(
                {
                    "name": key.name,
                    "tag": tags.get(rev.name),
                    "host": spec.tag_host(tags[rev.name], domain) if rev.name in tags else None,
                    "percent": spec.percent(rev.name),
                    "backend": gateway.revision_backends.of_revision.get(key),
                    "endpoints": sorted(e.url for e in runtime.throttler.trackers),
                    "ready": runtime.throttler.ready,
                    "desired": scaling.desired,
                    "state": backend_status.state,
                    "message": backend_status.message,
                    "in_flight": sum(t.in_flight for t in runtime.throttler.trackers.values()),
                    "queued": runtime.throttler.queued,
                    "stable": scaling.stable,
                    "panic": scaling.panic,
                    "panicking": scaling.panicking,
                }
            )
        service: dict[str, object] = {"name": spec.name, "namespace": spec.namespace, "host": spec.host(domain)}
        if spec.rollout is not None:
            service["rollout"] = rollout_status(spec, lambda key: gateway.revision_backends.status(key).state)
        service["revisions"] = revisions
        services.append(service)
    backends = {kind: {"ok": problem is None, "message": problem} for kind, problem in backend_health(gateway).items()}
    document: dict[str, object] = {"domain": domain, "backends": backends, "services": services}
    if gateway.shared is not None:
        document["shared"] = gateway.shared.describe()
    return document


def rollout_status(spec: ServiceSpec, state: Callable[[RevisionKey], str]) -> dict[str, object]:
    """An InferenceService's traffic as `kubectl get isvc` shows it: PREV and LATEST percents, the previously
    rolled-out revision (None while no canary runs, as KServe), the latest revision and the latest that is
    ready (its backend has not failed it: the rolled-out one while the latest fails)."""
    canary = spec.canary
    latest = spec.key((canary or spec.default).name)
    ready = state(latest) not in NOT_READY
    prev = spec.key(spec.default.name) if canary is not None else None
    return {
        "ready": ready,
        "prev": spec.percent(spec.default.name) if canary is not None else None,
        "latest": spec.percent(canary.name) if canary is not None else 100,
        "prevRolledOutRevision": prev.name if prev is not None else None,
        "latestRevision": latest.name,
        "latestReadyRevision": latest.name if ready else prev.name if prev is not None and state(prev) not in NOT_READY else None,
    }


def readiness(gateway: Gateway) -> tuple[bool, str]:
    """(ready, what /readyz says): ready while it serves, outages said, not hidden (the last endpoints serve)."""
    if gateway.proxy.draining or not gateway.proxy.sockets:
        return False, "not ready"
    if gateway.shared is not None and not gateway.shared.joined:
        # its part of each replica is unknown until the others have seen it: taking traffic could overfill one
        return False, f"not ready: {gateway.shared.joining()}"
    problems = [f"{kind}: {problem}" for kind, problem in backend_health(gateway).items() if problem]
    if gateway.shared is not None and (problem := gateway.shared.health()):
        problems.append(problem)
    return True, "\n".join(["ready", *problems])


def create_admin_app(gateway: Gateway) -> Starlette:
    def views() -> list[RevisionView]:
        return revision_views(gateway.runtimes, gateway.autoscaler, gateway.revision_backends)

    registry = CollectorRegistry()
    registry.register(
        GatewayCollector(views, lambda: gateway.proxy.unrouted, gateway.proxy.connections_view, lambda: backend_health(gateway))
    )

    if gateway.shared is not None:
        from gateway.shared.metrics import SharedStateCollector

        registry.register(SharedStateCollector(gateway.shared))

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        ready, text = readiness(gateway)
        return PlainTextResponse(text, status_code=200 if ready else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def services(request: Request) -> Response:
        return JSONResponse(services_document(gateway))

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
