"""Helpers for the kubernetes backend's tests: services whose pods run the test bed's replica, and a
backend built on a test bed's kubeconfig with short timings."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gateway.backends.base import InFlight
from gateway.backends.kube_api import KubeApi, load_configuration
from gateway.backends.kubernetes import KubernetesBackend
from gateway.config.model import RevisionSpec, ServiceSpec
from gateway.types import EndpointSet, RevisionKey
from tests.kube.manifests import REPLICA

FAST = (0.05, 0.1, 0.2)


def revision(name: str = "default", *, port: int = 8080, env: tuple[tuple[str, str], ...] = ()) -> RevisionSpec:
    return RevisionSpec(
        name,  # type: ignore[arg-type]
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


def kube_api(kubeconfig: Path, *, schedule: tuple[float, ...] = FAST, timeout: tuple[float, float] = (2.0, 5.0)) -> KubeApi:
    return KubeApi(load_configuration(str(kubeconfig)), schedule=schedule, timeout=timeout)


@asynccontextmanager
async def backend(
    kubeconfig: Path, *, in_flight: InFlight | None = None, request_timeout: tuple[float, float] = (2.0, 5.0), **kwargs: Any
) -> AsyncIterator[KubernetesBackend]:
    options: dict[str, Any] = {"watch_timeout": 2, "watch_min_interval": 0.2, "backoff": (0.1, 0.2, 0.4), "drain_poll": 0.05}
    options.update(kwargs)
    made = KubernetesBackend(kube_api(kubeconfig, timeout=request_timeout), in_flight=in_flight, **options)
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
