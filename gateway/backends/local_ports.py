"""Which port a new local replica should get, when containerConcurrency is below the number of data planes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gateway.slots import slot_offset
from gateway.types import Endpoint


def covering(replicas: Sequence[Endpoint], cc: int, planes: int) -> Callable[[int], bool] | None:
    """A test for ports whose replica would serve a data plane none of `replicas` serves, or None (any port).

    With containerConcurrency below the number of data planes a replica serves only some of them, which ones
    following from its address (gateway/slots.py); choosing the port so each new replica serves planes the
    others do not, every plane is served once there are planes / cc replicas."""
    if not 0 < cc < planes:
        return None
    served = {(slot_offset(endpoint, planes) + j) % planes for endpoint in replicas for j in range(cc)}
    wanted = next((plane for plane in range(planes) if plane not in served), None)
    if wanted is None:
        return None
    return lambda port: slot_offset(Endpoint("127.0.0.1", port), planes) == wanted
