"""Coordinators against a real redis-server: one leader, fencing, failover, summed stats, pokes, outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

import pytest
from redis.asyncio import Redis

from gateway.autoscale.stats import RevisionStats
from gateway.shared.coordinator import Coordinator
from gateway.shared.exchange import StatsOutbox
from gateway.shared.hooks import Hooks
from gateway.shared.values import redacted
from gateway.types import RevisionKey
from tests.conftest import wait_until
from tests.shared.redis_server import RedisServer

pytestmark = pytest.mark.e2e

KEY = RevisionKey("default", "iris", "default")
FAST = {"interval": 0.1, "member_ttl": 0.6, "lease_ttl": 0.6}


@dataclass
class Instance:
    """What one gateway instance's coordinator talks to: its deciders' stats and the events it got."""

    name: str
    stats: RevisionStats = field(default_factory=lambda: RevisionStats(60, 6))
    outbox: StatsOutbox = field(default_factory=StatsOutbox)
    events: list[str] = field(default_factory=list)
    shares: list[tuple[int, int]] = field(default_factory=list)
    pokes: list[RevisionKey] = field(default_factory=list)
    coordinator: Coordinator | None = None

    def __post_init__(self) -> None:
        self.stats.share(self.outbox, KEY)

    def hooks(self) -> Hooks:
        return Hooks(
            stats_of=lambda key: self.stats if key == KEY else None,
            on_lead=lambda: self.events.append("lead"),
            on_follow=lambda: self.events.append("follow"),
            on_share=lambda offset, count: self.shares.append((offset, count)),
            on_poke=self.pokes.append,
        )

    @property
    def c(self) -> Coordinator:
        assert self.coordinator is not None
        return self.coordinator


@asynccontextmanager
async def running(url: str, name: str, **kwargs: object) -> AsyncIterator[Instance]:
    instance = Instance(name)
    instance.coordinator = Coordinator(url, instance.hooks(), instance.outbox, instance=name, **{**FAST, **kwargs})  # type: ignore[arg-type]
    await instance.c.start()
    try:
        yield instance
    finally:
        await instance.c.close()


async def crash(instance: Instance) -> None:
    """Stop an instance's loops without saying goodbye (its lease and membership expire on their own)."""
    for task in instance.c._tasks:
        task.cancel()
    await asyncio.gather(*instance.c._tasks, return_exceptions=True)
    instance.c._tasks = []
    instance.c.reachable = False  # so close() does not leave politely


async def test_one_leader_and_shares_that_add_up(redis_server: RedisServer) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        await wait_until(lambda: a.c.leader or b.c.leader, "a leader")
        assert a.c.leader != b.c.leader
        await wait_until(lambda: a.c.share == (0, 2) and b.c.share == (1, 2), "both instances in both views")
        leader = a if a.c.leader else b
        assert leader.c.may_act(None, 3)
        follower = b if leader is a else a
        assert not follower.c.may_act(None, 3) and not follower.c.may_act(1, 3)
        await wait_until(lambda: follower.c.describe()["holder"] == leader.name, "the follower to know who leads")


async def test_the_leader_crashes_and_another_takes_over_within_the_lease(redis_server: RedisServer) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        await wait_until(lambda: a.c.leader or b.c.leader, "a leader")
        leader, follower = (a, b) if a.c.leader else (b, a)
        epoch = leader.c.epoch
        await crash(leader)
        took = await wait_until(lambda: follower.c.leader, "the follower to take the lease", within=5)
        assert took < 0.6 + 0.6 + 0.5  # the lease's TTL, then the follower's next beat
        assert follower.c.epoch == epoch + 1 and follower.events[-1] == "lead"
        await wait_until(lambda: follower.c.share == (0, 1), "the dead instance out of the membership")


