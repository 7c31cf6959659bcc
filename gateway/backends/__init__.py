"""Backends: actuation (scale to n) and discovery (ready endpoints), picked by name from `BACKENDS`."""

from __future__ import annotations

from collections.abc import Callable

from gateway.backends.base import Backend, BackendContext, EndpointListener, ReportsHealth, RevisionStatus
from gateway.backends.errors import BackendConfigError

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendConfigError",
    "BackendContext",
    "EndpointListener",
    "ReportsHealth",
    "RevisionStatus",
    "create_backend",
]

BackendFactory = Callable[[BackendContext], Backend]


def _local(context: BackendContext) -> Backend:
    from gateway.backends.local import LocalBackend

    return LocalBackend(context.state_dir, in_flight=context.in_flight, planes=context.planes)


def _static(context: BackendContext) -> Backend:
    from gateway.backends.static import StaticBackend

    return StaticBackend()


def _kubernetes(context: BackendContext) -> Backend:
    from gateway.backends.kube_api import KubeApi, load_configuration
    from gateway.backends.kubernetes import KubernetesBackend
    from gateway.config.model import GatewaySettings

    kube = (context.settings or GatewaySettings()).kubernetes
    api = KubeApi(load_configuration(), timeout=(kube.connect_timeout, kube.request_timeout))
    return KubernetesBackend(api, context.settings, in_flight=context.in_flight, planes=context.planes or (lambda: 1))


BACKENDS: dict[str, BackendFactory] = {"local": _local, "static": _static, "kubernetes": _kubernetes}
"""``spec.backend`` name -> factory. A new backend is one entry here."""


def create_backend(name: str, context: BackendContext) -> Backend:
    """Build the backend named by ``spec.backend``."""
    factory = BACKENDS.get(name)
    if factory is None:
        raise BackendConfigError(f"spec.backend: must be one of {', '.join(BACKENDS)}; got {name!r}")
    return factory(context)
