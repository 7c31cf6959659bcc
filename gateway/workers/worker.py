"""A worker process: the data plane alone, on the shared port, its endpoints and reloads from the supervisor.

``python -m gateway worker --hub PATH --index I --parent PID --listen HOST:PORT -f ...`` (started by
the supervisor, not by users). Runs the proxy, the revisions' runtimes and routes built from the
same config files as the supervisor; its stats, load and counters go to the supervisor through the
hub. It drains and exits on SIGTERM/SIGINT, when the hub closes, or when the supervisor dies
(PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from gateway.app import default_state_dir, settle_heap
from gateway.autoscale.scaler import Autoscaler
from gateway.config import ConfigError, load
from gateway.config.addresses import split_hostport
from gateway.config.model import Config
from gateway.errors import GatewayError
from gateway.reconcile import ApplyReport, Reconciler, Runtimes
from gateway.rollouts.redis_store import RedisRolloutStore
from gateway.rollouts.resolver import Rollouts
from gateway.router.revision import RevisionHooks
from gateway.router.routes import RouteTable
from gateway.router.server import ProxyServer
from gateway.types import Endpoint, EndpointSet, RevisionKey
from gateway.workers.feed import EndpointFeed, FeedBackends, endpoints_in
from gateway.workers.protocol import Message, endpoint_out, frame, key_in, read_frame
from gateway.workers.report import Publisher

log = logging.getLogger("gateway.worker")

REPORT_EVERY = 1.0
_PR_SET_PDEATHSIG = 1


class WorkerAutoscaler(Autoscaler):
    """Never runs: it holds the revisions' stats for the data plane. A poke goes to the supervisor."""

    def __init__(self, backends: FeedBackends, publisher: Publisher) -> None:
        super().__init__(backends)
        self._publisher = publisher

    def poke(self, key: RevisionKey) -> None:
        self._publisher.poke(key, time.monotonic())


class WorkerPlane:
    """The worker's composition root: proxy, runtimes and routes, fed by the supervisor."""

    def __init__(self, config: Config, paths: Sequence[str], state_dir: str | None = None) -> None:
        self.config = config
        self.paths = list(paths)
        self.namespace = config.namespace
        # InferenceServices numbered as the supervisor stored them (read only: it resolved the same files first)
        self.rollouts = Rollouts(
            Path(state_dir or config.gateway.state_dir or default_state_dir(config.gateway.listen)),
            redis=partial(RedisRolloutStore, config.gateway.redis or ""),
            read_only=True,
        )
        self.proxy = ProxyServer(RouteTable({}, {}), config.gateway.proxy)
        self._runtimes = Runtimes()
        self.runtimes = self._runtimes.live
        self.publisher = Publisher(self.runtimes, self.proxy)
        self.feed = EndpointFeed()
        self.backends = FeedBackends(self.feed, self.runtimes, self._endpoints_changed)
        self.autoscaler = WorkerAutoscaler(self.backends, self.publisher)
        hooks = RevisionHooks(on_endpoint_dropped=self.proxy.pools.drop, backend_state=self.feed.state)
        self.reconciler = Reconciler(
            config.gateway,
            runtimes=self._runtimes,
            backends=self.backends,
            autoscaler=self.autoscaler,
            proxy=self.proxy,
            hooks=hooks,
        )
        self.share: tuple[int, int] | None = None
        self.also: tuple[tuple[int, int], ...] = ()

    def _endpoints_changed(self, key: RevisionKey, endpoints: EndpointSet) -> None:
        if key in self.autoscaler:
            self.autoscaler.stats(key).has_replicas = bool(endpoints)

    async def apply(self, config: Config) -> ApplyReport:
        config = await self.rollouts.resolve(config)
        self.config, report = await self.reconciler.apply(config)
        for key in self.autoscaler.keys():  # O(revisions), once per reload
            stats = self.autoscaler.stats(key)
            stats.share(self.publisher, key)
            stats.has_replicas = bool(self.feed.ready_endpoints(key))
        if self.share is not None:
            self.set_share(*self.share, self.also)
        return report

    def set_share(self, index: int, count: int, also: tuple[tuple[int, int], ...] = ()) -> None:
        self.share, self.also = (index, count), also
        for runtime in self.runtimes.values():
            runtime.set_share(index, count, also)

    async def reload(self) -> ApplyReport:
        thresholds = gc.get_threshold()
        gc.set_threshold(thresholds[0], thresholds[1], 1 << 30)
        try:
            config = await asyncio.to_thread(
                load, self.paths, every_documents=gc.freeze, previous=dict(self.reconciler.specs), namespace=self.namespace
            )
            return await self.apply(config)
        finally:
            settle_heap()
            gc.set_threshold(*thresholds)

    def close(self) -> None:
        self._runtimes.close()


