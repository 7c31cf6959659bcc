"""Step traces whose replica counts follow from the KPA rules (/work/shared/KPA.md), derived here by hand.

Common ground of every test unless it says otherwise: per-replica target 10 (target 10 at 100 %
utilisation), containerConcurrency 0 (no queueing once a replica is ready), stable window W = 10 s so
the panic window is max(1, round(10 s x 10 %)) = 1 s, ticks every 2 s, replicas ready 1 s after they
are asked for, every request lasting exactly 1 s.

Per-second concurrency of such traces (time-weighted in-flight count, KPA.md §1.1):
  (a) the first second at r rps after silence: arrivals at s + k/r, so k+1 in flight over the k-th
      1/r of the second: mean (r + 1) / 2;
  (b) a second at r rps after a second at r rps: exactly r;
  (c) a second at r' rps after one at r rps: the old requests leave one by one, (r - 1) / 2, plus
      the new ramp (r' + 1) / 2.
A second's figure is recorded when it is complete, so a tick at T reads stable = the mean of seconds
T-10 .. T-1 and panic = second T-1 (KPA.md §2.2). Row s of the series shows the last tick at or before s.
The decider (§4.3): dspc = ceil(stable / 10), dppc = ceil(panic / 10), panic when dppc / ready >= 2,
pods limited below by floor(ready / maxScaleDownRate).
"""

from __future__ import annotations

from gateway.config.model import AutoscalerSettings
from gateway.simulate import Trace
from tests.simulate.support import column, config, rates, runs, simulate

W10 = AutoscalerSettings(stable_window=10.0)
TARGET_10 = {"target": 10.0, "target_utilization": 100.0}


def test_stable_window_average_raises_replicas_as_the_mean_rises() -> None:
    # Panic off (threshold 1000 %): only the stable average decides. 30 rps from second 20.
    # Seconds: 20 -> 15.5 (a), 21.. -> 30 (b). Stable at T = (15.5 + 30 * (T - 21)) / 10:
    #   T=22: 4.55 -> 1;  T=24: 10.55 -> 2;  T=26: 16.55 -> 2;  T=28: 22.55 -> 3;  T=30: 28.55 -> 3;  T=32: 30 -> 3
    cfg = config(W10, min_scale=1, panic_threshold_percentage=1000.0, **TARGET_10)
    rows = simulate(cfg, rates([(20, 49, 30)], 50)).series
    assert column(rows, "stable", 22, 33) == [4.55, 4.55, 10.55, 10.55, 16.55, 16.55, 22.55, 22.55, 28.55, 28.55, 30.0, 30.0]
    assert runs(rows, "desired") == [(0, 1), (24, 2), (28, 3)]
    assert runs(rows, "ready") == [(0, 0), (1, 1), (25, 2), (29, 3)]  # 1 s start-up after each decision
    assert not any(row.panicking for row in rows)


def test_panic_entry_hold_exit_and_the_scale_down_rate() -> None:
    # 60 rps in seconds 20-21, then 10 rps until 59. Seconds: 20 -> 30.5 (a), 21 -> 60 (b),
    # 22 -> 29.5 + 5.5 = 35 (c), 23.. -> 10.
    # T=22: stable (30.5 + 60) / 10 = 9.05 -> 1; panic 60 -> dppc 6, 6 / 1 ready >= 2: panic from 22, desired 6.
    # T=24..32: ready 6, dppc 1 (1/6 < 2), but panic holds for W after the last tick over the
    #   threshold (22): desired stays 6 although stable alone wants max(ceil(13.55/10), floor(6/2)) = 3 at 24.
    # T=34: 22 + 10 < 34, panic ends; stable 10 -> 1, but at most halved: floor(6 / 2) = 3.
    # T=36: stable 10 -> 1, floor(3 / 2) = 1 -> 1.
    cfg = config(W10, min_scale=1, **TARGET_10)
    result = simulate(cfg, rates([(20, 21, 60), (22, 59, 10)], 70))
    rows = result.series
    assert column(rows, "stable", 22, 25) == [9.05, 9.05, 13.55, 13.55]
    assert column(rows, "panic", 22, 25) == [60.0, 60.0, 10.0, 10.0]
    assert runs(rows, "panicking") == [(0, False), (22, True), (34, False)]
    assert runs(rows, "desired") == [(0, 1), (22, 6), (34, 3), (36, 1)]
    assert runs(rows, "ready") == [(0, 0), (1, 1), (23, 6), (34, 3), (36, 1)]  # scale-down is immediate
    assert result.summary["scale_changes"] == 4  # 0 -> 1 -> 6 -> 3 -> 1