async def test_a_paused_leader_cannot_act_once_its_lease_ran_out(redis_server: RedisServer) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        await wait_until(lambda: a.c.leader or b.c.leader, "a leader")
        leader, follower = (a, b) if a.c.leader else (b, a)
        paused = leader.c._tasks
        for task in paused:  # paused: no round trips, the clock goes on
            task.cancel()
        await asyncio.gather(*paused, return_exceptions=True)
        await wait_until(lambda: follower.c.leader, "the follower to take the lease", within=5)
        # back from its pause the old leader still believes it leads, but its lease is over by its own clock
        assert leader.c.leader
        assert not leader.c.may_act(1, 2) and not leader.c.may_act(None, 0)
        await leader.c.cycle()  # its first round trip: the lease is another's, with a higher epoch
        assert not leader.c.leader and leader.events[-1] == "follow"
        assert follower.c.epoch > leader.c.epoch


async def test_every_instance_sees_the_summed_stats(redis_server: RedisServer) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        loop = asyncio.get_running_loop()
        for instance, in_flight in ((a, 2), (b, 3)):
            instance.stats.observe(loop.time(), ready=1)
            for _ in range(in_flight):
                instance.stats.request_in(loop.time())

        def panic(instance: Instance) -> float:
            return (instance.stats.concurrency(loop.time()) or (0.0, 0.0))[1]

        # neither instance alone has more than 3 in flight: above that, the other's seconds are in its windows
        await wait_until(lambda: panic(a) > 3.5 and panic(b) > 3.5, "both instances' load in each one's windows", within=8)
        await wait_until(lambda: panic(a) == 5.0 and panic(b) == 5.0, "exactly the sum once whole seconds are in", within=10)


async def test_a_poke_at_zero_reaches_the_leader_with_the_stat_that_explains_it(redis_server: RedisServer) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        await wait_until(lambda: a.c.leader or b.c.leader, "a leader")
        leader, follower = (a, b) if a.c.leader else (b, a)
        loop = asyncio.get_running_loop()
        follower.stats.request_in(loop.time())  # at zero: an immediate concurrency of 1
        started = loop.time()
        follower.c.relay(KEY)
        await wait_until(lambda: leader.pokes == [KEY], "the poke at the leader", within=2)
        assert loop.time() - started < 0.5  # at once, not at the next round
        assert leader.stats.concurrency(loop.time()) is not None  # the follower's stat came first
        follower.c.relay(KEY)  # a second one within the second is not sent again
        assert not follower.c._to_publish


async def test_redis_down_then_back(redis_server: RedisServer) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        await wait_until(lambda: a.c.leader or b.c.leader, "a leader")
        leader, follower = (a, b) if a.c.leader else (b, a)
        before = leader.c.epoch
        redis_server.kill()
        await wait_until(lambda: leader.c.reachable is False and follower.c.reachable is False, "the outage seen")
        assert all("unreachable" in (i.c.health() or "") and "scaling paused" in (i.c.health() or "") for i in (a, b))
        await wait_until(lambda: leader.c._clock() > leader.c.deadline, "the lease over by the leader's clock")
        # past its lease the leader cannot know whether another took it (a partition): nobody acts, nothing flaps
        assert not leader.c.may_act(2, 3) and not leader.c.may_act(3, 2) and not leader.c.holds()
        assert not follower.c.may_act(2, 3) and not follower.c.holds()
        # and says so: /admin/services, `gateway status` and gateway_shared_leader read it
        assert [i.c.describe()["leader"] for i in (leader, follower)] == [False, False]
        redis_server.start()
        await wait_until(lambda: a.c.reachable and b.c.reachable, "both back in contact", within=5)
        await wait_until(lambda: leader.c.leader, "the last leader leads again", within=5)
        assert not follower.c.leader and leader.c.health() is None
        # Redis came back empty (no persistence): the epoch still went up, so no one takes older news for newer
        assert leader.c.epoch > before


