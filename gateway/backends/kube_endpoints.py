"""Discovery for the kubernetes backend: one pod watch per namespace in use, the ready set of each
revision (`PodIndex`), and the listeners told when one changes; with several data planes, the leader's
numbering of the pods (`Numberer`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial

from gateway.backends.base import EndpointListener
from gateway.backends.kube_api import KubeApi
from gateway.backends.kube_manifest import MANAGED_BY, MANAGED_BY_LABEL
from gateway.backends.kube_pods import Obj, PodIndex
from gateway.backends.kube_slots import Numberer
from gateway.backends.kube_watch import PodWatch
from gateway.types import EndpointSet, RevisionKey


class PodEndpoints:
    def __init__(
        self,
        api: KubeApi,
        port_of: Callable[[RevisionKey], int],
        *,
        answered: Callable[[], None],
        watch_timeout: int,
        min_interval: float,
        backoff: Sequence[float],
        first_list_timeout: float,
        planes: Callable[[], int] = lambda: 1,
        may_write: Callable[[], bool] = lambda: False,
        on_planes: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._api = api
        self._index = PodIndex(port_of, planes)
        self._planes = planes
        self._seen_planes = planes()
        self._on_planes = on_planes  # the number of data planes changed (seen within a second)
        self.numberer = Numberer(api, self._index, planes=planes, may_write=may_write, on_tick=self._regate)
        self._answered = answered
        self._watch_timeout = watch_timeout
        self._min_interval = min_interval
        self._backoff = tuple(backoff)
        self._first_list_timeout = first_list_timeout
        self.watches: dict[str, PodWatch] = {}
        self._first: dict[str, asyncio.Event] = {}  # set once a namespace's first list succeeded or failed
        self._listeners: list[EndpointListener] = []

    def endpoints(self, key: RevisionKey) -> EndpointSet:
        return self._index.endpoints(key)

    def listen(self, listener: EndpointListener) -> None:
        self._listeners.append(listener)

    async def watch(self, namespaces: Iterable[str]) -> None:
        """Watch the pods of namespaces not watched yet; returns once each first list is in (or failed,
        or `first_list_timeout` passed), so the autoscaler starts from the pods that are ready now."""
        started = []
        for namespace in sorted(set(namespaces) - set(self.watches)):
            watch = PodWatch(
                self._api,
                namespace,
                f"{MANAGED_BY_LABEL}={MANAGED_BY}",
                reset=partial(self._reset, namespace),
                event=partial(self._event, namespace),
                failure=partial(self._failed, namespace),
                answered=self._answered,
                timeout_seconds=self._watch_timeout,
                min_interval=self._min_interval,
                backoff=self._backoff,
            )
            self.watches[namespace] = watch
            self._first[namespace] = asyncio.Event()
            watch.start()
            started.append(namespace)
        self.numberer.start()
        if started:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._first_list_timeout):
                    await asyncio.gather(*(self._first[ns].wait() for ns in started))

    def unnumbered(self, key: RevisionKey) -> str | None:
        """What holds ready pods back from routing (several data planes: their numbers), or has them routed by their
        address; None when nothing does."""
        waiting, by_address = self._index.waiting(key), self._index.by_address(key)
        if not waiting and not by_address:
            return None
        why = self.numberer.problem or "the leading gateway numbers each pod as it is made"
        if not waiting:
            return f"{by_address} pod(s) not numbered within {self._index.grace:g} s, routed by their address: some gateways may get no slot ({why})"
        return f"{waiting} ready pod(s) not routed to yet: with several data planes a pod serves once numbered ({why})"

    def _reset(self, namespace: str, pods: list[Obj]) -> None:
        self._index.reset(namespace, pods)
        self._notify()
        self._first[namespace].set()
        self.numberer.poke()

    def _event(self, namespace: str, kind: str, pod: Obj) -> None:
        self._index.changed(self._index.apply(kind, pod, namespace))
        self._notify()
        self.numberer.poke()

    async def _regate(self) -> None:
        self._index.regate()
        self._notify()
        planes = self._planes()
        if planes != self._seen_planes:
            self._seen_planes = planes
            if self._on_planes is not None:
                await self._on_planes()

    def _failed(self, namespace: str, error: str, outage: bool) -> None:
        if outage:  # a dropped watch alone is a hiccup: the API counts as unreachable once a relist fails too
            self._api.failed(error)
        self._first[namespace].set()  # no list to wait for

    def _notify(self) -> None:
        for key, endpoints in self._index.take_notices():
            for listener in list(self._listeners):
                listener(key, endpoints)

    async def close(self) -> None:
        self._listeners.clear()
        await self.numberer.close()
        await asyncio.gather(*(watch.stop() for watch in self.watches.values()))
        self.watches.clear()
