"""Which of a replica's ``containerConcurrency`` slots this data plane may use.

Several data planes (gateway instances, worker processes) proxy to the same replicas. Each replica
has ``cc`` slots, numbered ``j = 0 .. cc-1``; slot ``j`` belongs to data plane
``(offset + j) % count``, where ``offset`` (gateway/slots.py) follows from the number the actuator gave the
replica, or else from a CRC-32 of its ``host:port``. So, for every
replica, the capacities of the ``count`` planes sum to exactly ``cc`` and each is ``cc // count`` or
one more: no replica ever gets more than ``cc`` requests at once, however the planes' traffic is
spread.

Why the offset comes from the endpoint and not from the replica's position in the set: replicas
come and go all the time (every scaling step), while the set of data planes changes rarely. Planes
learn of a new replica at slightly different moments; if the extra slots were dealt by position in
the sorted set, one replica arriving would shift the shares of the others, and for a moment two
planes would both count an extra slot on the same replica as theirs. With an offset that depends on
the endpoint alone (CRC-32, stable across processes and machines, unlike Python's salted ``hash``),
a replica's division never changes while the planes agree on ``count``.

The same holds for a number: it is given once (by the one actuator) and never changes while the replica
lives, so every plane divides the replica the same way.

When ``cc < count`` a replica serves only ``cc`` of the planes, so a plane has no capacity at all until
there is a replica whose slots are its own. The local backend chooses its replicas' ports so that each
new one serves planes the others do not; on Kubernetes pod addresses fall as they fall, so the leader
numbers the pods (0, 1, 2 ...: the lowest number free), replica ``n`` starting at slot ``n * cc``: every
plane is served once there are ``ceil(count / cc)`` replicas. With more than one plane a pod is routed
to only once its number is known (kube_pods.py).
"""

from __future__ import annotations

from gateway.slots import slot_offset
from gateway.types import Endpoint


def check_share(index: int, count: int) -> None:
    """Raise ValueError unless this is plane ``index`` (0-based) of ``count`` planes."""
    if count < 1:
        raise ValueError(f"the number of data planes must be at least 1, not {count}")
    if not 0 <= index < count:
        raise ValueError(f"data plane index {index} is outside 0..{count - 1} (the number of data planes is {count})")


def plane_capacity(endpoint: Endpoint, container_concurrency: int, index: int, count: int) -> int:
    """Slots of ``endpoint`` that data plane ``index`` of ``count`` owns; 0 when ``container_concurrency`` is 0 (unlimited)."""
    check_share(index, count)
    if container_concurrency < 0:
        raise ValueError(f"containerConcurrency must be 0 (unlimited) or more, not {container_concurrency}")
    if count == 1:
        return container_concurrency
    offset = slot_offset(endpoint, count, container_concurrency)
    # Slots j with (offset + j) % count == index: every count-th slot from the first one, j = (index - offset) % count.
    first = (index - offset) % count
    return container_concurrency // count + (1 if first < container_concurrency % count else 0)
