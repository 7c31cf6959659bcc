"""Which backend serves each revision: the backends in use, built by name from the registry on first
use, and the one face the autoscaler scales through (`ScalingBackend`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from gateway.autoscale.scaler import AdoptingBackend, Adoption
from gateway.backends import Backend, BackendContext, EndpointListener, RevisionStatus, create_backend
from gateway.config.model import BackendKind
from gateway.router.revision import RevisionRuntime
from gateway.types import EndpointSet, RevisionKey


@runtime_checkable
class Actuating(Protocol):
    """A backend that can stand by (several gateway instances: only the leader writes to what runs)."""

    def set_actuating(self, on: bool) -> None: ...


class RevisionBackends:
    """The backends in use (`by_kind`) and which one serves each revision (`of_revision`).

    A backend's endpoint changes go to the revision's runtime in `runtimes`, but only from the
    backend that serves it now: a revision that moved to another backend still hears from the old
    one while its replicas there drain.
    """

    def __init__(self, context: BackendContext, runtimes: Mapping[RevisionKey, RevisionRuntime]) -> None:
        self.by_kind: dict[BackendKind, Backend] = {}
        self.of_revision: dict[RevisionKey, BackendKind] = {}
        self._context = context
        self._adopting: dict[BackendKind, AdoptingBackend] = {}  # backends whose replicas a restart adopts
        self._runtimes = runtimes
        self.actuating = True  # False: standing by (another gateway instance leads)
        self.wrap: Callable[[BackendKind, Backend], Backend] | None = None  # shared state: e.g. the local backend mirrored
        # Told every change a backend reports after the runtime took it (the supervisor passes it on to workers).
        self.on_endpoints: EndpointListener | None = None

    def get(self, kind: BackendKind) -> Backend:
        """The backend named `kind`, built on first use."""
        backend = self.by_kind.get(kind)
        if backend is None:
            backend = create_backend(kind, self._context)
            if self.wrap is not None:
                backend = self.wrap(kind, backend)
            if isinstance(backend, Actuating):
                backend.set_actuating(self.actuating)
            backend.watch(self._listener(kind))
            self.by_kind[kind] = backend
            if isinstance(backend, AdoptingBackend):
                self._adopting[kind] = backend
        return backend

    def _listener(self, kind: BackendKind) -> EndpointListener:
        def endpoints_changed(key: RevisionKey, endpoints: EndpointSet) -> None:
            runtime = self._runtimes.get(key)
            if runtime is not None and self.of_revision.get(key) == kind:
                runtime.set_endpoints(endpoints)
            if self.on_endpoints is not None and self.of_revision.get(key) == kind:
                self.on_endpoints(key, endpoints)

        return endpoints_changed

    def set_actuating(self, on: bool) -> None:
        """Lead (write to what runs) or stand by, every backend in use and every one built later."""
        self.actuating = on
        for backend in self.by_kind.values():
            if isinstance(backend, Actuating):
                backend.set_actuating(on)

    def serving(self, key: RevisionKey) -> Backend | None:
        """The backend that serves revision `key`, if any."""
        kind = self.of_revision.get(key)
        return None if kind is None else self.by_kind.get(kind)

    # -- ScalingBackend: what the autoscaler sees ------------------------------------------------
    async def scale(self, key: RevisionKey, replicas: int) -> None:
        backend = self.serving(key)
        if backend is not None:
            await backend.scale(key, replicas)

    def adoption(self, key: RevisionKey) -> Adoption:
        kind = self.of_revision.get(key)
        backend = None if kind is None else self._adopting.get(kind)
        return None if backend is None else backend.adoption(key)

    def ready_endpoints(self, key: RevisionKey) -> EndpointSet:
        backend = self.serving(key)
        return frozenset() if backend is None else backend.ready_endpoints(key)

    def status(self, key: RevisionKey) -> RevisionStatus:
        backend = self.serving(key)
        return RevisionStatus(desired=0, ready=0) if backend is None else backend.status(key)

    async def close(self) -> None:
        for backend in self.by_kind.values():
            await backend.close()
