"""Helpers for the kubernetes backend's tests: services whose pods run the test bed's replica, a
backend built on a test bed's kubeconfig with short timings, and the requests one backend sent (each
backend's client may carry its own User-Agent)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gateway.backends.base import InFlight
from gateway.backends.kube_api import KubeApi, load_configuration
from gateway.backends.kubernetes import KubernetesBackend
from gateway.config.model import RevisionSpec, ServiceSpec
from gateway.types import EndpointSet, RevisionKey
from tests.kube.manifests import REPLICA
from tests.kube.server import KubeApi as ApiServer

FAST = (0.05, 0.1, 0.2)


def revision(name: str = "default", *, port: int = 8080, env: tuple[tuple[str, str], ...] = ()) -> RevisionSpec:
    return RevisionSpec(
        name,
        image="testbed/replica:1",
        container_command=(sys.executable, REPLICA),
        container_port=port,
        readiness_path="/healthz",
        env=env,
    )


def service(name: str = "iris", *, namespace: str = "default", canary: int | None = None, **kwargs: Any) -> ServiceSpec:
    return ServiceSpec(
        name,
        namespace,
        default=revision("default", **kwargs),
        canary=None if canary is None else revision("canary", **kwargs),
        canary_percent=canary or 0,
    ).digested()


def kube_api(
    kubeconfig: Path,
    *,
    schedule: tuple[float, ...] = FAST,
    timeout: tuple[float, float] = (2.0, 5.0),
    agent: str | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> KubeApi:
    """The gateway's API client; `agent` its User-Agent (`sent_by` finds its requests), `sleep` its retries' wait."""
    api = KubeApi(load_configuration(str(kubeconfig)), schedule=schedule, timeout=timeout, sleep=sleep)
    if agent is not None:
        api.client.user_agent = agent
    return api


@asynccontextmanager
async def backend(
    kubeconfig: Path,
    *,
    in_flight: InFlight | None = None,
    request_timeout: tuple[float, float] = (2.0, 5.0),
    agent: str | None = None,
    api: KubeApi | None = None,
    **kwargs: Any,
) -> AsyncIterator[KubernetesBackend]:
    options: dict[str, Any] = {"watch_timeout": 2, "watch_min_interval": 0.2, "backoff": (0.1, 0.2, 0.4), "drain_poll": 0.05}
    options.update(kwargs)
    client = api if api is not None else kube_api(kubeconfig, timeout=request_timeout, agent=agent)
    made = KubernetesBackend(client, in_flight=in_flight, **options)
    try:
        yield made
    finally:
        await made.close()


class Heard:
    """What an endpoint listener heard, per revision, in order."""

    def __init__(self) -> None:
        self.sets: dict[RevisionKey, list[EndpointSet]] = {}

    def __call__(self, key: RevisionKey, endpoints: EndpointSet) -> None:
        self.sets.setdefault(key, []).append(endpoints)

    def last(self, key: RevisionKey) -> EndpointSet:
        return self.sets.get(key, [frozenset()])[-1]


def settled(kube: KubernetesBackend) -> bool:
    """The worker has nothing in hand: no reconcile running and none waiting. A wish given before this
    may be taken by a reconcile already under way (a creation reads the wish after its POST)."""
    return not kube._reconciler.tasks and not kube._reconciler.dirty


def sent_by(server: ApiServer, agent: str) -> list[tuple[str, str]]:
    """`(method, path with query)` of every request the API server received from clients with this User-Agent."""

    def mine() -> list[tuple[str, str]]:
        return [
            (r.method.value, str(r.url.relative())) for r in server.emulator._requests if r.headers.get("User-Agent") == agent
        ]

    return server.call(mine)


def writes_by(server: ApiServer, agent: str) -> list[tuple[str, str]]:
    """The requests from `agent` that could change something: every method but GET."""
    return [(method, url) for method, url in sent_by(server, agent) if method != "GET"]
