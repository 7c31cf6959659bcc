"""The supervisor's end of the hub: one link per worker, and the whole's figures added up from them.

Worker seconds go into the supervisor's deciders (``record_remote``; one machine, one monotonic
clock), pokes to its autoscaler. What the admin listener reads is written into the supervisor's own
runtimes, which serve no requests: each revision's counters are the sum over the workers (plus those
of workers that died, so counters never go back), its replicas' in-flight counts and its queue the
sum of the workers' last reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.router.cycle import UNAVAILABLE
from gateway.router.revision import COLD_START_BUCKETS, DURATION_BUCKETS, Histogram
from gateway.types import ConnectionsView, Endpoint, EndpointSet, RevisionKey
from gateway.workers.feed import endpoints_out
from gateway.workers.protocol import Message, ProtocolError, endpoint_in, frame, key_in, key_out, read_frame

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger("gateway.workers")

Counters = tuple[dict[int, int], list[int], float, list[int] | None, float]
"""A revision's (codes, duration bucket counts, duration sum, cold-start bucket counts, cold-start sum)."""


class WorkerLink:
    """One connected worker and what it last reported."""

    def __init__(self, index: int, pid: int, writer: asyncio.StreamWriter) -> None:
        self.index = index
        self.pid = pid
        self.writer = writer
        self.addresses: list[tuple[str, int]] = []
        self.load: dict[RevisionKey, tuple[int, dict[Endpoint, int]]] = {}  # queued, in flight per replica
        self.replicas: dict[Endpoint, int] = {}  # in flight per replica, those that left a ready set included
        self.pending: set[Endpoint] = set()  # removals sent, their in-flight counts not reported yet
        self.counters: dict[RevisionKey, Counters] = {}
        self.unrouted: dict[int, int] = {}
        self.connections = (0, 0, 0, 0)
        self.reloads: dict[int, asyncio.Future[str | None]] = {}
        self.heard = time.monotonic()  # when it last sent anything (it reports every second)

    def send(self, message: Message) -> None:
        if not self.writer.is_closing():
            self.writer.write(frame(message))


def _add(into: dict[Any, int], more: dict[Any, int]) -> None:
    for k, n in more.items():
        into[k] = into.get(k, 0) + n


def _sum_lists(into: list[int], more: list[int]) -> None:
    for i, n in enumerate(more):
        into[i] += n


def _histogram(bounds: tuple[float, ...], counts: list[int], total: float) -> Histogram:
    h = Histogram(bounds)
    h.counts = counts
    h.sum = total
    h.count = sum(counts)
    return h


