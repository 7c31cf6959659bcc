from __future__ import annotations

import pytest

from gateway.autoscale.window import WindowAverage


def filled(window: float = 5.0, start: float = 100.0) -> WindowAverage:
    """Values 1..5 recorded at start+0 .. start+4."""
    w = WindowAverage(window)
    for i in range(5):
        w.record(start + i, float(i + 1))
    return w


def test_never_written_is_empty_and_zero() -> None:
    w = WindowAverage(60)
    assert w.is_empty(0.0)
    assert w.average(0.0) == 0.0


def test_single_sample_after_silence_is_its_own_average() -> None:
    w = WindowAverage(60)
    w.record(10.3, 1.0)
    assert w.average(10.9) == 1.0


def test_full_window_is_plain_mean() -> None:
    assert filled().average(104.0) == 3.0


def test_now_is_truncated() -> None:
    w = filled()
    assert w.average(104.999) == 3.0
    assert w.average(103.6) == 3.0  # now behind the last write still uses all data


def test_short_hole_drops_stale_buckets_and_shrinks_divisor() -> None:
    assert filled().average(106.0) == (15 - 1 - 2) / 3


def test_hole_of_a_window_gives_zero_but_not_empty() -> None:
    w = filled()
    assert w.average(109.0) == 0.0
    assert not w.is_empty(109.0)
    assert w.is_empty(110.0)


def test_write_after_hole_zeroes_gap() -> None:
    w = filled()
    w.record(106.0, 91.0)
    assert w.average(106.0) == (3 + 4 + 5 + 0 + 91) / 5


def test_window_of_silence_restarts() -> None:
    w = filled()
    w.record(160.0, 1984.0)
    assert w.average(160.0) == 1984.0


def test_late_write_moves_first_write_back() -> None:
    w = filled()
    w.record(160.0, 1984.0)
    w.record(157.0, 4.0)
    assert w.average(160.0) == (4 + 1984) / 4
    w.record(161.0, 5.0)
    assert w.average(161.0) == (4 + 1984 + 5) / 5


def test_too_old_values_are_ignored() -> None:
    w = WindowAverage(5)
    w.record(100.0, 7.0)
    w.record(95.0, 1000.0)  # exactly a window before the last write
    w.record(94.0, 1000.0)
    assert w.average(100.0) == 7.0


def test_exact_window_gap_resets_first_write() -> None:
    w = filled()
    w.record(109.0, 10.0)
    assert w.average(109.0) == 10.0


def test_same_bucket_values_add() -> None:
    w = WindowAverage(5)
    w.record(1.1, 2.0)
    w.record(1.9, 3.0)
    assert w.average(1.0) == 5.0


def test_descending_writes_fill_every_bucket() -> None:
    w = WindowAverage(5)
    for t in range(8, -1, -1):
        w.record(float(t), 5.0)
    assert w.average(5.0) == 5.0


def test_rounds_to_six_decimals() -> None:
    w = WindowAverage(3)
    w.record(0.0, 1.0)
    w.record(1.0, 0.0)
    w.record(2.0, 0.0)
    assert w.average(2.0) == 0.333333
    w2 = WindowAverage(3)
    w2.record(0.0, 2.0)
    w2.record(1.0, 0.0)
    w2.record(2.0, 0.0)
    assert w2.average(2.0) == 0.666667


def test_rounding_error_never_leaves_negative_zero() -> None:
    w = WindowAverage(3)
    w.record(0.0, 0.1)
    w.record(1.0, 0.3)
    w.record(2.0, 1.1)
    for t in (3.0, 4.0, 5.0):
        w.record(t, 0.0)  # the running total is now -2.2e-16
    assert str(w.average(5.0)) == "0.0"


def test_resize_grow_keeps_data_and_divisor() -> None:
    w = WindowAverage(5)
    for i in range(6):
        w.record(float(i), float(i + 1))
    assert w.average(5.0) == 20 / 5
    w.resize(10, 5.0)
    assert w.window == 10
    assert w.average(5.0) == 20 / 5
    w.record(6.0, 7.0)
    assert w.average(6.0) == round(27 / 6, 6)


def test_resize_shrink_keeps_newest() -> None:
    w = WindowAverage(10)
    for i in range(7):
        w.record(float(i), float(i + 1))
    w.resize(4, 6.0)
    assert w.average(6.0) == (4 + 5 + 6 + 7) / 4


def test_resize_stale_data_is_dropped() -> None:
    w = WindowAverage(5)
    w.record(0.0, 19.82)
    w.resize(10, 60.0)
    assert w.average(60.0) == 0.0
    w.record(61.0, 3.0)
    assert w.average(61.0) == 3.0


def test_invalid_window() -> None:
    with pytest.raises(ValueError):
        WindowAverage(0)
