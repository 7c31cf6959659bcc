"""The supervisor: the control plane of ``gateway serve --workers N`` (N >= 2), serving no requests itself.

It is a Gateway (config, backends, autoscaler, reconciler, reloads, the admin listener) whose data
plane is N worker processes accepting on one address with SO_REUSEPORT. It holds the address bound
(never listening, so it takes no connections) for its whole life: a busy port is reported before
any worker starts, and nothing else can take the port while a worker restarts. A worker that exits
is started again after a back-off; SIGTERM drains the workers before the backends stop the replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from gateway.app import Gateway, default_state_dir
from gateway.config.addresses import split_hostport
from gateway.config.model import Config
from gateway.errors import GatewayError
from gateway.reconcile import ApplyReport
from gateway.router.routes import RouteTable
from gateway.router.server import ProxyServer
from gateway.types import ConnectionsView, EndpointSet, RevisionKey
from gateway.workers.hub import Hub

log = logging.getLogger("gateway.workers")

BACKOFF = (0.2, 10.0, 30.0)  # first delay, ceiling, and the life after which a worker's failures are forgotten
STATES_EVERY = 1.0
SILENT = 10.0  # seconds without a word from a worker (it reports every second) before it is taken for hung
RESUMED_GRACE = 3.0  # after the supervisor itself did not run (SIGSTOP, a stalled host), seconds before it judges again
RELOAD_TIMEOUT = 60.0


MAX_WORKERS = 256  # processes on one machine; the shared state takes no more data planes from one instance


def parse_workers(value: str) -> int:
    """``--workers``: an integer >= 1, or ``auto`` for the CPU count."""
    if value == "auto":  # the CPUs this process may run on (taskset, a container's cpuset), not the machine's
        return len(os.sched_getaffinity(0)) or 1
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"--workers must be an integer >= 1 or 'auto', got {value!r}") from None
    if not 1 <= count <= MAX_WORKERS:
        raise ValueError(f"--workers must be an integer >= 1 or 'auto' (at most {MAX_WORKERS}), got {value!r}")
    return count


def reserve(host: str, port: int) -> tuple[list[socket.socket], int]:
    """Bind (without listening) every address of `host`:`port` with SO_REUSEPORT; the port (resolved if 0)."""
    where = f"{host or '*'}:{port}"
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise GatewayError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    socks: list[socket.socket] = []
    try:
        for family, kind, proto, _, addr in infos:
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(socks) > 1:
                addr = (addr[0], socks[0].getsockname()[1], *addr[2:])
            try:
                sock.bind(addr)
            except OSError as exc:
                raise GatewayError(f"cannot listen on {where}: {exc.strerror}") from None
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks, int(socks[0].getsockname()[1])


def hub_path(state_dir: Path) -> Path:
    """The hub's socket in the state dir, or in the temporary folder when that path is too long for a socket."""
    path = state_dir / "workers.sock"
    if len(os.fsencode(path)) < 100:
        return path
    return Path(tempfile.mkdtemp(prefix="gateway-workers-")) / "hub.sock"  # a private folder: no guessable name


class SupervisorProxy(ProxyServer):
    """The supervisor's ProxyServer: never bound; it reports the workers' addresses and connections."""

    def __init__(self, config: Config) -> None:
        super().__init__(RouteTable({}, {}), config.gateway.proxy)
        self.hub: Hub | None = None

    @property
    def sockets(self) -> list[tuple[str, int]]:
        return self.hub.addresses() if self.hub is not None else []

    def connections_view(self) -> ConnectionsView:
        return self.hub.connections_view() if self.hub is not None else super().connections_view()