class Hub:
    """Listens on a Unix socket for the workers; passes endpoints, shares and reloads out, adds reports up."""

    def __init__(self, gateway: Gateway, path: Path, workers: int) -> None:
        self._gateway = gateway
        self.path = path
        self.workers = workers
        self.links: dict[int, WorkerLink] = {}
        self.planes = (0, workers)  # (offset, total): worker i is data plane offset + i of total
        self.also: tuple[tuple[int, int], ...] = ()  # (offset, total) pairs still in force while instances renumber
        self.sent: dict[RevisionKey, EndpointSet] = {}  # the endpoints the workers were told
        self.states: dict[RevisionKey, tuple[str, str | None]] = {}
        self.on_listening: Callable[[], None] = lambda: None
        self._gone_counters: dict[RevisionKey, Counters] = {}  # of workers that exited
        self._gone_unrouted: dict[int, int] = {}
        self._gone_connections = [0, 0]
        self._server: asyncio.Server | None = None
        self._reload_ids = 0

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self.links.values()):
            link.writer.close()
        if self.path.exists():
            self.path.unlink()
        if self.path.parent.name.startswith("gateway-workers-"):  # hub_path's private temporary folder
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()

    # -- what the admin side reads ---------------------------------------------------------------
    def addresses(self) -> list[tuple[str, int]]:
        for link in self.links.values():
            if link.addresses:
                return link.addresses
        return []

    def listening(self) -> int:
        return sum(1 for link in self.links.values() if link.addresses)

    def in_flight(self, endpoint: Endpoint) -> int:
        """Requests a replica still serves, over every worker (for the local backend's drain)."""
        total = 0
        for link in self.links.values():
            total += link.replicas.get(endpoint, 0)
            if endpoint in link.pending:
                total += 1  # not heard yet: assume busy
        return total

    def connections_view(self) -> ConnectionsView:
        links = self.links.values()
        return ConnectionsView(
            open=sum(link.connections[0] for link in links),
            limit=sum(link.connections[1] for link in links),
            limit_reached=self._gone_connections[0] + sum(link.connections[2] for link in links),
            accept_shortages=self._gone_connections[1] + sum(link.connections[3] for link in links),
        )

    # -- supervisor -> workers -------------------------------------------------------------------
    def publish(self, key: RevisionKey, endpoints: EndpointSet) -> None:
        """Tell the workers a revision's ready endpoints changed (the backends' listener and every apply)."""
        self.publish_many([(key, endpoints)])

    def publish_many(self, items: Iterable[tuple[RevisionKey, EndpointSet]]) -> None:
        changed: list[object] = []
        removed: set[Endpoint] = set()
        for key, endpoints in items:
            before = self.sent.get(key, frozenset())
            if before == endpoints:
                continue
            removed |= before - endpoints
            if endpoints:
                self.sent[key] = endpoints
            else:
                self.sent.pop(key, None)
            changed.append([key_out(key), endpoints_out(endpoints)])
        if not changed:
            return
        message = {"t": "endpoints", "items": changed}
        for link in self.links.values():
            link.pending |= removed
            link.send(message)

    def publish_states(self) -> None:
        """The revisions a worker should answer at once instead of queueing (failed, crash-looping)."""
        backends = self._gateway.revision_backends
        states: dict[RevisionKey, tuple[str, str | None]] = {}
        for key in self._gateway.runtimes:
            status = backends.status(key)
            if status.state in UNAVAILABLE:
                states[key] = (status.state, status.message)
        if states != self.states:
            self.states = states
            message = self._states_message()
            for link in self.links.values():
                link.send(message)

    def _states_message(self) -> Message:
        return {"t": "states", "items": [[key_out(k), state, msg] for k, (state, msg) in self.states.items()]}

    def set_planes(self, offset: int, total: int, also: tuple[tuple[int, int], ...] = ()) -> None:
        """Worker i admits its share as data plane ``offset + i`` of ``total`` (several machines: Redis); while
        the instances renumber, also as ``offset' + i`` of ``total'`` for each pair in ``also`` (the least)."""
        for first, count in ((offset, total), *also):
            if first < 0 or count < first + self.workers:
                raise ValueError(f"planes {first}..{first + self.workers - 1} do not fit in {count}")
        self.planes, self.also = (offset, total), also
        for link in self.links.values():
            link.send(self._share(link.index))

    def _share(self, index: int) -> Message:
        offset, total = self.planes
        also = [[first + index, count] for first, count in self.also]
        return {"t": "share", "index": offset + index, "count": total, "also": also}

    async def reload_workers(self, within: float) -> list[str]:
        """Every connected worker re-reads the files; what went wrong, per worker."""
        self._reload_ids += 1
        rid = self._reload_ids
        loop = asyncio.get_running_loop()
        waits: dict[int, asyncio.Future[str | None]] = {}
        for link in self.links.values():
            waits[link.index] = link.reloads[rid] = loop.create_future()
            link.send({"t": "reload", "id": rid})
        problems = []
        for index, fut in waits.items():
            try:
                async with asyncio.timeout(within):
                    error = await fut
            except TimeoutError:
                error = f"no answer within {within:g}s"
            if error:
                problems.append(f"worker {index}: reload failed, it keeps its previous configuration: {error}")
        return problems

    # -- workers -> supervisor -------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link: WorkerLink | None = None
        try:
            hello = await read_frame(reader)
            if hello is None or hello["t"] != "hello":
                raise ProtocolError("the first message is not hello")
            link = WorkerLink(int(hello["index"]), int(hello["pid"]), writer)
            old = self.links.get(link.index)
            if old is not None:
                self._forget(old)
            self.links[link.index] = link
            link.send(self._share(link.index))
            link.send(self._states_message())
            link.send({"t": "endpoints", "items": [[key_out(k), endpoints_out(eps)] for k, eps in self.sent.items()]})
            while (message := await read_frame(reader)) is not None:
                self._handle(link, message)
        except (ProtocolError, ConnectionError, KeyError, TypeError, ValueError, AttributeError) as exc:
            # a frame of the wrong shape (not from a worker of this version): said, and the link dropped
            log.warning("hub: dropping a worker's connection: %s: %s", type(exc).__name__, exc)
        finally:
            if link is not None and self.links.get(link.index) is link:
                self._forget(link)
            writer.close()

    def _handle(self, link: WorkerLink, message: Message) -> None:
        link.heard = time.monotonic()
        kind = message["t"]
        if kind == "report":
            self._record(message["stats"])
            self._report(link, message)
        elif kind == "poke":
            key = key_in(message["key"])
            self._record([[message["key"], message["stats"]]])
            self._gateway.autoscaler.poke(key)
        elif kind == "replicas":
            for raw, n in message["replicas"]:
                endpoint = endpoint_in(raw)
                link.pending.discard(endpoint)
                if n:
                    link.replicas[endpoint] = int(n)
                else:
                    link.replicas.pop(endpoint, None)
        elif kind == "listening":
            link.addresses = [(str(h), int(p)) for h, p in message["addresses"]]
            self.on_listening()
        elif kind == "reloaded":
            fut = link.reloads.pop(int(message["id"]), None)
            if fut is not None and not fut.done():
                fut.set_result(None if message["ok"] else str(message["error"]))
        else:
            log.warning("hub: unknown message %r from worker %d", kind, link.index)

    def _record(self, items: list[Any]) -> None:
        autoscaler = self._gateway.autoscaler
        for raw_key, seconds in items:
            key = key_in(raw_key)
            if key not in autoscaler:
                continue
            stats = autoscaler.stats(key)
            for stamp, concurrency, requests in seconds:
                stats.record_remote(stamp, concurrency, requests)
            if stats.outbox is not None and seconds:
                # Shared further (several machines through Redis): this machine's load is its workers'.
                stats.outbox.extend((int(stamp), float(c), float(n)) for stamp, c, n in seconds)
                if not stats.listed and stats.sink is not None:
                    stats.listed = True
                    stats.sink.activate(stats)

    def _report(self, link: WorkerLink, message: Message) -> None:
        touched = set(link.load)
        link.load = {
            key_in(k): (int(queued), {endpoint_in(e): int(n) for e, n in per_replica})
            for k, queued, per_replica in message["load"]
        }
        touched |= set(link.load)
        link.replicas = {endpoint_in(e): int(n) for e, n in message["replicas"]}
        for k, codes, durations, dsum, cold, csum in message["counters"]:
            key = key_in(k)
            link.counters[key] = ({int(c): int(n) for c, n in codes.items()}, durations, float(dsum), cold, float(csum))
            self._mirror_counters(key)
        link.unrouted = {int(c): int(n) for c, n in message["unrouted"].items()}
        opened, limit, reached, shortages = (int(n) for n in message["connections"])
        link.connections = (opened, limit, reached, shortages)
        for key in touched:
            self._mirror_load(key)
        self._mirror_unrouted()

    def _forget(self, link: WorkerLink) -> None:
        """A worker is gone: its counters stay in the totals, its load and pending answers leave them."""
        for key, counters in link.counters.items():
            self._gone_counters[key] = self._sum([self._gone_counters.get(key), counters])
        _add(self._gone_unrouted, link.unrouted)
        self._gone_connections[0] += link.connections[2]
        self._gone_connections[1] += link.connections[3]
        keys = list(link.load)
        link.load = {}
        link.counters = {}
        for fut in link.reloads.values():
            if not fut.done():
                fut.set_result("the worker exited")
        self.links.pop(link.index, None)
        for key in keys:
            self._mirror_load(key)

    # -- the whole, written where the admin side reads it -------------------------------------------
    @staticmethod
    def _sum(parts: Iterable[Counters | None]) -> Counters:
        codes: dict[int, int] = {}
        durations = [0] * (len(DURATION_BUCKETS) + 1)
        cold = [0] * (len(COLD_START_BUCKETS) + 1)
        dsum = csum = 0.0
        for part in parts:
            if part is None:
                continue
            _add(codes, part[0])
            _sum_lists(durations, part[1])
            dsum += part[2]
            if part[3] is not None:
                _sum_lists(cold, part[3])
            csum += part[4]
        return codes, durations, dsum, cold, csum

    def _mirror_counters(self, key: RevisionKey) -> None:
        runtime = self._gateway.runtimes.get(key)
        if runtime is None:
            return
        parts = [self._gone_counters.get(key), *(link.counters.get(key) for link in self.links.values())]
        codes, durations, dsum, cold, csum = self._sum(parts)
        runtime.codes = codes
        runtime.durations = _histogram(DURATION_BUCKETS, durations, dsum)
        runtime.cold_starts = _histogram(COLD_START_BUCKETS, cold, csum) if cold and any(cold) else None

    def _mirror_load(self, key: RevisionKey) -> None:
        runtime = self._gateway.runtimes.get(key)
        if runtime is None:
            return
        queued = 0
        per_replica: dict[Endpoint, int] = {}
        for link in self.links.values():
            load = link.load.get(key)
            if load is not None:
                queued += load[0]
                _add(per_replica, load[1])
        throttler = runtime.throttler
        throttler.queued = queued
        for endpoint, tracker in throttler.trackers.items():
            tracker.in_flight = per_replica.get(endpoint, 0)

    def _mirror_unrouted(self) -> None:
        total = dict(self._gone_unrouted)
        for link in self.links.values():
            _add(total, link.unrouted)
        unrouted = self._gateway.proxy.state.unrouted
        unrouted.clear()
        unrouted.update(total)
