"""Value types shared by the data plane, the control plane and the backends."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

# A revision's suffix within its service: "default" and "canary" (PaddleService, SimpleMLService, KFServing),
# "predictor-00002" (an InferenceService's numbered revisions, as KServe names them).
RevisionName = str
_REVISION_NAME = re.compile(r"default|canary|predictor-\d{5,}")


def is_revision_name(text: str) -> bool:
    """Whether `text` is a revision suffix a ServiceSpec can have (labels and Redis keys read back are checked)."""
    return _REVISION_NAME.fullmatch(text) is not None


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
        return f"http://{self}"

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"  # IPv6 in brackets


EndpointSet = frozenset[Endpoint]


class ConnectionsView(NamedTuple):
    """The data-plane listener's connection accounting."""

    open: int
    limit: int  # spec.proxy.maxConnections, or what the descriptor limit allows
    limit_reached: int  # times accepting stopped because `limit` connections were open
    accept_shortages: int  # accepts that failed for lack of descriptors or buffers
