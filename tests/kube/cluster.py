"""A "cluster": the API emulator plus the controller and node that turn Deployments into serving processes.

The helpers are for tests and safe to call from the test's thread: they act as an operator or the node
would (crash a container, delete a pod, drain), never through the HTTP API, so they are not hit by faults
the test injects there.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.kube import pods
from tests.kube.controller import Controller, is_ready
from tests.kube.kubelet import KubeletConfig, PodWorker
from tests.kube.server import KubeApi
from tests.kube.store import PODS, Key, Obj


class Cluster:
    def __init__(
        self, api: KubeApi, workdir: Path, *, node: str = "testbed-node", images: dict[str, list[str]] | None = None
    ) -> None:
        self.api = api
        workdir.mkdir(parents=True, exist_ok=True)
        config = KubeletConfig(node=node, logs=workdir, podnet=pods.podnet_library(), cwd=os.getcwd(), images=dict(images or {}))
        self.controller = Controller(api.store, config)
        api.call(self.controller.start)

    # -- looking -----------------------------------------------------------------------------------
    def pods(self, deployment: str | None = None, namespace: str = "default") -> list[Obj]:
        """Live pods (terminating ones included) of a Deployment, or all of the namespace."""
        found = self.api.objects("pods", namespace)
        if deployment is None:
            return found
        return [p for p in found if any(r.get("name") == deployment for r in p["metadata"].get("ownerReferences") or [])]

    def ready_pods(self, deployment: str, namespace: str = "default") -> list[Obj]:
        return [p for p in self.pods(deployment, namespace) if is_ready(p) and not p["metadata"].get("deletionTimestamp")]

    def pid(self, pod: str, namespace: str = "default") -> int | None:
        """The pid of the pod's running container process, None while it is not running."""

        def find() -> int | None:
            worker = self.controller.workers.get((PODS, namespace, pod))
            return worker.process.pid if worker is not None and worker.process is not None else None

        return self.api.call(find)

    def probes(self, pod: str, namespace: str = "default") -> int:
        """How many readiness probes the node has run against the pod so far."""
        return self.api.call(lambda: self._worker((PODS, namespace, pod)).probes)

    def logs(self, pod: str, namespace: str = "default") -> str:
        path = self.controller.config.logs / f"{namespace}_{pod}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def all_pids(self) -> list[int]:
        """Every container process the cluster has started so far."""
        return self.api.call(lambda: [*self.controller.pids, *(p for w in self.controller.workers.values() for p in w.pids)])

    # -- acting ------------------------------------------------------------------------------------
    def set_entrypoint(self, image: str, argv: list[str]) -> None:
        """What a container of `image` with no `command` runs (a real image's ENTRYPOINT, which the bed cannot read)."""
        images = self.controller.config.images
        self.api.call(lambda: images.__setitem__(image, list(argv)))

    def kill(self, pod: str, namespace: str = "default", sig: int = signal.SIGKILL) -> int:
        """Crash the pod's container (SIGKILL by default): the pod turns not-Ready and is restarted, restartCount+1."""
        return self.api.call(lambda: self._worker((PODS, namespace, pod)).kill(sig))

    def delete_pod(self, pod: str, namespace: str = "default") -> None:
        """Delete a pod gracefully, as `kubectl delete pod` would; its Deployment replaces it."""
        self.api.call(lambda: self.controller.delete((PODS, namespace, pod)))

    def drain(self, deployment: str, namespace: str = "default") -> list[str]:
        """Delete all pods of a Deployment at once (its node drained); return their names."""
        names = [p["metadata"]["name"] for p in self.pods(deployment, namespace) if not p["metadata"].get("deletionTimestamp")]
        for name in names:
            self.delete_pod(name, namespace)
        return names

    def _worker(self, key: Key) -> PodWorker:
        worker = self.controller.workers.get(key)
        if worker is None:
            raise LookupError(f"no pod {key[2]!r} in namespace {key[1]!r} runs on the node")
        return worker

    def close(self) -> None:
        """Stop the controller and every container process; raise if the test bed itself failed meanwhile."""
        self.api.run(self.controller.stop())
        if self.controller.errors:
            raise RuntimeError(f"the test bed's controller failed: {self.controller.errors!r}") from self.controller.errors[0]
