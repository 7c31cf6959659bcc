"""Value types shared by the data plane, the control plane and the backends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

RevisionName = Literal["default", "canary"]


@dataclass(frozen=True, slots=True)
class RevisionKey:
    """Identifies one revision of one service: ``{namespace}/{service}-{revision}``."""

    namespace: str
    service: str
    revision: RevisionName

    @property
    def name(self) -> str:
        """The revision's public name, as in ``X-Gateway-Revision``: ``iris-default``."""
        return f"{self.service}-{self.revision}"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class Endpoint(NamedTuple):
    """One replica's address. A tuple: hashed and compared in C on the request path."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


EndpointSet = frozenset[Endpoint]


class ConnectionsView(NamedTuple):
    """The data-plane listener's connection accounting."""

    open: int
    limit: int  # spec.proxy.maxConnections, or what the descriptor limit allows
    limit_reached: int  # times accepting stopped because `limit` connections were open
    accept_shortages: int  # accepts that failed for lack of descriptors or buffers
