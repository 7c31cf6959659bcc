"""The local backend shared by several gateway instances on one machine: the leader runs the replicas and
publishes their ready endpoints through Redis; the others route to those endpoints without running any.

Each published set carries the publisher's epoch; a set from an older epoch than one already seen is
ignored, so a deposed leader's late news never overrides the new leader's. An instance that loses the
lease stops its own replicas (they drain first) and follows the new leader's; one that gains it starts
replicas as its autoscaler asks (from the counts it last saw) and publishes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.backends import Backend, EndpointListener, RevisionStatus
from gateway.config.addresses import split_hostport
from gateway.config.model import ServiceSpec
from gateway.shared.keys import Keys, decode_key, encode_key
from gateway.types import Endpoint, EndpointSet, RevisionKey

log = logging.getLogger(__name__)


def encode_endpoints(epoch: int, endpoints: EndpointSet) -> str:
    return json.dumps({"epoch": epoch, "endpoints": sorted(str(e) for e in endpoints)}, separators=(",", ":"))


MAX_ENDPOINTS = 10_000  # replicas of one revision: more is not from a gateway


def decode_endpoints(text: str | None) -> tuple[int, EndpointSet] | None:
    """(epoch, endpoints) of a published set; None when it is not one (garbage is never routed to).

    The local backend's replicas listen on 127.0.0.1 of the leader's machine, which the instances share:
    an address anywhere else is not one of them (whoever wrote it into Redis), and the whole set is refused."""
    try:
        raw = json.loads(text or "")
        epoch = int(raw["epoch"])
        items = raw["endpoints"]
        if epoch < 0 or not isinstance(items, list) or len(items) > MAX_ENDPOINTS:
            return None
        found = set()
        for item in items:
            host, port = split_hostport(str(item), "endpoint")
            if host != "127.0.0.1" or not 0 < port < 65536:
                return None
            found.add(Endpoint(host, port))
    except (ValueError, KeyError, TypeError):
        return None
    return epoch, frozenset(found)


class MirroredBackend:
    """A Backend: the inner one (run by the leader) or the leader's published endpoints (on the others)."""

    def __init__(
        self, inner: Backend, redis: Redis, keys: Keys, epoch: Callable[[], int], lease_epoch: Callable[[], int] | None = None
    ) -> None:
        self.inner = inner
        self._redis = redis
        self._keys = keys
        self._epoch = epoch  # the lease's epoch while this instance leads
        # the highest lease epoch seen: a set claiming a later one was not published by a leader (a new leader's
        # first sets may beat this instance's next heartbeat, hence a margin of two leaderships)
        self._lease_epoch = lease_epoch or epoch
        self.actuating = False
        self._mirror: dict[RevisionKey, EndpointSet] = {}
        self._epochs: dict[RevisionKey, int] = {}  # the newest epoch seen per revision (published or read)
        self._stopping: set[asyncio.Task[None]] = set()
        self._wanted: dict[RevisionKey, int] = {}
        self._listeners: list[EndpointListener] = []
        self._dirty: set[RevisionKey] = set()
        self._wake = asyncio.Event()
        self._publisher: asyncio.Task[None] | None = None
        inner.watch(self._inner_changed)

    # -- leadership -----------------------------------------------------------------------------------
    def set_actuating(self, on: bool) -> None:
        if on == self.actuating:
            return
        self.actuating = on
        if on:
            for key in list(self._mirror):
                self._tell(key, self.inner.ready_endpoints(key))
            self._mirror.clear()
            return
        loop = asyncio.get_running_loop()
        for work in [*(self.inner.scale(key, 0) for key in self._wanted), self.resync()]:
            task = loop.create_task(work)  # this instance's replicas drain and stop; the leader's are read
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    # -- Backend ----------------------------------------------------------------------------------------
    async def sync(self, services: Sequence[ServiceSpec]) -> None:
        await self.inner.sync(services)
        self._start_publisher()

    async def update(self, changed: Sequence[ServiceSpec], removed: Sequence[ServiceSpec]) -> None:
        await self.inner.update(changed, removed)
        for svc in removed:
            for rev in svc.revisions():
                self._mirror.pop(svc.key(rev.name), None)
                self._wanted.pop(svc.key(rev.name), None)
                self._epochs.pop(svc.key(rev.name), None)
        self._start_publisher()

    async def scale(self, key: RevisionKey, replicas: int) -> None:
        self._wanted[key] = replicas
        if self.actuating:
            if self._epochs.get(key) != self._epoch():
                self._dirty.add(key)  # first word of this leadership: what runs here replaces the old leader's news
                self._wake.set()
            await self.inner.scale(key, replicas)

    def ready_endpoints(self, key: RevisionKey) -> EndpointSet:
        if self.actuating:
            return self.inner.ready_endpoints(key)
        return self._mirror.get(key, frozenset())

    def watch(self, listener: EndpointListener) -> None:
        self._listeners.append(listener)

    def status(self, key: RevisionKey) -> RevisionStatus:
        if self.actuating:
            return self.inner.status(key)
        ready = len(self._mirror.get(key, ()))
        return RevisionStatus(ready, ready, "ok", "replicas run by the leader instance")

    async def close(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            await asyncio.gather(self._publisher, return_exceptions=True)
        await self.inner.close()

    # -- endpoints in and out ------------------------------------------------------------------------------
    def _tell(self, key: RevisionKey, endpoints: EndpointSet) -> None:
        for listener in self._listeners:
            listener(key, endpoints)

    def _inner_changed(self, key: RevisionKey, endpoints: EndpointSet) -> None:
        if self.actuating:
            self._tell(key, endpoints)
            self._dirty.add(key)
            self._wake.set()

    def _start_publisher(self) -> None:
        if self._publisher is None:
            self._publisher = asyncio.get_running_loop().create_task(self._publish())

    async def _publish(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            if not self.actuating or not dirty:
                continue
            epoch = self._epoch()
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key in dirty:
                        name = encode_key(key)
                        pipe.hset(self._keys.endpoints, name, encode_endpoints(epoch, self.inner.ready_endpoints(key)))
                        pipe.publish(self._keys.endpoints, name)
                        self._epochs[key] = epoch
                    await pipe.execute()
            except (RedisError, OSError, TimeoutError) as exc:
                log.debug("publishing endpoints: %s; again shortly", exc)
                self._dirty |= dirty
                await asyncio.sleep(1.0)  # Redis is away: the coordinator says so; publish again after a pause
                self._wake.set()

    async def on_message(self, channel: str, data: str) -> None:
        """The endpoints channel: a revision's set changed; read it."""
        key = decode_key(data)
        if key is None or self.actuating:
            return
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            text = await self._redis.hget(self._keys.endpoints, data)
            self._take(key, None if text is None else str(text))

    async def resync(self) -> None:
        """Every published set (on start, after losing the lease, and when Redis is back)."""
        if self.actuating:
            return
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            published = await self._redis.hgetall(self._keys.endpoints)
            for name, text in published.items():
                key = decode_key(str(name))
                if key is not None:
                    self._take(key, str(text))

    def _take(self, key: RevisionKey, text: str | None) -> None:
        found = decode_endpoints(text)
        if found is None or self.actuating:
            return
        epoch, endpoints = found
        if epoch < self._epochs.get(key, 0) or epoch > self._lease_epoch() + 2:
            return  # a deposed leader's news, or no leader's at all
        self._epochs[key] = epoch
        if self._mirror.get(key) != endpoints:
            self._mirror[key] = endpoints
            self._tell(key, endpoints)
