"""Knative's linear bucketed window average (KPA.md §2.1, §2.2, §2.4).

Pure: every method takes ``now``; nothing reads a clock.
"""

from __future__ import annotations

import math

_PRECISION = 1e6


def _round6(value: float) -> float:
    # Go's math.Round: half away from zero, exact (no +0.5 trick).
    scaled = value * _PRECISION
    whole = math.trunc(scaled)
    if abs(scaled - whole) >= 0.5:
        whole += 1 if scaled > 0 else -1
    return whole / _PRECISION  # whole is an int, so never -0.0


class WindowAverage:
    """A ring of ``ceil(window / granularity)`` buckets and their plain mean.

    Values recorded into the same bucket add up. Buckets between two writes count as 0;
    before a full window of data exists the mean covers only the buckets since the first
    write; a window of silence starts afresh.
    """

    def __init__(self, window: float, granularity: float = 1.0) -> None:
        if window <= 0 or granularity <= 0:
            raise ValueError(f"window and granularity must be > 0, got {window}, {granularity}")
        self._window = window
        self._granularity = granularity
        self._buckets = [0.0] * math.ceil(window / granularity)
        self._total = 0.0
        # Bucket numbers (time // granularity); None = never written ("zero time").
        self._first: int | None = None
        self._last: int | None = None

    @property
    def window(self) -> float:
        return self._window

    def _bucket(self, now: float) -> int:
        return math.floor(now / self._granularity)

    def _span(self, start: int, end: int) -> float:
        """Duration from bucket ``start`` to bucket ``end``."""
        return (end - start) * self._granularity

    def record(self, now: float, value: float) -> None:
        """Add ``value`` to the bucket of ``now``; values a window older than the last write are dropped."""
        b = self._bucket(now)
        n = len(self._buckets)
        if b != self._last:
            if self._last is not None and self._span(b, self._last) >= self._window:
                return
            if self._first is None or self._first > b:
                self._first = b
            if self._last is None or b > self._last:
                if self._last is None or self._span(self._last, b) >= self._window:
                    self._buckets = [0.0] * n
                    self._total = 0.0
                    self._first = b
                else:
                    for i in range(self._last + 1, b + 1):
                        self._total -= self._buckets[i % n]
                        self._buckets[i % n] = 0.0
                self._last = b
        self._buckets[b % n] += value
        self._total += value

    def average(self, now: float) -> float:
        """The mean bucket value over the window ending at ``now``, rounded to 6 decimals."""
        if self._last is None:
            return 0.0
        n = len(self._buckets)
        b = self._bucket(now)
        written = n if self._first is None else self._last - self._first + 1
        if b <= self._last:
            return _round6(self._total / min(written, n))
        if self._span(self._last, b) < self._window:
            total = self._total
            for i in range(self._last + 1, b + 1):
                total -= self._buckets[i % n]
            return _round6(total / min(written, n - (b - self._last)))
        return 0.0

    def is_empty(self, now: float) -> bool:
        """True when nothing was written for more than a whole window before ``now``."""
        if self._last is None:
            return True
        return self._span(self._last, self._bucket(now)) > self._window

    def resize(self, window: float, now: float) -> None:
        """Change the window length; the newest ``min(old, new)`` buckets stay if valid at ``now``."""
        if window <= 0:
            raise ValueError(f"window must be > 0, got {window}")
        if window == self._window:
            return
        old = self._buckets
        size = math.ceil(window / self._granularity)
        buckets = [0.0] * size
        total = 0.0
        if self._last is not None and self._span(self._last, self._bucket(now)) <= self._window:
            idx = self._last
            for _ in range(min(size, len(old))):
                buckets[idx % size] = old[idx % len(old)]
                total += old[idx % len(old)]
                idx -= 1
            self._first = self._last - (len(old) - 1)
        else:
            self._first = None
        self._window = window
        self._buckets = buckets
        self._total = total
