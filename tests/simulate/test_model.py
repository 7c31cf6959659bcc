"""The activator and replica model: per-replica concurrency, the FIFO queue and its waits, refusals,
timeouts, what replicas cost, and which replicas a scale-down stops."""

from __future__ import annotations

import asyncio

from gateway.config.model import AutoscalerSettings
from gateway.simulate import Trace
from gateway.simulate.fleet import Fleet
from gateway.types import RevisionKey
from tests.simulate.support import column, config, simulate

W10 = AutoscalerSettings(stable_window=10.0)
ONE_SLOT = {"min_scale": 1, "max_scale": 1, "container_concurrency": 1}


def test_requests_wait_in_order_for_a_slot_and_their_waits_are_measured() -> None:
    # One replica admitting one request at a time; three 1 s requests at t=10 are served at 10, 11, 12.
    result = simulate(config(W10, **ONE_SLOT), Trace.from_requests([(10.0, 1.0), (10.0, 1.0), (10.0, 1.0), (14.5, 1.0)]))
    summary = result.summary
    assert summary["requests"] == 4
    assert summary["waited_share"] == 0.5  # 2 of 4 waited
    # waits 0, 0, 1, 2 (nearest rank): p50 the 2nd smallest, p95 and p99 the largest
    assert (summary["wait_p50_s"], summary["wait_p95_s"], summary["wait_p99_s"], summary["wait_max_s"]) == (0.0, 2.0, 2.0, 2.0)
    assert column(result.series, "queued", 9, 13) == [0, 2, 1, 0, 0]
    assert summary["max_queued"] == 2


def test_queued_requests_count_in_the_concurrency_the_decider_sees() -> None:
    # Five 10 s requests at t=20 on one one-slot replica: one runs, four wait, all five are in the
    # revision (KPA.md §1.2: the activator counts what it holds). Seconds 20-29 each average 5, so the
    # stable average at T=30 (seconds 20-29) is 5, not the 1 running.
    rows = simulate(config(W10, **ONE_SLOT), Trace.from_requests([(20.0, 10.0)] * 5 + [(39.0, 0.0)])).series
    assert rows[30].stable == 5.0
    assert rows[22].panic == 5.0


def test_unlimited_concurrency_never_queues_once_a_replica_is_ready() -> None:
    trace = Trace.from_requests([(10.0 + i / 1000, 5.0) for i in range(500)])
    summary = simulate(config(W10, min_scale=1, max_scale=1), trace).summary
    assert (summary["waited_share"], summary["max_queued"], summary["max_ready"]) == (0.0, 0, 1)


def test_beyond_the_queue_depth_requests_are_refused() -> None:
    trace = Trace.from_requests([(10.0, 1.0)] * 3)
    summary = simulate(config(W10, **ONE_SLOT), trace, overrides=["activator.queueDepth=1"]).summary
    assert (summary["rejected"], summary["max_queued"], summary["timed_out"]) == (1, 1, 0)
    assert summary["wait_max_s"] == 1.0  # the queued one; the refused one has no wait


def test_a_request_queued_past_the_activation_timeout_gives_up() -> None:
    trace = Trace.from_requests([(10.0, 1.0), (10.0, 1.0), (10.2, 0.1), (12.0, 0.1)])
    result = simulate(config(W10, **ONE_SLOT), trace, overrides=["activator.activationTimeout=0.5s"])
    summary = result.summary
    # the second gives up at 10.5 after 0.5 s; the third at 10.7
    assert (summary["timed_out"], summary["wait_max_s"]) == (2, 0.5)
    assert summary["max_queued"] == 2
    assert result.series[10].queued == 1 and result.series[11].queued == 0  # rows are the state at whole seconds


def test_a_request_is_cut_at_the_request_timeout_and_frees_its_slot() -> None:
    # A 5 s request under a 2 s timeout ends at 12 (504); the next one, queued at 11, gets the slot then.
    trace = Trace.from_requests([(10.0, 5.0), (11.0, 1.0)])
    summary = simulate(config(W10, **ONE_SLOT), trace, overrides=["activator.requestTimeout=2s"]).summary
    assert (summary["timed_out"], summary["wait_max_s"]) == (1, 1.0)


