"""The leader numbers the pods: with several data planes each pod of a revision gets a number (an annotation,
`serving-gateway/slot`) saying where its containerConcurrency slots start among the planes (gateway/slots.py).

Only the actuating gateway writes, each write fenced like the Deployments' (the lease still valid right
before each attempt, retries included), and only with more than one plane (one plane needs no number: nothing changes for a single
gateway). A pod gets the lowest number its revision's other live pods do not hold, as soon as it exists
(long before it is ready, so the number is there when it is); a number once written stays (a new
leader reads them from the pods), so every plane keeps dividing the pod the same way.

Each write is a merge patch naming the pod's resourceVersion: a number written meanwhile by another gateway (a leader that
just lost the lease) is never overwritten; the pod's next event brings it back here. The same write
sets `controller.kubernetes.io/pod-deletion-cost` to minus the number, so a scale-down removes the
highest numbers first and the numbers left stay 0 .. m-1 (each plane served).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from gateway import slots
from gateway.backends.kube_api import KubeApi, KubeRequestError, KubeUnavailable
from gateway.backends.kube_pods import PodIndex
from gateway.config.model import ScalingSpec

log = logging.getLogger(__name__)

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
MERGE_PATCH = "application/merge-patch+json"
PERIOD = 1.0  # seconds between two looks for pods without a number (also woken by every pod event)


def number_patch(number: int, version: str) -> dict[str, object]:
    """The merge patch that numbers a pod, made on `version` only (409 Conflict if it changed since)."""
    annotations = {slots.SLOT_ANNOTATION: str(number), DELETION_COST: str(-number)}
    metadata: dict[str, object] = {"annotations": annotations}
    if version:
        metadata["resourceVersion"] = version
    return {"metadata": metadata}


def covering(wish: int, scaling: ScalingSpec | None, planes: int) -> int:
    """The replicas to run for the autoscaler's `wish`: while it wants any and containerConcurrency is below
    the number of data planes, at least ceil(planes / cc) (within maxScale), so no plane is left without a
    slot while its requests wait (the autoscaler's figure is the revision's whole load, which one pod's slots
    can hold while serving only some of the planes)."""
    if wish < 1 or scaling is None or not 0 < scaling.container_concurrency < planes:
        return wish
    need = -(-planes // scaling.container_concurrency)
    if scaling.max_scale:
        need = min(need, scaling.max_scale)
    return max(wish, need)


class Numberer:
    def __init__(
        self,
        api: KubeApi,
        index: PodIndex,
        *,
        planes: Callable[[], int],
        may_write: Callable[[], bool],
        on_tick: Callable[[], Awaitable[None]] | None = None,
        period: float = PERIOD,
    ) -> None:
        self._api = api
        self._index = index
        self._planes = planes
        self._may_write = may_write
        self._on_tick = on_tick  # each pass, first: the pod index looks whether the number of planes crossed one
        self._period = period
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._written: dict[tuple[str, str], tuple[str, int]] = {}  # pod -> (version written on, number), not seen back
        self.problem: str | None = None  # the last refusal (RBAC without `patch` on pods), for the revision's status
        self.writes = 0

    def poke(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._period):
                    await self._wake.wait()
            self._wake.clear()
            try:
                if self._on_tick is not None:
                    await self._on_tick()
                await self.number_all()
            except Exception:
                log.exception("numbering pods")

    async def number_all(self) -> None:
        """Give every live pod without a number its number (the leader, several planes); O(pods) per call."""
        if self._planes() <= 1 or not self._may_write():
            return
        for key in self._index.revisions():
            pods = self._index.pods(key)
            taken = {pod.number for pod in pods.values() if pod.live and pod.number is not None}
            for ident in [ident for ident in self._written if ident[0] == key.namespace and ident[1] not in pods]:
                del self._written[ident]  # gone before its number came back
            for name, pod in pods.items():
                written = self._written.get((key.namespace, name))
                if written is not None and pod.number is None and pod.live and written[0] == pod.version:
                    taken.add(written[1])  # written; its event is on the way
            ready_first = sorted(pods.items(), key=lambda item: (item[1].endpoint is None, item[0]))
            for name, pod in ready_first:
                ident = (key.namespace, name)
                if pod.number is not None or not pod.live:
                    self._written.pop(ident, None)
                    continue
                written = self._written.get(ident)
                if written is not None and written[0] == pod.version:
                    continue
                number = slots.lowest_free(taken)
                if not await self._write(key.namespace, name, number, pod.version):
                    return
                taken.add(number)

    async def _write(self, namespace: str, name: str, number: int, version: str) -> bool:
        """False when nothing more should be tried now (not leading any more, or the API away)."""
        if not self._may_write():
            return False
        try:
            await self._api.call(
                f"Pod {namespace}/{name}",
                self._api.core.patch_namespaced_pod,
                name,
                namespace,
                number_patch(number, version),
                guard=self._may_write,  # asked again before each retry: a lease ended meanwhile sends nothing more
                _content_type=MERGE_PATCH,  # said, not left to the client version's choice
            )
        except KubeRequestError as exc:
            if exc.status not in (404, 409):  # gone, or changed since: its next event brings it back
                if self.problem is None:
                    log.error("cannot number the pods (needed with several data planes): %s", exc)
                self.problem = f"cannot number the pods for the data planes: {exc}"
            return True
        except KubeUnavailable:
            return False
        self.problem = None
        self.writes += 1
        self._written[(namespace, name)] = (version, number)
        return True
