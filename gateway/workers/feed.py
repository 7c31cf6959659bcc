"""The worker's backend: the ready endpoints and states the supervisor sends, nothing it runs itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from gateway.backends import BackendContext, EndpointListener, RevisionStatus
from gateway.backends.base import Backend
from gateway.config.model import BackendKind, ServiceSpec
from gateway.revision_backends import RevisionBackends
from gateway.router.revision import RevisionRuntime
from gateway.types import EndpointSet, RevisionKey

EMPTY: EndpointSet = frozenset()


class EndpointFeed:
    """A Backend whose endpoints come from the supervisor; scaling is the supervisor's, so a no-op here."""

    def __init__(self) -> None:
        self.endpoints: dict[RevisionKey, EndpointSet] = {}
        self.states: dict[RevisionKey, tuple[str, str | None]] = {}
        self._listeners: list[EndpointListener] = []

    def set(self, key: RevisionKey, endpoints: EndpointSet) -> None:
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