class HubClient:
    """The worker's end of the hub: applies what the supervisor sends, sends reports and pokes."""

    def __init__(self, plane: WorkerPlane, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.plane = plane
        self.reader = reader
        self.writer = writer
        self._reloading = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        plane.publisher.send = self.send

    def send(self, message: Message) -> None:
        if not self.writer.is_closing():
            self.writer.write(frame(message))

    async def receive(self) -> Message | None:
        return await read_frame(self.reader)

    def handle(self, message: Message) -> None:
        kind = message["t"]
        plane = self.plane
        if kind == "endpoints":
            self._endpoints(message["items"])
        elif kind == "share":
            also = tuple((int(index), int(count)) for index, count in message.get("also") or ())
            plane.set_share(int(message["index"]), int(message["count"]), also)
        elif kind == "states":
            plane.feed.set_states({key_in(k): (str(state), msg) for k, state, msg in message["items"]})
        elif kind == "reload":
            task = asyncio.get_running_loop().create_task(self._reload(int(message["id"])))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            log.warning("unknown message %r from the supervisor", kind)

    def _endpoints(self, items: list[list[Any]]) -> None:
        feed = self.plane.feed
        for raw_key, raw_endpoints in items:
            key = key_in(raw_key)
            endpoints = endpoints_in(raw_endpoints)  # their numbers learned first
            removed: set[Endpoint] = set(feed.ready_endpoints(key) - endpoints)
            feed.set(key, endpoints)
            if removed:
                # No new request goes there now: the supervisor may drain them once these reach zero.
                self.send({"t": "replicas", "replicas": self.plane.publisher.replicas_of(key, removed)})

    async def _reload(self, rid: int) -> None:
        async with self._reloading:
            try:
                report = await self.plane.reload()
            except ConfigError as exc:
                log.error("reload refused, the previous configuration keeps serving: %s", exc)
                self.send({"t": "reloaded", "id": rid, "ok": False, "error": str(exc)})
                return
            except Exception as exc:
                log.exception("reload failed")
                self.send({"t": "reloaded", "id": rid, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
                return
            log.debug("reloaded: %s", report)
            self.send({"t": "reloaded", "id": rid, "ok": True, "error": None})

    async def listen(self, stop: asyncio.Event) -> None:
        """Apply the supervisor's messages until the hub closes (the supervisor is gone): then stop."""
        try:
            while (message := await self.receive()) is not None:
                self.handle(message)
        except Exception:
            log.exception("the hub connection failed")
        finally:
            stop.set()

    async def report_forever(self) -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY)
            self.send(self.plane.publisher.report(time.monotonic()))


def _die_with_parent(parent: int) -> None:
    """SIGTERM (a drain) when the supervisor dies; exit at once if it already has."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        sys.exit(1)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gateway worker", description="a data-plane worker (started by `gateway serve --workers`)"
    )
    parser.add_argument("-f", "--file", dest="files", action="append", required=True)
    parser.add_argument("--hub", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--state-dir", default=None, help="the supervisor's: where it keeps the rollout records")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("-n", "--namespace", default=None, help="the supervisor's `serve -n`")
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    _die_with_parent(args.parent)
    logging.basicConfig(
        level=args.log_level.upper(), format=f"%(asctime)s %(levelname)s worker {args.index} %(name)s: %(message)s"
    )
    try:
        config = load(args.files, namespace=args.namespace)
    except ConfigError as exc:
        print(f"gateway: worker {args.index}: cannot start: {exc}", file=sys.stderr)
        return 1
    from gateway.resources import raise_fd_limit

    raise_fd_limit()
    import uvloop

    return uvloop.run(_run(config, args))


async def _run(config: Config, args: argparse.Namespace) -> int:
    plane = WorkerPlane(config, args.files, args.state_dir)
    try:
        await plane.apply(config)
    except GatewayError as exc:  # a rollout record that cannot be read
        print(f"gateway: worker {args.index}: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        reader, writer = await asyncio.open_unix_connection(args.hub)
    except OSError as exc:
        print(f"gateway: worker {args.index}: cannot reach the supervisor at {args.hub}: {exc}", file=sys.stderr)
        return 1
    client = HubClient(plane, reader, writer)
    client.send({"t": "hello", "index": args.index, "pid": os.getpid()})
    while True:  # the supervisor answers hello with the share, the states and the endpoints snapshot
        message = await client.receive()
        if message is None:
            return 1
        client.handle(message)
        if message["t"] == "endpoints":
            break
    host, port = split_hostport(args.listen, "listen")
    try:
        plane.proxy.bind(host, port, reuse_port=True)
    except GatewayError as exc:
        print(f"gateway: worker {args.index}: cannot start: {exc}", file=sys.stderr)
        return 1
    settle_heap()
    await plane.proxy.start()
    client.send({"t": "listening", "addresses": [endpoint_out(Endpoint(h, p)) for h, p in plane.proxy.sockets]})
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)  # reloads come from the supervisor, all workers at once
    listening = loop.create_task(client.listen(stop))
    reporting = loop.create_task(client.report_forever())
    await stop.wait()
    await plane.proxy.drain(plane.config.gateway.proxy.drain_timeout)
    reporting.cancel()
    client.send(plane.publisher.report(time.monotonic()))  # the last counts, so the totals miss nothing
    listening.cancel()
    await asyncio.gather(listening, reporting, return_exceptions=True)
    writer.close()
    plane.close()
    return 0
