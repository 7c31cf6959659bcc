"""The Deployment controller, garbage collector and node of the test bed, on the emulator's event loop.

Level-triggered: every change in the store (and a short tick) runs one reconcile pass over all Deployments
and Pods, read straight from the store, so the controller's own traffic never meets faults a test injects
into the HTTP API. For each Deployment it keeps `spec.replicas` Pods named `<deployment>-<random>`, labelled
from the template plus `pod-template-hash`, owned by the Deployment, bound to the one node; surplus pods
are deleted not-ready first, then newest first. A changed template rolls: new pods are created at once and
an old pod goes for each new pod that is Ready (no ReplicaSets; maxSurge unbounded). Pods whose owner is
gone are deleted (background cascading deletion). The Deployment's status (replicas, readyReplicas,
availableReplicas, updatedReplicas, observedGeneration, the Available condition) follows its pods.
Pods made by anyone else (no Deployment owner) are stored but never run.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import secrets
from typing import Any

from tests.kube import pods
from tests.kube.kubelet import KubeletConfig, PodWorker
from tests.kube.store import DEPLOYMENTS, PODS, Key, Obj, Store, now, until_set

HASH_LABEL = "pod-template-hash"


def template_hash(template: Obj) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def is_ready(pod: Obj) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


Identity = tuple[str | None, str, str]  # namespace, name, uid ("" where the emulator assigns none)


def _owner(key: Key, pod: Obj) -> Identity | None:
    for ref in pod.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == "Deployment" and ref.get("controller"):
            return (key[1], ref.get("name", ""), ref.get("uid", ""))
    return None


def _identity(key: Key, deployment: Obj) -> Identity:
    return (key[1], key[2], deployment.get("metadata", {}).get("uid", ""))


class Controller:
    def __init__(self, store: Store, config: KubeletConfig, *, tick: float = 0.2) -> None:
        self.store = store
        self.config = config
        self.tick = tick
        self.workers: dict[Key, PodWorker] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._main: asyncio.Task[None] | None = None
        self.pids: list[int] = []  # every process ever started, for the leftover check
        self.errors: list[BaseException] = []  # bugs of the test bed itself, failed at teardown
        self._order: dict[Key, int] = {}

    def start(self) -> None:
        self._main = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        tasks = [t for t in (self._main, *self._tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        _, pending = await asyncio.wait(tasks, timeout=15) if tasks else (set(), set())
        if pending:
            self.errors.append(RuntimeError(f"{len(pending)} tasks of the test bed ignored their cancellation: {pending}"))
        for worker in self.workers.values():
            if worker.process is not None:
                worker.process.kill()
            self.pids.extend(worker.pids)
        left = await asyncio.to_thread(pods.wait_gone, self.pids, 10)
        if left:
            self.errors.append(RuntimeError(f"container process groups still alive after SIGKILL: {left}"))
        self.workers.clear()
        self._tasks.clear()

    async def _run(self) -> None:
        while True:
            changed = self.store.changed()
            try:
                self.reconcile()
            except Exception as exc:  # a bug in the test bed: keep the cluster up, fail the test at teardown
                self.errors.append(exc)
            await until_set(changed, self.tick)

    def reconcile(self) -> None:
        self._reap()
        deployments = {_identity(k, d): (k, d) for k, d in self.store.items(DEPLOYMENTS)}
        owned: dict[Identity, list[tuple[Key, Obj]]] = {ident: [] for ident in deployments}
        for key, pod in self.store.items(PODS):
            owner = _owner(key, pod)
            if owner is None:
                continue
            self._ensure_worker(key)
            if owner in owned:
                owned[owner].append((key, pod))
            else:
                self.delete(key)  # orphaned: its Deployment is gone
        for ident, (key, deployment) in deployments.items():
            if not deployment.get("metadata", {}).get("deletionTimestamp"):
                self._reconcile_deployment(key, deployment, owned[ident])

    def _reap(self) -> None:
        """Forget the workers whose pods are gone, keeping their pids and any error they died of."""
        for key, task in list(self._tasks.items()):
            if task.done():
                self.pids.extend(self.workers.pop(key).pids)
                del self._tasks[key]
                if not task.cancelled() and task.exception() is not None:
                    self.errors.append(task.exception())  # type: ignore[arg-type]

    def _ensure_worker(self, key: Key) -> None:
        if key in self._tasks:
            return
        worker = PodWorker(self.store, key, self.config)
        self.workers[key] = worker
        self._tasks[key] = asyncio.get_running_loop().create_task(worker.run(), name=f"pod {key[2]}")

    def _reconcile_deployment(self, key: Key, deployment: Obj, owned: list[tuple[Key, Obj]]) -> None:
        spec = deployment.get("spec", {})
        replicas = int(spec.get("replicas", 1))
        current_hash = template_hash(spec.get("template", {}))
        live = [(k, p) for k, p in owned if not p["metadata"].get("deletionTimestamp")]
        current = [(k, p) for k, p in live if p["metadata"].get("labels", {}).get(HASH_LABEL) == current_hash]
        old = [(k, p) for k, p in live if p["metadata"].get("labels", {}).get(HASH_LABEL) != current_hash]
        for _ in range(replicas - len(current)):
            self._create_pod(key, deployment, current_hash)
        for pod_key in self._surplus(current, len(current) - replicas):
            self.delete(pod_key)
        ready_new = sum(1 for _, p in current if is_ready(p))
        for pod_key in self._surplus(old, len(old) - max(0, replicas - ready_new)):
            self.delete(pod_key)
        self._write_status(key, deployment, live, len(current), replicas)

    def _create_pod(self, key: Key, deployment: Obj, current_hash: str) -> None:
        meta = deployment["metadata"]
        template = copy.deepcopy(deployment.get("spec", {}).get("template", {}))
        tmeta = template.get("metadata", {})
        name = f"{meta['name']}-{''.join(secrets.choice('bcdfghjklmnpqrstvwxz2456789') for _ in range(5))}"
        owner: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": meta["name"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        owner["uid"] = meta.get("uid", "")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "generateName": f"{meta['name']}-",
                "namespace": key[1],
                "labels": {**(tmeta.get("labels") or {}), HASH_LABEL: current_hash},
                "annotations": dict(tmeta.get("annotations") or {}),
                "ownerReferences": [owner],
            },
            "spec": {**template.get("spec", {}), "nodeName": self.config.node},
            "status": {
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now()}],
            },
        }
        self.store.create((PODS, key[1], name), pod)
        self._order[(PODS, key[1], name)] = len(self._order)

    def _surplus(self, candidates: list[tuple[Key, Obj]], count: int) -> list[Key]:
        """The `count` pods a ReplicaSet would remove first: not ready before ready, newest first within each."""
        ranked = sorted(candidates, key=lambda kp: (is_ready(kp[1]), -self._order.get(kp[0], 0)))
        return [k for k, _ in ranked[: max(count, 0)]]

    def delete(self, key: Key) -> None:
        """Delete a pod as the API would: a deletionTimestamp now, the object removed once its process stopped."""
        pod = self.store.get(key)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        if not pod.get("spec", {}).get("nodeName"):
            self.store.remove(key)
            return
        pod["metadata"]["deletionTimestamp"] = now()
        pod["metadata"]["deletionGracePeriodSeconds"] = int(pod["spec"].get("terminationGracePeriodSeconds", 30))
        self.store.replace(key, pod)

    def _write_status(self, key: Key, deployment: Obj, live: list[tuple[Key, Obj]], updated: int, replicas: int) -> None:
        ready = sum(1 for _, p in live if is_ready(p))
        status: Obj = {
            "replicas": len(live),
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(0, replicas - ready),
        }
        generation = deployment["metadata"].get("generation")
        if generation is not None:
            status["observedGeneration"] = generation
        available = "True" if ready >= replicas else "False"
        old_conditions = deployment.get("status", {}).get("conditions") or []
        since = next(
            (c["lastTransitionTime"] for c in old_conditions if c.get("type") == "Available" and c.get("status") == available),
            now(),
        )
        reason = "MinimumReplicasAvailable" if available == "True" else "MinimumReplicasUnavailable"
        status["conditions"] = [
            {"type": "Available", "status": available, "reason": reason, "lastTransitionTime": since, "lastUpdateTime": since}
        ]
        if deployment.get("status") != status:
            updated_obj = copy.deepcopy(deployment)
            updated_obj["status"] = status
            self.store.replace(key, updated_obj)
