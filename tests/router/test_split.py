from __future__ import annotations

import pytest

from gateway.router.split import Splitter


@pytest.mark.parametrize("percent", [0, 1, 10, 30, 33, 50, 70, 99, 100])
def test_every_window_of_100_is_exact_within_one(percent: int) -> None:
    s = Splitter(percent)
    picks = [s.pick() for _ in range(1000)]
    for start in range(0, 900):
        got = sum(picks[start : start + 100])
        assert percent - 1 <= got <= percent + 1, (start, got)
    assert sum(picks) == percent * 10


def test_thirty_percent_is_interleaved_not_bunched() -> None:
    s = Splitter(30)
    picks = [s.pick() for _ in range(10)]
    assert sum(picks) == 3
    assert "TT" not in "".join("T" if p else "F" for p in picks)


def test_fifty_fifty_alternates_starting_with_default() -> None:
    s = Splitter(50)
    assert [s.pick() for _ in range(4)] == [False, True, False, True]


@pytest.mark.parametrize("percent", [-1, 101])
def test_out_of_range_is_refused(percent: int) -> None:
    with pytest.raises(ValueError, match="0..100"):
        Splitter(percent)
