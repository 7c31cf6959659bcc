"""The Backend protocol: actuation (scale to n) and discovery (ready endpoints) behind one face."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from gateway.config.model import GatewaySettings, ServiceSpec
from gateway.types import Endpoint, EndpointSet, RevisionKey

EndpointListener = Callable[[RevisionKey, EndpointSet], None]
InFlight = Callable[[Endpoint], int]


@dataclass(frozen=True)
class BackendContext:
    """What the gateway gives every backend it builds (one value, whatever the backend takes from it)."""

    state_dir: Path  # this gateway's own folder: replica logs, pid records, its lock
    in_flight: InFlight | None = None  # requests a replica still serves (the data plane's count), for drains
    settings: GatewaySettings | None = None  # the gateway's settings at start (kubernetes: how to build Deployments)
    planes: Callable[[], int] | None = None  # data planes dividing each replica's concurrency (workers, instances)


@dataclass(frozen=True)
class RevisionStatus:
    """What a backend knows about one revision, for /admin/services and `gateway status`."""

    desired: int
    ready: int
    state: str = "ok"  # ok | scaling | crash-backoff | failed | ...
    message: str | None = None


class Backend(Protocol):
    async def sync(self, services: Sequence[ServiceSpec]) -> None:
        """Make the backend's set of revisions match the config (first start and every reload).

        Revisions that left the config are scaled to zero and forgotten; new ones start at zero.
        """

    async def update(self, changed: Sequence[ServiceSpec], removed: Sequence[ServiceSpec]) -> None:
        """`sync` for a reload that knows what changed: O(changed) work, unchanged services untouched."""

    async def scale(self, key: RevisionKey, replicas: int) -> None:
        """Ask for `replicas` replicas of a revision; returns once the request is recorded."""

    def ready_endpoints(self, key: RevisionKey) -> EndpointSet:
        """The endpoints that currently pass their readiness check."""

    def watch(self, listener: EndpointListener) -> None:
        """Call `listener(key, endpoints)` whenever a revision's set of ready endpoints changes."""

    def status(self, key: RevisionKey) -> RevisionStatus: ...

    async def close(self) -> None:
        """Stop every replica this backend started (scale all to zero) and release resources."""


@runtime_checkable
class ReportsHealth(Protocol):
    """A backend that depends on something outside (the Kubernetes API) and can say when it is unwell."""

    def health(self) -> str | None:
        """None while all is well; else what is wrong and what the gateway does meanwhile."""


@runtime_checkable
class FollowsConfig(Protocol):
    """A backend that takes the gateway's settings on every start and reload (`configure`: the kubernetes backend
    rebuilds its Deployments when `spec.kubernetes` changed), and is told when a whole configuration has been
    applied (`applied`, after every slice of `update`: it then deletes the Deployments of revisions no longer in it)."""

    async def configure(self, settings: GatewaySettings) -> None: ...

    def applied(self) -> None: ...
