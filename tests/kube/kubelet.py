"""The kubelet's share of the test bed: one task per pod bound to the node, keeping a real process running.

It starts the pod's first container as a process on the pod's own address, probes readiness every
`probe_interval` seconds (not the probe's periodSeconds; `failureThreshold` consecutive failures turn
it not-Ready), restarts the process when it exits (restartPolicy Always, with a doubling back-off as in
CrashLoopBackOff), and writes the pod's status only when it changes. When the pod gets a deletionTimestamp
it stops the process (SIGTERM, SIGKILL after the grace period, capped at `max_grace`) and removes the object.
"""

from __future__ import annotations

import copy
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.kube import pods
from tests.kube.store import Key, Obj, Store, now, until_set


@dataclass
class KubeletConfig:
    node: str
    logs: Path
    podnet: Path
    cwd: str | None = None
    probe_interval: float = 0.1  # while not Ready; also how often a process's exit is noticed
    ready_probe_interval: float = 0.5  # once Ready: the probes cost the pods' servers CPU
    restart_backoff: float = 0.2
    max_backoff: float = 5.0
    max_grace: float = 5.0
    images: dict[str, list[str]] = field(default_factory=dict)


class PodWorker:
    def __init__(self, store: Store, key: Key, config: KubeletConfig) -> None:
        self.store = store
        self.key = key
        self.config = config
        self.ip: str | None = None
        self.process: pods.Process | None = None
        self.restarts = 0
        self.ready = False
        self.failures = 0
        self.last_exit: dict[str, Any] | None = None
        self.next_start = 0.0
        self.next_probe = 0.0
        self.waiting: tuple[str, str] | None = None
        self.transitions: dict[str, str] = {}
        self.started_at = now()
        self.pids: list[int] = []
        self.probes = 0  # readiness probes run so far, for tests that wait for a pod to stay not-Ready

    @property
    def log(self) -> Path:
        return self.config.logs / f"{self.key[1]}_{self.key[2]}.log"

    async def run(self) -> None:
        try:
            while True:
                changed = self.store.changed()
                pod = self.store.get(self.key)
                if pod is None:
                    return
                if pod.get("metadata", {}).get("deletionTimestamp"):
                    await self._terminate(pod)
                    return
                await self._step(pod)
                await until_set(changed, self.config.probe_interval)
        finally:
            if self.process is not None:
                self.process.kill()
            if self.ip is not None:
                pods.release_ip(self.ip)

    async def _step(self, pod: Obj) -> None:
        containers = (pod.get("spec") or {}).get("containers") or [None]
        container = containers[0]
        if not isinstance(container, dict):  # only the unwrapped emulator lets such a pod in
            self.waiting = ("InvalidSpec", "the pod has no container to run")
            self._write_status(pod, {})
            return
        if self.ip is None:
            try:
                self.ip = pods.allocate_ip(pods.container_ports(container))
            except pods.PortConflict as exc:
                self.waiting = ("PortConflict", str(exc))
                self._write_status(pod, container)
                return
        if self.process is not None and (code := self.process.exit_code()) is not None:
            self._exited(code)
        if self.process is None and time.monotonic() >= self.next_start:
            self._start(pod, container)
        if self.process is not None and (not self.ready or time.monotonic() >= self.next_probe):
            passed = await pods.probe(self.ip, container)
            self.probes += 1
            self.next_probe = time.monotonic() + self.config.ready_probe_interval
            self.failures = 0 if passed else self.failures + 1
            threshold = int((container.get("readinessProbe") or {}).get("failureThreshold", 3))
            self.ready = passed or (self.ready and self.failures < threshold)
        self._write_status(pod, container)

    def _start(self, pod: Obj, container: Obj) -> None:
        assert self.ip is not None
        env = pods.pod_env(pod, container, self.ip, self.config.node)
        argv = pods.argv_for(container, env, self.config.images)
        if argv is None:
            self.waiting = (
                "NoCommand",
                f"the test bed cannot run image {container.get('image')!r}: the container has no command",
            )
            self.next_start = float("inf")
            return
        full_env = {**os.environ, **env, "KUBE_TESTBED_POD_IP": self.ip}
        full_env["LD_PRELOAD"] = " ".join(p for p in (str(self.config.podnet), os.environ.get("LD_PRELOAD", "")) if p)
        try:
            self.process = pods.Process(argv, full_env, self.log, container.get("workingDir") or self.config.cwd)
        except OSError as exc:
            self.waiting = ("RunContainerError", f"{argv[0]}: {exc}")
            self._back_off()
            return
        self.pids.append(self.process.pid)
        self.waiting = None
        self.failures = 0

    def _exited(self, code: int) -> None:
        assert self.process is not None
        self.last_exit = {
            "terminated": {
                "exitCode": code if code >= 0 else 128 - code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.process.started)),
                "finishedAt": now(),
            }
        }
        self.process.kill()
        self.process = None
        self.ready = False
        self.restarts += 1
        self.waiting = ("CrashLoopBackOff", f"back-off restarting the container (exit code {code})")
        self._back_off()

    def _back_off(self) -> None:
        delay = min(self.config.restart_backoff * 2 ** max(self.restarts - 1, 0), self.config.max_backoff)
        self.next_start = time.monotonic() + delay

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Signal the running process group (a crash, for SIGKILL); return the pid signalled."""
        if self.process is None:
            raise RuntimeError(f"pod {self.key[2]} has no running process")
        self.process.signal(sig)
        return self.process.pid

    async def _terminate(self, pod: Obj) -> None:
        if self.process is not None:
            grace = float(pod["metadata"].get("deletionGracePeriodSeconds", 30))
            await self.process.stop(min(grace, self.config.max_grace))
            self.process = None
        if self.store.get(self.key) is not None:
            self.store.remove(self.key)

    def _condition(self, kind: str, status: bool) -> Obj:
        value = "True" if status else "False"
        if not self.transitions.get(kind, "").startswith(value):
            self.transitions[kind] = f"{value}@{now()}"
        return {"type": kind, "status": value, "lastTransitionTime": self.transitions[kind].split("@", 1)[1]}

    def _write_status(self, pod: Obj, container: Obj) -> None:
        running = self.process is not None
        state: Obj
        if running:
            assert self.process is not None
            started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.process.started))
            state = {"running": {"startedAt": started}}
        else:
            reason, message = self.waiting or ("ContainerCreating", "")
            state = {"waiting": {"reason": reason, "message": message}}
        main = {
            "name": container.get("name", "main"),
            "image": container.get("image", ""),
            "imageID": "",
            "ready": self.ready,
            "started": running,
            "restartCount": self.restarts,
            "state": state,
            "lastState": self.last_exit or {},
        }
        others = [
            {
                "name": c.get("name", ""),
                "image": c.get("image", ""),
                "imageID": "",
                "ready": True,
                "restartCount": 0,
                "state": {"running": {}},
            }
            for c in (pod.get("spec") or {}).get("containers", [])[1:]
        ]
        status = {
            "phase": "Running" if running or self.restarts else "Pending",
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.started_at,
            "qosClass": "BestEffort",
            "conditions": [
                self._condition("PodScheduled", True),
                self._condition("Initialized", True),
                self._condition("ContainersReady", self.ready),
                self._condition("Ready", self.ready),
            ],
            "containerStatuses": [main, *others],
        }
        if self.ip is not None:
            status.update(podIP=self.ip, podIPs=[{"ip": self.ip}])
        if self.process is not None:
            main["containerID"] = f"testbed://{self.process.pid}"
        if pod.get("status") != status:
            updated = copy.deepcopy(pod)
            updated["status"] = status
            self.store.replace(self.key, updated)
