"""Value types shared by the data plane, the control plane and the backends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One replica's address."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


EndpointSet = frozenset[Endpoint]
