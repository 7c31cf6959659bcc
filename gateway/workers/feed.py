"""The worker's backend: the ready endpoints and states the supervisor sends, nothing it runs itself.

An endpoint travels as ``[host, port]``, or ``[host, port, number]`` when the actuator numbered the replica
(the kubernetes backend's pods, with several data planes: gateway/slots.py); the worker learns the number
before its throttlers see the endpoint, so every worker divides the replica as the supervisor's planes do."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gateway import slots
from gateway.backends import BackendContext, EndpointListener, RevisionStatus
from gateway.backends.base import Backend
from gateway.config.model import BackendKind, ServiceSpec
from gateway.revision_backends import RevisionBackends
from gateway.router.revision import RevisionRuntime
from gateway.types import Endpoint, EndpointSet, RevisionKey

EMPTY: EndpointSet = frozenset()


def endpoints_out(endpoints: Iterable[Endpoint]) -> list[list[object]]:
    """A revision's endpoints for an ``endpoints`` message, each with its number when it has one."""
    out: list[list[object]] = []
    for endpoint in endpoints:
        number = slots.number_of(endpoint)
        out.append([endpoint.host, endpoint.port] if number is None else [endpoint.host, endpoint.port, number])
    return out


def endpoints_in(raw: Iterable[Any]) -> EndpointSet:
    """The endpoints of an ``endpoints`` message; their numbers learned (ValueError for a malformed one)."""
    found = set()
    for item in raw:
        if not isinstance(item, list) or len(item) not in (2, 3):
            raise ValueError(f"an endpoint is [host, port] or [host, port, number], not {item!r}")
        endpoint = Endpoint(str(item[0]), int(item[1]))
        if len(item) == 3:
            number = item[2]
            if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < slots.MAX_SLOT:
                raise ValueError(f"a replica's number is an integer in 0..{slots.MAX_SLOT - 1}, not {number!r}")
            slots.learn(endpoint, number)
        else:
            slots.forget(endpoint)
        found.add(endpoint)
    return frozenset(found)


class EndpointFeed:
    """A Backend whose endpoints come from the supervisor; scaling is the supervisor's, so a no-op here."""

    def __init__(self) -> None:
        self.endpoints: dict[RevisionKey, EndpointSet] = {}
        self.states: dict[RevisionKey, tuple[str, str | None]] = {}
        self._listeners: list[EndpointListener] = []

    def set(self, key: RevisionKey, endpoints: EndpointSet) -> None:
        for gone in self.endpoints.get(key, EMPTY) - endpoints:
            slots.forget(gone)
        if endpoints:
            self.endpoints[key] = endpoints
        else:
            self.endpoints.pop(key, None)
        for listener in self._listeners:
            listener(key, endpoints)

    def set_states(self, states: dict[RevisionKey, tuple[str, str | None]]) -> None:
        self.states = states

    def state(self, key: RevisionKey) -> tuple[str, str | None]:
        return self.states.get(key, ("ok", None))

    async def sync(self, services: Sequence[ServiceSpec]) -> None:
        return None

    async def update(self, changed: Sequence[ServiceSpec], removed: Sequence[ServiceSpec]) -> None:
        return None

    async def scale(self, key: RevisionKey, replicas: int) -> None:
        return None

    def ready_endpoints(self, key: RevisionKey) -> EndpointSet:
        return self.endpoints.get(key, EMPTY)

    def watch(self, listener: EndpointListener) -> None:
        self._listeners.append(listener)

    def status(self, key: RevisionKey) -> RevisionStatus:
        ready = len(self.endpoints.get(key, EMPTY))
        state, message = self.state(key)
        return RevisionStatus(desired=ready, ready=ready, state=state, message=message)

    async def close(self) -> None:
        return None


class FeedBackends(RevisionBackends):
    """Every backend kind is the feed: the worker's revisions hear their endpoints from the supervisor."""

    def __init__(
        self,
        feed: EndpointFeed,
        runtimes: Mapping[RevisionKey, RevisionRuntime],
        on_endpoints: Callable[[RevisionKey, EndpointSet], None] | None = None,
    ) -> None:
        super().__init__(BackendContext(Path(".")), runtimes)
        self.feed = feed
        self._live = runtimes
        self._on_endpoints = on_endpoints
        feed.watch(self._endpoints_changed)

    def get(self, kind: BackendKind) -> Backend:
        self.by_kind[kind] = self.feed
        return self.feed

    def _endpoints_changed(self, key: RevisionKey, endpoints: EndpointSet) -> None:
        runtime = self._live.get(key)
        if runtime is not None:
            runtime.set_endpoints(endpoints)
        if self._on_endpoints is not None:
            self._on_endpoints(key, endpoints)