def test_the_password_never_shows() -> None:
    assert redacted("unix:///run/redis.sock?db=0&password=secret") == "unix:///run/redis.sock?db=0&password=***"
    assert redacted("redis://user:secret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redacted("redis://:secret@host:6379") == "redis://***@host:6379"
    assert redacted("redis://host:6379") == "redis://host:6379"


async def test_a_bogus_stream_id_or_a_huge_entry_does_not_stop_the_lease_or_the_stats(redis_server: RedisServer) -> None:
    async with running(redis_server.url, "a") as a, running(redis_server.url, "b") as b:
        await wait_until(lambda: a.c.leader or b.c.leader, "a leader")
        leader = a if a.c.leader else b
        client = Redis.from_url(redis_server.url, decode_responses=True)
        try:
            await client.xadd(a.c.keys.stats, {"i": "intruder", "d": "{}"}, id="18446744073709551615-18446744073709551615")
            loop = asyncio.get_running_loop()
            a.stats.observe(loop.time(), ready=1)
            a.stats.request_in(loop.time())  # a's next XADD fails (no id above the maximum): the beat goes on
            await wait_until(lambda: a.c._stream_warned > float("-inf"), "a's seconds refused by the stream", within=5)
            await wait_until(lambda: a.c._last_beat > a.c._stream_warned, "a beat since")
            assert a.c.reachable and b.c.reachable and leader.c.leader
            await client.delete(a.c.keys.stats)  # made again from scratch: b reads from a window ago, not from the bogus id
            await client.xadd(a.c.keys.stats, {"i": "intruder", "d": "x" * (3 << 20)})  # 3 MB: skipped, never decoded
            await wait_until(lambda: b.stats.concurrency(loop.time()) is not None, "a's seconds at b again", within=5)
            assert a.c.reachable and b.c.reachable
        finally:
            await client.aclose()


async def test_a_lost_subscription_is_followed_by_a_fresh_read(redis_server: RedisServer) -> None:
    instance = Instance("a")
    resubscribed: list[float] = []

    async def on_subscribed() -> None:
        resubscribed.append(asyncio.get_running_loop().time())

    hooks = replace(instance.hooks(), on_subscribed=on_subscribed)
    instance.coordinator = Coordinator(redis_server.url, hooks, instance.outbox, instance="a", **FAST)  # type: ignore[arg-type]
    await instance.c.start()
    client = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        await wait_until(lambda: len(resubscribed) == 1, "subscribed")
        await client.client_kill_filter(_type="pubsub")
        await wait_until(lambda: len(resubscribed) == 2, "subscribed again, and told so", within=5)
    finally:
        await client.aclose()
        await instance.c.close()


@dataclass
class Holds:
    """An instance's on_hold calls, each with the members the other instance saw at that moment."""

    other: Instance | None = None
    calls: list[tuple[bool, frozenset[str]]] = field(default_factory=list)

    def __call__(self, held: bool) -> None:
        seen = frozenset(self.other.c.members) if self.other is not None and self.other.coordinator else frozenset()
        self.calls.append((held, seen))


@asynccontextmanager
async def holding(url: str, name: str, holds: Holds, clock: Callable[[], float] = time.monotonic) -> AsyncIterator[Instance]:
    instance = Instance(name)
    hooks = replace(instance.hooks(), on_hold=holds)
    instance.coordinator = Coordinator(url, hooks, instance.outbox, instance=name, clock=clock, **FAST)  # type: ignore[arg-type]
    await instance.c.start()
    try:
        yield instance
    finally:
        await instance.c.close()


async def pause(instance: Instance) -> None:
    """SIGSTOP, as far as the coordinator goes: no round trip, no watchdog; the clock goes on."""
    instance.c.presence.stop()
    for task in instance.c._tasks:
        task.cancel()
    await asyncio.gather(*instance.c._tasks, return_exceptions=True)


def resume(instance: Instance) -> None:
    """SIGCONT: the watchdog's overdue timer runs first, then the loops."""
    c = instance.c
    c.presence.watch(min(c.interval, c.member_ttl / 4), c.member_ttl)
    loop = asyncio.get_running_loop()
    c._tasks = [loop.create_task(c._run()), loop.create_task(c._listen())]


async def test_an_instance_paused_past_the_member_ttl_holds_nothing_until_the_others_have_seen_it_back(
    redis_server: RedisServer,
) -> None:
    holds = Holds()
    async with holding(redis_server.url, "a", holds) as a, running(redis_server.url, "b") as b:
        holds.other = b
        await wait_until(lambda: a.c.share == (0, 2) and b.c.share == (1, 2), "both in both views")
        await pause(a)
        await wait_until(lambda: b.c.share == (0, 1), "a dropped from b's view", within=5)
        assert holds.calls == [] and not a.c.presence.held
        resume(a)
        assert holds.calls == [(True, frozenset({"b"}))]  # at once, before any round trip: b does not count a
        await wait_until(lambda: not a.c.presence.held, "a seen back", within=5)
        assert holds.calls[-1] == (False, frozenset({"a", "b"}))  # released only once b has seen it
        assert b.c.share == (1, 2) and a.c.share == (0, 2)


async def test_a_gap_by_its_own_clock_holds_it_though_redis_kept_its_entry(redis_server: RedisServer) -> None:
    skew = [0.0]
    holds = Holds()
    async with holding(redis_server.url, "a", holds, clock=lambda: time.monotonic() + skew[0]) as a:
        await wait_until(lambda: a.c.joined.is_set(), "joined")
        skew[0] = 0.7  # the member TTL is 0.6 s: a round trip missed by this clock, whatever Redis says
        await wait_until(lambda: holds.calls == [(True, frozenset())], "held", within=2)
        await wait_until(lambda: holds.calls[-1][0] is False, "released two beats later", within=2)
        assert len(holds.calls) == 2


async def test_a_heartbeat_that_finds_its_entry_gone_holds_it_until_seen_again(redis_server: RedisServer) -> None:
    holds = Holds()
    async with holding(redis_server.url, "a", holds) as a, running(redis_server.url, "b") as b:
        holds.other = b
        await wait_until(lambda: a.c.share == (0, 2) and b.c.share == (1, 2), "both in both views")
        client = Redis.from_url(redis_server.url, decode_responses=True)
        try:
            await client.zrem(a.c.keys.members, "a")
        finally:
            await client.aclose()
        await wait_until(lambda: len(holds.calls) == 2, "held, then released", within=5)
        assert holds.calls[0][0] is True and holds.calls[1] == (False, frozenset({"a", "b"}))


async def test_redis_away_is_no_gap_and_lifts_a_hold_no_request_waits_for_it(redis_server: RedisServer) -> None:
    skew = [0.0]
    holds = Holds()
    async with holding(redis_server.url, "a", holds, clock=lambda: time.monotonic() + skew[0]) as a:
        await wait_until(lambda: a.c.joined.is_set(), "joined")
        redis_server.kill()
        await wait_until(lambda: a.c.reachable is False, "the outage seen")
        since = a.c.presence.last_try or 0.0
        await wait_until(lambda: (a.c.presence.last_try or 0.0) > since + 3 * a.c.member_ttl, "round trips tried for 3 TTLs")
        assert holds.calls == []  # failed round trips are no gap
        await pause(a)
        skew[0] = 0.7
        resume(a)  # paused past the TTL while Redis is away: held at once, then lifted (nobody can see it back)
        await wait_until(lambda: holds.calls == [(True, frozenset()), (False, frozenset())], "held then lifted", within=3)
        redis_server.start()
        await wait_until(lambda: a.c.reachable, "back in contact", within=5)
        # Redis came back empty: a's entry is gone, so it rejoins, held until the others (none) could see it
        await wait_until(lambda: len(holds.calls) == 4 and not a.c.presence.held, "rejoined", within=5)


@pytest.mark.parametrize("skew", [30.0, -4.0])
async def test_an_instance_whose_wall_clock_is_off_still_adds_into_the_same_seconds(
    redis_server: RedisServer, skew: float, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        running(redis_server.url, "a", wall=lambda: time.time() + skew) as a,
        running(redis_server.url, "b") as b,
    ):
        loop = asyncio.get_running_loop()
        for instance, in_flight in ((a, 2), (b, 3)):
            instance.stats.observe(loop.time(), ready=1)
            for _ in range(in_flight):
                instance.stats.request_in(loop.time())

        def panic(instance: Instance) -> float:
            return (instance.stats.concurrency(loop.time()) or (0.0, 0.0))[1]

        await wait_until(
            lambda: panic(a) == 5.0 and panic(b) == 5.0, "exactly the sum in both, whatever a's wall clock", within=12
        )
    warned = [r.getMessage() for r in caplog.records if "wall clock" in r.getMessage()]
    assert len(warned) == 1 and f"{skew:+.0f}." in warned[0]