def test_a_faster_scale_down_rate_set_on_the_command_line() -> None:
    # As above with maxScaleDownRate 4: at T=34 the floor is floor(6 / 4) = 1, so 6 -> 1 at once.
    cfg = config(W10, min_scale=1, **TARGET_10)
    rows = simulate(cfg, rates([(20, 21, 60), (22, 59, 10)], 70), overrides=["autoscaler.maxScaleDownRate=4"]).series
    assert runs(rows, "desired") == [(0, 1), (22, 6), (34, 1)]


def test_panic_starts_at_200_percent_of_capacity_inclusive() -> None:
    # One ready replica. 10 rps: panic 10 -> dppc 1, 1/1 < 2: no panic. 11 rps: panic 11 -> dppc 2,
    # 2/1 = 2 >= 2: panic at the first tick that sees a full second of it (T=22), desired max(1, 2) = 2.
    cfg = config(W10, min_scale=1, **TARGET_10)
    calm = simulate(cfg, rates([(20, 39, 10)], 40)).series
    assert not any(row.panicking for row in calm)
    assert {row.desired for row in calm} == {1}
    hot = simulate(cfg, rates([(20, 39, 11)], 40)).series
    assert hot[21].panicking is False and hot[22].panicking is True
    assert hot[22].desired == 2


def test_scale_to_zero_a_grace_period_after_the_revision_goes_inactive() -> None:
    # 10 rps in seconds 0-19, replicas ready at once (startup 0), targetBurstCapacity 0 so the activator
    # leaves the path while a replica serves. Last busy second: 20 (c, 4.5); stable is 0 from T=32
    # (seconds 22-31) -> the decider wants 0. The revision has been active since T=2 (its replica ready),
    # 30 >= W: T=32 marks it inactive and the activator back in the path, nothing applied yet
    # (KPA.md §8.4). Zero is applied when the grace period (30 s) has passed since: T=62.
    cfg = config(AutoscalerSettings(stable_window=10.0, target_burst_capacity=0.0), **TARGET_10)
    rows = simulate(cfg, rates([(0, 19, 10)], 80), startup=0.0).series
    assert runs(rows, "desired") == [(0, 1), (62, 0)]
    assert runs(rows, "ready") == [(0, 1), (62, 0)]
    assert rows[31].stable == 0.45 and rows[32].stable == 0.0  # seconds 20-29: 4.5 / 10


def test_scale_to_zero_at_once_when_the_activator_was_in_the_path_for_the_grace_period() -> None:
    # Same traffic, default targetBurstCapacity 211: one replica (capacity 10) can never absorb it, so
    # the activator stayed in the path from the start (t=0). T=32 marks the revision inactive; at T=34
    # the activator has been in the path >= 30 s: zero at once.
    cfg = config(W10, **TARGET_10)
    rows = simulate(cfg, rates([(0, 19, 10)], 80), startup=0.0).series
    assert runs(rows, "desired") == [(0, 1), (34, 0)]


