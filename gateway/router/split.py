"""Exact, deterministic default/canary split: smooth weighted round-robin.

Each pick adds every revision's weight to its running score, chooses the highest score and
subtracts the total from it (nginx's smooth weighted round-robin). With weights reduced by their
gcd the sequence repeats every ``total/gcd`` picks and each period holds exactly ``weight/gcd``
picks of each revision, interleaved as evenly as possible: over ANY window of 100 consecutive
requests a 30 % canary gets 30 ± 1 of them.
"""

from __future__ import annotations

from math import gcd


class Splitter:
    """Two-way split: ``pick()`` returns True for the canary."""

    __slots__ = ("_canary_weight", "_default_weight", "_total", "_canary_score", "_default_score")

    def __init__(self, canary_percent: int) -> None:
        if not 0 <= canary_percent <= 100:
            raise ValueError(f"canary percent must be 0..100, got {canary_percent}")
        g = gcd(canary_percent, 100 - canary_percent) or 1
        self._canary_weight = canary_percent // g
        self._default_weight = (100 - canary_percent) // g
        self._total = 100 // g
        self._canary_score = 0
        self._default_score = 0

    def pick(self) -> bool:
        if self._canary_weight == 0:
            return False
        if self._default_weight == 0:
            return True
        self._canary_score += self._canary_weight
        self._default_score += self._default_weight
        # Ties go to the default revision, so a 50/50 split starts with default.
        if self._canary_score > self._default_score:
            self._canary_score -= self._total
            return True
        self._default_score -= self._total
        return False
