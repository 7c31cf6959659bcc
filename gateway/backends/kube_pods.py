"""Which pods serve which revision: the ready set `podIP:port` of every revision, from pod objects.

A pod counts when it carries our labels (checked here, whatever selector the API applied), has an IP,
its Ready condition is True and it has no deletion timestamp (a terminating pod leaves at once).

With more than one data plane (gateway instances, workers) a pod counts only once it carries its number
(`serving-gateway/slot`, written by the leader: kube_slots.py), which says how its containerConcurrency
slots divide among the planes (gateway/slots.py): a plane that went by another division than the others
could take a slot another plane takes too. With one plane nothing is waited for. A pod ready for
`grace` seconds without a number (the leader cannot write it: RBAC without `patch` on pods, Redis away)
is routed to all the same, divided by its address as before numbers existed: every plane that routes to
it divides it the same way, so the limit holds; only the planes served are left to chance.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from gateway import slots
from gateway.backends.kube_manifest import revision_of
from gateway.types import Endpoint, EndpointSet, RevisionKey

Obj = dict[str, Any]
PortOf = Callable[[RevisionKey], int]
Notice = tuple[RevisionKey, EndpointSet]  # a revision's new ready set, for the listeners
log = logging.getLogger(__name__)
_refused: dict[str, str] = {}  # podIPs refused so far (bounded): each is said once, not on every event
UNNUMBERED_GRACE = 10.0  # seconds a ready pod waits for its number before it is routed to by its address


def is_ready(pod: Obj) -> bool:
    metadata = pod.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_address(value: object) -> str | None:
    """A pod IP the gateway may send requests to, else None: an IP address that a pod can have. Not a name, not
    unspecified (0.0.0.0, ::), not link-local (169.254.169.254 is a cloud's metadata service), multicast or
    reserved. Loopback is allowed: the test bed's pods live on 127.0.x.y."""
    if not isinstance(value, str):
        return None
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    if not ip.is_loopback and (ip.is_unspecified or ip.is_link_local or ip.is_multicast or ip.is_reserved):
        return None  # (IPv6's ::1 lies in a reserved range: loopback is asked first)
    return str(ip)


def pod_endpoint(pod: Obj, port: int) -> Endpoint | None:
    """The pod's serving address when it is ready, else None."""
    raw = (pod.get("status") or {}).get("podIP")
    if not raw or not is_ready(pod):
        return None
    ip = pod_address(raw)
    if ip is None:
        name = (pod.get("metadata") or {}).get("name")
        if str(raw) not in _refused and len(_refused) < 1000:
            _refused[str(raw)] = str(name)
            log.warning("pod %s: podIP %r is not an address a pod can serve on; not routed to", name, raw)
        return None
    return Endpoint(ip, port)


def pod_number(pod: Obj) -> int | None:
    """The pod's number among its revision's (gateway/slots.py), None while it has none."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return slots.parse_slot(annotations.get(slots.SLOT_ANNOTATION)) if isinstance(annotations, dict) else None


class Pod(NamedTuple):
    """What the index keeps of one pod."""

    key: RevisionKey
    endpoint: Endpoint | None  # while ready
    number: int | None
    version: str  # metadata.resourceVersion: a write of its number is made on this version only
    live: bool  # not terminating
    ready_since: float | None  # when this index first saw it ready (its clock)


class PodIndex:
    """Ready endpoints per revision, kept from lists (`reset`) and watch events (`apply`)."""

    def __init__(
        self,
        port_of: PortOf,
        planes: Callable[[], int] = lambda: 1,
        *,
        grace: float = UNNUMBERED_GRACE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._port_of = port_of
        self._planes = planes
        self._grace = grace
        self._clock = clock
        self._pods: dict[tuple[str, str], Pod] = {}
        self._members: dict[RevisionKey, dict[str, Pod]] = {}
        self._published: dict[RevisionKey, dict[Endpoint, int | None]] = {}  # endpoint -> its number, as last told
        self.sets: dict[RevisionKey, EndpointSet] = {}
        self._notices: list[Notice] = []  # the sets to tell the listeners, in order (`take_notices`)
        self._shared = planes() > 1

    @property
    def grace(self) -> float:
        return self._grace

    def endpoints(self, key: RevisionKey) -> EndpointSet:
        return self.sets.get(key, frozenset())

    def revisions(self) -> list[RevisionKey]:
        return list(self._members)

    def pods(self, key: RevisionKey) -> dict[str, Pod]:
        """The revision's pods by name (terminating ones included)."""
        return self._members.get(key, {})

    def waiting(self, key: RevisionKey) -> int:
        """Ready pods not routed to because their number is not known yet (several planes only)."""
        return sum(1 for pod in self.pods(key).values() if pod.endpoint is not None and pod.endpoint not in self.endpoints(key))

    def by_address(self, key: RevisionKey) -> int:
        """Ready pods routed to without a number, past `grace` (several planes only)."""
        if self._planes() <= 1:
            return 0
        published = self._published.get(key, {})
        return sum(1 for number in published.values() if number is None)

    def take_notices(self) -> list[Notice]:
        """The new ready sets since the last call, in order: a pod whose number changed leaves its set, then
        comes back under its new number, so no throttler divides it two ways at once."""
        notices, self._notices = self._notices, []
        return notices

    def reset(self, namespace: str, pods: Iterable[Obj]) -> set[RevisionKey]:
        """Replace everything known of `namespace` by `pods`; the revisions whose ready set changed."""
        touched: set[RevisionKey] = set()
        for ident in [ident for ident in self._pods if ident[0] == namespace]:
            touched.add(self._drop(ident))
        for pod in pods:
            touched |= self.apply("ADDED", pod, namespace)
        return {key for key in touched if self._refresh(key)}

    def apply(self, kind: str, pod: Obj, namespace: str) -> set[RevisionKey]:
        """One watch event; the revisions whose ready set may have changed (refreshed by the caller via `changed`)."""
        metadata = pod.get("metadata") or {}
        name = metadata.get("name")
        if not name or metadata.get("namespace", namespace) != namespace:
            return set()
        ident = (namespace, str(name))
        touched: set[RevisionKey] = set()
        before = self._pods.get(ident)
        if before is not None:
            touched.add(self._drop(ident))
        key = revision_of(pod)
        if kind != "DELETED" and key is not None and key.namespace == namespace:
            live = not metadata.get("deletionTimestamp")
            endpoint = pod_endpoint(pod, self._port_of(key))
            since = None
            if endpoint is not None:
                since = before.ready_since if before is not None and before.endpoint == endpoint else self._clock()
            version = str(metadata.get("resourceVersion") or "")
            known = Pod(key, endpoint, pod_number(pod), version, live, since)
            self._pods[ident] = known
            self._members.setdefault(key, {})[ident[1]] = known
            touched.add(key)
        return touched

    def changed(self, keys: Iterable[RevisionKey]) -> list[RevisionKey]:
        """Of `keys`, those whose ready set differs from the one last published (now updated; `take_notices`)."""
        return [key for key in keys if self._refresh(key)]

    def regate(self) -> list[RevisionKey]:
        """Once a second: when the number of planes went from one to several or back, every revision's ready set
        again; else those of the revisions with a ready pod past its grace without a number. O(pods)."""
        shared = self._planes() > 1
        if shared != self._shared:
            self._shared = shared
            return self.changed(set(self._members) | set(self.sets))
        if not shared:
            return []
        now = self._clock()
        due = [
            key
            for key, members in self._members.items()
            if any(self._overdue(pod, now) and pod.endpoint not in self.endpoints(key) for pod in members.values())
        ]
        return self.changed(due)

    def _overdue(self, pod: Pod, now: float) -> bool:
        return pod.number is None and pod.ready_since is not None and now - pod.ready_since >= self._grace

    def _drop(self, ident: tuple[str, str]) -> RevisionKey:
        pod = self._pods.pop(ident)
        members = self._members.get(pod.key)
        if members is not None:
            members.pop(ident[1], None)
            if not members:
                del self._members[pod.key]
        return pod.key

    def _refresh(self, key: RevisionKey) -> bool:
        shared = self._planes() > 1
        now = self._clock()
        current: dict[Endpoint, int | None] = {}
        for pod in self._members.get(key, {}).values():
            if pod.endpoint is not None and (pod.number is not None or not shared or self._overdue(pod, now)):
                current[pod.endpoint] = pod.number
        before = self._published.get(key, {})
        if current == before:
            return False
        renumbered = {e for e, number in current.items() if e in before and before[e] != number}
        if renumbered:  # out first, in again under the new number: no throttler divides it two ways at once
            self._publish(key, {e: n for e, n in before.items() if e not in renumbered and e in current})
        self._publish(key, current)
        return True

    def _publish(self, key: RevisionKey, current: dict[Endpoint, int | None]) -> None:
        for endpoint in self._published.get(key, {}).keys() - current.keys():
            slots.forget(endpoint)
        for endpoint, number in current.items():
            if number is None:
                slots.forget(endpoint)
            else:
                slots.learn(endpoint, number)
        if current:
            self._published[key] = current
            self.sets[key] = frozenset(current)
        else:
            self._published.pop(key, None)
            self.sets.pop(key, None)
        self._notices.append((key, self.endpoints(key)))
