"""Percentiles and medians for the reports (nearest rank: a reported p99 is a latency some request had)."""

from __future__ import annotations

import math
import statistics


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value * 1000, digits)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None, digits: int = 3) -> float | None:
    return None if a is None or not b else round(a / b, digits)