class Supervisor(Gateway):
    """A Gateway whose data plane is `workers` worker processes."""

    serves_data_plane = False

    def __init__(
        self,
        config: Config,
        paths: Sequence[str] = (),
        *,
        state_dir: str | Path | None = None,
        workers: int = 2,
        log_level: str = "info",
    ) -> None:
        proxy = SupervisorProxy(config)
        state = Path(state_dir or config.gateway.state_dir or default_state_dir(config.gateway.listen))
        hub = Hub(self, hub_path(state), workers)
        super().__init__(config, paths, state_dir=state, proxy=proxy, in_flight=hub.in_flight, planes=workers)
        proxy.hub = hub
        self.hub = hub
        self.rollouts.mirror = True  # records kept on Deployments are copied to the state directory for the workers
        self.workers = workers
        self.log_level = log_level
        self.revision_backends.on_endpoints = hub.publish
        self._reserved: list[socket.socket] = []
        self._keepers: list[asyncio.Task[None]] = []
        self._processes: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = False
        self._judge_after = 0.0  # monotonic time before which no worker is taken for hung (see _states_forever)
        self._listening = asyncio.Event()
        self._states: asyncio.Task[None] | None = None
        hub.on_listening = self._check_listening

    def data_planes(self) -> int:
        return self.hub.planes[1]

    def set_planes(self, offset: int, total: int, also: tuple[tuple[int, int], ...] = ()) -> None:
        """Worker i admits its share of each replica as data plane ``offset + i`` of ``total`` (and of ``also``)."""
        self.hub.set_planes(offset, total, also)

    def _check_listening(self) -> None:
        if self.hub.listening() >= self.workers:
            self._listening.set()

    async def apply(self, config: Config) -> ApplyReport:
        report = await super().apply(config)
        backends = self.revision_backends
        items: list[tuple[RevisionKey, EndpointSet]] = [(key, backends.ready_endpoints(key)) for key in self.runtimes]
        items.extend((key, frozenset()) for key in list(self.hub.sent) if key not in self.runtimes)
        self.hub.publish_many(items)  # O(revisions) per apply; only the changes are sent
        return report

    async def reload(self) -> tuple[Config, ApplyReport]:
        """The supervisor first (a bad config raises and changes nothing anywhere), then every worker."""
        config, report = await super().reload()
        report.warnings.extend(await self.hub.reload_workers(RELOAD_TIMEOUT))
        return config, report

    async def start(self, listen: str | None = None) -> None:
        host, port = split_hostport(listen or self.config.gateway.listen, "listen")
        self._reserved, port = reserve(host, port)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        await super().start(listen)
        await self.hub.start()
        self._states = asyncio.get_running_loop().create_task(self._states_forever())
        failed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._keepers = [asyncio.get_running_loop().create_task(self._keep(i, address, failed)) for i in range(self.workers)]
        listening = asyncio.ensure_future(self._all_listening())
        await asyncio.wait([listening, failed], return_when=asyncio.FIRST_COMPLETED)
        if not listening.done():
            listening.cancel()
            raise GatewayError(failed.result())

    async def _all_listening(self) -> str:
        await self._listening.wait()
        return "listening"

    def _argv(self, index: int, address: str) -> list[str]:
        argv = [sys.executable, "-m", "gateway", "worker", "--hub", str(self.hub.path), "--index", str(index)]
        argv += ["--parent", str(os.getpid()), "--listen", address, "--log-level", self.log_level]
        argv += ["--state-dir", str(self.state_dir)]  # the workers number InferenceServices as this one stored them
        if self.namespace is not None:
            argv += ["-n", self.namespace]
        for path in self.paths:
            argv += ["-f", path]
        return argv

    async def _keep(self, index: int, address: str, failed: asyncio.Future[str]) -> None:
        """Run worker `index`, starting it again when it exits (after a growing pause) until the stop."""
        first, ceiling, forget_after = BACKOFF
        delay = first
        while not self._stopping:
            started = time.monotonic()
            # Its own session: a terminal's Ctrl-C reaches the supervisor only, which drains the workers.
            proc = await asyncio.create_subprocess_exec(
                *self._argv(index, address), stdin=asyncio.subprocess.DEVNULL, start_new_session=True
            )
            self._processes[index] = proc
            code = await proc.wait()
            if self._stopping:
                return
            if not self._listening.is_set():  # before every worker listened: the start fails
                if not failed.done():
                    failed.set_result(f"worker {index} exited with code {code} before it listened")
                return
            if time.monotonic() - started > forget_after:
                delay = first
            log.warning("worker %d (pid %d) exited with code %s; starting it again in %gs", index, proc.pid, code, delay)
            await asyncio.sleep(delay)
            delay = min(ceiling, delay * 2)

    async def _states_forever(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(STATES_EVERY)
            now = time.monotonic()
            if now - last > STATES_EVERY + RESUMED_GRACE:
                # this process did not run meanwhile: the workers' silence is its own, their reports are still
                # queued on the hub; they get a few seconds to be read before anyone is taken for hung
                log.warning(
                    "the supervisor did not run for %.0f s; judging the workers again in %.0f s", now - last, RESUMED_GRACE
                )
                self._judge_after = now + RESUMED_GRACE
            last = now
            try:
                self.hub.publish_states()
                self._end_silent_workers()
            except Exception:
                log.exception("publishing revision states to the workers")

    def _end_silent_workers(self) -> None:
        """A worker that has said nothing for SILENT seconds (it reports every second) is hung or stopped: its
        connections would hang with it. It is killed, so the kernel stops giving it connections, and started again."""
        now = time.monotonic()
        if now < self._judge_after:
            return
        for link in list(self.hub.links.values()):
            proc = self._processes.get(link.index)
            if proc is None or proc.returncode is not None or proc.pid != link.pid or now - link.heard < SILENT:
                continue
            log.warning(
                "worker %d (pid %d) has not reported for %.0f s: killing it, to start it again",
                link.index,
                link.pid,
                now - link.heard,
            )
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Drain the workers (each its own connections), then stop the control plane and the replicas."""
        timeout = self.config.gateway.proxy.drain_timeout if drain_timeout is None else drain_timeout
        self._stopping = True
        self.proxy.state.draining = True
        for proc in self._processes.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM if timeout > 0 else signal.SIGKILL)
        waits = [proc.wait() for proc in self._processes.values()]
        try:
            async with asyncio.timeout(timeout + 5.0):
                await asyncio.gather(*waits)
        except TimeoutError:
            for proc in self._processes.values():
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            await asyncio.gather(*(proc.wait() for proc in self._processes.values()))
        for task in [*self._keepers, *([self._states] if self._states is not None else [])]:
            task.cancel()
        await asyncio.gather(*self._keepers, *([self._states] if self._states is not None else []), return_exceptions=True)
        await self.hub.close()
        await super().stop(drain_timeout=0)
        for sock in self._reserved:
            sock.close()