def test_replica_seconds_count_every_replica_that_exists_from_its_start() -> None:
    # minScale 2: two replicas asked for at t=0, starting then ready; 50 simulated seconds.
    summary = simulate(config(W10, min_scale=2), Trace.from_rates([(49, 0, 1.0)])).summary
    assert summary["replica_seconds"] == 100.0
    # scale from zero at 5.0, 0.4 s start-up, alone until the end (no scale-down within 20 s)
    cfg = config(AutoscalerSettings(initial_scale=0, allow_zero_initial_scale=True))
    assert simulate(cfg, Trace.from_requests([(5.0, 0.1), (19.5, 0.1)]), startup=0.4).summary["replica_seconds"] == 15.0


def test_scale_down_stops_starting_replicas_first_then_the_idle_and_busy_ones_drain() -> None:
    clock = [0.0]
    fleet = Fleet(lambda: clock[0], startup=1.0, container_concurrency=2, horizon=10.0)
    key = RevisionKey("default", "m", "default")
    asyncio.run(fleet.scale(key, 3))
    clock[0] = 1.0
    for _ in range(3):
        assert fleet.next_ready() == 1.0
        fleet.become_ready()
    busy = [fleet.acquire(), fleet.acquire(), fleet.acquire()]  # least loaded first: one on each
    assert len({id(r) for r in busy}) == 3 and all(r is not None and r.in_flight == 1 for r in busy)
    first = busy[0]
    assert first is not None
    fleet.release(first)  # replica 0 idle again
    clock[0] = 2.0
    asyncio.run(fleet.scale(key, 4))  # one more, starting
    asyncio.run(fleet.scale(key, 2))  # the starting one goes first, then the idle replica 0
    assert [r.index for r in fleet.active] == [1, 2]
    assert fleet.ready_count == 2 and len(fleet.ready_endpoints(key)) == 2 and fleet.alive == 2
    asyncio.run(fleet.scale(key, 1))  # both busy: the newest goes, and drains
    assert [r.index for r in fleet.active] == [1] and fleet.alive == 2
    draining = busy[2]
    assert draining is not None and draining.stopped
    clock[0] = 3.0
    fleet.release(draining)  # its last request is done: it stops costing
    assert fleet.alive == 1
    clock[0] = 10.0
    fleet.close()
    # 0-1: 3 starting; 1-2: 3 ready (+1 starting at 2, gone at once); 2-3: 2 (one draining); 3-10: 1
    assert fleet.replica_seconds == 3 + 3 + 2 + 7


def test_a_full_replica_admits_nothing_more() -> None:
    fleet = Fleet(lambda: 0.0, startup=0.0, container_concurrency=2, horizon=10.0)
    fleet.resize(1)
    fleet.become_ready()
    first, second = fleet.acquire(), fleet.acquire()
    assert first is not None and first is second
    assert fleet.acquire() is None
    fleet.release(first)
    assert fleet.acquire() is first


def test_several_startup_times_are_taken_in_turn_by_the_replicas() -> None:
    # minScale 3 asks for three replicas at t=0 with start-ups 2, 0.5 and 1 s: ready 1 at 0.5, 2 at 1, 3 at 2.
    result = simulate(config(W10, min_scale=3), Trace.from_rates([(9, 0, 1.0)]), startup=[2.0, 0.5, 1.0])
    assert column(result.series, "ready", 0, 2) == [0, 2, 3]
    assert result.summary["settings"]["startup_s"] == [2.0, 0.5, 1.0]
    fleet = Fleet(lambda: 0.0, startup=[2.0, 0.5, 1.0], container_concurrency=0, horizon=10.0)
    fleet.resize(3)
    times = []
    while (due := fleet.next_ready()) is not None:
        times.append(due)
        fleet.become_ready()
    assert times == [0.5, 1.0, 2.0]
