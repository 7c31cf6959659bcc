"""The simulator's predicted replica curve for the burst scenario's own traffic: every request at the
moment it actually left the generator, taking the backend's time, through `gateway.simulate.run`
with the scenario's config and the replica start-up the gateway measured (its cold-start histogram).
`gateway.simulate` is issue 13's item 2; in a tree without it the curve is absent and the report says
so (why_not)."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

from loadtests.harness import openloop

_problem = ["gateway.simulate gave no rows"]


def why_not() -> str:
    return _problem[0]


def replica_curve(
    config_path: Path, outcome: openloop.Outcome, duration: float, seconds: float, startup: float
) -> list[dict[str, Any]] | None:
    """Rows {time, desired, ready} for simulated seconds 0 .. seconds - 1, or None (why_not() says why)."""
    try:
        sim = importlib.import_module("gateway.simulate")
    except ImportError as exc:
        _problem[0] = f"gateway.simulate is not in this tree ({exc}): the measured curve stands alone"
        return None
    from gateway.config import load

    sent = [(row[0] + (row[1] or 0.0), duration) for row in outcome.rows]
    trace = sim.Trace.from_requests(sent)
    trace = dataclasses.replace(trace, seconds=max(trace.seconds, int(seconds)))  # the tail after the last request too
    result = sim.run(load([str(config_path)]), None, trace, startup=startup)
    return [{"time": row.time, "desired": row.desired, "ready": row.ready} for row in result.series] or None


def agreement(samples: list[dict[str, Any]], predicted: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Per simulated second T: the measured value at T (the last admin-API sample at or before T, when
    one is at most 0.5 s old) against the predicted one; how many are within one replica."""
    pairs = []
    i = 0
    for row in predicted:
        while i + 1 < len(samples) and samples[i + 1]["t"] <= row["time"]:
            i += 1
        if samples and samples[i]["t"] <= row["time"] and row["time"] - samples[i]["t"] <= 0.5:
            pairs.append((row[key], samples[i][key]))
    within = sum(1 for p, m in pairs if abs(p - m) <= 1)
    exact = sum(1 for p, m in pairs if p == m)
    return {
        "seconds": len(pairs),
        "within_one": within,
        "exact": exact,
        "share_within_one": round(within / max(len(pairs), 1), 3),
    }
