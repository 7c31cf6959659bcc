"""Several gateway instances, one autoscaler: membership, a fenced leader lease and summed stats through Redis.

Once a second (``interval``) each instance makes one pipelined round trip: a heartbeat script
(membership, and the leader lease held, renewed or taken; see scripts.py), its finished seconds of
stats appended to a stream, and the other instances' new entries read from it. Every instance adds
every other instance's seconds to its deciders, so each decides on the revision-wide load and a new
leader's windows are already warm; only the leader (``may_act``) calls the backend.

The lease carries a fencing token (the epoch, one more per leadership). A leader acts only while the
lease it last renewed is valid by its own monotonic clock (renewal send time + TTL - margin): a leader
that was paused (SIGSTOP, a long GC, a VM migration) past its lease finds it expired when it resumes
and acts on nothing until Redis confirms it still holds the lease, which by then another instance
with a higher epoch holds.

With Redis unreachable every instance keeps routing to the endpoints it knows and scaling pauses: the
leader acts until its lease runs out by its own clock and then on nothing, since it cannot know whether
another instance (one that still reaches Redis) took the lease; the replicas stay as they are, so nothing
flaps. Back in contact, everyone rejoins; the last leader is first to run for the lease again.

An instance that did not run past the member TTL, or finds its entry gone, holds no slots until the others
have seen it back (presence.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.shared import exchange, scripts
from gateway.shared.hooks import Hooks
from gateway.shared.keys import Keys, decode_key, encode_key
from gateway.shared.presence import Presence
from gateway.shared.values import epoch_of, id_ms, planes_of, redacted
from gateway.types import RevisionKey

log = logging.getLogger(__name__)

READ_COUNT = 1000  # stream entries read per round trip
MAX_ENTRY = 2 << 20  # bytes: one instance's second for 50,000 busy revisions; more is not from a gateway
STREAM_MAXLEN = 100_000  # entries kept in the stats stream (trimmed approximately)


class Coordinator:
    def __init__(
        self,
        url: str,
        hooks: Hooks,
        outbox: exchange.StatsOutbox,
        *,
        planes: int = 1,
        keys: Keys | None = None,
        instance: str | None = None,
        interval: float = 1.0,
        member_ttl: float = 5.0,
        lease_ttl: float = 5.0,
        window: float = 60.0,
        channels: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.url = url
        self.hooks = hooks
        self.outbox = outbox
        self.planes = planes
        self.keys = keys or Keys()
        self.instance = instance or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.interval = interval
        self.member_ttl = member_ttl
        self.lease_ttl = lease_ttl
        self.window = window
        self.channels = channels
        self._clock = clock
        self._sleep = sleep
        self.server_clock = exchange.ServerClock(clock, wall)  # stats are stamped in Redis's clock on the wire
        # a round trip slower than this is an outage: well within the lease, never shorter than a beat; one
        # retry at once, so a connection the pool kept from before Redis restarted is not taken for an outage
        timeout = min(lease_ttl / 2, max(interval, 1.0))
        self.redis: Redis = Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 1), decode_responses=True
        )
        # its own client, with no retry: a subscription lost and silently made again would hide the gap in which
        # messages were missed (the caller reads the state again after every subscription)
        self._subscriber: Redis = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
            health_check_interval=max(1, round(lease_ttl)),  # a PING now and then finds a connection that died silently
        )
        self._heartbeat = self.redis.register_script(scripts.HEARTBEAT)
        self._leave = self.redis.register_script(scripts.LEAVE)
        # what the last round trip said
        self.reachable: bool | None = None  # None: not tried yet
        self.error: str | None = None
        self.leader = False
        self.epoch = 0
        self.seen_epoch = 0  # the highest epoch seen in a lease: the next one is above it
        self.holder = ""
        self.deadline = float("-inf")  # the lease is valid (by this clock) until then
        self.outage_leader = False  # leader when contact was lost: first to run for the lease when it is back
        self.members: dict[str, int] = {}
        self.peers: set[str] = set()  # the other live instances (updated in place: the deciders' stats keep it)
        self.share: tuple[int, int] = (0, 1)
        self.presence = Presence(clock, hooks.on_hold)
        self.joined = self.presence.joined  # the membership has seen this instance for a whole round
        self._connected_since: float | None = None
        self._last_id: str | None = None
        self._relayed: dict[RevisionKey, float] = {}
        self._stream_warned = float("-inf")
        self._ever_lost = False  # contact was lost at least once since the start
        self._last_beat = float("-inf")  # when the last heartbeat that was answered was sent
        self._to_publish: set[RevisionKey] = set()
        self._poked: list[RevisionKey] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- the autoscaler's Actuator ----------------------------------------------------------------
    def may_act(self, before: int | None, target: int) -> bool:
        return self.holds()

    def holds(self) -> bool:
        """Whether this instance may change what runs right now (the autoscaler's gate and a backend's fence,
        checked before each write): its lease valid by its own clock. Cut off from Redis, a leader cannot know
        whether another instance took the lease, so once its lease has run out it acts on nothing."""
        return self.leader and self._clock() < self.deadline

    def relay(self, key: RevisionKey) -> None:
        """A request found `key` at zero here: unless this instance acts, tell the leader now (at most once a second)."""
        now = self._clock()
        if self.may_act(0, 1) or now - self._relayed.get(key, float("-inf")) < 1.0:
            return
        if len(self._relayed) > 10_000:
            self._relayed = {k: t for k, t in self._relayed.items() if now - t < 1.0}
        self._relayed[key] = now
        self._to_publish.add(key)
        self._wake.set()

    # -- life ---------------------------------------------------------------------------------------
    async def start(self, join_within: float = 3.0) -> None:
        """Start the loops and wait (at most `join_within` s) until the others can have seen this instance."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run()), loop.create_task(self._listen())]
        self.presence.watch(min(self.interval, self.member_ttl / 4), self.member_ttl)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(join_within):
                await self.joined.wait()

    async def close(self) -> None:
        self.presence.stop()
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2 * self.interval + 1.0):
                await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.reachable:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._leave(keys=[self.keys.members, self.keys.planes, self.keys.leader], args=[self.instance])
        if self.leader:
            log.info("gave up the leader lease (epoch %d)", self.epoch)
        self.leader = False
        for client in (self.redis, self._subscriber):
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(self.interval):
                    await client.aclose()

    async def _run(self) -> None:
        while True:
            try:
                await self.cycle()
            except (RedisError, OSError, TimeoutError) as exc:
                self._lost(exc)
            except Exception:
                log.exception("shared state round trip")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()

    # -- one round trip -----------------------------------------------------------------------------
    async def cycle(self) -> None:
        self.presence.trying(self.member_ttl)
        if self._last_id is None:
            asked = self._clock()
            seconds, micros = await self.redis.time()
            self.server_clock.sample(asked, self._clock(), seconds + micros / 1e6)
            self._last_id = f"{int(seconds * 1000 + micros // 1000 - self.window * 1000)}-0"
        sent_at = self._clock()
        run = self.leader or self.outage_leader or self._steady(sent_at)
        relayed, self._to_publish = self._to_publish, set()
        async with self.redis.pipeline(transaction=False) as pipe:  # reset (its connection given back) even on errors
            await self._heartbeat(
                keys=[self.keys.members, self.keys.planes, self.keys.leader, self.keys.epoch],
                args=[
                    self.instance,
                    int(self.member_ttl * 1000),
                    self.planes,
                    int(self.lease_ttl * 1000),
                    1 if run else 0,
                    self.seen_epoch,
                ],
                client=pipe,
            )
            batch = self.outbox.collect(sent_at)
            if batch:
                pipe.xadd(
                    self.keys.stats,
                    {"i": self.instance, "d": exchange.encode(batch, self.server_clock.offset)},
                    maxlen=STREAM_MAXLEN,
                )
            for key in relayed:
                pipe.publish(self.keys.pokes, encode_key(key))
            pipe.xread({self.keys.stats: self._last_id}, count=READ_COUNT)
            results = await pipe.execute(raise_on_error=False)
        if isinstance(results[0], BaseException):
            raise results[0]  # the heartbeat is what says whether Redis is there
        self.server_clock.sample(sent_at, self._clock(), int(results[0][2]) / 1000)
        for failed in (result for result in results[1:] if isinstance(result, BaseException)):
            self._stream_trouble(failed)  # the stream refused (someone wrote a bogus entry id): the lease goes on
        self._beat(sent_at, results[0])
        if not isinstance(results[-1], BaseException):
            self._read(results[-1])
        self._catch_up(int(results[0][2]))
        poked, self._poked = self._poked, []
        for key in poked:
            self.hooks.on_poke(key)

    def _steady(self, now: float) -> bool:
        """Whether to run for the lease: at once from the start; after an outage, once in contact for a lease's
        length (a returning Redis favours the last leader, who runs at once)."""
        if self._connected_since is None:
            return False
        return not self._ever_lost or now - self._connected_since >= self.lease_ttl

    def _beat(self, sent_at: float, answer: list[Any]) -> None:
        epoch, holder, _server_ms, flat = int(answer[0]), str(answer[1]), answer[2], answer[3]
        if not self.reachable:
            if self.reachable is False:
                log.warning("shared state at %s reachable again; rejoined", redacted(self.url))
            self._connected_since = sent_at
        self.reachable, self.error = True, None
        self._last_beat = sent_at
        self.outage_leader = False
        self.holder = holder
        self.seen_epoch = max(self.seen_epoch, epoch, epoch_of(holder))
        members = {str(flat[i]): planes_of(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}
        self.presence.beat(sent_at, len(answer) < 5 or bool(int(answer[4])), self.interval)  # held before a new share
        self._membership(members)
        if epoch > 0:
            self.deadline = sent_at + self.lease_ttl - min(1.0, self.lease_ttl / 4)
            if not self.leader or epoch != self.epoch:  # gained, or retaken after Redis lost the old lease
                self.leader, self.epoch = True, epoch
                log.info("leader of %d gateway instances (epoch %d)", len(members), epoch)
                self.hooks.on_lead()
        elif self.leader:
            self.leader = False
            log.warning("lost the leader lease (epoch %d) to %s", self.epoch, holder or "nobody")
            self.hooks.on_follow()

    def _membership(self, members: dict[str, int]) -> None:
        if members != self.members:
            self.members = members
            self.peers.intersection_update(members)
            self.peers.update(member for member in members if member != self.instance)
            offset = 0
            for instance in sorted(members):
                if instance == self.instance:
                    break
                offset += members[instance]
            share = (offset, max(1, sum(members.values())))
            if share != self.share:
                self.share = share
                self.hooks.on_share(*share)

    def _read(self, answer: list[Any] | None) -> None:
        for _stream, entries in answer or []:
            for entry_id, fields in entries:
                self._last_id = entry_id
                payload = fields.get("d", "")
                if len(payload) > MAX_ENTRY:
                    self._stream_trouble(ValueError(f"an entry of {len(payload)} bytes from {fields.get('i')!r} skipped"))
                elif fields.get("i") != self.instance:
                    batch = exchange.decode(payload, self.server_clock.offset, self._clock(), self.window)
                    exchange.ingest(batch, self.hooks.stats_of, str(fields.get("i")), self.peers)

    def _stream_trouble(self, exc: BaseException) -> None:
        now = self._clock()
        if now - self._stream_warned >= 60.0:
            self._stream_warned = now
            log.warning(
                "shared state: the stats stream %s refused a command (%s); stats not shared meanwhile", self.keys.stats, exc
            )

    def _catch_up(self, server_ms: int) -> None:
        """An entry id past Redis's own clock was not made by Redis (someone set it, or the stream was made again):
        read from a window ago instead of waiting for time to reach it."""
        if self._last_id is not None and id_ms(self._last_id) > server_ms + 1000:
            self._last_id = f"{server_ms - int(self.window * 1000)}-0"

    def _lost(self, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self.reachable is not False:
            log.warning(
                "shared state at %s unreachable (%s): routing with the last known endpoints; %s",
                redacted(self.url),
                message,
                "scaling paused once this leader's lease runs out" if self.leader else "scaling paused",
            )
        # the leader keeps acting (up only) through an outage, but not one that was paused past its lease and
        # woke to find Redis away: by its own clock it no longer holds anything
        self.outage_leader = self.outage_leader or (self.leader and self._clock() < self.deadline)
        self._ever_lost = self._ever_lost or self.reachable is True
        self.presence.lost()
        self.reachable, self.error = False, message
        self._connected_since = None

    # -- pokes and other channels -------------------------------------------------------------------
    async def _listen(self) -> None:
        while True:
            pubsub = self._subscriber.pubsub()
            try:
                await pubsub.subscribe(self.keys.pokes, *self.channels)
                if self.hooks.on_subscribed is not None:
                    await self.hooks.on_subscribed()  # messages sent while unsubscribed are lost: read the state
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=self.interval)
                    if message is not None:
                        await self._message(str(message["channel"]), str(message["data"]))
            except (RedisError, OSError, TimeoutError):
                pass  # the round trip loop says so; try again
            finally:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    async with asyncio.timeout(self.interval):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
            await self._sleep(self.interval)

    async def _message(self, channel: str, data: str) -> None:
        if channel == self.keys.pokes:
            key = decode_key(data)
            if key is not None and self.may_act(0, 1):
                self._poked.append(key)  # after the next read: the poker's seconds are in it
                self._wake.set()
        elif self.hooks.on_message is not None:
            await self.hooks.on_message(channel, data)

    # -- for /readyz, /admin/services and `gateway status` --------------------------------------------
    def health(self) -> str | None:
        if self.reachable is not False:
            return None
        return (
            f"shared state at {redacted(self.url)} unreachable ({self.error}); serving with the last known endpoints, "
            "scaling paused (replicas stay as they are) until it is back"
        )

    def describe(self) -> dict[str, object]:
        return {
            "redis": redacted(self.url),
            "instance": self.instance,
            "reachable": self.reachable is not False,
            "message": self.health(),
            "leader": self.holds(),  # not merely the last word it had: cut off past its lease, it acts on nothing
            "holder": self.holder.rsplit("|", 1)[0] if self.holder else None,
            "epoch": self.epoch if self.holds() else None,
            "instances": len(self.members),
            "share": list(self.share),
            "held": self.presence.held,  # rejoining after a pause: no slots until the others have seen it back
        }
