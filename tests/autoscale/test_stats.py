from __future__ import annotations

import time

import pytest

from gateway.autoscale.stats import RevisionStats, panic_window_seconds


@pytest.mark.parametrize(
    ("stable", "pct", "want"),
    [
        (60, 10, 6),
        (25, 10, 3),  # 2.5 rounds away from zero
        (45, 10, 5),  # 4.5 too (round-half-even would give 4)
        (15, 10, 2),
        (14, 10, 1),
        (6, 1, 1),  # never below one second
        (60, 100, 60),
        (3600, 0.5, 18),
    ],
)
def test_panic_window_seconds(stable: float, pct: float, want: float) -> None:
    assert panic_window_seconds(stable, pct) == want


def with_replicas(stable: float = 60, panic: float = 6, start: float = 10.0) -> RevisionStats:
    s = RevisionStats(stable, panic)
    s.observe(start, ready=1)
    return s


def test_no_data_is_none() -> None:
    s = RevisionStats(60, 6)
    assert s.concurrency(5.0) is None
    assert s.rps(5.0) is None


def test_whole_seconds_of_one_request() -> None:
    s = with_replicas()
    s.request_in(10.0)
    s.request_out(13.0)
    assert s.concurrency(13.5) == (1.0, 1.0)
    assert s.in_flight == 0


def test_time_weighted_within_a_second() -> None:
    s = with_replicas()
    s.request_in(10.25)
    s.request_out(10.75)
    assert s.concurrency(11.0) == (0.5, 0.5)


def test_overlapping_requests_are_weighted() -> None:
    s = with_replicas()
    s.request_in(10.0)
    s.request_in(10.5)  # 2 in flight for the second half
    s.request_out(11.0)
    s.request_out(11.5)
    # second 10: 0.5*1 + 0.5*2 = 1.5; second 11: 0.5*1 = 0.5
    assert s.concurrency(11.2) == (1.5, 1.5)
    assert s.concurrency(12.0) == (1.0, 1.0)


def test_silent_seconds_with_requests_in_flight_record_their_concurrency() -> None:
    s = with_replicas()
    s.request_in(10.0)
    s.request_in(10.0)
    s.observe(20.5)
    assert s.concurrency(20.5) == (2.0, 2.0)
    assert s.in_flight == 2


def test_idle_seconds_record_zero_while_replicas_are_ready() -> None:
    s = with_replicas()
    s.request_in(10.0)
    s.request_out(20.5)
    s.observe(30.0)
    # stamps 11..20 hold 1, 21 holds 0.5 (second 20), 22..30 hold 0
    assert s.concurrency(30.0) == (round(10.5 / 20, 6), 0.0)


def test_idle_seconds_without_replicas_are_not_recorded() -> None:
    s = RevisionStats(10, 2)
    s.observe(0.0, ready=1)
    s.request_in(0.0)
    s.request_out(3.0)
    s.observe(4.0, ready=0)
    before = s.concurrency(4.0)
    s.observe(5.0, ready=0)
    s.observe(9.0, ready=0)
    assert before is not None
    # nothing new recorded: the divisor shrinks instead of zeros being averaged in
    assert s.concurrency(9.0) == (round(3 / 3, 6), 0.0)
    assert s.concurrency(15.0) is None


def test_first_request_at_zero_records_at_once() -> None:
    s = RevisionStats(60, 6)
    s.observe(0.0, ready=0)
    s.request_in(50.3)
    assert s.concurrency(50.3) == (1.0, 1.0)
    assert s.rps(50.3) == (1.0, 1.0)
    # the next second's report is reduced by the immediate one: 0.7 - 1 -> 0
    assert s.concurrency(51.2) == (0.5, 0.5)
    assert s.rps(51.2) == (0.5, 0.5)


def test_no_immediate_stat_while_replicas_are_ready() -> None:
    s = with_replicas()
    s.request_in(10.5)
    assert s.concurrency(10.5) is None


def test_unknown_replicas_record_idle_seconds_once_data_exists() -> None:
    s = RevisionStats(60, 6)
    s.request_in(10.0)  # immediate stat: 1 at stamp 10
    s.request_out(10.5)
    s.observe(16.0)
    # stamp 11 holds max(0.5 - 1, 0) = 0, stamps 12..16 hold idle zeros
    assert s.concurrency(16.0) == (round(1 / 7, 6), 0.0)


def test_requests_per_second() -> None:
    s = with_replicas()
    for t in (10.1, 10.2, 10.3, 10.4, 10.5, 11.1, 11.2, 11.3):
        s.request_in(t)
        s.request_out(t + 0.05)
    assert s.rps(12.0) == (4.0, 4.0)


def test_long_silence_costs_one_window() -> None:
    s = with_replicas(stable=60, panic=6, start=0.0)
    s.request_in(0.0)
    started = time.perf_counter()
    s.observe(10_000_000.5)
    assert time.perf_counter() - started < 0.1
    assert s.concurrency(10_000_000.5) == (1.0, 1.0)


def test_panic_window_follows_recent_seconds() -> None:
    s = with_replicas(stable=60, panic=6, start=0.0)
    s.request_in(0.0)
    s.observe(54.0)  # stamps 1..54 hold 1
    for _ in range(4):
        s.request_in(54.0)  # 5 in flight from now on
    assert s.concurrency(60.0) == (round((54 + 6 * 5) / 60, 6), 5.0)


def test_request_out_never_goes_negative() -> None:
    s = with_replicas()
    s.request_out(10.5)
    assert s.in_flight == 0
    s.request_in(10.6)
    assert s.in_flight == 1


def test_reconfigure_keeps_data() -> None:
    s = with_replicas(stable=60, panic=6)
    s.request_in(10.0)
    s.observe(20.0)  # stamps 11..20 hold 1
    s.reconfigure(30, 3)
    assert (s.stable_window, s.panic_window) == (30, 3)
    # As Knative's ResizeWindow: the first write moves back by the old bucket count,
    # so the divisor becomes the whole new window.
    assert s.concurrency(20.0) == (round(10 / 30, 6), 1.0)
    s.request_out(20.0)
    s.observe(23.0)
    assert s.concurrency(23.0) == (round(10 / 30, 6), 0.0)


def test_reconfigure_before_any_data() -> None:
    s = RevisionStats(60, 6)
    s.reconfigure(10, 1)
    assert s.concurrency(0.0) is None
