"""Backends: actuation (scale to n) and discovery (ready endpoints), picked by name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.backends.base import Backend, EndpointListener, RevisionStatus
from gateway.backends.errors import BackendConfigError
from gateway.config.model import ServiceSpec

__all__ = ["Backend", "BackendConfigError", "EndpointListener", "RevisionStatus", "create_backend"]


def create_backend(kind: str, *, state_dir: str, **options: Any) -> Backend:
    """Build the backend named by ``spec.backend``: ``local`` | ``static`` (| ``kubernetes``).

    `options` go to the backend's constructor (``static`` takes ``services``).
    """
    if kind == "local":
        from gateway.backends.local import LocalBackend

        return LocalBackend(state_dir, **options)
    if kind == "static":
        from gateway.backends.static import StaticBackend

        services: Sequence[ServiceSpec] = options.pop("services", ())
        if options:
            raise BackendConfigError(f"static backend: unknown options {sorted(options)}")
        return StaticBackend(services)
    if kind == "kubernetes":
        raise BackendConfigError("spec.backend: kubernetes is not implemented yet; use local or static")
    raise BackendConfigError(f"spec.backend: must be one of local, static, kubernetes; got {kind!r}")