def test_min_and_max_scale_bound_every_decision() -> None:
    # minScale 2, maxScale 3; 50 rps in seconds 20-39. Seconds: 20 -> 25.5, 21-39 -> 50, 40 -> 24.5.
    # T=22: panic 50 -> dppc 5, 5 / 2 ready >= 2: panic, desired 5, bounded to 3.
    # Panic ends at T=34 (stable 50 -> 5 -> 3). Stable at T=46: (4 x 50 + 24.5) / 10 = 22.45 -> 3;
    # T=48: (2 x 50 + 24.5) / 10 = 12.45 -> 2; never below minScale 2, even idle.
    cfg = config(W10, min_scale=2, max_scale=3, **TARGET_10)
    rows = simulate(cfg, rates([(20, 39, 50)], 100)).series
    assert runs(rows, "desired") == [(0, 2), (22, 3), (48, 2)]
    assert rows[22].panicking and not rows[34].panicking
    assert max(row.ready for row in rows) == 3


def test_initial_scale_then_down_by_the_rate_and_to_zero() -> None:
    # No traffic, initialScale 3, default target (70 of 100 per replica) and targetBurstCapacity 211.
    # T=0: the scaler starts at 3 (not yet initialised: min = initialScale). T=2: 3 ready, idle seconds
    # are recorded as 0, decider: max(0, floor(3/2)) = 1, still raised to 3 (initialised only after this
    # tick). T=4: 1 (floor(3/2)). T=6: 1 ready, decider 0, but the revision has been active only 4 s < W:
    # kept at 1. Excess burst capacity 1 x 100 - 211 < 0 puts the activator in the path at T=6.
    # T=12: active 10 s >= W: marked inactive. T=36: the activator in the path 30 s: zero.
    cfg = config(AutoscalerSettings(stable_window=10.0, initial_scale=3))
    rows = simulate(cfg, Trace.from_rates([(59, 0, 1.0)])).series
    assert runs(rows, "desired") == [(0, 3), (4, 1), (36, 0)]
    assert runs(rows, "ready") == [(0, 0), (1, 3), (4, 1), (36, 0)]


def test_a_request_at_zero_pokes_the_autoscaler_and_waits_the_startup() -> None:
    # Zero initial scale: nothing runs. A request at 5.0 finds no replica: the activator's immediate stat
    # (concurrency 1, KPA.md §1.2) and the poke give the decider ceil(1 / 70) = 1 at once (not at the next
    # tick, 6), the replica is ready 0.4 s later and the request waits exactly that.
    cfg = config(AutoscalerSettings(initial_scale=0, allow_zero_initial_scale=True))
    result = simulate(cfg, Trace.from_requests([(5.0, 0.1)]), startup=0.4)
    rows = result.series
    assert runs(rows, "desired") == [(0, 0), (5, 1)]
    assert (rows[5].ready, rows[5].queued, rows[5].stable) == (0, 1, 1.0)
    summary = result.summary
    assert (summary["waited_share"], summary["wait_p50_s"], summary["wait_p99_s"]) == (1.0, 0.4, 0.4)


def test_scale_down_delay_holds_the_highest_count_of_the_delay_window() -> None:
    # Panic off; 30 rps in seconds 20-49 (3 replicas from T=28, as in the first test), then nothing.
    # Seconds: 50 -> 14.5 (the last requests leave one by one), 51.. -> 0. Without a delay:
    #   T=54: (6 x 30 + 14.5) / 10 = 19.45 -> 2 (floor(3/2) = 1 allows it);  T=56: 13.45 -> 2;
    #   T=58: 7.45 -> 1.
    # scaleDownDelay 10 s: the decider returns the largest count recorded in the last ceil(10 / 2) = 5
    # tick slots (slot = floor(t / 2), KPA.md §5). 3 was last recorded at T=52 (slot 26): held until
    # slot 31, T=62, which returns the 2 of slots 27-28 (T=54, 56) until T=66 (slot 33) returns 1.
    cfg = config(W10, min_scale=1, panic_threshold_percentage=1000.0, **TARGET_10)
    trace = rates([(20, 49, 30)], 80)
    assert runs(simulate(cfg, trace).series, "desired") == [(0, 1), (24, 2), (28, 3), (54, 2), (58, 1)]
    delayed = simulate(cfg, trace, overrides=["scaling.scaleDownDelay=10s"]).series
    assert runs(delayed, "desired") == [(0, 1), (24, 2), (28, 3), (62, 2), (66, 1)]
