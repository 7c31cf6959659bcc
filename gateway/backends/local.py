"""The embedded backend: each replica is a local process listening on a loopback port."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from gateway.backends import reaper
from gateway.backends.base import EndpointListener, InFlight, RevisionStatus
from gateway.backends.local_ports import covering
from gateway.backends.local_state import LocalReplica, LocalRevision
from gateway.backends.probe import Prober
from gateway.backends.process import ReplicaProcess, describe_exit, free_port, log_tail, starting_hint
from gateway.config.model import RevisionSpec, ServiceSpec
from gateway.types import Endpoint, EndpointSet, RevisionKey

log = logging.getLogger(__name__)

DRAIN_POLL = 0.02  # seconds between two looks at a draining replica's in-flight count (the router keeps no waiters)


class LocalBackend:
    """Runs each revision's `command` as local processes on free loopback ports.

    `in_flight(endpoint)` (from the router) tells how many requests a replica still serves;
    a replica being scaled down leaves the ready set, then is polled until that count is 0
    (at most `grace_period`), then SIGTERM to its process group, SIGKILL `grace_period` later.
    `clock` and `sleep` time probes, drains and back-offs (tests pass their own).
    """

    def __init__(
        self,
        state_dir: str | Path,
        *,
        grace_period: float = 10.0,
        probe_interval: float = 0.02,
        probe_period: float = 1.0,
        probe_timeout: float = 1.0,
        failure_threshold: int = 3,
        start_timeout: float = 120.0,
        not_ready_note: float = 5.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        backoff_reset: float = 60.0,
        in_flight: InFlight | None = None,
        planes: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        prober: Prober | None = None,
    ) -> None:
        self._state_dir = Path(state_dir)
        self._grace = grace_period
        self._probe_interval = probe_interval
        self._probe_period = probe_period
        self._failure_threshold = failure_threshold
        self._start_timeout = start_timeout
        self._not_ready_note = not_ready_note  # first note of a starting replica's failing probe, then every 30 s
        self._backoff = (backoff_initial, backoff_max, backoff_reset)
        self._in_flight = in_flight
        self._planes = planes  # data planes dividing each replica's concurrency (workers, shared instances)
        self._clock = clock
        self._sleep = sleep
        self._prober = prober or Prober(timeout=probe_timeout)
        self._lock = reaper.StateLock(self._state_dir)
        self._revs: dict[RevisionKey, LocalRevision] = {}
        self._services: dict[tuple[str, str], ServiceSpec] = {}
        self._listeners: list[EndpointListener] = []
        self._ports: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False
        self._closed = False

    async def start(self) -> None:
        """Lock the state directory and kill replicas a previous run left behind (idempotent)."""
        if self._started:
            return
        self._lock.acquire()
        self._started = True
        await reaper.reap(self._state_dir, grace=min(self._grace, 5.0))

    async def sync(self, services: Sequence[ServiceSpec]) -> None:
        current = self._services
        wanted = {svc.ident for svc in services}
        changed = [svc for svc in services if current.get(svc.ident) is not svc]
        await self.update(changed, [svc for ident, svc in current.items() if ident not in wanted])

    async def update(self, changed: Sequence[ServiceSpec], removed: Sequence[ServiceSpec]) -> None:
        """O(changed): an unchanged service is not looked at (it is the same object as last time)."""
        await self.start()
        gone = [svc.key(rev.name) for svc in removed for rev in svc.revisions()]
        for svc in removed:
            self._services.pop(svc.ident, None)
        wanted: dict[RevisionKey, RevisionSpec] = {}
        for svc in changed:
            old = self._services.get(svc.ident)
            if old is not None:
                keep = {rev.name for rev in svc.revisions()}
                gone += [old.key(rev.name) for rev in old.revisions() if rev.name not in keep]
            self._services[svc.ident] = svc
            wanted.update((svc.key(rev.name), rev) for rev in svc.revisions())
        for key in gone:
            rev = self._revs.pop(key, None)
            if rev is None:
                continue
            rev.desired = 0
            rev.cancel_timer()
            self._reconcile(rev)
            rev.forgotten = True
        for key, spec in wanted.items():
            rev = self._revs.get(key)
            if rev is None:
                self._revs[key] = LocalRevision(key, spec)
            elif rev.spec != spec:
                before = rev.fingerprint
                rev.spec = spec
                if rev.fingerprint != before:
                    rev.failures, rev.backoff_until, rev.message = 0, 0.0, None
                    rev.last_crash = float("-inf")
                    rev.cancel_timer()
                self._reconcile(rev)

    async def scale(self, key: RevisionKey, replicas: int) -> None:
        rev = self._revs.get(key)
        if rev is None:
            log.debug("scale(%s) ignored: unknown revision", key)
            return
        await self.start()
        rev.desired = max(0, replicas)
        self._reconcile(rev)

    def ready_endpoints(self, key: RevisionKey) -> EndpointSet:
        rev = self._revs.get(key)
        return rev.endpoints if rev is not None else frozenset()

    def watch(self, listener: EndpointListener) -> None:
        self._listeners.append(listener)

    def status(self, key: RevisionKey) -> RevisionStatus:
        rev = self._revs.get(key)
        if rev is None:
            return RevisionStatus(0, 0, "unknown", "no such revision")
        ready = len(rev.endpoints)
        if rev.spec.command is None:
            return RevisionStatus(
                rev.desired, ready, "failed", "no command to run (the local backend runs commands, not container images)"
            )
        recent = self._clock() - rev.last_crash < self._backoff[2]
        if recent and ready < rev.desired:
            return RevisionStatus(rev.desired, ready, "crash-backoff", rev.message)
        if ready != rev.desired or any(replica.stopping for replica in rev.replicas):
            return RevisionStatus(rev.desired, ready, "scaling", rev.starting if ready < rev.desired else None)
        return RevisionStatus(rev.desired, ready)

    def pids(self, key: RevisionKey) -> list[int]:
        """Process ids of a revision's live replicas (for diagnostics and tests)."""
        rev = self._revs.get(key)
        if rev is None:
            return []
        return [replica.process.pid for replica in rev.replicas if replica.process is not None and not replica.process.exited]

    async def close(self) -> None:
        self._closed = True
        for rev in self._revs.values():
            rev.desired = 0
            rev.cancel_timer()
            self._reconcile(rev)
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._prober.close()
        self._lock.release()

    # reconciliation

    def _reconcile(self, rev: LocalRevision) -> None:
        active = [replica for replica in rev.replicas if not replica.stopping]
        fresh = [replica for replica in active if replica.fingerprint == rev.fingerprint]
        stale = [replica for replica in active if replica.fingerprint != rev.fingerprint]
        for replica in sorted(fresh, key=self._stop_order)[: max(0, len(fresh) - rev.desired)]:
            self._stop(rev, replica)
        missing = rev.desired - len(fresh)
        if missing > 0 and rev.spec.command is not None and not self._closed and not rev.forgotten:
            wait = rev.backoff_until - self._clock()
            if wait > 0:
                if rev.timer is None:
                    rev.timer = self._spawn(self._after_backoff(rev, wait), f"back-off {rev.key}")
            else:
                for _ in range(missing):
                    self._start(rev)
        # rolling replacement: an old replica goes once a new one is ready to take its place
        keep = max(0, rev.desired - sum(replica.ready for replica in fresh))
        for replica in sorted(stale, key=self._stop_order)[: max(0, len(stale) - keep)]:
            self._stop(rev, replica)

    async def _after_backoff(self, rev: LocalRevision, wait: float) -> None:
        await self._sleep(wait)
        rev.timer = None
        if not rev.forgotten:
            self._reconcile(rev)

    def _stop_order(self, replica: LocalReplica) -> tuple[bool, int, float]:
        # newest not-ready first, then the least loaded
        return (replica.ready, self._load(replica) if replica.ready else 0, -replica.created)

    def _load(self, replica: LocalReplica) -> int:
        if self._in_flight is None:
            return 0
        try:
            return self._in_flight(replica.endpoint)
        except Exception:
            log.exception("in_flight(%s) failed", replica.endpoint)
            return 0

    def _start(self, rev: LocalRevision) -> None:
        used = {replica.slot for replica in rev.replicas}
        slot = next(n for n in range(len(used) + 1) if n not in used)
        port = free_port(self._ports, self._covering(rev))
        self._ports.add(port)
        replica = LocalReplica(slot, Endpoint("127.0.0.1", port), rev.fingerprint, self._clock())
        rev.replicas.append(replica)
        self._spawn(self._life(rev, replica), f"replica {rev.key}-{slot}")

    def _covering(self, rev: LocalRevision) -> Callable[[int], bool] | None:
        svc = self._services.get((rev.key.namespace, rev.key.service))
        cc = svc.scaling.container_concurrency if svc is not None else 0
        planes = self._planes() if self._planes is not None else 1
        return covering([replica.endpoint for replica in rev.replicas], cc, planes)

    def _spawn(self, work: Awaitable[None], name: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    @staticmethod
    def _probe_done(task: asyncio.Future[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("readiness prober failed", exc_info=task.exception())

    def _stop(self, rev: LocalRevision, replica: LocalReplica) -> None:
        replica.stopping = True
        replica.stop.set()
        self._set_ready(rev, replica, False)

    def _set_ready(self, rev: LocalRevision, replica: LocalReplica, ready: bool) -> None:
        replica.ready = ready
        endpoints = frozenset(r.endpoint for r in rev.replicas if r.ready and not r.stopping)
        if endpoints == rev.endpoints:
            return
        rev.endpoints = endpoints
        if rev.forgotten:
            return
        for listener in list(self._listeners):
            try:
                listener(rev.key, endpoints)
            except Exception:
                log.exception("endpoint listener failed for %s", rev.key)

    # one replica's life

    async def _life(self, rev: LocalRevision, replica: LocalReplica) -> None:
        key = rev.key
        log_path = self._state_dir / "logs" / f"{key.namespace}_{key.service}-{key.revision}-{replica.slot}.log"
        try:
            proc = await ReplicaProcess.spawn(rev.spec, replica.endpoint.port, log_path, state_dir=self._state_dir)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            self._release(rev, replica)
            if not replica.stopping:
                self._crashed(rev, replica, f"replica failed to start: {exc}", [])
            self._reconcile(rev)
            return
        replica.process = proc
        reaper.record(self._state_dir, proc.pid, proc.pgid, proc.argv, str(key))
        exited = asyncio.ensure_future(proc.proc.wait())
        stopped = asyncio.ensure_future(replica.stop.wait())
        probing = asyncio.ensure_future(self._probe(rev, replica, proc))
        probing.add_done_callback(self._probe_done)
        try:
            await asyncio.wait({exited, stopped}, return_when=asyncio.FIRST_COMPLETED)
            probing.cancel()
            if not exited.done():
                await self._drain(replica)
                await proc.terminate(self._grace)
            await exited
        except asyncio.CancelledError:
            proc.signal(signal.SIGKILL)
            raise
        finally:
            for task in (probing, stopped, exited):
                task.cancel()
            # stragglers of the group (children of a shell, say) go with the replica
            proc.signal(signal.SIGKILL)
            reaper.forget(self._state_dir, proc.pid)
            self._release(rev, replica)
        if not replica.stopping:
            reason = replica.failure or describe_exit(exited.result())
            self._crashed(rev, replica, reason, log_tail(proc.log_path))
        self._reconcile(rev)

    async def _probe(self, rev: LocalRevision, replica: LocalReplica, proc: ReplicaProcess) -> None:
        started = self._clock()
        note_at = self._not_ready_note
        while not proc.exited:
            ok = await self._prober.check(replica.endpoint.port, rev.spec.readiness_path)
            waited = self._clock() - started
            if ok is False and not replica.was_ready and waited >= note_at:
                note_at = waited + 30.0
                self._note_not_ready(rev, replica, proc, waited)
            if replica.stopping or proc.exited:
                return
            # ok None: the gateway could not probe (out of descriptors), the replica is not to blame
            if ok:
                self._probe_passed(rev, replica, waited)
            elif ok is False and not self._probe_failed(rev, replica, proc, waited):
                return
            await self._sleep(self._probe_period if replica.was_ready else self._probe_interval)

    def _note_not_ready(self, rev: LocalRevision, replica: LocalReplica, proc: ReplicaProcess, waited: float) -> None:
        path = rev.spec.readiness_path
        port = replica.endpoint.port
        probed = f"GET http://127.0.0.1:{port}{path}" if path else f"a TCP connect to 127.0.0.1:{port}"
        rev.starting = f"replica not ready after {waited:.0f}s: {probed} fails ({starting_hint(proc.log_path)})"
        log.warning("%s: %s", rev.key, rev.starting)

    def _probe_passed(self, rev: LocalRevision, replica: LocalReplica, waited: float) -> None:
        replica.probe_failures = 0
        if replica.ready:
            return
        if not replica.was_ready:
            replica.was_ready = True
            rev.starting = None
            log.info("%s replica on %s ready after %.3fs", rev.key, replica.endpoint, waited)
            if rev.message is not None:
                log.info("%s: recovered from crash back-off (last failure: %s)", rev.key, rev.message)
                rev.message = None
        self._set_ready(rev, replica, True)
        self._reconcile(rev)

    def _probe_failed(self, rev: LocalRevision, replica: LocalReplica, proc: ReplicaProcess, waited: float) -> bool:
        """Count a failed probe; False when the replica never got ready in time and was killed."""
        if replica.ready:
            replica.probe_failures += 1
            if replica.probe_failures >= self._failure_threshold:
                log.warning("%s replica on %s failed %d readiness probes", rev.key, replica.endpoint, replica.probe_failures)
                self._set_ready(rev, replica, False)
        elif not replica.was_ready and waited > self._start_timeout:
            replica.failure = f"replica not ready after {self._start_timeout:g}s"
            proc.signal(signal.SIGKILL)
            return False
        return True

    async def _drain(self, replica: LocalReplica) -> None:
        """Wait until the replica serves no request any more, at most the grace period."""
        if self._in_flight is None or not replica.was_ready:
            return
        deadline = self._clock() + self._grace
        while self._load(replica) > 0 and self._clock() < deadline:
            await self._sleep(DRAIN_POLL)

    def _release(self, rev: LocalRevision, replica: LocalReplica) -> None:
        if replica in rev.replicas:
            rev.replicas.remove(replica)
        self._ports.discard(replica.endpoint.port)
        self._set_ready(rev, replica, False)

    def _crashed(self, rev: LocalRevision, replica: LocalReplica, reason: str, tail: list[str]) -> None:
        initial, ceiling, reset = self._backoff
        now = self._clock()
        if now - replica.created >= reset:
            rev.failures = 0
        rev.failures += 1
        delay = min(ceiling, initial * 2 ** min(rev.failures - 1, 30))
        rev.backoff_until = now + delay
        rev.last_crash = now
        rev.message = f"{reason}: {tail[-1]}" if tail else reason
        log.warning(
            "%s: %s; restarting in %gs%s",
            rev.key,
            reason,
            delay,
            "".join(f"\n  | {line}" for line in tail),
        )
        rev.cancel_timer()
