"""A one-hour trace at 100 requests per second (360,000 requests) runs through to its last second.

How fast is not asserted (the machine is shared); the figure is in the README."""

from __future__ import annotations

import pytest

from gateway.simulate import Trace, run
from tests.simulate.support import config


@pytest.mark.e2e
def test_an_hour_at_100_rps_finishes_with_a_row_per_second() -> None:
    trace = Trace.from_rates([(s, 100, 0.2) for s in range(3600)])
    result = run(config(container_concurrency=10), None, trace, startup=0.4)
    assert len(result.series) == 3600 and [row.time for row in result.series[:3]] == [0, 1, 2]
    assert result.summary["requests"] == 360_000
    assert result.summary["rejected"] == 0 and result.summary["timed_out"] == 0
